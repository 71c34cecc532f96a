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
		"cert_file":         "/certs/tls.crt",
		"key_file":          "/certs/tls.key",
		"ca_file":           "/certs/ca.crt",
		"client_auth":       "request",
		"reload_interval":   "30s",
		"ca_overlap":        "2h",
		"min_version":       "1.3",
		"max_version":       "1.3",
		"cipher_suites":     []any{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
		"curve_preferences": []any{"X25519", "P256"},
		"expiry_warning":    "72h",
		"server_name":       "collector.example",
	})
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cm.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "/certs/ca.crt", cfg.CAFile)
	assert.Equal(t, 30*time.Second, cfg.ReloadInterval)
	assert.Equal(t, 2*time.Hour, cfg.CAOverlap)
	assert.Equal(t, 72*time.Hour, cfg.ExpiryWarning)
	assert.Equal(t, tls.VerifyClientCertIfGiven, cfg.clientAuthType())
	base := cfg.baseTLSConfig()
	assert.Equal(t, uint16(tls.VersionTLS13), base.MinVersion)
	assert.Equal(t, uint16(tls.VersionTLS13), base.MaxVersion)
	assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, base.CipherSuites)
	assert.Equal(t, []tls.CurveID{tls.X25519, tls.CurveP256}, base.CurvePreferences)

	// Unknown keys are rejected by the collector's strict unmarshalling.
	bad := confmap.NewFromStringMap(map[string]any{"cert_fil": "x"})
	require.Error(t, bad.Unmarshal(createDefaultConfig()))
}

func TestConfigDefaults(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, time.Minute, cfg.ReloadInterval)
	assert.Equal(t, time.Hour, cfg.CAOverlap)
	assert.Equal(t, "1.2", cfg.MinVersion)
	assert.Equal(t, 7*24*time.Hour, cfg.ExpiryWarning)
	assert.Equal(t, tls.NoClientCert, cfg.clientAuthType())
	cfg.CAFile = "/ca.crt"
	assert.Equal(t, tls.RequireAndVerifyClientCert, cfg.clientAuthType(), "ca_file without client_auth means mTLS")
	cfg.ClientAuth = ClientAuthNone
	assert.Equal(t, tls.NoClientCert, cfg.clientAuthType())
}

func TestConfigValidate(t *testing.T) {
	valid := func() *Config {
		c := createDefaultConfig().(*Config)
		c.CertFile, c.KeyFile = "/certs/tls.crt", "/certs/tls.key"
		return c
	}
	require.NoError(t, valid().Validate())

	tests := []struct {
		name   string
		modify func(*Config)
		errs   []string
	}{
		{"missing files", func(c *Config) { c.CertFile, c.KeyFile = "", " " }, []string{"cert_file is required", "key_file is required"}},
		{"bad client_auth", func(c *Config) { c.ClientAuth = "always" }, []string{`client_auth "always" is not valid: use none, request or require`}},
		{"require without ca", func(c *Config) { c.ClientAuth = ClientAuthRequire }, []string{`client_auth "require" needs ca_file`}},
		{"request without ca", func(c *Config) { c.ClientAuth = ClientAuthRequest }, []string{`client_auth "request" needs ca_file`}},
		{"negative reload", func(c *Config) { c.ReloadInterval = -time.Second }, []string{"reload_interval must not be negative"}},
		{"tiny reload", func(c *Config) { c.ReloadInterval = time.Millisecond }, []string{"reload_interval 1ms is too short"}},
		{"negative overlap", func(c *Config) { c.CAOverlap = -time.Second }, []string{"ca_overlap must not be negative"}},
		{"negative warning", func(c *Config) { c.ExpiryWarning = -time.Second }, []string{"expiry_warning must not be negative"}},
		{"bad min", func(c *Config) { c.MinVersion = "1.4" }, []string{`min_version "1.4" is not valid`}},
		{"bad max", func(c *Config) { c.MaxVersion = "TLS13" }, []string{`max_version "TLS13" is not valid`}},
		{"min above max", func(c *Config) { c.MinVersion, c.MaxVersion = "1.3", "1.2" }, []string{`min_version "1.3" is newer than max_version "1.2"`}},
		{"bad suite", func(c *Config) { c.CipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA", "NOPE"} }, []string{"cipher_suites: unknown or insecure suite(s) TLS_RSA_WITH_RC4_128_SHA, NOPE"}},
		{"bad curve", func(c *Config) { c.CurvePreferences = []string{"P224"} }, []string{"curve_preferences: unknown curve(s) P224"}},
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
	ok.ReloadInterval = 0
	ok.ExpiryWarning = 0
	ok.CAFile = "/ca.crt"
	ok.ClientAuth = ClientAuthRequire
	ok.CurvePreferences = []string{"X25519MLKEM768", "CurveP384"}
	require.NoError(t, ok.Validate())
}
