package certstore

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// issueNames signs a server leaf for the given DNS names (no IP SANs).
func (ca *testCA) issueNames(t testing.TB, names ...string) *leaf {
	t.Helper()
	k := genKey(t, kECDSA)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: "sni"},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(2 * time.Hour),
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

// sniFixture is one store of an SNI listener with its writer.
type sniFixture struct {
	s    *Store
	w    *atomicWriter
	leaf *leaf
}

func newSNIFixture(t testing.TB, ca *testCA, withCA bool, names ...string) *sniFixture {
	t.Helper()
	f := &sniFixture{w: newAtomicWriter(t), leaf: ca.issueNames(t, names...)}
	var caPEM []byte
	if withCA {
		caPEM = ca.pem
	}
	f.w.writeLeaf(f.leaf, caPEM)
	f.s = openT(t, f.w.options(withCA))
	return f
}

// dialSNI does one handshake to addr sending serverName as SNI ("" sends none: the address
// is an IP) and returns the server's leaf. verify checks the chain and the name against ca.
func dialSNI(addr, serverName string, ca *testCA, verify bool) (*x509.Certificate, error) {
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: !verify}
	if verify {
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(ca.cert)
	}
	r, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	return r.serverLeaf, nil
}

func mustDialSNI(t testing.TB, addr, serverName string, ca *testCA, verify bool) *x509.Certificate {
	t.Helper()
	c, err := dialSNI(addr, serverName, ca, verify)
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	return c
}

// Two names, a wildcard, no SNI, upper case and unknown names, over real handshakes; each
// choice is also the one crypto/tls makes itself from a static tls.Config holding the same
// certificates (it picks the first certificate that ClientHelloInfo.SupportsCertificate
// accepts, else the first).
func TestSNISelection(t *testing.T) {
	ca := newCA(t, "ca")
	def := newSNIFixture(t, ca, false, "default.example")
	a := newSNIFixture(t, ca, false, "a.example")
	b := newSNIFixture(t, ca, false, "b-san.example") // served by its explicit name only
	w := newSNIFixture(t, ca, false, "*.w.example")

	cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: def.s},
		SNIStore{Store: a.s}, SNIStore{Store: b.s, ServerNames: []string{"b.example"}}, SNIStore{Store: w.s})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	static := &tls.Config{Certificates: []tls.Certificate{def.leaf.tlsCert(t), a.leaf.tlsCert(t), w.leaf.tlsCert(t)}}
	ref := startServer(t, static)

	cases := []struct {
		sni    string
		want   *sniFixture
		verify bool // the served leaf is valid for the name
	}{
		{"a.example", a, true},
		{"b.example", b, false}, // explicit name, not in b's SANs
		{"x.w.example", w, true},
		{"other-1.w.example", w, true},
		{"A.EXAMPLE", a, true},
		{"X.W.Example", w, true},
		{"default.example", def, true},
		{"", def, false},
		{"unknown.example", def, false},
		{"y.x.w.example", def, false}, // a wildcard covers one label only
		{"w.example", def, false},
		{"b-san.example", def, false}, // b has explicit names: its SANs are not used
	}
	for _, c := range cases {
		got := mustDialSNI(t, srv.addr, c.sni, ca, c.verify)
		if !got.Equal(c.want.leaf.cert) {
			t.Errorf("SNI %q: served %v, want %v", c.sni, got.DNSNames, c.want.leaf.cert.DNSNames)
		}
		// GetCertificate (what net/http checks for) picks the same.
		if gc, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: c.sni}); err != nil || !gc.Leaf.Equal(c.want.leaf.cert) {
			t.Errorf("SNI %q: GetCertificate chose another certificate (%v)", c.sni, err)
		}
		if c.want == b {
			continue // crypto/tls has no explicit names
		}
		if r := mustDialSNI(t, ref.addr, c.sni, ca, false); !r.Equal(got) {
			t.Errorf("SNI %q: certstore served %v, crypto/tls %v", c.sni, got.DNSNames, r.DNSNames)
		}
	}
}

