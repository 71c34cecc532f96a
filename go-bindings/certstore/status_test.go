package certstore

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"
)

// waitStatus polls Status until cond holds (the library records the disk generation on its
// watcher thread), or fails after 10s with the last Status.
func waitStatus(t *testing.T, s *Store, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Served versus disk through a kubelet-style sequence: equal after load, different (with the
// refused leaf's serial and notAfter and the stable reason) while a mismatched pair sits on
// disk, equal again once the served files come back, and a good rotation after that.
func TestStatusServedVersusDisk(t *testing.T) {
	ca := newCA(t, "status-ca")
	w := newAtomicWriter(t)
	l1 := ca.issue(t, kECDSA, "gen1")
	w.writeLeaf(l1, ca.pem)
	o := w.options(true)
	o.ReloadInterval = -1
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := subscribe(t, s)

	st := s.Status()
	if st.DiskDiffers || st.DiskReason != "" || !st.DiskDiffersSince.IsZero() || st.LastError != nil {
		t.Fatalf("after load: disk differs %v reason %q since %v last error %v", st.DiskDiffers, st.DiskReason, st.DiskDiffersSince, st.LastError)
	}

	// A refused rotation: the kubelet publishes a new certificate with the old key.
	l2 := ca.issue(t, kECDSA, "gen2")
	before := time.Now().Add(-time.Second) // the library's clock has millisecond resolution
	w.write(map[string][]byte{"tls.crt": l2.certPEM, "tls.key": l1.keyPEM, "ca.crt": ca.pem})
	ev := events.wait(t, EventReloadFailed)
	if ev.Reason != "key_mismatch" {
		t.Errorf("event reason %q, want key_mismatch (err %v)", ev.Reason, ev.Err)
	}
	var evErr *Error
	if !errors.As(ev.Err, &evErr) || evErr.Reason != "key_mismatch" {
		t.Errorf("event error %#v: want an *Error with Reason key_mismatch", ev.Err)
	}
	st = waitStatus(t, s, "disk differs", func(st Status) bool { return st.DiskDiffers })
	if st.DiskReason != "key_mismatch" {
		t.Errorf("DiskReason %q, want key_mismatch", st.DiskReason)
	}
	if !sameSerial(st.DiskSerial, l2.cert) {
		t.Errorf("DiskSerial %q, want the refused leaf's %s", st.DiskSerial, serialHex(l2.cert))
	}
	if !st.DiskNotAfter.Equal(l2.cert.NotAfter) {
		t.Errorf("DiskNotAfter %v, want the refused leaf's %v", st.DiskNotAfter, l2.cert.NotAfter)
	}
	if st.DiskDiffersSince.Before(before) || st.DiskDiffersSince.After(time.Now()) {
		t.Errorf("DiskDiffersSince %v, want between %v and now", st.DiskDiffersSince, before)
	}
	if st.Generation != 1 || !st.NotAfter.Equal(l1.cert.NotAfter) || !sameSerial(st.Serial, l1.cert) {
		t.Errorf("served: generation %d notAfter %v serial %s, want 1, %v and %s", st.Generation, st.NotAfter, st.Serial, l1.cert.NotAfter, serialHex(l1.cert))
	}
	if st.LastReloadDuration <= 0 {
		t.Errorf("LastReloadDuration %v after a refused reload, want > 0", st.LastReloadDuration)
	}
	var lastErr *Error
	if !errors.As(st.LastError, &lastErr) || lastErr.Reason != "key_mismatch" {
		t.Errorf("LastError %#v: want an *Error with Reason key_mismatch", st.LastError)
	}
	if cur, err := s.Current(); err != nil || !sameSerial(cur.Serial, l1.cert) {
		t.Errorf("Current: %v serial %v, want the old leaf", err, cur)
	}

	// The served files come back: disk and served agree again.
	w.writeLeaf(l1, ca.pem)
	st = waitStatus(t, s, "disk agrees again", func(st Status) bool { return !st.DiskDiffers })
	if st.DiskReason != "" || !st.DiskDiffersSince.IsZero() || st.LastError != nil || st.Generation != 1 {
		t.Errorf("after restoring: reason %q since %v last error %v generation %d", st.DiskReason, st.DiskDiffersSince, st.LastError, st.Generation)
	}

	// A good rotation: served and disk agree on the new leaf.
	l3 := ca.issue(t, kRSA, "gen3")
	w.writeLeaf(l3, ca.pem)
	if ev := events.wait(t, EventRotated); ev.Reason != "" || !sameSerial(ev.Serial, l3.cert) {
		t.Errorf("rotated event: reason %q serial %s, want \"\" and %s", ev.Reason, ev.Serial, serialHex(l3.cert))
	}
	st = s.Status()
	if st.DiskDiffers || st.DiskReason != "" || !sameSerial(st.DiskSerial, l3.cert) || st.Generation != 2 {
		t.Errorf("after a good rotation: differs %v reason %q disk serial %q generation %d", st.DiskDiffers, st.DiskReason, st.DiskSerial, st.Generation)
	}
}

// Reasons other than a key mismatch reach the event and Status by their stable names.
func TestStatusReasonNames(t *testing.T) {
	ca := newCA(t, "reason-ca")
	w := newAtomicWriter(t)
	l1 := ca.issue(t, kECDSA, "gen1")
	w.writeLeaf(l1, nil)
	o := w.options(false)
	o.ReloadInterval = -1
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := subscribe(t, s)

	for _, tc := range []struct {
		name, reason string
		files        map[string][]byte
	}{
		{"garbage certificate", "parse_error", map[string][]byte{"tls.crt": []byte("not a certificate\n"), "tls.key": l1.keyPEM}},
		{"encrypted key", "encrypted_key", map[string][]byte{"tls.crt": l1.certPEM,
			"tls.key": []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n")}},
	} {
		w.write(tc.files)
		ev := events.wait(t, EventReloadFailed)
		if ev.Reason != tc.reason {
			t.Errorf("%s: event reason %q, want %q (%v)", tc.name, ev.Reason, tc.reason, ev.Err)
		}
		st := waitStatus(t, s, tc.name, func(st Status) bool { return st.DiskReason != "" && st.DiskReason != "key_mismatch" })
		if st.DiskReason != tc.reason || !st.DiskDiffers {
			t.Errorf("%s: status differs %v reason %q, want %q", tc.name, st.DiskDiffers, st.DiskReason, tc.reason)
		}
		w.writeLeaf(l1, nil)
		waitStatus(t, s, tc.name+": restored", func(st Status) bool { return !st.DiskDiffers })
	}
}

// Current hands out a copy of the trust: adding to its CAPool must not change what the
// store's handshakes trust. And each CA's notAfter comes with the snapshot.
func TestCurrentCAPoolIsACopy(t *testing.T) {
	ca := newCA(t, "pool-ca")
	other := newCA(t, "other-ca")
	w := newAtomicWriter(t)
	l1 := ca.issue(t, kECDSA, "gen1")
	w.writeLeaf(l1, append(append([]byte{}, ca.pem...), other.pem...))
	s, err := Open(w.options(true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	snap, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.CANotAfter) != 2 || !snap.CANotAfter[0].Equal(ca.cert.NotAfter) || !snap.CANotAfter[1].Equal(other.cert.NotAfter) {
		t.Errorf("CANotAfter %v, want %v and %v", snap.CANotAfter, ca.cert.NotAfter, other.cert.NotAfter)
	}

	// A client certificate from a CA the store does not trust.
	stranger := newCA(t, "stranger-ca")
	client := stranger.issue(t, kECDSA, "client")
	snap.CAPool.AddCert(stranger.cert)

	srv := startServer(t, s.ServerTLSConfig(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}))
	clientCfg := rootsClient(ca)
	clientCfg.Certificates = []tls.Certificate{client.tlsCert(t)}
	if r, err := dial(srv.addr, clientCfg); err == nil {
		t.Fatalf("a client of a CA added to Current().CAPool was accepted (server saw %s)", r.clientSeen)
	}
	// The control: the same client from the trusted CA is accepted.
	clientCfg.Certificates = []tls.Certificate{ca.issue(t, kECDSA, "client").tlsCert(t)}
	if _, err := dial(srv.addr, clientCfg); err != nil {
		t.Fatalf("a client of the trusted CA was refused: %v", err)
	}
	if again, _ := s.Current(); again.CAPool.Equal(snap.CAPool) {
		t.Errorf("the store's CAPool changed with the caller's copy")
	}
}

// While the library serves a generation Go's x509 cannot parse (a negative serial number: the
// library accepts it), Current still returns the generation Go serves, and Status says why.
func TestCurrentWhileGoCannotUseTheLibrarysGeneration(t *testing.T) {
	ca := newCA(t, "unusable-ca")
	w := newAtomicWriter(t)
	l1 := ca.issue(t, kECDSA, "gen1")
	w.writeLeaf(l1, nil)
	o := w.options(false)
	o.ReloadInterval = -1
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	k := genKey(t, kECDSA)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x7b),
		Subject:      pkix.Name{CommonName: "negative serial"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	// version [0] INTEGER 2, then serial INTEGER 0x7b: make the serial byte 0xfb (-5).
	at := bytes.Index(der, []byte{0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x7b})
	if at < 0 {
		t.Fatal("serial not found in the DER")
	}
	der[at+7] = 0xfb
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("Go parses a negative serial: this test needs another unusable certificate")
	}
	w.write(map[string][]byte{"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "tls.key": keyPEM(t, k)})

	st := waitStatus(t, s, "library publishes generation 2", func(Status) bool { return s.libGeneration.load() == 2 })
	if st.LastError == nil || st.Generation != 1 || !st.DiskDiffers {
		t.Errorf("status: last error %v generation %d disk differs %v; want an error, 1, true", st.LastError, st.Generation, st.DiskDiffers)
	}
	snap, err := s.Current()
	if err != nil {
		t.Fatalf("Current: %v; want the served generation", err)
	}
	if snap.Generation != 1 || !sameSerial(snap.Serial, l1.cert) {
		t.Errorf("Current: generation %d serial %s, want 1 and %s", snap.Generation, snap.Serial, serialHex(l1.cert))
	}
}
