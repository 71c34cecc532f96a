// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"bytes"
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
	"math/big"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// Checks run often in tests, so waiting for one is short.
func init() { checkInterval = 20 * time.Millisecond }

// statusHost records the status events reported by the extension.
type statusHost struct {
	component.Host
	mu     sync.Mutex
	events []*componentstatus.Event
	exts   map[component.ID]component.Component
}

var _ componentstatus.Reporter = (*statusHost)(nil)

func newStatusHost() *statusHost {
	return &statusHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{}}
}

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func (h *statusHost) last() *componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return nil
	}
	return h.events[len(h.events)-1]
}

func startExtension(t testing.TB, name string, cfg *Config, host *statusHost, tel *componenttest.Telemetry) *certstoreExtension {
	t.Helper()
	return startExt(t, name, cfg, host, tel, nil)
}

func startExtensionWithLogger(t *testing.T, name string, cfg *Config, host *statusHost, logger *zap.Logger) *certstoreExtension {
	t.Helper()
	return startExt(t, name, cfg, host, nil, logger)
}

func startExt(t testing.TB, name string, cfg *Config, host *statusHost, tel *componenttest.Telemetry, logger *zap.Logger) *certstoreExtension {
	t.Helper()
	require.NoError(t, cfg.Validate())
	set := extensiontest.NewNopSettings(Type)
	set.ID = component.MustNewIDWithName("certstore", name)
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	if logger != nil {
		set.Logger = logger
	}
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	host.exts[set.ID] = ext
	return ext.(*certstoreExtension)
}

func config(d certDir, withCA bool) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = d.cert(), d.key()
	if withCA {
		cfg.TLS.CAFile = d.ca()
	}
	return cfg
}

func floatMetric(t *testing.T, tel *componenttest.Telemetry, name string, attrs ...attribute.KeyValue) (float64, bool) {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0, false
	}
	g, ok := m.Data.(metricdata.Gauge[float64])
	if !ok {
		return 0, false
	}
	for _, p := range g.DataPoints {
		match := true
		for _, a := range attrs {
			v, ok := p.Attributes.Value(a.Key)
			match = match && ok && v == a.Value
		}
		if match {
			return p.Value, true
		}
	}
	return 0, false
}

func servedSerial(t *testing.T, addr string, cfg *tls.Config) (*big.Int, error) {
	t.Helper()
	c := cfg.Clone()
	c.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func metricValue(t *testing.T, tel *componenttest.Telemetry, name string, attrs ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0, false
	}
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	case metricdata.Sum[int64]:
		points = d.DataPoints
	}
	for _, p := range points {
		match := true
		for _, a := range attrs {
			v, ok := p.Attributes.Value(a.Key)
			match = match && ok && v == a.Value
		}
		if match {
			return p.Value, true
		}
	}
	return 0, false
}

// histogramCount is the number of samples of the histogram `name` with `attrs`.
func histogramCount(t *testing.T, tel *componenttest.Telemetry, name string, attrs ...attribute.KeyValue) uint64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		return 0
	}
	var n uint64
	for _, p := range h.DataPoints {
		match := true
		for _, a := range attrs {
			v, ok := p.Attributes.Value(a.Key)
			match = match && ok && v == a.Value
		}
		if match {
			n += p.Count
		}
	}
	return n
}