// A name matched exactly beats a wildcard whatever the order (crypto/tls's NameToCertificate
// does the same); explicit names beat names taken from SANs; otherwise the earlier store wins.
func TestSNIPrecedence(t *testing.T) {
	ca := newCA(t, "ca")
	wild := newSNIFixture(t, ca, false, "*.example.com")
	exact := newSNIFixture(t, ca, false, "a.example.com")
	both := newSNIFixture(t, ca, false, "a.example.com", "b.example.com")

	cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: wild.s}, SNIStore{Store: both.s},
		SNIStore{Store: exact.s, ServerNames: []string{"a.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	for sni, want := range map[string]*sniFixture{
		"a.example.com": exact, // explicit beats both's SAN and the wildcard
		"b.example.com": both,  // exact SAN beats the earlier wildcard
		"c.example.com": wild,
	} {
		if got := mustDialSNI(t, srv.addr, sni, ca, true); !got.Equal(want.leaf.cert) {
			t.Errorf("SNI %q: served %v", sni, got.DNSNames)
		}
	}

	// The same exact-over-wildcard choice by crypto/tls's NameToCertificate, wildcard first.
	static := &tls.Config{Certificates: []tls.Certificate{wild.leaf.tlsCert(t), both.leaf.tlsCert(t)}}
	static.BuildNameToCertificate() //nolint:staticcheck // the reference behaviour
	ref := startServer(t, static)
	if got := mustDialSNI(t, ref.addr, "b.example.com", ca, true); !got.Equal(both.leaf.cert) {
		t.Errorf("crypto/tls NameToCertificate chose %v", got.DNSNames)
	}

	// Same SAN in two stores: the earlier one.
	cfg2, err := ServerTLSConfigSNI(nil, SNIStore{Store: wild.s}, SNIStore{Store: exact.s}, SNIStore{Store: both.s})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, cfg2)
	if got := mustDialSNI(t, srv2.addr, "a.example.com", ca, true); !got.Equal(exact.leaf.cert) {
		t.Errorf("shared SAN: served %v, want the earlier store", got.DNSNames)
	}
}

