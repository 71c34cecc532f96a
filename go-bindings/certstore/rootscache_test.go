package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// Issue 15 defect 7: with extra roots (include_system_ca_certs_pool: the whole system pool),
// ClientTLSConfig merged them with the store's CAs by cloning the pool on every handshake. It
// is built once per generation.
func TestClientTLSConfigMergesExtraRootsOncePerGeneration(t *testing.T) {
	serverCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	srv := startServer(t, &tls.Config{Certificates: []tls.Certificate{serverCA.issue(t, kECDSA, "server").tlsCert(t)}})

	extra, err := x509.SystemCertPool()
	if err != nil || extra == nil {
		extra = x509.NewCertPool()
	}
	extra.AddCert(newCA(t, "another root").cert)
	w := newAtomicWriter(t)
	w.writeLeaf(clientCA.issue(t, kECDSA, "client-1"), serverCA.pem)
	s := openT(t, w.options(true))
	ev := subscribe(t, s)
	client := s.ClientTLSConfig(&tls.Config{ServerName: "localhost", RootCAs: extra})

	before := mergedRootsBuilt.Load()
	const handshakes = 10
	for range handshakes {
		mustDial(t, srv.addr, client)
	}
	if got := mergedRootsBuilt.Load() - before; got != 1 {
		t.Fatalf("%d handshakes of one generation built the merged roots %d times, want 1", handshakes, got)
	}

	w.writeLeaf(clientCA.issue(t, kECDSA, "client-2"), serverCA.pem)
	ev.wait(t, EventRotated)
	for range handshakes {
		mustDial(t, srv.addr, client)
	}
	if got := mergedRootsBuilt.Load() - before; got != 2 {
		t.Fatalf("two generations built the merged roots %d times, want 2", got)
	}
}

// The client-side verification of one handshake with the system roots added
// (include_system_ca_certs_pool): the merged pool is built once per generation, not here.
func BenchmarkClientVerifyWithSystemRoots(b *testing.B) {
	serverCA := newCA(b, "server-ca")
	srv := startServer(b, &tls.Config{Certificates: []tls.Certificate{serverCA.issue(b, kECDSA, "server").tlsCert(b)}})
	system, err := x509.SystemCertPool()
	if err != nil || system == nil {
		b.Skip("no system pool")
	}
	w := newAtomicWriter(b)
	w.writeLeaf(serverCA.issue(b, kECDSA, "client"), serverCA.pem)
	s := openT(b, w.options(true))
	client := s.ClientTLSConfig(&tls.Config{ServerName: "localhost", RootCAs: system})
	state := mustDial(b, srv.addr, client).state
	b.ReportAllocs()
	for b.Loop() {
		if err := client.VerifyConnection(state); err != nil {
			b.Fatal(err)
		}
	}
}
