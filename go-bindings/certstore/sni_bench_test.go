package certstore

import (
	"crypto/tls"
	"fmt"
	"testing"
)

// The SNI handshake path with several names: table load, one lowercase copy on the stack, one
// or two map lookups, the chosen store's cached config.
func BenchmarkGetConfigForClientSNI(b *testing.B) {
	ca := newCA(b, "ca")
	def := newSNIFixture(b, ca, false, "default.example")
	a := newSNIFixture(b, ca, false, "a.example")
	c := newSNIFixture(b, ca, false, "c.example")
	w := newSNIFixture(b, ca, false, "*.w.example")
	cfg, err := ServerTLSConfigSNI(&tls.Config{NextProtos: []string{"h2"}}, SNIStore{Store: def.s},
		SNIStore{Store: a.s}, SNIStore{Store: c.s, ServerNames: []string{"c.example"}}, SNIStore{Store: w.s})
	if err != nil {
		b.Fatal(err)
	}
	names := []struct{ name, sni string }{
		{"exact", "a.example"},
		{"explicit", "c.example"},
		{"upper", "A.EXAMPLE"},
		{"wildcard", "x.w.example"},
		{"unknown", "unknown.example"},
		{"none", ""},
	}
	for _, n := range names {
		hello := &tls.ClientHelloInfo{ServerName: n.sni}
		b.Run(n.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c, _ := cfg.GetConfigForClient(hello); c == nil {
					b.Fatal("nil config")
				}
			}
		})
	}
	b.Run("parallel-mixed", func(b *testing.B) {
		b.ReportAllocs()
		hellos := make([]*tls.ClientHelloInfo, len(names))
		for i, n := range names {
			hellos[i] = &tls.ClientHelloInfo{ServerName: n.sni}
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if c, _ := cfg.GetConfigForClient(hellos[i%len(hellos)]); c == nil {
					b.Fatal("nil config")
				}
				i++
			}
		})
	})
}

// What names taken from SANs cost per handshake with many stores (one generation counter read
// per such store) against explicit names (none). Stores without a watch, so the benchmark
// does not spend the user's inotify instances.
func BenchmarkGetConfigForClientSNIStores(b *testing.B) {
	const n = 64
	ca := newCA(b, "ca")
	stores := make([]SNIStore, n)
	for i := range stores {
		name := fmt.Sprintf("s%d.example", i)
		w := newAtomicWriter(b)
		w.writeLeaf(ca.issueNames(b, name), nil)
		o := w.options(false)
		o.DisableWatch, o.ReloadInterval = true, -1
		stores[i] = SNIStore{Store: openT(b, o), ServerNames: []string{name}}
	}
	explicit, err := ServerTLSConfigSNI(nil, stores[0], stores[1:]...)
	if err != nil {
		b.Fatal(err)
	}
	for i := range stores {
		stores[i].ServerNames = nil
	}
	fromSANs, err := ServerTLSConfigSNI(nil, stores[0], stores[1:]...)
	if err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: fmt.Sprintf("s%d.example", n/2)}
	for _, c := range []struct {
		name string
		cfg  *tls.Config
	}{{fmt.Sprintf("explicit-%d", n), explicit}, {fmt.Sprintf("sans-%d", n), fromSANs}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, _ := c.cfg.GetConfigForClient(hello); got == nil {
					b.Fatal("nil config")
				}
			}
		})
	}
}
