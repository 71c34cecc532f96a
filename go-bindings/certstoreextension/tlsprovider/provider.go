// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// Package tlsprovider holds the interface custom components use to take TLS from the certstore
// extension. It imports only crypto/tls, so a component can depend on it without cgo or the
// certstore library: it finds the extension in host.GetExtensions() and asserts this interface.
package tlsprovider // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension/tlsprovider"

import "crypto/tls"

// TLSConfigProvider is implemented by the certstore extension: every new handshake made with
// these configs uses the current certificate.
type TLSConfigProvider interface {
	// ServerTLSConfig returns a server config serving the current certificate, with the
	// extension's client_auth, versions, cipher suites and curves, and NextProtos h2 and
	// http/1.1. It is nil before the extension has started.
	ServerTLSConfig() *tls.Config
	// ClientTLSConfig returns a client config presenting the current certificate and verifying
	// servers against the current ca_file roots, for the name in server_name_override or, when
	// that is empty, the SNI name sent (a DNS name). It is nil before the extension has started.
	ClientTLSConfig() *tls.Config
	// ClientTLSConfigForServer is ClientTLSConfig verifying the server against serverName (a
	// DNS name or an IP address): use it when dialling an IP address, which sends no SNI.
	ClientTLSConfigForServer(serverName string) *tls.Config
}
