// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// telemetry registers the extension's asynchronous instruments (see metadata.yaml). Values are
// read from the store when the collector's metric reader collects.
type telemetry struct {
	reg metric.Registration
}

func newTelemetry(set component.TelemetrySettings, id component.ID, store *certstore.Store) (*telemetry, error) {
	if set.MeterProvider == nil {
		return &telemetry{}, nil
	}
	meter := set.MeterProvider.Meter(ScopeName)
	var errs []error
	notAfter, err := meter.Int64ObservableGauge("certstore.certificate.not_after",
		metric.WithDescription("Expiry (notAfter) of the served leaf certificate, as seconds since the Unix epoch."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	generation, err := meter.Int64ObservableGauge("certstore.certificate.generation",
		metric.WithDescription("Generation of the served certificate; increases by one on every rotation."),
		metric.WithUnit("{generation}"))
	errs = append(errs, err)
	reloads, err := meter.Int64ObservableCounter("certstore.reloads",
		metric.WithDescription("Reloads of the certificate files, by result (success, failure)."),
		metric.WithUnit("{reload}"))
	errs = append(errs, err)
	lastSuccess, err := meter.Int64ObservableGauge("certstore.reload.last_success",
		metric.WithDescription("Time of the last successful reload, as seconds since the Unix epoch."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	inst := attribute.String("certstore.extension", id.String())
	attrs := metric.WithAttributes(inst)
	okAttrs := metric.WithAttributes(inst, attribute.String("result", "success"))
	failAttrs := metric.WithAttributes(inst, attribute.String("result", "failure"))
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := store.Status()
		if !st.NotAfter.IsZero() {
			o.ObserveInt64(notAfter, st.NotAfter.Unix(), attrs)
		}
		o.ObserveInt64(generation, int64(st.Generation), attrs)
		o.ObserveInt64(reloads, int64(st.ReloadsOK), okAttrs)
		o.ObserveInt64(reloads, int64(st.ReloadsFailed), failAttrs)
		if !st.LastSuccess.IsZero() {
			o.ObserveInt64(lastSuccess, st.LastSuccess.Unix(), attrs)
		}
		return nil
	}, notAfter, generation, reloads, lastSuccess)
	if err != nil {
		return nil, err
	}
	return &telemetry{reg: reg}, nil
}

func (t *telemetry) shutdown() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}