func TestStatusMetricsAndBadRotation(t *testing.T) {
	ca := newTestCA(t, "status CA")
	c1, k1, s1 := ca.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, ca.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	host := newStatusHost()
	cfg := config(d, true)
	cfg.Expiry.ExpiryWarning = ptr(time.Hour)
	ext := startExtension(t, "status", cfg, host, tel)
	inst := attribute.String("certstore.extension", "certstore/status")

	assert.Nil(t, host.last(), "Start reports no status (the service reports OK after it)")
	snap, err := ext.store.Current()
	require.NoError(t, err)
	gen1 := snap.Generation
	v, ok := metricValue(t, tel, "otelcol_certstore_generation", inst)
	require.True(t, ok)
	assert.Equal(t, int64(gen1), v)
	left, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
		attribute.String("certstore.certificate.role", "leaf"), attribute.String("certstore.certificate.serial", snap.Serial))
	require.True(t, ok)
	assert.InDelta(t, time.Until(snap.NotAfter).Seconds(), left, 60)
	caLeft, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
		attribute.String("certstore.certificate.role", "ca"), attribute.String("certstore.certificate.serial", ca.cert.SerialNumber.Text(16)))
	require.True(t, ok)
	assert.InDelta(t, time.Until(ca.cert.NotAfter).Seconds(), caLeft, 60)

	// Bad rotation: a new certificate with the key of another one.
	c2, _, _ := ca.issue(t, "server-2", 24*time.Hour)
	_, kOther, _ := ca.issue(t, "other", 24*time.Hour)
	d.write(t, c2, kOther, ca.pem)
	waitFor(t, "recoverable error after a bad rotation", func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError && ev.Err() != nil
	})
	assert.Contains(t, host.last().Err().Error(), "certificate reload failed")
	snap, err = ext.store.Current()
	require.NoError(t, err)
	assert.Equal(t, gen1, snap.Generation, "the last good certificate stays")
	assert.Equal(t, 0, s1.Cmp(snap.Certificate.Leaf.SerialNumber))
	waitFor(t, "reload failure metric", func() bool {
		v, ok := metricValue(t, tel, "otelcol_certstore_reloads", inst, attribute.String("outcome", "failure"))
		return ok && v >= 1
	})

	// Restoring the files being served is no new generation, and yet the error is gone: OK.
	d.write(t, c1, k1, ca.pem)
	require.NoError(t, ext.store.Reload())
	waitFor(t, "OK after the served files are restored", func() bool { return host.last().Status() == componentstatus.StatusOK })
	snap, err = ext.store.Current()
	require.NoError(t, err)
	assert.Equal(t, gen1, snap.Generation)

	// The next good rotation is served.
	c3, k3, s3 := ca.issue(t, "server-3", 24*time.Hour)
	d.write(t, c3, k3, ca.pem)
	waitFor(t, "the new generation", func() bool {
		snap, err = ext.store.Current()
		return err == nil && snap.Generation > gen1
	})
	assert.Equal(t, 0, s3.Cmp(snap.Certificate.Leaf.SerialNumber))
	waitFor(t, "generation metric", func() bool {
		v, ok := metricValue(t, tel, "otelcol_certstore_generation", inst)
		return ok && v == int64(snap.Generation)
	})
	v, ok = metricValue(t, tel, "otelcol_certstore_reloads", inst, attribute.String("outcome", "success"))
	require.True(t, ok)
	assert.GreaterOrEqual(t, v, int64(2))
	// Every published and refused generation left one reload-duration sample.
	waitFor(t, "reload duration samples", func() bool {
		return histogramCount(t, tel, "otelcol_certstore_reload_duration", attribute.String("outcome", "success")) >= 1 &&
			histogramCount(t, tel, "otelcol_certstore_reload_duration", attribute.String("outcome", "failure")) >= 1
	})
	// d.write is not atomic (key, then certificate): a refusal seen in between is cleared
	// by the publication that follows it.
	waitFor(t, "OK after the good rotation", func() bool { return host.last().Status() == componentstatus.StatusOK })
}

// Expiry is a metric and a log; the status changes only with expiry_status.
func TestExpiryLogAndOptInStatus(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("expiry_status=%v", optIn), func(t *testing.T) {
			ca := newTestCA(t, "expiry CA")
			c1, k1, _ := ca.issue(t, "server-1", 24*time.Hour)
			d := newCertDir(t, c1, k1, nil)
			host := newStatusHost()
			cfg := config(d, false)
			cfg.Expiry.ExpiryWarning = ptr(time.Hour)
			cfg.Expiry.ExpiryStatus = optIn
			core, logs := observer.New(zap.InfoLevel)
			ext := startExtensionWithLogger(t, "expiry", cfg, host, zap.New(core))

			c2, k2, s2 := ca.issue(t, "server-2", 30*time.Minute)
			d.write(t, c2, k2, nil)
			waitFor(t, "the short-lived certificate", func() bool {
				snap, err := ext.store.Current()
				return err == nil && snap.Certificate.Leaf.SerialNumber.Cmp(s2) == 0
			})
			waitFor(t, "the expiry warning in the log", func() bool {
				return logs.FilterMessageSnippet("Certificate expires soon").Len() == 1
			})
			if optIn {
				waitFor(t, "expiry status", func() bool {
					ev := host.last()
					return ev != nil && ev.Status() == componentstatus.StatusRecoverableError
				})
				assert.Contains(t, host.last().Err().Error(), "within expiry_warning 1h0m0s")
				return
			}
			// One more check round: the status stays untouched.
			ext.check()
			assert.Nil(t, host.last(), "expiry alone reports no error without expiry_status")
			assert.Equal(t, 1, logs.FilterMessageSnippet("Certificate expires soon").Len(), "logged once, not on every check")
		})
	}
}

