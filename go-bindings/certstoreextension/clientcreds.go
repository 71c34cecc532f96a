// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// clientCreds are the gRPC transport credentials of the client side. The server name to
// verify comes from server_name_override or, per target, from the dial authority (host part):
// crypto/tls verifies the name in the config, and sends no SNI for an IP address, so one
// config source per server name is built and cached. The cache is bounded (least recently
// used names are dropped): a load-balancing exporter may dial a new name per backend, forever.
type clientCreds struct {
	info     credentials.ProtocolInfo
	override string
	build    func(serverName string) func() *tls.Config
	max      int
	guard    *certstore.ConnGuard // closes connections whose server stops verifying; may be nil

	mu     sync.Mutex
	byName map[string]*list.Element // of *namedSource
	lru    *list.List               // front: most recently used
}

type namedSource struct {
	name string
	get  func() *tls.Config
}

var _ credentials.TransportCredentials = (*clientCreds)(nil)

func newClientCreds(override string, build func(string) func() *tls.Config, guard *certstore.ConnGuard) *clientCreds {
	return &clientCreds{
		guard:    guard,
		info:     credentials.NewTLS(&tls.Config{}).Info(),
		override: override,
		build:    build,
		max:      maxServerNames,
		byName:   map[string]*list.Element{},
		lru:      list.New(),
	}
}

// forName returns the config of a new connection verifying name.
func (c *clientCreds) forName(name string) *tls.Config {
	c.mu.Lock()
	el, ok := c.byName[name]
	if ok {
		c.lru.MoveToFront(el)
	} else {
		el = c.lru.PushFront(&namedSource{name: name, get: c.build(name)})
		c.byName[name] = el
		for c.lru.Len() > c.max {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.byName, old.Value.(*namedSource).name)
		}
	}
	get := el.Value.(*namedSource).get
	c.mu.Unlock()
	return get()
}

func (c *clientCreds) cached() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byName)
}

func hostOf(authority string) string {
	if host, _, err := net.SplitHostPort(authority); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
}

// serverName is server_name_override (or the overridden name) or else the host of hostport.
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
	creds := credentials.NewTLS(c.forName(c.serverName(authority)))
	var info credentials.AuthInfo
	conn, err := watchClientConn(c.guard, raw, func(raw net.Conn) (net.Conn, tls.ConnectionState, error) {
		conn, i, err := creds.ClientHandshake(ctx, authority, raw)
		info = i
		tlsInfo, _ := i.(credentials.TLSInfo)
		return conn, tlsInfo.State, err
	})
	if err != nil {
		return nil, nil, err
	}
	return conn, info, nil
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
	return newClientCreds(c.override, c.build, c.guard)
}

// OverrideServerName implements the deprecated gRPC method.
func (c *clientCreds) OverrideServerName(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.override = name
	c.byName = map[string]*list.Element{}
	c.lru.Init()
	return nil
}
