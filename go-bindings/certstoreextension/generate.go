// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// `make generate` runs mdatagen (pinned in internal/tools) on metadata.yaml.
//go:generate mdatagen metadata.yaml

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"
