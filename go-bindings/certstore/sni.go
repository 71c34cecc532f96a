package certstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// SNIStore is one certificate of a listener that serves several, chosen by the server name
// the client sends (SNI). See ServerTLSConfigSNI.
type SNIStore struct {
	Store *Store
	// ServerNames are the names this Store serves: "a.example.com", or "*.example.com" for
	// any single label in front of example.com. Case and one trailing dot are ignored.
	// Empty: the DNS names (SANs) of the leaf the Store currently serves, taken again from
	// every new generation, so a rotation that changes the SANs changes the names.
	ServerNames []string
}

// ServerTLSConfigSNI returns a server config that serves several Stores on one listener and
// picks, on every new handshake, the Store whose names match the ClientHello's server name;
// def is served when none matches and when the client sends no server name.
//
// Names match as crypto/x509's VerifyHostname (what tls.ClientHelloInfo.SupportsCertificate
// checks) matches a name against a certificate: case-insensitive, a trailing dot on the
// server name ignored, "*" as a whole left-most label matching exactly one label, and a
// server name that is an IP address matching no name. Between Stores: a name matched exactly
// beats a wildcard; explicit ServerNames beat names taken from SANs; otherwise the earlier
// Store wins (def first, then more in order).
//
// Everything else is ServerTLSConfig's, per Store: the config returned by GetConfigForClient
// is the chosen Store's config cached for its current generation (its certificate, its CA
// pool as ClientCAs when it has a CA file, its session ticket keys, everything else from
// base). The handshake path makes no cgo call, takes no lock and allocates nothing when
// nothing rotated; each Store rotates on its own. It reads the generation counter of every
// Store whose names come from its SANs (one atomic load each), so the first handshake after a
// rotation that changed a leaf's SANs already uses the new names; give ServerNames
// explicitly to skip that for listeners with very many Stores.
//
// Call it once per listener: like ServerTLSConfig, each call registers a config with every
// Store that lives, and is rebuilt on every rotation, as long as the Store. For gRPC put
// "h2" in base.NextProtos. base may be nil.
//
// It fails when a Store is nil, or an explicit name is not a DNS name or pattern, is an IP
// address, or is given for two Stores.
func ServerTLSConfigSNI(base *tls.Config, def SNIStore, more ...SNIStore) (*tls.Config, error) {
	if base == nil {
		base = &tls.Config{}
	}
	all := append([]SNIStore{def}, more...)
	x := &sniConfig{entries: make([]sniEntry, len(all))}
	seen := map[string]int{}
	for i, e := range all {
		if e.Store == nil {
			return nil, fmt.Errorf("certstore: ServerTLSConfigSNI: store %d is nil", i)
		}
		if len(e.ServerNames) == 0 {
			x.fromSANs = append(x.fromSANs, i)
			x.counters = append(x.counters, e.Store.libGeneration)
			continue
		}
		names := make([]string, 0, len(e.ServerNames))
		for _, n := range e.ServerNames {
			norm, err := normalizeServerName(n)
			if err != nil {
				return nil, fmt.Errorf("certstore: ServerTLSConfigSNI: store %d (%s): %w", i, e.Store.opts.CertFile, err)
			}
			if j, dup := seen[norm]; dup && j == i {
				continue
			} else if dup {
				return nil, fmt.Errorf("certstore: ServerTLSConfigSNI: server name %q given for store %d (%s) and store %d (%s)",
					n, j, all[j].Store.opts.CertFile, i, e.Store.opts.CertFile)
			}
			seen[norm] = i
			names = append(names, norm)
		}
		x.entries[i].names = names
	}
	for i, e := range all {
		x.entries[i].b = e.Store.newServerBinding(base)
	}
	x.rebuild()
	// Rebuild the names when a generation is published, so handshakes do not pay for it. The
	// handshake path does not depend on this having run (see table).
	subscribed := map[*Store]bool{}
	for _, i := range x.fromSANs {
		if s := all[i].Store; !subscribed[s] {
			subscribed[s] = true
			s.Subscribe(func(ev Event) {
				if ev.Kind == EventRotated {
					x.rebuild()
				}
			})
		}
	}

	outer := base.Clone()
	outer.Certificates = nil
	outer.GetConfigForClient = x.getConfigForClient
	// Not used by crypto/tls when GetConfigForClient returns a config; set so code that
	// checks for "a certificate is configured" (net/http ServeTLS) is satisfied.
	outer.GetCertificate = x.getCertificate
	return outer, nil
}

