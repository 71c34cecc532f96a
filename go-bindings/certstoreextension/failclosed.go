// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// rateLimit lets one log line through per period.
type rateLimit struct{ last atomic.Int64 }

func (r *rateLimit) allow(now time.Time, period time.Duration) bool {
	last := r.last.Load()
	return now.UnixNano()-last >= int64(period) && r.last.CompareAndSwap(last, now.UnixNano())
}

// checkTLSPeer refuses a call whose connection is not TLS, or whose TLS handshake did not
// authenticate the client as client_auth says: the receiver's own transport credentials won
// over the extension's (or none were set), so the call came in plaintext or with their client
// authentication. require needs verified chains; verify_if_given needs them when the client
// sent a certificate.
func (e *certstoreExtension) checkTLSPeer(ctx context.Context, method string) error {
	p, ok := peer.FromContext(ctx)
	var info credentials.TLSInfo
	isTLS := false
	if ok {
		info, isTLS = p.AuthInfo.(credentials.TLSInfo)
	}
	var reason string
	if isTLS {
		verified := len(info.State.VerifiedChains) > 0
		switch e.clientAuth {
		case tls.RequireAndVerifyClientCert:
			if verified {
				return nil
			}
			reason = "client_auth require: the client has no verified certificate"
		case tls.VerifyClientCertIfGiven:
			if verified || len(info.State.PeerCertificates) == 0 {
				return nil
			}
			reason = "client_auth verify_if_given: the client's certificate was not verified"
		default:
			return nil
		}
	} else {
		reason = "connection is not TLS"
	}
	if e.plainLog.allow(time.Now(), time.Minute) {
		addr := "unknown"
		if ok && p.Addr != nil {
			addr = p.Addr.String()
		}
		e.logger.WithOptions(zap.AddStacktrace(zap.DPanicLevel)).Error(
			"Refused a gRPC call: another grpc.Creds replaced the certstore credentials of this receiver "+
				"(at most one such line a minute)",
			zap.String("method", method), zap.String("peer", addr), zap.String("reason", reason))
	}
	return status.Errorf(codes.Unauthenticated, "certstore %s: %s; refused", e.id, reason)
}

func (e *certstoreExtension) requireTLSUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := e.checkTLSPeer(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (e *certstoreExtension) requireTLSStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := e.checkTLSPeer(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// requireTLSCreds is a per-RPC credential that adds no metadata but requires transport
// security: grpc-go then refuses to use a connection made by insecure transport credentials,
// and the check below refuses anything whose handshake was not TLS.
type requireTLSCreds struct{ id component.ID }

func (c requireTLSCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	if _, ok := ri.AuthInfo.(credentials.TLSInfo); !ok {
		return nil, fmt.Errorf("certstore %s: connection is not TLS (%T); refusing to send", c.id, ri.AuthInfo)
	}
	return nil, nil
}

func (requireTLSCreds) RequireTransportSecurity() bool { return true }
