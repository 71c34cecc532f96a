// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configmiddleware"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// policyServer is a real TLS server (HTTPS and, for gRPC, h2) whose versions are capped by
// maxVersion; it records what each client offered.
type policyServer struct {
	addr string
	mu   sync.Mutex
	last *tls.ClientHelloInfo
}

func (p *policyServer) hello() *tls.ClientHelloInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func newPolicyServer(t *testing.T, ca *testCA, maxVersion uint16) *policyServer {
	t.Helper()
	c, k, _ := ca.issue(t, "policy server", 24*time.Hour)
	pair, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	p := &policyServer{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MaxVersion:   maxVersion,
		NextProtos:   []string{"h2", "http/1.1"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			p.mu.Lock()
			p.last = h
			p.mu.Unlock()
			return nil, nil
		},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(tls.NewListener(lis, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.addr = lis.Addr().String()
	return p
}

// httpGet sends one request through a confighttp client (what the OTLP/HTTP exporter builds)
// with the component's own tls: policy and middlewares: [certstore/<ext>].
func httpGet(t *testing.T, host *statusHost, ext string, addr string, own func(*confighttp.ClientConfig)) (*tls.ConnectionState, error) {
	t.Helper()
	cc := confighttp.NewDefaultClientConfig()
	cc.Endpoint = "https://" + addr + "/"
	cc.Middlewares = []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", ext)}}
	if own != nil {
		own(&cc)
	}
	client, err := cc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(cc.Endpoint)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return resp.TLS, nil
}

// Issue 15 defect 1: the TLS policy of the exporter's own tls: block applies to the connections
// certstore makes (it was dropped without a word: min_version 1.3 connected with TLS 1.2).
func TestHTTPClientAppliesComponentTLSPolicy(t *testing.T) {
	ca := newTestCA(t, "policy CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	startExtension(t, "client", config(newCertDir(t, c, k, ca.pem), true), host, nil)
	tls12 := newPolicyServer(t, ca, tls.VersionTLS12)
	tls13 := newPolicyServer(t, ca, 0)

	// The server's baseline: the client connects with TLS 1.2.
	st, err := httpGet(t, host, "client", tls12.addr, nil)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), st.Version)

	// min_version "1.3" on the exporter: a TLS 1.2-only server is refused.
	_, err = httpGet(t, host, "client", tls12.addr, func(cc *confighttp.ClientConfig) { cc.TLS.MinVersion = "1.3" })
	require.Error(t, err, "min_version 1.3 of the exporter's tls: must not connect with TLS 1.2")
	assert.ErrorContains(t, err, "protocol version")

	// max_version "1.2" on the exporter: TLS 1.2 with a server that speaks 1.3.
	st, err = httpGet(t, host, "client", tls13.addr, func(cc *confighttp.ClientConfig) { cc.TLS.MaxVersion = "1.2" })
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), st.Version)

	// cipher_suites: the only suite offered is the one configured.
	st, err = httpGet(t, host, "client", tls12.addr, func(cc *confighttp.ClientConfig) {
		cc.TLS.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
	})
	require.NoError(t, err)
	assert.Equal(t, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, st.CipherSuite)
	assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, withoutTLS13Suites(tls12.hello().CipherSuites))

	// curve_preferences: the only curve offered is the one configured.
	_, err = httpGet(t, host, "client", tls13.addr, func(cc *confighttp.ClientConfig) { cc.TLS.CurvePreferences = []string{"P384"} })
	require.NoError(t, err)
	assert.Equal(t, []tls.CurveID{tls.CurveP384}, tls13.hello().SupportedCurves)
}

func withoutTLS13Suites(suites []uint16) []uint16 {
	var out []uint16
	for _, s := range suites {
		switch s {
		case tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256:
		default:
			out = append(out, s)
		}
	}
	return out
}

// When the extension's policy and the exporter's leave nothing in common, the exporter does not
// start, and the error names the field.
func TestHTTPClientRefusesConflictingTLSPolicy(t *testing.T) {
	ca := newTestCA(t, "conflict CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	cfg := config(newCertDir(t, c, k, ca.pem), true)
	cfg.TLS.MinVersion = "1.3"
	cfg.TLS.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	startExtension(t, "client", cfg, host, nil)
	srv := newPolicyServer(t, ca, 0)

	_, err := httpGet(t, host, "client", srv.addr, func(cc *confighttp.ClientConfig) { cc.TLS.MaxVersion = "1.2" })
	require.ErrorContains(t, err, "min_version TLS 1.3 and max_version TLS 1.2")
	_, err = httpGet(t, host, "client", srv.addr, func(cc *confighttp.ClientConfig) {
		cc.TLS.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
	})
	require.ErrorContains(t, err, "cipher_suites of the extension and of the HTTP client's tls: block have none in common")
}

// The extension's own policy applies on every path: the HTTP client, the gRPC client and the
// server configs (gRPC middleware, ServerTLSConfig).
func TestExtensionTLSPolicyOnEveryPath(t *testing.T) {
	ca := newTestCA(t, "ext policy CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	cfg := config(newCertDir(t, c, k, ca.pem), true)
	cfg.TLS.MinVersion = "1.3"
	ext := startExtension(t, "client", cfg, host, nil)
	tls12 := newPolicyServer(t, ca, tls.VersionTLS12)

	_, err := httpGet(t, host, "client", tls12.addr, nil)
	require.ErrorContains(t, err, "protocol version", "HTTP client")

	opts, err := ext.GetGRPCClientOptions(context.Background())
	require.NoError(t, err)
	conn, err := grpc.NewClient(tls12.addr, opts...)
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.ErrorContains(t, err, "protocol version", "gRPC client")

	srvCfg := config(newCertDir(t, c, k, ca.pem), false)
	srvCfg.TLS.MaxVersion = "1.2"
	srvExt := startExtension(t, "server", srvCfg, host, nil)
	lis, err := tls.Listen("tcp", "127.0.0.1:0", srvExt.ServerTLSConfig())
	require.NoError(t, err)
	defer lis.Close()
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	_, err = tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	require.ErrorContains(t, err, "protocol version", "server: max_version 1.2")
	for _, name := range []string{"grpc", "http"} {
		base := srvExt.grpcServer
		if name == "http" {
			base = srvExt.httpServer
		}
		got, err := base.GetConfigForClient(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		assert.Equal(t, uint16(tls.VersionTLS12), got.MaxVersion, name)
	}
}
