// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/otel/attribute"
)

// issueNames is issue with the given DNS SANs (and no IP SAN).
func (ca *testCA) issueNames(t *testing.T, cn string, dnsNames ...string) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial = nextSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), serial
}

func TestCertificatesUnmarshal(t *testing.T) {
	cm := confmap.NewFromStringMap(map[string]any{
		"certificates": []any{
			map[string]any{"cert_file": "/certs/a/tls.crt", "key_file": "/certs/a/tls.key"},
			map[string]any{"cert_file": "/certs/b/tls.crt", "key_file": "/certs/b/tls.key", "server_names": []any{"otel.b.example", "*.B.example."}},
		},
		"ca_file": "/certs/ca.crt",
	})
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cm.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	certs := cfg.TLS.certificates()
	require.Len(t, certs, 2)
	assert.Equal(t, "/certs/a/tls.crt", certs[0].CertFile)
	assert.Equal(t, "/certs/a/tls.key", certs[0].KeyFile)
	assert.Empty(t, certs[0].ServerNames, "names from the SANs")
	assert.Equal(t, "/certs/b/tls.key", certs[1].KeyFile)
	assert.Equal(t, []string{"otel.b.example", "*.B.example."}, certs[1].ServerNames)

	// The single form is a list of one.
	single := createDefaultConfig().(*Config)
	single.TLS.CertFile, single.TLS.KeyFile = "/c/tls.crt", "/c/tls.key"
	require.NoError(t, single.Validate())
	assert.Equal(t, []CertificateConfig{{CertFile: "/c/tls.crt", KeyFile: "/c/tls.key"}}, single.TLS.certificates())

	// An unknown key inside an entry is refused like any other.
	bad := confmap.NewFromStringMap(map[string]any{"certificates": []any{map[string]any{"cert_file": "/a", "server_name": "x"}}})
	require.Error(t, bad.Unmarshal(createDefaultConfig()))
}

