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
	"github.com/certstore-dev/certstore/go-bindings/certstoreextension/tlsprovider"
)

// TLSConfigProvider is implemented by the certstore extension (see package tlsprovider, which
// custom components can import without cgo).
type TLSConfigProvider = tlsprovider.TLSConfigProvider

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

// checkInterval is how often the status, the expiry and the validated copy are re-checked
// while no event arrives: a reload that finds the served files again (unchanged) clears the
// error without an event, and the end of a CA overlap changes the trust without one.
var checkInterval = time.Second

type certstoreExtension struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	set    component.TelemetrySettings

	// Set by Start, read-only afterwards. store is the default certificate (clients,
	// validated_dir); stores holds every certificate, store first.
	store      *certstore.Store
	stores     []*certstore.Store
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
	plainLog   rateLimit
	clientAuth tls.ClientAuthType // enforced by the fail-closed interceptors too
	// Close live connections whose peer stopped verifying; nil when off (see newGuards).
	serverGuard *certstore.ConnGuard
	clientGuard *certstore.ConnGuard
	revokeLog   revokeLog

	mu          sync.Mutex // serializes checks and reporting; guards the fields below
	lastStatus  string
	copy        *copyWriter
	copyErr     error
	expiryState string
	stopping    atomic.Bool // set by Shutdown (under mu): no status is reported afterwards
}

func newExtension(cfg *Config, set extension.Settings) *certstoreExtension {
	return &certstoreExtension{
		cfg:    cfg,
		id:     set.ID,
		logger: set.Logger,
		set:    set.TelemetrySettings,
	}
}

func (e *certstoreExtension) options(c CertificateConfig) certstore.Options {
	reload := e.cfg.TLS.ReloadInterval
	if reload == 0 {
		reload = -1 // the Go package reads 0 as "default"; the YAML's 0 means "off"
	}
	return certstore.Options{
		CertFile:       c.CertFile,
		KeyFile:        c.KeyFile,
		CAFile:         e.cfg.TLS.CAFile,
		ReloadInterval: reload,
		CAOverlap:      e.cfg.TLS.CAOverlap,
	}
}

// Start loads and validates the files; a bad initial certificate stops the collector with the
// reason. It reports no status: the service reports OK after Start; changes follow.
func (e *certstoreExtension) Start(_ context.Context, host component.Host) error {
	base, err := e.cfg.baseTLSConfig()
	if err != nil {
		return fmt.Errorf("certstore %s: %w", e.id, err)
	}
	stores, err := e.openStores()
	if err != nil {
		return fmt.Errorf("certstore %s: %w", e.id, err)
	}
	store := stores[0]
	e.store, e.stores = store, stores
	e.host = host

	srv := base.Clone()
	srv.RootCAs = nil
	srv.ClientAuth = e.cfg.clientAuthType()
	e.clientAuth = srv.ClientAuth
	grpcBase := srv.Clone()
	grpcBase.NextProtos = []string{"h2"}
	httpBase := srv.Clone()
	httpBase.NextProtos = []string{"h2", "http/1.1"}

	fail := func(err error) error {
		if e.copy != nil {
			e.copy.close()
			e.copy = nil
		}
		e.closeGuards()
		if e.telemetry != nil {
			e.telemetry.shutdown()
			e.telemetry = nil
		}
		e.closed = true
		_ = e.closeStores()
		return fmt.Errorf("certstore %s: %w", e.id, err)
	}
	if e.grpcServer, err = e.serverTLSConfig(grpcBase); err != nil {
		return fail(err)
	}
	if e.httpServer, err = e.serverTLSConfig(httpBase); err != nil {
		return fail(err)
	}
	e.clientBase = base.Clone()
	e.client = e.ClientTLSConfigForServer(e.cfg.Client.ServerNameOverride)
	files := make([]string, len(stores))
	for i := range stores {
		files[i] = e.certFile(i)
	}
	tel, err := newTelemetry(e.set, e.id, stores, files, e.cfg.TLS.CAFile)
	if err != nil {
		return fail(fmt.Errorf("telemetry: %w", err))
	}
	e.telemetry = tel
	e.serverGuard, e.clientGuard = e.newGuards() // after the telemetry their OnRevoke uses
	e.grpcClient = newClientCreds(e.cfg.Client.ServerNameOverride, e.clientSource(e.clientBase, nil), e.clientGuard)

	for i, s := range stores {
		if snap, err := s.Current(); err == nil {
			e.logger.Info("Certificate loaded",
				zap.String("cert_file", e.certFile(i)),
				zap.String("serial", snap.Serial),
				zap.Time("not_after", snap.NotAfter),
				zap.Uint64("generation", snap.Generation),
				zap.Int("ca_certs", len(snap.CACerts)))
		}
	}
	if dir := e.cfg.Copy.ValidatedDir; dir != "" {
		w, err := newCopyWriter(dir, e.id.String())
		if err != nil {
			return fail(err)
		}
		e.copy = w
		e.mu.Lock()
		e.syncCopyLocked()
		err = e.copyErr
		e.mu.Unlock()
		if err != nil {
			return fail(err)
		}
	}

	e.lastStatus = statusOK // what the service reports once Start returns
	unsubs := make([]func(), len(stores))
	for i, s := range stores {
		c := e.cfg.TLS.certificates()[i]
		unsubs[i] = s.Subscribe(func(ev certstore.Event) { e.onEvent(c, s, ev) })
	}
	e.unsub = func() {
		for _, u := range unsubs {
			u()
		}
	}
	e.stop = make(chan struct{})
	e.done = make(chan struct{})
	go e.checkLoop()
	e.check()
	return nil
}

