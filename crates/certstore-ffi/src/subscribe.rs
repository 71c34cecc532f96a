//! `certstore_subscribe` / `certstore_unsubscribe`: events on the notifier thread.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;

use certstore_core::{Event, SubscriptionId};

use crate::error::certstore_error;
use crate::snapshot::{borrowed, certstore_snapshot};
use crate::store::certstore_store;
use crate::{certstore_code, guard};

/// What happened: the values of certstore_event.kind (an int32_t, so the struct's layout does
/// not depend on how the compiler sizes enums, e.g. -fshort-enums).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum certstore_event_kind {
    /// A new generation validated and is served now.
    CERTSTORE_EVENT_ROTATED = 1,
    /// A reload was refused; the previous generation is still served.
    CERTSTORE_EVENT_RELOAD_FAILED = 2,
    /// inotify cannot watch (all of) the files (e.g. fs.inotify.max_user_watches is
    /// exhausted); the store re-reads them on a timer until the watch is back. `error` says why.
    CERTSTORE_EVENT_WATCH_DEGRADED = 3,
    /// Every watch is in place again after CERTSTORE_EVENT_WATCH_DEGRADED.
    CERTSTORE_EVENT_WATCH_RESTORED = 4,
    /// A watch had died without an event (e.g. an ancestor directory was replaced), found by
    /// any reload that saw the watched path name another directory, or by a re-read that found
    /// a generation no inotify event announced: the store's watches were rebuilt and its files
    /// are read again. `path` names the (first) directory whose watch was re-added; `error` is
    /// NULL. Counted in certstore_status_info.watch_repairs.
    CERTSTORE_EVENT_WATCH_REPAIRED = 5,
    /// The subscribers were too slow: `count` events of this store (refusals, watch changes;
    /// never the latest generation) were discarded, oldest first, because more than
    /// CERTSTORE_MAX_QUEUED_EVENTS waited.
    /// Delivered before the events that followed them. Counted in
    /// certstore_status_info.events_dropped.
    CERTSTORE_EVENT_EVENTS_DROPPED = 6,
}

/// The most undelivered events a store keeps for slow subscribers (the newest ROTATED among
/// them); beyond it the oldest other one is discarded (CERTSTORE_EVENT_EVENTS_DROPPED).
pub const CERTSTORE_MAX_QUEUED_EVENTS: u32 = 64;

const _: () = assert!(
    CERTSTORE_MAX_QUEUED_EVENTS as usize == certstore_core::MAX_QUEUED_PER_STORE,
    "CERTSTORE_MAX_QUEUED_EVENTS is the core's bound"
);

/// An event passed to a certstore_callback. Borrowed: valid only during the callback. Built by
/// the library, so later versions may append fields; read a field only for the kinds its
/// comment names.
#[repr(C)]
#[derive(Debug)]
pub struct certstore_event {
    /// What happened: a certstore_event_kind value (treat unknown kinds as informational).
    pub kind: i32,
    /// Reserved; zero.
    pub _reserved0: i32,
    /// The generation served after this event: ROTATED the new one, otherwise the one still
    /// served.
    pub generation: u64,
    /// RELOAD_FAILED and WATCH_DEGRADED: why (certstore_error_message(),
    /// certstore_error_reason(); do not free it). Otherwise NULL.
    pub error: *const certstore_error,
    /// ROTATED: the new generation, for the certstore_snapshot_* accessors (serial, notAfter,
    /// PEM). Borrowed: valid during the callback only, do not free it; to keep it, take a
    /// reference with certstore_snapshot_ref() (released by certstore_snapshot_free()).
    /// Otherwise NULL.
    pub snapshot: *const certstore_snapshot,
    /// WATCH_REPAIRED: the directory whose watch was re-added, NUL-terminated; borrowed, valid
    /// during the callback only. Otherwise NULL.
    pub path: *const libc::c_char,
    /// EVENTS_DROPPED: how many events were discarded. Otherwise 0.
    pub count: u64,
}

