package certstore

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"
)

func benchStore(b *testing.B, kt keyType) (*Store, *testCA, *leaf) {
	ca := newCA(b, "ca")
	l := ca.issue(b, kt, "srv")
	w := newAtomicWriter(b)
	w.writeLeaf(l, nil)
	s := openT(b, w.options(false))
	return s, ca, l
}

// The handshake hot path: one atomic load and a pointer compare.
func BenchmarkGetConfigForClient(b *testing.B) {
	s, _, _ := benchStore(b, kECDSA)
	cfg := s.ServerTLSConfig(&tls.Config{NextProtos: []string{"h2"}})
	hello := &tls.ClientHelloInfo{}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, _ := cfg.GetConfigForClient(hello); c == nil {
				b.Fatal("nil config")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if c, _ := cfg.GetConfigForClient(hello); c == nil {
					b.Fatal("nil config")
				}
			}
		})
	})
}

// What a certstore_generation check would add to every handshake if it were on the hot path
// (it is not: rotations reach Go through the subscription callback).
func BenchmarkCgoGeneration(b *testing.B) {
	s, _, _ := benchStore(b, kECDSA)
	p := s.c.p
	b.ReportAllocs()
	for b.Loop() {
		if cGeneration(p) == 0 {
			b.Fatal("generation 0")
		}
	}
}

// Full handshakes (no resumption) through ServerTLSConfig and through a static tls.Config
// with the same key, interleaved in one run; reports both rates and their ratio
// (certstore rate / static rate, from median handshake times; target >= 0.98).
func BenchmarkHandshake(b *testing.B) {
	for _, kt := range []keyType{kECDSA, kRSA} {
		b.Run(string(kt), func(b *testing.B) {
			s, ca, l := benchStore(b, kt)
			static := &tls.Config{Certificates: []tls.Certificate{l.tlsCert(b)}}
			dynamic := s.ServerTLSConfig(nil)
			client := rootsClient(ca)
			client.SessionTicketsDisabled = true

			tStatic := make([]time.Duration, 0, 1024)
			tDynamic := make([]time.Duration, 0, 1024)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				// Alternate the order so neither side always runs first.
				if i%2 == 0 {
					tStatic = append(tStatic, handshakeOnce(b, static, client))
					tDynamic = append(tDynamic, handshakeOnce(b, dynamic, client))
				} else {
					tDynamic = append(tDynamic, handshakeOnce(b, dynamic, client))
					tStatic = append(tStatic, handshakeOnce(b, static, client))
				}
			}
			// Medians: a GC pause or a preempted goroutine on a busy machine moves a mean by
			// several percent, a median hardly.
			ms, md := median(tStatic), median(tDynamic)
			b.ReportMetric(float64(time.Second)/float64(ms), "static-hs/s")
			b.ReportMetric(float64(time.Second)/float64(md), "certstore-hs/s")
			b.ReportMetric(float64(ms)/float64(md), "ratio")
		})
	}
}

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// handshakeOnce runs one full handshake over an in-memory pipe and returns its duration.
func handshakeOnce(b *testing.B, server, client *tls.Config) time.Duration {
	c1, c2 := net.Pipe()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		sc := tls.Server(c2, server)
		errc <- sc.Handshake()
	}()
	cc := tls.Client(c1, client)
	err := cc.Handshake()
	serr := <-errc
	d := time.Since(start)
	c1.Close()
	c2.Close()
	if err != nil || serr != nil {
		b.Fatalf("handshake: client %v, server %v", err, serr)
	}
	return d
}
