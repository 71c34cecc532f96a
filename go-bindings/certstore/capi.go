package certstore

// This file is the only place that talks to the C ABI (include/certstore.h). The library is
// found through pkg-config (link_shared.go, link_static.go); without cgo, nocgo.go stands in.

/*
#include <stdlib.h>
#include "certstore.h"

// Defined in bridge.c: forwards the library's callback to the exported Go function.
extern void certstoreGoTrampoline(const certstore_event *event, uintptr_t user_data);
*/
import "C"

import (
	"math"
	"runtime/cgo"
	"sync/atomic"
	"time"
	"unsafe"
)

// newError turns a status code and an optional certstore_error into a Go error and frees the
// certstore_error. It returns nil for CERTSTORE_OK.
func newError(op string, code C.enum_certstore_code, cerr *C.certstore_error) error {
	if cerr != nil {
		defer C.certstore_error_free(cerr)
	}
	if code == C.CERTSTORE_OK {
		return nil
	}
	e := &Error{Op: op, Code: int(code), CodeName: C.GoString(C.certstore_code_name(C.int32_t(code)))}
	if cerr != nil {
		e.Message = C.GoString(C.certstore_error_message(cerr))
		e.Reason = reasonName(C.certstore_error_reason(cerr))
	}
	return e
}

// loadError is the *Error of a refused generation (status, RELOAD_FAILED event); cerr is
// borrowed.
func loadError(cerr *C.certstore_error) *Error {
	e := &Error{Op: "reload", Code: int(C.CERTSTORE_ERR_LOAD), CodeName: C.GoString(C.certstore_code_name(C.int32_t(C.CERTSTORE_ERR_LOAD)))}
	if cerr != nil {
		e.Message = C.GoString(C.certstore_error_message(cerr))
		e.Reason = reasonName(C.certstore_error_reason(cerr))
	}
	return e
}

// reasonName is the library's stable name of a refusal reason; "" for none.
func reasonName(r C.enum_certstore_reason) string {
	if r == C.CERTSTORE_REASON_NONE {
		return ""
	}
	return C.GoString(C.certstore_reason_name(C.int32_t(r)))
}

// storeHandle is the user data the library passes back to certstoreGoEvent. A type of its
// own so that store.go does not import runtime/cgo, which cannot be linked without cgo.
type storeHandle = cgo.Handle

func newStoreHandle(s *Store) storeHandle { return cgo.NewHandle(s) }

// cStore wraps the library's opaque store pointer so that files without cgo can hold it.
type cStore struct{ p *C.certstore_store }

// cOpen loads the initial files. It returns the store and nil, or nil and an *Error.
func cOpen(o Options) (*cStore, error) {
	var copts C.certstore_options
	C.certstore_options_init(&copts, C.size_t(unsafe.Sizeof(copts)))

	cert := C.CString(o.CertFile)
	defer C.free(unsafe.Pointer(cert))
	key := C.CString(o.KeyFile)
	defer C.free(unsafe.Pointer(key))
	copts.cert_path = cert
	copts.key_path = key
	if o.CAFile != "" {
		ca := C.CString(o.CAFile)
		defer C.free(unsafe.Pointer(ca))
		copts.ca_path = ca
	}
	copts.watch = 1
	if o.DisableWatch {
		copts.watch = 0
	}
	switch {
	case o.ReloadInterval < 0:
		copts.reread_interval_ms = 0 // disabled
	case o.ReloadInterval > 0:
		ms := (o.ReloadInterval + time.Millisecond - 1) / time.Millisecond
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		copts.reread_interval_ms = C.uint32_t(ms)
	}
	if o.MaxFileSize > 0 {
		copts.max_file_size = C.uint64_t(o.MaxFileSize)
	}
	if o.AllowInvalidValidity {
		copts.validity = C.CERTSTORE_VALIDITY_IGNORE
	}

	var cs *C.certstore_store
	var cerr *C.certstore_error
	code := C.certstore_load(&copts, &cs, &cerr)
	if err := newError("load", code, cerr); err != nil {
		return nil, err
	}
	return &cStore{p: cs}, nil
}

