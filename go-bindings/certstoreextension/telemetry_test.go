// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func parseCertPEM(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

// gaugeAttributeSets returns the attribute sets of a float gauge's data points.
func gaugeAttributeSets(t *testing.T, tel *componenttest.Telemetry, name string) []attribute.Set {
	t.Helper()
	m, err := tel.GetMetric(name)
	require.NoError(t, err, "%s reported", name)
	g, ok := m.Data.(metricdata.Gauge[float64])
	require.True(t, ok, "%s is a float gauge, got %T", name, m.Data)
	sets := make([]attribute.Set, 0, len(g.DataPoints))
	for _, p := range g.DataPoints {
		sets = append(sets, p.Attributes)
	}
	return sets
}

// The lifetime (notAfter − notBefore) of the served leaf and of each trusted CA, under exactly
// the attributes of certificate_time_left: the alert rules divide one by the other series by
// series. A 1-hour leaf and its 90-day successor each report their own lifetime.
func TestCertificateLifetime(t *testing.T) {
	ca := newTestCA(t, "lifetime CA")
	c1, k1, s1 := ca.issue(t, "server-1", time.Hour)
	d := newCertDir(t, c1, k1, ca.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	startExtension(t, "lifetime", config(d, true), newStatusHost(), tel)
	inst := attribute.String("certstore.extension", "certstore/lifetime")
	lifetime := func(role, serial string) (float64, bool) {
		return floatMetric(t, tel, "otelcol_certstore_certificate_lifetime", inst,
			attribute.String("certstore.certificate.role", role), attribute.String("certstore.certificate.serial", serial))
	}
	validity := func(c *x509.Certificate) float64 { return c.NotAfter.Sub(c.NotBefore).Seconds() }

	leaf1 := parseCertPEM(t, c1)
	v, ok := lifetime("leaf", s1.Text(16))
	require.True(t, ok, "the leaf's lifetime is reported")
	assert.Equal(t, validity(leaf1), v)
	assert.InDelta(t, time.Hour.Seconds()+time.Minute.Seconds(), v, 2, "issue() makes leaves valid from a minute ago")
	v, ok = lifetime("ca", ca.cert.SerialNumber.Text(16))
	require.True(t, ok, "the CA's lifetime is reported")
	assert.Equal(t, validity(ca.cert), v)
	assert.ElementsMatch(t, gaugeAttributeSets(t, tel, "otelcol_certstore_certificate_time_left"),
		gaugeAttributeSets(t, tel, "otelcol_certstore_certificate_lifetime"),
		"lifetime and time left have the same series")

	c2, k2, s2 := ca.issue(t, "server-2", 90*24*time.Hour)
	d.write(t, c2, k2, ca.pem)
	waitFor(t, "the new leaf's lifetime", func() bool { _, ok := lifetime("leaf", s2.Text(16)); return ok })
	v, _ = lifetime("leaf", s2.Text(16))
	assert.Equal(t, validity(parseCertPEM(t, c2)), v)
	_, ok = lifetime("leaf", s1.Text(16))
	assert.False(t, ok, "the old leaf's series is gone")
	assert.ElementsMatch(t, gaugeAttributeSets(t, tel, "otelcol_certstore_certificate_time_left"),
		gaugeAttributeSets(t, tel, "otelcol_certstore_certificate_lifetime"),
		"lifetime and time left have the same series after a rotation")
}

// watchLimitChild marks the copy of the test binary that runs inside a user namespace.
const watchLimitChild = "CERTSTORE_TEST_WATCH_LIMIT_CHILD"

// watch_degraded is 1 while inotify cannot watch the files and 0 once it can again. The
// inotify watch limit (fs.inotify.max_user_watches) is lowered for real, in a user namespace
// of a child copy of this test: /proc/sys/user/max_inotify_watches is per user namespace, so
// nothing outside the child sees the lower limit.
func TestWatchDegradedMetric(t *testing.T) {
	if os.Getenv(watchLimitChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWatchDegradedMetric$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), watchLimitChild+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			t.Skipf("no user namespace on this machine (%v): cannot lower the inotify limit for this test alone", err)
		}
		require.NoError(t, err, "the test in a user namespace:\n%s", out)
		require.Contains(t, string(out), "--- PASS: TestWatchDegradedMetric", "the child ran the test")
		return
	}

	const limitFile = "/proc/sys/user/max_inotify_watches"
	limit, err := os.ReadFile(limitFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(limitFile, []byte("0"), 0), "lower the watch limit in this user namespace")

	ca := newTestCA(t, "watch CA")
	c1, k1, _ := ca.issue(t, "server-1", time.Hour)
	d := newCertDir(t, c1, k1, ca.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := config(d, true)
	cfg.TLS.ReloadInterval = time.Second // the store retries its watches on its re-read timer
	startExtension(t, "watch", cfg, newStatusHost(), tel)
	inst := attribute.String("certstore.extension", "certstore/watch")
	degraded := func() (int64, bool) {
		return metricValue(t, tel, "otelcol_certstore_watch_degraded", inst, certAttr(d.cert()))
	}
	v, ok := degraded()
	require.True(t, ok, "watch_degraded reported")
	assert.Equal(t, int64(1), v, "no watch can be added: degraded")

	require.NoError(t, os.WriteFile(limitFile, limit, 0), "restore the watch limit")
	waitFor(t, "watch_degraded back to 0", func() bool { v, ok := degraded(); return ok && v == 0 })
}

