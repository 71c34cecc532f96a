// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// Command e2e-container runs the collector image as Kubernetes runs it with a Secret volume:
// non-root (the image's user, 65532), the certificate directory bind-mounted read-only, the
// files rotated from outside the container by the kubelet's own atomic writer
// (k8s.io/kubernetes/pkg/volume/util.AtomicWriter, with fsGroup-style ownership). An OTLP/gRPC
// sender with mTLS exports a batch on a new connection every 100 ms the whole time; after each
// rotation its handshakes must be served the new serial, and no export may fail. The
// OTLP/HTTP receiver of the same collector reads the extension's validated_dir, an
// emptyDir-like mount point (tmpfs, root-owned, 0777, which uid 65532 cannot chmod) as in
// examples/kubernetes: it must serve each new serial over TLS and accept an export.
// Run it through tests/container/run.sh (make e2e-container). Loopback only.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

var (
	image     = flag.String("image", "localhost/otelcol-certstore:0.1.0", "collector image")
	podman    = flag.String("podman", "podman", "podman binary")
	rotations = flag.Int("rotations", 4, "kubelet rotations of the certificate")
	workDir   = flag.String("workdir", "", "work directory (default: a new temp dir, removed on success)")
	container = flag.String("name", fmt.Sprintf("certstore-e2e-%d", os.Getpid()), "container name (run.sh removes it even if this program is killed)")
)

// The image's user: what Kubernetes' runAsUser/fsGroup in examples/kubernetes name.
const nonRootUID = 65532

var passed, failed int

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

func main() {
	flag.Parse()
	err := run()
	if err != nil {
		failed++
		fmt.Printf("FAIL  e2e-container: %v\n", err)
	}
	fmt.Printf("e2e-container: %d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func run() error {
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "certstore-e2e-container-")
		if err != nil {
			return err
		}
		dir = d
		defer func() {
			if failed == 0 {
				_ = os.RemoveAll(d)
			} else {
				fmt.Printf("      work directory kept: %s\n", d)
			}
		}()
	}
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return err
	}

	ca, err := newCA()
	if err != nil {
		return err
	}
	client, err := ca.issue("e2e-sender", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	writer, err := volumeutil.NewAtomicWriter(certDir, "e2e-container")
	if err != nil {
		return err
	}
	server, err := rotate(writer, certDir, ca)
	if err != nil {
		return err
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	metricsPort, err := freePort()
	if err != nil {
		return err
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", port)
	httpEndpoint := fmt.Sprintf("127.0.0.1:%d", httpPort)
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(collectorConfig(endpoint, httpEndpoint, metricsPort)), 0o644); err != nil {
		return err
	}

	name := *container
	// Mounted read-only, as the kubelet mounts a Secret volume; the config as a ConfigMap; the
	// validated copy on a tmpfs mount point made by the runtime (root, 0777), as the kubelet
	// makes an emptyDir (medium: Memory).
	if out, err := podmanCmd("run", "--detach", "--name", name, "--network=host", "--read-only",
		"--volume", certDir+":/certs:ro", "--volume", configPath+":/etc/otelcol/config.yaml:ro",
		"--tmpfs", validatedDir+":rw,mode=0777,size=1m",
		*image, "--config", "/etc/otelcol/config.yaml").CombinedOutput(); err != nil {
		return fmt.Errorf("podman run: %v: %s", err, out)
	}
	defer func() {
		if failed > 0 {
			out, _ := podmanCmd("logs", name).CombinedOutput()
			fmt.Printf("----- collector log (%s) -----\n%s-----\n", name, out)
		}
		_ = podmanCmd("rm", "--force", "--time", "5", name).Run()
	}()

	checkContainer(name)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{client}}
	if !waitServed(endpoint, clientCfg, server, 60*time.Second) {
		check("collector serves the first certificate", false, "serial %x not served on %s", server, endpoint)
		return nil
	}
	check("collector serves the first certificate", true, "")
	checkValidatedMount(name)
	check("OTLP/HTTP serves the first certificate from the emptyDir validated_dir",
		waitServed(httpEndpoint, clientCfg, server, 30*time.Second), "serial %x not served on %s", server, httpEndpoint)

	s := &sender{endpoint: endpoint, tlsCfg: clientCfg}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()

	for i := 1; i <= *rotations; i++ {
		time.Sleep(time.Second) // exports with the current generation before the next swap
		start := time.Now()
		serial, err := rotate(writer, certDir, ca)
		if err != nil {
			cancel()
			<-done
			return err
		}
		ok := s.waitSeen(serial, 15*time.Second)
		check(fmt.Sprintf("rotation %d: the sender's handshakes are served the new serial", i), ok,
			"serial %x not seen within 15s (last served %s)", serial, s.lastSerial())
		if ok {
			logf("rotation %d: new serial %x on the wire after %v", i, serial, time.Since(start).Round(time.Millisecond))
		}
		// The HTTP receiver re-reads the copy every reload_interval (1s).
		ok = waitServed(httpEndpoint, clientCfg, serial, 15*time.Second)
		check(fmt.Sprintf("rotation %d: OTLP/HTTP serves the new serial from validated_dir", i), ok,
			"serial %x not served on %s within 15s", serial, httpEndpoint)
	}
	err = exportHTTP(httpEndpoint, clientCfg)
	check("an OTLP/HTTP export over TLS is accepted", err == nil, "%v", err)
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done

	okN, failN := s.ok.Load(), s.fail.Load()
	check("exports succeeded across the rotations", okN > 0, "no export succeeded")
	check("zero failed exports", failN == 0, "%d of %d exports failed, last error: %v", failN, okN+failN, s.lastErr())
	logf("%d exports, %d failed", okN+failN, failN)
	return nil
}

