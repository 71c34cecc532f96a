//! The C ABI of certstore: `certstore_load`, `certstore_subscribe`, `certstore_get_current`
//! and their companions, with opaque handles, status codes and errors through out-parameters.
//! `include/certstore.h` is generated from this crate by cbindgen (`make header`).
//!
//! Every entry point runs its body under `catch_unwind`: a panic becomes
//! `CERTSTORE_ERR_PANIC` (or a neutral value) instead of aborting the host process.
#![allow(non_camel_case_types)]

mod error;
mod options;
mod snapshot;
mod store;
mod subscribe;

pub use error::*;
pub use options::*;
pub use snapshot::*;
pub use store::*;
pub use subscribe::*;

use std::panic::{UnwindSafe, catch_unwind};

/// Length in bytes of a SHA-256 fingerprint.
pub const CERTSTORE_SHA256_LEN: usize = 32;

/// Status code returned by every fallible function.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum certstore_code {
    /// Success.
    CERTSTORE_OK = 0,
    /// A required pointer argument was NULL.
    CERTSTORE_ERR_NULL_ARGUMENT = 1,
    /// An argument is unusable: bad struct_size, empty path, zero size limit, bad enum value.
    CERTSTORE_ERR_INVALID_ARGUMENT = 2,
    /// The files could not be read or did not validate; the error names the file and why.
    CERTSTORE_ERR_LOAD = 3,
    /// The file watcher could not be set up (e.g. the inotify watch limit is reached).
    CERTSTORE_ERR_WATCH = 4,
    /// certstore_free() was called from inside a subscription callback; nothing was freed.
    CERTSTORE_ERR_IN_CALLBACK = 5,
    /// certstore_unsubscribe(): no such subscription on this store.
    CERTSTORE_ERR_NOT_FOUND = 6,
    /// A bug inside certstore was caught at the boundary; the store keeps its state.
    CERTSTORE_ERR_PANIC = 7,
}

/// The version of the library, e.g. "0.1.0". Static storage; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn certstore_version() -> *const libc::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status code, e.g. "CERTSTORE_ERR_LOAD"; "CERTSTORE_UNKNOWN_CODE" for a
/// value that is not a certstore_code. Static storage; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn certstore_code_name(code: i32) -> *const libc::c_char {
    let name: &'static str = match code {
        0 => "CERTSTORE_OK\0",
        1 => "CERTSTORE_ERR_NULL_ARGUMENT\0",
        2 => "CERTSTORE_ERR_INVALID_ARGUMENT\0",
        3 => "CERTSTORE_ERR_LOAD\0",
        4 => "CERTSTORE_ERR_WATCH\0",
        5 => "CERTSTORE_ERR_IN_CALLBACK\0",
        6 => "CERTSTORE_ERR_NOT_FOUND\0",
        7 => "CERTSTORE_ERR_PANIC\0",
        _ => "CERTSTORE_UNKNOWN_CODE\0",
    };
    name.as_ptr().cast()
}

/// Runs an entry point body, turning a panic into `CERTSTORE_ERR_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> certstore_code + UnwindSafe) -> certstore_code {
    catch_unwind(body).unwrap_or(certstore_code::CERTSTORE_ERR_PANIC)
}

/// Runs an entry point body that returns a value, turning a panic into `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T + UnwindSafe) -> T {
    catch_unwind(body).unwrap_or(fallback)
}
