//! `certstore_store`: load, reload, status, generation, free.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use certstore_core::{Error, Store};

use crate::error::{certstore_error, clear, fail, fail_with};
use crate::options::{certstore_options, convert, declared_size};
use crate::{certstore_code, certstore_reason, guard, guard_value};

/// A loaded certificate store. Opaque. Created by certstore_load(), destroyed by
/// certstore_free().
pub struct certstore_store {
    pub(crate) store: Store,
}

/// Counters, outcome of reloads, and what the disk holds compared with what is served. Set
/// struct_size to sizeof(certstore_status_info) before calling certstore_status(); the library
/// writes no byte past struct_size and sets struct_size to the number of bytes it filled.
///
/// Versions: fields are only appended. The fields of version N+1 start at offset
/// CERTSTORE_STATUS_INFO_V<N>_SIZE, and each field says since which version it exists. After
/// the call, a field of version N was filled when struct_size >= CERTSTORE_STATUS_INFO_V<N>_SIZE;
/// a field the library did not fill (an older library) is zero, so test struct_size to tell
/// "0" from "not filled". A publish swaps the snapshot in under the status lock, so a status
/// read after certstore_get_current() or certstore_generation() returned generation G shows G
/// or a later generation, never an earlier one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct certstore_status_info {
    /// sizeof(certstore_status_info) as the caller compiled it.
    pub struct_size: u32,
    /// Reserved; set to zero by certstore_status().
    pub _reserved0: u32,
    /// Generation served now (1 after certstore_load()).
    pub generation: u64,
    /// Generations published, the initial load included.
    pub reloads_ok: u64,
    /// Refusals reported (the same refused files are counted once).
    pub reloads_failed: u64,
    /// When the last generation was published, unix milliseconds; 0 = never.
    pub last_success_unix_ms: i64,
    /// When the last refusal was reported, unix milliseconds; 0 = never.
    pub last_failure_unix_ms: i64,
    /// notAfter of the served leaf, unix seconds.
    pub not_after_unix: i64,
    // ---- version 2: from offset CERTSTORE_STATUS_INFO_V1_SIZE ----
    /// Since version 2. Nonzero while the files on disk hold something other than the served generation
    /// (refused, or being retried).
    pub disk_differs: i32,
    /// Since version 2. Why the disk generation is not served (a certstore_reason); NONE while they agree.
    pub disk_reason: i32,
    /// Since version 2. Since when the disk differs, unix milliseconds; 0 while they agree.
    pub disk_differs_since_unix_ms: i64,
    /// Since version 2. notAfter (unix seconds) of the leaf on disk when it parsed (refused or not); 0 if not.
    pub disk_not_after_unix: i64,
    /// Since version 2. Serial (lowercase hex, NUL-terminated) of the leaf on disk when it parsed; "" if not.
    pub disk_serial: [libc::c_char; 48],
    /// Since version 2. Nonzero while inotify cannot watch (all of) the files and the store re-reads them on
    /// a timer instead (e.g. fs.inotify.max_user_watches is exhausted).
    pub watch_degraded: i32,
    /// Reserved; set to zero by certstore_status().
    pub _reserved1: i32,
    /// Since version 2. How long the last reload took to read and validate the files, in microseconds.
    pub last_reload_duration_us: u64,
    // ---- version 3: from offset CERTSTORE_STATUS_INFO_V2_SIZE ----
    /// Since version 3. How many times the store's watches were found dead and rebuilt (each
    /// also a CERTSTORE_EVENT_WATCH_REPAIRED event).
    pub watch_repairs: u64,
    /// Since version 3. Events discarded because the subscribers were too slow (each discard
    /// also reported by a CERTSTORE_EVENT_EVENTS_DROPPED event).
    pub events_dropped: u64,
}

/// The status as this build of the library knows it (see `LibraryOptions`): the public struct,
/// plus a field appended in test builds.
#[repr(C)]
#[derive(Clone, Copy)]
struct LibraryStatus {
    info: certstore_status_info,
    #[cfg(feature = "abi-test-v2")]
    test_next_version_field: u64,
}

/// sizeof(certstore_status_info) in version 1 of this header, on 64-bit targets: the smallest
/// struct_size certstore_status() accepts. Never changes.
pub const CERTSTORE_STATUS_INFO_V1_SIZE: u32 = 56;
/// sizeof(certstore_status_info) in version 2 (disk_differs .. last_reload_duration_us), on
/// 64-bit targets. Never changes.
pub const CERTSTORE_STATUS_INFO_V2_SIZE: u32 = 144;
/// sizeof(certstore_status_info) in version 3 (watch_repairs, events_dropped), on 64-bit
/// targets. Never changes.
pub const CERTSTORE_STATUS_INFO_V3_SIZE: u32 = 160;

// No implicit padding anywhere (every byte copied out is a named, initialised field), and each
// version's fields start where the previous version ended.
const _: () = assert!(
    std::mem::offset_of!(certstore_status_info, disk_differs)
        == CERTSTORE_STATUS_INFO_V1_SIZE as usize
        && std::mem::offset_of!(certstore_status_info, watch_repairs)
            == CERTSTORE_STATUS_INFO_V2_SIZE as usize
        && std::mem::offset_of!(certstore_status_info, last_reload_duration_us) + size_of::<u64>()
            == CERTSTORE_STATUS_INFO_V2_SIZE as usize
        && std::mem::offset_of!(certstore_status_info, events_dropped) + size_of::<u64>()
            == CERTSTORE_STATUS_INFO_V3_SIZE as usize
        && size_of::<certstore_status_info>() == CERTSTORE_STATUS_INFO_V3_SIZE as usize,
    "the fields of certstore_status_info moved"
);

