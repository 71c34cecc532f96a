// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
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
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
)

// Collector C: the stock OTLP/HTTP receiver (confighttp server, configtls files) reading the
// extension's validated copy. configtls re-reads the copy lazily after reload_interval and the
// client CA file with client_ca_file_reload; the extension only ever writes validated files.
const httpReloadInterval = time.Second

const httpConfig = `extensions:
  certstore/http:
    cert_file: {{.Src}}/tls.crt
    key_file: {{.Src}}/tls.key
    ca_file: {{.Src}}/ca.crt
    reload_interval: 30s
    validated_dir: {{.Copy}}
receivers:
  otlp:
    protocols:
      http:
        endpoint: {{.Endpoint}}
        tls:
          cert_file: {{.Copy}}/tls.crt
          key_file: {{.Copy}}/tls.key
          client_ca_file: {{.Copy}}/ca.crt
          client_ca_file_reload: true
          reload_interval: {{.Reload}}
exporters:
  debug:
    verbosity: basic
    sampling_initial: 1
    sampling_thereafter: 1000
service:
  extensions: [certstore/http]
` + serviceTelemetry + `  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`

// issueValidity is ca.issue with a chosen validity window (e.g. an expired leaf).
func issueValidity(c *ca, cn string, notBefore, notAfter time.Time) leaf {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	serial := big.NewInt(serials.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key))
	return leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}),
		serial:  serial,
	}
}

// httpSender exports spans with the OTel Go SDK OTLP/HTTP exporter, retries off, keep-alives
// off: every export is a new TLS handshake, so each one goes through configtls's reload path.
type httpSender struct {
	url      string
	tlsCfg   *tls.Config
	ok, fail atomic.Int64
	mu       sync.Mutex
	err      error
	seen     map[string]bool
	stop     func()
}

func (s *httpSender) exporter(ctx context.Context) (*otlptrace.Exporter, error) {
	cfg := s.tlsCfg.Clone()
	cfg.VerifyConnection = func(st tls.ConnectionState) error {
		s.mu.Lock()
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		s.seen[st.PeerCertificates[0].SerialNumber.String()] = true
		s.mu.Unlock()
		return nil
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	return otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(s.url),
		otlptracehttp.WithHTTPClient(client),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithTimeout(5*time.Second))
}

func (s *httpSender) record(err error) {
	if err != nil {
		s.fail.Add(1)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		return
	}
	s.ok.Add(1)
}

func (s *httpSender) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *httpSender) sawSerial(serial *big.Int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[serial.String()]
}

func (s *httpSender) start(ctx context.Context, every time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		exp, err := s.exporter(ctx)
		if err != nil {
			s.record(err)
			return
		}
		defer func() { _ = exp.Shutdown(context.Background()) }()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := exp.ExportSpans(ctx, spans(5))
			if ctx.Err() != nil {
				return
			}
			s.record(err)
		}
	}()
	var once sync.Once
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
}

// exportOnce sends one batch on a new exporter with clientCert and reports the error.
func httpExportOnce(ctx context.Context, url string, roots *x509.CertPool, clientCert *tls.Certificate) error {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	s := &httpSender{url: url, tlsCfg: cfg}
	exp, err := s.exporter(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return exp.ExportSpans(ectx, spans(1))
}

// readmeMetricNames returns the Prometheus names listed in the extension README between the
// metric-names markers: the e2e checks that the collector shows exactly those.
func readmeMetricNames() ([]string, error) {
	path, err := findAbove(filepath.Join("go-bindings", "certstoreextension", "README.md"))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(b), "<!-- prometheus-metric-names -->")
	section, _, ok2 := strings.Cut(rest, "<!-- /prometheus-metric-names -->")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%s: no prometheus-metric-names section", path)
	}
	var names []string
	for _, m := range regexp.MustCompile("`(otelcol_certstore_[a-z_]+)`").FindAllStringSubmatch(section, -1) {
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names, nil
}

