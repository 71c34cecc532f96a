// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configmiddleware"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func serveHealth(t testing.TB, opts ...grpc.ServerOption) string {
	t.Helper()
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func healthCheck(addr string, opts ...grpc.DialOption) error {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// If configgrpc ever applied its own credentials after the middleware's, grpc-go would keep
// those: a receiver without a tls: block would serve plaintext. The interceptors refuse it.
func TestGRPCServerRefusesPlaintextWhenOtherCredsWin(t *testing.T) {
	ca := newTestCA(t, "order CA")
	c, k, _ := ca.issue(t, "server", 24*time.Hour)
	core, logs := observer.New(zap.InfoLevel)
	ext := startExtensionWithLogger(t, "server", config(newCertDir(t, c, k, nil), false), newStatusHost(), zap.New(core))
	opts, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)

	// Control: the same server without the extension's options serves plaintext calls.
	plainAddr := serveHealth(t, grpc.Creds(insecure.NewCredentials()))
	require.NoError(t, healthCheck(plainAddr, grpc.WithTransportCredentials(insecure.NewCredentials())))

	// Reversed order: the extension's options first, insecure credentials last (they win).
	addr := serveHealth(t, append(opts, grpc.Creds(insecure.NewCredentials()))...)
	err = healthCheck(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.Error(t, err)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, err.Error(), "connection is not TLS; refused")
	require.Equal(t, 1, logs.FilterMessageSnippet("Refused a gRPC call: another grpc.Creds").Len())

	// Streams are refused too (Watch is a server stream).
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	assert.Equal(t, codes.Unauthenticated, status.Code(err))

	// In the documented order the same options serve TLS and the call passes the interceptor.
	tlsAddr := serveHealth(t, append([]grpc.ServerOption{grpc.Creds(insecure.NewCredentials())}, opts...)...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	require.NoError(t, healthCheck(tlsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}))))
}

// Client side: if other transport credentials won over the extension's, the exporter must not
// send in plaintext.
func TestGRPCClientRefusesPlaintextWhenOtherCredsWin(t *testing.T) {
	ca := newTestCA(t, "client order CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	ext := startExtension(t, "client", config(newCertDir(t, c, k, ca.pem), true), newStatusHost(), nil)
	opts, err := ext.GetGRPCClientOptions(context.Background())
	require.NoError(t, err)

	var calls atomic.Int64
	addr := serveHealth(t, grpc.Creds(insecure.NewCredentials()), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			return h(ctx, req)
		}))
	require.NoError(t, healthCheck(addr, grpc.WithTransportCredentials(insecure.NewCredentials())), "control: plaintext works without the extension")
	require.Equal(t, int64(1), calls.Load())

	err = healthCheck(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	require.Error(t, err)
	assert.Equal(t, int64(1), calls.Load(), "no call reached the plaintext server")
}

// An http:// endpoint with certstore in the middlewares is refused, not sent in plaintext.
func TestHTTPClientRefusesPlainHTTP(t *testing.T) {
	ca := newTestCA(t, "http order CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	startExtension(t, "client", config(newCertDir(t, c, k, ca.pem), true), host, nil)

	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	cc := confighttp.NewDefaultClientConfig()
	cc.Endpoint = srv.URL
	cc.Middlewares = []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "client")}}
	client, err := cc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	resp, err := client.Post(srv.URL+"/v1/traces", "application/x-protobuf", strings.NewReader("spans"))
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), `refusing to send a "http" request to `+strings.TrimPrefix(srv.URL, "http://")+" without TLS")
	assert.Zero(t, hits.Load(), "nothing reached the server")
	// Control: the same server is reachable without the extension.
	resp, err = http.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, int64(1), hits.Load())
}

// A server that accepts and never answers the handshake does not hold the exporter forever.
func TestHTTPClientHandshakeTimeout(t *testing.T) {
	ca := newTestCA(t, "timeout CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	cfg := config(newCertDir(t, c, k, ca.pem), true)
	cfg.Client.HandshakeTimeout = 200 * time.Millisecond
	startExtension(t, "client", cfg, host, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() }) // accepted, never answered
		}
	}()
	url := "https://" + lis.Addr().String() + "/"
	cc := confighttp.NewDefaultClientConfig()
	cc.Endpoint = url
	cc.Middlewares = []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "client")}}
	client, err := cc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	resp, err := client.Get(url) // no deadline of its own
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TLS handshake with "+lis.Addr().String())
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// The per-server-name cache keeps at most maxServerNames entries and stays usable.
func TestClientCacheIsBounded(t *testing.T) {
	built := map[string]int{}
	creds := newClientCreds("", func(name string) func() *tls.Config {
		built[name]++
		cfg := &tls.Config{ServerName: name}
		return func() *tls.Config { return cfg }
	}, nil)
	for i := range 3 * maxServerNames {
		name := fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		assert.Equal(t, name, creds.forName(creds.serverName(name+":4317")).ServerName)
		// A name in use stays cached while new names come and go.
		assert.Equal(t, "hot.example", creds.forName("hot.example").ServerName)
	}
	assert.Equal(t, maxServerNames, creds.cached())
	assert.Equal(t, 1, built["hot.example"], "the name in use was never evicted")
	assert.Equal(t, 1, built["10.0.0.0"])
	creds.forName("10.0.0.0")
	assert.Equal(t, 2, built["10.0.0.0"], "an evicted name is rebuilt when it comes back")
}

