package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"
)

// RevokeReason says why a ConnGuard closed a connection.
type RevokeReason string

const (
	// RevokedCARemoved: the peer's chain no longer verifies against the current trust (its CA
	// left the bundle, or a CA overlap ended).
	RevokedCARemoved RevokeReason = "ca_removed"
	// RevokedPeerExpired: the peer's certificate (or a certificate of its chain) reached its
	// notAfter.
	RevokedPeerExpired RevokeReason = "peer_expired"
)

// Revocation describes a connection a ConnGuard closed.
type Revocation struct {
	Reason RevokeReason
	// Subject, Serial (lowercase hex) and NotAfter of the peer's leaf.
	Subject  string
	Serial   string
	NotAfter time.Time
	// RemoteAddr is the peer's address.
	RemoteAddr net.Addr
	// Err is why the chain no longer verifies.
	Err error
}

// GuardOptions configure a ConnGuard.
type GuardOptions struct {
	// Client says the guarded connections are a client's: the peer is a server, whose chain
	// is verified for server authentication against the current roots plus ExtraRoots (the
	// roots of the config the client dialled with, e.g. the system pool). Its name was
	// checked at the handshake and cannot change; only trust and time are checked again.
	// Otherwise the peers are clients, verified for client authentication against the
	// current client CAs.
	Client     bool
	ExtraRoots *x509.CertPool
	// OnRevoke, when set, is called once per connection the guard closed, after closing it,
	// on the guard's goroutine and with no lock held. A slow OnRevoke delays later checks;
	// it must not call the guard's Close (which waits for that goroutine).
	OnRevoke func(Revocation)
}

// ConnGuard ends the live TLS connections whose peer no longer verifies. crypto/tls checks a
// peer's chain at the handshake only; a connection then lives as long as the peer keeps it,
// so a CA removed from the bundle, or a client certificate past its notAfter, would keep being
// served. The guard re-checks each watched connection's verified chain against the Store's
// trust about 300 ms after that trust changes (a new CA bundle, the end of a CA overlap: nothing
// is revoked before the overlap ends; see trustSettle), and at the earliest notAfter among
// the watched chains (one timer for all connections). A connection whose chain no longer verifies is closed
// (the underlying connection, so a blocked Read returns at once): an HTTP server drops it,
// a gRPC server fails its RPCs with Unavailable, and the peer handshakes again with what it
// has now. Peers whose chain still verifies are never touched; connections without verified
// chains (no client certificate under VerifyClientCertIfGiven, RequestClientCert, no client
// auth) are not watched, so never revoked.
//
// Nothing runs per read or write: the cost is one x509 verification per connection and trust
// change, and a connection registered in a map.
type ConnGuard struct {
	s        *Store
	usage    x509.ExtKeyUsage
	extra    *x509.CertPool
	onRevoke func(Revocation)

	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	conns  map[*guardedConn]struct{}
	timer  *time.Timer
	nextAt time.Time // when the timer fires; zero when stopped
	closed bool
}

// NewConnGuard starts a guard following the trust of s. Close it when done (it does not
// close the connections it watches).
func (s *Store) NewConnGuard(o GuardOptions) *ConnGuard {
	g := &ConnGuard{
		s:        s,
		usage:    x509.ExtKeyUsageClientAuth,
		extra:    o.ExtraRoots,
		onRevoke: o.OnRevoke,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		conns:    map[*guardedConn]struct{}{},
	}
	if o.Client {
		g.usage = x509.ExtKeyUsageServerAuth
	}
	g.timer = time.NewTimer(time.Hour)
	g.timer.Stop()
	s.mu.Lock()
	if s.guards == nil {
		s.guards = map[*ConnGuard]struct{}{}
	}
	s.guards[g] = struct{}{}
	s.mu.Unlock()
	go g.run()
	return g
}

// Close stops the guard; the connections it watched stay open. Idempotent.
func (g *ConnGuard) Close() {
	g.s.mu.Lock()
	delete(g.s.guards, g)
	g.s.mu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.conns = map[*guardedConn]struct{}{}
	g.timer.Stop()
	g.mu.Unlock()
	close(g.stop)
	<-g.done
}

