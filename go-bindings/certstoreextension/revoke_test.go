// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configmiddleware"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const revokedMetric = "otelcol_certstore_connections_revoked"

// grpcPeer is one client on one gRPC connection holding a long-lived stream (health Watch:
// one message, then open until the connection ends).
type grpcPeer struct {
	conn  *grpc.ClientConn
	ended chan error
}

func openGRPCPeer(t *testing.T, addr string, opts ...grpc.DialOption) *grpcPeer {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err, "first message of the stream")
	p := &grpcPeer{conn: conn, ended: make(chan error, 1)}
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				p.ended <- err
				return
			}
		}
	}()
	return p
}

func clientTLS(t *testing.T, serverCA *testCA, ca *testCA, cn string, validFor time.Duration) grpc.DialOption {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(serverCA.pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if ca != nil {
		c, k, _ := ca.issue(t, cn, validFor)
		cert, err := tls.X509KeyPair(c, k)
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}

// waitEnded waits (generously: a shared machine) for the stream to end and returns its error.
func (p *grpcPeer) waitEnded(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-p.ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: stream still open after 10s", what)
		return nil
	}
}

// assertOpen checks the stream has not ended and the connection serves a unary call.
func (p *grpcPeer) assertOpen(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-p.ended:
		t.Fatalf("%s: stream ended: %v", what, err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, what)
}

// waitRevoked waits until the revoked-connections metric counts one connection for reason
// (the guard counts right after closing the connection) and checks it stays at one.
func waitRevoked(t *testing.T, tel *componenttest.Telemetry, reason string) {
	t.Helper()
	count := func() int64 {
		v, _ := metricValue(t, tel, revokedMetric, attribute.String("reason", reason))
		return v
	}
	waitFor(t, "the revocation counted", func() bool { return count() >= 1 })
	assert.Equal(t, int64(1), count(), "connections revoked for %s", reason)
}

// The OTLP/gRPC receiver's case: client_auth require, ca_overlap. During the overlap the old
// CA's client keeps its stream; when it ends, that stream fails with Unavailable (the
// connection is closed), a new connection of that client is refused, and the new CA's client
// is untouched. One log line and the metric say so.
func TestGRPCServerRevokesOldCAClientAfterOverlap(t *testing.T) {
	serverCA, oldCA, newCA := newTestCA(t, "server CA"), newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	d := newCertDir(t, sc, sk, oldCA.pem)
	cfg := config(d, true)
	const overlap = 2 * time.Second
	cfg.TLS.CAOverlap = overlap
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	core, logs := observer.New(zap.InfoLevel)
	ext := startExt(t, "revoke", cfg, newStatusHost(), tel, zap.New(core))
	opts, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	addr := serveHealth(t, opts...)

	old := openGRPCPeer(t, addr, clientTLS(t, serverCA, oldCA, "old client", time.Hour))
	oldCreds := clientTLS(t, serverCA, oldCA, "old client 2", time.Hour)

	d.write(t, sc, sk, newCA.pem)
	rotated := time.Now()
	newCreds := clientTLS(t, serverCA, newCA, "new client", time.Hour)
	waitFor(t, "the new CA trusted", func() bool { return healthCheck(addr, newCreds) == nil })
	fresh := openGRPCPeer(t, addr, newCreds)
	if time.Since(rotated) < overlap-500*time.Millisecond { // only meaningful inside the overlap
		old.assertOpen(t, "old-CA client during the overlap")
		v, _ := metricValue(t, tel, revokedMetric)
		assert.Zero(t, v, "revoked during the overlap")
	}

	err = old.waitEnded(t, "old-CA client after the overlap")
	assert.Equal(t, codes.Unavailable, status.Code(err), "in-flight stream: %v", err)
	assert.Error(t, healthCheck(addr, oldCreds), "a new connection of the old CA's client")
	fresh.assertOpen(t, "new-CA client")

	// The guard closes first, then counts and logs.
	waitRevoked(t, tel, "ca_removed")
	const logged = "Closed a connection whose peer is no longer trusted"
	waitFor(t, "the revocation logged", func() bool { return logs.FilterMessageSnippet(logged).Len() >= 1 })
	lines := logs.FilterMessageSnippet(logged).All()
	require.Len(t, lines, 1)
	fields := lines[0].ContextMap()
	assert.Equal(t, "ca_removed", fields["reason"])
	assert.Equal(t, "CN=old client", fields["subject"])
	assert.NotEmpty(t, fields["serial"])
}

// verify_if_given: a client without a certificate is never revoked; one whose CA left is.
func TestGRPCServerVerifyIfGivenNoCertNotRevoked(t *testing.T) {
	serverCA, oldCA, newCA := newTestCA(t, "server CA"), newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	d := newCertDir(t, sc, sk, oldCA.pem)
	cfg := config(d, true)
	cfg.Server.ClientAuth = ClientAuthVerifyIfGiven
	ext := startExtension(t, "vig", cfg, newStatusHost(), nil)
	opts, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	addr := serveHealth(t, opts...)

	anonymous := openGRPCPeer(t, addr, clientTLS(t, serverCA, nil, "", 0))
	old := openGRPCPeer(t, addr, clientTLS(t, serverCA, oldCA, "old client", time.Hour))
	d.write(t, sc, sk, newCA.pem)
	err = old.waitEnded(t, "old-CA client")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	anonymous.assertOpen(t, "client without a certificate")
}

// A client certificate that expires mid-connection: its stream ends after its notAfter.
func TestGRPCServerRevokesExpiredPeer(t *testing.T) {
	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	cfg := config(newCertDir(t, sc, sk, clientCA.pem), true)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	ext := startExtension(t, "expiry", cfg, newStatusHost(), tel)
	opts, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	addr := serveHealth(t, opts...)

	short := openGRPCPeer(t, addr, clientTLS(t, serverCA, clientCA, "short", 2*time.Second))
	long := openGRPCPeer(t, addr, clientTLS(t, serverCA, clientCA, "long", time.Hour))
	err = short.waitEnded(t, "client past its notAfter")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	long.assertOpen(t, "client whose certificate is valid")
	waitRevoked(t, tel, "peer_expired")
}

// revoke_untrusted_connections: false keeps the handshake-only behaviour.
func TestGRPCServerRevocationOff(t *testing.T) {
	serverCA, oldCA, newCA := newTestCA(t, "server CA"), newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	d := newCertDir(t, sc, sk, oldCA.pem)
	cfg := config(d, true)
	cfg.Revoke.RevokeUntrustedConnections = false
	ext := startExtension(t, "off", cfg, newStatusHost(), nil)
	require.Nil(t, ext.serverGuard)
	opts, err := ext.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	addr := serveHealth(t, opts...)

	old := openGRPCPeer(t, addr, clientTLS(t, serverCA, oldCA, "old client", time.Hour))
	d.write(t, sc, sk, newCA.pem)
	oldCreds := clientTLS(t, serverCA, oldCA, "old client 2", time.Hour)
	waitFor(t, "the old CA refused", func() bool { return healthCheck(addr, oldCreds) != nil })
	old.assertOpen(t, "old-CA client with revocation off")
}

// Client side, gRPC: the exporter's connection to a server whose CA left ca_file is closed.
func TestGRPCClientRevokesServerNoLongerTrusted(t *testing.T) {
	serverCA, otherCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "other CA"), newTestCA(t, "client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	serverCert, err := tls.X509KeyPair(sc, sk)
	require.NoError(t, err)
	addr := serveHealth(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}})))

	cc, ck, _ := clientCA.issue(t, "exporter", 24*time.Hour)
	d := newCertDir(t, cc, ck, serverCA.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	ext := startExtension(t, "exporter", config(d, true), newStatusHost(), tel)
	opts, err := ext.GetGRPCClientOptions(context.Background())
	require.NoError(t, err)
	p := openGRPCPeer(t, addr, opts...)

	d.write(t, cc, ck, otherCA.pem)
	err = p.waitEnded(t, "exporter stream to a server no longer trusted")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	waitRevoked(t, tel, "ca_removed")
}