func (e *certstoreExtension) onEvent(c CertificateConfig, s *certstore.Store, ev certstore.Event) {
	if e.stopping.Load() {
		// An event dispatched before Shutdown unsubscribed: nothing may be reported after it.
		return
	}
	if ev.Kind == certstore.EventRotated || ev.Kind == certstore.EventReloadFailed {
		outcome := "success"
		if ev.Kind == certstore.EventReloadFailed {
			outcome = "failure"
		}
		e.mu.Lock()
		if !e.stopping.Load() {
			e.telemetry.reloadDuration(c.CertFile, outcome, s.Status().LastReloadDuration)
		}
		e.mu.Unlock()
	}
	switch ev.Kind {
	case certstore.EventRotated:
		e.logger.Info("Certificate rotated",
			zap.String("cert_file", c.CertFile),
			zap.String("serial", ev.Serial),
			zap.Time("not_after", ev.NotAfter),
			zap.Uint64("generation", ev.Generation))
	case certstore.EventReloadFailed:
		// An error, without the stack trace zap adds at error level (it says nothing here).
		e.logger.WithOptions(zap.AddStacktrace(zap.DPanicLevel)).Error("Certificate reload failed; still serving the last good certificate",
			zap.String("cert_file", c.CertFile),
			zap.String("key_file", c.KeyFile),
			zap.String("ca_file", e.cfg.TLS.CAFile),
			zap.Uint64("serving_generation", ev.Generation),
			zap.String("reason", ev.Reason),
			zap.Error(ev.Err))
		e.mu.Lock()
		if !e.stopping.Load() {
			e.telemetry.reloadFailed(c.CertFile, ev.Reason)
		}
		e.mu.Unlock()
	case certstore.EventWatchDegraded:
		e.logger.Warn("Cannot watch the certificate files; re-reading them on a timer until the watch is back",
			zap.String("cert_file", c.CertFile), zap.Error(ev.Err))
	case certstore.EventWatchRestored:
		e.logger.Info("Watching the certificate files again", zap.String("cert_file", c.CertFile))
	case certstore.EventWatchRepaired:
		e.logger.Warn("A watch on the certificate files had died without an event; rebuilt it and served the files found on disk",
			zap.String("cert_file", c.CertFile), zap.String("path", ev.Path), zap.Uint64("generation", ev.Generation))
	case certstore.EventEventsDropped:
		e.logger.Warn("Certificate events were dropped because their handling was too slow",
			zap.String("cert_file", c.CertFile), zap.Uint64("dropped", ev.Count))
	}
	e.check()
}

func (e *certstoreExtension) checkLoop() {
	defer close(e.done)
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.check()
		}
	}
}

// check brings the validated copy up to date, logs an approaching expiry and reports the
// status when it changed. Under one lock, so that concurrent callers (notifier, ticker) cannot
// report an older evaluation after a newer one.
func (e *certstoreExtension) check() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping.Load() {
		return
	}
	if e.copy != nil {
		e.syncCopyLocked()
	}
	now := time.Now()
	e.logExpiryLocked(now)
	ev, key := e.evaluateStatus(e.status(), now)
	if key != e.lastStatus && e.host != nil {
		e.lastStatus = key
		componentstatus.ReportStatus(e.host, ev)
	}
}

