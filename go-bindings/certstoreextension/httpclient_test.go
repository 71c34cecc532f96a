// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configmiddleware"
)

// An HTTPS server using ServerTLSConfig (the custom-component path) and a confighttp client
// (what the OTLP/HTTP exporter builds) with middlewares: [{id: certstore/client}].
func TestHTTPClientMiddlewareAndServerTLSConfig(t *testing.T) {
	ca := newTestCA(t, "http CA")
	sc1, sk1, ss1 := ca.issue(t, "server-1", 24*time.Hour)
	cc1, ck1, _ := ca.issue(t, "client-1", 24*time.Hour)
	srvDir := newCertDir(t, sc1, sk1, ca.pem)
	cliDir := newCertDir(t, cc1, ck1, ca.pem)
	host := newStatusHost()
	srvCfg := config(srvDir, true) // ca_file without client_auth: require
	srvExt := startExtension(t, "server", srvCfg, host, nil)
	startExtension(t, "client", config(cliDir, true), host, nil)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.PeerCertificates[0].Subject.CommonName)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(tls.NewListener(lis, srvExt.ServerTLSConfig())) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "https://" + lis.Addr().String() + "/"

	newClient := func() *http.Client {
		cc := confighttp.NewDefaultClientConfig()
		cc.Endpoint = url
		cc.Middlewares = []configmiddleware.Config{{ID: component.MustNewIDWithName("certstore", "client")}}
		client, err := cc.ToClient(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings())
		require.NoError(t, err)
		return client
	}
	get := func(c *http.Client) (string, *big.Int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", nil, err
		}
		return string(body), resp.TLS.PeerCertificates[0].SerialNumber, nil
	}

	client := newClient()
	body, serial, err := get(client)
	require.NoError(t, err)
	assert.Equal(t, "HTTP/2.0 client-1", body, "h2 over mTLS with the client certificate of the extension")
	assert.Equal(t, 0, ss1.Cmp(serial))

	// Rotate both sides; new connections use the new certificates.
	sc2, sk2, ss2 := ca.issue(t, "server-2", 24*time.Hour)
	cc2, ck2, _ := ca.issue(t, "client-2", 24*time.Hour)
	srvDir.write(t, sc2, sk2, nil)
	cliDir.write(t, cc2, ck2, nil)
	waitFor(t, "both rotations over HTTPS", func() bool {
		// Established connections stay as they are; a new client means new connections.
		body, serial, err := get(newClient())
		return err == nil && serial.Cmp(ss2) == 0 && body == "HTTP/2.0 client-2"
	})

	// A client without a certificate is refused.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srvExt.ClientTLSConfig().RootCAs, InsecureSkipVerify: true}}}
	_, _, err = get(plain)
	require.Error(t, err)

	// certstore must receive the transport itself.
	ext := host.GetExtensions()[component.MustNewIDWithName("certstore", "client")].(*certstoreExtension)
	wrap, err := ext.GetHTTPRoundTripper(context.Background())
	require.NoError(t, err)
	_, err = wrap(context.Background(), http.NewFileTransport(http.Dir(t.TempDir())))
	require.ErrorContains(t, err, "must be the last entry")
}

// A transport built before Shutdown may still dial after it: its dials use the guard it was
// built with, never the extension's field that Shutdown clears (go test -race reports the
// unsynchronized read otherwise).
func TestHTTPClientDialDuringShutdown(t *testing.T) {
	ca := newTestCA(t, "shutdown CA")
	c, k, _ := ca.issue(t, "client", 24*time.Hour)
	ext := startExtension(t, "dialshutdown", config(newCertDir(t, c, k, ca.pem), true), newStatusHost(), nil)
	wrap, err := ext.GetHTTPRoundTripper(context.Background())
	require.NoError(t, err)
	rt, err := wrap(context.Background(), http.DefaultTransport.(*http.Transport).Clone())
	require.NoError(t, err)
	transport := rt.(*httpsOnly).next

	// A server that accepts and hangs up: each dial reaches the handshake, then fails.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	stop := make(chan struct{})
	dialed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := transport.DialTLSContext(context.Background(), "tcp", lis.Addr().String())
			if err == nil {
				_ = conn.Close()
			}
			select {
			case dialed <- struct{}{}:
			default:
			}
		}
	}()
	<-dialed
	require.NoError(t, ext.Shutdown(context.Background()))
	<-dialed
	<-dialed
	close(stop)
	<-done
}