// Watched returns how many connections the guard watches now.
func (g *ConnGuard) Watched() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// guardedConn is the connection under the TLS layer: closing it ends the TLS connection, and
// its Close (by whoever owns the connection) ends the watch.
type guardedConn struct {
	net.Conn
	g        *ConnGuard
	trustSeq uint64 // the trust the chain is known to verify against

	// Set by Watch, then owned by the guard's goroutine.
	leaf      *x509.Certificate
	inter     *x509.CertPool
	roots     *x509.CertPool // without a CA file: the roots the handshake found (static)
	expiresAt time.Time
}

func (c *guardedConn) Close() error {
	c.g.forget(c)
	return c.Conn.Close()
}

// Wrap returns conn wrapped for the guard: run the TLS handshake over the result (tls.Server,
// tls.Client, gRPC transport credentials), then pass it with the handshake's state to Watch.
func (g *ConnGuard) Wrap(conn net.Conn) net.Conn {
	return &guardedConn{Conn: conn, g: g, trustSeq: g.s.current().trustSeq}
}

// Watch starts watching conn (returned by Wrap) whose handshake produced cs. A connection
// without verified chains is not watched. Closing conn ends the watch.
func (g *ConnGuard) Watch(conn net.Conn, cs tls.ConnectionState) {
	c, ok := conn.(*guardedConn)
	if !ok || c.g != g || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return
	}
	c.leaf = cs.PeerCertificates[0]
	c.inter = x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		c.inter.AddCert(ic)
	}
	c.roots = x509.NewCertPool()
	for _, chain := range cs.VerifiedChains {
		c.roots.AddCert(chain[len(chain)-1])
	}
	c.expiresAt = chainsExpiry(cs.VerifiedChains)
	handshakeTrust := c.trustSeq

	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.conns[c] = struct{}{}
	g.armLocked(c.expiresAt)
	g.mu.Unlock()
	if handshakeTrust != g.s.current().trustSeq {
		// The trust changed since the handshake chose its CAs: check this one now.
		g.wakeUp()
	}
}

// Listener returns a listener serving TLS with cfg on the connections inner accepts, whose
// verified clients are watched. cfg must come from the same Store (ServerTLSConfig,
// GRPCServerTLSConfig, ServerTLSConfigSNI): the guard checks the clients against that Store's
// current client CAs, so a client verified by other CAs would be closed at the next trust
// change. It returns *tls.Conn, as tls.NewListener does, so net/http serves HTTP/2 through it
// as usual; sessions resume as with tls.NewListener.
func (g *ConnGuard) Listener(inner net.Listener, cfg *tls.Config) net.Listener {
	// One outer config for the listener: crypto/tls encrypts session tickets with the keys of
	// the config GetConfigForClient returns when it has explicit ones, else with the outer
	// config's automatic keys, which a config per connection would renew every time.
	outer := &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		chosen := cfg
		if cfg.GetConfigForClient != nil {
			got, err := cfg.GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			if got != nil {
				chosen = got
			}
		}
		conn, ok := hello.Conn.(*guardedConn) // what Accept handed to tls.Server
		if !ok {
			return chosen, nil
		}
		// VerifyConnection registers this connection with the chains crypto/tls verified
		// (resumed sessions included). Should the handshake fail after it, the server closes
		// the connection, which ends the watch.
		chosen = chosen.Clone()
		userVerify := chosen.VerifyConnection
		chosen.VerifyConnection = func(cs tls.ConnectionState) error {
			if userVerify != nil {
				if err := userVerify(cs); err != nil {
					return err
				}
			}
			g.Watch(conn, cs)
			return nil
		}
		return chosen, nil
	}}
	return &guardListener{Listener: inner, g: g, outer: outer}
}

type guardListener struct {
	net.Listener
	g     *ConnGuard
	outer *tls.Config
}

func (l *guardListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(l.g.Wrap(raw), l.outer), nil
}

