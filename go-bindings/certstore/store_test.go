package certstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openT(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenAndCurrent(t *testing.T) {
	ca := newCA(t, "ca")
	for _, kt := range []keyType{kECDSA, kECDSA384, kRSA, kEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			w := newAtomicWriter(t)
			l := ca.issue(t, kt, "server")
			w.writeLeaf(l, ca.pem)
			s := openT(t, w.options(true))
			snap, err := s.Current()
			if err != nil {
				t.Fatal(err)
			}
			if snap.Generation != 1 {
				t.Errorf("generation %d, want 1", snap.Generation)
			}
			if snap.Certificate.Leaf == nil || !snap.Certificate.Leaf.Equal(l.cert) {
				t.Errorf("leaf not set or wrong")
			}
			if !sameSerial(snap.Serial, l.cert) || snap.Serial != strings.ToLower(snap.Serial) {
				t.Errorf("serial %q, want %s", snap.Serial, serialHex(l.cert))
			}
			if snap.FingerprintSHA256 != sha256.Sum256(l.cert.Raw) {
				t.Errorf("fingerprint mismatch")
			}
			if !snap.NotAfter.Equal(l.cert.NotAfter) || !snap.NotBefore.Equal(l.cert.NotBefore) {
				t.Errorf("validity %v..%v, want %v..%v", snap.NotBefore, snap.NotAfter, l.cert.NotBefore, l.cert.NotAfter)
			}
			if len(snap.CACerts) != 1 || !snap.CACerts[0].Equal(ca.cert) || snap.CAPool == nil {
				t.Errorf("CA certs %v", snap.CACerts)
			}
			// The key works: a real handshake with it.
			srv := startServer(t, s.ServerTLSConfig(nil))
			r := mustDial(t, srv.addr, rootsClient(ca))
			if !r.serverLeaf.Equal(l.cert) {
				t.Errorf("served leaf is not the file's")
			}
			st := s.Status()
			if st.Generation != 1 || st.ReloadsOK < 1 || st.LastError != nil || st.LastSuccess.IsZero() {
				t.Errorf("status %+v", st)
			}
			if !st.NotAfter.Equal(l.cert.NotAfter) {
				t.Errorf("status NotAfter %v, want %v", st.NotAfter, l.cert.NotAfter)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	l := ca.issue(t, kECDSA, "server")
	other := ca.issue(t, kECDSA, "other")
	w.writeLeaf(l, nil)

	_, err := Open(Options{CertFile: w.path("missing.crt"), KeyFile: w.path("tls.key")})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "missing.crt") || e.CodeName == "" {
		t.Errorf("missing file: %v (%#v)", err, e)
	}

	w.write(map[string][]byte{"tls.crt": l.certPEM, "tls.key": other.keyPEM})
	if _, err := Open(w.options(false)); err == nil {
		t.Errorf("mismatched key: no error")
	} else {
		t.Logf("mismatched key: %v", err)
	}

	if _, err := Open(Options{}); err == nil {
		t.Errorf("empty options: no error")
	}
}

// Acceptance 2: the first handshake after a kubelet-style rotation is published sees the new
// serial; a broken rotation keeps the old serial and reports why.
func TestRotationKubelet(t *testing.T) {
	for _, kt := range []keyType{kECDSA, kRSA} {
		t.Run(string(kt), func(t *testing.T) {
			ca := newCA(t, "ca")
			w := newAtomicWriter(t)
			l1 := ca.issue(t, kt, "gen1")
			w.writeLeaf(l1, nil)
			s := openT(t, w.options(false))
			ev := subscribe(t, s)
			srv := startServer(t, s.ServerTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
			client := rootsClient(ca)

			if r := mustDial(t, srv.addr, client); !r.serverLeaf.Equal(l1.cert) {
				t.Fatalf("gen1: wrong leaf")
			}

			l2 := ca.issue(t, kt, "gen2")
			w.writeLeaf(l2, nil)
			got := ev.wait(t, EventRotated)
			// First handshake after the rotation event: the new serial.
			r := mustDial(t, srv.addr, client)
			if !r.serverLeaf.Equal(l2.cert) {
				t.Fatalf("after rotation (gen %d): served serial %s, want %s", got.Generation, serialHex(r.serverLeaf), serialHex(l2.cert))
			}
			if got.Serial != serialHex(l2.cert) || !got.NotAfter.Equal(l2.cert.NotAfter) {
				t.Errorf("rotated event says serial %s notAfter %v, want %s %v", got.Serial, got.NotAfter, serialHex(l2.cert), l2.cert.NotAfter)
			}
			if got.Generation != 2 || s.Generation() != 2 {
				t.Errorf("generation event %d store %d, want 2", got.Generation, s.Generation())
			}

			// Broken rotation: a new cert with a key that does not match.
			l3 := ca.issue(t, kt, "gen3")
			w.write(map[string][]byte{"tls.crt": l3.certPEM, "tls.key": l1.keyPEM})
			bad := ev.wait(t, EventReloadFailed)
			if bad.Err == nil || bad.Generation != 2 {
				t.Fatalf("reload failed event %+v", bad)
			}
			t.Logf("reload failed: %v", bad.Err)
			if r := mustDial(t, srv.addr, client); !r.serverLeaf.Equal(l2.cert) {
				t.Fatalf("after a broken rotation: served %s, want the old %s", serialHex(r.serverLeaf), serialHex(l2.cert))
			}
			st := s.Status()
			if st.ReloadsFailed < 1 || st.LastError == nil || st.LastFailure.IsZero() || st.Generation != 2 {
				t.Fatalf("status after broken rotation: %+v", st)
			}
			if st.LastError.Error() != bad.Err.Error() {
				t.Logf("status error %q, event error %q", st.LastError, bad.Err)
			}
			if snap, _ := s.Current(); !sameSerial(snap.Serial, l2.cert) {
				t.Errorf("Current after broken rotation: %s", snap.Serial)
			}

			// Repair: the next good rotation is served and the error clears.
			l4 := ca.issue(t, kt, "gen4")
			w.writeLeaf(l4, nil)
			ev.wait(t, EventRotated)
			if r := mustDial(t, srv.addr, client); !r.serverLeaf.Equal(l4.cert) {
				t.Fatalf("after repair: wrong leaf")
			}
			if st := s.Status(); st.LastError != nil || st.Generation != 3 {
				t.Errorf("status after repair: %+v", st)
			}
		})
	}
}

// The handshake path compares the library's generation counter with the one it serves, so
// the first handshake after a rotation is published gets the new leaf even while the
// notifier's callback into Go is held back.
func TestHandshakeDoesNotWaitForTheCallback(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	l1 := ca.issue(t, kECDSA, "gen1")
	w.writeLeaf(l1, nil)
	s := openT(t, w.options(false))
	srv := startServer(t, s.ServerTLSConfig(nil))
	client := rootsClient(ca)

	release := make(chan struct{})
	hold := func() { <-release }
	testHookRotated.Store(&hold)
	t.Cleanup(func() { testHookRotated.Store(nil) })
	defer close(release)

	l2 := ca.issue(t, kECDSA, "gen2")
	w.writeLeaf(l2, nil)
	deadline := time.Now().Add(10 * time.Second)
	for s.libGeneration.load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the library did not publish generation 2")
		}
		time.Sleep(time.Millisecond)
	}
	if r := mustDial(t, srv.addr, client); !r.serverLeaf.Equal(l2.cert) {
		t.Fatalf("served %s while the callback was held, want %s", serialHex(r.serverLeaf), serialHex(l2.cert))
	}
}

// Without the watcher, Reload publishes at once and the next handshake has the new leaf.
func TestReloadWithoutWatch(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	l1 := ca.issue(t, kECDSA, "gen1")
	cert, key := dir+"/tls.crt", dir+"/tls.key"
	writeFile(t, cert, l1.certPEM)
	writeFile(t, key, l1.keyPEM)
	s := openT(t, Options{CertFile: cert, KeyFile: key, DisableWatch: true, ReloadInterval: -1})
	srv := startServer(t, s.ServerTLSConfig(nil))

	l2 := ca.issue(t, kECDSA, "gen2")
	writeFile(t, cert, l2.certPEM)
	writeFile(t, key, l2.keyPEM)
	time.Sleep(50 * time.Millisecond)
	if r := mustDial(t, srv.addr, rootsClient(ca)); !r.serverLeaf.Equal(l1.cert) {
		t.Fatalf("rotated without watch or reload")
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := mustDial(t, srv.addr, rootsClient(ca)); !r.serverLeaf.Equal(l2.cert) {
		t.Fatalf("Reload returned but the old leaf is served")
	}
	if err := s.Reload(); err != nil { // unchanged files: OK, same generation
		t.Fatal(err)
	}
	if s.Generation() != 2 {
		t.Errorf("generation %d, want 2", s.Generation())
	}

	l3 := ca.issue(t, kECDSA, "gen3")
	writeFile(t, cert, l3.certPEM) // key left behind: refused
	if err := s.Reload(); err == nil {
		t.Errorf("Reload of a mismatched pair returned nil")
	} else if st := s.Status(); st.LastError == nil {
		t.Errorf("Status has no LastError after a failed Reload: %+v", st)
	}
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Acceptance 3: >= 4 goroutines do back-to-back handshakes while 50 rotations happen; no
// handshake fails and each gets a leaf that was being served (and valid) at that moment.
func TestHandshakesDuringRotations(t *testing.T) {
	const workers, rotations = 6, 50
	ca := newCA(t, "ca")
	leaves := make([]*leaf, rotations+1)
	for i := range leaves {
		leaves[i] = ca.issue(t, kECDSA, "gen")
	}
	w := newAtomicWriter(t)
	w.writeLeaf(leaves[0], nil)
	s := openT(t, w.options(false))
	ev := subscribe(t, s)
	srv := startServer(t, s.ServerTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))

	// generation at which each serial was published
	var pubMu sync.Mutex
	published := map[string]uint64{serialHex(leaves[0].cert): 1}

	type obs struct {
		serial        string
		before, after uint64
		at            time.Time
		leaf          *x509.Certificate
	}
	var stop atomic.Bool
	var failures atomic.Int64
	var total atomic.Int64
	results := make([][]obs, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := rootsClient(ca) // full verification: chain, validity now, name
			for !stop.Load() {
				before := s.Generation()
				r, err := dial(srv.addr, client)
				after := s.Generation()
				total.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("handshake failed: %v", err)
					continue
				}
				results[i] = append(results[i], obs{serialHex(r.serverLeaf), before, after, time.Now(), r.serverLeaf})
			}
		}()
	}
	for i := 1; i <= rotations; i++ {
		w.writeLeaf(leaves[i], nil)
		waitServing(t, s, ev, leaves[i].cert)
		pubMu.Lock()
		published[serialHex(leaves[i].cert)] = s.Generation()
		pubMu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d handshakes failed", f, total.Load())
	}
	n := 0
	seen := map[string]bool{}
	for _, rs := range results {
		for _, o := range rs {
			n++
			gen, ok := published[o.serial]
			if !ok {
				t.Fatalf("served a serial that was never published: %s", o.serial)
			}
			// The serial served was current at some point during the handshake.
			if gen < o.before || gen > o.after {
				t.Errorf("serial %s (gen %d) served during gens [%d, %d]", o.serial, gen, o.before, o.after)
			}
			if o.at.Before(o.leaf.NotBefore) || o.at.After(o.leaf.NotAfter) {
				t.Errorf("leaf %s not valid at %v", o.serial, o.at)
			}
			seen[o.serial] = true
		}
	}
	if s.Generation() != rotations+1 {
		t.Errorf("generation %d, want %d", s.Generation(), rotations+1)
	}
	t.Logf("%d handshakes by %d goroutines across %d rotations, %d distinct leaves seen, 0 failures", n, workers, rotations, len(seen))
	for i, rs := range results {
		if len(rs) < 5 {
			t.Errorf("worker %d did only %d handshakes", i, len(rs))
		}
	}
}

