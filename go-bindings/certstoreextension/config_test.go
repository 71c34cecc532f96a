// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
)

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}

func TestConfigUnmarshal(t *testing.T) {
	cm := confmap.NewFromStringMap(map[string]any{
		"cert_file":                    "/certs/tls.crt",
		"key_file":                     "/certs/tls.key",
		"ca_file":                      "/certs/ca.crt",
		"include_system_ca_certs_pool": true,
		"client_auth":                  "verify_if_given",
		"reload_interval":              "30s",
		"ca_overlap":                   "2h",
		"min_version":                  "1.3",
		"max_version":                  "1.3",
		"cipher_suites":                []any{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
		"curve_preferences":            []any{"X25519", "P256"},
		"expiry_warning":               "72h",
		"expiry_status":                true,
		"server_name_override":         "collector.example",
		"handshake_timeout":            "3s",
		"validated_dir":                "/run/certstore/otlp",
		"revoke_untrusted_connections": false,
	})
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cm.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "/certs/ca.crt", cfg.TLS.CAFile)
	assert.True(t, cfg.TLS.IncludeSystemCACertsPool)
	assert.Equal(t, 30*time.Second, cfg.TLS.ReloadInterval)
	assert.Equal(t, 2*time.Hour, cfg.TLS.CAOverlap)
	assert.Equal(t, 72*time.Hour, cfg.Expiry.ExpiryWarning)
	assert.True(t, cfg.Expiry.ExpiryStatus)
	assert.Equal(t, "collector.example", cfg.Client.ServerNameOverride)
	assert.Equal(t, 3*time.Second, cfg.Client.HandshakeTimeout)
	assert.Equal(t, "/run/certstore/otlp", cfg.Copy.ValidatedDir)
	assert.False(t, cfg.Revoke.RevokeUntrustedConnections)
	assert.Equal(t, tls.VerifyClientCertIfGiven, cfg.clientAuthType())
	base, err := cfg.baseTLSConfig()
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), base.MinVersion)
	assert.Equal(t, uint16(tls.VersionTLS13), base.MaxVersion)
	assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, base.CipherSuites)
	assert.Equal(t, []tls.CurveID{tls.X25519, tls.CurveP256}, base.CurvePreferences)
	assert.NotNil(t, base.RootCAs, "include_system_ca_certs_pool: the system pool joins ca_file")

	// Unknown keys are rejected by the collector's strict unmarshalling; the old server_name
	// key is one of them (server_name_override, as in configtls).
	for _, key := range []string{"cert_fil", "server_name"} {
		bad := confmap.NewFromStringMap(map[string]any{key: "x"})
		require.Error(t, bad.Unmarshal(createDefaultConfig()), key)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, time.Minute, cfg.TLS.ReloadInterval)
	assert.Zero(t, cfg.TLS.CAOverlap, "a removed CA is not trusted by default")
	assert.Equal(t, "1.2", cfg.TLS.MinVersion)
	assert.Equal(t, 7*24*time.Hour, cfg.Expiry.ExpiryWarning)
	assert.False(t, cfg.Expiry.ExpiryStatus, "expiry changes the status only when asked")
	assert.True(t, cfg.Revoke.RevokeUntrustedConnections, "live connections of peers that stop verifying are closed by default")
	assert.Equal(t, 10*time.Second, cfg.Client.HandshakeTimeout)
	assert.Empty(t, cfg.Copy.ValidatedDir)
	assert.Equal(t, tls.NoClientCert, cfg.clientAuthType())
	cfg.TLS.CAFile = "/ca.crt"
	assert.Equal(t, tls.RequireAndVerifyClientCert, cfg.clientAuthType(), "ca_file without client_auth means mTLS")
	for mode, want := range map[string]tls.ClientAuthType{
		ClientAuthNone:          tls.NoClientCert,
		ClientAuthRequest:       tls.RequestClientCert,
		ClientAuthRequire:       tls.RequireAndVerifyClientCert,
		ClientAuthVerifyIfGiven: tls.VerifyClientCertIfGiven,
	} {
		cfg.Server.ClientAuth = mode
		assert.Equal(t, want, cfg.clientAuthType(), mode)
	}
	base, err := cfg.baseTLSConfig()
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), base.MinVersion)
	assert.Nil(t, base.RootCAs)
	assert.NotEmpty(t, base.CurvePreferences, "configtls lists the curves allowed in this build (FIPS drops X25519)")
}