var (
	errEmptyName   = errors.New("empty server name")
	errIPName      = errors.New("is an IP address: clients send no server name for an IP address, and an IP address never matches a name")
	errInvalidName = errors.New(`is not a DNS name or a "*.example.com" pattern`)
)

// normalizeServerName lowercases an explicit name and drops one trailing dot; it refuses
// what could never match a server name.
func normalizeServerName(n string) (string, error) {
	norm := strings.TrimSuffix(lowerASCII(n), ".")
	switch {
	case norm == "":
		return "", errEmptyName
	case isIPAddress(strings.TrimSuffix(n, ".")):
		return "", fmt.Errorf("server name %q %w", n, errIPName)
	case !validHostname(norm, true):
		return "", fmt.Errorf("server name %q %w", n, errInvalidName)
	}
	return norm, nil
}

type sniConfig struct {
	entries  []sniEntry          // entries[0] is the default; fixed after construction
	fromSANs []int               // entries whose names come from the leaf's SANs
	counters []generationCounter // the library's generation counters of those, in order

	mu  sync.Mutex // serializes rebuild; never taken when the table is fresh
	tbl atomic.Pointer[sniTable]
}

type sniEntry struct {
	b     *serverBinding
	names []string // normalized explicit names; nil: the leaf's DNS SANs
}

// sniTable maps server names to entries for one set of generations. It is replaced, never
// modified.
type sniTable struct {
	// exact: lowercase name -> entry, every name as given (what a server name that is not a
	// valid host name may still match exactly, as in VerifyHostname).
	exact map[string]int
	// wild: "example.com" -> entry for a "*.example.com" pattern.
	wild map[string]int
	// gens[i] is the generation of entry i the table was built from; sans[i] the SAN names
	// taken from it (nil for explicit entries).
	gens []uint64
	sans [][]string
}

// table returns the names of the generations being served. For each Store whose names come
// from its SANs it compares the library's generation counter with the table's (an atomic
// load, no cgo): a generation published but not yet installed in Go is installed here and the
// table rebuilt, so correctness never depends on the subscription having run.
func (x *sniConfig) table() *sniTable {
	t := x.tbl.Load()
	for k, i := range x.fromSANs {
		lib := x.counters[k].load()
		if lib <= t.gens[i] {
			continue
		}
		s := x.entries[i].b.s
		if lib == s.unusableGen.Load() || s.closed.Load() {
			continue
		}
		if s.current().snap.Generation > t.gens[i] {
			x.rebuild()
			t = x.tbl.Load()
		}
	}
	return t
}

// rebuild builds the table from the generations the Stores serve now, when one changed.
func (x *sniConfig) rebuild() {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.tbl.Load()
	t := &sniTable{gens: make([]uint64, len(x.entries)), sans: make([][]string, len(x.entries))}
	same := old != nil
	for i, e := range x.entries {
		st := e.b.s.st.Load()
		t.gens[i] = st.snap.Generation
		if old != nil && t.gens[i] != old.gens[i] {
			same = false
		}
		if e.names == nil {
			t.sans[i] = st.snap.Certificate.Leaf.DNSNames
		}
	}
	if same {
		return
	}
	if old != nil && slices.EqualFunc(old.sans, t.sans, slices.Equal[[]string]) {
		t.exact, t.wild = old.exact, old.wild
	} else {
		explicit := make([][]string, len(x.entries))
		for i, e := range x.entries {
			explicit[i] = e.names
		}
		t.index(explicit, t.sans)
	}
	x.tbl.Store(t)
}