fn code_of(error: &Error) -> certstore_code {
    match error {
        Error::InvalidOptions(_) => certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT,
        Error::Watch { .. } => certstore_code::CERTSTORE_ERR_WATCH,
        Error::Resource(_) => certstore_code::CERTSTORE_ERR_RESOURCE,
        Error::Internal(_) => certstore_code::CERTSTORE_ERR_PANIC,
        _ => certstore_code::CERTSTORE_ERR_LOAD,
    }
}

fn fail_core(out: *mut *mut certstore_error, error: &Error) -> certstore_code {
    fail_with(out, code_of(error), certstore_error::from_core(error))
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
                let handle = Box::into_raw(Box::new(certstore_store { store }));
                // SAFETY: checked non-NULL above; writable per the contract.
                unsafe { out_store.write(handle) };
                certstore_code::CERTSTORE_OK
            }
            Err(error) => fail_core(out_error, &error),
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
        Err(error) => fail_core(out_error, &error),
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

/// A pointer to a counter holding the store's generation, for callers that cannot afford a
/// function call per read: Go's handshake path reads it instead of making a cgo call. It is
/// stored just after a new snapshot is published, so it may trail certstore_generation() for
/// that instant, never lead it, and never goes backwards. Read it only with an atomic acquire load, e.g.
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

/// Copies the reload counters and the served-vs-disk state into `*out_status`: at most
/// out_status->struct_size bytes (which must be at least CERTSTORE_STATUS_INFO_V1_SIZE and at
/// most 4096, else CERTSTORE_ERR_INVALID_ARGUMENT and nothing written), then sets struct_size
/// to the number of bytes filled; fields this library does not know are zeroed (see
/// certstore_status_info for telling them from a 0). When `out_last_error` is not NULL it receives why the files on disk are refused now
/// (free it with certstore_error_free(); certstore_error_reason() gives the reason), or NULL
/// when the served generation is what the disk holds.
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
    let ours = size_of::<LibraryStatus>();
    let Ok(fill) = declared_size(
        "status",
        declared,
        CERTSTORE_STATUS_INFO_V1_SIZE as usize,
        ours,
        |_| true,
    ) else {
        return certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT;
    };
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    let out_status = AssertUnwindSafe(out_status);
    guard(AssertUnwindSafe(|| {
        let status = store.store.status();
        let millis = |t: Option<std::time::SystemTime>| t.map_or(0, certstore_core::unix_millis);
        let mut disk_serial = [0 as libc::c_char; 48];
        if let Some(serial) = &status.disk.serial_hex {
            for (dst, src) in disk_serial.iter_mut().zip(serial.bytes().take(47)) {
                *dst = src as libc::c_char;
            }
        }
        let info = LibraryStatus {
            info: certstore_status_info {
                struct_size: fill as u32,
                _reserved0: 0,
                generation: status.generation,
                reloads_ok: status.reloads_ok,
                reloads_failed: status.reloads_failed,
                last_success_unix_ms: millis(status.last_success),
                last_failure_unix_ms: millis(status.last_failure),
                not_after_unix: status.not_after,
                disk_differs: i32::from(status.disk_differs()),
                disk_reason: status
                    .disk
                    .refused
                    .map_or(certstore_reason::CERTSTORE_REASON_NONE, Into::into)
                    as i32,
                disk_differs_since_unix_ms: millis(status.disk_differs_since),
                disk_not_after_unix: status.disk.not_after.unwrap_or(0),
                disk_serial,
                watch_degraded: i32::from(status.watch_degraded.is_some()),
                _reserved1: 0,
                last_reload_duration_us: status.last_reload_duration.as_micros() as u64,
                watch_repairs: status.watch_repairs,
                events_dropped: status.events_dropped,
            },
            #[cfg(feature = "abi-test-v2")]
            test_next_version_field: u64::MAX,
        };
        // SAFETY: writes `fill` = min(declared, ours) bytes, then zeroes up to `declared`;
        // the caller provides `declared` writable bytes and `info` has `ours` readable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&info as *const LibraryStatus).cast::<u8>(),
                out_status.cast::<u8>(),
                fill,
            );
            if declared > fill {
                std::ptr::write_bytes(out_status.cast::<u8>().add(fill), 0, declared - fill);
            }
        }
        if let Some(error) = &status.last_error {
            fail_with(
                out_last_error,
                certstore_code::CERTSTORE_OK,
                certstore_error::from_core(error),
            );
        }
        certstore_code::CERTSTORE_OK
    }))
}

/// Stops watching, delivers the events already queued (callbacks may still use `store`
/// meanwhile), waits for the last callback to return, and frees the store. When it was the
/// last store of the process, the library's threads are joined and its inotify descriptor
/// closed before this returns. Snapshots and generation counters obtained from the store stay
/// valid until their own release. NULL is a no-op. Called from inside a subscription callback
/// of this store it frees nothing and returns CERTSTORE_ERR_IN_CALLBACK (it would wait for
/// itself); called from a callback of another store it delivers this store's queued events
/// from inside that callback, then frees it.
///
/// The one rule of the handle's lifetime: certstore_free() must not run while another thread
/// is inside any certstore_* call on the same store, and no call may use the store after it
/// began. Callbacks are the exception the library handles itself: it waits for them.
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
