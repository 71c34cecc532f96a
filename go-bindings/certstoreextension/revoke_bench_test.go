// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BenchmarkRevocationRPCs: unary RPCs through the extension's gRPC server middleware with 100
// live mTLS connections, revoke_untrusted_connections on and off, interleaved in rounds in one
// run (the machine's noise hits both alike). Reports RPCs/s of each and on/off.
//
//	go test -run '^$' -bench RevocationRPCs -benchtime 200000x ./certstoreextension/
func BenchmarkRevocationRPCs(b *testing.B) {
	const conns = 100
	serverCA, clientCA := newTestCA(b, "bench server CA"), newTestCA(b, "bench client CA")
	sc, sk, _ := serverCA.issue(b, "server", 24*time.Hour)
	d := newCertDir(b, sc, sk, clientCA.pem)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(serverCA.pem)

	clientsOf := func(on bool) []healthpb.HealthClient {
		cfg := config(d, true)
		cfg.Revoke.RevokeUntrustedConnections = on
		name := "off"
		if on {
			name = "on"
		}
		ext := startExtension(b, name, cfg, newStatusHost(), nil)
		if (ext.serverGuard != nil) != on {
			b.Fatalf("guard on=%v", ext.serverGuard != nil)
		}
		opts, err := ext.GetGRPCServerOptions(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		addr := serveHealth(b, opts...)
		out := make([]healthpb.HealthClient, conns)
		for i := range out {
			c, k, _ := clientCA.issue(b, "client", time.Hour)
			cert, err := tls.X509KeyPair(c, k)
			if err != nil {
				b.Fatal(err)
			}
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
				RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}})))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = conn.Close() })
			out[i] = healthpb.NewHealthClient(conn)
			if _, err := out[i].Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		if on && ext.serverGuard.Watched() != conns {
			b.Fatalf("watched %d connections, want %d", ext.serverGuard.Watched(), conns)
		}
		return out
	}
	offClients := clientsOf(false)
	sides := [2][]healthpb.HealthClient{clientsOf(true), offClients}

	// run makes n RPCs over the connections of one side from a few goroutines per core.
	run := func(clients []healthpb.HealthClient, n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 4 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					if _, err := clients[i%conns].Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	run(sides[0], 2000) // warm-up
	run(sides[1], 2000)

	const round = 500
	var spent [2]time.Duration
	var made [2]int
	b.ResetTimer()
	for done, r := 0, 0; done < b.N; r++ {
		n := min(round, b.N-done)
		for j := range 2 {
			side := (j + r) % 2 // alternate which side goes first
			spent[side] += run(sides[side], n)
			made[side] += n
		}
		done += n
	}
	b.StopTimer()
	on, off := float64(made[0])/spent[0].Seconds(), float64(made[1])/spent[1].Seconds()
	b.ReportMetric(on, "rpc/s-on")
	b.ReportMetric(off, "rpc/s-off")
	b.ReportMetric(on/off, "on/off")
}
