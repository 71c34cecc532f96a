//! `certstore_store`: load, reload, status, generation, free.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arc_swap::ArcSwap;
use certstore_core::{Error, Event, Store};

use crate::error::{certstore_error, clear, fail};
use crate::options::{certstore_options, convert};
use crate::snapshot::certstore_snapshot;
use crate::{certstore_code, guard, guard_value};

/// A loaded certificate store. Opaque. Created by certstore_load(), destroyed by
/// certstore_free().
pub struct certstore_store {
    pub(crate) store: Store,
    /// The C view of the current generation, rebuilt once per generation, so that
    /// certstore_get_current() is a reference-count increment and allocates nothing.
    pub(crate) current_view: Arc<ArcSwap<certstore_snapshot>>,
}

/// Counters and outcome of reloads. Set struct_size to sizeof(certstore_status_info) before
/// calling certstore_status(); fields beyond struct_size are not written.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct certstore_status_info {
    /// sizeof(certstore_status_info) as the caller compiled it.
    pub struct_size: u32,
    /// Generation served now (1 after certstore_load()).
    pub generation: u64,
    /// Generations published, the initial load included.
    pub reloads_ok: u64,
    /// Reloads refused after retries (the last good generation kept being served).
    pub reloads_failed: u64,
    /// When the last generation was published, unix milliseconds; 0 = never.
    pub last_success_unix_ms: i64,
    /// When the last reload was refused, unix milliseconds; 0 = never.
    pub last_failure_unix_ms: i64,
    /// notAfter of the served leaf, unix seconds.
    pub not_after_unix: i64,
}

fn code_of(error: &Error) -> certstore_code {
    match error {
        Error::InvalidOptions(_) => certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT,
        Error::Watch { .. } => certstore_code::CERTSTORE_ERR_WATCH,
        Error::Internal(_) => certstore_code::CERTSTORE_ERR_PANIC,
        _ => certstore_code::CERTSTORE_ERR_LOAD,
    }
}

impl certstore_store {
    /// The C view of the generation served now.
    pub(crate) fn current_view(&self) -> Arc<certstore_snapshot> {
        let cached = self.current_view.load_full();
        if cached.generation() == self.store.generation() {
            return cached;
        }
        let fresh = Arc::new(certstore_snapshot::new(self.store.current()));
        // Two threads may both rebuild after a rotation; either result is correct.
        self.current_view.store(Arc::clone(&fresh));
        fresh
    }
}

/// Reads and validates the files named in `options`, then starts watching them.
///
/// On success returns CERTSTORE_OK, sets `*out_store` to a new store (free it with
/// certstore_free()) and `*out_error` to NULL. On failure sets `*out_store` to NULL and, when
/// `out_error` is not NULL, `*out_error` to an error naming the file and the reason (free it
/// with certstore_error_free()); returns CERTSTORE_ERR_LOAD for unreadable or invalid files,
/// CERTSTORE_ERR_INVALID_ARGUMENT for unusable options, CERTSTORE_ERR_WATCH when the watcher
/// cannot start. A refused file is retried after 5, 20, 80 and 320 ms before failing, so this
/// can take about half a second on bad input.
///
/// # Safety
/// `options` is NULL or a certstore_options prepared with certstore_options_init(), with
/// NUL-terminated path strings; `out_store` is NULL or writable; `out_error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_load(
    options: *const certstore_options,
    out_store: *mut *mut certstore_store,
    out_error: *mut *mut certstore_error,
) -> certstore_code {
    clear(out_error);
    if out_store.is_null() {
        return fail(
            out_error,
            certstore_code::CERTSTORE_ERR_NULL_ARGUMENT,
            "out_store is NULL",
        );
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { out_store.write(std::ptr::null_mut()) };
    if options.is_null() {
        return fail(
            out_error,
            certstore_code::CERTSTORE_ERR_NULL_ARGUMENT,
            "options is NULL",
        );
    }
    let out_store = AssertUnwindSafe(out_store);
    guard(move || {
        // SAFETY: `options` is non-NULL and prepared per the contract.
        let options = match unsafe { convert(options) } {
            Ok(o) => o,
            Err(why) => {
                return fail(
                    out_error,
                    certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT,
                    why,
                );
            }
        };
        match Store::open(options) {
            Ok(store) => {
                let view = Arc::new(ArcSwap::from_pointee(certstore_snapshot::new(
                    store.current(),
                )));
                // Refresh the view as soon as a rotation is published, so the previous
                // generation (and its key) is released without waiting for a reader.
                let refreshed = Arc::clone(&view);
                store.subscribe(move |event| {
                    if let Event::Rotated { snapshot } = event
                        && refreshed.load().generation() < snapshot.generation()
                    {
                        refreshed.store(Arc::new(certstore_snapshot::new(Arc::clone(snapshot))));
                    }
                });
                let handle = Box::into_raw(Box::new(certstore_store {
                    store,
                    current_view: view,
                }));
                // SAFETY: checked non-NULL above; writable per the contract.
                unsafe { out_store.write(handle) };
                certstore_code::CERTSTORE_OK
            }
            Err(error) => fail(out_error, code_of(&error), error.to_string()),
        }
    })
}

/// Reads the files now and publishes them if they changed and validate (e.g. on SIGHUP).
/// Synchronous: returns after the reload, CERTSTORE_OK when the files were published or
/// unchanged, CERTSTORE_ERR_LOAD with `*out_error` set when they were refused (the last good
/// generation is still served and subscribers get a RELOAD_FAILED event).
///
/// # Safety
/// `store` is NULL or a live store from certstore_load(); `out_error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_reload(
    store: *mut certstore_store,
    out_error: *mut *mut certstore_error,
) -> certstore_code {
    clear(out_error);
    if store.is_null() {
        return fail(
            out_error,
            certstore_code::CERTSTORE_ERR_NULL_ARGUMENT,
            "store is NULL",
        );
    }
    // SAFETY: non-NULL and live per the contract; only shared access is taken.
    let store = unsafe { &*store };
    guard(AssertUnwindSafe(|| match store.store.reload() {
        Ok(_) => certstore_code::CERTSTORE_OK,
        Err(error) => fail(out_error, code_of(&error), error.to_string()),
    }))
}