// index fills the maps: explicit names (normalized) first, then SAN names, each in entry
// order, so explicit beats SAN-derived and an earlier entry beats a later one.
func (t *sniTable) index(explicit, sans [][]string) {
	t.exact, t.wild = map[string]int{}, map[string]int{}
	for i, names := range explicit {
		for _, n := range names {
			t.add(i, n)
		}
	}
	for i, names := range sans {
		for _, n := range names {
			t.add(i, lowerASCII(n))
		}
	}
}

// add maps the lowercase name n to entry i unless an earlier entry has it.
func (t *sniTable) add(i int, n string) {
	if n == "" || n == "." {
		return // matches nothing (VerifyHostname)
	}
	if _, ok := t.exact[n]; !ok {
		t.exact[n] = i
	}
	if strings.HasPrefix(n, "*.") && validHostname(n, true) {
		if _, ok := t.wild[n[2:]]; !ok {
			t.wild[n[2:]] = i
		}
	}
}

// lookup returns the entry serving name, 0 (the default) when none matches. It allocates
// nothing for names up to 255 bytes (the longest DNS name).
func (t *sniTable) lookup(name string) int {
	if name == "" || isIPAddress(name) {
		return 0
	}
	var buf [255]byte
	var b []byte
	if len(name) <= len(buf) {
		b = buf[:len(name)]
	} else {
		b = make([]byte, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	// string(b) in a map index does not allocate.
	if i, ok := t.exact[string(b)]; ok {
		return i
	}
	h := b
	if h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if !validHostname(h, false) {
		return 0 // not a host name: exact matches only
	}
	if len(h) < len(b) {
		if i, ok := t.exact[string(h)]; ok {
			return i
		}
	}
	for j, c := range h {
		if c == '.' {
			if i, ok := t.wild[string(h[j+1:])]; ok {
				return i
			}
			break
		}
	}
	return 0
}

func (x *sniConfig) pick(hello *tls.ClientHelloInfo) *serverBinding {
	return x.entries[x.table().lookup(hello.ServerName)].b
}

func (x *sniConfig) getConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	b := x.pick(hello)
	return b.get(b.s.current()), nil
}

func (x *sniConfig) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &x.pick(hello).s.current().snap.Certificate, nil
}

// validHostname says whether h is a host name (pattern false; h has no trailing dot) or a
// name pattern (pattern true) by the rules crypto/x509 matches names with (RFC 6125 with some
// leniency): non-empty labels of letters, digits, '_' and non-leading '-'; a pattern may have
// "*" as its whole first label; "*" alone is neither.
func validHostname[T string | []byte](h T, pattern bool) bool {
	if len(h) == 0 || (len(h) == 1 && h[0] == '*') {
		return false
	}
	label := 0 // index of the current label
	start := 0 // its first byte
	for i := 0; i <= len(h); i++ {
		if i == len(h) || h[i] == '.' {
			if i == start {
				return false
			}
			if pattern && label == 0 && i-start == 1 && h[start] == '*' {
				label, start = label+1, i+1
				continue
			}
			for j := start; j < i; j++ {
				c := h[j]
				ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
					c == '_' || c == '-' && j != start
				if !ok {
					return false
				}
			}
			label, start = label+1, i+1
		}
	}
	return true
}

// isIPAddress says whether VerifyHostname would treat name as an IP address (also in [ ]).
func isIPAddress(name string) bool {
	if len(name) >= 3 && name[0] == '[' && name[len(name)-1] == ']' {
		name = name[1 : len(name)-1]
	}
	if strings.IndexByte(name, ':') >= 0 {
		// IPv6 (no host name has a ':'); a zone makes it a name for net.ParseIP.
		a, err := netip.ParseAddr(name)
		return err == nil && a.Zone() == ""
	}
	// IPv4 is checked here: netip's errors allocate, and most names are not addresses.
	fields, v, digits := 0, 0, 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if digits == 0 || fields == 4 {
				return false
			}
			fields, v, digits = fields+1, 0, 0
			continue
		}
		c := name[i]
		if c < '0' || c > '9' || digits > 0 && v == 0 { // a digit, and no leading zero
			return false
		}
		v, digits = v*10+int(c-'0'), digits+1
		if v > 255 {
			return false
		}
	}
	return fields == 4
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
