// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
)

// Served versus disk: the status names the refused leaf and the reason, the divergence gauge
// and its duration follow, failures are counted by reason; all of it clears when the disk
// agrees again. Time left covers every trusted CA and follows a CA bundle change.
func TestDivergenceStatusAndMetrics(t *testing.T) {
	ca := newTestCA(t, "divergence CA")
	c1, k1, s1 := ca.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, ca.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	host := newStatusHost()
	ext := startExtension(t, "divergence", config(d, true), host, tel)
	inst := attribute.String("certstore.extension", "certstore/divergence")

	v, ok := metricValue(t, tel, "otelcol_certstore_disk_divergent", inst)
	require.True(t, ok, "divergence gauge reported")
	assert.Equal(t, int64(0), v)
	dur, ok := floatMetric(t, tel, "otelcol_certstore_disk_divergent_duration", inst)
	require.True(t, ok, "divergence duration reported")
	assert.Zero(t, dur)

	// A refused rotation: a new certificate with the key of another one.
	c2, _, s2 := ca.issue(t, "server-2", 24*time.Hour)
	_, kOther, _ := ca.issue(t, "other", 24*time.Hour)
	d.write(t, c2, kOther, ca.pem)
	waitFor(t, "status names the refused leaf", func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError &&
			strings.Contains(ev.Err().Error(), "serial "+s2.Text(16))
	})
	msg := host.last().Err().Error()
	assert.Contains(t, msg, "key_mismatch")
	assert.Contains(t, msg, "serving generation 1, serial "+s1.Text(16))
	waitFor(t, "divergence gauge 1", func() bool {
		v, ok := metricValue(t, tel, "otelcol_certstore_disk_divergent", inst)
		return ok && v == 1
	})
	waitFor(t, "divergence duration grows", func() bool {
		dur, ok := floatMetric(t, tel, "otelcol_certstore_disk_divergent_duration", inst)
		return ok && dur > 0
	})
	waitFor(t, "failures counted by reason", func() bool {
		v, ok := metricValue(t, tel, "otelcol_certstore_reload_failures", inst, attribute.String("reason", "key_mismatch"))
		return ok && v >= 1
	})

	// The served files come back: OK, and the gauge and duration drop to 0.
	d.write(t, c1, k1, ca.pem)
	waitFor(t, "OK after the served files are restored", func() bool {
		return host.last().Status() == componentstatus.StatusOK
	})
	v, _ = metricValue(t, tel, "otelcol_certstore_disk_divergent", inst)
	assert.Equal(t, int64(0), v)
	dur, _ = floatMetric(t, tel, "otelcol_certstore_disk_divergent_duration", inst)
	assert.Zero(t, dur)

	// A second CA joins the bundle: its time left is reported from the next collection on,
	// next to the first one's.
	ca2 := newTestCA(t, "divergence CA 2")
	d.write(t, c1, k1, append(append([]byte{}, ca.pem...), ca2.pem...))
	waitFor(t, "the new CA's time left", func() bool {
		_, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
			attribute.String("certstore.certificate.role", "ca"), attribute.String("certstore.certificate.serial", ca2.cert.SerialNumber.Text(16)))
		return ok
	})
	left, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
		attribute.String("certstore.certificate.role", "ca"), attribute.String("certstore.certificate.serial", ca.cert.SerialNumber.Text(16)))
	require.True(t, ok, "the first CA is still reported")
	assert.InDelta(t, time.Until(ca.cert.NotAfter).Seconds(), left, 60)
	snap, err := ext.store.Current()
	require.NoError(t, err)
	assert.Len(t, snap.CANotAfter, 2)
}

// Time left follows the trust itself: a CA bundle replaced under ca_overlap reports both CAs
// during the overlap and only the new one once it ends; a rotated leaf's old serial is gone
// from the next collection (no stale series).
func TestTimeLeftFollowsRotationAndCAOverlap(t *testing.T) {
	ca1 := newTestCA(t, "overlap CA 1")
	ca2 := newTestCA(t, "overlap CA 2")
	c1, k1, s1 := ca1.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, ca1.pem)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := config(d, true)
	const overlap = 2 * time.Second
	cfg.TLS.CAOverlap = overlap
	startExtension(t, "overlap", cfg, newStatusHost(), tel)
	inst := attribute.String("certstore.extension", "certstore/overlap")
	timeLeft := func(role, serial string) bool {
		_, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
			attribute.String("certstore.certificate.role", role), attribute.String("certstore.certificate.serial", serial))
		return ok
	}
	ca1Serial, ca2Serial := ca1.cert.SerialNumber.Text(16), ca2.cert.SerialNumber.Text(16)
	require.True(t, timeLeft("leaf", s1.Text(16)))
	require.True(t, timeLeft("ca", ca1Serial))
	_, ok := floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
		attribute.String("certstore.certificate.role", "ca"), certAttr(d.ca()))
	assert.True(t, ok, "a CA's time left is labelled with ca_file, not cert_file")
	_, ok = floatMetric(t, tel, "otelcol_certstore_certificate_time_left", inst,
		attribute.String("certstore.certificate.role", "leaf"), certAttr(d.cert()))
	assert.True(t, ok, "the leaf's with cert_file")

	// New leaf from CA 2 and a bundle of CA 2 only: the overlap keeps CA 1 trusted for a while.
	c2, k2, s2 := ca2.issue(t, "server-2", 24*time.Hour)
	changed := time.Now()
	d.write(t, c2, k2, ca2.pem)
	waitFor(t, "the new leaf's time left", func() bool { return timeLeft("leaf", s2.Text(16)) })
	assert.False(t, timeLeft("leaf", s1.Text(16)), "the old leaf's series is gone")
	assert.True(t, timeLeft("ca", ca2Serial), "the new CA is reported")
	if time.Since(changed) < overlap/2 {
		assert.True(t, timeLeft("ca", ca1Serial), "the previous CA is reported while it is still trusted")
	}
	waitFor(t, "the previous CA's series gone once the overlap ends", func() bool { return !timeLeft("ca", ca1Serial) })
	assert.GreaterOrEqual(t, time.Since(changed), overlap-100*time.Millisecond, "the previous CA was dropped before the overlap ended")
	assert.True(t, timeLeft("ca", ca2Serial))
}
