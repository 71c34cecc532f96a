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
	byName map[string]credentials.TransportCredentials
}

var _ credentials.TransportCredentials = (*clientCreds)(nil)

func newClientCreds(override string, build func(string) *tls.Config) *clientCreds {
	return &clientCreds{
		info:     credentials.NewTLS(&tls.Config{}).Info(),
		override: override,
		build:    build,
		byName:   map[string]credentials.TransportCredentials{},
	}
}

func hostOf(authority string) string {
	if host, _, err := net.SplitHostPort(authority); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
}

func (c *clientCreds) forName(name string) credentials.TransportCredentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc, ok := c.byName[name]
	if !ok {
		tc = credentials.NewTLS(c.build(name))
		c.byName[name] = tc
	}
	return tc
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := c.override
	if name == "" {
		name = hostOf(authority)
	}
	return c.forName(name).ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("certstore: client credentials used on a server")
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	info := c.info
	if c.override != "" {
		info.ServerName = c.override
	}
	return info
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return newClientCreds(c.override, c.build)
}

// OverrideServerName implements the deprecated gRPC method.
func (c *clientCreds) OverrideServerName(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.override = name
	c.byName = map[string]credentials.TransportCredentials{}
	return nil
}
