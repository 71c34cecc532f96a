// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionmiddleware"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// TLSConfigProvider is implemented by the certstore extension. Custom components (an HTTP
// receiver, a non-gRPC exporter) look the extension up with GetTLSConfigProvider and use these
// configs in their listener or transport: every new handshake uses the current certificate.
type TLSConfigProvider interface {
	// ServerTLSConfig returns a server config serving the current certificate, with the
	// extension's client_auth, versions, cipher suites and curves, and NextProtos h2 and
	// http/1.1. It is nil before the extension has started.
	ServerTLSConfig() *tls.Config
	// ClientTLSConfig returns a client config presenting the current certificate and verifying
	// servers against the current ca_file roots, for the name in server_name or, when that is
	// empty, the SNI name sent (a DNS name). It is nil before the extension has started.
	ClientTLSConfig() *tls.Config
	// ClientTLSConfigForServer is ClientTLSConfig verifying the server against serverName (a
	// DNS name or an IP address): use it when dialling an IP address, which sends no SNI.
	ClientTLSConfigForServer(serverName string) *tls.Config
}

var (
	_ extension.Extension            = (*certstoreExtension)(nil)
	_ extensionmiddleware.GRPCServer = (*certstoreExtension)(nil)
	_ extensionmiddleware.GRPCClient = (*certstoreExtension)(nil)
	_ TLSConfigProvider              = (*certstoreExtension)(nil)
)

// GetTLSConfigProvider returns the certstore extension with the given ID from the host.
func GetTLSConfigProvider(host component.Host, id component.ID) (TLSConfigProvider, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("extension %q not found: add it under service.extensions", id)
	}
	p, ok := ext.(TLSConfigProvider)
	if !ok {
		return nil, fmt.Errorf("extension %q is not a certstore extension", id)
	}
	return p, nil
}

type certstoreExtension struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	set    component.TelemetrySettings

	// Set by Start, read-only afterwards.
	store      *certstore.Store
	grpcServer *tls.Config // NextProtos h2 (grpc-go enforces ALPN)
	httpServer *tls.Config // NextProtos h2, http/1.1
	client     *tls.Config
	clientBase *tls.Config
	grpcClient *clientCreds
	unsub      func()
	telemetry  *telemetry
	host       component.Host
	stop       chan struct{}
	done       chan struct{}
	closed     bool

	mu         sync.Mutex // serializes status evaluation and reporting; guards lastStatus
	lastStatus string
	stopping   atomic.Bool // set by Shutdown (under mu): no status is reported afterwards
}

func newExtension(cfg *Config, set extension.Settings) *certstoreExtension {
	return &certstoreExtension{
		cfg:    cfg,
		id:     set.ID,
		logger: set.Logger,
		set:    set.TelemetrySettings,
	}
}

func (e *certstoreExtension) options() certstore.Options {
	reload := e.cfg.ReloadInterval
	if reload == 0 {
		reload = -1 // the Go package reads 0 as "default"; the YAML's 0 means "off"
	}
	return certstore.Options{
		CertFile:       e.cfg.CertFile,
		KeyFile:        e.cfg.KeyFile,
		CAFile:         e.cfg.CAFile,
		ReloadInterval: reload,
		CAOverlap:      e.cfg.CAOverlap,
	}
}

// Start loads and validates the files; a bad initial certificate stops the collector with the reason.
func (e *certstoreExtension) Start(_ context.Context, host component.Host) error {
	store, err := certstore.Open(e.options())
	if err != nil {
		return fmt.Errorf("certstore %s: %w", e.id, err)
	}
	e.store = store
	e.host = host

	base := e.cfg.baseTLSConfig()
	srv := base.Clone()
	srv.ClientAuth = e.cfg.clientAuthType()
	grpcBase := srv.Clone()
	grpcBase.NextProtos = []string{"h2"}
	e.grpcServer = store.ServerTLSConfig(grpcBase)
	httpBase := srv.Clone()
	httpBase.NextProtos = []string{"h2", "http/1.1"}
	e.httpServer = store.ServerTLSConfig(httpBase)
	e.clientBase = base.Clone()
	e.client = e.ClientTLSConfigForServer(e.cfg.ServerName)
	e.grpcClient = newClientCreds(e.cfg.ServerName, e.ClientTLSConfigForServer)

	tel, err := newTelemetry(e.set, e.id, store)
	if err != nil {
		_ = store.Close()
		e.store = nil
		return fmt.Errorf("certstore %s: telemetry: %w", e.id, err)
	}
	e.telemetry = tel

	if snap, err := store.Current(); err == nil {
		e.logger.Info("Certificate loaded",
			zap.String("cert_file", e.cfg.CertFile),
			zap.String("serial", snap.Serial),
			zap.Time("not_after", snap.NotAfter),
			zap.Uint64("generation", snap.Generation),
			zap.Int("ca_certs", len(snap.CACerts)))
	}

	e.unsub = store.Subscribe(e.onEvent)
	e.stop = make(chan struct{})
	e.done = make(chan struct{})
	go e.expiryLoop()
	e.updateStatus()
	return nil
}

