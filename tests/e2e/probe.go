// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

var certstoreCLI = flag.String("certstore", "", "certstore CLI binary (default: target/release/certstore above the working directory or this binary)")

// findCLI returns the certstore command: -certstore, else target/release/certstore of the
// repository above the working directory or above this binary (build/e2e).
func findCLI() (string, error) {
	if *certstoreCLI != "" {
		return filepath.Abs(*certstoreCLI)
	}
	if p, err := findAbove(filepath.Join("target", "release", "certstore")); err == nil {
		return p, nil
	}
	return "", errors.New("target/release/certstore not found (cargo build --release -p certstore-cli)")
}

// probeResult is one run of `certstore probe --against`: its exit status and output.
type probeResult struct {
	code int
	out  string
}

func (r probeResult) String() string {
	return fmt.Sprintf("exit %d: %s", r.code, strings.TrimSpace(r.out))
}

// runProbeScenario is acceptance 2 of issue 11: `certstore probe --against` against the built
// collector says 0 before a rotation, 0 after a good one, 1 while a refused generation sits on
// disk and 0 again after the next good one; at the same moments the extension's divergence
// gauge (Prometheus endpoint) and its log say the same.
func runProbeScenario(ctx context.Context, dir string) {
	fmt.Println("\n---- certstore probe --against: served versus disk (issue 11) ----")
	cli, err := findCLI()
	if !check("certstore CLI found", err == nil, "%v", err) {
		return
	}
	ca := newCA("e2e probe CA")
	certs := filepath.Join(dir, "probe-certs")
	must(0, os.MkdirAll(certs, 0o755))
	l1 := ca.issue("probe-server-1")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l1.certPEM, "tls.key": l1.keyPEM, "ca.crt": ca.pem}))
	client := ca.issue("probe-client")
	writeFile(filepath.Join(dir, "probe-client.crt"), client.certPEM)
	writeFile(filepath.Join(dir, "probe-client.key"), client.keyPEM)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	metricsPort := freePort()
	// reload_interval is long: every reaction below comes from the watch, not a re-read.
	p, err := startCollector("collector-probe", dir, render(serverConfig, map[string]any{
		"Dir": certs, "Endpoint": addr, "MetricsPort": metricsPort, "ConnAge": connAge.String()}), metricsPort)
	if !check("collector P (otlp receiver + certstore/server, mTLS) started", err == nil, "%v", err) {
		return
	}
	defer func() {
		if failed > 0 {
			fmt.Printf("\n----- last lines of %s -----\n%s\n", p.logPath, tail(p.log(), 40))
		}
		p.stop()
	}()

	against := filepath.Join(certs, "tls.crt")
	probe := func() probeResult {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(pctx, cli, "probe", addr, "--servername", "localhost",
			"--against", against, "--ca", filepath.Join(certs, "ca.crt"),
			"--client-cert", filepath.Join(dir, "probe-client.crt"), "--client-key", filepath.Join(dir, "probe-client.key"))
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			code = -1
			out = append(out, err.Error()...)
		}
		return probeResult{code, string(out)}
	}
	const inst = `certstore_extension="certstore/server"`
	gauge := func() (float64, bool) { return p.metric("otelcol_certstore_disk_divergent", inst) }
	// probeUntil probes until the exit status is want (a rotation is picked up within
	// milliseconds, but not synchronously with the write); it returns the last result.
	probeUntil := func(want int) (probeResult, bool) {
		var r probeResult
		ok := waitUntil(ctx, 15*time.Second, func() bool { r = probe(); return r.code == want || !p.running() })
		return r, ok && r.code == want
	}

	r, ok := probeUntil(0)
	if !check("probe before any rotation: exit 0 (served = tls.crt)", ok, "%v", r) {
		return
	}
	logf("probe: %s", firstLine(r.out, "serial"))
	v, found := gauge()
	check("before any rotation: otelcol_certstore_disk_divergent = 0", found && v == 0, "value %v (found %v)", v, found)

	// 1. A good kubelet-style rotation.
	l2 := ca.issue("probe-server-2")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l2.certPEM, "tls.key": l2.keyPEM, "ca.crt": ca.pem}))
	r, ok = probeUntil(0)
	check("probe after a good rotation: exit 0", ok && strings.Contains(strings.ToLower(r.out), l2.serial.Text(16)),
		"%v (want serial %x)", r, l2.serial)
	v, found = gauge()
	check("after a good rotation: otelcol_certstore_disk_divergent = 0", found && v == 0, "value %v (found %v)", v, found)
	check("after a good rotation: the collector logs the rotation", waitUntil(ctx, 10*time.Second, func() bool {
		return strings.Contains(p.log(), "Certificate rotated")
	}), "no 'Certificate rotated' in %s", p.logPath)

	// 2. A refused generation: a new certificate with the previous key. The store keeps l2.
	failuresBefore, _ := p.metric("otelcol_certstore_reload_failures", inst, `reason="key_mismatch"`)
	l3 := ca.issue("probe-server-3")
	refusedAt := time.Now()
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l3.certPEM, "tls.key": l2.keyPEM, "ca.crt": ca.pem}))
	diverged := waitUntil(ctx, 15*time.Second, func() bool { v, found = gauge(); return found && v == 1 })
	check("refused generation on disk: otelcol_certstore_disk_divergent = 1", diverged, "value %v (found %v)", v, found)
	if diverged {
		logf("divergence gauge 1 after %s", time.Since(refusedAt).Round(10*time.Millisecond))
	}
	for i := range 3 {
		r = probe()
		if !check(fmt.Sprintf("probe while the refused generation sits on disk (%d/3): exit 1", i+1), r.code == 1, "%v", r) {
			break
		}
	}
	logf("probe: %s", strings.ReplaceAll(strings.TrimSpace(r.out), "\n", " | "))
	check("probe: the output names the served and the on-disk serials",
		strings.Contains(strings.ToLower(r.out), l2.serial.Text(16)) && strings.Contains(strings.ToLower(r.out), l3.serial.Text(16)),
		"want %x and %x in: %s", l2.serial, l3.serial, r.out)
	v, found = gauge()
	check("after the probes: otelcol_certstore_disk_divergent still 1", found && v == 1, "value %v (found %v)", v, found)
	var dur float64
	grows := waitUntil(ctx, 10*time.Second, func() bool {
		dur, found = p.metric("otelcol_certstore_disk_divergent_duration", inst)
		return found && dur > 0
	})
	check("otelcol_certstore_disk_divergent_duration > 0 while it differs", grows, "value %v (found %v)", dur, found)
	var failures float64
	counted := waitUntil(ctx, 10*time.Second, func() bool {
		failures, found = p.metric("otelcol_certstore_reload_failures", inst, `reason="key_mismatch"`)
		return found && failures > failuresBefore
	})
	check(`otelcol_certstore_reload_failures{reason="key_mismatch"} increased`, counted, "%v -> %v (found %v)", failuresBefore, failures, found)
	var line string
	logged := waitUntil(ctx, 10*time.Second, func() bool {
		line = firstLine(p.log(), "Certificate reload failed")
		return strings.Contains(line, "key_mismatch")
	})
	check("the collector logs the refusal with reason key_mismatch", logged, "log line: %q", line)
	served, err := servedSerial(addr, ptr(client.tlsCert()), pool(ca))
	check("the old generation is still served (handshake from Go)", err == nil && served.Cmp(l2.serial) == 0,
		"served %s, want %X", serialString(served, err), l2.serial)

	// 3. The next good rotation: served = disk again.
	l4 := ca.issue("probe-server-4")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l4.certPEM, "tls.key": l4.keyPEM, "ca.crt": ca.pem}))
	r, ok = probeUntil(0)
	check("probe after the next good rotation: exit 0", ok && strings.Contains(strings.ToLower(r.out), l4.serial.Text(16)),
		"%v (want serial %x)", r, l4.serial)
	v, found = gauge()
	check("after the next good rotation: otelcol_certstore_disk_divergent = 0", found && v == 0, "value %v (found %v)", v, found)
	dur, found = p.metric("otelcol_certstore_disk_divergent_duration", inst)
	check("after the next good rotation: otelcol_certstore_disk_divergent_duration = 0", found && dur == 0, "value %v (found %v)", dur, found)
	leafLeft, found := p.metric("otelcol_certstore_certificate_time_left", inst, `certstore_certificate_role="leaf"`,
		fmt.Sprintf(`certstore_certificate_serial="%x"`, l4.serial))
	check("time left is reported for the new leaf", found && leafLeft > 23*3600 && leafLeft <= 24*3600,
		"value %v (found %v)", leafLeft, found)
	caLeft, found := p.metric("otelcol_certstore_certificate_time_left", inst, `certstore_certificate_role="ca"`,
		fmt.Sprintf(`certstore_certificate_serial="%x"`, ca.cert.SerialNumber))
	check("time left is reported for the trusted CA", found && caLeft > 47*3600 && caLeft <= 48*3600,
		"value %v (found %v)", caLeft, found)
	check("collector P still running (no restart)", p.running(), "collector P exited")
}

func ptr[T any](v T) *T { return &v }
