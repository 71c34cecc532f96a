package certstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// issueUntil signs a client/server leaf valid until notAfter.
func (ca *testCA) issueUntil(t testing.TB, cn string, notAfter time.Time) *leaf {
	t.Helper()
	k := genKey(t, kECDSA)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &leaf{cert: c, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM: keyPEM(t, k), key: k}
}

// revocations collects what a guard's OnRevoke reports.
type revocations struct {
	mu  sync.Mutex
	all []Revocation
}

func (r *revocations) add(rv Revocation) { r.mu.Lock(); r.all = append(r.all, rv); r.mu.Unlock() }

// wait polls until n revocations were reported (OnRevoke runs after the connection is closed)
// and returns them.
func (r *revocations) wait(t *testing.T, n int) []Revocation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.list()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return r.list()
}
func (r *revocations) list() []Revocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Revocation(nil), r.all...)
}

// streamingServer serves GET /stream: one line every 20 ms for as long as the client reads,
// over a listener whose connections the guard watches.
func streamingServer(t *testing.T, g *ConnGuard, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})}
	go func() { _ = srv.Serve(g.Listener(ln, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// stream is one long-lived response read line by line on its own connection.
type stream struct {
	mu    sync.Mutex
	lines int
	err   error
	done  bool
	proto string
}

func openStream(t *testing.T, addr string, cfg *tls.Config) *stream {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/stream", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	s := &stream{proto: resp.Proto}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.mu.Lock()
			s.lines++
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.done, s.err = true, sc.Err()
		s.mu.Unlock()
	}()
	return s
}

func (s *stream) state() (lines int, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines, s.done
}

// waitEnded polls until the stream ended (generous timeout: a shared, noisy machine).
func (s *stream) waitEnded(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, done := s.state(); done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stream still open after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertAlive checks the stream is open and still receives lines.
func (s *stream) assertAlive(t *testing.T, what string) {
	t.Helper()
	before, _ := s.state()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, done := s.state()
		if done {
			t.Fatalf("%s: stream ended (%v)", what, s.err)
		}
		if n > before+2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new line in 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func clientWith(serverCA *testCA, l *leaf, t *testing.T) *tls.Config {
	c := rootsClient(serverCA)
	if l != nil {
		c.Certificates = []tls.Certificate{l.tlsCert(t)}
	}
	return c
}

// A CA rotation with an overlap: nothing is revoked while the overlap lasts; when it ends the
// live connection of the old CA's client is closed, the new CA's client and (verify_if_given)
// a client without a certificate keep theirs. Over HTTP/2 and HTTP/1.1.
func TestConnGuardCARotationHTTP(t *testing.T) {
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			serverCA, oldCA, newCA_ := newCA(t, "server-ca"), newCA(t, "client-ca-old"), newCA(t, "client-ca-new")
			w := newAtomicWriter(t)
			w.writeLeaf(serverCA.issue(t, kECDSA, "server"), oldCA.pem)
			clock := newFakeClock()
			o := w.options(true)
			o.CAOverlap = time.Hour
			s, err := open(o, clock.now)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ev := subscribe(t, s)
			var revoked revocations
			g := s.NewConnGuard(GuardOptions{OnRevoke: revoked.add})
			defer g.Close()
			addr := streamingServer(t, g, s.ServerTLSConfig(&tls.Config{
				ClientAuth: tls.VerifyClientCertIfGiven,
				NextProtos: []string{proto},
			}))

			// (A new connection of the old client after the overlap would be anonymous here:
			// crypto/tls sends no certificate the server's CA list does not name.)
			oldClient := oldCA.issue(t, kECDSA, "client-old")
			oldStream := openStream(t, addr, clientWith(serverCA, oldClient, t))
			noCert := openStream(t, addr, clientWith(serverCA, nil, t))
			if oldStream.proto != map[string]string{"h2": "HTTP/2.0", "http/1.1": "HTTP/1.1"}[proto] {
				t.Fatalf("protocol %s, want %s", oldStream.proto, proto)
			}
			if g.Watched() != 1 {
				t.Fatalf("watched %d connections, want 1 (the client without a certificate is not watched)", g.Watched())
			}

			// The bundle gains the new CA and loses the old one: the overlap keeps the old.
			w.writeLeaf(serverCA.issue(t, kECDSA, "server"), newCA_.pem)
			ev.wait(t, EventRotated)
			newStream := openStream(t, addr, clientWith(serverCA, newCA_.issue(t, kECDSA, "client-new"), t))
			oldStream.assertAlive(t, "old-CA client during the overlap")
			if n := len(revoked.list()); n != 0 {
				t.Fatalf("%d connections revoked during the overlap", n)
			}

			clock.advance(61 * time.Minute)
			s.current() // the end of the overlap is noticed
			oldStream.waitEnded(t, "old-CA client after the overlap")
			newStream.assertAlive(t, "new-CA client")
			noCert.assertAlive(t, "client without a certificate")

			got := revoked.wait(t, 1)
			if len(got) != 1 || got[0].Reason != RevokedCARemoved || got[0].Serial != serialHex(oldClient.cert) ||
				got[0].Subject != "CN=client-old" {
				t.Fatalf("revocations: %+v", got)
			}
			if g.Watched() != 1 {
				t.Errorf("watched %d connections after the revocation, want 1", g.Watched())
			}
		})
	}
}

// A client certificate that reaches its notAfter mid-connection: that connection is closed
// (after the notAfter, never before), the other client's stays.
func TestConnGuardPeerExpiry(t *testing.T) {
	serverCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	w := newAtomicWriter(t)
	w.writeLeaf(serverCA.issue(t, kECDSA, "server"), clientCA.pem)
	s := openT(t, w.options(true))
	var revoked revocations
	g := s.NewConnGuard(GuardOptions{OnRevoke: revoked.add})
	defer g.Close()
	addr := streamingServer(t, g, s.ServerTLSConfig(&tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{"h2"},
	}))

	notAfter := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second) // x509 keeps seconds
	if time.Until(notAfter) < 300*time.Millisecond {
		notAfter = notAfter.Add(time.Second)
	}
	short := clientCA.issueUntil(t, "client-short", notAfter)
	shortStream := openStream(t, addr, clientWith(serverCA, short, t))
	longStream := openStream(t, addr, clientWith(serverCA, clientCA.issue(t, kECDSA, "client-long"), t))

	shortStream.waitEnded(t, "client past its notAfter")
	if ended := time.Now(); ended.Before(notAfter) {
		t.Fatalf("connection closed at %v, before the certificate's notAfter %v", ended, notAfter)
	}
	longStream.assertAlive(t, "client whose certificate is valid")
	got := revoked.wait(t, 1)
	if len(got) != 1 || got[0].Reason != RevokedPeerExpired || got[0].Serial != serialHex(short.cert) {
		t.Fatalf("revocations: %+v", got)
	}
}