// The name matching against x509.Certificate.VerifyHostname and
// tls.ClientHelloInfo.SupportsCertificate on the same names, patterns taken from SANs and
// given explicitly, including the odd inputs a real handshake never carries (crypto/tls
// refuses an SNI with a trailing dot) but GetConfigForClient may be called with.
func TestSNIMatchingRulesAgainstCryptoTLS(t *testing.T) {
	ca := newCA(t, "ca")
	patterns := []string{
		"a.example.com", "A.Example.COM", "*.example.com", "*.EXAMPLE.com", "*.com",
		"a.example.com.", "*.*.example.com", "a*.example.com", "*a.example.com", "_srv.example.com",
		"-a.example.com", "a-.example.com", "127.0.0.1", "xn--bcher-kva.example", "*", ".",
		"a..example.com", ".example.com", "*.", "localhost", "a_b.example.com", "*.a-b.example.com",
	}
	hosts := []string{
		"a.example.com", "A.EXAMPLE.COM", "b.example.com", "a.b.example.com", "example.com",
		"a.example.com.", "A.Example.Com.", "a.example.com..", ".example.com", "*.example.com",
		"*.EXAMPLE.COM", "127.0.0.1", "127.0.0.1.", "[127.0.0.1]", "::1", "[::1]", "fe80::1%eth0",
		"a..example.com", "ñ.example.com", "x.a-b.example.com", "x.A-B.example.com.", "localhost",
		"LOCALHOST.", "-a.example.com", "a-.example.com", "_srv.example.com", "com", "a.com", "*",
		".", "a*.example.com", "xn--bcher-kva.example", strings.Repeat("a.", 200) + "example.com",
	}
	hello := func(name string) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{
			ServerName:        name,
			SupportedVersions: []uint16{tls.VersionTLS13},
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:   []tls.CurveID{tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
		}
	}
	for _, p := range patterns {
		l := ca.issueNames(t, p)
		cert := l.tlsCert(t)
		cert.Leaf = l.cert
		var fromSAN sniTable
		fromSAN.index(make([][]string, 2), [][]string{nil, {p}})
		var explicit *sniTable
		var normLeaf *leaf
		if norm, err := normalizeServerName(p); err == nil {
			explicit = &sniTable{}
			explicit.index([][]string{nil, {norm}}, make([][]string, 2))
			normLeaf = ca.issueNames(t, norm)
		}
		for _, h := range hosts {
			verify := l.cert.VerifyHostname(h) == nil
			if supports := hello(h).SupportsCertificate(&cert) == nil; supports != verify {
				t.Fatalf("reference disagrees with itself on %q / %q", p, h)
			}
			if got := fromSAN.lookup(h) == 1; got != verify {
				t.Errorf("SAN %q, server name %q: matched %v, crypto/tls %v", p, h, got, verify)
			}
			// An explicit name is the normalized pattern: it matches what its normalized form
			// matches as a SAN.
			if explicit != nil {
				want := normLeaf.cert.VerifyHostname(h) == nil
				if got := explicit.lookup(h) == 1; got != want {
					t.Errorf("explicit %q, server name %q: matched %v, crypto/tls %v", p, h, got, want)
				}
			}
		}
	}
	// What explicit names refuse, and why.
	for _, p := range []string{"", ".", "*", "*.*.example.com", "a*.example.com", "a b.example", "127.0.0.1", "[::1]", "::1", "a..b", "-a.example"} {
		if _, err := normalizeServerName(p); err == nil {
			t.Errorf("explicit name %q accepted", p)
		}
	}
	for _, p := range []string{"A.Example.com.", "*.example.com", "_srv.example.com", "localhost"} {
		if _, err := normalizeServerName(p); err != nil {
			t.Errorf("explicit name %q refused: %v", p, err)
		}
	}
}

// isIPAddress agrees with net.ParseIP, which VerifyHostname uses.
func TestSNIIsIPAddress(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "::1", "[::1]", "fe80::1", "fe80::1%eth0", "::ffff:1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3.4.5", "1..2.3", ".1.2.3", "00.1.2.3", "10.0.0.01", "1.2.3.-4", "+1.2.3.4",
		"1.2.3", "01.2.3.4", "1.2.3.4.", "abcd::", "abc.example", "deadbeef", "[]", "[1.2.3.4]", "1e100"} {
		v := s
		if len(v) >= 3 && v[0] == '[' && v[len(v)-1] == ']' {
			v = v[1 : len(v)-1]
		}
		if got, want := isIPAddress(s), net.ParseIP(v) != nil; got != want {
			t.Errorf("isIPAddress(%q) = %v, net.ParseIP says %v", s, got, want)
		}
	}
}

