//! `certstore_snapshot`: a reference-counted view of one generation.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use certstore_core::Snapshot;

use crate::store::certstore_store;
use crate::{certstore_code, guard, guard_value};

/// One immutable generation: chain, key, CA bundle and leaf facts. Opaque and reference
/// counted: it is the store's own snapshot, handed out without a copy. Pointers returned by
/// the accessors stay valid until certstore_snapshot_free(), even after the store rotated or
/// was freed.
pub struct certstore_snapshot {
    // Never constructed: a `*const certstore_snapshot` is an `Arc<Snapshot>` pointer.
    _opaque: [u8; 0],
}

/// Hands out one reference to `snapshot` as a C pointer (released by certstore_snapshot_free).
pub(crate) fn into_c(snapshot: Arc<Snapshot>) -> *mut certstore_snapshot {
    Arc::into_raw(snapshot)
        .cast::<certstore_snapshot>()
        .cast_mut()
}

/// The C pointer of a snapshot borrowed for the duration of a callback.
pub(crate) fn borrowed(snapshot: &Arc<Snapshot>) -> *const certstore_snapshot {
    Arc::as_ptr(snapshot).cast::<certstore_snapshot>()
}

/// Sets `*out_snapshot` to the generation served now; free it with certstore_snapshot_free().
/// No I/O, no lock, no allocation: a reference-count increment. Never returns an older
/// generation than one this thread got before, and certstore_generation() called afterwards
/// returns at least this snapshot's generation.
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
        let snapshot = into_c(store.store.current());
        // SAFETY: non-NULL and writable (checked above).
        unsafe { out_snapshot.write(snapshot) };
        certstore_code::CERTSTORE_OK
    }))
}

/// Takes one more reference to `snapshot` (e.g. the borrowed snapshot of a ROTATED event, to
/// keep it after the callback) and returns it; release it with certstore_snapshot_free().
/// NULL for NULL.
///
/// # Safety
/// `snapshot` is NULL or live (from certstore_get_current(), certstore_snapshot_ref(), or an
/// event during its callback).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_ref(
    snapshot: *const certstore_snapshot,
) -> *mut certstore_snapshot {
    if snapshot.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: a live snapshot pointer is an `Arc<Snapshot>` pointer with at least one strong
    // reference held by the caller for the duration of this call.
    unsafe { Arc::increment_strong_count(snapshot.cast::<Snapshot>()) };
    snapshot.cast_mut()
}

/// Releases a snapshot. NULL is a no-op. The key bytes are zeroized when the last reference
/// (yours or the store's) is gone.
///
/// # Safety
/// `snapshot` is NULL or from certstore_get_current()/certstore_snapshot_ref(), released once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_free(snapshot: *mut certstore_snapshot) {
    if snapshot.is_null() {
        return;
    }
    let snapshot = AssertUnwindSafe(snapshot);
    guard_value((), move || {
        // SAFETY: came from Arc::into_raw (into_c) or an increment (certstore_snapshot_ref)
        // and is released once.
        drop(unsafe { Arc::from_raw(snapshot.cast_const().cast::<Snapshot>()) });
    });
}

/// Borrows the snapshot behind a C pointer, or `None` for NULL.
fn view<'a>(snapshot: *const certstore_snapshot) -> Option<&'a Snapshot> {
    // SAFETY: every accessor's contract says `snapshot` is NULL or live until freed (an
    // `Arc<Snapshot>` pointer), and the borrow does not outlive the accessor call.
    unsafe { snapshot.cast::<Snapshot>().as_ref() }
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

/// The certificate chain that was validated, leaf first, as PEM: each certificate's DER
/// encoded as a CERTIFICATE block (64-column base64, "\n" line ends), never the file's bytes
/// (comments, other blocks and CRLFs of the file are not carried over). Its length in
/// `*out_len`; not NUL-terminated; owned by the snapshot. NULL (and length 0) for NULL.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_cert_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).map(|s| s.cert_pem()), out_len)
}

/// The private key that was loaded and matched against the leaf, PEM-encoded from its DER
/// under the label of its encoding ("PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY");
/// its length in `*out_len`. Not NUL-terminated. Owned by the snapshot and zeroized when the
/// last reference is dropped: copy it only into memory you wipe, never log it.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_key_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).map(|s| s.key_pem()), out_len)
}

/// The CA bundle's certificates that were validated, PEM-encoded from their DER as
/// certstore_snapshot_cert_pem() does; its length in `*out_len`. NULL and length 0 when no
/// CA path was configured.
///
/// # Safety
/// `snapshot` is NULL or live; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_ca_pem(
    snapshot: *const certstore_snapshot,
    out_len: *mut libc::size_t,
) -> *const u8 {
    bytes_out(view(snapshot).and_then(|s| s.ca_pem()), out_len)
}

/// The generation of this snapshot; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_generation(snapshot: *const certstore_snapshot) -> u64 {
    view(snapshot).map_or(0, |s| s.generation())
}

/// The leaf's notBefore in unix seconds; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_not_before(snapshot: *const certstore_snapshot) -> i64 {
    view(snapshot).map_or(0, |s| s.not_before())
}

/// The leaf's notAfter in unix seconds; 0 for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_not_after(snapshot: *const certstore_snapshot) -> i64 {
    view(snapshot).map_or(0, |s| s.not_after())
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
    view(snapshot).map_or(c"".as_ptr(), |s| s.serial_hex_nul().as_ptr())
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
    view(snapshot).map_or(std::ptr::null(), |s| s.fingerprint_sha256().as_ptr())
}

/// The number of certificates in the CA bundle; 0 without one or for NULL.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_ca_count(
    snapshot: *const certstore_snapshot,
) -> libc::size_t {
    view(snapshot).map_or(0, |s| s.ca_not_after().len())
}

/// The notAfter (unix seconds) of CA certificate `index` (bundle order); 0 for NULL or an
/// index out of range.
///
/// # Safety
/// `snapshot` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_snapshot_ca_not_after(
    snapshot: *const certstore_snapshot,
    index: libc::size_t,
) -> i64 {
    view(snapshot)
        .and_then(|s| s.ca_not_after().get(index).copied())
        .unwrap_or(0)
}
