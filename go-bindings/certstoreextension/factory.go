// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
)

// Type and stability of the extension (see metadata.yaml).
var (
	Type = component.MustNewType("certstore")
)

const (
	Stability = component.StabilityLevelAlpha
	// ScopeName is the instrumentation scope of the extension's metrics.
	ScopeName = "github.com/certstore-dev/certstore/go-bindings/certstoreextension"
)

// NewFactory returns the factory of the certstore extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, createExtension, Stability)
}

func createExtension(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}