// chainsExpiry is when the last of the chains stops being valid.
func chainsExpiry(chains [][]*x509.Certificate) time.Time {
	var last time.Time
	for _, chain := range chains {
		end := chain[0].NotAfter
		for _, c := range chain[1:] {
			if c.NotAfter.Before(end) {
				end = c.NotAfter
			}
		}
		if end.After(last) {
			last = end
		}
	}
	return last
}

// trustSettle is how long the guard waits after a trust change before checking against the
// trust current then: a CA bundle written in place (not by a rename) can be read half-way,
// and the store then serves a valid bundle lacking a CA until the next read. Closing every
// peer of that CA at once would end connections the final bundle still trusts. Short enough
// that a real removal closes them within a second.
var trustSettle = 300 * time.Millisecond

func (g *ConnGuard) wakeUp() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// armLocked makes the timer fire at the latest just after at (x509 accepts a certificate
// until the end of its notAfter instant).
func (g *ConnGuard) armLocked(at time.Time) {
	at = at.Add(time.Millisecond)
	if !g.nextAt.IsZero() && !at.Before(g.nextAt) {
		return
	}
	g.nextAt = at
	g.timer.Reset(max(0, at.Sub(g.s.now())))
}

func (g *ConnGuard) forget(c *guardedConn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

func (g *ConnGuard) run() {
	defer close(g.done)
	for {
		select {
		case <-g.stop:
			return
		case <-g.wake:
			settle := time.NewTimer(trustSettle)
			select {
			case <-g.stop:
				settle.Stop()
				return
			case <-settle.C:
			}
			// check reads the trust current now: the wake-ups of the changes made meanwhile
			// are answered by it.
			select {
			case <-g.wake:
			default:
			}
		case <-g.timer.C:
			g.mu.Lock()
			g.nextAt = time.Time{}
			g.mu.Unlock()
		}
		g.check()
	}
}

// check verifies the chain of every connection that was verified against an older trust, or
// whose chain has expired by now, and closes those that fail.
func (g *ConnGuard) check() {
	st := g.s.current()
	now := g.s.now()
	g.mu.Lock()
	due := make([]*guardedConn, 0, len(g.conns))
	for c := range g.conns {
		if c.trustSeq != st.trustSeq || !now.Before(c.expiresAt) {
			due = append(due, c)
		}
	}
	g.mu.Unlock()

	var revoked []Revocation
	trust := g.trust(st)
	for _, c := range due {
		roots := trust
		if roots == nil {
			roots = c.roots
		}
		chains, err := c.leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: c.inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{g.usage},
		})
		if err == nil {
			g.mu.Lock()
			c.trustSeq, c.expiresAt = st.trustSeq, chainsExpiry(chains)
			g.mu.Unlock()
			continue
		}
		g.forget(c)
		_ = c.Conn.Close()
		reason := RevokedCARemoved
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			reason = RevokedPeerExpired
		}
		revoked = append(revoked, Revocation{
			Reason:     reason,
			Subject:    c.leaf.Subject.String(),
			Serial:     c.leaf.SerialNumber.Text(16),
			NotAfter:   c.leaf.NotAfter,
			RemoteAddr: c.RemoteAddr(),
			Err:        err,
		})
	}

	g.mu.Lock()
	if !g.closed {
		g.nextAt = time.Time{}
		g.timer.Stop()
		for c := range g.conns {
			g.armLocked(c.expiresAt)
		}
	}
	g.mu.Unlock()
	if g.onRevoke != nil {
		for _, r := range revoked {
			g.onRevoke(r)
		}
	}
}

// trust is what connections are checked against: the Store's current CAs (plus ExtraRoots
// on a client). nil without a CA file: each connection is then checked against the roots its
// handshake found, which cannot change (only time is checked).
func (g *ConnGuard) trust(st *state) *x509.CertPool {
	switch {
	case !st.hasCA:
		return nil
	case g.usage == x509.ExtKeyUsageServerAuth:
		return rootsOf(st, g.extra)
	}
	return st.snap.CAPool
}
