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
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Collector R (issue 16): an OTLP/gRPC receiver with client_auth require and ca_overlap 3s, no
// max_connection_age: a connection lives as long as its client keeps it. Trust changes must
// still reach it.
const revokeConfig = `extensions:
  certstore/revoke:
    cert_file: {{.Dir}}/tls.crt
    key_file: {{.Dir}}/tls.key
    ca_file: {{.Dir}}/ca.crt
    client_auth: require
    ca_overlap: {{.Overlap}}
    reload_interval: 30s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{.Endpoint}}
        middlewares: [{id: certstore/revoke}]
exporters:
  debug:
    verbosity: basic
    sampling_initial: 1
    sampling_thereafter: 1000
service:
  extensions: [certstore/revoke]
` + serviceTelemetry + `  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`

const revokeOverlap = 3 * time.Second

// timedSender exports every 100 ms on one long-lived OTLP/gRPC exporter (one connection, which
// gRPC re-dials only when it ends) and keeps the time of every outcome and handshake.
type timedSender struct {
	*spanSender
	mu          sync.Mutex
	handshakeAt []time.Time
	okAt        []time.Time
	failAt      []time.Time
}

func newTimedSender(name, endpoint string, roots *x509.CertPool, cert tls.Certificate) *timedSender {
	t := &timedSender{}
	cfg := &tls.Config{RootCAs: roots, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		// Once per full handshake: the server asks every client for its certificate.
		t.mu.Lock()
		t.handshakeAt = append(t.handshakeAt, time.Now())
		t.mu.Unlock()
		return &cert, nil
	}}
	t.spanSender = newSender(name, endpoint, cfg, 100*time.Millisecond)
	return t
}

// run is spanSender.run with the outcomes timed.
func (t *timedSender) run(ctx context.Context) {
	exp, err := t.exporter(ctx)
	if err != nil {
		t.note(err)
		return
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = exp.Shutdown(sctx)
	}()
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := exp.ExportSpans(ectx, spans(1))
		cancel()
		if ctx.Err() != nil {
			return
		}
		t.note(err)
	}
}

func (t *timedSender) note(err error) {
	now := time.Now()
	t.record(err)
	t.mu.Lock()
	if err != nil {
		t.failAt = append(t.failAt, now)
	} else {
		t.okAt = append(t.okAt, now)
	}
	t.mu.Unlock()
}

func (t *timedSender) begin(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); t.run(ctx) }()
	var once sync.Once
	t.stop = func() { once.Do(func() { cancel(); <-done }) }
}

// outcomes returns the successes and failures in [from, to).
func (t *timedSender) outcomes(from, to time.Time) (ok, fail int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, at := range t.okAt {
		if !at.Before(from) && at.Before(to) {
			ok++
		}
	}
	for _, at := range t.failAt {
		if !at.Before(from) && at.Before(to) {
			fail++
		}
	}
	return ok, fail
}

// handshakesBefore counts the sender's full handshakes before at.
func (t *timedSender) handshakesBefore(at time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, h := range t.handshakeAt {
		if h.Before(at) {
			n++
		}
	}
	return n
}

// firstFailure is the time of the first failed export, zero when none failed.
func (t *timedSender) firstFailure() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.failAt) == 0 {
		return time.Time{}
	}
	return t.failAt[0]
}

func issueUntil(c *ca, cn string, notAfter time.Time) leaf {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	serial := big.NewInt(serials.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     notAfter,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key))
	return leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}),
		serial:  serial,
	}
}

