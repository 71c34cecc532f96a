// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}

// The named instances of testdata/config.yaml, loaded as the collector loads a component's
// configuration (the squash layout included): sub-map by ID, unmarshal into the default
// config, validate.
func TestConfigFromYAML(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	load := func(t *testing.T, id component.ID) (*Config, error) {
		sub, err := cm.Sub(id.String())
		require.NoError(t, err)
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		if err := sub.Unmarshal(cfg); err != nil {
			return nil, err
		}
		return cfg, confmap.Validate(cfg)
	}
	files := func() *Config {
		c := createDefaultConfig().(*Config)
		c.TLS.CertFile, c.TLS.KeyFile = "/certs/tls.crt", "/certs/tls.key"
		return c
	}

	valid := map[string]func() *Config{
		"": files,
		"all": func() *Config {
			c := files()
			c.TLS.CAFile = "/certs/ca.crt"
			c.TLS.IncludeSystemCACertsPool = true
			c.Server.ClientAuth = ClientAuthVerifyIfGiven
			c.TLS.ReloadInterval = 30 * time.Second
			c.TLS.CAOverlap = 2 * time.Hour
			c.TLS.MinVersion, c.TLS.MaxVersion = "1.3", "1.3"
			c.TLS.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
			c.TLS.CurvePreferences = []string{"X25519", "P256"}
			c.Expiry.ExpiryWarning = ptr(72 * time.Hour)
			c.Expiry.ExpiryStatus = true
			c.Client.ServerNameOverride = "collector.example"
			c.Client.HandshakeTimeout = 3 * time.Second
			c.Copy.ValidatedDir = "/run/certstore/otlp"
			c.Revoke.RevokeUntrustedConnections = false
			return c
		},
		"no_expiry_warning": func() *Config {
			c := files()
			c.Expiry.ExpiryWarning = ptr(time.Duration(0))
			return c
		},
		"sni": func() *Config {
			c := createDefaultConfig().(*Config)
			c.TLS.Certificates = []CertificateConfig{
				{CertFile: "/certs/a/tls.crt", KeyFile: "/certs/a/tls.key"},
				{CertFile: "/certs/b/tls.crt", KeyFile: "/certs/b/tls.key", ServerNames: []string{"otel.b.example"}},
			}
			return c
		},
	}
	for name, want := range valid {
		t.Run("valid "+name, func(t *testing.T) {
			cfg, err := load(t, component.NewIDWithName(Type, name))
			require.NoError(t, err)
			assert.Equal(t, want(), cfg)
		})
	}

	invalid := map[string]string{
		"missing_key":            "key_file is required",
		"bad_client_auth":        `client_auth "always" is not valid`,
		"status_without_warning": "expiry_status needs the expiry warning",
		"bad_min_version":        `invalid TLS min_version: unsupported TLS version: "1.4"`,
		"copy_over_source":       `validated_dir "/certs" must not be the directory of the source files`,
		"unknown_key":            "server_name", // strict unmarshalling: server_name_override, as in configtls
	}
	for name, want := range invalid {
		t.Run("invalid "+name, func(t *testing.T) {
			_, err := load(t, component.NewIDWithName(Type, name))
			require.ErrorContains(t, err, want)
		})
	}

	// The parsed TLS settings of "all".
	cfg, err := load(t, component.NewIDWithName(Type, "all"))
	require.NoError(t, err)
	assert.Equal(t, tls.VerifyClientCertIfGiven, cfg.clientAuthType())
	base, err := cfg.baseTLSConfig()
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), base.MinVersion)
	assert.Equal(t, uint16(tls.VersionTLS13), base.MaxVersion)
	assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, base.CipherSuites)
	assert.Equal(t, []tls.CurveID{tls.X25519, tls.CurveP256}, base.CurvePreferences)
	assert.NotNil(t, base.RootCAs, "include_system_ca_certs_pool: the system pool joins ca_file")
}

func TestConfigDefaults(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, time.Minute, cfg.TLS.ReloadInterval)
	assert.Zero(t, cfg.TLS.CAOverlap, "a removed CA is not trusted by default")
	assert.Equal(t, "1.2", cfg.TLS.MinVersion)
	assert.Nil(t, cfg.Expiry.ExpiryWarning, "not set: warn when a quarter of the lifetime is left")
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
		{"negative warning", func(c *Config) { c.Expiry.ExpiryWarning = ptr(-time.Second) }, []string{"expiry_warning must not be negative"}},
		{"status without warning", func(c *Config) { c.Expiry.ExpiryWarning, c.Expiry.ExpiryStatus = ptr(time.Duration(0)), true }, []string{"expiry_status needs the expiry warning"}},
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
	ok.Expiry.ExpiryWarning = ptr(time.Duration(0))
	ok.TLS.CAFile = "/ca.crt"
	ok.Server.ClientAuth = ClientAuthRequire
	ok.TLS.CurvePreferences = []string{"X25519MLKEM768", "P384"}
	ok.Copy.ValidatedDir = "/run/certstore/copy"
	require.NoError(t, ok.Validate())
}