func (e *certstoreExtension) onEvent(ev certstore.Event) {
	if e.stopping.Load() {
		// An event dispatched before Shutdown unsubscribed: nothing may be reported after it.
		return
	}
	switch ev.Kind {
	case certstore.EventRotated:
		e.logger.Info("Certificate rotated",
			zap.String("cert_file", e.cfg.CertFile),
			zap.String("serial", ev.Serial),
			zap.Time("not_after", ev.NotAfter),
			zap.Uint64("generation", ev.Generation))
	case certstore.EventReloadFailed:
		// An error, without the stack trace zap adds at error level (it says nothing here).
		e.logger.WithOptions(zap.AddStacktrace(zap.DPanicLevel)).Error("Certificate reload failed; still serving the last good certificate",
			zap.String("cert_file", e.cfg.CertFile),
			zap.String("key_file", e.cfg.KeyFile),
			zap.String("ca_file", e.cfg.CAFile),
			zap.Uint64("serving_generation", ev.Generation),
			zap.Error(ev.Err))
	}
	e.updateStatus()
}

// expiryLoop re-evaluates the expiry warning while no file changes.
func (e *certstoreExtension) expiryLoop() {
	defer close(e.done)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.updateStatus()
		}
	}
}

// updateStatus reports OK, or a recoverable error when the last reload failed or the served
// leaf expires within expiry_warning. Only changes are reported.
func (e *certstoreExtension) updateStatus() {
	// Evaluate and report under one lock so that concurrent callers (notifier, ticker) cannot
	// report an older evaluation after a newer one.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping.Load() {
		return
	}
	ev, key := e.evaluateStatus(time.Now())
	if key != e.lastStatus && e.host != nil {
		e.lastStatus = key
		componentstatus.ReportStatus(e.host, ev)
	}
}

func (e *certstoreExtension) evaluateStatus(now time.Time) (*componentstatus.Event, string) {
	st := e.store.Status()
	if !st.LastFailure.IsZero() && st.LastFailure.After(st.LastSuccess) {
		err := st.LastError
		if err == nil {
			err = errors.New("unknown error")
		}
		err = fmt.Errorf("certificate reload failed, serving generation %d: %w", st.Generation, err)
		return componentstatus.NewRecoverableErrorEvent(err), "reload-failed:" + err.Error()
	}
	if e.cfg.ExpiryWarning > 0 && !st.NotAfter.IsZero() && st.NotAfter.Sub(now) < e.cfg.ExpiryWarning {
		var err error
		if now.After(st.NotAfter) {
			err = fmt.Errorf("served certificate expired at %s", st.NotAfter.UTC().Format(time.RFC3339))
		} else {
			err = fmt.Errorf("served certificate expires at %s, within expiry_warning %s",
				st.NotAfter.UTC().Format(time.RFC3339), e.cfg.ExpiryWarning)
		}
		return componentstatus.NewRecoverableErrorEvent(err), "expiry:" + err.Error()
	}
	return componentstatus.NewEvent(componentstatus.StatusOK), "ok"
}

// Shutdown stops watching and releases the store. Safe without Start and more than once.
func (e *certstoreExtension) Shutdown(context.Context) error {
	e.mu.Lock()
	e.stopping.Store(true)
	e.mu.Unlock()
	if e.stop != nil {
		close(e.stop)
		<-e.done
		e.stop = nil
	}
	if e.unsub != nil {
		e.unsub()
		e.unsub = nil
	}
	if e.telemetry != nil {
		e.telemetry.shutdown()
		e.telemetry = nil
	}
	if e.store != nil && !e.closed {
		e.closed = true
		return e.store.Close()
	}
	return nil
}

// GetGRPCServerOptions makes a configgrpc server (e.g. the OTLP receiver) serve the current
// certificate. configgrpc appends middleware options after its own, and grpc-go uses the last
// grpc.Creds, so this replaces any tls: block of the receiver.
func (e *certstoreExtension) GetGRPCServerOptions(context.Context) ([]grpc.ServerOption, error) {
	if e.grpcServer == nil {
		return nil, fmt.Errorf("certstore %s is not started", e.id)
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(e.grpcServer))}, nil
}

// GetGRPCClientOptions makes a configgrpc client (e.g. the OTLP exporter) present the current
// client certificate and verify the server against the current roots.
func (e *certstoreExtension) GetGRPCClientOptions(context.Context) ([]grpc.DialOption, error) {
	if e.grpcClient == nil {
		return nil, fmt.Errorf("certstore %s is not started", e.id)
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(e.grpcClient)}, nil
}

// ServerTLSConfig implements TLSConfigProvider.
func (e *certstoreExtension) ServerTLSConfig() *tls.Config { return e.httpServer }

// ClientTLSConfig implements TLSConfigProvider.
func (e *certstoreExtension) ClientTLSConfig() *tls.Config { return e.client }

// ClientTLSConfigForServer implements TLSConfigProvider.
func (e *certstoreExtension) ClientTLSConfigForServer(serverName string) *tls.Config {
	if e.store == nil || e.clientBase == nil {
		return nil
	}
	base := e.clientBase.Clone()
	base.ServerName = serverName
	return e.store.ClientTLSConfig(base)
}
