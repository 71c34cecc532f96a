// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// Client authentication modes accepted by client_auth, with the meaning of Go's
// tls.ClientAuthType (the names of the upstream proposal for configtls).
const (
	ClientAuthNone          = "none"            // tls.NoClientCert: no client certificate is asked for
	ClientAuthRequest       = "request"         // tls.RequestClientCert: asked for, never verified
	ClientAuthRequire       = "require"         // tls.RequireAndVerifyClientCert: mandatory and verified (mTLS)
	ClientAuthVerifyIfGiven = "verify_if_given" // tls.VerifyClientCertIfGiven: optional, verified when sent
)

// Config is the configuration of the certstore extension. Like configtls.ServerConfig and
// ClientConfig, the settings shared by both sides and the side-specific ones sit at one level
// of the YAML; in Go they are grouped.
//
//	extensions:
//	  certstore:
//	    cert_file: /certs/tls.crt
//	    key_file: /certs/tls.key
//	    ca_file: /certs/ca.crt
//	    client_auth: require
//
// Several certificates on one listener, chosen by the server name the client sends (SNI):
//
//	extensions:
//	  certstore:
//	    certificates:
//	      - {cert_file: /certs/a/tls.crt, key_file: /certs/a/tls.key}  # default: first
//	      - {cert_file: /certs/b/tls.crt, key_file: /certs/b/tls.key, server_names: [otel.b.example]}
type Config struct {
	TLS    TLSConfig           `mapstructure:",squash"`
	Server ServerSideConfig    `mapstructure:",squash"`
	Client ClientSideConfig    `mapstructure:",squash"`
	Expiry ExpiryConfig        `mapstructure:",squash"`
	Copy   ValidatedCopyConfig `mapstructure:",squash"`
	Revoke RevokeConfig        `mapstructure:",squash"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// TLSConfig holds the files and the settings shared by the server and the client side. The
// names, parsing and FIPS behaviour are those of configtls.Config.
type TLSConfig struct {
	// CertFile is the PEM certificate (chain) served by receivers and presented by exporters.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the PEM private key matching CertFile (not encrypted).
	KeyFile string `mapstructure:"key_file"`
	// Certificates replaces CertFile/KeyFile with several certificates: servers pick one by
	// the client's server name (SNI), the first when none matches or no name is sent; clients
	// present the first.
	Certificates []CertificateConfig `mapstructure:"certificates"`
	// CAFile is a PEM CA bundle: the client CAs on the server side, the roots on the client side.
	CAFile string `mapstructure:"ca_file"`
	// IncludeSystemCACertsPool adds the system roots to ca_file on the client side.
	IncludeSystemCACertsPool bool `mapstructure:"include_system_ca_certs_pool"`
	// MinVersion and MaxVersion are "1.0", "1.1", "1.2" or "1.3" (default 1.2 and the newest).
	MinVersion string `mapstructure:"min_version"`
	MaxVersion string `mapstructure:"max_version"`
	// CipherSuites (TLS 1.2 and older) by IANA name, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
	CipherSuites []string `mapstructure:"cipher_suites"`
	// CurvePreferences by name: P256, P384, P521, and without FIPS X25519, X25519MLKEM768.
	CurvePreferences []string `mapstructure:"curve_preferences"`
	// ReloadInterval is the safety re-read interval (file events do the fast path). 0 disables it.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	// CAOverlap is how long the previous CA bundle stays trusted after ca_file changes. 0 (the
	// default) drops it at once.
	CAOverlap time.Duration `mapstructure:"ca_overlap"`
}

// CertificateConfig is one entry of certificates.
type CertificateConfig struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerNames are the server names this certificate is served for: "otel.example.com" or
	// "*.example.com" (one label), case-insensitive. Empty: the DNS names of the certificate
	// served at the moment, taken again after every rotation.
	ServerNames []string `mapstructure:"server_names"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ServerSideConfig holds what only receivers use.
type ServerSideConfig struct {
	// ClientAuth is none, request, require or verify_if_given. Empty means require when
	// ca_file is set, none otherwise.
	ClientAuth string `mapstructure:"client_auth"`
}

// ClientSideConfig holds what only exporters use.
type ClientSideConfig struct {
	// ServerNameOverride is the name checked against the server certificate (and sent as SNI)
	// instead of the host of the exporter's endpoint.
	ServerNameOverride string `mapstructure:"server_name_override"`
	// HandshakeTimeout bounds the TLS handshake of a connection an HTTP exporter dials.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout"`
}

// RevokeConfig says what happens to live connections whose peer stops being trusted.
type RevokeConfig struct {
	// RevokeUntrustedConnections closes a live connection once its peer's chain no longer
	// verifies: its CA left ca_file (after ca_overlap) or its certificate reached notAfter.
	// Receivers (gRPC middleware) with client_auth require or verify_if_given; exporters
	// (gRPC and HTTP middleware) with ca_file. On by default.
	RevokeUntrustedConnections bool `mapstructure:"revoke_untrusted_connections"`
}

// ExpiryConfig says when an approaching expiry is logged, and whether it also changes the
// component status.
type ExpiryConfig struct {
	// ExpiryWarning logs a warning while the served leaf or a CA expires within this duration.
	// Not set (the default): when less than a quarter of the certificate's lifetime is left,
	// 14 days at most (see defaultWarning). 0 disables the warning. The time left is always a
	// metric.
	ExpiryWarning *time.Duration `mapstructure:"expiry_warning"`
	// ExpiryStatus also reports a RecoverableError status while the warning holds. Off by
	// default: a health check could restart a pod whose certificate is simply not renewed yet.
	ExpiryStatus bool `mapstructure:"expiry_status"`
}

// maxDefaultWarning caps the default warning: a 10-year CA is not reported for years.
const maxDefaultWarning = 14 * 24 * time.Hour

// warnsWithin is how long before notAfter a certificate valid from notBefore is reported:
// expiry_warning, or else defaultWarning.
func (x ExpiryConfig) warnsWithin(notBefore, notAfter time.Time) time.Duration {
	if x.ExpiryWarning != nil {
		return *x.ExpiryWarning
	}
	return defaultWarning(notAfter.Sub(notBefore))
}

// defaultWarning is relative to the lifetime, so one default fits 1-hour and 90-day
// certificates: a quarter of it (14 days at most). Not a third: cert-manager renews when a
// third is left, and the new Secret takes up to a minute or two to reach the pod, so a third
// would warn at every normal renewal. A quarter says the renewal is late.
func defaultWarning(lifetime time.Duration) time.Duration {
	return min(lifetime/4, maxDefaultWarning)
}

// describe says in words when a warning is given, for logs and the status.
func (x ExpiryConfig) describe() string {
	if x.ExpiryWarning != nil {
		return "within expiry_warning " + x.ExpiryWarning.String()
	}
	return "with less than a quarter of its lifetime (at most 14 days) left (expiry_warning not set)"
}

// ValidatedCopyConfig is the copy of the last validated generation for components that read
// certificate files themselves (confighttp servers, configtls used directly).
type ValidatedCopyConfig struct {
	// ValidatedDir is a directory the extension owns: it writes tls.crt, tls.key and ca.crt
	// there with the kubelet's atomic layout, after validation only. It must not exist, be
	// empty (an emptyDir mount point) or have been written by certstore before; one instance
	// holds it at a time (see copyWriter). Empty: no copy.
	ValidatedDir string `mapstructure:"validated_dir"`
}

var _ component.Config = (*Config)(nil)

// maxServerNames bounds the per-server-name client config cache (a load-balancing exporter
// may dial a new name per backend, forever).
const maxServerNames = 256

func createDefaultConfig() component.Config {
	return &Config{
		TLS: TLSConfig{
			ReloadInterval: time.Minute,
			MinVersion:     "1.2",
		},
		Client: ClientSideConfig{HandshakeTimeout: 10 * time.Second},
		Revoke: RevokeConfig{RevokeUntrustedConnections: true},
	}
}

// configtlsConfig is the configtls view of the shared settings, so that versions, cipher
// suites and curves are parsed by configtls itself (same names, same errors, same FIPS build
// behaviour). It holds no file: certstore reads and validates the files.
func (t *TLSConfig) configtlsConfig() configtls.Config {
	return configtls.Config{
		MinVersion:       t.MinVersion,
		MaxVersion:       t.MaxVersion,
		CipherSuites:     t.CipherSuites,
		CurvePreferences: t.CurvePreferences,
	}
}

// Validate checks the configuration; the files themselves are checked when the extension starts.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.TLS.Certificates != nil {
		errs = append(errs, validateCertificates(cfg.TLS)...)
	} else {
		if strings.TrimSpace(cfg.TLS.CertFile) == "" {
			errs = append(errs, errors.New("cert_file is required (the PEM certificate to serve, e.g. /certs/tls.crt), or certificates (a list of cert_file, key_file and server_names)"))
		}
		if strings.TrimSpace(cfg.TLS.KeyFile) == "" {
			errs = append(errs, errors.New("key_file is required (the PEM private key of cert_file, e.g. /certs/tls.key)"))
		}
	}
	switch cfg.Server.ClientAuth {
	case "", ClientAuthNone, ClientAuthRequest:
	case ClientAuthRequire, ClientAuthVerifyIfGiven:
		if cfg.TLS.CAFile == "" {
			errs = append(errs, fmt.Errorf("client_auth %q needs ca_file (the CA bundle client certificates are verified against)", cfg.Server.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("client_auth %q is not valid: use none, request, require or verify_if_given", cfg.Server.ClientAuth))
	}
	if cfg.TLS.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("reload_interval must not be negative (got %s); use 0 to disable the periodic re-read", cfg.TLS.ReloadInterval))
	} else if cfg.TLS.ReloadInterval > 0 && cfg.TLS.ReloadInterval < time.Second {
		errs = append(errs, fmt.Errorf("reload_interval %s is too short: use at least 1s (file changes are picked up at once anyway)", cfg.TLS.ReloadInterval))
	}
	if cfg.TLS.CAOverlap < 0 {
		errs = append(errs, fmt.Errorf("ca_overlap must not be negative (got %s)", cfg.TLS.CAOverlap))
	}
	if cfg.Client.HandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handshake_timeout must be positive (got %s)", cfg.Client.HandshakeTimeout))
	}
	if w := cfg.Expiry.ExpiryWarning; w != nil && *w < 0 {
		errs = append(errs, fmt.Errorf("expiry_warning must not be negative (got %s); use 0 to disable the warning", *w))
	}
	if w := cfg.Expiry.ExpiryWarning; cfg.Expiry.ExpiryStatus && w != nil && *w == 0 {
		errs = append(errs, errors.New("expiry_status needs the expiry warning: remove expiry_warning: 0 (a quarter of the lifetime) or set a duration"))
	}
	if d := cfg.Copy.ValidatedDir; d != "" {
		errs = append(errs, validateCopyDir(d, cfg.TLS))
	}
	ct := cfg.TLS.configtlsConfig()
	if err := ct.Validate(); err != nil {
		errs = append(errs, err)
	} else if _, err := (configtls.ClientConfig{Config: ct}).LoadTLSConfig(context.Background()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateCertificates checks the certificates list: each entry has both files, and explicit
// server names are names ServerTLSConfigSNI accepts, each given for one entry only.
func validateCertificates(t TLSConfig) []error {
	var errs []error
	if t.CertFile != "" || t.KeyFile != "" {
		errs = append(errs, errors.New("cert_file/key_file and certificates are two forms of the same setting: "+
			"use certificates alone (its first entry is the default certificate) or cert_file and key_file alone"))
	}
	if len(t.Certificates) == 0 {
		errs = append(errs, errors.New("certificates is empty: list at least one {cert_file, key_file}"))
	}
	owner := map[string]int{} // normalized server name -> entry
	for i, c := range t.Certificates {
		cert, key := strings.TrimSpace(c.CertFile), strings.TrimSpace(c.KeyFile)
		if cert == "" && key == "" && len(c.ServerNames) == 0 {
			errs = append(errs, fmt.Errorf("certificates[%d] is empty: cert_file and key_file are required", i))
			continue
		}
		if cert == "" {
			errs = append(errs, fmt.Errorf("certificates[%d]: cert_file is required", i))
		}
		if key == "" && cert == "" {
			errs = append(errs, fmt.Errorf("certificates[%d]: key_file is required", i))
		} else if key == "" {
			errs = append(errs, fmt.Errorf("certificates[%d] (%s): key_file is required", i, c.CertFile))
		}
		for _, n := range c.ServerNames {
			norm, err := certstore.NormalizeServerName(n)
			if err != nil {
				errs = append(errs, fmt.Errorf("certificates[%d] (%s): server_names: %w", i, c.CertFile, err))
				continue
			}
			if j, dup := owner[norm]; dup && j != i {
				errs = append(errs, fmt.Errorf("certificates[%d] (%s): server name %q is also given for certificates[%d] (%s)",
					i, c.CertFile, n, j, t.Certificates[j].CertFile))
				continue
			}
			owner[norm] = i
		}
	}
	return errs
}

// certificates returns the configured certificates, the default first: the certificates list,
// or the single cert_file/key_file.
func (t *TLSConfig) certificates() []CertificateConfig {
	if t.Certificates != nil {
		return t.Certificates
	}
	return []CertificateConfig{{CertFile: t.CertFile, KeyFile: t.KeyFile}}
}

// validateCopyDir refuses a validated_dir that would overwrite or hide the source files.
func validateCopyDir(dir string, t TLSConfig) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("validated_dir %q must be an absolute path", dir)
	}
	clean := filepath.Clean(dir)
	files := []string{t.CAFile}
	for _, c := range t.certificates() {
		files = append(files, c.CertFile, c.KeyFile)
	}
	for _, f := range files {
		if f != "" && filepath.Dir(filepath.Clean(f)) == clean {
			return fmt.Errorf("validated_dir %q must not be the directory of the source files (%s)", dir, f)
		}
	}
	return nil
}

