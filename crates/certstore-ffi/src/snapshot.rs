//! `certstore_snapshot`: a reference-counted view of one generation.

use std::ffi::CString;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use certstore_core::Snapshot;

use crate::store::certstore_store;
use crate::{certstore_code, guard, guard_value};

/// One immutable generation: chain, key, CA bundle and leaf facts. Opaque and reference
/// counted: certstore_get_current() copies nothing. Pointers returned by the accessors stay
/// valid until certstore_snapshot_free(), even after the store rotated or was freed.
pub struct certstore_snapshot {
    snapshot: Arc<Snapshot>,
    serial: CString,
}

impl certstore_snapshot {
    pub(crate) fn new(snapshot: Arc<Snapshot>) -> certstore_snapshot {
        let serial = CString::new(snapshot.serial_hex()).unwrap_or_default();
        certstore_snapshot { snapshot, serial }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.snapshot.generation()
    }
}

/// Sets `*out_snapshot` to the generation served now; free it with certstore_snapshot_free().
/// No I/O and no lock; a reference-count increment (it allocates only when called between a
/// rotation and the library's own refresh of its view).
///
/// # Safety
/// `store` is NULL or a live store; `out_snapshot` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_get_current(
    store: *const certstore_store,
    out_snapshot: *mut *mut certstore_snapshot,
) -> certstore_code {
    if out_snapshot.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { out_snapshot.write(std::ptr::null_mut()) };
    if store.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    // SAFETY: non-NULL and live per the contract.
    let store = unsafe { &*store };
    let out_snapshot = AssertUnwindSafe(out_snapshot);
    guard(AssertUnwindSafe(|| {
        let view = Arc::into_raw(store.current_view());
        // SAFETY: non-NULL and writable (checked above).
        unsafe { out_snapshot.write(view.cast_mut()) };
        certstore_code::CERTSTORE_OK
    }))
}

/// Releases a snapshot. NULL is a no-op. The key bytes are zeroized when the last reference
/// (yours or the store's) is gone.
///
/// # Safety
/// `snapshot` is NULL or from certstore_get_current(), released once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_free(snapshot: *mut certstore_snapshot) {
    if snapshot.is_null() {
        return;
    }
    let snapshot = AssertUnwindSafe(snapshot);
    guard_value((), move || {
        // SAFETY: came from Arc::into_raw in certstore_get_current and is released once.
        drop(unsafe { Arc::from_raw(snapshot.cast_const()) });
    });
}

/// Borrows the snapshot behind a C pointer, or `None` for NULL.
fn view<'a>(snapshot: *const certstore_snapshot) -> Option<&'a certstore_snapshot> {
    // SAFETY: every accessor's contract says `snapshot` is NULL or live until freed, and the
    // borrow does not outlive the accessor call.
    unsafe { snapshot.as_ref() }
}

fn bytes_out(bytes: Option<&[u8]>, out_len: *mut libc::size_t) -> *const u8 {
    let (ptr, len) = match bytes {
        Some(b) => (b.as_ptr(), b.len()),
        None => (std::ptr::null(), 0),
    };
    if !out_len.is_null() {
        // SAFETY: non-NULL and writable per the accessors' contract.
        unsafe { out_len.write(len) };
    }
    ptr
}

/// The certificate chain file as read (PEM, leaf first); its length in `*out_len`. Not
/// NUL-terminated. Owned by the snapshot. NULL (and length 0) for a NULL snapshot.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_cert_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).map(|s| s.snapshot.cert_pem()), out_len)
}

/// The private key file as read (PEM); its length in `*out_len`. Not NUL-terminated. Owned by
/// the snapshot and zeroized when the last reference is dropped: copy it only into memory you
/// wipe, never log it.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_key_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).map(|s| s.snapshot.key_pem()), out_len)
}

/// The CA bundle file as read (PEM); its length in `*out_len`. NULL and length 0 when no CA
/// path was configured.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_ca_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).and_then(|s| s.snapshot.ca_pem()), out_len)
}

/// The generation of this snapshot; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_generation(snapshot: *const certstore_snapshot) -> u64 {
    view(snapshot).map_or(0, |s| s.snapshot.generation())
}

/// The leaf's notBefore in unix seconds; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_not_before(snapshot: *const certstore_snapshot) -> i64 {
    view(snapshot).map_or(0, |s| s.snapshot.not_before())
}

/// The leaf's notAfter in unix seconds; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_not_after(snapshot: *const certstore_snapshot) -> i64 {
    view(snapshot).map_or(0, |s| s.snapshot.not_after())
}

/// The leaf's serial number, lowercase hex without leading zeros, NUL-terminated, owned by the
/// snapshot; "" for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_serial(
    snapshot: *const certstore_snapshot,
) -> *const libc::c_char {
    view(snapshot).map_or(c"".as_ptr(), |s| s.serial.as_ptr())
}

/// The SHA-256 of the leaf certificate's DER: CERTSTORE_SHA256_LEN bytes owned by the
/// snapshot; NULL for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_fingerprint_sha256(
    snapshot: *const certstore_snapshot,
) -> *const u8 {
    view(snapshot).map_or(std::ptr::null(), |s| {
        s.snapshot.fingerprint_sha256().as_ptr()
    })
}