const _: () = assert!(
    std::mem::offset_of!(certstore_event, generation) == 8
        && std::mem::offset_of!(certstore_event, snapshot) == 24,
    "certstore_event's v1 fields moved"
);

/// A subscription callback. Runs on the library's notifier thread, with no library lock held,
/// one event at a time, in publication order. It may call any certstore function except
/// certstore_free() on its own store (which returns CERTSTORE_ERR_IN_CALLBACK). Keep it short:
/// it delays later events for every subscriber.
pub type certstore_callback =
    Option<unsafe extern "C" fn(event: *const certstore_event, user_data: libc::uintptr_t)>;

/// Calls `callback(event, user_data)` for every event from now on. Sets `*out_subscription`
/// to an id for certstore_unsubscribe(). `user_data` is passed through untouched (a pointer
/// cast to uintptr_t, or a Go cgo.Handle).
///
/// # Safety
/// `store` is NULL or live; `callback` is NULL or a function safe to call from another thread
/// with `user_data` until certstore_unsubscribe() or certstore_free() returns;
/// `out_subscription` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_subscribe(
    store: *mut certstore_store,
    callback: certstore_callback,
    user_data: libc::uintptr_t,
    out_subscription: *mut u64,
) -> certstore_code {
    if store.is_null() || out_subscription.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    let Some(callback) = callback else {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    };
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    let out_subscription = AssertUnwindSafe(out_subscription);
    guard(AssertUnwindSafe(|| {
        let id = store.store.subscribe(move |event: &Event| {
            use certstore_event_kind as K;
            let mut error = None;
            let mut snapshot = std::ptr::null();
            let mut path = None;
            let mut count = 0;
            let kind = match event {
                Event::Rotated { snapshot: s } => {
                    snapshot = borrowed(s);
                    K::CERTSTORE_EVENT_ROTATED
                }
                Event::ReloadFailed { error: e, .. } => {
                    error = Some(certstore_error::from_core(e));
                    K::CERTSTORE_EVENT_RELOAD_FAILED
                }
                Event::WatchDegraded { error: e, .. } => {
                    error = Some(certstore_error::from_core(e));
                    K::CERTSTORE_EVENT_WATCH_DEGRADED
                }
                Event::WatchRestored { .. } => K::CERTSTORE_EVENT_WATCH_RESTORED,
                Event::WatchRepaired { path: p, .. } => {
                    // A path holds no NUL byte; should one appear, the event still goes out.
                    path = CString::new(p.as_os_str().as_bytes()).ok();
                    K::CERTSTORE_EVENT_WATCH_REPAIRED
                }
                Event::EventsDropped { count: n, .. } => {
                    count = *n;
                    K::CERTSTORE_EVENT_EVENTS_DROPPED
                }
                _ => return,
            };
            let c_event = certstore_event {
                kind: kind as i32,
                _reserved0: 0,
                generation: event.generation(),
                error: error.as_ref().map_or(std::ptr::null(), |e| e as *const _),
                snapshot,
                path: path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                count,
            };
            // SAFETY: the subscriber promised `callback` may be called from this thread with
            // `user_data`; `c_event` and the error and path it points to outlive the call.
            unsafe { callback(&c_event, user_data) };
        });
        // SAFETY: non-NULL and writable (checked above).
        unsafe { out_subscription.write(id.0) };
        certstore_code::CERTSTORE_OK
    }))
}

/// Ends a subscription. When it returns, the callback is not running and will not be called
/// again — it waits for a running call to finish, so never call it while holding a lock your
/// callback takes. Called from inside the callback itself it returns at once. Returns
/// CERTSTORE_ERR_NOT_FOUND for an unknown (or already ended) id.
///
/// # Safety
/// `store` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_unsubscribe(
    store: *mut certstore_store,
    subscription: u64,
) -> certstore_code {
    if store.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    guard(AssertUnwindSafe(|| {
        if store.store.unsubscribe(SubscriptionId(subscription)) {
            certstore_code::CERTSTORE_OK
        } else {
            certstore_code::CERTSTORE_ERR_NOT_FOUND
        }
    }))
}
