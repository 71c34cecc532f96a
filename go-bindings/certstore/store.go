package certstore

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options says which files a Store serves and how it watches them.
type Options struct {
	// CertFile is the PEM certificate chain, leaf first. KeyFile is its unencrypted PEM
	// private key. CAFile is an optional PEM CA bundle: the client CAs of a server config,
	// the roots of a client config.
	CertFile, KeyFile, CAFile string
	// DisableWatch turns off the inotify watch on the parent directories (the fast path).
	DisableWatch bool
	// ReloadInterval is the safety re-read of the files (content compared by hash).
	// 0 means the default (1m); a negative value disables it.
	ReloadInterval time.Duration
	// MaxFileSize is the largest file accepted, in bytes. 0 means the default (1 MiB).
	MaxFileSize int64
	// AllowInvalidValidity serves a leaf outside its validity window (expired or not yet
	// valid) instead of refusing it. For tests and devices without a clock.
	AllowInvalidValidity bool
	// CAOverlap keeps trusting the previous CA bundle this long after the CA bundle changed,
	// so peers that have not rotated yet are not cut off. 0 means no overlap.
	CAOverlap time.Duration
}

// Snapshot is one validated generation of the files, as Go values. It is immutable: do not
// modify what it points to.
type Snapshot struct {
	// Certificate is the chain and key, with Leaf set.
	Certificate tls.Certificate
	// CACerts are the certificates of the current CA bundle (nil without a CA file).
	CACerts []*x509.Certificate
	// CANotAfter is the notAfter of each certificate of CACerts, in the same order, as the
	// library read it from the DER it validated.
	CANotAfter []time.Time
	// CAPool is the current trust: CACerts plus, during a CA overlap, the previous bundle.
	// nil without a CA file.
	CAPool *x509.CertPool
	// Generation counts published generations, starting at 1.
	Generation uint64
	// NotBefore and NotAfter are the validity window of the leaf.
	NotBefore, NotAfter time.Time
	// Serial is the leaf serial number in lowercase hex.
	Serial string
	// FingerprintSHA256 is the SHA-256 of the leaf DER.
	FingerprintSHA256 [32]byte
}

// EventKind says what happened to a Store.
type EventKind int

const (
	// EventRotated: a new generation is served.
	EventRotated EventKind = iota + 1
	// EventReloadFailed: new files were refused; the previous generation is still served.
	EventReloadFailed
	// EventWatchDegraded: inotify cannot watch (all of) the files; the store re-reads them
	// on a timer until the watch is back. Err says why.
	EventWatchDegraded
	// EventWatchRestored: every watch is in place again.
	EventWatchRestored
	// EventWatchRepaired: a watch had died without an event (an ancestor directory replaced),
	// found by any reload or by a re-read that found a generation no inotify event announced;
	// the store's watches were rebuilt and its files are read again. Path names the directory
	// whose watch was re-added.
	EventWatchRepaired
	// EventEventsDropped: the library discarded Count events of this store because its
	// subscribers were too slow (more than the library's CERTSTORE_MAX_QUEUED_EVENTS waiting; never the
	// latest generation).
	EventEventsDropped
)