// Client side, HTTP: an active response from a server whose CA left ca_file is cut, an idle
// connection to it is closed, and no later request reaches it.
func TestHTTPClientRevokesServerNoLongerTrusted(t *testing.T) {
	serverCA, otherCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "other CA"), newTestCA(t, "client CA")
	sc, sk, _ := serverCA.issue(t, "server", 24*time.Hour)
	serverCert, err := tls.X509KeyPair(sc, sk)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var closed atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/once" {
			return
		}
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})}
	go func() {
		_ = srv.Serve(tls.NewListener(lis, &tls.Config{Certificates: []tls.Certificate{serverCert}, NextProtos: []string{"h2", "http/1.1"}}))
	}()
	t.Cleanup(func() { _ = srv.Close() })

	cc, ck, _ := clientCA.issue(t, "exporter", 24*time.Hour)
	d := newCertDir(t, cc, ck, serverCA.pem)
	host := newStatusHost()
	startExtension(t, "httpexporter", config(d, true), host, nil)
	hc := confighttp.NewDefaultClientConfig()
	hc.Endpoint = "https://" + lis.Addr().String()
	hc.Middlewares = []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "httpexporter")}}
	client, err := hc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	// A second client whose connection is idle in its pool when the trust changes.
	idleClient, err := hc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	once, err := idleClient.Get(hc.Endpoint + "/once")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, once.Body)
	_ = once.Body.Close()

	resp, err := client.Get(hc.Endpoint + "/stream")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc1 := bufio.NewScanner(resp.Body)
	require.True(t, sc1.Scan(), "first line")
	ended := make(chan error, 1)
	go func() {
		for sc1.Scan() {
		}
		ended <- sc1.Err()
	}()

	d.write(t, cc, ck, otherCA.pem)
	select {
	case err := <-ended:
		assert.Error(t, err, "the response body ends with an error, not a clean EOF")
	case <-time.After(10 * time.Second):
		t.Fatal("response from a server no longer trusted still streaming after 10s")
	}
	waitFor(t, "the idle connection closed too", func() bool { return closed.Load() >= 2 })
	_, err = client.Get(hc.Endpoint + "/stream")
	assert.Error(t, err, "a new request to the server no longer trusted")
	_, err = idleClient.Get(hc.Endpoint + "/once")
	assert.Error(t, err, "a request of the client whose connection was idle")
}
