// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/certstore-dev/certstore/go-bindings/certstoreextension/internal/metadata"
)

// Type, stability and telemetry scope of the extension (generated from metadata.yaml).
var (
	Type      = metadata.Type
	ScopeName = metadata.ScopeName
)

const Stability = metadata.ExtensionStability

// NewFactory returns the factory of the certstore extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, createExtension, Stability)
}

func createExtension(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}