/// The generation served now: 1 after certstore_load(), +1 for each published rotation.
/// One atomic load; returns 0 for NULL.
///
/// # Safety
/// `store` is NULL or a live store from certstore_load().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_generation(store: *const certstore_store) -> u64 {
    if store.is_null() {
        return 0;
    }
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    guard_value(0, AssertUnwindSafe(|| store.store.generation()))
}

/// A pointer to the store's generation counter (the value certstore_generation() returns), for
/// callers that cannot afford a function call per read: Go's handshake path reads it instead
/// of making a cgo call. Read it only with an atomic acquire load, e.g.
/// `__atomic_load_n(counter, __ATOMIC_ACQUIRE)`; never write it. It stays valid until
/// certstore_generation_counter_release(), even after certstore_free(). NULL for NULL.
///
/// # Safety
/// `store` is NULL or a live store from certstore_load().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_generation_counter_acquire(
    store: *const certstore_store,
) -> *const u64 {
    if store.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    guard_value(
        std::ptr::null(),
        AssertUnwindSafe(|| Arc::into_raw(store.store.generation_counter()).cast::<u64>()),
    )
}

/// Releases a pointer from certstore_generation_counter_acquire(). NULL is a no-op.
///
/// # Safety
/// `counter` is NULL or from certstore_generation_counter_acquire(), released once, and not
/// read afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_generation_counter_release(counter: *const u64) {
    if counter.is_null() {
        return;
    }
    let counter = AssertUnwindSafe(counter);
    guard_value((), move || {
        // SAFETY: AtomicU64 has the same in-memory representation as u64; the pointer came
        // from Arc::into_raw in certstore_generation_counter_acquire and is released once.
        drop(unsafe { Arc::from_raw(counter.cast::<std::sync::atomic::AtomicU64>()) });
    });
}

/// Copies the reload counters into `*out_status` (up to out_status->struct_size bytes).
/// When `out_last_error` is not NULL it receives the reason of the most recent reload if that
/// reload was refused (free it with certstore_error_free()), or NULL if it succeeded.
///
/// # Safety
/// `store` is NULL or live; `out_status` is NULL or points to `struct_size` writable bytes;
/// `out_last_error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_status(
    store: *const certstore_store,
    out_status: *mut certstore_status_info,
    out_last_error: *mut *mut certstore_error,
) -> certstore_code {
    clear(out_last_error);
    if store.is_null() || out_status.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    // SAFETY: `out_status` is non-NULL and its first field is readable per the contract.
    let declared = unsafe { out_status.cast::<u32>().read_unaligned() } as usize;
    let ours = size_of::<certstore_status_info>();
    if declared < size_of::<u32>() {
        return certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT;
    }
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    let out_status = AssertUnwindSafe(out_status);
    guard(AssertUnwindSafe(|| {
        let status = store.store.status();
        let info = certstore_status_info {
            struct_size: ours.min(declared) as u32,
            generation: status.generation,
            reloads_ok: status.reloads_ok,
            reloads_failed: status.reloads_failed,
            last_success_unix_ms: status.last_success.map_or(0, certstore_core::unix_millis),
            last_failure_unix_ms: status.last_failure.map_or(0, certstore_core::unix_millis),
            not_after_unix: status.not_after,
        };
        // SAFETY: writes min(declared, ours) bytes; the caller provides `declared` writable
        // bytes and `info` has `ours` readable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&info as *const certstore_status_info).cast::<u8>(),
                out_status.cast::<u8>(),
                ours.min(declared),
            );
        }
        if let Some(error) = &status.last_error {
            fail(
                out_last_error,
                certstore_code::CERTSTORE_OK,
                error.to_string(),
            );
        }
        certstore_code::CERTSTORE_OK
    }))
}

/// Stops watching, delivers the events already queued (callbacks may still use `store`
/// meanwhile), waits for the last callback to return, and frees the store. Snapshots
/// obtained from it stay valid until their own certstore_snapshot_free(). NULL is a no-op.
/// Called from inside a subscription callback it frees nothing and returns
/// CERTSTORE_ERR_IN_CALLBACK (it would wait for itself). The caller must not use `store`
/// afterwards, nor call this while another thread still uses it.
///
/// # Safety
/// `store` is NULL or a live store from certstore_load(), not used by other threads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_free(store: *mut certstore_store) -> certstore_code {
    if store.is_null() {
        return certstore_code::CERTSTORE_OK;
    }
    // SAFETY: non-NULL and live per the contract.
    if unsafe { &*store }.store.in_callback() {
        return certstore_code::CERTSTORE_ERR_IN_CALLBACK;
    }
    let store = AssertUnwindSafe(store);
    guard(move || {
        // Stop through a shared reference first: callbacks still being delivered may call
        // certstore_get_current(store) and must find it whole.
        // SAFETY: non-NULL and live per the contract.
        unsafe { &**store }.store.shutdown();
        // SAFETY: came from Box::into_raw in certstore_load; the caller gives up the pointer,
        // and no callback runs any more.
        drop(unsafe { Box::from_raw(*store) });
        certstore_code::CERTSTORE_OK
    })
}