// Acceptance 4: mTLS with client_auth require; during a CA overlap clients of the old and the
// new CA connect, after it only the new one.
func TestMTLSCAOverlap(t *testing.T) {
	serverCA := newCA(t, "server-ca")
	oldCA, newCA_ := newCA(t, "client-ca-1"), newCA(t, "client-ca-2")
	srvLeaf := serverCA.issue(t, kECDSA, "server")
	oldClient := oldCA.issue(t, kECDSA, "client-old")
	newClient := newCA_.issue(t, kECDSA, "client-new")
	clientCfg := func(l *leaf) *tls.Config {
		c := rootsClient(serverCA)
		c.Certificates = []tls.Certificate{l.tlsCert(t)}
		return c
	}
	base := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}

	t.Run("fake-clock", func(t *testing.T) {
		w := newAtomicWriter(t)
		w.writeLeaf(srvLeaf, oldCA.pem)
		clock := newFakeClock()
		o := w.options(true)
		o.CAOverlap = time.Hour
		s, err := open(o, clock.now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ev := subscribe(t, s)
		srv := startServer(t, s.ServerTLSConfig(base))

		if r := mustDial(t, srv.addr, clientCfg(oldClient)); r.clientSeen != serialHex(oldClient.cert) {
			t.Fatalf("old client: server saw %q", r.clientSeen)
		}
		if _, err := dial(srv.addr, clientCfg(newClient)); err == nil {
			t.Fatalf("new-CA client accepted before the CA rotation")
		}
		if _, err := dial(srv.addr, rootsClient(serverCA)); err == nil {
			t.Fatalf("client without a certificate accepted with client_auth require")
		}

		w.writeLeaf(srvLeaf, newCA_.pem) // CA rotation only
		ev.wait(t, EventRotated)
		clock.advance(59 * time.Minute)
		mustDial(t, srv.addr, clientCfg(oldClient))
		mustDial(t, srv.addr, clientCfg(newClient))
		oldResume := clientCfg(oldClient) // holds a session ticket from the overlap
		oldResume.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		mustDial(t, srv.addr, oldResume)
		if r := mustDial(t, srv.addr, oldResume); !r.state.DidResume {
			t.Errorf("old-CA client did not resume during the overlap")
		}
		if snap, _ := s.Current(); len(snap.CACerts) != 1 || !snap.CACerts[0].Equal(newCA_.cert) {
			t.Errorf("CACerts during overlap: want only the new CA")
		}

		clock.advance(2 * time.Minute) // overlap over: the next handshake drops the old CA
		if _, err := dial(srv.addr, clientCfg(oldClient)); err == nil {
			t.Fatalf("old-CA client accepted after the overlap")
		}
		// crypto/tls re-verifies a resumed client chain against the current ClientCAs.
		if r, err := dial(srv.addr, oldResume); err == nil {
			t.Fatalf("old-CA client accepted after the overlap through its session ticket (resumed %v)", r.state.DidResume)
		}
		mustDial(t, srv.addr, clientCfg(newClient))
	})

	t.Run("timer", func(t *testing.T) {
		const overlap = 400 * time.Millisecond
		w := newAtomicWriter(t)
		w.writeLeaf(srvLeaf, oldCA.pem)
		o := w.options(true)
		o.CAOverlap = overlap
		s := openT(t, o)
		ev := subscribe(t, s)
		srv := startServer(t, s.ServerTLSConfig(base))
		w.writeLeaf(srvLeaf, newCA_.pem)
		ev.wait(t, EventRotated)
		rotated := time.Now()
		_, errOld := dial(srv.addr, clientCfg(oldClient))
		_, errNew := dial(srv.addr, clientCfg(newClient))
		if time.Since(rotated) < overlap { // only meaningful inside the window
			if errOld != nil || errNew != nil {
				t.Fatalf("during overlap: old %v, new %v", errOld, errNew)
			}
		}
		// The timer drops the old CA with no handshake needed.
		deadline := time.Now().Add(5 * time.Second)
		for s.current().snap.CAPool.Equal(poolOf(oldCA, newCA_)) {
			if time.Now().After(deadline) {
				t.Fatalf("overlap never ended")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if time.Since(rotated) < overlap-50*time.Millisecond {
			t.Errorf("overlap ended after %v, want >= %v", time.Since(rotated), overlap)
		}
		if _, err := dial(srv.addr, clientCfg(oldClient)); err == nil {
			t.Fatalf("old-CA client accepted after the overlap")
		}
		mustDial(t, srv.addr, clientCfg(newClient))
	})

	t.Run("no-overlap", func(t *testing.T) {
		w := newAtomicWriter(t)
		w.writeLeaf(srvLeaf, oldCA.pem)
		s := openT(t, w.options(true))
		ev := subscribe(t, s)
		srv := startServer(t, s.ServerTLSConfig(base))
		w.writeLeaf(srvLeaf, newCA_.pem)
		ev.wait(t, EventRotated)
		if _, err := dial(srv.addr, clientCfg(oldClient)); err == nil {
			t.Fatalf("old-CA client accepted with CAOverlap 0")
		}
		mustDial(t, srv.addr, clientCfg(newClient))
	})
}

func poolOf(cas ...*testCA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c.cert)
	}
	return p
}