// disk_certificate_time_left names the leaf on disk: the served one while they agree, the
// refused one while they differ (next to the served leaf's time_left, which keeps the served
// serial), and nothing while the file does not parse.
func TestDiskCertificateTimeLeft(t *testing.T) {
	ca := newTestCA(t, "disk CA")
	c1, k1, s1 := ca.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, ca.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	startExtension(t, "disk", config(d, true), newStatusHost(), tel)
	inst := attribute.String("certstore.extension", "certstore/disk")
	onDisk := func(serial string) (float64, bool) {
		return floatMetric(t, tel, "otelcol_certstore_disk_certificate_time_left", inst, certAttr(d.cert()),
			attribute.String("certstore.certificate.serial", serial))
	}
	served := func(serial string) bool {
		_, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
			attribute.String("certstore.certificate.role", "leaf"), attribute.String("certstore.certificate.serial", serial))
		return ok
	}
	v, ok := onDisk(s1.Text(16))
	require.True(t, ok, "the disk leaf is reported with the served serial while they agree")
	assert.InDelta(t, time.Until(parseCertPEM(t, c1).NotAfter).Seconds(), v, 60)

	// A refused generation: a 48-hour leaf with another certificate's key.
	c2, _, s2 := ca.issue(t, "server-2", 48*time.Hour)
	_, kOther, _ := ca.issue(t, "other", time.Hour)
	d.write(t, c2, kOther, ca.pem)
	waitFor(t, "the refused leaf on disk", func() bool { _, ok := onDisk(s2.Text(16)); return ok })
	v, _ = onDisk(s2.Text(16))
	assert.InDelta(t, time.Until(parseCertPEM(t, c2).NotAfter).Seconds(), v, 60)
	_, ok = onDisk(s1.Text(16))
	assert.False(t, ok, "one disk series: the served serial is not on disk any more")
	assert.True(t, served(s1.Text(16)), "the served leaf is still the first one")

	// A file that does not parse: no disk series at all.
	writeAtomic(t, d.cert(), []byte("not a certificate\n"))
	waitFor(t, "no disk series while the file does not parse", func() bool {
		m, err := tel.GetMetric("otelcol_certstore_disk_certificate_time_left")
		return err != nil || len(m.Data.(metricdata.Gauge[float64]).DataPoints) == 0
	})
	assert.True(t, served(s1.Text(16)))
}