// A connection whose handshake chose its CAs before a trust change, and registered after the
// guard's check of that change, is checked on registration.
func TestConnGuardWatchAfterTrustChange(t *testing.T) {
	serverCA, oldCA, newCA_ := newCA(t, "server-ca"), newCA(t, "client-ca-old"), newCA(t, "client-ca-new")
	w := newAtomicWriter(t)
	w.writeLeaf(serverCA.issue(t, kECDSA, "server"), oldCA.pem)
	s := openT(t, w.options(true))
	ev := subscribe(t, s)
	var revoked revocations
	g := s.NewConnGuard(GuardOptions{OnRevoke: revoked.add})
	defer g.Close()

	client, server := net.Pipe()
	defer client.Close()
	wrapped := g.Wrap(server) // before the change
	oldClient := oldCA.issue(t, kECDSA, "client-old")
	done := make(chan tls.ConnectionState, 1)
	go func() {
		tc := tls.Server(wrapped, s.ServerTLSConfig(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, SessionTicketsDisabled: true}))
		_ = tc.Handshake()
		done <- tc.ConnectionState()
		_, _ = tc.Read(make([]byte, 1))
	}()
	tc := tls.Client(client, clientWith(serverCA, oldClient, t))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cs := <-done
	w.writeLeaf(serverCA.issue(t, kECDSA, "server"), newCA_.pem)
	ev.wait(t, EventRotated)
	g.Watch(wrapped, cs) // after the change
	deadline := time.Now().Add(10 * time.Second)
	for len(revoked.list()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection verified against the old CAs not revoked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := revoked.list(); got[0].Reason != RevokedCARemoved {
		t.Fatalf("revocations: %+v", got)
	}
}