func TestServerTLSConfigSNIErrors(t *testing.T) {
	ca := newCA(t, "ca")
	a := newSNIFixture(t, ca, false, "a.example")
	b := newSNIFixture(t, ca, false, "b.example")
	for _, c := range []struct {
		def  SNIStore
		more []SNIStore
		want []string
	}{
		{SNIStore{}, nil, []string{"store 0 is nil"}},
		{SNIStore{Store: a.s}, []SNIStore{{}}, []string{"store 1 is nil"}},
		{SNIStore{Store: a.s}, []SNIStore{{Store: b.s, ServerNames: []string{"*.*.b.example"}}},
			[]string{b.w.path("tls.crt"), `"*.*.b.example"`, "not a DNS name"}},
		{SNIStore{Store: a.s}, []SNIStore{{Store: b.s, ServerNames: []string{"10.0.0.1"}}},
			[]string{b.w.path("tls.crt"), "IP address"}},
		{SNIStore{Store: a.s, ServerNames: []string{"x.example"}}, []SNIStore{{Store: b.s, ServerNames: []string{"X.example."}}},
			[]string{`"X.example."`, a.w.path("tls.crt"), b.w.path("tls.crt")}},
	} {
		_, err := ServerTLSConfigSNI(nil, c.def, c.more...)
		if err == nil {
			t.Errorf("no error for %+v %+v", c.def, c.more)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
	if _, err := ServerTLSConfigSNI(nil, SNIStore{Store: a.s, ServerNames: []string{"x.example", "X.example."}}); err != nil {
		t.Errorf("one name twice for the same store: %v", err)
	}
}

// Per store: ClientCAs from its own CA file, and the base settings (ClientAuth, NextProtos,
// MinVersion) on every choice.
func TestSNIKeepsBaseAndClientAuth(t *testing.T) {
	caA, caB := newCA(t, "ca-a"), newCA(t, "ca-b")
	a := newSNIFixture(t, caA, true, "a.example")
	b := newSNIFixture(t, caB, true, "b.example")
	cfg, err := ServerTLSConfigSNI(&tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS13,
	}, SNIStore{Store: a.s}, SNIStore{Store: b.s})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	client := func(ca *testCA, name string) *tls.Config {
		cl := ca.issue(t, kECDSA, "client").tlsCert(t)
		c := rootsClient(caA, caB)
		c.ServerName = name
		c.Certificates = []tls.Certificate{cl}
		c.NextProtos = []string{"h2"}
		return c
	}
	for _, name := range []string{"a.example", "b.example"} {
		own := caA
		other := caB
		if name == "b.example" {
			own, other = caB, caA
		}
		r := mustDial(t, srv.addr, client(own, name))
		if r.state.NegotiatedProtocol != "h2" || r.state.Version != tls.VersionTLS13 || r.clientSeen == "-" {
			t.Errorf("%s: protocol %q version %x client %s", name, r.state.NegotiatedProtocol, r.state.Version, r.clientSeen)
		}
		if _, err := dial(srv.addr, client(other, name)); err == nil {
			t.Errorf("%s: a client certificate of the other store's CA was accepted", name)
		}
	}
	if _, err := dial(srv.addr, &tls.Config{ServerName: "a.example", RootCAs: rootsClient(caA).RootCAs, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Errorf("TLS 1.2 accepted with MinVersion TLS 1.3")
	}
}

// Rotating one store's files changes only that name's certificate: the other names keep
// theirs, with zero failed handshakes, during a storm of rotations of that one.
func TestSNIRotationStormOfOneName(t *testing.T) {
	const rotations = 30
	ca := newCA(t, "ca")
	def := newSNIFixture(t, ca, false, "default.example")
	a := newSNIFixture(t, ca, false, "a.example")
	b := newSNIFixture(t, ca, false, "b.example")
	w := newSNIFixture(t, ca, false, "*.w.example")
	evA := subscribe(t, a.s)
	cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: def.s}, SNIStore{Store: a.s},
		SNIStore{Store: b.s, ServerNames: []string{"b.example"}}, SNIStore{Store: w.s})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)

	var pubMu sync.Mutex
	publishedA := map[string]bool{serialHex(a.leaf.cert): true}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var total, failures atomic.Int64
	var countMu sync.Mutex
	counts := map[string]int{}
	worker := func(sni string, want *x509.Certificate) {
		defer wg.Done()
		n := 0
		defer func() { countMu.Lock(); counts[sni] = n; countMu.Unlock() }()
		for !stop.Load() {
			n++
			verify := want == nil || sni != "" && want.VerifyHostname(sni) == nil
			got, err := dialSNI(srv.addr, sni, ca, verify)
			total.Add(1)
			switch {
			case err != nil:
				failures.Add(1)
				t.Errorf("SNI %q: %v", sni, err)
			case want != nil && !got.Equal(want):
				failures.Add(1)
				t.Errorf("SNI %q: served serial %s, want %s (unchanged)", sni, serialHex(got), serialHex(want))
			case want == nil:
				pubMu.Lock()
				ok := publishedA[serialHex(got)]
				pubMu.Unlock()
				if !ok {
					failures.Add(1)
					t.Errorf("SNI %q: serial %s was never published for it", sni, serialHex(got))
				}
			}
		}
	}
	others := map[string]*x509.Certificate{
		"b.example": b.leaf.cert, "x.w.example": w.leaf.cert, "": def.leaf.cert, "unknown.example": def.leaf.cert,
	}
	for sni, want := range others {
		wg.Add(1)
		go worker(sni, want)
	}
	wg.Add(1)
	go worker("a.example", nil)

	for range rotations {
		l := ca.issueNames(t, "a.example")
		pubMu.Lock()
		publishedA[serialHex(l.cert)] = true
		pubMu.Unlock()
		a.w.writeLeaf(l, nil)
		waitServing(t, a.s, evA, l.cert)
		// The first handshake after the rotation is published gets the new leaf.
		if got := mustDialSNI(t, srv.addr, "a.example", ca, true); !got.Equal(l.cert) {
			t.Fatalf("a.example: served %s after rotation, want %s", serialHex(got), serialHex(l.cert))
		}
	}
	stop.Store(true)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d handshakes failed or got a wrong certificate", f, total.Load())
	}
	for sni, n := range counts {
		if n < 5 { // the zero failures above must cover handshakes during the storm
			t.Errorf("SNI %q: only %d handshakes during the storm", sni, n)
		}
	}
	if g := a.s.Generation(); g != rotations+1 {
		t.Errorf("a: generation %d, want %d", g, rotations+1)
	}
	for _, f := range []*sniFixture{def, b, w} {
		if g := f.s.Generation(); g != 1 {
			t.Errorf("%v: generation %d, want 1", f.leaf.cert.DNSNames, g)
		}
	}
	t.Logf("%d handshakes on 5 names during %d rotations of a.example, 0 failures", total.Load(), rotations)
}

