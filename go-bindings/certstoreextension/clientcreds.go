// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"
)

// clientCreds are the gRPC transport credentials of the client side. The server name to
// verify comes from server_name or, per target, from the dial authority (host part): the
// certstore client config verifies against the name it was built with, and crypto/tls sends no
// SNI for an IP address, so one config per server name is built and cached.
type clientCreds struct {
	info     credentials.ProtocolInfo
	override string
	build    func(serverName string) *tls.Config

	mu     sync.Mutex
	byName map[string]forServer
}

// forServer is the client config verifying one server name and the gRPC credentials on it.
type forServer struct {
	cfg   *tls.Config
	creds credentials.TransportCredentials
}

var _ credentials.TransportCredentials = (*clientCreds)(nil)

func newClientCreds(override string, build func(string) *tls.Config) *clientCreds {
	return &clientCreds{
		info:     credentials.NewTLS(&tls.Config{}).Info(),
		override: override,
		build:    build,
		byName:   map[string]forServer{},
	}
}

// forName returns the client config verifying name and its credentials, built once per name.
func (c *clientCreds) forName(name string) forServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.byName[name]
	if !ok {
		cfg := c.build(name)
		f = forServer{cfg: cfg, creds: credentials.NewTLS(cfg)}
		c.byName[name] = f
	}
	return f
}

func hostOf(authority string) string {
	if host, _, err := net.SplitHostPort(authority); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
}

// serverName is server_name (or the overridden name) or else the host of hostport.
func (c *clientCreds) serverName(hostport string) string {
	c.mu.Lock()
	name := c.override
	c.mu.Unlock()
	if name == "" {
		name = hostOf(hostport)
	}
	return name
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.forName(c.serverName(authority)).creds.ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("certstore: client credentials used on a server")
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	info := c.info
	c.mu.Lock()
	info.ServerName = c.override
	c.mu.Unlock()
	return info
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return newClientCreds(c.override, c.build)
}

// OverrideServerName implements the deprecated gRPC method.
func (c *clientCreds) OverrideServerName(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.override = name
	c.byName = map[string]forServer{}
	return nil
}
