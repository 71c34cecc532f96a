// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Client authentication modes accepted by client_auth.
const (
	ClientAuthNone    = "none"    // no client certificate is asked for
	ClientAuthRequest = "request" // asked for; verified against ca_file when one is sent
	ClientAuthRequire = "require" // mandatory and verified against ca_file (mTLS)
)

// Config is the configuration of the certstore extension.
//
//	extensions:
//	  certstore:
//	    cert_file: /certs/tls.crt
//	    key_file: /certs/tls.key
//	    ca_file: /certs/ca.crt
//	    client_auth: require
type Config struct {
	// CertFile is the PEM certificate (chain) served by receivers and presented by exporters.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the PEM private key matching CertFile (not encrypted).
	KeyFile string `mapstructure:"key_file"`
	// CAFile is a PEM CA bundle: the client CAs on the server side, the roots on the client side.
	CAFile string `mapstructure:"ca_file"`
	// ClientAuth is none, request or require. Empty means require when ca_file is set, none otherwise.
	ClientAuth string `mapstructure:"client_auth"`
	// ReloadInterval is the safety re-read interval (file events do the fast path). 0 disables it.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	// CAOverlap is how long the previous CA bundle stays trusted after ca_file changes.
	CAOverlap time.Duration `mapstructure:"ca_overlap"`
	// MinVersion and MaxVersion are "1.0", "1.1", "1.2" or "1.3". MaxVersion empty means the newest.
	MinVersion string `mapstructure:"min_version"`
	MaxVersion string `mapstructure:"max_version"`
	// CipherSuites (TLS 1.2 and older) by IANA name, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
	CipherSuites []string `mapstructure:"cipher_suites"`
	// CurvePreferences by name: X25519, P256, P384, P521, X25519MLKEM768.
	CurvePreferences []string `mapstructure:"curve_preferences"`
	// ExpiryWarning reports a warning status when the served leaf expires within this duration. 0 disables it.
	ExpiryWarning time.Duration `mapstructure:"expiry_warning"`
	// ServerName overrides the name checked against the server certificate on the client side
	// (default: the host of the exporter endpoint).
	ServerName string `mapstructure:"server_name"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		ReloadInterval: time.Minute,
		CAOverlap:      time.Hour,
		MinVersion:     "1.2",
		ExpiryWarning:  7 * 24 * time.Hour,
	}
}

var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

var curveNames = map[string]tls.CurveID{
	"X25519":         tls.X25519,
	"P256":           tls.CurveP256,
	"P384":           tls.CurveP384,
	"P521":           tls.CurveP521,
	"X25519MLKEM768": tls.X25519MLKEM768,
	// Go's own spellings are accepted too.
	"CurveP256": tls.CurveP256,
	"CurveP384": tls.CurveP384,
	"CurveP521": tls.CurveP521,
}

// Validate checks the configuration; the files themselves are checked when the extension starts.
func (cfg *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(cfg.CertFile) == "" {
		errs = append(errs, errors.New("cert_file is required (the PEM certificate to serve, e.g. /certs/tls.crt)"))
	}
	if strings.TrimSpace(cfg.KeyFile) == "" {
		errs = append(errs, errors.New("key_file is required (the PEM private key of cert_file, e.g. /certs/tls.key)"))
	}
	switch cfg.ClientAuth {
	case "", ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if cfg.CAFile == "" {
			errs = append(errs, fmt.Errorf("client_auth %q needs ca_file (the CA bundle client certificates are verified against)", cfg.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("client_auth %q is not valid: use none, request or require", cfg.ClientAuth))
	}
	if cfg.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("reload_interval must not be negative (got %s); use 0 to disable the periodic re-read", cfg.ReloadInterval))
	} else if cfg.ReloadInterval > 0 && cfg.ReloadInterval < time.Second {
		errs = append(errs, fmt.Errorf("reload_interval %s is too short: use at least 1s (file changes are picked up at once anyway)", cfg.ReloadInterval))
	}
	if cfg.CAOverlap < 0 {
		errs = append(errs, fmt.Errorf("ca_overlap must not be negative (got %s)", cfg.CAOverlap))
	}
	if cfg.ExpiryWarning < 0 {
		errs = append(errs, fmt.Errorf("expiry_warning must not be negative (got %s); use 0 to disable the warning", cfg.ExpiryWarning))
	}
	minV, minErr := parseVersion("min_version", cfg.MinVersion)
	maxV, maxErr := parseVersion("max_version", cfg.MaxVersion)
	if minErr != nil {
		errs = append(errs, minErr)
	}
	if maxErr != nil {
		errs = append(errs, maxErr)
	}
	if minErr == nil && maxErr == nil && minV != 0 && maxV != 0 && minV > maxV {
		errs = append(errs, fmt.Errorf("min_version %q is newer than max_version %q", cfg.MinVersion, cfg.MaxVersion))
	}
	if _, err := parseCipherSuites(cfg.CipherSuites); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseCurves(cfg.CurvePreferences); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseVersion(field, v string) (uint16, error) {
	if v == "" {
		return 0, nil
	}
	if n, ok := tlsVersions[v]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("%s %q is not valid: use \"1.0\", \"1.1\", \"1.2\" or \"1.3\"", field, v)
}

func parseCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	known := map[string]uint16{}
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = cs.ID
	}
	var ids []uint16
	var bad []string
	for _, n := range names {
		id, ok := known[n]
		if !ok {
			bad = append(bad, n)
			continue
		}
		ids = append(ids, id)
	}
	if len(bad) > 0 {
		valid := make([]string, 0, len(known))
		for n := range known {
			valid = append(valid, n)
		}
		sort.Strings(valid)
		return nil, fmt.Errorf("cipher_suites: unknown or insecure suite(s) %s; valid names: %s",
			strings.Join(bad, ", "), strings.Join(valid, ", "))
	}
	return ids, nil
}

func parseCurves(names []string) ([]tls.CurveID, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var ids []tls.CurveID
	var bad []string
	for _, n := range names {
		id, ok := curveNames[n]
		if !ok {
			bad = append(bad, n)
			continue
		}
		ids = append(ids, id)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("curve_preferences: unknown curve(s) %s; valid names: X25519, P256, P384, P521, X25519MLKEM768",
			strings.Join(bad, ", "))
	}
	return ids, nil
}

// clientAuthType maps client_auth to crypto/tls.
func (cfg *Config) clientAuthType() tls.ClientAuthType {
	mode := cfg.ClientAuth
	if mode == "" {
		if cfg.CAFile != "" {
			mode = ClientAuthRequire
		} else {
			mode = ClientAuthNone
		}
	}
	switch mode {
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	default:
		return tls.NoClientCert
	}
}

// baseTLSConfig holds the settings shared by the server and client sides (validated config assumed).
func (cfg *Config) baseTLSConfig() *tls.Config {
	minV, _ := parseVersion("min_version", cfg.MinVersion)
	maxV, _ := parseVersion("max_version", cfg.MaxVersion)
	suites, _ := parseCipherSuites(cfg.CipherSuites)
	curves, _ := parseCurves(cfg.CurvePreferences)
	if minV == 0 {
		minV = tls.VersionTLS12
	}
	return &tls.Config{
		MinVersion:       minV,
		MaxVersion:       maxV,
		CipherSuites:     suites,
		CurvePreferences: curves,
	}
}