// Names taken from SANs follow a rotation that changes the SANs, also before the
// subscription callback ran (the handshake path reads the library's generation counter).
func TestSNINamesFollowSANRotation(t *testing.T) {
	ca := newCA(t, "ca")
	def := newSNIFixture(t, ca, false, "default.example")
	x := newSNIFixture(t, ca, false, "x1.example")
	ev := subscribe(t, x.s)
	cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: def.s}, SNIStore{Store: x.s})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	expect := func(sni string, want *leaf) {
		t.Helper()
		if got := mustDialSNI(t, srv.addr, sni, ca, false); !got.Equal(want.cert) {
			t.Errorf("SNI %q: served %v (serial %s), want %v (serial %s)", sni, got.DNSNames, serialHex(got), want.cert.DNSNames, serialHex(want.cert))
		}
	}
	expect("x1.example", x.leaf)
	expect("x2.example", def.leaf)

	l2 := ca.issueNames(t, "x2.example", "*.x3.example")
	x.w.writeLeaf(l2, nil)
	waitServing(t, x.s, ev, l2.cert)
	expect("x2.example", l2)
	expect("y.x3.example", l2)
	expect("x1.example", def.leaf)

	// Hold the library's callback into Go: the handshake still sees the new names.
	release := make(chan struct{})
	hold := func() { <-release }
	testHookRotated.Store(&hold)
	t.Cleanup(func() { testHookRotated.Store(nil) })
	defer close(release)
	l3 := ca.issueNames(t, "x4.example")
	x.w.writeLeaf(l3, nil)
	deadline := time.Now().Add(10 * time.Second)
	for x.s.libGeneration.load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the library did not publish generation 3")
		}
		time.Sleep(time.Millisecond)
	}
	expect("x4.example", l3)
	expect("x2.example", def.leaf)
}