func (k EventKind) String() string {
	switch k {
	case EventRotated:
		return "rotated"
	case EventReloadFailed:
		return "reload-failed"
	case EventWatchDegraded:
		return "watch-degraded"
	case EventWatchRestored:
		return "watch-restored"
	case EventWatchRepaired:
		return "watch-repaired"
	case EventEventsDropped:
		return "events-dropped"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is delivered to Subscribe callbacks. A kind this package does not know (added by a
// newer library) is delivered with only Kind and Generation set; treat it as informational.
type Event struct {
	Kind EventKind
	// Generation is the new generation (EventRotated) or the one still served
	// (EventReloadFailed).
	Generation uint64
	// Serial (lowercase hex) and NotAfter of the new leaf (EventRotated only): every
	// generation is announced with its own facts, even when two rotations follow closely.
	Serial   string
	NotAfter time.Time
	// Err says why a reload failed (EventReloadFailed) or the watch degraded
	// (EventWatchDegraded).
	Err error
	// Reason is the stable name of why (e.g. "key_mismatch", the values of Error.Reason);
	// "" for other kinds.
	Reason string
	// Path is the directory whose watch was re-added (EventWatchRepaired only).
	Path string
	// Count is how many events the library discarded (EventEventsDropped only).
	Count uint64
}

// Status is a point-in-time view of a Store's counters.
type Status struct {
	Generation, ReloadsOK, ReloadsFailed uint64
	LastSuccess, LastFailure             time.Time
	// LastError is the reason of the last failed reload, nil when the last reload succeeded.
	LastError error
	// NotAfter is the end of the validity window of the served leaf, Serial its serial
	// number (lowercase hex).
	NotAfter time.Time
	Serial   string

	// DiskDiffers is true while the files on disk hold something other than the served
	// generation (refused, or being retried): the classic "served is not what is on disk".
	DiskDiffers bool
	// DiskReason is the stable name of why the disk generation is not served (the values of
	// Error.Reason, e.g. "key_mismatch"); "" while disk and served agree.
	DiskReason string
	// DiskDiffersSince is when the disk began to differ; zero while they agree.
	DiskDiffersSince time.Time
	// DiskSerial (lowercase hex) and DiskNotAfter describe the leaf on disk when it parsed,
	// refused or not; "" and zero when it did not.
	DiskSerial   string
	DiskNotAfter time.Time
	// WatchDegraded is true while inotify cannot watch (all of) the files and the store
	// re-reads them on a timer instead.
	WatchDegraded bool
	// LastReloadDuration is how long the library's last reload took to read and validate
	// the files (0 from a library that does not say).
	LastReloadDuration time.Duration
	// WatchRepairs counts the times the store's watches were found dead and rebuilt (each
	// also an EventWatchRepaired); 0 from a library that does not say.
	WatchRepairs uint64
	// EventsDropped counts the events the library discarded because the subscribers were
	// too slow (each discard also reported by an EventEventsDropped).
	EventsDropped uint64
}

// Error is an error reported by the Rust library.
type Error struct {
	Op       string // "load", "reload", ...
	Code     int    // certstore_code
	CodeName string // e.g. "CERTSTORE_ERR_LOAD"
	Message  string // human-readable reason, names the file
	// Reason is the library's stable name of why the files were refused: key_mismatch,
	// expired, not_yet_valid, encrypted_key, unsupported_key, parse_error, too_large,
	// not_regular_file, missing, io_error, other; "" when the library gave none.
	Reason string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "certstore: " + e.Op + ": " + e.CodeName
	}
	return "certstore: " + e.Op + ": " + e.Message
}

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("certstore: store is closed")

// state is what the handshake path reads with one atomic load: a generation plus the trust
// that goes with it. It is replaced, never modified; a CA overlap ending replaces it too
// (same generation, smaller pool).
type state struct {
	seq    uint64 // increases with every state installed
	snap   *Snapshot
	hasCA  bool
	caHash [32]byte
	prevCA []*x509.Certificate // previous CA bundle during an overlap, else nil
	dropAt int64               // unix nanoseconds when prevCA is dropped; 0 = no overlap
	// trustSeq increases with every change of the trusted CAs (a new bundle, the end of an
	// overlap), not with a new leaf or ticket key: ConnGuards re-check connections on it.
	trustSeq uint64
	// ticketKeys are the session ticket keys, newest first, shared by every generation.
	ticketKeys [][32]byte
}

// Session ticket keys: a new one every day, each kept a week (what crypto/tls does with its
// automatic keys, which a config cached per generation cannot use).
const (
	ticketKeyRotation = 24 * time.Hour
	ticketKeysKept    = 7
)

// Store serves the current generation of a certificate, key and optional CA bundle, following
// rotations on disk. Its methods are safe for concurrent use.
type Store struct {
	opts Options
	now  func() time.Time // injectable for tests

	// cmu guards c: cgo calls hold it for reading, Close takes it for writing.
	cmu    sync.RWMutex
	c      *cStore
	closed atomic.Bool
	once   sync.Once

	handle storeHandle
	subID  uint64
	// libGeneration is the library's counter: the handshake path compares it with the
	// generation it serves, so correctness never depends on the callback having run.
	libGeneration generationCounter
	// unusableGen is a generation Go could not turn into a tls.Certificate; the handshake
	// path does not retry it.
	unusableGen atomic.Uint64

	// mu serializes rebuilding the state (never held by the handshake path).
	mu           sync.Mutex
	st           atomic.Pointer[state]
	seq          uint64
	overlapTimer *time.Timer
	ticketTimer  *time.Timer
	ticketKeys   [][32]byte
	bindings     []*serverBinding
	trustSeq     uint64
	guards       map[*ConnGuard]struct{} // woken (never called) when the trust changes

	// Go subscribers run on a dispatcher goroutine, never on the library's thread.
	evMu    sync.Mutex
	evQueue []Event
	subs    map[uint64]*subscriber
	nextSub uint64
	evWake  chan struct{}
	evStop  chan struct{}
	evDone  chan struct{} // closed when dispatch returns
	inFn    atomic.Bool   // dispatch is calling a subscriber
}

type subscriber struct {
	fn       func(Event)
	canceled atomic.Bool
}

// Open loads and validates the files and starts following them. It fails with an *Error that
// names the file and the reason when the initial files are unusable.
func Open(o Options) (*Store, error) {
	return open(o, time.Now)
}

// open is Open with an injectable clock (tests drive CA overlaps with it).
func open(o Options, now func() time.Time) (*Store, error) {
	s := &Store{
		opts:   o,
		now:    now,
		subs:   make(map[uint64]*subscriber),
		evWake: make(chan struct{}, 1),
		evStop: make(chan struct{}),
		evDone: make(chan struct{}),
	}
	// Session ticket keys belong to the Store, not to a generation, so a ticket issued
	// before a rotation still resumes after it.
	s.ticketKeys = make([][32]byte, 1)
	if _, err := rand.Read(s.ticketKeys[0][:]); err != nil {
		return nil, fmt.Errorf("certstore: session ticket key: %w", err)
	}

	cs, err := cOpen(o)
	if err != nil {
		return nil, err
	}
	s.c = cs
	s.libGeneration = cGenerationCounter(cs)
	// The counter outlives Close: configs handed out may still run handshakes afterwards.
	runtime.AddCleanup(s, generationCounter.release, s.libGeneration)
	go s.dispatch()
	s.handle = newStoreHandle(s)
	id, err := cSubscribe(cs, s.handle)
	if err != nil {
		_ = cFree(cs.p)
		s.handle.Delete()
		close(s.evStop)
		return nil, err
	}
	s.subID = id
	s.ticketTimer = time.AfterFunc(ticketKeyRotation, s.rotateTicketKeys)
	// Built after subscribing, so a rotation between load and subscribe is not missed.
	if err := s.refresh(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// current returns the state to serve, ending an expired CA overlap first. It does no cgo call
// and no allocation unless the library published a generation the notifier has not delivered
// yet (then this handshake installs it) or an overlap just ended.
func (s *Store) current() *state {
	st := s.st.Load()
	if lib := s.libGeneration.load(); lib > st.snap.Generation && lib != s.unusableGen.Load() {
		if err := s.refresh(); err != nil && !errors.Is(err, ErrClosed) {
			s.unusableGen.Store(lib)
		}
		st = s.st.Load()
	}
	if st.dropAt != 0 && s.now().UnixNano() >= st.dropAt {
		s.endOverlap()
		st = s.st.Load()
	}
	return st
}

// refresh installs the library's current generation if it is newer than the one Go holds.
func (s *Store) refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var have uint64
	if st := s.st.Load(); st != nil {
		have = st.snap.Generation
	}
	s.cmu.RLock()
	if s.c == nil {
		s.cmu.RUnlock()
		return ErrClosed
	}
	if have != 0 && cGeneration(s.c.p) <= have {
		s.cmu.RUnlock()
		return nil
	}
	raw, err := cCurrent(s.c.p, have)
	s.cmu.RUnlock()
	if err != nil || raw == nil {
		return err
	}
	snap, err := buildSnapshot(raw)
	if err != nil {
		return err
	}
	s.installLocked(snap)
	return nil
}

// installLocked builds the state for a new generation, with the CA overlap policy, and
// publishes it. s.mu is held.
func (s *Store) installLocked(snap *Snapshot) {
	old := s.st.Load()
	now := s.now()
	st := &state{snap: snap, ticketKeys: s.ticketKeys}
	if s.opts.CAFile != "" {
		st.hasCA = true
		h := sha256.New()
		for _, c := range snap.CACerts {
			h.Write(c.Raw)
		}
		copy(st.caHash[:], h.Sum(nil))
		switch {
		case old == nil:
		case old.caHash != st.caHash:
			if s.opts.CAOverlap > 0 {
				st.prevCA = old.snap.CACerts
				st.dropAt = now.Add(s.opts.CAOverlap).UnixNano()
			}
		case old.dropAt != 0 && now.UnixNano() < old.dropAt:
			st.prevCA, st.dropAt = old.prevCA, old.dropAt // same bundle: the overlap goes on
		}
		pool := x509.NewCertPool()
		for _, c := range snap.CACerts {
			pool.AddCert(c)
		}
		for _, c := range st.prevCA {
			pool.AddCert(c)
		}
		snap.CAPool = pool
	}
	s.publishLocked(st)
	if st.dropAt != 0 {
		if s.overlapTimer != nil {
			s.overlapTimer.Stop()
		}
		s.overlapTimer = time.AfterFunc(time.Duration(st.dropAt-now.UnixNano()), s.endOverlap)
	}
}

// publishLocked makes st the served state and prebuilds every server config for it, so the
// first handshake after a rotation does not pay for it. s.mu is held.
func (s *Store) publishLocked(st *state) {
	s.seq++
	st.seq = s.seq
	old := s.st.Load()
	if old == nil || old.caHash != st.caHash || len(old.prevCA) != len(st.prevCA) || old.dropAt != st.dropAt {
		s.trustSeq++
		for g := range s.guards {
			g.wakeUp()
		}
	}
	st.trustSeq = s.trustSeq
	s.st.Store(st)
	for _, b := range s.bindings {
		b.get(st)
	}
}

// endOverlap drops the previous CA bundle once its grace period is over.
func (s *Store) endOverlap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.st.Load()
	if old.dropAt == 0 || s.now().UnixNano() < old.dropAt {
		return
	}
	snap := *old.snap
	pool := x509.NewCertPool()
	for _, c := range snap.CACerts {
		pool.AddCert(c)
	}
	snap.CAPool = pool
	s.publishLocked(&state{snap: &snap, hasCA: old.hasCA, caHash: old.caHash, ticketKeys: old.ticketKeys})
}

// rotateTicketKeys adds a new session ticket key in front and drops the oldest beyond a week.
func (s *Store) rotateTicketKeys() {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return // keep the current keys; try again next period
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return
	}
	keys := append([][32]byte{k}, s.ticketKeys...)
	s.ticketKeys = keys[:min(len(keys), ticketKeysKept)]
	st := *s.st.Load()
	st.ticketKeys = s.ticketKeys
	s.publishLocked(&st)
	s.ticketTimer.Reset(ticketKeyRotation)
}

// Current returns the generation being served. While the library holds a generation Go
// cannot use, that is still the previous one (Status says why). The returned Snapshot is the
// caller's: its CAPool is a copy.
func (s *Store) Current() (*Snapshot, error) {
	if err := s.refresh(); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		s.unusableGen.Store(s.libGeneration.load())
	}
	snap := *s.current().snap
	if snap.CAPool != nil {
		snap.CAPool = snap.CAPool.Clone()
	}
	snap.CACerts = append([]*x509.Certificate(nil), snap.CACerts...)
	snap.CANotAfter = append([]time.Time(nil), snap.CANotAfter...)
	return &snap, nil
}

