// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, "certstore", f.Type().String())
	assert.Equal(t, component.StabilityLevelAlpha, f.Stability())
	cfg := f.CreateDefaultConfig()
	require.IsType(t, &Config{}, cfg)

	set := extensiontest.NewNopSettings(f.Type())
	set.ID = component.MustNewIDWithName("certstore", "a")
	ext, err := f.Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NotNil(t, ext)
	// Shutdown without Start is fine (the collector does that when another component fails).
	require.NoError(t, ext.Shutdown(context.Background()))

	// Before Start the middleware options report a clear error.
	_, err = ext.(*certstoreExtension).GetGRPCServerOptions(context.Background())
	require.ErrorContains(t, err, "certstore/a is not started")
	_, err = ext.(*certstoreExtension).GetGRPCClientOptions(context.Background())
	require.ErrorContains(t, err, "not started")
}

func TestStartFailsWithReason(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.TLS.CertFile = "/nonexistent/tls.crt"
	cfg.TLS.KeyFile = "/nonexistent/tls.key"
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certstore")
	require.NoError(t, ext.Shutdown(context.Background()))
}
