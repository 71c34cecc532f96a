// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Issue 15 (defaults): without expiry_warning, a certificate is reported when less than a
// quarter of its lifetime (14 days at most) is left, so 1-hour certificates do not warn at every
// rotation (the fixed 168h default did) and 90-day ones still warn two weeks ahead.
func TestExpiryWarningDefaultIsRelativeToLifetime(t *testing.T) {
	ca := newTestCA(t, "relative expiry CA") // 25h lifetime, 24h left: not reported
	now := time.Now()
	fresh, freshKey, _ := ca.issueBetween(t, "fresh 1h", now.Add(-time.Minute), now.Add(59*time.Minute))
	d := newCertDir(t, fresh, freshKey, ca.pem)
	host := newStatusHost()
	cfg := config(d, true)
	cfg.Expiry.ExpiryStatus = true
	core, logs := observer.New(zap.InfoLevel)
	ext := startExtensionWithLogger(t, "relative", cfg, host, zap.New(core))
	ext.check()
	assert.Zero(t, logs.FilterMessageSnippet("Certificate expires soon").Len(), "a fresh 1-hour certificate is not reported")
	assert.Nil(t, host.last(), "no status change for a fresh certificate")

	// 10 minutes left of 60: less than a quarter.
	late, lateKey, lateSerial := ca.issueBetween(t, "late 1h", now.Add(-50*time.Minute), now.Add(10*time.Minute))
	d.write(t, late, lateKey, ca.pem)
	waitFor(t, "the late certificate served", func() bool {
		snap, err := ext.store.Current()
		return err == nil && snap.Certificate.Leaf.SerialNumber.Cmp(lateSerial) == 0
	})
	waitFor(t, "the expiry warning", func() bool { return logs.FilterMessageSnippet("Certificate expires soon").Len() == 1 })
	waitFor(t, "the expiry status", func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError
	})
	require.Contains(t, host.last().Err().Error(), "less than a quarter of its lifetime (at most 14 days) left")

	// 90 days: renewed by cert-manager at 30 left, reported at 14 left; a 10-year CA too.
	d.write(t, fresh, freshKey, ca.pem)
	waitFor(t, "OK with the fresh certificate", func() bool { return host.last().Status() == componentstatus.StatusOK })
	day := 24 * time.Hour
	assert.Equal(t, 14*day, ExpiryConfig{}.warnsWithin(now.Add(-60*day), now.Add(30*day)))
	assert.Equal(t, 14*day, ExpiryConfig{}.warnsWithin(now.Add(-9*365*day), now.Add(365*day)))
	assert.Equal(t, 6*time.Hour, ExpiryConfig{}.warnsWithin(now.Add(-16*time.Hour), now.Add(8*time.Hour)),
		"24h, renewed at 8h left: reported at 6h left")
	assert.Equal(t, 168*time.Hour, ExpiryConfig{ExpiryWarning: ptr(168 * time.Hour)}.warnsWithin(now, now.Add(day)),
		"an explicit expiry_warning is used as it is")
}
