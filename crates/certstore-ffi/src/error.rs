//! `certstore_error`: an owned, human-readable reason.

use std::ffi::CString;

use crate::{certstore_code, certstore_reason};

/// An error: a one-line reason naming the file and what is wrong with it. Opaque; read it with
/// certstore_error_message(), free it with certstore_error_free().
pub struct certstore_error {
    message: CString,
    reason: certstore_reason,
}

impl certstore_error {
    /// An error for a refused generation or a failed call into the core.
    pub(crate) fn from_core(error: &certstore_core::Error) -> certstore_error {
        let mut e = certstore_error::new(error.to_string());
        e.reason = error.reason().into();
        e
    }

    pub(crate) fn new(message: impl Into<String>) -> certstore_error {
        let mut bytes = message.into().into_bytes();
        // Interior NULs cannot occur in our messages except through a hostile path name;
        // replace them rather than lose the message.
        for b in bytes.iter_mut().filter(|b| **b == 0) {
            *b = b'?';
        }
        certstore_error {
            message: CString::new(bytes).unwrap_or_default(),
            reason: certstore_reason::CERTSTORE_REASON_OTHER,
        }
    }
}

/// Hands `error` to the caller through `out` (when `out` is not NULL) and returns `code`.
pub(crate) fn fail_with(
    out: *mut *mut certstore_error,
    code: certstore_code,
    error: certstore_error,
) -> certstore_code {
    if !out.is_null() {
        // SAFETY: `out` is non-NULL and, per the API contract, points to writable storage
        // for one pointer.
        unsafe { out.write(Box::into_raw(Box::new(error))) };
    }
    code
}

/// Hands `message` to the caller through `out` (when `out` is not NULL) and returns `code`.
pub(crate) fn fail(
    out: *mut *mut certstore_error,
    code: certstore_code,
    message: impl Into<String>,
) -> certstore_code {
    if !out.is_null() {
        let error = Box::into_raw(Box::new(certstore_error::new(message)));
        // SAFETY: `out` is non-NULL and, per the API contract, points to writable storage
        // for one pointer.
        unsafe { out.write(error) };
    }
    code
}

/// Sets `*out` to NULL when `out` is not NULL, so callers can free unconditionally.
pub(crate) fn clear(out: *mut *mut certstore_error) {
    if !out.is_null() {
        // SAFETY: as in `fail`: non-NULL and writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

/// The message of `error`, a NUL-terminated UTF-8 string owned by `error`: valid until
/// certstore_error_free(error). Returns "" for NULL.
///
/// # Safety
/// `error` is NULL or a pointer received from this library and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_error_message(
    error: *const certstore_error,
) -> *const libc::c_char {
    if error.is_null() {
        return c"".as_ptr();
    }
    // SAFETY: non-NULL and live per the contract above.
    let error = unsafe { &*error };
    error.message.as_ptr()
}

/// Why the generation behind `error` was refused (CERTSTORE_REASON_OTHER for errors that are
/// not about the files, such as invalid options); CERTSTORE_REASON_NONE for NULL.
///
/// # Safety
/// `error` is NULL or a pointer received from this library and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_error_reason(error: *const certstore_error) -> certstore_reason {
    // SAFETY: NULL or live per the contract above.
    match unsafe { error.as_ref() } {
        Some(error) => error.reason,
        None => certstore_reason::CERTSTORE_REASON_NONE,
    }
}

/// Frees an error returned through an out-parameter. NULL is a no-op. Do not free the
/// borrowed error of a certstore_event.
///
/// # Safety
/// `error` is NULL or a pointer received from this library's out-parameters, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_error_free(error: *mut certstore_error) {
    if error.is_null() {
        return;
    }
    crate::guard_value((), || {
        // SAFETY: the pointer came from Box::into_raw in `fail` and is freed once.
        drop(unsafe { Box::from_raw(error) });
    });
}