// Acceptance 5: ClientTLSConfig follows a rotation of its own certificate and of the server's
// CA, and refuses a server whose name does not match.
func TestClientTLSConfig(t *testing.T) {
	serverCA1, serverCA2 := newCA(t, "server-ca-1"), newCA(t, "server-ca-2")
	clientCA := newCA(t, "client-ca")
	srvLeaf1 := serverCA1.issue(t, kECDSA, "server-1")
	srvLeaf2 := serverCA2.issue(t, kRSA, "server-2")
	cl1 := clientCA.issue(t, kECDSA, "client-1")
	cl2 := clientCA.issue(t, kRSA, "client-2")

	// The server is a certstore server too (mTLS, client CAs = clientCA).
	sw := newAtomicWriter(t)
	sw.writeLeaf(srvLeaf1, clientCA.pem)
	ss := openT(t, sw.options(true))
	sev := subscribe(t, ss)
	srv := startServer(t, ss.ServerTLSConfig(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}))

	cw := newAtomicWriter(t)
	cw.writeLeaf(cl1, serverCA1.pem)
	cs := openT(t, cw.options(true))
	cev := subscribe(t, cs)
	client := cs.ClientTLSConfig(&tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if client.InsecureSkipVerify != true || client.VerifyConnection == nil {
		t.Fatalf("client config does not verify through VerifyConnection")
	}

	r := mustDial(t, srv.addr, client)
	if !r.serverLeaf.Equal(srvLeaf1.cert) || r.clientSeen != serialHex(cl1.cert) {
		t.Fatalf("gen1: server leaf %s, client seen %s", serialHex(r.serverLeaf), r.clientSeen)
	}

	// The client's own certificate rotates.
	cw.writeLeaf(cl2, serverCA1.pem)
	cev.wait(t, EventRotated)
	if r := mustDial(t, srv.addr, client); r.clientSeen != serialHex(cl2.cert) {
		t.Fatalf("client cert rotation: server saw %s, want %s", r.clientSeen, serialHex(cl2.cert))
	}

	// The server moves to a certificate of a new CA: the client refuses it until its own CA
	// bundle rotates too.
	sw.writeLeaf(srvLeaf2, clientCA.pem)
	sev.wait(t, EventRotated)
	if _, err := dial(srv.addr, client); err == nil {
		t.Fatalf("client accepted a server of a CA it does not trust")
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("unexpected error: %v", err)
	}
	cw.writeLeaf(cl2, serverCA2.pem)
	cev.wait(t, EventRotated)
	if r := mustDial(t, srv.addr, client); !r.serverLeaf.Equal(srvLeaf2.cert) {
		t.Fatalf("after the client's CA rotation: wrong server leaf")
	}

	// Name checks.
	wrong := cs.ClientTLSConfig(&tls.Config{ServerName: "wrong.example"})
	if _, err := dial(srv.addr, wrong); err == nil || !strings.Contains(err.Error(), "valid for") {
		t.Fatalf("server name mismatch: %v", err)
	}
	noName := cs.ClientTLSConfig(nil) // dialling 127.0.0.1 sends no SNI: no name to verify
	if _, err := dial(srv.addr, noName); err == nil || !errors.Is(err, errNoServerName) {
		t.Fatalf("no server name: %v", err)
	}
	ip := cs.ClientTLSConfig(&tls.Config{ServerName: "127.0.0.1"}) // IP SAN checked
	mustDial(t, srv.addr, ip)
	if _, err := dial(srv.addr, cs.ClientTLSConfig(&tls.Config{ServerName: "127.0.0.2"})); err == nil {
		t.Fatalf("IP mismatch accepted")
	}

	// Resumed connections are verified too, against the current roots.
	resume := cs.ClientTLSConfig(&tls.Config{ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8)})
	mustDial(t, srv.addr, resume)
	if r := mustDial(t, srv.addr, resume); !r.state.DidResume {
		t.Errorf("client did not resume")
	}
	cw.writeLeaf(cl2, serverCA1.pem) // the client stops trusting serverCA2
	cev.wait(t, EventRotated)
	if _, err := dial(srv.addr, resume); err == nil {
		t.Fatalf("resumed connection to a no longer trusted server accepted")
	}
}