// clientAuthType maps client_auth to crypto/tls.
func (cfg *Config) clientAuthType() tls.ClientAuthType {
	mode := cfg.Server.ClientAuth
	if mode == "" {
		if cfg.TLS.CAFile != "" {
			mode = ClientAuthRequire
		} else {
			mode = ClientAuthNone
		}
	}
	switch mode {
	case ClientAuthRequest:
		return tls.RequestClientCert
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	case ClientAuthVerifyIfGiven:
		return tls.VerifyClientCertIfGiven
	default:
		return tls.NoClientCert
	}
}

// baseTLSConfig holds the settings shared by the server and client sides, parsed by configtls
// (validated config assumed). RootCAs is the system pool with include_system_ca_certs_pool.
func (cfg *Config) baseTLSConfig() (*tls.Config, error) {
	parsed, err := (configtls.ClientConfig{Config: cfg.TLS.configtlsConfig()}).LoadTLSConfig(context.Background())
	if err != nil {
		return nil, err
	}
	base := &tls.Config{
		MinVersion:       parsed.MinVersion,
		MaxVersion:       parsed.MaxVersion,
		CipherSuites:     parsed.CipherSuites,
		CurvePreferences: parsed.CurvePreferences,
	}
	if cfg.TLS.IncludeSystemCACertsPool {
		if base.RootCAs, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("include_system_ca_certs_pool: %w", err)
		}
	}
	return base, nil
}