// checkContainer checks what the pod spec in examples/kubernetes promises: the collector runs
// as uid 65532, and the certificate mount is read-only.
func checkContainer(name string) {
	out, err := podmanCmd("inspect", "--format", "{{.State.Pid}}", name).Output()
	if err != nil {
		check("container runs as uid 65532", false, "podman inspect: %v", err)
	} else {
		status, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(out)), "status"))
		uid := ""
		for line := range strings.SplitSeq(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				uid = strings.Fields(rest)[0] // real uid; effective follows
			}
		}
		check("container runs as uid 65532", err == nil && uid == strconv.Itoa(nonRootUID),
			"uid %q (%v)", uid, err)
	}
	out, err = podmanCmd("inspect", "--format", "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}", name).Output()
	check("certificate directory mounted read-only", err == nil && strings.Contains(string(out), "/certs=false"),
		"mounts %q (%v)", strings.TrimSpace(string(out)), err)
}

// validatedDir is the extension's validated_dir inside the container: a mount point.
const validatedDir = "/run/certstore/otlp-http"

// checkValidatedMount checks that the collector used the emptyDir-like mount point as it is
// (root-owned, 0777: the non-root collector cannot chmod it) and wrote the copy into it.
func checkValidatedMount(name string) {
	out, err := podmanCmd("inspect", "--format", "{{.State.Pid}}", name).Output()
	if err != nil {
		check("validated_dir mount point left as the runtime made it", false, "podman inspect: %v", err)
		return
	}
	root := filepath.Join("/proc", strings.TrimSpace(string(out)), "root")
	st, err := os.Stat(root + validatedDir)
	var uid uint32 = 1<<32 - 1
	if sys, ok := statOwner(st); ok {
		uid = sys
	}
	check("validated_dir mount point left as the runtime made it (root, 0777)",
		err == nil && st.Mode().Perm() == 0o777 && uid == 0, "stat: %v (uid %d)", err, uid)
	_, err = os.Lstat(root + validatedDir + "/tls.crt")
	check("validated copy written by uid 65532 into the mount point", err == nil, "%v", err)
}

// exportHTTP sends one empty OTLP/HTTP trace export with the client certificate.
func exportHTTP(endpoint string, cfg *tls.Config) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone()}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Post("https://"+endpoint+"/v1/traces", "application/x-protobuf", bytes.NewReader(nil))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func podmanCmd(args ...string) *exec.Cmd {
	// crun fails on this machine kind's cgroups; runc with cgroupfs works (DESIGN.md).
	return exec.Command(*podman, append([]string{"--runtime", "runc", "--cgroup-manager=cgroupfs"}, args...)...)
}