// Session tickets issued before a rotation still resume after it (explicit ticket keys).
func TestSessionResumptionAcrossRotation(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			ca := newCA(t, "ca")
			w := newAtomicWriter(t)
			w.writeLeaf(ca.issue(t, kECDSA, "gen1"), nil)
			s := openT(t, w.options(false))
			ev := subscribe(t, s)
			srv := startServer(t, s.ServerTLSConfig(nil))
			client := rootsClient(ca)
			client.MaxVersion = v
			client.ClientSessionCache = tls.NewLRUClientSessionCache(8)

			if r := mustDial(t, srv.addr, client); r.state.DidResume {
				t.Fatalf("first handshake resumed")
			}
			w.writeLeaf(ca.issue(t, kECDSA, "gen2"), nil)
			ev.wait(t, EventRotated)
			if r := mustDial(t, srv.addr, client); !r.state.DidResume {
				t.Fatalf("no resumption across a rotation")
			}
			// The daily ticket key rotation keeps older keys: tickets still resume.
			s.rotateTicketKeys()
			if got := len(s.current().ticketKeys); got != 2 {
				t.Fatalf("%d ticket keys after one rotation, want 2", got)
			}
			if r := mustDial(t, srv.addr, client); !r.state.DidResume {
				t.Fatalf("no resumption after a ticket key rotation")
			}
			for range ticketKeysKept + 2 {
				s.rotateTicketKeys()
			}
			if got := len(s.current().ticketKeys); got != ticketKeysKept {
				t.Fatalf("%d ticket keys kept, want %d", got, ticketKeysKept)
			}
		})
	}
}

