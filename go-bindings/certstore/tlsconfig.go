package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// serverBinding is one ServerTLSConfig call: a base config and the config cached for the
// state being served.
type serverBinding struct {
	s    *Store
	base *tls.Config // private clone, never modified
	mu   sync.Mutex  // serializes building; never taken when the cache is fresh
	last atomic.Pointer[cachedConfig]
}

type cachedConfig struct {
	st  *state
	cfg *tls.Config
}

// ServerTLSConfig returns a server config that serves the current generation on every new
// handshake. Call it once per listener, not per connection: each call registers a config
// that lives, and is rebuilt on every rotation, as long as the Store. Its GetConfigForClient returns a *tls.Config cached per generation: one atomic
// load and a pointer compare, no cgo call, no allocation when nothing rotated.
//
// The cached config is a clone of base with Certificates set to the current certificate,
// ClientCAs set to the current CA pool (including the overlap) when the store has a CA file,
// and session ticket keys shared by every generation of this Store (so tickets issued before
// a rotation resume after it). Everything else of base is kept: ClientAuth, NextProtos,
// MinVersion, MaxVersion, CipherSuites, CurvePreferences, VerifyConnection, ...
// base.Certificates, GetCertificate and GetConfigForClient are replaced. base may be nil.
//
// gRPC (grpc-go >= 1.67) requires "h2" in NextProtos of the config that completes the
// handshake, and that is the config returned by GetConfigForClient, not the one grpc-go
// prepared: use GRPCServerTLSConfig, or put "h2" in base.NextProtos. The same holds for
// net/http: without "h2" in base.NextProtos the server speaks HTTP/1.1 only.
func (s *Store) ServerTLSConfig(base *tls.Config) *tls.Config {
	if base == nil {
		base = &tls.Config{}
	}
	b := s.newServerBinding(base)
	outer := base.Clone()
	outer.Certificates = nil
	outer.GetConfigForClient = b.getConfigForClient
	// Not used by crypto/tls when GetConfigForClient returns a config; set so code that
	// checks for "a certificate is configured" (net/http ServeTLS) is satisfied.
	outer.GetCertificate = b.getCertificate
	return outer
}

// GRPCServerTLSConfig is ServerTLSConfig with "h2" added to base.NextProtos when missing:
// grpc-go closes every connection whose ALPN is not h2.
func (s *Store) GRPCServerTLSConfig(base *tls.Config) *tls.Config {
	if base == nil {
		base = &tls.Config{}
	}
	base = base.Clone()
	if !slices.Contains(base.NextProtos, "h2") {
		base.NextProtos = append([]string{"h2"}, base.NextProtos...)
	}
	return s.ServerTLSConfig(base)
}

// newServerBinding registers a config built from base (non-nil) and rebuilt for every state
// of s; ServerTLSConfigSNI makes one per store.
func (s *Store) newServerBinding(base *tls.Config) *serverBinding {
	b := &serverBinding{s: s, base: base.Clone()}
	// Clone is shallow: own the slices, so a later change to base does not leak into
	// handshakes half-way.
	b.base.NextProtos = slices.Clone(base.NextProtos)
	b.base.CipherSuites = slices.Clone(base.CipherSuites)
	b.base.CurvePreferences = slices.Clone(base.CurvePreferences)
	b.base.GetConfigForClient = nil
	b.base.GetCertificate = nil
	b.base.Certificates = nil

	s.mu.Lock()
	s.bindings = append(s.bindings, b)
	b.get(s.st.Load())
	s.mu.Unlock()
	return b
}

func (b *serverBinding) getConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return b.get(b.s.current()), nil
}

func (b *serverBinding) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &b.s.current().snap.Certificate, nil
}

// get returns the config for st, building it at most once per state.
func (b *serverBinding) get(st *state) *tls.Config {
	if c := b.last.Load(); c != nil && c.st == st {
		return c.cfg
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.last.Load()
	if c != nil && (c.st == st || c.st.seq > st.seq) {
		// Built meanwhile, or a newer state is already cached: serve the cached one. A
		// handshake that loaded an older state just before a swap gets the newer config.
		return c.cfg
	}
	cfg := b.base.Clone()
	cfg.Certificates = []tls.Certificate{st.snap.Certificate}
	if st.hasCA {
		cfg.ClientCAs = st.snap.CAPool
	}
	cfg.SetSessionTicketKeys(st.ticketKeys)
	b.last.Store(&cachedConfig{st: st, cfg: cfg})
	return cfg
}

// ClientTLSConfig returns a client config that presents the current certificate
// (GetClientCertificate) and, when the store has a CA file, verifies the server against the
// current CA pool (including the overlap) on every handshake, resumed ones included.
//
// Verification is complete: chain to the current roots, validity at base.Time(), and the
// server name (DNS name or IP SAN). crypto/tls cannot take roots that change, so the config
// sets InsecureSkipVerify and does that verification itself in VerifyConnection; nothing is
// skipped. The name checked is the SNI sent (ConnectionState.ServerName) or, when that is empty
// because the target is an IP address, base.ServerName; with neither the handshake fails. So
// set base.ServerName when dialling an IP address.
//
// base.VerifyConnection still runs after that verification. base.VerifyPeerCertificate is
// called with verifiedChains nil. If base.InsecureSkipVerify is already true, the server is
// not verified (your choice). Without a CA file, base.RootCAs (nil: system roots) are used by
// crypto/tls as usual. base may be nil.
func (s *Store) ClientTLSConfig(base *tls.Config) *tls.Config {
	if base == nil {
		base = &tls.Config{}
	}
	cfg := base.Clone()
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &s.current().snap.Certificate, nil
	}
	if s.opts.CAFile == "" || base.InsecureSkipVerify {
		return cfg
	}
	cfg.InsecureSkipVerify = true
	name := base.ServerName
	userVerify := base.VerifyConnection
	timeFn := base.Time
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := s.verifyServer(cs, name, timeFn); err != nil {
			return err
		}
		if userVerify != nil {
			return userVerify(cs)
		}
		return nil
	}
	return cfg
}

var errNoServerName = errors.New("certstore: no server name to verify: set tls.Config.ServerName (needed when dialling an IP address)")

func (s *Store) verifyServer(cs tls.ConnectionState, fallbackName string, timeFn func() time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("certstore: server sent no certificate")
	}
	name := cs.ServerName
	if name == "" {
		name = fallbackName
	}
	if name == "" {
		return errNoServerName
	}
	opts := x509.VerifyOptions{
		Roots:         s.current().snap.CAPool,
		DNSName:       name,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if timeFn != nil {
		opts.CurrentTime = timeFn()
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}