// resumptions dials ln three times with client (which keeps a session cache) and reports
// whether each handshake resumed a session.
func resumptions(t *testing.T, ln net.Listener, client *tls.Config) []bool {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				// The client reads this byte, so it has processed the session ticket sent
				// before it.
				_, _ = tc.Write([]byte("x"))
				_, _ = io.Copy(io.Discard, tc)
			}()
		}
	}()
	var out []bool
	for range 3 {
		c, err := tls.Dial("tcp", ln.Addr().String(), client)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.ConnectionState().DidResume)
		_ = c.Close()
	}
	return out
}

// Sessions resume through Listener as through tls.NewListener, for a config with automatic
// session ticket keys as for ServerTLSConfig.
func TestGuardListenerResumesSessions(t *testing.T) {
	serverCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	w := newAtomicWriter(t)
	w.writeLeaf(serverCA.issue(t, kECDSA, "server"), clientCA.pem)
	s := openT(t, w.options(true))
	g := s.NewConnGuard(GuardOptions{})
	defer g.Close()
	plain := &tls.Config{Certificates: []tls.Certificate{serverCA.issue(t, kECDSA, "server").tlsCert(t)}}
	for name, cfg := range map[string]*tls.Config{"plain": plain, "ServerTLSConfig": s.ServerTLSConfig(nil)} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client := rootsClient(serverCA)
			client.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			if got, want := fmt.Sprint(resumptions(t, g.Listener(ln, cfg), client)), "[false true true]"; got != want {
				t.Errorf("resumed through the guard's listener: %s, want %s", got, want)
			}
		})
	}
}

// A CA bundle written in place by a non-atomic writer can be read half-way: the store then
// publishes a valid bundle that lacks a CA for a moment. Replaced by [new] and back to
// [new, old] at once, the old CA's client keeps its connection; a real removal still closes
// it.
func TestConnGuardIgnoresTransientCARemoval(t *testing.T) {
	serverCA, oldCA, newCA_ := newCA(t, "server-ca"), newCA(t, "client-ca-old"), newCA(t, "client-ca-new")
	w := newAtomicWriter(t)
	srvLeaf := serverCA.issue(t, kECDSA, "server")
	w.writeLeaf(srvLeaf, append(append([]byte{}, newCA_.pem...), oldCA.pem...))
	s := openT(t, w.options(true))
	var revoked revocations
	g := s.NewConnGuard(GuardOptions{OnRevoke: revoked.add})
	defer g.Close()
	addr := streamingServer(t, g, s.ServerTLSConfig(&tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{"h2"},
	}))
	oldStream := openStream(t, addr, clientWith(serverCA, oldCA.issue(t, kECDSA, "client-old"), t))
	if g.Watched() != 1 {
		t.Fatalf("watched %d connections, want 1", g.Watched())
	}

	// waitTrust polls until the store published a trust after seq, and returns its seq.
	waitTrust := func(seq uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.current().trustSeq == seq {
			if time.Now().After(deadline) {
				t.Fatal("no new trust published in 10s")
			}
			time.Sleep(time.Millisecond)
		}
		return s.current().trustSeq
	}
	seq := s.current().trustSeq
	w.writeLeaf(srvLeaf, newCA_.pem)
	seq = waitTrust(seq)
	transientFrom := time.Now()
	w.writeLeaf(srvLeaf, append(append([]byte{}, newCA_.pem...), oldCA.pem...))
	seq = waitTrust(seq)
	transient := time.Since(transientFrom)
	t.Logf("the one-CA bundle was served for %v", transient)
	if transient >= trustSettle/2 {
		t.Skipf("the transient bundle lasted %v on this machine, not well under the guard's settle (%v)", transient, trustSettle)
	}
	oldStream.assertAlive(t, "old-CA client after a transient bundle without its CA")
	time.Sleep(2 * trustSettle) // the guard's check has run by now
	oldStream.assertAlive(t, "old-CA client after the guard's check")
	if n := len(revoked.list()); n != 0 {
		t.Fatalf("%d connections revoked by a transient bundle", n)
	}

	removed := time.Now()
	w.writeLeaf(srvLeaf, newCA_.pem)
	oldStream.waitEnded(t, "old-CA client after its CA was removed")
	t.Logf("closed %v after the CA bundle without its CA was written", time.Since(removed))
	if got := revoked.wait(t, 1); len(got) != 1 || got[0].Reason != RevokedCARemoved {
		t.Fatalf("revocations: %+v", got)
	}
}