func TestServerTLSConfigKeepsBase(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	w.writeLeaf(ca.issue(t, kECDSA, "srv"), ca.pem)
	s := openT(t, w.options(true))
	base := &tls.Config{
		NextProtos:       []string{"h2", "http/1.1"},
		MinVersion:       tls.VersionTLS12,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		ClientAuth:       tls.VerifyClientCertIfGiven,
	}
	outer := s.ServerTLSConfig(base)
	cfg, err := outer.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(cfg.NextProtos, base.NextProtos) || cfg.MinVersion != base.MinVersion || cfg.MaxVersion != base.MaxVersion ||
		len(cfg.CipherSuites) != 1 || cfg.CipherSuites[0] != base.CipherSuites[0] ||
		len(cfg.CurvePreferences) != 2 || cfg.ClientAuth != base.ClientAuth {
		t.Errorf("base settings lost: %+v", cfg)
	}
	if len(cfg.Certificates) != 1 || cfg.ClientCAs == nil || cfg.GetConfigForClient != nil || cfg.GetCertificate != nil {
		t.Errorf("certificate/CAs not set as expected")
	}
	if cfg2, _ := outer.GetConfigForClient(&tls.ClientHelloInfo{}); cfg2 != cfg {
		t.Errorf("config not cached per generation")
	}
	base.NextProtos[0] = "mutated"
	if cfg3, _ := outer.GetConfigForClient(&tls.ClientHelloInfo{}); cfg3.NextProtos[0] != "h2" {
		t.Errorf("config shares base's slices")
	}

	g := s.GRPCServerTLSConfig(&tls.Config{NextProtos: []string{"x"}})
	gc, _ := g.GetConfigForClient(&tls.ClientHelloInfo{})
	if !equalStrings(gc.NextProtos, []string{"h2", "x"}) {
		t.Errorf("GRPCServerTLSConfig NextProtos %v", gc.NextProtos)
	}

	// ALPN h2 negotiated on a real handshake through the returned config.
	srv := startServer(t, s.GRPCServerTLSConfig(nil))
	client := rootsClient(ca)
	client.NextProtos = []string{"h2"}
	if r := mustDial(t, srv.addr, client); r.state.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN %q, want h2", r.state.NegotiatedProtocol)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The hot path allocates nothing when nothing rotated.
func TestGetConfigForClientNoAlloc(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	w.writeLeaf(ca.issue(t, kECDSA, "srv"), nil)
	s := openT(t, w.options(false))
	cfg := s.ServerTLSConfig(nil)
	hello := &tls.ClientHelloInfo{}
	if n := testing.AllocsPerRun(1000, func() { _, _ = cfg.GetConfigForClient(hello) }); n != 0 {
		t.Errorf("GetConfigForClient: %v allocs/op, want 0", n)
	}
}

// Close is idempotent, safe while handshakes run, and the configs keep serving the last
// generation after it.
func TestCloseWhileHandshaking(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	l := ca.issue(t, kECDSA, "srv")
	w.writeLeaf(l, nil)
	s, err := Open(w.options(false))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s.ServerTLSConfig(nil))
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := dial(srv.addr, rootsClient(ca)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d handshakes failed around Close", failed.Load())
	}
	if r := mustDial(t, srv.addr, rootsClient(ca)); !r.serverLeaf.Equal(l.cert) {
		t.Errorf("after Close: wrong leaf")
	}
	if _, err := s.Current(); !errors.Is(err, ErrClosed) {
		t.Errorf("Current after Close: %v", err)
	}
	if err := s.Reload(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v", err)
	}
	if st := s.Status(); !errors.Is(st.LastError, ErrClosed) || st.Generation != 1 {
		t.Errorf("Status after Close: %+v", st)
	}
	s.Subscribe(func(Event) {})() // no-op, no panic
}