func cSubscribe(cs *cStore, h cgo.Handle) (uint64, error) {
	var id C.uint64_t
	code := C.certstore_subscribe(cs.p, C.certstore_callback(C.certstoreGoTrampoline), C.uintptr_t(h), &id)
	if err := newError("subscribe", code, nil); err != nil {
		return 0, err
	}
	return uint64(id), nil
}

func cUnsubscribe(cs *C.certstore_store, id uint64) error {
	return newError("unsubscribe", C.certstore_unsubscribe(cs, C.uint64_t(id)), nil)
}

func cFree(cs *C.certstore_store) error {
	return newError("free", C.certstore_free(cs), nil)
}

// generationCounter is the library's generation counter, readable with an atomic load and
// no cgo call (the handshake path compares it with the generation Go serves). It stays valid
// after the store is freed, until release.
type generationCounter struct{ p *C.uint64_t }

func cGenerationCounter(cs *cStore) generationCounter {
	return generationCounter{p: C.certstore_generation_counter_acquire(cs.p)}
}

func (g generationCounter) load() uint64 {
	if g.p == nil {
		return 0
	}
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(g.p)))
}

func (g generationCounter) release() {
	C.certstore_generation_counter_release(g.p)
}

func cGeneration(cs *C.certstore_store) uint64 {
	return uint64(C.certstore_generation(cs))
}

func cReload(cs *C.certstore_store) error {
	var cerr *C.certstore_error
	code := C.certstore_reload(cs, &cerr)
	return newError("reload", code, cerr)
}

// cStatus returns the library's counters and the reason of the last failed reload (nil when
// the last reload succeeded).
func cStatus(cs *C.certstore_store) (Status, error) {
	var info C.certstore_status_info
	info.struct_size = C.uint32_t(unsafe.Sizeof(info))
	var cerr *C.certstore_error
	code := C.certstore_status(cs, &info, &cerr)
	if code != C.CERTSTORE_OK {
		return Status{}, newError("status", code, cerr)
	}
	st := Status{
		Generation:    uint64(info.generation),
		ReloadsOK:     uint64(info.reloads_ok),
		ReloadsFailed: uint64(info.reloads_failed),
		LastSuccess:   unixMilli(int64(info.last_success_unix_ms)),
		LastFailure:   unixMilli(int64(info.last_failure_unix_ms)),
	}
	if info.not_after_unix != 0 {
		st.NotAfter = time.Unix(int64(info.not_after_unix), 0)
	}
	// The library fills a version's fields only when it knows them (struct_size comes back
	// as the number of bytes it wrote): an older library leaves them zero.
	if info.struct_size >= C.CERTSTORE_STATUS_INFO_V2_SIZE {
		st.DiskDiffers = info.disk_differs != 0
		if st.DiskDiffers {
			st.DiskReason = reasonName(C.enum_certstore_reason(info.disk_reason))
			st.DiskDiffersSince = unixMilli(int64(info.disk_differs_since_unix_ms))
		}
		st.DiskSerial = C.GoString(&info.disk_serial[0])
		if info.disk_not_after_unix != 0 {
			st.DiskNotAfter = time.Unix(int64(info.disk_not_after_unix), 0)
		}
		st.WatchDegraded = info.watch_degraded != 0
		st.LastReloadDuration = time.Duration(info.last_reload_duration_us) * time.Microsecond
	}
	if info.struct_size >= C.CERTSTORE_STATUS_INFO_V3_SIZE {
		st.WatchRepairs = uint64(info.watch_repairs)
		st.EventsDropped = uint64(info.events_dropped)
	}
	if cerr != nil {
		st.LastError = loadError(cerr)
		C.certstore_error_free(cerr)
	}
	return st, nil
}

