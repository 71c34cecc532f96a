// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// `make generate` runs mdatagen (pinned in internal/tools) on metadata.yaml.
//go:generate mdatagen metadata.yaml

// Package certstoreextension is the certstore extension of the OpenTelemetry Collector: it
// keeps the certificate, key and CA files it is pointed at validated in memory, follows their
// rotations (a bad new file never replaces a good one), and hands the current generation to
// the components that reference it — gRPC servers and clients and HTTP clients through
// extensionmiddleware, components that read files through a validated copy — with live
// connections closed when their peer stops verifying. See README.md for the configuration.
package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"