// A subscriber may call Close (it runs on a Go goroutine, not the library's thread), and a
// canceled subscriber receives nothing more.
func TestSubscribeCancelAndCloseFromCallback(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	w.writeLeaf(ca.issue(t, kECDSA, "gen1"), nil)
	s, err := Open(w.options(false))
	if err != nil {
		t.Fatal(err)
	}
	var canceledCalls atomic.Int64
	cancel := s.Subscribe(func(Event) { canceledCalls.Add(1) })
	cancel()
	cancel() // idempotent

	closed := make(chan error, 1)
	s.Subscribe(func(ev Event) {
		if ev.Kind == EventRotated {
			closed <- s.Close()
		}
	})
	w.writeLeaf(ca.issue(t, kECDSA, "gen2"), nil)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from a subscriber: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no rotation event")
	}
	if canceledCalls.Load() != 0 {
		t.Errorf("canceled subscriber called %d times", canceledCalls.Load())
	}
}

// The PEM buffers copied from the library are wiped once the tls.Certificate is built.
func TestBuildSnapshotWipesPEM(t *testing.T) {
	ca := newCA(t, "ca")
	l := ca.issue(t, kRSA, "srv")
	raw := &rawSnapshot{generation: 1, certPEM: bytes.Clone(l.certPEM), keyPEM: bytes.Clone(l.keyPEM), caPEM: ca.pem}
	snap, err := buildSnapshot(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Certificate.Leaf.Equal(l.cert) || snap.Certificate.PrivateKey == nil {
		t.Fatalf("bad certificate")
	}
	if bytes.ContainsFunc(raw.keyPEM, func(r rune) bool { return r != 0 }) || bytes.ContainsFunc(raw.certPEM, func(r rune) bool { return r != 0 }) {
		t.Errorf("PEM buffers not wiped")
	}
}

// Every Options field reaches the library.
func TestOptionsMapping(t *testing.T) {
	ca := newCA(t, "ca")

	t.Run("MaxFileSize", func(t *testing.T) {
		w := newAtomicWriter(t)
		w.writeLeaf(ca.issue(t, kRSA, "srv"), nil)
		o := w.options(false)
		o.MaxFileSize = 64
		if _, err := Open(o); err == nil {
			t.Fatalf("a 64-byte limit accepted a certificate")
		} else {
			t.Logf("%v", err)
		}
	})

	t.Run("AllowInvalidValidity", func(t *testing.T) {
		k := genKey(t, kECDSA)
		expired := ca.issueKey(t, k, "expired")
		tmpl := *expired.cert
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, k.Public(), ca.key)
		if err != nil {
			t.Fatal(err)
		}
		w := newAtomicWriter(t)
		w.write(map[string][]byte{"tls.crt": pemCert(der), "tls.key": expired.keyPEM})
		if _, err := Open(w.options(false)); err == nil {
			t.Fatalf("expired leaf accepted by default")
		}
		o := w.options(false)
		o.AllowInvalidValidity = true
		s := openT(t, o)
		if snap, _ := s.Current(); !snap.NotAfter.Before(time.Now()) {
			t.Fatalf("NotAfter %v", snap.NotAfter)
		}
	})

	t.Run("ReloadInterval", func(t *testing.T) {
		// No watcher: only the re-read timer can see the change.
		dir := t.TempDir()
		l1, l2 := ca.issue(t, kECDSA, "gen1"), ca.issue(t, kECDSA, "gen2")
		cert, key := dir+"/tls.crt", dir+"/tls.key"
		writeFile(t, cert, l1.certPEM)
		writeFile(t, key, l1.keyPEM)
		s := openT(t, Options{CertFile: cert, KeyFile: key, DisableWatch: true, ReloadInterval: 100 * time.Millisecond})
		ev := subscribe(t, s)
		writeFile(t, key, l2.keyPEM)
		writeFile(t, cert, l2.certPEM)
		ev.wait(t, EventRotated)
		if snap, _ := s.Current(); !sameSerial(snap.Serial, l2.cert) {
			t.Fatalf("re-read timer did not publish the new pair")
		}
	})
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Every method used concurrently while files rotate, then Close in the middle of it all: no
// race, no deadlock, no panic, no use after free.
func TestConcurrentAPIAndClose(t *testing.T) {
	ca := newCA(t, "ca")
	w := newAtomicWriter(t)
	w.writeLeaf(ca.issue(t, kECDSA, "gen1"), ca.pem)
	o := w.options(true)
	o.CAOverlap = 50 * time.Millisecond
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s.ServerTLSConfig(nil))
	client := s.ClientTLSConfig(&tls.Config{ServerName: "localhost"})
	var stop atomic.Bool
	var wg sync.WaitGroup
	loop := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				f()
			}
		}()
	}
	loop(func() { _, _ = s.Current() })
	loop(func() { _ = s.Status() })
	loop(func() { _ = s.Reload(); time.Sleep(time.Millisecond) })
	loop(func() { s.Subscribe(func(Event) {})() })
	loop(func() { _, _ = dial(srv.addr, client) })
	leaves := make([]*leaf, 10)
	for i := range leaves {
		leaves[i] = ca.issue(t, kECDSA, "gen")
	}
	cas := []*testCA{ca, newCA(t, "ca2")}
	for i, l := range leaves {
		w.writeLeaf(l, append(bytes.Clone(ca.pem), cas[i%2].pem...))
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Close deadlocked")
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
}
