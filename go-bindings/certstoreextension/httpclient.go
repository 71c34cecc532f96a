// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/extension/extensionmiddleware"
	"go.uber.org/zap"
)

var _ extensionmiddleware.HTTPClient = (*certstoreExtension)(nil)

// GetHTTPRoundTripper makes a confighttp client (e.g. the OTLP/HTTP exporter, https:// endpoint)
// present the current client certificate and verify the server against the current roots. It
// takes over the TLS handshake of the HTTP transport confighttp built, so certstore must be the
// last entry of the client's middlewares (the one that receives the transport itself). Of the
// exporter's own tls: block, the policy (min_version, max_version, cipher_suites,
// curve_preferences) applies together with the extension's (see mergePolicy; nothing in
// common refuses the start); its files, CA and server name cannot apply: the collector does not
// start with them (NotifyConfigSnapshot), and a host without that check gets a warning. A
// request that is not https:// is refused: it would leave in plaintext while the
// configuration says certstore's TLS.
//
// Server side, confighttp has no hook for TLS: point the receiver's tls: block at validated_dir.
func (e *certstoreExtension) GetHTTPRoundTripper(context.Context) (extensionmiddleware.WrapHTTPRoundTripperFunc, error) {
	if e.store == nil {
		return nil, fmt.Errorf("certstore %s is not started", e.id)
	}
	return func(_ context.Context, base http.RoundTripper) (http.RoundTripper, error) {
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("certstore %s: must be the last entry of the HTTP client's middlewares "+
				"(it replaces the TLS of the *http.Transport; got %T)", e.id, base)
		}
		if own := t.TLSClientConfig; own != nil && (own.InsecureSkipVerify || own.RootCAs != nil ||
			own.GetClientCertificate != nil || len(own.Certificates) > 0 || own.ServerName != "") {
			e.logger.Warn("The HTTP client's own tls: settings are not used: certstore provides its TLS "+
				"(set ca_file, server_name_override, ... on the extension; min_version, max_version, "+
				"cipher_suites and curve_preferences of both apply)", zap.String("extension", e.id.String()))
		}
		policy, err := mergePolicy(e.clientBase, t.TLSClientConfig, "the HTTP client's tls: block")
		if err != nil {
			return nil, fmt.Errorf("certstore %s: %w", e.id, err)
		}
		return &httpsOnly{id: e.id.String(), next: e.wrapTransport(t, policy)}, nil
	}, nil
}

// httpsOnly refuses every request that would not use the extension's TLS.
type httpsOnly struct {
	id   string
	next *http.Transport
}

func (h *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "https" {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("certstore %s: refusing to send a %q request to %s without TLS: use an https:// endpoint",
			h.id, schemeOf(req), hostOfRequest(req))
	}
	return h.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (h *httpsOnly) CloseIdleConnections() { h.next.CloseIdleConnections() }

func schemeOf(req *http.Request) string {
	if req.URL == nil {
		return ""
	}
	return req.URL.Scheme
}

func hostOfRequest(req *http.Request) string {
	if req.URL == nil {
		return "an unknown host"
	}
	return req.URL.Host
}

// wrapTransport makes base dial with the extension's certificates and the TLS policy of policy.
func (e *certstoreExtension) wrapTransport(base *http.Transport, policy *tls.Config) *http.Transport {
	t := base.Clone()
	protos := []string{"http/1.1"}
	if t.ForceAttemptHTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	// Used by crypto/tls through the transport when a proxy is in the way (TLS over CONNECT):
	// the server name is then the SNI, which is always a DNS name or set by server_name_override.
	t.TLSClientConfig = e.clientTLSConfigFrom(policy, e.cfg.Client.ServerNameOverride)
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = protos
	}
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	// Read once: Shutdown clears e.clientGuard while this transport may still dial.
	guard := e.clientGuard
	creds := newClientCreds(e.cfg.Client.ServerNameOverride, e.clientSource(policy, protos), guard)
	timeout := e.cfg.Client.HandshakeTimeout
	t.TLSHandshakeTimeout = timeout
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg := creds.forName(creds.serverName(addr))
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// net/http does not bound a handshake made by DialTLSContext: a server that accepts
		// and never answers would hold the request until the exporter's own timeout.
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := watchClientConn(guard, raw, func(raw net.Conn) (*tls.Conn, tls.ConnectionState, error) {
			conn := tls.Client(raw, cfg)
			err := conn.HandshakeContext(hctx)
			return conn, conn.ConnectionState(), err
		})
		if err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("certstore %s: TLS handshake with %s: %w", e.id, addr, err)
		}
		return conn, nil
	}
	return t
}
