// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configmiddleware"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
)

// snapshotOf builds the snapshot as otelcol does: the unmarshalled component configs (every
// default included) marshalled back into a confmap.
func snapshotOf(t *testing.T, receivers, exporters map[string]any) extensioncapabilities.ConfigSnapshot {
	t.Helper()
	conf := confmap.New()
	require.NoError(t, conf.Marshal(map[string]any{"receivers": receivers, "exporters": exporters}))
	return extensioncapabilities.NewConfigSnapshot(conf, conf)
}

func TestConfigSnapshotRefusesTLSFieldsThatCannotApply(t *testing.T) {
	ca := newTestCA(t, "snapshot CA")
	c, k, _ := ca.issue(t, "snapshot", 24*time.Hour)
	ext := startExtension(t, "snap", config(newCertDir(t, c, k, ca.pem), true), newStatusHost(), nil)
	// How the service finds the extensions to notify (service/extensions.NotifyConfigSnapshot).
	watcher, ok := any(ext).(extensioncapabilities.ConfigSnapshotWatcher)
	require.True(t, ok, "the extension is not notified of the collector's config: tls: fields of gRPC components would be dropped silently")
	ours := []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "snap")}}
	other := []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "other")}}

	grpcServer := func(mw []configmiddleware.Config, tlsCfg *configtls.ServerConfig) map[string]any {
		sc := configgrpc.NewDefaultServerConfig()
		sc.NetAddr.Endpoint = "127.0.0.1:4317"
		sc.Middlewares = mw
		if tlsCfg != nil {
			sc.TLS = configoptional.Some(*tlsCfg)
		}
		return map[string]any{"protocols": map[string]any{"grpc": sc}}
	}
	grpcClient := func(endpoint string, tlsCfg configtls.ClientConfig) configgrpc.ClientConfig {
		cc := configgrpc.NewDefaultClientConfig()
		cc.Endpoint, cc.Middlewares, cc.TLS = endpoint, ours, tlsCfg
		return cc
	}
	httpClient := func(endpoint string, tlsCfg configtls.ClientConfig) confighttp.ClientConfig {
		cc := confighttp.NewDefaultClientConfig()
		cc.Endpoint, cc.Middlewares, cc.TLS = endpoint, ours, tlsCfg
		return cc
	}
	files := configtls.Config{CertFile: "/etc/own.crt", KeyFile: "/etc/own.key"}
	policy := configtls.Config{MinVersion: "1.3", CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}}

	for _, tc := range []struct {
		name      string
		receivers map[string]any
		exporters map[string]any
		refused   []string // substrings of the error; none: accepted
		absent    []string
	}{
		{
			name:      "gRPC receiver with its own certificate",
			receivers: map[string]any{"otlp": grpcServer(ours, &configtls.ServerConfig{Config: files, ClientCAFile: "/etc/ca.crt"})},
			refused:   []string{`receiver "otlp"`, "cert_file, client_ca_file, key_file", "gRPC server", "middleware certstore/snap", "on that extension"},
		},
		{
			name:      "gRPC receiver with tls: at defaults",
			receivers: map[string]any{"otlp": grpcServer(ours, ptr(configtls.NewDefaultServerConfig()))},
		},
		{
			name:      "gRPC receiver without tls:",
			receivers: map[string]any{"otlp": grpcServer(ours, nil)},
		},
		{
			name:      "receiver naming another extension",
			receivers: map[string]any{"otlp": grpcServer(other, &configtls.ServerConfig{Config: files})},
		},
		{
			name: "gRPC exporter with an https:// endpoint: policy fields cannot apply either",
			exporters: map[string]any{"otlp/up": grpcClient("https://collector:4317",
				configtls.ClientConfig{Config: policy, InsecureSkipVerify: true})},
			refused: []string{`exporter "otlp/up"`, "cipher_suites, insecure_skip_verify, min_version", "gRPC client"},
		},
		{
			name:      "gRPC exporter at defaults",
			exporters: map[string]any{"otlp": grpcClient("collector:4317", configtls.NewDefaultClientConfig())},
		},
		{
			name:      "HTTP exporter: policy fields apply",
			exporters: map[string]any{"otlphttp": httpClient("https://collector:4318", configtls.ClientConfig{Config: policy})},
		},
		{
			name: "HTTP exporter with its own CA and server name",
			exporters: map[string]any{"otlphttp": httpClient("https://collector:4318",
				configtls.ClientConfig{Config: configtls.Config{MinVersion: "1.3", CAFile: "/etc/ca.crt"}, ServerName: "collector"})},
			refused: []string{`exporter "otlphttp"`, "ca_file, server_name_override", "HTTP client"},
			absent:  []string{"min_version"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := watcher.NotifyConfigSnapshot(context.Background(), snapshotOf(t, tc.receivers, tc.exporters))
			if len(tc.refused) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Log(err)
			for _, s := range tc.refused {
				assert.Contains(t, err.Error(), s)
			}
			for _, s := range tc.absent {
				assert.NotContains(t, err.Error(), s)
			}
		})
	}
}