// A generation the library validated but Go cannot use is an error, not OK.
func TestStatusFromLastError(t *testing.T) {
	e := &certstoreExtension{cfg: createDefaultConfig().(*Config)}
	ev, _ := e.evaluateStatus(certstore.Status{Generation: 3, LastSuccess: time.Now(),
		LastError: errors.New("x509: negative serial number")}, time.Now())
	require.Equal(t, componentstatus.StatusRecoverableError, ev.Status())
	assert.Contains(t, ev.Err().Error(), "serving generation 3: x509: negative serial number")
	// Timestamps do not decide: an old failure with no error now is OK.
	ev, _ = e.evaluateStatus(certstore.Status{Generation: 3, LastFailure: time.Now()}, time.Now())
	assert.Equal(t, componentstatus.StatusOK, ev.Status())
	// After Shutdown the store reports ErrClosed: not a reload failure.
	ev, _ = e.evaluateStatus(certstore.Status{LastError: certstore.ErrClosed}, time.Now())
	assert.Equal(t, componentstatus.StatusOK, ev.Status())
}

func TestGRPCMiddlewareHandshakeAndRotation(t *testing.T) {
	ca := newTestCA(t, "grpc CA")
	sc1, sk1, ss1 := ca.issue(t, "server-1", 24*time.Hour)
	cc1, ck1, _ := ca.issue(t, "client-1", 24*time.Hour)
	srvDir := newCertDir(t, sc1, sk1, ca.pem)
	cliDir := newCertDir(t, cc1, ck1, ca.pem)
	host := newStatusHost()

	srvCfg := config(srvDir, true)
	srvCfg.Server.ClientAuth = ClientAuthRequire
	srvExt := startExtension(t, "server", srvCfg, host, nil)
	cliExt := startExtension(t, "client", config(cliDir, true), host, nil)

	// The interface custom components use.
	p, err := GetTLSConfigProvider(host, component.MustNewIDWithName("certstore", "server"))
	require.NoError(t, err)
	require.NotNil(t, p.ServerTLSConfig())
	assert.Equal(t, []string{"h2", "http/1.1"}, p.ServerTLSConfig().NextProtos)
	_, err = GetTLSConfigProvider(host, component.MustNewIDWithName("certstore", "missing"))
	require.ErrorContains(t, err, "not found")

	srvOpts, err := srvExt.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	srv := grpc.NewServer(srvOpts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	cliOpts, err := cliExt.GetGRPCClientOptions(context.Background())
	require.NoError(t, err)
	check := func() (*big.Int, error) {
		conn, err := grpc.NewClient(addr, cliOpts...)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var pr peer.Peer
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&pr))
		if err != nil {
			return nil, err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health status %v", resp.Status)
		}
		info := pr.AuthInfo.(credentials.TLSInfo)
		assert.Equal(t, "h2", info.State.NegotiatedProtocol)
		return info.State.PeerCertificates[0].SerialNumber, nil
	}
	serial, err := check()
	require.NoError(t, err)
	assert.Equal(t, 0, ss1.Cmp(serial))

	// Rotate the server certificate: new connections get it without a restart.
	sc2, sk2, ss2 := ca.issue(t, "server-2", 24*time.Hour)
	srvDir.write(t, sc2, sk2, nil)
	waitFor(t, "new serial over gRPC", func() bool {
		s, err := check()
		return err == nil && s.Cmp(ss2) == 0
	})

	// Rotate the client certificate: the client keeps working.
	cc2, ck2, _ := ca.issue(t, "client-2", 24*time.Hour)
	cliDir.write(t, cc2, ck2, nil)
	waitFor(t, "client rotation", func() bool {
		snap, err := cliExt.store.Current()
		return err == nil && snap.Certificate.Leaf.Subject.CommonName == "client-2"
	})
	_, err = check()
	require.NoError(t, err)

	// mTLS: a client without a certificate is refused.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.Error(t, err, "a client without a certificate must be refused")

	// A plain TLS client sees the current serial too (this is what openssl s_client does).
	s, err := servedSerial(t, addr, cliExt.ClientTLSConfigForServer("127.0.0.1"))
	require.NoError(t, err)
	assert.Equal(t, 0, ss2.Cmp(s))
	_, err = servedSerial(t, addr, cliExt.ClientTLSConfigForServer("wrong.example"))
	require.Error(t, err, "the server name is verified")
}