// Generation returns the generation Go serves, without calling into the library.
func (s *Store) Generation() uint64 {
	if st := s.st.Load(); st != nil {
		return st.snap.Generation
	}
	return 0
}

// Reload re-reads the files now (e.g. on SIGHUP). It returns nil when the files are unchanged
// or a new generation was published; once it returns nil, new handshakes get that generation.
// A refused reload returns the reason; the previous generation is still served.
func (s *Store) Reload() error {
	s.cmu.RLock()
	if s.c == nil {
		s.cmu.RUnlock()
		return ErrClosed
	}
	err := cReload(s.c.p)
	s.cmu.RUnlock()
	if err != nil {
		return err
	}
	return s.refresh()
}

// Status returns the counters of the store. After Close it returns the last known generation
// and LastError ErrClosed.
func (s *Store) Status() Status {
	s.cmu.RLock()
	if s.c == nil {
		s.cmu.RUnlock()
		snap := s.st.Load().snap
		return Status{Generation: snap.Generation, NotAfter: snap.NotAfter, Serial: snap.Serial, LastError: ErrClosed}
	}
	st, err := cStatus(s.c.p)
	s.cmu.RUnlock()
	if err != nil {
		st.LastError = err
		return st
	}
	if st.Generation > s.Generation() {
		if err := s.refresh(); err != nil && !errors.Is(err, ErrClosed) {
			// The library published a generation Go could not turn into a tls.Certificate:
			// the previous one is still served, say so.
			st.LastError = err
			st.Generation = s.Generation()
			// What is served is then not what is on disk either.
			if !st.DiskDiffers {
				st.DiskDiffers, st.DiskReason, st.DiskDiffersSince = true, "other", st.LastSuccess
			}
		}
	}
	// What Go serves: after a refresh failure that is the previous generation, not the
	// library's. (A rotation landing just now leaves Serial empty rather than mismatched.)
	if snap := s.st.Load().snap; st.Generation == snap.Generation {
		st.Serial, st.NotAfter = snap.Serial, snap.NotAfter
	}
	return st
}