func collectorConfig(endpoint, httpEndpoint string, metricsPort int) string {
	return fmt.Sprintf(`extensions:
  certstore:
    cert_file: /certs/tls.crt
    key_file: /certs/tls.key
    ca_file: /certs/ca.crt
    client_auth: require
  certstore/http:
    cert_file: /certs/tls.crt
    key_file: /certs/tls.key
    ca_file: /certs/ca.crt
    validated_dir: %[4]s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[1]s
        middlewares: [{id: certstore}]
      http:
        endpoint: %[2]s
        tls:
          cert_file: %[4]s/tls.crt
          key_file: %[4]s/tls.key
          client_ca_file: %[4]s/ca.crt
          client_ca_file_reload: true
          reload_interval: 1s
exporters:
  debug:
    verbosity: basic
service:
  extensions: [certstore, certstore/http]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[3]d
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`, endpoint, httpEndpoint, metricsPort, validatedDir)
}

// ---------- the kubelet's writer ----------

// rotate issues a new server certificate and writes it with the CA through the kubelet's
// atomic writer. setPerms does what the kubelet does for a pod with fsGroup 65532: the files
// (mode 0440) belong to that group, so the non-root collector can read them.
func rotate(w *volumeutil.AtomicWriter, dir string, ca *authority) (*big.Int, error) {
	leaf, err := ca.issue("localhost", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		return nil, err
	}
	payload := map[string]volumeutil.FileProjection{
		"tls.crt": {Data: certPEM, Mode: 0o440},
		"tls.key": {Data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), Mode: 0o440},
		"ca.crt":  {Data: ca.pem, Mode: 0o440},
	}
	setPerms := func(subPath string) error {
		return filepath.Walk(filepath.Join(dir, subPath), func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, -1, nonRootUID)
		})
	}
	if err := w.Write(payload, setPerms); err != nil {
		return nil, fmt.Errorf("kubelet atomic writer: %w", err)
	}
	return leaf.Leaf.SerialNumber, nil
}

// ---------- PKI ----------

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "certstore e2e-container CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue returns a leaf for cn (also 127.0.0.1 for a server) valid for a day.
func (a *authority) issue(cn string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{cn}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

// ---------- the sender ----------

// sender exports a batch of spans on a new connection (a new TLS handshake) every 100 ms and
// records the serial each handshake was served.
type sender struct {
	endpoint string
	tlsCfg   *tls.Config

	ok, fail atomic.Int64
	mu       sync.Mutex
	err      error
	seen     map[string]bool
	last     string
}

func (s *sender) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.exportOnce(ctx)
		if ctx.Err() != nil {
			return // cancelled mid-export: not a failure of the collector
		}
		if err != nil {
			s.fail.Add(1)
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		} else {
			s.ok.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sender) exportOnce(ctx context.Context) error {
	cfg := s.tlsCfg.Clone()
	cfg.VerifyConnection = func(st tls.ConnectionState) error {
		serial := st.PeerCertificates[0].SerialNumber.String()
		s.mu.Lock()
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		s.seen[serial] = true
		s.last = serial
		s.mu.Unlock()
		return nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.endpoint),
		otlptracegrpc.WithTLSCredentials(credentials.NewTLS(cfg)),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
		otlptracegrpc.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	return exp.ExportSpans(ctx, spans(5))
}

func (s *sender) waitSeen(serial *big.Int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		ok := s.seen[serial.String()]
		s.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

func (s *sender) lastSerial() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *sender) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func spans(n int) []sdktrace.ReadOnlySpan {
	stubs := make(tracetest.SpanStubs, n)
	now := time.Now()
	for i := range stubs {
		var tid trace.TraceID
		var sid trace.SpanID
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(sid[:])
		stubs[i] = tracetest.SpanStub{
			Name:                 "certstore-e2e-container",
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
			StartTime:            now.Add(-time.Millisecond),
			EndTime:              now,
			InstrumentationScope: instrumentation.Scope{Name: "certstore-e2e-container"},
		}
	}
	return stubs.Snapshots()
}

// waitServed dials until the collector serves want (its first start takes a moment).
func waitServed(endpoint string, cfg *tls.Config, want *big.Int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", endpoint, cfg)
		if err != nil {
			continue
		}
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
		_ = conn.Close()
		if serial.Cmp(want) == 0 {
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func statOwner(st os.FileInfo) (uint32, bool) {
	if st == nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return sys.Uid, true
}