func TestConfigValidate(t *testing.T) {
	valid := func() *Config {
		c := createDefaultConfig().(*Config)
		c.TLS.CertFile, c.TLS.KeyFile = "/certs/tls.crt", "/certs/tls.key"
		return c
	}
	require.NoError(t, valid().Validate())

	tests := []struct {
		name   string
		modify func(*Config)
		errs   []string
	}{
		{"missing files", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = "", " " }, []string{"cert_file is required", "key_file is required"}},
		{"bad client_auth", func(c *Config) { c.Server.ClientAuth = "always" }, []string{`client_auth "always" is not valid: use none, request, require or verify_if_given`}},
		{"require without ca", func(c *Config) { c.Server.ClientAuth = ClientAuthRequire }, []string{`client_auth "require" needs ca_file`}},
		{"verify_if_given without ca", func(c *Config) { c.Server.ClientAuth = ClientAuthVerifyIfGiven }, []string{`client_auth "verify_if_given" needs ca_file`}},
		{"negative reload", func(c *Config) { c.TLS.ReloadInterval = -time.Second }, []string{"reload_interval must not be negative"}},
		{"tiny reload", func(c *Config) { c.TLS.ReloadInterval = time.Millisecond }, []string{"reload_interval 1ms is too short"}},
		{"negative overlap", func(c *Config) { c.TLS.CAOverlap = -time.Second }, []string{"ca_overlap must not be negative"}},
		{"negative warning", func(c *Config) { c.Expiry.ExpiryWarning = -time.Second }, []string{"expiry_warning must not be negative"}},
		{"status without warning", func(c *Config) { c.Expiry.ExpiryWarning, c.Expiry.ExpiryStatus = 0, true }, []string{"expiry_status needs expiry_warning"}},
		{"no handshake timeout", func(c *Config) { c.Client.HandshakeTimeout = 0 }, []string{"handshake_timeout must be positive"}},
		{"relative copy", func(c *Config) { c.Copy.ValidatedDir = "copy" }, []string{`validated_dir "copy" must be an absolute path`}},
		{"copy over the source", func(c *Config) { c.Copy.ValidatedDir = "/certs/" }, []string{`validated_dir "/certs/" must not be the directory of the source files`}},
		// Versions, suites and curves are parsed by configtls: its messages.
		{"bad min", func(c *Config) { c.TLS.MinVersion = "1.4" }, []string{`invalid TLS min_version: unsupported TLS version: "1.4"`}},
		{"bad max", func(c *Config) { c.TLS.MaxVersion = "TLS13" }, []string{`invalid TLS max_version: unsupported TLS version: "TLS13"`}},
		{"min above max", func(c *Config) { c.TLS.MinVersion, c.TLS.MaxVersion = "1.3", "1.2" }, []string{"min_version cannot be greater than max_version"}},
		{"bad suite", func(c *Config) { c.TLS.CipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA", "NOPE"} }, []string{`invalid TLS cipher suite: "TLS_RSA_WITH_RC4_128_SHA"`, `invalid TLS cipher suite: "NOPE"`}},
		{"bad curve", func(c *Config) { c.TLS.CurvePreferences = []string{"P224"} }, []string{"invalid curve type: P224"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(c)
			err := c.Validate()
			require.Error(t, err)
			for _, want := range tt.errs {
				assert.Contains(t, err.Error(), want)
			}
		})
	}

	ok := valid()
	ok.TLS.ReloadInterval = 0
	ok.Expiry.ExpiryWarning = 0
	ok.TLS.CAFile = "/ca.crt"
	ok.Server.ClientAuth = ClientAuthRequire
	ok.TLS.CurvePreferences = []string{"X25519MLKEM768", "P384"}
	ok.Copy.ValidatedDir = "/run/certstore/copy"
	require.NoError(t, ok.Validate())
}
