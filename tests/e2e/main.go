// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// Command e2e drives the built collector (dist/otelcol-certstore) through certificate
// rotations with real OTLP/gRPC clients over TLS. Run it through tests/e2e/run.sh.
//
// Topology (loopback only):
//
//	sender (OTel Go SDK, mTLS) ──────────────▶ collector B: otlp receiver + certstore/server
//	sender (plaintext) ─▶ collector A ─otlp exporter + certstore/client (mTLS)──▲
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

var (
	collectorBin = flag.String("collector", "dist/otelcol-certstore", "collector binary")
	workDir      = flag.String("workdir", "", "work directory (default: a new temp dir, removed on success)")
	deadline     = flag.Duration("timeout", 4*time.Minute, "overall timeout")
)

// ---------- results ----------

var passed, failed int

// activeDir is the work directory, removed on interrupt unless -workdir was given.
var activeDir string

func check(name string, ok bool, format string, args ...any) bool {
	if ok {
		passed++
		fmt.Printf("PASS  %s\n", name)
	} else {
		failed++
		fmt.Printf("FAIL  %s: %s\n", name, fmt.Sprintf(format, args...))
	}
	return ok
}

func logf(format string, args ...any) {
	fmt.Printf("      %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// ---------- collectors ----------

type collector struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	metrics string // Prometheus endpoint
	exited  chan struct{}
}

var (
	procsMu sync.Mutex
	procs   []*collector
)

func startCollector(name, dir, config string, metricsPort int) (*collector, error) {
	cfgPath := filepath.Join(dir, name+".yaml")
	writeFile(cfgPath, []byte(config))
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(*collectorBin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	// The collector dies with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &collector{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{}),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	go func() { _ = cmd.Wait(); logFile.Close(); close(c.exited) }()
	procsMu.Lock()
	procs = append(procs, c)
	procsMu.Unlock()
	return c, nil
}

func (c *collector) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *collector) stop() {
	if !c.running() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *collector) log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, c := range procs {
		c.stop()
	}
}

