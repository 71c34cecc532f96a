// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// revokeLogBurst and revokeLogPeriod bound the log lines about revoked connections: a CA
// rotation can revoke thousands of connections at once. The metric counts every one.
const (
	revokeLogBurst  = 20
	revokeLogPeriod = 10 * time.Second
)

// revokeLog lets revokeLogBurst lines through per revokeLogPeriod and counts the others,
// which the next line that gets through reports.
type revokeLog struct {
	mu         sync.Mutex
	start      time.Time
	lines      int
	suppressed int
}

func (r *revokeLog) allow(now time.Time) (ok bool, suppressedBefore int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= revokeLogPeriod {
		r.start, r.lines = now, 0
	}
	if r.lines >= revokeLogBurst {
		r.suppressed++
		return false, 0
	}
	r.lines++
	suppressedBefore, r.suppressed = r.suppressed, 0
	return true, suppressedBefore
}

// newGuards starts the connection guards the configuration asks for: server side when client
// certificates are verified, client side when ca_file gives the roots (without it the roots
// never change). nil guards are off.
func (e *certstoreExtension) newGuards() (server, client *certstore.ConnGuard) {
	if !e.cfg.Revoke.RevokeUntrustedConnections {
		return nil, nil
	}
	if e.clientAuth == tls.RequireAndVerifyClientCert || e.clientAuth == tls.VerifyClientCertIfGiven {
		server = e.store.NewConnGuard(certstore.GuardOptions{OnRevoke: e.onRevoke("client")})
	}
	if e.cfg.TLS.CAFile != "" {
		client = e.store.NewConnGuard(certstore.GuardOptions{
			Client:     true,
			ExtraRoots: e.clientBase.RootCAs,
			OnRevoke:   e.onRevoke("server"),
		})
	}
	if server != nil || client != nil {
		e.telemetry.revocationsWatched()
	}
	return server, client
}

// closeGuards stops the guards (the connections stay open; their owners close them).
func (e *certstoreExtension) closeGuards() {
	for _, g := range []*certstore.ConnGuard{e.serverGuard, e.clientGuard} {
		if g != nil {
			g.Close()
		}
	}
	e.serverGuard, e.clientGuard = nil, nil
}

// watchClientConn runs the client handshake over raw wrapped for the client guard, which then
// watches the connection; without a guard it is handshake(raw).
func watchClientConn[C any](g *certstore.ConnGuard, raw net.Conn, handshake func(net.Conn) (C, tls.ConnectionState, error)) (C, error) {
	if g == nil {
		c, _, err := handshake(raw)
		return c, err
	}
	wrapped := g.Wrap(raw)
	c, state, err := handshake(wrapped)
	if err == nil {
		g.Watch(wrapped, state)
	}
	return c, err
}

// onRevoke logs (rate-limited) and counts a connection a guard closed; peer says what the
// other end was.
func (e *certstoreExtension) onRevoke(peer string) func(certstore.Revocation) {
	return func(r certstore.Revocation) {
		if e.stopping.Load() {
			return
		}
		e.telemetry.connectionRevoked(string(r.Reason))
		ok, suppressed := e.revokeLog.allow(time.Now())
		if !ok {
			return
		}
		addr := "unknown"
		if r.RemoteAddr != nil {
			addr = r.RemoteAddr.String()
		}
		fields := []zap.Field{
			zap.String("reason", string(r.Reason)),
			zap.String("peer", peer),
			zap.String("subject", r.Subject),
			zap.String("serial", r.Serial),
			zap.Time("not_after", r.NotAfter),
			zap.String("remote_addr", addr),
			zap.Error(r.Err),
		}
		if suppressed > 0 {
			fields = append(fields, zap.Int("lines_suppressed_before", suppressed))
		}
		e.logger.Warn("Closed a connection whose peer is no longer trusted (revoke_untrusted_connections; "+
			"at most 20 such lines per 10 s, the metric counts all)", fields...)
	}
}

// guardedServerCreds are the extension's gRPC server credentials with each connection
// watched: grpc-go serves on the net.Conn ServerHandshake returns, so closing the connection
// underneath ends every stream on it (in-flight RPCs fail with Unavailable; the client
// handshakes again). Nothing runs per RPC.
type guardedServerCreds struct {
	credentials.TransportCredentials
	guard *certstore.ConnGuard
}

func (c guardedServerCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	wrapped := c.guard.Wrap(raw)
	conn, info, err := c.TransportCredentials.ServerHandshake(wrapped)
	if err != nil {
		return nil, nil, err
	}
	if tlsInfo, ok := info.(credentials.TLSInfo); ok {
		c.guard.Watch(wrapped, tlsInfo.State)
	}
	return conn, info, nil
}

func (c guardedServerCreds) Clone() credentials.TransportCredentials {
	return guardedServerCreds{TransportCredentials: c.TransportCredentials.Clone(), guard: c.guard}
}