func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// cCurrent copies the current snapshot if its generation is newer than have, and frees it at
// once. It returns nil, nil when the generation is not newer.
func cCurrent(cs *C.certstore_store, have uint64) (*rawSnapshot, error) {
	var snap *C.certstore_snapshot
	code := C.certstore_get_current(cs, &snap)
	if err := newError("get_current", code, nil); err != nil {
		return nil, err
	}
	defer C.certstore_snapshot_free(snap)

	gen := uint64(C.certstore_snapshot_generation(snap))
	if gen <= have {
		return nil, nil
	}
	r := &rawSnapshot{
		generation: gen,
		notBefore:  time.Unix(int64(C.certstore_snapshot_not_before(snap)), 0),
		notAfter:   time.Unix(int64(C.certstore_snapshot_not_after(snap)), 0),
		serial:     C.GoString(C.certstore_snapshot_serial(snap)),
	}
	var n C.size_t
	if p := C.certstore_snapshot_cert_pem(snap, &n); p != nil {
		r.certPEM = C.GoBytes(unsafe.Pointer(p), C.int(n))
	}
	if p := C.certstore_snapshot_key_pem(snap, &n); p != nil {
		r.keyPEM = C.GoBytes(unsafe.Pointer(p), C.int(n))
	}
	if p := C.certstore_snapshot_ca_pem(snap, &n); p != nil && n > 0 {
		r.caPEM = C.GoBytes(unsafe.Pointer(p), C.int(n))
	}
	if p := C.certstore_snapshot_fingerprint_sha256(snap); p != nil {
		copy(r.fingerprint[:], C.GoBytes(unsafe.Pointer(p), C.CERTSTORE_SHA256_LEN))
	}
	if n := int(C.certstore_snapshot_ca_count(snap)); n > 0 {
		r.caNotAfter = make([]time.Time, n)
		for i := range n {
			r.caNotAfter[i] = time.Unix(int64(C.certstore_snapshot_ca_not_after(snap, C.size_t(i))), 0)
		}
	}
	return r, nil
}

// certstoreGoEvent is called by the library's notifier thread (through bridge.c) with the
// cgo.Handle of a *Store as user data. It must never panic: a Go panic cannot unwind through
// the Rust frames below it and would take the process down.
//
//export certstoreGoEvent
func certstoreGoEvent(ev *C.certstore_event, userData C.uintptr_t) {
	defer func() { _ = recover() }()
	if ev == nil || userData == 0 {
		return
	}
	s, ok := cgo.Handle(userData).Value().(*Store)
	if !ok {
		return
	}
	switch ev.kind {
	case C.CERTSTORE_EVENT_ROTATED:
		rotated := Event{Kind: EventRotated, Generation: uint64(ev.generation)}
		if ev.snapshot != nil {
			rotated.Serial = C.GoString(C.certstore_snapshot_serial(ev.snapshot))
			rotated.NotAfter = time.Unix(int64(C.certstore_snapshot_not_after(ev.snapshot)), 0)
		}
		s.onRotated(rotated)
	case C.CERTSTORE_EVENT_RELOAD_FAILED:
		e := loadError(ev.error)
		s.enqueue(Event{Kind: EventReloadFailed, Generation: uint64(ev.generation), Err: e, Reason: e.Reason})
	case C.CERTSTORE_EVENT_WATCH_DEGRADED:
		out := Event{Kind: EventWatchDegraded, Generation: uint64(ev.generation)}
		if ev.error != nil {
			e := &Error{Op: "watch", Code: int(C.CERTSTORE_ERR_WATCH), CodeName: C.GoString(C.certstore_code_name(C.int32_t(C.CERTSTORE_ERR_WATCH))),
				Message: C.GoString(C.certstore_error_message(ev.error)), Reason: reasonName(C.certstore_error_reason(ev.error))}
			out.Err, out.Reason = e, e.Reason
		}
		s.enqueue(out)
	case C.CERTSTORE_EVENT_WATCH_RESTORED:
		s.enqueue(Event{Kind: EventWatchRestored, Generation: uint64(ev.generation)})
	case C.CERTSTORE_EVENT_WATCH_REPAIRED:
		out := Event{Kind: EventWatchRepaired, Generation: uint64(ev.generation)}
		if ev.path != nil {
			out.Path = C.GoString(ev.path)
		}
		s.enqueue(out)
	case C.CERTSTORE_EVENT_EVENTS_DROPPED:
		s.enqueue(Event{Kind: EventEventsDropped, Generation: uint64(ev.generation), Count: uint64(ev.count)})
	default:
		// A kind added by a newer library: informational, passed on with its number.
		s.enqueue(Event{Kind: EventKind(ev.kind), Generation: uint64(ev.generation)})
	}
}

// Version returns the version string of the linked Rust library.
func Version() string {
	return C.GoString(C.certstore_version())
}