// Subscribe calls fn for every event, in order, on a goroutine of the Store (never on the
// library's thread, so fn may call any method, Close included). A slow fn delays later events
// but never a handshake. cancel returns at once and may be called from fn; a call of fn that
// was already being dispatched can still happen after cancel returned, so a subscriber that
// must not run past a point (e.g. a component's Shutdown) checks its own flag.
func (s *Store) Subscribe(fn func(Event)) (cancel func()) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if s.closed.Load() || fn == nil {
		return func() {}
	}
	s.nextSub++
	id := s.nextSub
	sub := &subscriber{fn: fn}
	s.subs[id] = sub
	return func() {
		sub.canceled.Store(true)
		s.evMu.Lock()
		delete(s.subs, id)
		s.evMu.Unlock()
	}
}

// testHookRotated, when set by a test, runs on the library's notifier thread before the
// rotation is handled (to hold the callback back).
var testHookRotated atomic.Pointer[func()]

func (s *Store) onRotated(rotated Event) {
	if hook := testHookRotated.Load(); hook != nil {
		(*hook)()
	}
	if err := s.refresh(); err != nil {
		if !errors.Is(err, ErrClosed) {
			// Validated by the library but unusable by crypto/tls (should not happen): keep
			// serving the previous generation and report it like a refused reload.
			s.enqueue(Event{Kind: EventReloadFailed, Generation: s.Generation(), Err: err})
		}
		return
	}
	s.enqueue(rotated)
}