func TestCertificatesValidate(t *testing.T) {
	entry := func(cert, key string, names ...string) CertificateConfig {
		return CertificateConfig{CertFile: cert, KeyFile: key, ServerNames: names}
	}
	tests := []struct {
		name  string
		certs []CertificateConfig
		both  bool // also cert_file/key_file
		errs  []string
	}{
		{"both forms", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key")}, true,
			[]string{"cert_file/key_file and certificates are two forms of the same setting"}},
		{"empty list", []CertificateConfig{}, false, []string{"certificates is empty"}},
		{"empty entry", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), {}}, false,
			[]string{"certificates[1] is empty: cert_file and key_file are required"}},
		{"missing key", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), entry("/b/tls.crt", " ")}, false,
			[]string{"certificates[1] (/b/tls.crt): key_file is required"}},
		{"missing cert", []CertificateConfig{entry("", "/a/tls.key")}, false,
			[]string{"certificates[0]: cert_file is required"}},
		{"names only", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), entry("", "", "otel.example")}, false,
			[]string{"certificates[1]: cert_file is required", "certificates[1]: key_file is required"}},
		{"double wildcard", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), entry("/b/tls.crt", "/b/tls.key", "ok.example", "*.*.x")}, false,
			[]string{`certificates[1] (/b/tls.crt): server_names: server name "*.*.x" is not a DNS name`}},
		{"IP address", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key", "127.0.0.1")}, false,
			[]string{`certificates[0] (/a/tls.crt): server_names: server name "127.0.0.1" is an IP address`}},
		{"IPv6 address", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), entry("/b/tls.crt", "/b/tls.key", "::1")}, false,
			[]string{`certificates[1] (/b/tls.crt): server_names: server name "::1" is an IP address`}},
		{"empty name", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key"), entry("/b/tls.crt", "/b/tls.key", "")}, false,
			[]string{"certificates[1] (/b/tls.crt): server_names: empty server name"}},
		{"name for two", []CertificateConfig{entry("/a/tls.crt", "/a/tls.key", "otel.example"), entry("/b/tls.crt", "/b/tls.key", "OTEL.example.")}, false,
			[]string{`certificates[1] (/b/tls.crt): server name "OTEL.example." is also given for certificates[0] (/a/tls.crt)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := createDefaultConfig().(*Config)
			c.TLS.Certificates = tt.certs
			if tt.both {
				c.TLS.CertFile, c.TLS.KeyFile = "/x/tls.crt", "/x/tls.key"
			}
			err := c.Validate()
			require.Error(t, err)
			for _, want := range tt.errs {
				assert.Contains(t, err.Error(), want)
			}
		})
	}

	ok := createDefaultConfig().(*Config)
	ok.TLS.Certificates = []CertificateConfig{
		entry("/a/tls.crt", "/a/tls.key"),
		entry("/b/tls.crt", "/b/tls.key", "otel.b.example", "Otel.B.Example.", "*.b.example"), // the same name twice for one entry is fine
		entry("/c/tls.crt", "/c/tls.key"),
	}
	ok.Copy.ValidatedDir = "/run/copy"
	require.NoError(t, ok.Validate())
	ok.Copy.ValidatedDir = "/c"
	require.ErrorContains(t, ok.Validate(), `validated_dir "/c" must not be the directory of the source files (/c/tls.crt)`)
}

// sniSetup is three certificates: a (default, SAN a.example), b (SAN b.example, served for
// otel.b.example only) and c (names from its SAN *.c.example).
type sniSetup struct {
	ca         *testCA
	a, b, c    certDir
	sa, sb, sc *big.Int
}

func newSNISetup(t *testing.T) *sniSetup {
	s := &sniSetup{ca: newTestCA(t, "sni CA")}
	var ca, ka, cb, kb, cc, kc []byte
	ca, ka, s.sa = s.ca.issueNames(t, "a", "a.example")
	cb, kb, s.sb = s.ca.issueNames(t, "b", "b.example")
	cc, kc, s.sc = s.ca.issueNames(t, "c", "*.c.example")
	s.a, s.b, s.c = newCertDir(t, ca, ka, s.ca.pem), newCertDir(t, cb, kb, nil), newCertDir(t, cc, kc, nil)
	return s
}

func (s *sniSetup) config() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.TLS.Certificates = []CertificateConfig{
		{CertFile: s.a.cert(), KeyFile: s.a.key()},
		{CertFile: s.b.cert(), KeyFile: s.b.key(), ServerNames: []string{"otel.b.example"}},
		{CertFile: s.c.cert(), KeyFile: s.c.key()},
	}
	return cfg
}

// handshakeSerial does a full handshake with the given server name ("" sends none) and
// returns the serial of the leaf served.
func handshakeSerial(addr, serverName string) (*big.Int, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // the test compares the serial served; names are the server's choice here
		NextProtos:         []string{"h2"},
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// Every server config of the extension (the TLSConfigProvider's and the gRPC middleware's)
// picks the certificate by SNI, each rotates on its own, and the names of a certificate without
// server_names follow its SANs across a rotation.
func TestSNIServerConfigs(t *testing.T) {
	s := newSNISetup(t)
	ext := startExtension(t, "sni", s.config(), newStatusHost(), nil)
	require.Len(t, ext.stores, 3)

	creds, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, creds)
	servers := map[string]string{
		"TLSConfigProvider": tlsServer(t, ext.ServerTLSConfig()),
		"gRPC middleware":   tlsServer(t, ext.grpcServer),
	}
	expect := func(want map[string]*big.Int) {
		t.Helper()
		for srv, addr := range servers {
			for name, serial := range want {
				got, err := handshakeSerial(addr, name)
				require.NoError(t, err, "%s, server name %q", srv, name)
				assert.Equal(t, serial.String(), got.String(), "%s, server name %q", srv, name)
			}
		}
	}
	expect(map[string]*big.Int{
		"":               s.sa, // no SNI: the default
		"a.example":      s.sa,
		"otel.b.example": s.sb,
		"OTEL.B.EXAMPLE": s.sb,
		"b.example":      s.sa, // b's explicit server_names replace its SANs
		"x.c.example":    s.sc, // wildcard SAN
		"c.example":      s.sa, // a wildcard matches one label, not none
		"y.x.c.example":  s.sa, // nor two
		"unknown.test":   s.sa,
	})

	// Rotating b changes only b; c's new SANs move its names.
	cb, kb, sb2 := s.ca.issueNames(t, "b2", "b.example")
	s.b.write(t, cb, kb, nil)
	cc, kc, sc2 := s.ca.issueNames(t, "c2", "*.d.example")
	s.c.write(t, cc, kc, nil)
	waitFor(t, "b and c rotated", func() bool {
		gb, err1 := handshakeSerial(servers["gRPC middleware"], "otel.b.example")
		gc, err2 := handshakeSerial(servers["gRPC middleware"], "x.d.example")
		return err1 == nil && err2 == nil && gb.Cmp(sb2) == 0 && gc.Cmp(sc2) == 0
	})
	expect(map[string]*big.Int{
		"":               s.sa,
		"otel.b.example": sb2,
		"x.d.example":    sc2,
		"x.c.example":    s.sa, // no longer c's name
	})
}

// The client side presents the default (first) certificate, whatever the server name.
func TestSNIClientPresentsDefault(t *testing.T) {
	s := newSNISetup(t)
	cfg := s.config()
	cfg.TLS.CAFile = s.a.ca()
	ext := startExtension(t, "sniclient", cfg, newStatusHost(), nil)

	got := make(chan *big.Int, 4)
	srvCert, srvKey, _ := s.ca.issueNames(t, "server", "otel.b.example", "x.c.example")
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	require.NoError(t, err)
	addr := tlsServer(t, &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			got <- cs.PeerCertificates[0].SerialNumber
			return nil
		},
	})
	for _, name := range []string{"otel.b.example", "x.c.example"} {
		conn, err := tls.Dial("tcp", addr, ext.ClientTLSConfigForServer(name))
		require.NoError(t, err, name)
		_ = conn.Close()
		assert.Equal(t, s.sa.String(), (<-got).String(), "client certificate sent to %s", name)
	}
}

// A refused rotation of any certificate is reported with that certificate's file; the others
// keep serving.
func TestSNIStatusPerCertificate(t *testing.T) {
	s := newSNISetup(t)
	host := newStatusHost()
	ext := startExtension(t, "snistatus", s.config(), host, nil)
	addr := tlsServer(t, ext.ServerTLSConfig())

	cb, _, _ := s.ca.issueNames(t, "b-bad", "b.example")
	_, kOther, _ := s.ca.issueNames(t, "other", "other.example")
	s.b.write(t, cb, kOther, nil)
	waitFor(t, "recoverable error after b's bad rotation", func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError
	})
	assert.Contains(t, host.last().Err().Error(), s.b.dir, "the error names b's files")
	for name, want := range map[string]*big.Int{"otel.b.example": s.sb, "x.c.example": s.sc, "": s.sa} {
		got, err := handshakeSerial(addr, name)
		require.NoError(t, err)
		assert.Equal(t, want.String(), got.String(), name)
	}
}

// A certificate of the list that cannot be loaded fails Start naming its entry, and the
// certificates already opened are released.
func TestSNIStartFailsNamingEntry(t *testing.T) {
	s := newSNISetup(t)
	cfg := s.config()
	cfg.TLS.Certificates[2].KeyFile = s.a.key() // a's key with c's certificate
	require.NoError(t, cfg.Validate())
	set := extensiontest.NewNopSettings(Type)
	set.ID = component.MustNewIDWithName("certstore", "snifail")
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), newStatusHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("certstore %s: certificates[2]: ", set.ID))
	assert.Contains(t, err.Error(), s.c.dir)
	require.NoError(t, ext.Shutdown(context.Background()))
}

// ca_file and client_auth apply to every certificate of the list: each name requires a client
// certificate from the CA.
func TestSNIClientCAsForAll(t *testing.T) {
	s := newSNISetup(t)
	cfg := s.config()
	cfg.TLS.CAFile = s.a.ca()
	cfg.Server.ClientAuth = ClientAuthRequire
	ext := startExtension(t, "snimtls", cfg, newStatusHost(), nil)
	addr := tlsServer(t, ext.ServerTLSConfig())
	cc, ck, _ := s.ca.issueNames(t, "client")
	clientCert, err := tls.X509KeyPair(cc, ck)
	require.NoError(t, err)
	foreign := newTestCA(t, "foreign CA")
	fc, fk, _ := foreign.issueNames(t, "foreign client")
	foreignCert, err := tls.X509KeyPair(fc, fk)
	require.NoError(t, err)

	// accepted reports whether the server completed the handshake with this client: it closes
	// an accepted connection (EOF); a refusal arrives as an alert (TLS 1.3: on the first read).
	accepted := func(name string, certs []tls.Certificate) bool {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true, Certificates: certs})
		if err != nil {
			return false
		}
		defer conn.Close()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = conn.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	for _, name := range []string{"", "otel.b.example", "x.c.example"} {
		assert.True(t, accepted(name, []tls.Certificate{clientCert}), "%q with a client certificate of ca_file", name)
		assert.False(t, accepted(name, nil), "%q without a client certificate", name)
		assert.False(t, accepted(name, []tls.Certificate{foreignCert}), "%q with a client certificate of another CA", name)
	}
}

// Each certificate's metrics carry its cert_file: a rotation of b moves b's generation only,
// and a refusal of b is counted under b.
func TestSNIMetricsPerCertificate(t *testing.T) {
	s := newSNISetup(t)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	startExtension(t, "snitel", s.config(), newStatusHost(), tel)
	inst := attribute.String("certstore.extension", "certstore/snitel")
	gen := func(d certDir) int64 {
		v, ok := metricValue(t, tel, "otelcol_certstore_generation", inst, certAttr(d.cert()))
		require.True(t, ok, "generation of %s", d.cert())
		return v
	}
	for _, d := range []certDir{s.a, s.b, s.c} {
		assert.Equal(t, int64(1), gen(d))
		left, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst, certAttr(d.cert()),
			attribute.String("certstore.certificate.role", "leaf"))
		require.True(t, ok, d.cert())
		assert.InDelta(t, (24 * time.Hour).Seconds(), left, 120)
	}

	cb, kb, _ := s.ca.issueNames(t, "b2", "b.example")
	s.b.write(t, cb, kb, nil)
	waitFor(t, "b's generation 2", func() bool { return gen(s.b) == 2 })
	assert.Equal(t, int64(1), gen(s.a))
	assert.Equal(t, int64(1), gen(s.c))

	cb, _, _ = s.ca.issueNames(t, "b-bad", "b.example")
	_, kOther, _ := s.ca.issueNames(t, "other", "other.example")
	s.b.write(t, cb, kOther, nil)
	waitFor(t, "b's refusal counted under b", func() bool {
		v, ok := metricValue(t, tel, "otelcol_certstore_reload_failures", inst, certAttr(s.b.cert()),
			attribute.String("reason", "key_mismatch"))
		return ok && v >= 1
	})
	_, ok := metricValue(t, tel, "otelcol_certstore_reload_failures", inst, certAttr(s.a.cert()))
	assert.False(t, ok, "nothing refused for a")
	v, ok := metricValue(t, tel, "otelcol_certstore_disk_divergent", inst, certAttr(s.b.cert()))
	assert.True(t, ok && v == 1, "b's disk differs from what it serves")
	v, ok = metricValue(t, tel, "otelcol_certstore_disk_divergent", inst, certAttr(s.c.cert()))
	assert.True(t, ok && v == 0, "c's disk is what it serves")
}