// syncCopyLocked writes the generation served now into validated_dir when it differs from
// what the directory holds. Only a generation the store validated and serves is ever written.
func (e *certstoreExtension) syncCopyLocked() {
	snap, err := e.store.Current()
	if err != nil {
		// Closed, or the library published a generation Go cannot use (Current fails until
		// the next usable one): the copy keeps the last usable generation, and the store's
		// status says why.
		return
	}
	g, err := encodeGeneration(snap.Certificate.Certificate, snap.Certificate.PrivateKey,
		e.store.TrustedCAs(), e.cfg.TLS.CAFile != "")
	var wrote bool
	if err == nil {
		wrote, err = e.copy.write(g)
		if !wrote {
			g.wipe()
		}
	}
	if wrote {
		e.telemetry.copyWrite(true)
		e.logger.Info("Validated copy written",
			zap.String("validated_dir", e.cfg.Copy.ValidatedDir),
			zap.String("serial", snap.Serial),
			zap.Uint64("generation", snap.Generation))
	}
	if err != nil {
		e.telemetry.copyWrite(false)
		if e.copyErr == nil || e.copyErr.Error() != err.Error() {
			e.logger.WithOptions(zap.AddStacktrace(zap.DPanicLevel)).Error("Writing the validated copy failed; readers keep the previous one",
				zap.String("validated_dir", e.cfg.Copy.ValidatedDir), zap.Error(err))
		}
	}
	e.copyErr = err
}

// expiring returns what expires first among the leaf and the trusted CAs that are within their
// warning (see ExpiryConfig.warnsWithin), or "" when none is.
func (e *certstoreExtension) expiring(now time.Time) (what string, notAfter time.Time) {
	x := e.cfg.Expiry
	if x.ExpiryWarning != nil && *x.ExpiryWarning == 0 {
		return "", time.Time{}
	}
	for i, s := range e.stores {
		snap, err := s.Current()
		if err != nil || snap.NotAfter.Sub(now) >= x.warnsWithin(snap.NotBefore, snap.NotAfter) ||
			what != "" && !snap.NotAfter.Before(notAfter) {
			continue
		}
		what, notAfter = "served certificate (serial "+snap.Serial+")", snap.NotAfter
		if len(e.stores) > 1 {
			what = "served certificate " + e.certFile(i) + " (serial " + snap.Serial + ")"
		}
	}
	// ca_file is the same for every certificate: the default Store's view of it.
	for _, ca := range e.store.TrustedCAs() {
		if ca.NotAfter.Sub(now) < x.warnsWithin(ca.NotBefore, ca.NotAfter) && (what == "" || ca.NotAfter.Before(notAfter)) {
			what, notAfter = "CA certificate "+ca.Subject.String()+" (serial "+fmt.Sprintf("%x", ca.SerialNumber)+")", ca.NotAfter
		}
	}
	return what, notAfter
}

func (e *certstoreExtension) logExpiryLocked(now time.Time) {
	what, notAfter := e.expiring(now)
	state := what + notAfter.String()
	if what == "" || state == e.expiryState {
		e.expiryState = state
		return
	}
	e.expiryState = state
	e.logger.Warn("Certificate expires soon; renew it (the extension picks the new files up at once)",
		zap.String("certificate", what), zap.Time("not_after", notAfter),
		zap.String("warning", e.cfg.Expiry.describe()))
}

const statusOK = "ok"

// evaluateStatus: a recoverable error while the last reload failed (the files on disk are
// refused, or Go could not use a generation the library published) or the validated copy
// cannot be written, and, with expiry_status, while something expires within expiry_warning;
// OK otherwise. A reload that finds the served files again clears LastError. While the disk
// differs from what is served, the message says both serials and the library's stable reason.
func (e *certstoreExtension) evaluateStatus(st certstore.Status, now time.Time) (*componentstatus.Event, string) {
	if st.DiskDiffers && !errors.Is(st.LastError, certstore.ErrClosed) {
		err := e.divergence(st)
		return componentstatus.NewRecoverableErrorEvent(err), "disk-differs:" + err.Error()
	}
	if st.LastError != nil && !errors.Is(st.LastError, certstore.ErrClosed) {
		err := fmt.Errorf("certificate reload failed, serving generation %d: %w", st.Generation, st.LastError)
		return componentstatus.NewRecoverableErrorEvent(err), "reload-failed:" + err.Error()
	}
	if e.copyErr != nil {
		err := fmt.Errorf("validated copy not written: %w", e.copyErr)
		return componentstatus.NewRecoverableErrorEvent(err), "copy:" + err.Error()
	}
	if e.cfg.Expiry.ExpiryStatus {
		if what, notAfter := e.expiring(now); what != "" {
			var err error
			if now.After(notAfter) {
				err = fmt.Errorf("%s expired at %s", what, notAfter.UTC().Format(time.RFC3339))
			} else {
				err = fmt.Errorf("%s expires at %s, %s", what,
					notAfter.UTC().Format(time.RFC3339), e.cfg.Expiry.describe())
			}
			return componentstatus.NewRecoverableErrorEvent(err), "expiry:" + err.Error()
		}
	}
	return componentstatus.NewEvent(componentstatus.StatusOK), statusOK
}