func TestSeveralInstances(t *testing.T) {
	ca := newTestCA(t, "multi CA")
	c1, k1, _ := ca.issue(t, "a", time.Hour*24)
	c2, k2, _ := ca.issue(t, "b", time.Hour*24)
	host := newStatusHost()
	a := startExtension(t, "a", config(newCertDir(t, c1, k1, ca.pem), false), host, nil)
	b := startExtension(t, "b", config(newCertDir(t, c2, k2, ca.pem), false), host, nil)
	sa, _ := a.store.Current()
	sb, _ := b.store.Current()
	assert.Equal(t, "a", sa.Certificate.Leaf.Subject.CommonName)
	assert.Equal(t, "b", sb.Certificate.Leaf.Subject.CommonName)
	var _ extension.Extension = a
}

// negativeSerialLeaf is a leaf the library accepts but Go's x509 refuses (negative serial
// number): its DER is a valid leaf with serial 0x7b whose serial byte is patched to 0xfb (-5).
func negativeSerialLeaf(t *testing.T, ca *testCA) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x7b),
		Subject:      pkix.Name{CommonName: "negative serial"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	// version [0] INTEGER 2, then serial INTEGER 0x7b.
	at := bytes.Index(der, []byte{0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x7b})
	require.GreaterOrEqual(t, at, 0)
	der[at+7] = 0xfb
	_, err = x509.ParseCertificate(der)
	require.ErrorContains(t, err, "negative serial number")
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// A generation the library validated but Go cannot use: the status is an error (the old
// timestamp comparison said OK), the previous generation is still served and not copied over.
func TestStatusWhenGoCannotUseAGeneration(t *testing.T) {
	ca := newTestCA(t, "unusable CA")
	c1, k1, s1 := ca.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, nil)
	host := newStatusHost()
	cfg := config(d, false)
	cfg.Copy.ValidatedDir = filepath.Join(t.TempDir(), "copy")
	ext := startExtension(t, "unusable", cfg, host, nil)

	c2, k2 := negativeSerialLeaf(t, ca)
	d.write(t, c2, k2, nil)
	waitFor(t, "an error status for the unusable generation", func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError
	})
	assert.Contains(t, host.last().Err().Error(), "negative serial number")
	ext.check()
	assert.Contains(t, host.last().Err().Error(), "negative serial number", "not a copy error")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	addr := tlsServer(t, ext.ServerTLSConfig())
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	require.NoError(t, err)
	assert.Equal(t, 0, conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(s1), "the last usable generation is served")
	_ = conn.Close()
	serial, _ := copyState(t, cfg.Copy.ValidatedDir)
	assert.Equal(t, 0, serial.Cmp(s1), "and is what the copy holds")

	c3, k3, s3 := ca.issue(t, "server-3", 24*time.Hour)
	d.write(t, c3, k3, nil)
	waitFor(t, "OK after a usable generation", func() bool {
		snap, err := ext.store.Current()
		return err == nil && snap.Certificate.Leaf.SerialNumber.Cmp(s3) == 0 && host.last().Status() == componentstatus.StatusOK
	})
}

func ptr[T any](v T) *T { return &v }
