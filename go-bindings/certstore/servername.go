package certstore

// NormalizeServerName checks a name as ServerTLSConfigSNI checks an explicit SNIStore
// ServerNames entry and returns it as matched (lowercase, without a trailing dot). It lets
// configuration be validated before any Store is opened; two names that normalize the same
// would be refused by ServerTLSConfigSNI when given for two Stores.
func NormalizeServerName(name string) (string, error) {
	return normalizeServerName(name)
}