// divergence says what is served, what is on disk and why the disk's files are not served.
func (e *certstoreExtension) divergence(st certstore.Status) error {
	served := fmt.Sprintf("generation %d, serial %s", st.Generation, st.Serial)
	disk := "unparsed files"
	if st.DiskSerial != "" {
		disk = "serial " + st.DiskSerial
	}
	reason := st.DiskReason
	if reason == "" {
		reason = "other"
	}
	msg := fmt.Sprintf("certificate reload failed, serving %s; the files on disk (%s) differ: %s", served, disk, reason)
	if !st.DiskDiffersSince.IsZero() {
		msg += " since " + st.DiskDiffersSince.UTC().Format(time.RFC3339)
	}
	if st.LastError != nil {
		return fmt.Errorf("%s: %w", msg, st.LastError)
	}
	return errors.New(msg)
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
	e.closeGuards()
	if e.telemetry != nil {
		e.telemetry.shutdown()
		e.telemetry = nil
	}
	e.mu.Lock()
	if e.copy != nil {
		e.copy.close()
		e.copy = nil
	}
	e.mu.Unlock()
	if e.store != nil && !e.closed {
		e.closed = true
		return e.closeStores()
	}
	return nil
}

// GetGRPCServerOptions makes a configgrpc server (e.g. the OTLP receiver) serve the current
// certificate, and (revoke_untrusted_connections) close a client's connection once its chain
// stops verifying. configgrpc appends middleware options after its own, and grpc-go uses the last
// grpc.Creds, so this replaces any tls: block of the receiver. That order is not a contract:
// the interceptors refuse every call that did not arrive over TLS, or without the client
// authentication client_auth asks for, so a change upstream can never turn the receiver into
// a plaintext one or a weaker one.
func (e *certstoreExtension) GetGRPCServerOptions(context.Context) ([]grpc.ServerOption, error) {
	if e.grpcServer == nil {
		return nil, fmt.Errorf("certstore %s is not started", e.id)
	}
	creds := credentials.NewTLS(e.grpcServer)
	if e.serverGuard != nil {
		creds = guardedServerCreds{TransportCredentials: creds, guard: e.serverGuard}
	}
	return []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(e.requireTLSUnary),
		grpc.ChainStreamInterceptor(e.requireTLSStream),
	}, nil
}

// GetGRPCClientOptions makes a configgrpc client (e.g. the OTLP exporter) present the current
// client certificate and verify the server against the current roots. A per-RPC credential
// that requires transport security makes grpc-go refuse a connection that is not TLS, should
// other transport credentials ever win over these.
func (e *certstoreExtension) GetGRPCClientOptions(context.Context) ([]grpc.DialOption, error) {
	if e.grpcClient == nil {
		return nil, fmt.Errorf("certstore %s is not started", e.id)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(e.grpcClient),
		grpc.WithPerRPCCredentials(requireTLSCreds{id: e.id}),
	}, nil
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
	return e.clientTLSConfigFrom(e.clientBase, serverName)
}

// clientTLSConfigFrom is ClientTLSConfigForServer with the TLS policy of policy.
func (e *certstoreExtension) clientTLSConfigFrom(policy *tls.Config, serverName string) *tls.Config {
	base := policy.Clone()
	base.ServerName = serverName
	return e.store.ClientTLSConfig(base)
}

// clientSource returns, per server name, the function giving the config of a new connection
// with the TLS policy of policy: crypto/tls verifies the server itself against the current
// roots (name, chains, FIPS).
func (e *certstoreExtension) clientSource(policy *tls.Config, nextProtos []string) func(serverName string) func() *tls.Config {
	return func(serverName string) func() *tls.Config {
		base := policy.Clone()
		base.ServerName = serverName
		base.NextProtos = nextProtos
		return e.store.ClientConfigSource(base)
	}
}