// promNames lists the names of the samples starting with prefix on a Prometheus endpoint.
func (c *collector) promNames(prefix string) []string {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(c.metrics)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	set := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		// The sample's name, as a query names it (counters carry _total).
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if strings.HasPrefix(name, prefix) {
			set[name] = true
		}
	}
	var names []string
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runHTTPScenario is acceptance 3 of issue 10: rotations and bad inputs under a continuous
// OTLP/HTTP sender, then a client CA rotation through client_ca_file_reload.
func runHTTPScenario(ctx context.Context, dir string) (c *collector) {
	defer func() {
		if c != nil && failed > 0 {
			fmt.Printf("\n----- last lines of %s -----\n%s\n", c.logPath, tail(c.log(), 40))
		}
	}()
	fmt.Println("\n---- OTLP/HTTP receiver (confighttp + configtls) on the validated copy ----")
	serverCA, clientCA1, clientCA2 := newCA("e2e http server CA"), newCA("e2e http client CA 1"), newCA("e2e http client CA 2")
	src, copyDir := filepath.Join(dir, "http-certs"), filepath.Join(dir, "http-validated")
	must(0, os.MkdirAll(src, 0o755))
	current := serverCA.issue("collector-c-1")
	write := func(l leaf, clientCAs []byte) {
		must(0, kubeletWrite(src, map[string][]byte{"tls.crt": l.certPEM, "tls.key": l.keyPEM, "ca.crt": clientCAs}))
	}
	write(current, clientCA1.pem)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	url := "https://" + addr + "/v1/traces"
	metricsPort := freePort()
	c, err := startCollector("collector-c", dir, render(httpConfig, map[string]any{"Src": src, "Copy": copyDir,
		"Endpoint": addr, "Reload": httpReloadInterval.String(), "MetricsPort": metricsPort}), metricsPort)
	if err != nil {
		check("collector C starts", false, "%v", err)
		return nil
	}
	roots := pool(serverCA)
	client1 := clientCA1.issue("http-sender").tlsCert()
	probe := func() (*big.Int, error) {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{client1}}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
	}
	ready := waitUntil(ctx, 30*time.Second, func() bool {
		_, err := probe()
		return err == nil || !c.running()
	}) && c.running()
	if !check("collector C (otlp http receiver, tls: from validated_dir) serves TLS", ready, "not ready within 30s") {
		return c
	}

	st, err := os.Stat(copyDir)
	kst, kerr := os.Stat(filepath.Join(copyDir, "tls.key"))
	link, lerr := os.Readlink(filepath.Join(copyDir, "tls.crt"))
	check("validated copy: 0700 directory, 0600 key, tls.crt -> ..data/tls.crt",
		err == nil && kerr == nil && lerr == nil && st.Mode().Perm() == 0o700 && kst.Mode().Perm() == 0o600 && link == "..data/tls.crt",
		"dir %v (%v), key %v (%v), link %q (%v)", st, err, kst, kerr, link, lerr)

	sender := &httpSender{url: url, tlsCfg: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{client1}}}
	sender.start(ctx, 50*time.Millisecond)
	defer sender.stop()
	if !check("OTLP/HTTP sender exports to C", waitUntil(ctx, 20*time.Second, func() bool { return sender.ok.Load() > 5 }),
		"ok=%d fail=%d (%v)", sender.ok.Load(), sender.fail.Load(), sender.lastErr()) {
		return c
	}

	// Three rotations, each served within reload_interval + 1 s.
	limit := httpReloadInterval + time.Second
	for i := 1; i <= 3; i++ {
		next := serverCA.issue(fmt.Sprintf("collector-c-%d", i+1))
		start := time.Now()
		write(next, clientCA1.pem)
		var took time.Duration
		served := waitUntil(ctx, 15*time.Second, func() bool {
			s, err := probe()
			took = time.Since(start)
			return err == nil && s.Cmp(next.serial) == 0
		})
		check(fmt.Sprintf("http rotation %d: serial %X served within reload_interval + 1s (%s)", i, next.serial, limit),
			served && took <= limit, "served %v after %s", served, took.Round(time.Millisecond))
		if served {
			logf("http rotation %d on the wire after %s", i, took.Round(time.Millisecond))
		}
		current = next
		check(fmt.Sprintf("http rotation %d: the sender's own handshakes get it", i), waitUntil(ctx, 5*time.Second, func() bool {
			return sender.sawSerial(next.serial)
		}), "sender never saw %X", next.serial)
	}

	// Bad inputs at the extension's source: configtls keeps reading the copy, which keeps the
	// last validated generation.
	other := serverCA.issue("unrelated")
	expired := issueValidity(serverCA, "collector-c-expired", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	bads := []struct {
		name  string
		apply func() error
		undo  func() error
	}{
		{"mismatched key", func() error {
			return kubeletWrite(src, map[string][]byte{"tls.crt": serverCA.issue("collector-c-bad").certPEM, "tls.key": other.keyPEM, "ca.crt": clientCA1.pem})
		}, nil},
		{"garbage certificate", func() error {
			return kubeletWrite(src, map[string][]byte{"tls.crt": []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), "tls.key": current.keyPEM, "ca.crt": clientCA1.pem})
		}, nil},
		{"expired leaf", func() error {
			return kubeletWrite(src, map[string][]byte{"tls.crt": expired.certPEM, "tls.key": expired.keyPEM, "ca.crt": clientCA1.pem})
		}, nil},
		{"FIFO at the cert path", func() error {
			p := filepath.Join(src, "tls.crt")
			if err := os.Remove(p); err != nil {
				return err
			}
			return syscall.Mkfifo(p, 0o600)
		}, func() error { return os.Remove(filepath.Join(src, "tls.crt")) }},
	}
	for _, bad := range bads {
		failsBefore, _ := c.metric("otelcol_certstore_reloads", `outcome="failure"`)
		sendFails := sender.fail.Load()
		if err := bad.apply(); err != nil {
			check("http bad input: "+bad.name+" written", false, "%v", err)
			continue
		}
		refused := waitUntil(ctx, 15*time.Second, func() bool {
			v, _ := c.metric("otelcol_certstore_reloads", `outcome="failure"`)
			return v > failsBefore
		})
		check("http bad input: "+bad.name+" refused by the extension", refused, "no reload failure counted")
		// Several configtls reload intervals with the sender handshaking all along.
		okBefore := sender.ok.Load()
		time.Sleep(2*httpReloadInterval + 500*time.Millisecond)
		s, err := probe()
		check("http bad input: "+bad.name+": old certificate still served, zero failed requests",
			err == nil && s.Cmp(current.serial) == 0 && sender.fail.Load() == sendFails && sender.ok.Load() > okBefore,
			"served %v (want %X), sender ok %d -> %d, failed %d -> %d (last: %v)", serialString(s, err), current.serial,
			okBefore, sender.ok.Load(), sendFails, sender.fail.Load(), sender.lastErr())
		if bad.undo != nil {
			must(0, bad.undo())
		}
		write(current, clientCA1.pem) // back to the served files
	}
	good := serverCA.issue("collector-c-recovered")
	write(good, clientCA1.pem)
	check("http: the next good rotation is served", waitUntil(ctx, 15*time.Second, func() bool {
		s, err := probe()
		return err == nil && s.Cmp(good.serial) == 0
	}), "still serving %v", serialString(probe()))
	current = good
	sender.stop()
	check("http sender: zero failed requests over rotations and bad inputs", sender.fail.Load() == 0 && sender.ok.Load() > 0,
		"ok=%d failed=%d last: %v", sender.ok.Load(), sender.fail.Load(), sender.lastErr())
	accepted, _ := c.metric("otelcol_receiver_accepted_spans", `transport="http"`)
	logf("http sender: %d exports ok; C accepted %v spans over HTTP", sender.ok.Load(), accepted)

	// mTLS client CA rotation through client_ca_file_reload (ca_overlap 0: CA 1 goes at once).
	client2 := clientCA2.issue("http-sender-ca2").tlsCert()
	check("http mTLS: a client of CA 2 is refused before the CA rotation",
		httpExportOnce(ctx, url, roots, &client2) != nil, "export with a CA 2 client certificate succeeded")
	check("http mTLS: a client without a certificate is refused", httpExportOnce(ctx, url, roots, nil) != nil,
		"export without a client certificate succeeded")
	start := time.Now()
	write(current, clientCA2.pem)
	var took time.Duration
	accepted2 := waitUntil(ctx, 15*time.Second, func() bool {
		took = time.Since(start)
		return httpExportOnce(ctx, url, roots, &client2) == nil
	})
	check("http mTLS: after the CA rotation a client of CA 2 is accepted (client_ca_file_reload)", accepted2,
		"still refused after 15s")
	if accepted2 {
		logf("http mTLS: CA 2 accepted %s after the rotation", took.Round(time.Millisecond))
	}
	check("http mTLS: a client of CA 1 is refused after the CA rotation", httpExportOnce(ctx, url, roots, &client1) != nil,
		"export with a CA 1 client certificate succeeded")

	// The README lists the metric names the Prometheus endpoint shows.
	want, err := readmeMetricNames()
	got := c.promNames("otelcol_certstore_")
	check("README metric names are those of the Prometheus endpoint", err == nil && strings.Join(want, ",") == strings.Join(got, ","),
		"README %v (err %v), endpoint %v", want, err, got)
	check("collector C still running (no restart)", c.running(), "collector C exited")
	return c
}
