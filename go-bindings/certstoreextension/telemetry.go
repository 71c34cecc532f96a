// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
	"github.com/certstore-dev/certstore/go-bindings/certstoreextension/internal/metadata"
)

// telemetry reports the metrics of metadata.yaml through the generated telemetry builder.
// Observed values are read from the stores when the collector's metric reader collects.
type telemetry struct {
	tb   *metadata.TelemetryBuilder
	inst attribute.KeyValue
}

// certAttr identifies one certificate of an instance (several with a certificates list).
func certAttr(certFile string) attribute.KeyValue {
	return attribute.String("certstore.certificate.file", certFile)
}

// newTelemetry observes every store, each under the cert_file it reads (files[i]); the CAs of
// caFile (the same for every store) once, under caFile.
func newTelemetry(set component.TelemetrySettings, id component.ID, stores []*certstore.Store, files []string, caFile string) (*telemetry, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, err
	}
	t := &telemetry{tb: tb, inst: attribute.String("certstore.extension", id.String())}
	leaf := attribute.String("certstore.certificate.role", "leaf")
	ca := attribute.String("certstore.certificate.role", "ca")
	// each calls observe once per store with the store's attributes.
	each := func(observe func(store *certstore.Store, attrs ...attribute.KeyValue)) {
		for i, store := range stores {
			observe(store, t.inst, certAttr(files[i]))
		}
	}
	// eachCertificate calls observe once for the served leaf of every store and once for every
	// trusted CA (those of ca_file, the same for every store, labelled with ca_file), with the
	// attributes time_left and lifetime share.
	eachCertificate := func(observe func(notBefore, notAfter time.Time, attrs ...attribute.KeyValue)) {
		each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
			snap, err := store.Current()
			if err != nil {
				return // closed: nothing to observe
			}
			observe(snap.NotBefore, snap.NotAfter, append(attrs, leaf,
				attribute.String("certstore.certificate.serial", snap.Serial))...)
		})
		for _, c := range stores[0].TrustedCAs() {
			observe(c.NotBefore, c.NotAfter, t.inst, certAttr(caFile), ca,
				attribute.String("certstore.certificate.serial", fmt.Sprintf("%x", c.SerialNumber)))
		}
	}
	// flag observes a 0/1 gauge per store: 1 while pick holds for its status.
	flag := func(pick func(certstore.Status) bool) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
				var v int64
				if pick(store.Status()) {
					v = 1
				}
				o.Observe(v, metric.WithAttributes(attrs...))
			})
			return nil
		}
	}
	errs := []error{
		tb.RegisterCertstoreCertificateTimeLeftCallback(func(_ context.Context, o metric.Float64Observer) error {
			now := time.Now()
			eachCertificate(func(_, notAfter time.Time, attrs ...attribute.KeyValue) {
				o.Observe(notAfter.Sub(now).Seconds(), metric.WithAttributes(attrs...))
			})
			return nil
		}),
		tb.RegisterCertstoreCertificateLifetimeCallback(func(_ context.Context, o metric.Float64Observer) error {
			eachCertificate(func(notBefore, notAfter time.Time, attrs ...attribute.KeyValue) {
				o.Observe(notAfter.Sub(notBefore).Seconds(), metric.WithAttributes(attrs...))
			})
			return nil
		}),
		tb.RegisterCertstoreDiskCertificateTimeLeftCallback(func(_ context.Context, o metric.Float64Observer) error {
			now := time.Now()
			each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
				if st := store.Status(); st.DiskSerial != "" {
					o.Observe(st.DiskNotAfter.Sub(now).Seconds(), metric.WithAttributes(append(attrs,
						attribute.String("certstore.certificate.serial", st.DiskSerial))...))
				}
			})
			return nil
		}),
		tb.RegisterCertstoreDiskDivergentCallback(flag(func(st certstore.Status) bool { return st.DiskDiffers })),
		tb.RegisterCertstoreDiskDivergentDurationCallback(func(_ context.Context, o metric.Float64Observer) error {
			each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
				var d time.Duration
				if st := store.Status(); st.DiskDiffers && !st.DiskDiffersSince.IsZero() {
					d = max(time.Since(st.DiskDiffersSince), 0)
				}
				o.Observe(d.Seconds(), metric.WithAttributes(attrs...))
			})
			return nil
		}),
		tb.RegisterCertstoreGenerationCallback(func(_ context.Context, o metric.Int64Observer) error {
			each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
				o.Observe(int64(store.Status().Generation), metric.WithAttributes(attrs...))
			})
			return nil
		}),
		tb.RegisterCertstoreWatchDegradedCallback(flag(func(st certstore.Status) bool { return st.WatchDegraded })),
		tb.RegisterCertstoreReloadsCallback(func(_ context.Context, o metric.Int64Observer) error {
			each(func(store *certstore.Store, attrs ...attribute.KeyValue) {
				st := store.Status()
				o.Observe(int64(st.ReloadsOK), metric.WithAttributes(append(attrs, attribute.String("outcome", "success"))...))
				o.Observe(int64(st.ReloadsFailed), metric.WithAttributes(append(attrs, attribute.String("outcome", "failure"))...))
			})
			return nil
		}),
	}
	if err := errors.Join(errs...); err != nil {
		tb.Shutdown()
		return nil, err
	}
	return t, nil
}

func (t *telemetry) copyWrite(ok bool) {
	if t == nil {
		return
	}
	outcome := "success"
	if !ok {
		outcome = "failure"
	}
	t.tb.CertstoreValidatedCopyWrites.Add(context.Background(), 1,
		metric.WithAttributes(t.inst, attribute.String("outcome", outcome)))
}

// reloadFailed counts a refused generation of certFile under the library's stable reason.
func (t *telemetry) reloadFailed(certFile, reason string) {
	if t == nil {
		return
	}
	if reason == "" {
		reason = "other" // a generation Go could not use: the library gives no reason
	}
	t.tb.CertstoreReloadFailures.Add(context.Background(), 1,
		metric.WithAttributes(t.inst, certAttr(certFile), attribute.String("reason", reason)))
}

// reloadDuration records how long the reload behind an event took to read and validate the
// files (the library measures it; an event reports each reload once).
func (t *telemetry) reloadDuration(certFile, outcome string, d time.Duration) {
	if t == nil {
		return
	}
	t.tb.CertstoreReloadDuration.Record(context.Background(), d.Seconds(),
		metric.WithAttributes(t.inst, certAttr(certFile), attribute.String("outcome", outcome)))
}

// connectionRevoked counts a live connection closed because its peer stopped verifying.
func (t *telemetry) connectionRevoked(reason string) { t.addRevoked(reason, 1) }

// revocationsWatched shows the revoked-connections counter at 0 for every reason, so that it
// exists (and rates start) before the first revocation.
func (t *telemetry) revocationsWatched() {
	for _, reason := range []certstore.RevokeReason{certstore.RevokedCARemoved, certstore.RevokedPeerExpired} {
		t.addRevoked(string(reason), 0)
	}
}

func (t *telemetry) addRevoked(reason string, n int64) {
	if t == nil {
		return
	}
	t.tb.CertstoreConnectionsRevoked.Add(context.Background(), n,
		metric.WithAttributes(t.inst, attribute.String("reason", reason)))
}

func (t *telemetry) shutdown() {
	t.tb.Shutdown()
}
