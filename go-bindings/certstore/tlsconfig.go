package certstore

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rsa"
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
// current CA pool (including the overlap; plus base.RootCAs when base sets them) on every
// handshake, resumed ones included. Use it where one long-lived *tls.Config must be handed
// over; where you create the connection yourself, prefer ClientConfigSource, with which
// crypto/tls verifies the server itself.
//
// Verification is complete: chain to the current roots, validity at base.Time(), the server
// name (DNS name or IP SAN) and, when FIPS 140-3 mode is on, crypto/tls's FIPS restrictions on
// the chain. crypto/tls cannot take roots that change, so the config sets InsecureSkipVerify
// and does that verification itself in VerifyConnection; nothing is skipped. The name checked
// is the SNI sent (ConnectionState.ServerName) or, when that is empty because the target is an
// IP address, base.ServerName; with neither the handshake fails (the name crypto/tls would
// derive from the dialled address is not visible to a verification callback). So set
// base.ServerName when dialling an IP address.
//
// After that verification base.VerifyPeerCertificate is called with the raw certificates and
// the verified chains, then base.VerifyConnection with VerifiedChains filled in the state it
// is given. Because crypto/tls itself skipped verification, tls.Conn.ConnectionState() of the
// finished connection has no VerifiedChains: use ClientConfigSource when you need them there.
// If base.InsecureSkipVerify is already true, the server is not verified (your choice).
// Without a CA file, base.RootCAs (nil: system roots) are used by crypto/tls as usual. base may
// be nil.
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
	// Called by VerifyConnection below with the chains, not by crypto/tls with nil.
	cfg.VerifyPeerCertificate = nil
	name := base.ServerName
	userPeer := base.VerifyPeerCertificate
	userVerify := base.VerifyConnection
	timeFn := base.Time
	roots := &rootsCache{extra: base.RootCAs}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		chains, err := s.verifyServer(cs, name, timeFn, roots.get(s.current()))
		if err != nil {
			return err
		}
		if userPeer != nil {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			if err := userPeer(raw, chains); err != nil {
				return err
			}
		}
		if userVerify != nil {
			cs.VerifiedChains = chains
			return userVerify(cs)
		}
		return nil
	}
	return cfg
}

// ClientConfigSource returns a function that gives the client config for a new connection:
// a clone of base presenting the current certificate and, when the store has a CA file, with
// RootCAs set to the current CA pool (including the overlap; plus base.RootCAs when base sets
// them, e.g. the system pool). crypto/tls then verifies the server itself, exactly as with
// static roots: the name in ServerName (or derived by tls.Dial), FIPS restrictions,
// VerifyPeerCertificate with the verified chains, ConnectionState.VerifiedChains. Call the
// function once per connection (tls.Client(conn, get())); it returns a config cached per
// served state: one atomic load when nothing rotated. Without a CA file, base.RootCAs (nil:
// system roots) are used. base may be nil.
func (s *Store) ClientConfigSource(base *tls.Config) func() *tls.Config {
	if base == nil {
		base = &tls.Config{}
	}
	b := base.Clone()
	b.NextProtos = slices.Clone(base.NextProtos)
	b.CipherSuites = slices.Clone(base.CipherSuites)
	b.CurvePreferences = slices.Clone(base.CurvePreferences)
	b.Certificates = nil
	var last atomic.Pointer[cachedConfig]
	var mu sync.Mutex
	return func() *tls.Config {
		st := s.current()
		if c := last.Load(); c != nil && c.st == st {
			return c.cfg
		}
		mu.Lock()
		defer mu.Unlock()
		if c := last.Load(); c != nil && (c.st == st || c.st.seq > st.seq) {
			return c.cfg
		}
		cfg := b.Clone()
		cert := st.snap.Certificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
		if st.hasCA && !b.InsecureSkipVerify {
			cfg.RootCAs = rootsOf(st, b.RootCAs)
		}
		last.Store(&cachedConfig{st: st, cfg: cfg})
		return cfg
	}
}

// rootsOf is the trust of st: its pool as is, or extra plus st's CA certificates.
func rootsOf(st *state, extra *x509.CertPool) *x509.CertPool {
	if extra == nil {
		return st.snap.CAPool
	}
	mergedRootsBuilt.Add(1)
	pool := extra.Clone()
	for _, c := range st.snap.CACerts {
		pool.AddCert(c)
	}
	for _, c := range st.prevCA {
		pool.AddCert(c)
	}
	return pool
}

// mergedRootsBuilt counts the pools rootsOf merged (extra roots, e.g. the whole system pool,
// cloned): tests check that it happens once per generation, not per handshake.
var mergedRootsBuilt atomic.Uint64

// rootsCache is the trust of one client config, merged once per served state.
type rootsCache struct {
	extra *x509.CertPool
	mu    sync.Mutex // serializes building; never taken when the cache is fresh
	last  atomic.Pointer[cachedRoots]
}

type cachedRoots struct {
	st   *state
	pool *x509.CertPool
}

func (c *rootsCache) get(st *state) *x509.CertPool {
	if c.extra == nil {
		return st.snap.CAPool
	}
	if r := c.last.Load(); r != nil && r.st == st {
		return r.pool
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.last.Load(); r != nil && (r.st == st || r.st.seq > st.seq) {
		return r.pool // built meanwhile, or for a newer state: trust that one
	}
	pool := rootsOf(st, c.extra)
	c.last.Store(&cachedRoots{st: st, pool: pool})
	return pool
}

var errNoServerName = errors.New("certstore: no server name to verify: set tls.Config.ServerName (needed when dialling an IP address)")

// verifyServer does what crypto/tls does for a client with static roots, against the current
// ones, and returns the verified chains.
func (s *Store) verifyServer(cs tls.ConnectionState, fallbackName string, timeFn func() time.Time, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("certstore: server sent no certificate")
	}
	name := cs.ServerName
	if name == "" {
		name = fallbackName
	}
	if name == "" {
		return nil, errNoServerName
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
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
	chains, err := cs.PeerCertificates[0].Verify(opts)
	if err == nil {
		chains, err = fipsAllowedChains(chains)
	}
	if err != nil {
		return nil, &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return chains, nil
}

// fipsAllowedChains keeps the chains crypto/tls accepts in FIPS 140-3 mode (every key RSA of
// at least 2048 bits, ECDSA on P-256/384/521 or Ed25519), as crypto/tls does for static roots.
func fipsAllowedChains(chains [][]*x509.Certificate) ([][]*x509.Certificate, error) {
	if !fips140.Enabled() {
		return chains, nil
	}
	var kept [][]*x509.Certificate
	for _, chain := range chains {
		if len(chain) > 0 && !slices.ContainsFunc(chain, func(c *x509.Certificate) bool { return !fipsAllowedKey(c) }) {
			kept = append(kept, chain)
		}
	}
	if len(kept) == 0 {
		return nil, errors.New("certstore: no FIPS compatible certificate chains found")
	}
	return kept, nil
}

func fipsAllowedKey(c *x509.Certificate) bool {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256() || k.Curve == elliptic.P384() || k.Curve == elliptic.P521()
	case ed25519.PublicKey:
		return true
	}
	return false
}
