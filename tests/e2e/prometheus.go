// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

var prometheusBin = flag.String("prometheus", "prometheus", "Prometheus server binary (Debian package prometheus)")

// findAbove returns the path of rel in the repository: above the working directory or above
// this binary (build/e2e).
func findAbove(rel string) (string, error) {
	wd, _ := os.Getwd()
	exe, _ := os.Executable()
	for _, start := range []string{wd, filepath.Dir(exe)} {
		for dir := start; dir != "" && dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			p := filepath.Join(dir, rel)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found above the working directory or the e2e binary", rel)
}

// promServer is a Prometheus server on 127.0.0.1 with its own storage in the work directory.
type promServer struct {
	cmd     *exec.Cmd
	api     string
	logPath string
	exited  chan struct{}
}

func startPrometheus(bin, dir, config string) (*promServer, error) {
	cfgPath := filepath.Join(dir, "prometheus.yml")
	writeFile(cfgPath, []byte(config))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "prometheus-data"),
		"--web.listen-address="+listen)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &promServer{cmd: cmd, api: "http://" + listen, logPath: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.exited) }()
	return p, nil
}

func (p *promServer) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// get decodes the data of a Prometheus HTTP API answer into out.
func (p *promServer) get(path string, params url.Values, out any) error {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(p.api + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", path, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// query returns the label sets of the series an instant query returns.
func (p *promServer) query(q string) ([]map[string]string, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	out := make([]map[string]string, 0, len(data.Result))
	for _, r := range data.Result {
		out = append(out, r.Metric)
	}
	return out, nil
}

// alertQueries returns the expression of each alerting rule Prometheus loaded, by name.
func (p *promServer) alertQueries() (map[string]string, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
				Type  string `json:"type"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out[r.Name] = r.Query
		}
	}
	return out, nil
}

// runPrometheusScenario is the e2e of issue 17: a real Prometheus server loads the project's
// alert rules and scrapes the built collector. After a refused generation is written, the
// CertstoreDiskDivergent expression returns that collector's series (with the served serial)
// through the query API; after the next good rotation it returns nothing. The `for:` waits are
// the promtool unit tests' job.
func runPrometheusScenario(ctx context.Context, dir string) {
	fmt.Println("\n---- Prometheus with deploy/prometheus/certstore.rules.yaml (issue 17) ----")
	bin, err := exec.LookPath(*prometheusBin)
	if !check("prometheus server found", err == nil, "%v (apt-get install prometheus)", err) {
		return
	}
	rules, err := findAbove(filepath.Join("deploy", "prometheus", "certstore.rules.yaml"))
	if !check("alert rules found", err == nil, "%v", err) {
		return
	}
	ca := newCA("e2e prometheus CA")
	certs := filepath.Join(dir, "prometheus-certs")
	must(0, os.MkdirAll(certs, 0o755))
	l1 := ca.issue("prometheus-server-1")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l1.certPEM, "tls.key": l1.keyPEM, "ca.crt": ca.pem}))

	metricsPort := freePort()
	c, err := startCollector("collector-prometheus", dir, render(serverConfig, map[string]any{
		"Dir": certs, "Endpoint": fmt.Sprintf("127.0.0.1:%d", freePort()), "MetricsPort": metricsPort,
		"ConnAge": connAge.String()}), metricsPort)
	if !check("collector M (certstore/server) started", err == nil, "%v", err) {
		return
	}
	defer c.stop()
	// A short scrape and evaluation interval: each change is in Prometheus within seconds.
	prom, err := startPrometheus(bin, dir, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: otelcol
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, rules, metricsPort))
	if !check("prometheus started", err == nil, "%v", err) {
		return
	}
	defer func() {
		if failed > 0 {
			for _, logPath := range []string{c.logPath, prom.logPath} {
				b, _ := os.ReadFile(logPath)
				fmt.Printf("\n----- last lines of %s -----\n%s\n", logPath, tail(string(b), 30))
			}
		}
		prom.stop()
	}()

	alerts := []string{"CertstoreDiskDivergent", "CertstoreCertificateExpiringSoon", "CertstoreCertificateExpired",
		"CertstoreCAExpiringSoon", "CertstoreWatchDegraded"}
	var loaded map[string]string
	ok := waitUntil(ctx, 60*time.Second, func() bool {
		loaded, err = prom.alertQueries()
		return err == nil && len(loaded) == len(alerts)
	})
	for _, a := range alerts {
		ok = ok && loaded[a] != ""
	}
	if !check("prometheus loaded the five certstore alerts", ok, "loaded %v (%v)", loaded, err) {
		return
	}

	instance := fmt.Sprintf(`instance="127.0.0.1:%d"`, metricsPort)
	// Every metric the rules query is on the endpoint under the name the rules use.
	var names []map[string]string
	want := []string{"otelcol_certstore_certificate_time_left", "otelcol_certstore_certificate_lifetime",
		"otelcol_certstore_disk_divergent", "otelcol_certstore_watch_degraded"}
	scraped := waitUntil(ctx, 60*time.Second, func() bool {
		names, err = prom.query(`count by (__name__) ({__name__=~"otelcol_certstore_.+", ` + instance + `})`)
		found := map[string]bool{}
		for _, n := range names {
			found[n["__name__"]] = true
		}
		for _, w := range want {
			if !found[w] {
				return false
			}
		}
		return true
	})
	if !check("prometheus scrapes the collector: "+strings.Join(want, ", "), scraped, "names %v (%v)", names, err) {
		return
	}
	var fraction []map[string]string
	lifetimeOK := waitUntil(ctx, 10*time.Second, func() bool {
		// The leaf has just been issued: almost all of its lifetime is left.
		fraction, err = prom.query(`otelcol_certstore_certificate_time_left{certstore_certificate_role="leaf", ` + instance +
			`} / otelcol_certstore_certificate_lifetime > 0.9`)
		return err == nil && len(fraction) == 1 && fraction[0]["certstore_certificate_serial"] == l1.serial.Text(16)
	})
	check("time_left / lifetime of the served leaf is near 1 (the series match one to one)", lifetimeOK, "%v (%v)", fraction, err)

	expr := loaded["CertstoreDiskDivergent"]
	// series returns the expression's series of this collector.
	series := func() ([]map[string]string, error) {
		all, err := prom.query(expr)
		var mine []map[string]string
		for _, s := range all {
			if `instance="`+s["instance"]+`"` == instance {
				mine = append(mine, s)
			}
		}
		return mine, err
	}
	got, err := series()
	check("before any refusal: the CertstoreDiskDivergent expression returns nothing", err == nil && len(got) == 0,
		"%v (%v)", got, err)

	// A refused generation: a new certificate with the previous key.
	l2 := ca.issue("prometheus-server-2")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l2.certPEM, "tls.key": l1.keyPEM, "ca.crt": ca.pem}))
	ok = waitUntil(ctx, 30*time.Second, func() bool { got, err = series(); return err == nil && len(got) == 1 })
	if check("refused generation on disk: the CertstoreDiskDivergent expression returns the collector's series", ok,
		"%v (%v)", got, err) {
		s := got[0]
		logf("CertstoreDiskDivergent expression: %v", s)
		check("the series names the extension, the certificate file and the served serial",
			s["certstore_extension"] == "certstore/server" && s["certstore_certificate_file"] == filepath.Join(certs, "tls.crt") &&
				s["certstore_certificate_serial"] == l1.serial.Text(16),
			"%v (want serial %x)", s, l1.serial)
	}
	var pending []map[string]string
	ok = waitUntil(ctx, 15*time.Second, func() bool {
		pending, err = prom.query(`ALERTS{alertname="CertstoreDiskDivergent", ` + instance + `}`)
		return err == nil && len(pending) == 1
	})
	check("the alert is pending, not firing (its for: is 10m)", ok && pending[0]["alertstate"] == "pending", "%v (%v)", pending, err)
	var description string
	ok = waitUntil(ctx, 15*time.Second, func() bool {
		var data struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"alerts"`
		}
		err = prom.get("/api/v1/alerts", nil, &data)
		for _, a := range data.Alerts {
			if a.Labels["alertname"] == "CertstoreDiskDivergent" && `instance="`+a.Labels["instance"]+`"` == instance {
				description = a.Annotations["description"]
			}
		}
		return strings.Contains(description, fmt.Sprintf("(serial %x on disk)", l2.serial))
	})
	check("the alert's description names the refused leaf's serial on disk", ok, "description %q (want serial %x; %v)",
		description, l2.serial, err)

	// The next good rotation: the expression returns nothing again.
	l3 := ca.issue("prometheus-server-3")
	must(0, kubeletWrite(certs, map[string][]byte{"tls.crt": l3.certPEM, "tls.key": l3.keyPEM, "ca.crt": ca.pem}))
	ok = waitUntil(ctx, 30*time.Second, func() bool { got, err = series(); return err == nil && len(got) == 0 })
	check("after the next good rotation: the CertstoreDiskDivergent expression returns nothing", ok, "%v (%v)", got, err)
}
