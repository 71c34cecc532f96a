package certstore

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---------- certificates ----------

type keyType string

const (
	kECDSA    keyType = "ecdsa-p256"
	kECDSA384 keyType = "ecdsa-p384"
	kRSA      keyType = "rsa-2048"
	kEd25519  keyType = "ed25519"
)

var serialCounter atomic.Int64

func init() { serialCounter.Store(time.Now().UnixNano() & 0xffffffff) }

func nextSerial() *big.Int { return big.NewInt(serialCounter.Add(1)) }

func genKey(t testing.TB, kt keyType) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kt {
	case kECDSA:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case kECDSA384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case kRSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case kEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("key type %q", kt)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	k := genKey(t, kECDSA)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type leaf struct {
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
	key     crypto.Signer
}

// issue signs a leaf valid now for localhost and 127.0.0.1, usable for server and client auth.
func (ca *testCA) issue(t testing.TB, kt keyType, cn string) *leaf {
	t.Helper()
	return ca.issueKey(t, genKey(t, kt), cn)
}

func (ca *testCA) issueKey(t testing.TB, k crypto.Signer, cn string) *leaf {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(2 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &leaf{cert: c, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM: keyPEM(t, k), key: k}
}

func (l *leaf) tlsCert(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// sameSerial compares a lowercase hex serial from the library with a certificate's serial,
// ignoring leading zeros.
func sameSerial(hex string, c *x509.Certificate) bool {
	n, ok := new(big.Int).SetString(hex, 16)
	return ok && n.Cmp(c.SerialNumber) == 0
}

// ---------- kubelet atomic writer ----------

// atomicWriter writes a directory the way the kubelet updates a Secret volume: all files into
// a new ..<timestamp> directory, ..data_tmp -> it, rename ..data_tmp over ..data, visible files
// are symlinks name -> ..data/name, then the previous timestamp directory is deleted.
type atomicWriter struct {
	t   testing.TB
	dir string
	n   int
}

func newAtomicWriter(t testing.TB) *atomicWriter {
	return &atomicWriter{t: t, dir: t.TempDir()}
}

func (w *atomicWriter) path(name string) string { return filepath.Join(w.dir, name) }

func (w *atomicWriter) write(files map[string][]byte) {
	w.t.Helper()
	w.n++
	ts := fmt.Sprintf("..%s.%09d", time.Now().UTC().Format("2006_01_02_15_04_05"), w.n)
	if err := os.Mkdir(filepath.Join(w.dir, ts), 0o755); err != nil {
		w.t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(w.dir, ts, name), b, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(w.dir, "..data"))
	tmp := filepath.Join(w.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, "..data")); err != nil {
		w.t.Fatal(err)
	}
	for name := range files {
		p := filepath.Join(w.dir, name)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), p); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(w.dir, old)); err != nil {
			w.t.Fatal(err)
		}
	}
}

// writeLeaf publishes tls.crt/tls.key (and ca.crt when ca is not nil).
func (w *atomicWriter) writeLeaf(l *leaf, ca []byte) {
	w.t.Helper()
	files := map[string][]byte{"tls.crt": l.certPEM, "tls.key": l.keyPEM}
	if ca != nil {
		files["ca.crt"] = ca
	}
	w.write(files)
}

func (w *atomicWriter) options(withCA bool) Options {
	o := Options{CertFile: w.path("tls.crt"), KeyFile: w.path("tls.key")}
	if withCA {
		o.CAFile = w.path("ca.crt")
	}
	return o
}

// ---------- events ----------

type eventLog struct {
	ch     chan Event
	cancel func()
}

func subscribe(t testing.TB, s *Store) *eventLog {
	l := &eventLog{ch: make(chan Event, 1024)}
	l.cancel = s.Subscribe(func(ev Event) { l.ch <- ev })
	t.Cleanup(l.cancel)
	return l
}

// wait returns the next event of kind k (skipping others), or fails after 10s.
func (l *eventLog) wait(t testing.TB, k EventKind) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-l.ch:
			if ev.Kind == k {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event within 10s", k)
		}
	}
}

// waitServing waits until the store serves a leaf with the serial of want.
func waitServing(t testing.TB, s *Store, l *eventLog, want *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !sameSerial(s.current().snap.Serial, want) {
		if time.Now().After(deadline) {
			t.Fatalf("serial %s not served within 10s (serving %s)", serialHex(want), s.current().snap.Serial)
		}
		select {
		case <-l.ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ---------- TLS server ----------

// testServer accepts TLS connections; after the handshake it writes one line:
// "ok <client leaf serial hex or ->".
type testServer struct {
	ln   net.Listener
	addr string
	wg   sync.WaitGroup
}

func startServer(t testing.TB, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &testServer{ln: ln, addr: ln.Addr().String()}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if err := tc.Handshake(); err != nil {
					return
				}
				peer := "-"
				if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
					peer = serialHex(pcs[0])
				}
				_, _ = io.WriteString(tc, "ok "+peer+"\n")
				// Wait for the client to close, so TLS 1.3 tickets are read.
				_, _ = io.Copy(io.Discard, tc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); srv.wg.Wait() })
	return srv
}

type dialResult struct {
	state      tls.ConnectionState
	serverLeaf *x509.Certificate
	clientSeen string // serial hex of the client cert as the server saw it, "-" for none
}

// dial does one handshake and reads the server's line (so a server-side refusal of the
// client certificate in TLS 1.3 surfaces as an error).
func dial(addr string, cfg *tls.Config) (dialResult, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return dialResult{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return dialResult{}, err
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		return dialResult{}, fmt.Errorf("read: %w", err)
	}
	st := tc.ConnectionState()
	r := dialResult{state: st, clientSeen: strings.TrimSpace(strings.TrimPrefix(line, "ok "))}
	if len(st.PeerCertificates) > 0 {
		r.serverLeaf = st.PeerCertificates[0]
	}
	return r, nil
}

func mustDial(t testing.TB, addr string, cfg *tls.Config) dialResult {
	t.Helper()
	r, err := dial(addr, cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return r
}

func rootsClient(ca ...*testCA) *tls.Config {
	pool := x509.NewCertPool()
	for _, c := range ca {
		pool.AddCert(c.cert)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
