// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// A watch repair and dropped events each log one line that says what happened and where.
func TestWatchRepairAndDroppedEventsAreLogged(t *testing.T) {
	ca := newTestCA(t, "watch events CA")
	c1, k1, _ := ca.issue(t, "server-1", 24*time.Hour)
	d := newCertDir(t, c1, k1, nil)
	cfg := config(d, false)
	core, logs := observer.New(zap.InfoLevel)
	ext := startExtensionWithLogger(t, "watchevents", cfg, newStatusHost(), zap.New(core))
	c := CertificateConfig{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}

	ext.onEvent(c, ext.store, certstore.Event{Kind: certstore.EventWatchRepaired, Generation: 2, Path: "/certs/app"})
	repaired := logs.FilterMessageSnippet("rebuilt it").All()
	if assert.Len(t, repaired, 1) {
		fields := repaired[0].ContextMap()
		assert.Equal(t, "/certs/app", fields["path"])
		assert.Equal(t, cfg.TLS.CertFile, fields["cert_file"])
		assert.Equal(t, zap.WarnLevel, repaired[0].Level)
	}

	ext.onEvent(c, ext.store, certstore.Event{Kind: certstore.EventEventsDropped, Generation: 2, Count: 7})
	dropped := logs.FilterMessageSnippet("events were dropped").All()
	if assert.Len(t, dropped, 1) {
		assert.Equal(t, uint64(7), dropped[0].ContextMap()["dropped"])
	}
}