// The handshake path allocates nothing when nothing rotated, whatever the name.
func TestSNIGetConfigForClientNoAlloc(t *testing.T) {
	ca := newCA(t, "ca")
	def := newSNIFixture(t, ca, false, "default.example")
	a := newSNIFixture(t, ca, false, "a.example")
	w := newSNIFixture(t, ca, false, "*.w.example")
	cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: def.s}, SNIStore{Store: a.s, ServerNames: []string{"a.example"}}, SNIStore{Store: w.s})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "a.example", "A.EXAMPLE", "x.w.example", "X.W.EXAMPLE.", "unknown.example", "127.0.0.1", "*.w.example"} {
		hello := &tls.ClientHelloInfo{ServerName: name}
		if n := testing.AllocsPerRun(1000, func() { _, _ = cfg.GetConfigForClient(hello) }); n != 0 {
			t.Errorf("GetConfigForClient(%q): %v allocs/op, want 0", name, n)
		}
	}
}

// Sessions resume per name (each Store has its own ticket keys), and a session of one name
// never resumes under another: that would give the client a connection authenticated by the
// other name's certificate.
func TestSNISessionResumption(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			ca := newCA(t, "ca")
			a := newSNIFixture(t, ca, false, "a.example")
			b := newSNIFixture(t, ca, false, "b.example")
			cfg, err := ServerTLSConfigSNI(nil, SNIStore{Store: a.s}, SNIStore{Store: b.s})
			if err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, cfg)
			cache := &anyNameCache{}
			client := func(name string) *tls.Config {
				c := rootsClient(ca)
				c.ServerName, c.MaxVersion, c.ClientSessionCache = name, v, cache
				return c
			}
			if r := mustDial(t, srv.addr, client("a.example")); r.state.DidResume {
				t.Fatal("first handshake resumed")
			}
			r := mustDial(t, srv.addr, client("a.example"))
			if !r.state.DidResume || !r.serverLeaf.Equal(a.leaf.cert) {
				t.Fatalf("a.example: resumed %v, leaf %v", r.state.DidResume, r.serverLeaf.DNSNames)
			}
			// The cache offers a.example's session for b.example; without verification the
			// client does not check the session's certificate against the name itself.
			other := client("b.example")
			other.InsecureSkipVerify = true
			r = mustDial(t, srv.addr, other)
			if r.state.DidResume || !r.serverLeaf.Equal(b.leaf.cert) {
				t.Fatalf("b.example with a's session: resumed %v, leaf %v", r.state.DidResume, r.serverLeaf.DNSNames)
			}
			// Control: a server choosing by SNI between configs that share ticket keys does
			// resume that session under the other name, so the client did offer it.
			key := [32]byte{1}
			ca2 := newCA(t, "ca2")
			perName := map[string]*tls.Config{}
			for _, n := range []string{"a.example", "b.example"} {
				c := &tls.Config{Certificates: []tls.Certificate{ca2.issueNames(t, n).tlsCert(t)}}
				c.SetSessionTicketKeys([][32]byte{key})
				perName[n] = c
			}
			shared := startServer(t, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				return perName[h.ServerName], nil
			}})
			cache = &anyNameCache{}
			ctl := func(name string) *tls.Config {
				c := client(name)
				c.InsecureSkipVerify = true
				return c
			}
			mustDial(t, shared.addr, ctl("a.example"))
			if r := mustDial(t, shared.addr, ctl("b.example")); !r.state.DidResume {
				t.Fatal("control: the session was not offered under the other name")
			}
		})
	}
}

// anyNameCache holds one session and offers it for every server name.
type anyNameCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *anyNameCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *anyNameCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil && c.cs == nil {
		c.cs = cs
	}
}