// The exporter's own tls: block is not used with certstore: say so in the log.
func TestHTTPClientWarnsAboutOwnTLSSettings(t *testing.T) {
	ca := newTestCA(t, "own tls CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	core, logs := observer.New(zap.InfoLevel)
	ext := startExtensionWithLogger(t, "client", config(newCertDir(t, c, k, ca.pem), true), host, zap.New(core))
	wrap, err := ext.GetHTTPRoundTripper(context.Background())
	require.NoError(t, err)
	_, err = wrap(context.Background(), &http.Transport{})
	require.NoError(t, err)
	assert.Zero(t, logs.FilterMessageSnippet("own tls: settings are not used").Len(), "nothing set, nothing said")
	_, err = wrap(context.Background(), &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}})
	require.NoError(t, err)
	assert.Equal(t, 1, logs.FilterMessageSnippet("own tls: settings are not used").Len())
}

// When another grpc.Creds wins over the extension's (TLS, but with its own client
// authentication), the interceptors enforce the configured client_auth: require refuses a
// client without a verified certificate; verify_if_given refuses a certificate sent but not
// verified and lets a client without one through.
func TestGRPCServerEnforcesClientAuthWhenOtherCredsWin(t *testing.T) {
	ca := newTestCA(t, "client auth CA")
	stranger := newTestCA(t, "stranger CA")
	c, k, _ := ca.issue(t, "server", 24*time.Hour)
	d := newCertDir(t, c, k, ca.pem)
	serverCert, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	sc, sk, _ := stranger.issue(t, "stranger client", 24*time.Hour)
	strangerCert, err := tls.X509KeyPair(sc, sk)
	require.NoError(t, err)
	cc, ck, _ := ca.issue(t, "good client", 24*time.Hour)
	goodCert, err := tls.X509KeyPair(cc, ck)
	require.NoError(t, err)

	// The winning credentials ask for a certificate but verify none.
	other := grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert}))
	dial := func(addr string, certs ...tls.Certificate) error {
		return healthCheck(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: pool, ServerName: "localhost", Certificates: certs})))
	}

	for _, tc := range []struct {
		mode             string
		noCert, stranger bool // true: served
	}{
		{mode: ClientAuthRequire, noCert: false, stranger: false},
		{mode: ClientAuthVerifyIfGiven, noCert: true, stranger: false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := config(d, true)
			cfg.Server.ClientAuth = tc.mode
			ext := startExtension(t, "auth-"+tc.mode, cfg, newStatusHost(), nil)
			opts, err := ext.GetGRPCServerOptions(context.Background())
			require.NoError(t, err)
			addr := serveHealth(t, append(opts, other)...)

			check := func(what string, served bool, err error) {
				t.Helper()
				if served {
					assert.NoError(t, err, what)
					return
				}
				require.Error(t, err, what)
				assert.Equal(t, codes.Unauthenticated, status.Code(err), what)
				assert.Contains(t, err.Error(), "client_auth "+tc.mode, what)
			}
			check("client without a certificate", tc.noCert, dial(addr))
			check("client of an unknown CA", tc.stranger, dial(addr, strangerCert))
			// Verified by nobody here either: the winning credentials never verify, so even a
			// good certificate has no verified chain and cannot pass.
			check("client of the configured CA, not verified by the winning creds", false, dial(addr, goodCert))
		})
	}
}

// A call whose context carries no peer (an in-process handler, a test server) is refused as
// not TLS, not a panic.
func TestGRPCServerRefusesCallWithoutPeer(t *testing.T) {
	e := &certstoreExtension{logger: zap.NewNop(), clientAuth: tls.RequireAndVerifyClientCert,
		id: component.MustNewIDWithName("certstore", "nopeer")}
	called := false
	_, err := e.requireTLSUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x"},
		func(context.Context, any) (any, error) { called = true; return nil, nil })
	require.Error(t, err)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, err.Error(), "connection is not TLS")
	assert.False(t, called, "the handler must not run")
}
