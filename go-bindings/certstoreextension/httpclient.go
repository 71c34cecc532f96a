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
)

var _ extensionmiddleware.HTTPClient = (*certstoreExtension)(nil)

// GetHTTPRoundTripper makes a confighttp client (e.g. the OTLP/HTTP exporter, https:// endpoint)
// present the current client certificate and verify the server against the current roots. It
// takes over the TLS handshake of the HTTP transport confighttp built, so certstore must be the
// last entry of the client's middlewares (the one that receives the transport itself).
//
// Server side, confighttp has no hook for TLS: HTTP receivers cannot use certstore from YAML.
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
		return e.wrapTransport(t), nil
	}, nil
}

func (e *certstoreExtension) wrapTransport(base *http.Transport) *http.Transport {
	t := base.Clone()
	protos := []string{"http/1.1"}
	if t.ForceAttemptHTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	// Used by crypto/tls through the transport when a proxy is in the way (TLS over CONNECT):
	// the server name is then the SNI, which is always a DNS name or set by server_name.
	t.TLSClientConfig = e.ClientTLSConfigForServer(e.cfg.ServerName)
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = protos
	}
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	creds := newClientCreds(e.cfg.ServerName, func(name string) *tls.Config {
		cfg := e.ClientTLSConfigForServer(name)
		if cfg != nil {
			cfg.NextProtos = protos
		}
		return cfg
	})
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg := creds.forName(creds.serverName(addr)).cfg
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, cfg)
		if err := conn.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return conn, nil
	}
	return t
}
