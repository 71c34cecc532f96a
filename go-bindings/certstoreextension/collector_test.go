// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// runCollector starts a collector (the real service: extensions, config snapshot, pipelines)
// with the given config and returns the error its start failed with, or nil once it ran.
func runCollector(t *testing.T, yaml string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo:               component.NewDefaultBuildInfo(),
		DisableGracefulShutdown: true,
		Factories: func() (otelcol.Factories, error) {
			f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
			var err error
			if f.Extensions, err = otelcol.MakeFactoryMap(NewFactory()); err != nil {
				return f, err
			}
			if f.Receivers, err = otelcol.MakeFactoryMap(otlpreceiver.NewFactory()); err != nil {
				return f, err
			}
			f.Exporters, err = otelcol.MakeFactoryMap(debugexporter.NewFactory(), otlpexporter.NewFactory())
			return f, err
		},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{"file:" + path},
			ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
		}},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-done:
			return err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector neither started nor failed in 30s (state %v)", col.GetState())
		}
		time.Sleep(10 * time.Millisecond)
	}
	col.Shutdown()
	require.NoError(t, <-done)
	return nil
}

// Through a real collector start: a gRPC receiver's own tls: block beside certstore in its
// middlewares fails the start naming it; the same components at their defaults start.
func TestCollectorStartRefusesComponentTLSThatCannotApply(t *testing.T) {
	ca := newTestCA(t, "collector CA")
	c, k, _ := ca.issue(t, "collector", 24*time.Hour)
	d := newCertDir(t, c, k, ca.pem)
	config := func(receiverTLS string) string {
		return fmt.Sprintf(`extensions:
  certstore:
    cert_file: %s
    key_file: %s
    ca_file: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        middlewares: [{id: certstore}]
%s
exporters:
  debug: {}
  %s:
    endpoint: https://127.0.0.1:1
    middlewares: [{id: certstore}]
service:
  extensions: [certstore]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug, %[5]s]
`, d.cert(), d.key(), d.ca(), receiverTLS, otlpexporter.NewFactory().Type())
	}

	assert.NoError(t, runCollector(t, config("")), "components at their defaults")

	// Files that load: without the check, this collector starts and serves one TLS or the other.
	err := runCollector(t, config(fmt.Sprintf("        tls: {cert_file: %s, key_file: %s}", d.cert(), d.key())))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `receiver "otlp": its tls: block sets cert_file, key_file, which cannot apply on a gRPC server`)
}
