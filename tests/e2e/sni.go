// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Collector D: one certstore instance with a certificates list (issue 8), served by SNI on an
// OTLP/gRPC receiver. The default certificate is the first; b's names are explicit; c's come
// from its wildcard SAN.
const sniConfig = `extensions:
  certstore/sni:
    certificates:
      - {cert_file: {{.A}}/tls.crt, key_file: {{.A}}/tls.key}
      - {cert_file: {{.B}}/tls.crt, key_file: {{.B}}/tls.key, server_names: ["b.example"]}
      - {cert_file: {{.C}}/tls.crt, key_file: {{.C}}/tls.key}
    reload_interval: 30s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{.Endpoint}}
        middlewares: [{id: certstore/sni}]
exporters:
  debug:
    verbosity: basic
service:
  extensions: [certstore/sni]
` + serviceTelemetry + `  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`

// sniRotations is the length of the rotation storm of b's files.
const sniRotations = 20

// issueDNS is ca.issue with the given DNS SANs only.
func issueDNS(c *ca, cn string, names ...string) leaf {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	serial := big.NewInt(serials.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"certstore e2e sni"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key))
	return leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}),
		serial:  serial,
	}
}

// opensslSNI runs `openssl s_client` with the server name (none when empty: -noservername),
// verifying the chain against caFile and, when verifyName, that the certificate is valid for
// the name. It returns the leaf served.
func opensslSNI(ctx context.Context, addr, serverName string, verifyName bool, caFile string) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := []string{"s_client", "-connect", addr, "-alpn", "h2", "-CAfile", caFile, "-verify_return_error"}
	if serverName == "" {
		args = append(args, "-noservername")
	} else {
		args = append(args, "-servername", serverName)
		if verifyName {
			args = append(args, "-verify_hostname", serverName)
		}
	}
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("openssl %s: %v: %s", strings.Join(args, " "), err, tail(string(out), 5))
	}
	block, _ := pem.Decode(out)
	if block == nil {
		return nil, fmt.Errorf("openssl s_client printed no certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// sniHandshake is a crypto/tls handshake sending serverName (none when empty), verified
// against roots and, with a name, for that name; it returns the serial served.
func sniHandshake(addr, serverName string, roots *x509.CertPool) (*big.Int, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: []string{"h2"}}
	if serverName == "" {
		// Go sends no SNI for an empty ServerName, and then can only verify the chain.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots})
			return err
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// runSNIScenario is acceptance 4 of issue 8: per-name certificates with openssl s_client, then
// a rotation storm of one name's files while handshakes for the other names keep going.
func runSNIScenario(ctx context.Context, dir string) (c *collector) {
	defer func() {
		if c != nil && failed > 0 {
			fmt.Printf("\n----- last lines of %s -----\n%s\n", c.logPath, tail(c.log(), 40))
		}
	}()
	fmt.Println("\n---- SNI: one certstore instance, three certificates, one OTLP/gRPC receiver ----")
	if _, err := exec.LookPath("openssl"); err != nil {
		check("sni: openssl is installed", false, "%v", err)
		return nil
	}
	sniCA := newCA("e2e sni CA")
	caFile := filepath.Join(dir, "sni-ca.crt")
	writeFile(caFile, sniCA.pem)
	roots := pool(sniCA)
	dirs := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		dirs[n] = filepath.Join(dir, "sni-"+n)
		must(0, os.MkdirAll(dirs[n], 0o755))
	}
	write := func(n string, l leaf) {
		must(0, kubeletWrite(dirs[n], map[string][]byte{"tls.crt": l.certPEM, "tls.key": l.keyPEM}))
	}
	a := issueDNS(sniCA, "sni-default", "otel.a.example")
	b := issueDNS(sniCA, "sni-b-0", "b.example")
	cLeaf := issueDNS(sniCA, "sni-c", "*.c.example")
	write("a", a)
	write("b", b)
	write("c", cLeaf)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	metricsPort := freePort()
	c, err := startCollector("collector-sni", dir, render(sniConfig, map[string]any{"A": dirs["a"], "B": dirs["b"],
		"C": dirs["c"], "Endpoint": addr, "MetricsPort": metricsPort}), metricsPort)
	if err != nil {
		check("collector D starts", false, "%v", err)
		return nil
	}
	ready := waitUntil(ctx, 30*time.Second, func() bool {
		_, err := sniHandshake(addr, "otel.a.example", roots)
		return err == nil || !c.running()
	}) && c.running()
	if !check("collector D (otlp grpc receiver + certstore certificates list) serves TLS", ready, "not ready within 30s") {
		return c
	}

	// Each name gets its own certificate: openssl verifies the chain and the name (not for a
	// name no certificate has: the default is served, valid for its own name only), and the
	// serial and subject say which certificate it is.
	type want struct {
		name string // server name sent; "" sends none
		leaf leaf
		cn   string
		// other: a name no certificate has, so the default is served (valid for its own name
		// only: openssl checks the chain, not the name)
		other bool
	}
	perName := func(what string, wants []want) {
		for _, w := range wants {
			label := w.name
			if label == "" {
				label = "no SNI"
			}
			cert, err := opensslSNI(ctx, addr, w.name, !w.other, caFile)
			check(fmt.Sprintf("sni %s: openssl s_client %s gets %s (serial %X)", what, label, w.cn, w.leaf.serial),
				err == nil && cert.SerialNumber.Cmp(w.leaf.serial) == 0 && cert.Subject.CommonName == w.cn,
				"got %v", describe(cert, err))
		}
	}
	perName("before", []want{
		{"otel.a.example", a, "sni-default", false},
		{"b.example", b, "sni-b-0", false},
		{"x.c.example", cLeaf, "sni-c", false},
		{"", a, "sni-default", false},
		{"unknown.example", a, "sni-default", true},
		{"y.x.c.example", a, "sni-default", true}, // *.c.example matches one label only
	})

	// Handshakes for every name, back to back, during a rotation storm of b's files.
	expect := map[string]*big.Int{"otel.a.example": a.serial, "x.c.example": cLeaf.serial, "": a.serial}
	bSerials := sync.Map{} // every serial b was rotated to
	bSerials.Store(b.serial.String(), true)
	type counts struct{ ok, fail, wrong atomic.Int64 }
	stats := map[string]*counts{"otel.a.example": {}, "x.c.example": {}, "": {}, "b.example": {}}
	var lastErr sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for name, st := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := sniHandshake(addr, name, roots)
				switch {
				case err != nil:
					st.fail.Add(1)
					lastErr.Store(name, err)
				case name == "b.example":
					if _, ok := bSerials.Load(s.String()); ok {
						st.ok.Add(1)
					} else {
						st.wrong.Add(1)
						lastErr.Store(name, fmt.Errorf("served serial %X, not one of b's", s))
					}
				case s.Cmp(expect[name]) == 0:
					st.ok.Add(1)
				default:
					st.wrong.Add(1)
					lastErr.Store(name, fmt.Errorf("served serial %X, want %X", s, expect[name]))
				}
			}
		}()
	}
	// Handshakes of every name run before the storm starts.
	waitUntil(ctx, 10*time.Second, func() bool {
		for _, st := range stats {
			if st.ok.Load()+st.fail.Load()+st.wrong.Load() == 0 {
				return false
			}
		}
		return true
	})
	before := map[string]int64{}
	for name, st := range stats {
		before[name] = st.ok.Load()
	}
	stormStart := time.Now()
	last := b
	for i := 1; i <= sniRotations; i++ {
		last = issueDNS(sniCA, fmt.Sprintf("sni-b-%d", i), "b.example")
		bSerials.Store(last.serial.String(), true)
		write("b", last)
	}
	storm := time.Since(stormStart)
	served := waitUntil(ctx, 15*time.Second, func() bool {
		s, err := sniHandshake(addr, "b.example", roots)
		return err == nil && s.Cmp(last.serial) == 0
	})
	took := time.Since(stormStart)
	atServed := map[string]int64{}
	for name, st := range stats {
		atServed[name] = st.ok.Load()
	}
	// Keep the other names' handshakes going a little after b settled.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	check(fmt.Sprintf("sni storm: after %d rotations of b's files b.example serves the last serial %X", sniRotations, last.serial),
		served, "still serving %v after 15s", serialString(sniHandshake(addr, "b.example", roots)))
	logf("sni storm: %d kubelet rotations of b written in %s, last one served after %s", sniRotations,
		storm.Round(time.Millisecond), took.Round(time.Millisecond))
	for _, name := range []string{"otel.a.example", "x.c.example", "", "b.example"} {
		st := stats[name]
		label := name
		if label == "" {
			label = "no SNI"
		}
		e, _ := lastErr.Load(name)
		during := atServed[name] - before[name] // from the first rotation until b served the last
		check(fmt.Sprintf("sni storm: %s: zero failed or wrong handshakes", label),
			st.fail.Load() == 0 && st.wrong.Load() == 0 && during > 0,
			"ok=%d (%d during the storm) failed=%d wrong=%d last: %v", st.ok.Load(), during, st.fail.Load(), st.wrong.Load(), e)
		logf("sni storm: %s: %d handshakes ok (%d during the storm), %d failed, %d wrong", label,
			st.ok.Load(), during, st.fail.Load(), st.wrong.Load())
	}
	logf("sni storm: %d \"Certificate rotated\" lines of b in the log (the collector's log sampling keeps the first 10 a second)",
		countRotated(c.log(), filepath.Join(dirs["b"], "tls.crt")))
	check("sni storm: only b rotated (no rotation logged for a or c)",
		countRotated(c.log(), filepath.Join(dirs["a"], "tls.crt")) == 0 && countRotated(c.log(), filepath.Join(dirs["c"], "tls.crt")) == 0 &&
			countRotated(c.log(), filepath.Join(dirs["b"], "tls.crt")) >= 1,
		"rotated lines: a %d, b %d, c %d", countRotated(c.log(), filepath.Join(dirs["a"], "tls.crt")),
		countRotated(c.log(), filepath.Join(dirs["b"], "tls.crt")), countRotated(c.log(), filepath.Join(dirs["c"], "tls.crt")))

	// The metrics carry each certificate's cert_file: b's generation moved, a's and c's did not.
	genOf := func(n string) float64 {
		v, _ := c.metric("otelcol_certstore_generation", `certstore_certificate_file="`+filepath.Join(dirs[n], "tls.crt")+`"`)
		return v
	}
	var ga, gb, gc float64
	check("sni storm: generation metric per certificate: b > 1, a = c = 1", waitUntil(ctx, 10*time.Second, func() bool {
		ga, gb, gc = genOf("a"), genOf("b"), genOf("c")
		return ga == 1 && gb > 1 && gc == 1
	}), "a %v, b %v, c %v", ga, gb, gc)
	logf("sni storm: b's generation after %d rotations: %v (rotations written faster than published coalesce)", sniRotations, gb)

	perName("after the storm", []want{
		{"otel.a.example", a, "sni-default", false},
		{"b.example", last, fmt.Sprintf("sni-b-%d", sniRotations), false},
		{"x.c.example", cLeaf, "sni-c", false},
		{"", a, "sni-default", false},
	})
	check("collector D still running (no restart)", c.running(), "collector D exited")
	return c
}

// countRotated counts the "Certificate rotated" log lines of one cert_file.
func countRotated(log, certFile string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "Certificate rotated") && strings.Contains(l, `"cert_file": "`+certFile+`"`) {
			n++
		}
	}
	return n
}

func describe(cert *x509.Certificate, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("serial %X, subject %s", cert.SerialNumber, cert.Subject)
}