func (s *Store) enqueue(ev Event) {
	s.evMu.Lock()
	if s.closed.Load() {
		s.evMu.Unlock()
		return
	}
	s.evQueue = append(s.evQueue, ev)
	s.evMu.Unlock()
	select {
	case s.evWake <- struct{}{}:
	default:
	}
}

func (s *Store) dispatch() {
	defer close(s.evDone)
	var subs []*subscriber
	for {
		select {
		case <-s.evWake:
		case <-s.evStop:
			return
		}
		for {
			s.evMu.Lock()
			if len(s.evQueue) == 0 || s.closed.Load() {
				s.evQueue = nil
				s.evMu.Unlock()
				break
			}
			ev := s.evQueue[0]
			s.evQueue = s.evQueue[1:]
			subs = subs[:0]
			for _, sub := range s.subs {
				subs = append(subs, sub)
			}
			s.evMu.Unlock()
			for _, sub := range subs {
				// inFn is set before closed is read, and Close sets closed before it reads
				// inFn: Close either sees this call or this call sees Close.
				s.inFn.Store(true)
				if !sub.canceled.Load() && !s.closed.Load() {
					sub.fn(ev)
				}
				s.inFn.Store(false)
			}
		}
	}
}

// Close stops watching the files and frees the library's store. It is idempotent. Configs
// made by ServerTLSConfig and ClientTLSConfig keep serving the last generation, so Close is
// safe while handshakes run. Subscribers receive no event after Close returns, except one
// already running. Close waits for the goroutine Open started to deliver events, unless a
// subscriber is running at that moment (Close may be called from a subscriber): then that
// goroutine ends as soon as the subscriber returns.
//
// A Store that is never closed is never freed: the library keeps watching its files, and its
// memory (the key included) and the event goroutine live until the process exits. Configs
// handed out hold it too, so there is no finalizer to rely on: call Close.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.evMu.Lock()
		s.closed.Store(true)
		s.evQueue = nil
		s.subs = map[uint64]*subscriber{}
		s.evMu.Unlock()
		close(s.evStop)
		if !s.inFn.Load() {
			<-s.evDone
		}

		// Unsubscribe with no lock held: it waits for a running callback, which takes s.mu
		// and s.cmu.
		s.cmu.RLock()
		cs := s.c
		s.cmu.RUnlock()
		if cs == nil {
			return
		}
		err = cUnsubscribe(cs.p, s.subID)
		s.handle.Delete()

		s.cmu.Lock()
		s.c = nil
		s.cmu.Unlock()
		if ferr := cFree(cs.p); err == nil {
			err = ferr
		}

		s.mu.Lock()
		if s.overlapTimer != nil {
			s.overlapTimer.Stop()
		}
		s.ticketTimer.Stop()
		s.mu.Unlock()
	})
	return err
}
