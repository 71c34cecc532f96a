// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// tlsServer serves TLS with the server extension's config and closes each connection after
// the handshake.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	return lis.Addr().String()
}

// The client side keeps crypto/tls's verification contract: VerifyPeerCertificate gets the
// verified chains (not nil), VerifyConnection sees them, and the server name is checked.
func TestClientVerificationContract(t *testing.T) {
	ca := newTestCA(t, "verify CA")
	sc, sk, ss := ca.issue(t, "server", 24*time.Hour)
	cc, ck, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	srv := startExtension(t, "server", config(newCertDir(t, sc, sk, nil), false), host, nil)
	cli := startExtension(t, "client", config(newCertDir(t, cc, ck, ca.pem), true), host, nil)
	addr := tlsServer(t, srv.ServerTLSConfig())

	checkChains := func(t *testing.T, chains [][]*x509.Certificate) {
		t.Helper()
		require.NotEmpty(t, chains)
		assert.Equal(t, 0, chains[0][0].SerialNumber.Cmp(ss), "chain starts at the server's leaf")
		assert.True(t, chains[0][len(chains[0])-1].Equal(ca.cert), "chain ends at the trusted CA")
	}
	for _, tc := range []struct {
		name string
		cfg  func(base *tls.Config) *tls.Config
		// conn: crypto/tls verified itself, so the connection's state holds the chains.
		conn bool
	}{
		{"ClientTLSConfig", cli.store.ClientTLSConfig, false},
		{"ClientConfigSource", func(base *tls.Config) *tls.Config { return cli.store.ClientConfigSource(base)() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var peerChains, connChains [][]*x509.Certificate
			base := &tls.Config{
				ServerName: "localhost",
				VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
					require.Len(t, raw, 1)
					peerChains = chains
					return nil
				},
				VerifyConnection: func(cs tls.ConnectionState) error {
					connChains = cs.VerifiedChains
					return nil
				},
			}
			conn, err := tls.Dial("tcp", addr, tc.cfg(base))
			require.NoError(t, err)
			checkChains(t, peerChains)
			checkChains(t, connChains)
			if tc.conn {
				checkChains(t, conn.ConnectionState().VerifiedChains)
			}
			_ = conn.Close()

			// The name is checked: the certificate is for localhost and 127.0.0.1 only.
			wrong := base.Clone()
			wrong.ServerName = "wrong.example"
			_, err = tls.Dial("tcp", addr, tc.cfg(wrong))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "wrong.example")

			// A refusal of the user's own callback is honoured.
			refuse := base.Clone()
			refuse.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error { return assert.AnError }
			_, err = tls.Dial("tcp", addr, tc.cfg(refuse))
			require.ErrorIs(t, err, assert.AnError)
		})
	}

	// An IP address: crypto/tls derives the name from the dialled address for a config from
	// the source (no SNI is sent, the IP SAN is checked).
	cfg := cli.store.ClientConfigSource(nil)()
	conn, err := tls.Dial("tcp", addr, cfg)
	require.NoError(t, err)
	assert.NotEmpty(t, conn.ConnectionState().VerifiedChains)
	_ = conn.Close()
}

// The exporter paths (gRPC) verify through crypto/tls itself: the peer's TLS state carries
// the verified chains.
func TestGRPCClientVerifiedChains(t *testing.T) {
	ca := newTestCA(t, "grpc verify CA")
	sc, sk, _ := ca.issue(t, "server", 24*time.Hour)
	cc, ck, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	srv := startExtension(t, "server", config(newCertDir(t, sc, sk, nil), false), host, nil)
	cli := startExtension(t, "client", config(newCertDir(t, cc, ck, ca.pem), true), host, nil)
	srvOpts, err := srv.GetGRPCServerOptions(context.Background())
	require.NoError(t, err)
	addr := serveHealth(t, srvOpts...)
	cliOpts, err := cli.GetGRPCClientOptions(context.Background())
	require.NoError(t, err)
	conn, err := grpc.NewClient(addr, cliOpts...)
	require.NoError(t, err)
	defer conn.Close()
	var p peer.Peer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	require.NoError(t, err)
	info := p.AuthInfo.(credentials.TLSInfo)
	require.NotEmpty(t, info.State.VerifiedChains)
	assert.True(t, info.State.VerifiedChains[0][len(info.State.VerifiedChains[0])-1].Equal(ca.cert))

	// The authority's host is the name verified: a name the certificate lacks fails.
	host2, port, _ := net.SplitHostPort(addr)
	require.Equal(t, "127.0.0.1", host2)
	bad, err := grpc.NewClient("passthrough:///wrong.example:"+port, append(cliOpts, grpc.WithContextDialer(
		func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))...)
	require.NoError(t, err)
	defer bad.Close()
	_, err = healthpb.NewHealthClient(bad).Check(ctx, &healthpb.HealthCheckRequest{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrong.example")
}

// In FIPS 140-3 mode crypto/tls accepts only chains of FIPS keys; both client paths apply the
// same restriction. FIPS mode is fixed at process start, so the check runs in a child process
// with GODEBUG=fips140=on; this process shows that the same chain passes without it.
func TestClientVerificationFIPS(t *testing.T) {
	ca := newTestCAOn(t, "P-224 CA", elliptic.P224())
	sc, sk, _ := ca.issue(t, "server", 24*time.Hour)
	cc, ck, _ := ca.issue(t, "client", 24*time.Hour)
	host := newStatusHost()
	srv := startExtension(t, "server", config(newCertDir(t, sc, sk, nil), false), host, nil)
	cli := startExtension(t, "client", config(newCertDir(t, cc, ck, ca.pem), true), host, nil)
	addr := tlsServer(t, srv.ServerTLSConfig())
	dial := map[string]func() error{
		"ClientTLSConfig": func() error {
			conn, err := tls.Dial("tcp", addr, cli.ClientTLSConfigForServer("localhost"))
			if err == nil {
				_ = conn.Close()
			}
			return err
		},
		"ClientConfigSource": func() error {
			conn, err := tls.Dial("tcp", addr, cli.store.ClientConfigSource(&tls.Config{ServerName: "localhost"})())
			if err == nil {
				_ = conn.Close()
			}
			return err
		},
	}
	if os.Getenv("CERTSTORE_FIPS_CHILD") == "1" {
		require.True(t, fips140.Enabled())
		for name, d := range dial {
			err := d()
			require.Error(t, err, name)
			assert.Contains(t, err.Error(), "no FIPS compatible certificate chains found", name)
		}
		return
	}
	require.False(t, fips140.Enabled())
	for name, d := range dial {
		require.NoError(t, d(), "without FIPS mode the P-224 chain is accepted (%s)", name)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestClientVerificationFIPS$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", "CERTSTORE_FIPS_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "FIPS child:\n%s", out)
	require.Contains(t, string(out), "--- PASS: TestClientVerificationFIPS", "the child ran the FIPS checks")
}