// metric sums the samples of a Prometheus metric whose labels contain all of want.
func (c *collector) metric(name string, want ...string) (float64, bool) {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(c.metrics)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		metricName, rest, _ := strings.Cut(line, "{")
		if i := strings.IndexByte(metricName, ' '); i >= 0 {
			metricName, rest = metricName[:i], metricName[i:]
		}
		if metricName != name && metricName != name+"_total" {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(rest, w)
		}
		if !ok {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// ---------- TLS probes ----------

// servedSerial returns the serial of the certificate the server presents to a new connection.
func servedSerial(addr string, clientCert *tls.Certificate, roots *x509.CertPool) (*big.Int, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		return nil, fmt.Errorf("ALPN %q, want h2", st.NegotiatedProtocol)
	}
	return st.PeerCertificates[0].SerialNumber, nil
}

// opensslSerial reads the served serial with `openssl s_client` (empty when openssl is missing).
func opensslSerial(ctx context.Context, addr, certFile, keyFile, caFile string) (*big.Int, error) {
	if _, err := exec.LookPath("openssl"); err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-alpn", "h2",
		"-cert", certFile, "-key", keyFile, "-CAfile", caFile, "-verify_return_error")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	block, _ := pem.Decode(out)
	if block == nil {
		return nil, fmt.Errorf("openssl s_client printed no certificate (%v)", err)
	}
	cert, perr := x509.ParseCertificate(block.Bytes)
	if perr != nil {
		return nil, perr
	}
	return cert.SerialNumber, nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() int {
	l := must(net.Listen("tcp", "127.0.0.1:0"))
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---------- configs ----------

// connAge is B's keepalive max_connection_age: gRPC closes every connection after it (± 10%
// jitter), so clients handshake again. reconnectWindow bounds when every connection that
// existed at some instant has been replaced.
const (
	connAge         = 3 * time.Second
	reconnectWindow = connAge*11/10 + 700*time.Millisecond
)

const serverConfig = `extensions:
  certstore/server:
    cert_file: {{.Dir}}/tls.crt
    key_file: {{.Dir}}/tls.key
    ca_file: {{.Dir}}/ca.crt
    client_auth: require
    ca_overlap: 1h
    reload_interval: 30s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{.Endpoint}}
        middlewares: [{id: certstore/server}]
        keepalive:
          server_parameters:
            # Clients reconnect (new TLS handshakes) every few seconds during the test.
            max_connection_age: {{.ConnAge}}
            max_connection_age_grace: 10s
exporters:
  debug:
    verbosity: basic
    sampling_initial: 1
    sampling_thereafter: 1000
service:
  extensions: [certstore/server]
` + serviceTelemetry + `  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`

const clientConfig = `extensions:
  certstore/client:
    cert_file: {{.Dir}}/tls.crt
    key_file: {{.Dir}}/tls.key
    ca_file: {{.Dir}}/ca.crt
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{.Endpoint}}
exporters:
  otlp:
    endpoint: {{.Upstream}}
    middlewares: [{id: certstore/client}]
    # No retries and no queue: a failed export to B (e.g. a refused client certificate) fails
    # the sender's request into A at once and is counted in otelcol_exporter_send_failed_spans,
    # instead of being retried for minutes behind an "accepted" response.
    retry_on_failure:
      enabled: false
    sending_queue:
      enabled: false
service:
  extensions: [certstore/client]
` + serviceTelemetry + `  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
`

// serviceTelemetry is the service.telemetry block of every e2e collector config: info logs and
// the Prometheus endpoint the checks scrape, at {{.MetricsPort}}.
const serviceTelemetry = `  telemetry:
    logs:
      level: info
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.MetricsPort}}
`

func render(tmpl string, data any) string {
	var b strings.Builder
	must(0, template.Must(template.New("").Parse(tmpl)).Execute(&b, data))
	return b.String()
}

// ---------- main ----------

func main() {
	flag.Parse()
	code := run()
	fmt.Printf("\ne2e: %d passed, %d failed\n", passed, failed)
	if code == 0 && failed > 0 {
		code = 1
	}
	os.Exit(code)
}

func run() (code int) {
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Println("e2e: interrupted, stopping collectors")
		stopAll()
		if *workDir == "" && activeDir != "" {
			_ = os.RemoveAll(activeDir)
		}
		fmt.Printf("e2e: %d passed, %d failed (interrupted)\n", passed, failed+1)
		os.Exit(130)
	}()
	defer stopAll()

	bin, err := filepath.Abs(*collectorBin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Printf("e2e: collector binary: %v (run `make collector`)\n", err)
		return 2
	}
	*collectorBin = bin

	dir := *workDir
	if dir == "" {
		dir = must(os.MkdirTemp("", "certstore-e2e-"))
	}
	dir = must(filepath.Abs(dir))
	activeDir = dir
	var b, a *collector
	defer func() {
		if failed > 0 || code != 0 {
			for _, c := range []*collector{b, a} {
				if c != nil {
					fmt.Printf("\n----- last lines of %s -----\n%s\n", c.logPath, tail(c.log(), 40))
				}
			}
			fmt.Printf("e2e: work directory kept: %s\n", dir)
		} else if *workDir == "" {
			stopAll()
			_ = os.RemoveAll(dir)
		}
	}()

	// PKI: CA1 issues everything at first; CA2 replaces it for client certificates; CA3 is foreign.
	// CA4 only joins B's bundle to end the CA1 overlap (section 5).
	ca1, ca2, ca3, ca4 := newCA("e2e CA 1"), newCA("e2e CA 2"), newCA("e2e CA 3"), newCA("e2e CA 4")
	bDir, aDir := filepath.Join(dir, "server-certs"), filepath.Join(dir, "client-certs")
	for _, d := range []string{bDir, aDir} {
		must(0, os.MkdirAll(d, 0o755))
	}
	serverLeaf := ca1.issue("collector-b")
	must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": serverLeaf.certPEM, "tls.key": serverLeaf.keyPEM, "ca.crt": ca1.pem}))
	agentLeaf := ca1.issue("collector-a")
	must(0, kubeletWrite(aDir, map[string][]byte{"tls.crt": agentLeaf.certPEM, "tls.key": agentLeaf.keyPEM, "ca.crt": ca1.pem}))
	// The test client's own files (for openssl s_client and the SDK sender).
	sender := ca1.issue("sdk-sender")
	writeFile(filepath.Join(dir, "sender.crt"), sender.certPEM)
	writeFile(filepath.Join(dir, "sender.key"), sender.keyPEM)
	writeFile(filepath.Join(dir, "ca1.crt"), ca1.pem)
	senderCert := sender.tlsCert()
	roots := pool(ca1)

	bAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	aAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	bMetrics, aMetrics := freePort(), freePort()

	b, err = startCollector("collector-b", dir, render(serverConfig, map[string]any{
		"Dir": bDir, "Endpoint": bAddr, "MetricsPort": bMetrics, "ConnAge": connAge.String()}), bMetrics)
	if err != nil {
		fmt.Printf("e2e: start collector B: %v\n", err)
		return 2
	}
	ready := waitUntil(ctx, 30*time.Second, func() bool {
		_, err := servedSerial(bAddr, &senderCert, roots)
		return err == nil || !b.running()
	}) && b.running()
	if !check("collector B (otlp receiver + certstore/server) serves TLS", ready, "not ready within 30s") {
		return 1
	}
	a, err = startCollector("collector-a", dir, render(clientConfig, map[string]any{
		"Dir": aDir, "Endpoint": aAddr, "Upstream": bAddr, "MetricsPort": aMetrics}), aMetrics)
	if err != nil {
		fmt.Printf("e2e: start collector A: %v\n", err)
		return 2
	}
	ready = waitUntil(ctx, 30*time.Second, func() bool {
		_, ok := a.metric("otelcol_certstore_generation")
		return ok || !a.running()
	}) && a.running()
	if !check("collector A (otlp exporter + certstore/client) started", ready, "not ready within 30s") {
		return 1
	}

	// Continuous senders: the OTel Go SDK OTLP/gRPC exporter straight to B over mTLS (no retry:
	// every failed export counts), and a plaintext sender into A whose exporter uses mTLS to B
	// (A has no retry and no queue either, so a failed export from A to B fails the sender's).
	direct := newSender("sdk->B", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{senderCert}}, 50*time.Millisecond)
	viaA := newSender("sdk->A->B", aAddr, nil, 100*time.Millisecond)
	direct.start(ctx)
	defer direct.stop()
	viaA.start(ctx)
	defer viaA.stop()
	if !check("senders export through both collectors", waitUntil(ctx, 20*time.Second, func() bool {
		return direct.ok.Load() > 5 && viaA.ok.Load() > 5
	}), "direct ok=%d fail=%d (%v), via A ok=%d fail=%d (%v)", direct.ok.Load(), direct.fail.Load(), direct.lastErr(),
		viaA.ok.Load(), viaA.fail.Load(), viaA.lastErr()) {
		return 1
	}

	serialOf := func() (*big.Int, error) { return servedSerial(bAddr, &senderCert, roots) }
	current := serverLeaf

	// senderReconnects waits until the direct SDK exporter's own connection was handshaken with
	// the leaf `serial` (B closes connections after max_connection_age), then for 5 more
	// successful exports.
	senderReconnects := func(what string, serial *big.Int) {
		start := time.Now()
		saw := waitUntil(ctx, 3*reconnectWindow, func() bool { return direct.sawSerial(serial) })
		okAt := direct.ok.Load()
		exported := saw && waitUntil(ctx, 5*time.Second, func() bool { return direct.ok.Load() >= okAt+5 })
		if check(fmt.Sprintf("%s: the SDK exporter's own connection gets serial %X and keeps exporting", what, serial),
			exported && direct.fail.Load() == 0, "saw new serial: %v; ok=%d failed=%d last error: %v",
			saw, direct.ok.Load(), direct.fail.Load(), direct.lastErr()) {
			logf("%s: SDK exporter reconnected with the new serial within %s", what, time.Since(start).Round(100*time.Millisecond))
		}
	}

	// ---- 2. three kubelet-style rotations of the server certificate ----
	for i := 1; i <= 3; i++ {
		next := ca1.issue(fmt.Sprintf("collector-b-%d", i+1))
		start := time.Now()
		must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": next.certPEM, "tls.key": next.keyPEM, "ca.crt": ca1.pem}))
		served := waitUntil(ctx, 15*time.Second, func() bool {
			s, err := serialOf()
			return err == nil && s.Cmp(next.serial) == 0
		})
		check(fmt.Sprintf("rotation %d: new serial %X served without restart", i, next.serial), served,
			"still serving %v after 15s", serialString(serialOf()))
		if served {
			logf("rotation %d visible on the wire after %s", i, time.Since(start).Round(time.Millisecond))
		}
		os, err := opensslSerial(ctx, bAddr, filepath.Join(dir, "sender.crt"), filepath.Join(dir, "sender.key"), filepath.Join(dir, "ca1.crt"))
		if os != nil || err != nil {
			check(fmt.Sprintf("rotation %d: openssl s_client reads serial %X", i, next.serial), err == nil && os.Cmp(next.serial) == 0,
				"openssl: serial %v, err %v", os, err)
		}
		senderReconnects(fmt.Sprintf("rotation %d", i), next.serial)
		current = next
	}
	check("rotations: client keeps exporting with zero failures", direct.fail.Load() == 0 && direct.ok.Load() > 0,
		"ok=%d failed=%d last error: %v", direct.ok.Load(), direct.fail.Load(), direct.lastErr())
	check("rotations: B reports generation 4", waitUntil(ctx, 5*time.Second, func() bool {
		v, _ := b.metric("otelcol_certstore_generation", `certstore_extension="certstore/server"`)
		return v == 4
	}), "otelcol_certstore_generation != 4")

	// ---- 3. a bad rotation (mismatched key) keeps the old serial; the next good one recovers ----
	bad := ca1.issue("collector-b-bad")
	other := ca1.issue("unrelated")
	failuresBefore, _ := b.metric("otelcol_certstore_reloads", `outcome="failure"`)
	must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": bad.certPEM, "tls.key": other.keyPEM, "ca.crt": ca1.pem}))
	logged := waitUntil(ctx, 15*time.Second, func() bool { return strings.Contains(b.log(), "Certificate reload failed") })
	check("bad rotation: collector logs the reload failure", logged, "no 'Certificate reload failed' in %s", b.logPath)
	if logged {
		line := firstLine(b.log(), "Certificate reload failed")
		_, reason, _ := strings.Cut(line, `"error": `)
		logf("collector log: Certificate reload failed ... error: %s", reason)
		check("bad rotation: the logged reason names the key file", strings.Contains(reason, filepath.Join(bDir, "tls.key")),
			"reason %q", reason)
	}
	check("bad rotation: failure counted in otelcol_certstore_reloads{outcome=\"failure\"}", waitUntil(ctx, 10*time.Second, func() bool {
		v, _ := b.metric("otelcol_certstore_reloads", `outcome="failure"`)
		return v > failuresBefore
	}), "metric did not increase")
	s, err := serialOf()
	check("bad rotation: old serial still served", err == nil && s.Cmp(current.serial) == 0,
		"served %v, want %X", serialString(s, err), current.serial)
	check("bad rotation: no key material in the log", !strings.Contains(b.log(), "PRIVATE KEY") &&
		!strings.Contains(b.log(), strings.TrimSpace(string(other.keyPEM[30:60]))), "key bytes found in %s", b.logPath)
	good := ca1.issue("collector-b-recovered")
	must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": good.certPEM, "tls.key": good.keyPEM, "ca.crt": ca1.pem}))
	check("bad rotation: next good rotation is served", waitUntil(ctx, 15*time.Second, func() bool {
		s, err := serialOf()
		return err == nil && s.Cmp(good.serial) == 0
	}), "still serving %v", serialString(serialOf()))
	senderReconnects("recovery", good.serial)
	check("bad rotation: the SDK exporter never got the bad certificate", !direct.sawSerial(bad.serial), "served serial %X", bad.serial)
	current = good

	// ---- 4. mTLS ----
	noCert := newSender("no client cert", bAddr, &tls.Config{RootCAs: roots}, 0)
	err = noCert.exportOnce(ctx)
	check("mTLS: client without a certificate is refused", err != nil, "export without a client certificate succeeded")
	foreign := ca3.issue("foreign-client").tlsCert()
	err = newSender("foreign CA", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{foreign}}, 0).exportOnce(ctx)
	check("mTLS: client certificate from an untrusted CA is refused", err != nil, "export with a CA3 client certificate succeeded")

	// CA rotation on B: ca.crt now holds only CA2; CA1 stays trusted for ca_overlap (1h).
	genBefore, _ := b.metric("otelcol_certstore_generation", `certstore_extension="certstore/server"`)
	must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": current.certPEM, "tls.key": current.keyPEM, "ca.crt": ca2.pem}))
	check("CA rotation: B picks up the new client CA bundle", waitUntil(ctx, 15*time.Second, func() bool {
		v, _ := b.metric("otelcol_certstore_generation", `certstore_extension="certstore/server"`)
		return v > genBefore
	}), "generation did not increase")
	newCAClient := ca2.issue("client-from-ca2").tlsCert()
	err = newSender("CA2 client", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{newCAClient}}, 0).exportOnce(ctx)
	check("CA rotation: client certificate from the new CA is accepted", err == nil, "%v", err)
	err = newSender("CA1 client", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{senderCert}}, 0).exportOnce(ctx)
	check("CA rotation: client certificate from the previous CA is accepted during the overlap", err == nil, "%v", err)
	err = newSender("foreign CA", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{foreign}}, 0).exportOnce(ctx)
	check("CA rotation: a foreign CA is still refused", err != nil, "export with a CA3 client certificate succeeded")

	// The direct sender's client certificate is from CA1, which B stops trusting below.
	direct.stop()
	check("direct sender: zero failed exports over the whole run", direct.fail.Load() == 0,
		"ok=%d failed=%d last: %v", direct.ok.Load(), direct.fail.Load(), direct.lastErr())

	// ---- 5. client side: collector A's exporter across a rotation of its client certificate ----
	// A's client certificate moves from CA1 to CA2. Then B's CA bundle moves on to [CA2, CA4],
	// which replaces the overlap bundle (previous = [CA2]) and so ends the trust in CA1: from
	// then on B accepts A's new certificate and refuses its old one.
	aGen, _ := a.metric("otelcol_certstore_generation")
	agent2 := ca2.issue("collector-a-2")
	must(0, kubeletWrite(aDir, map[string][]byte{"tls.crt": agent2.certPEM, "tls.key": agent2.keyPEM, "ca.crt": ca1.pem}))
	check("client rotation: A loads its new client certificate (CA2)", waitUntil(ctx, 15*time.Second, func() bool {
		v, _ := a.metric("otelcol_certstore_generation")
		return v > aGen
	}), "A's generation did not increase")
	genBefore, _ = b.metric("otelcol_certstore_generation", `certstore_extension="certstore/server"`)
	must(0, kubeletWrite(bDir, map[string][]byte{"tls.crt": current.certPEM, "tls.key": current.keyPEM, "ca.crt": bundle(ca2, ca4)}))
	check("client rotation: B picks up the CA bundle [CA2, CA4]", waitUntil(ctx, 15*time.Second, func() bool {
		v, _ := b.metric("otelcol_certstore_generation", `certstore_extension="certstore/server"`)
		return v > genBefore
	}), "generation did not increase")
	err = newSender("CA1 client", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{agentLeaf.tlsCert()}}, 0).exportOnce(ctx)
	check("client rotation: B now refuses A's old client certificate (CA1 overlap over)", err != nil,
		"export with A's old CA1 certificate succeeded")
	err = newSender("CA2 client", bAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{newCAClient}}, 0).exportOnce(ctx)
	check("client rotation: B accepts CA2 client certificates", err == nil, "%v", err)
	// B closes every connection after max_connection_age (3s ± 10%): once reconnectWindow has
	// passed, every export from A runs on a connection handshaken after CA1 lost B's trust, so
	// it reaches B only if A presents its new certificate.
	dropped := time.Now()
	time.Sleep(reconnectWindow)
	sentMark, _ := a.metric("otelcol_exporter_sent_spans", `exporter="otlp"`)
	okMark := viaA.ok.Load()
	kept := waitUntil(ctx, 5*time.Second, func() bool { return viaA.ok.Load() >= okMark+10 })
	sentNow, sentFound := a.metric("otelcol_exporter_sent_spans", `exporter="otlp"`)
	check("client rotation: A keeps exporting to B with its new certificate, zero failures",
		kept && sentFound && sentNow > sentMark && viaA.fail.Load() == 0,
		"%s after B dropped CA1: via A ok %d -> %d, failed %d (last: %v); A sent spans %v -> %v (found %v)",
		time.Since(dropped).Round(100*time.Millisecond), okMark, viaA.ok.Load(), viaA.fail.Load(), viaA.lastErr(),
		sentMark, sentNow, sentFound)

	// Control: the window above is real. Put A's old (CA1) certificate back: A's exports must
	// fail within one connection age; then a new CA2 certificate brings A back.
	controlStart := time.Now()
	must(0, kubeletWrite(aDir, map[string][]byte{"tls.crt": agentLeaf.certPEM, "tls.key": agentLeaf.keyPEM, "ca.crt": ca1.pem}))
	refused := waitUntil(ctx, 2*reconnectWindow, func() bool { return viaA.fail.Load() > 0 })
	if check("control: with its old CA1 certificate back, A's exports to B fail within one connection age", refused,
		"no failure within %s", 2*reconnectWindow) {
		logf("control: first failure after %s: %v", time.Since(controlStart).Round(100*time.Millisecond), viaA.lastErr())
	}
	agent3 := ca2.issue("collector-a-3")
	must(0, kubeletWrite(aDir, map[string][]byte{"tls.crt": agent3.certPEM, "tls.key": agent3.keyPEM, "ca.crt": ca1.pem}))
	okRestore := viaA.ok.Load()
	recovered := waitUntil(ctx, 20*time.Second, func() bool { return viaA.ok.Load() >= okRestore+10 })
	controlFails := viaA.fail.Load()
	okMark = viaA.ok.Load()
	recovered = recovered && waitUntil(ctx, 5*time.Second, func() bool { return viaA.ok.Load() >= okMark+10 })
	check("control: with a new CA2 certificate A exports again", recovered && viaA.fail.Load() == controlFails,
		"via A ok=%d failed=%d (failed %d at recovery) last: %v", viaA.ok.Load(), viaA.fail.Load(), controlFails, viaA.lastErr())
	logf("control: %d exports failed while A presented its old certificate", controlFails)

	// Accounting in A, everything synchronous (no queue, no retry): every span A's receiver
	// accepted was sent to B, and the only failed spans are those of the control.
	viaA.stop()
	check("sender into A: zero failed exports outside the control", viaA.fail.Load() == controlFails,
		"ok=%d failed=%d (control: %d) last: %v", viaA.ok.Load(), viaA.fail.Load(), controlFails, viaA.lastErr())
	var accA, sentA, failA float64
	var accFound, sentFound2, failFound bool
	settled := waitUntil(ctx, 5*time.Second, func() bool {
		accA, accFound = a.metric("otelcol_receiver_accepted_spans", `receiver="otlp"`)
		sentA, sentFound2 = a.metric("otelcol_exporter_sent_spans", `exporter="otlp"`)
		failA, failFound = a.metric("otelcol_exporter_send_failed_spans", `exporter="otlp"`)
		return accFound && sentFound2 && failFound && accA == sentA && accA == float64(5*viaA.ok.Load()) &&
			failA == float64(5*viaA.fail.Load())
	})
	check("A's metrics: accepted spans = sent spans = 5 x sender's ok exports; failed spans = the control's",
		settled, "receiver accepted %v (found %v), exporter sent %v (found %v), send_failed %v (found %v); sender ok=%d failed=%d",
		accA, accFound, sentA, sentFound2, failA, failFound, viaA.ok.Load(), viaA.fail.Load())
	logf("A: receiver accepted %v spans, exporter sent %v, send_failed %v (control)", accA, sentA, failA)

	accepted, _ := b.metric("otelcol_receiver_accepted_spans")
	refusedB, _ := b.metric("otelcol_receiver_refused_spans")
	logf("direct sender: %d exports ok; via A: %d ok; B accepted %v spans, refused %v", direct.ok.Load(),
		viaA.ok.Load(), accepted, refusedB)
	check("both collectors still running (no restart)", b.running() && a.running(), "a collector exited")
	runProbeScenario(ctx, dir)      // issue 11: certstore probe --against, divergence metrics
	runPrometheusScenario(ctx, dir) // issue 17: the alert rules in a real Prometheus server
	// Issue 10: the stock OTLP/HTTP receiver reading the extension's validated copy.
	runHTTPScenario(ctx, dir)
	// Issue 8: several certificates in one extension instance, chosen by SNI.
	runSNIScenario(ctx, dir)
	// Issue 16: trust changes reach live connections.
	runRevokeScenario(ctx, dir)
	return 0
}

func serialString(s *big.Int, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%X", s)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

var _ = io.Discard