// runRevokeScenario: three clients, each on one long-lived gRPC connection exporting every
// 100 ms. The old CA leaves the bundle (ca_overlap 3s): its client is served during the overlap
// and cut within 1 s after it. A client whose certificate expires mid-connection is cut within
// 1 s of its notAfter. The new CA's client never fails. Metric and log agree.
func runRevokeScenario(ctx context.Context, dir string) (c *collector) {
	defer func() {
		if c != nil && failed > 0 {
			fmt.Printf("\n----- last lines of %s -----\n%s\n", c.logPath, tail(c.log(), 40))
		}
		if c != nil {
			c.stop()
		}
	}()
	fmt.Println("\n---- revocation: trust changes reach live gRPC connections ----")
	serverCA, oldCA, newCA := newCA("e2e revoke server CA"), newCA("e2e revoke old client CA"), newCA("e2e revoke new client CA")
	certs := filepath.Join(dir, "revoke-certs")
	must(0, os.MkdirAll(certs, 0o755))
	server := serverCA.issue("collector-r")
	write := func(cas ...*ca) {
		must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": server.certPEM, "tls.key": server.keyPEM, "ca.crt": bundle(cas...)}))
	}
	write(oldCA, newCA)
	roots := pool(serverCA)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	metricsPort := freePort()
	c, err := startCollector("collector-revoke", dir, render(revokeConfig, map[string]any{
		"Dir": certs, "Endpoint": addr, "MetricsPort": metricsPort, "Overlap": revokeOverlap.String()}), metricsPort)
	if err != nil {
		check("revoke: collector R starts", false, "%v", err)
		return nil
	}
	oldLeaf := oldCA.issue("revoke-old-ca-client")
	ready := waitUntil(ctx, 30*time.Second, func() bool {
		_, err := servedSerial(addr, ptr(oldLeaf.tlsCert()), roots)
		return err == nil || !c.running()
	}) && c.running()
	if !check("revoke: collector R (otlp receiver, client_auth require, ca_overlap 3s) serves mTLS", ready, "not ready within 30s") {
		return c
	}

	// The expiring client's certificate ends a few seconds after the scenario's start (x509
	// keeps whole seconds), after the CA rotation's overlap.
	expiresAt := time.Now().Add(9 * time.Second).Truncate(time.Second)
	expiring := issueUntil(newCA, "revoke-expiring-client", expiresAt)
	senders := map[string]*timedSender{
		"old":      newTimedSender("old-CA client", addr, roots, oldLeaf.tlsCert()),
		"new":      newTimedSender("new-CA client", addr, roots, newCA.issue("revoke-new-ca-client").tlsCert()),
		"expiring": newTimedSender("expiring client", addr, roots, expiring.tlsCert()),
	}
	for _, s := range senders {
		s.begin(ctx)
		defer s.stop()
	}
	if !check("revoke: the three clients export", waitUntil(ctx, 20*time.Second, func() bool {
		for _, s := range senders {
			if s.ok.Load() < 5 {
				return false
			}
		}
		return true
	}), "old ok=%d (%v), new ok=%d (%v), expiring ok=%d (%v)", senders["old"].ok.Load(), senders["old"].lastErr(),
		senders["new"].ok.Load(), senders["new"].lastErr(), senders["expiring"].ok.Load(), senders["expiring"].lastErr()) {
		return c
	}

	// The old CA leaves the bundle; the overlap keeps it trusted for 3 s.
	genBefore, _ := c.metric("otelcol_certstore_generation", `certstore_extension="certstore/revoke"`)
	rotated := time.Now()
	write(newCA)
	if !check("revoke: R loads the bundle without the old CA", waitUntil(ctx, 10*time.Second, func() bool {
		v, _ := c.metric("otelcol_certstore_generation", `certstore_extension="certstore/revoke"`)
		return v > genBefore
	}), "generation did not increase") {
		return c
	}
	old := senders["old"]
	cut := waitUntil(ctx, 10*time.Second+revokeOverlap, func() bool { return !old.firstFailure().IsZero() })
	overlapEnd := rotated.Add(revokeOverlap)
	first := old.firstFailure()
	okDuring, failDuring := old.outcomes(rotated, overlapEnd)
	check("revoke: the old-CA client is served during the overlap", failDuring == 0 && okDuring >= 10,
		"during the overlap: %d ok, %d failed (%v)", okDuring, failDuring, old.lastErr())
	if check("revoke: the old-CA client is refused on its existing connection within 1 s after the overlap",
		cut && !first.Before(overlapEnd) && first.Sub(overlapEnd) <= time.Second && old.handshakesBefore(overlapEnd) == 1,
		"first failure %v after the overlap's end (cut %v); handshakes before the end: %d", first.Sub(overlapEnd), cut, old.handshakesBefore(overlapEnd)) {
		logf("revoke: the old-CA client's first failed export %s after the overlap ended (%v)",
			first.Sub(overlapEnd).Round(time.Millisecond), old.lastErr())
	}
	err = newSender("old-CA client, new connection", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{oldLeaf.tlsCert()}}, 0).exportOnce(ctx)
	check("revoke: a new connection of the old-CA client is refused", err != nil, "export succeeded")
	if cut {
		okAfter, _ := old.outcomes(first, time.Now())
		check("revoke: the old-CA client is not served after it was cut", okAfter == 0, "%d exports served after the cut", okAfter)
	}

	// The expiring client: cut within 1 s of its notAfter, never before.
	exp := senders["expiring"]
	cut = waitUntil(ctx, time.Until(expiresAt)+10*time.Second, func() bool { return !exp.firstFailure().IsZero() })
	first = exp.firstFailure()
	if check("revoke: the client whose certificate expires is refused within 1 s of its notAfter",
		cut && !first.Before(expiresAt) && first.Sub(expiresAt) <= time.Second && exp.handshakesBefore(expiresAt) == 1,
		"first failure %v after notAfter %s (cut %v); handshakes before it: %d", first.Sub(expiresAt), expiresAt.Format(time.RFC3339), cut, exp.handshakesBefore(expiresAt)) {
		logf("revoke: the expired client's first failed export %s after its notAfter", first.Sub(expiresAt).Round(time.Millisecond))
	}

	// The new CA's client: never a failure, one connection throughout.
	newer := senders["new"]
	okMark := newer.ok.Load()
	waitUntil(ctx, 5*time.Second, func() bool { return newer.ok.Load() >= okMark+10 })
	check("revoke: the new-CA client has 0 failures on its one connection", newer.fail.Load() == 0 && newer.ok.Load() >= okMark+10 &&
		newer.handshakesBefore(time.Now()) == 1, "ok=%d failed=%d handshakes=%d (%v)", newer.ok.Load(), newer.fail.Load(),
		newer.handshakesBefore(time.Now()), newer.lastErr())

	// Metric and log agree: one revocation per reason, with the subjects of the two clients.
	const inst = `certstore_extension="certstore/revoke"`
	caRemoved, _ := c.metric("otelcol_certstore_connections_revoked", inst, `reason="ca_removed"`)
	expired, _ := c.metric("otelcol_certstore_connections_revoked", inst, `reason="peer_expired"`)
	var logCA, logExpired int
	for _, l := range strings.Split(c.log(), "\n") {
		if !strings.Contains(l, "Closed a connection whose peer is no longer trusted") {
			continue
		}
		switch {
		case strings.Contains(l, `"reason": "ca_removed"`) && strings.Contains(l, "CN=revoke-old-ca-client"):
			logCA++
		case strings.Contains(l, `"reason": "peer_expired"`) && strings.Contains(l, "CN=revoke-expiring-client"):
			logExpired++
		}
	}
	if check("revoke: otelcol_certstore_connections_revoked and the log agree (1 ca_removed, 1 peer_expired)",
		caRemoved == 1 && expired == 1 && logCA == 1 && logExpired == 1,
		"metric ca_removed=%v peer_expired=%v; log lines ca_removed=%d peer_expired=%d", caRemoved, expired, logCA, logExpired) {
		logf("revoke: %s", firstLine(c.log(), "Closed a connection whose peer is no longer trusted"))
	}
	check("revoke: collector R still running", c.running(), "collector R exited")
	return c
}
