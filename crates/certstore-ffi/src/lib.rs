//! The C ABI of certstore: `certstore_load`, `certstore_subscribe`, `certstore_get_current`
//! and their companions, with opaque handles, status codes and errors through out-parameters.
//! `include/certstore.h` is generated from this crate by cbindgen (`make header`).
//!
//! Every entry point runs its body under `catch_unwind`: a panic becomes
//! `CERTSTORE_ERR_PANIC` (or a neutral value) instead of aborting the host process.
#![allow(non_camel_case_types)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod abi;
mod error;
mod options;
mod snapshot;
mod store;
mod subscribe;

pub use abi::*;
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
    /// The system refused a resource (a thread, a file descriptor); nothing was created.
    CERTSTORE_ERR_RESOURCE = 8,
}

/// Why a generation was refused, as a stable value (the error message says the same for
/// people). New values may be added; treat unknown ones as CERTSTORE_REASON_OTHER.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum certstore_reason {
    /// Not refused (or no refusal to speak of).
    CERTSTORE_REASON_NONE = 0,
    /// The private key does not belong to the leaf certificate.
    CERTSTORE_REASON_KEY_MISMATCH = 1,
    /// The leaf's notAfter has passed.
    CERTSTORE_REASON_EXPIRED = 2,
    /// The leaf's notBefore has not come yet.
    CERTSTORE_REASON_NOT_YET_VALID = 3,
    /// The private key is encrypted (not supported).
    CERTSTORE_REASON_ENCRYPTED_KEY = 4,
    /// The private key is of a kind the library cannot load.
    CERTSTORE_REASON_UNSUPPORTED_KEY = 5,
    /// Empty file, broken PEM, no item of the expected kind, or invalid X.509.
    CERTSTORE_REASON_PARSE_ERROR = 6,
    /// A file exceeds max_file_size.
    CERTSTORE_REASON_TOO_LARGE = 7,
    /// A path names a FIFO, directory, device or socket.
    CERTSTORE_REASON_NOT_REGULAR_FILE = 8,
    /// A file does not exist.
    CERTSTORE_REASON_MISSING = 9,
    /// A file could not be read (permissions, EIO, out of descriptors).
    CERTSTORE_REASON_IO_ERROR = 10,
    /// Anything else (options, watcher, a caught bug).
    CERTSTORE_REASON_OTHER = 11,
}

impl From<certstore_core::Reason> for certstore_reason {
    fn from(reason: certstore_core::Reason) -> certstore_reason {
        use certstore_core::Reason as R;
        match reason {
            R::KeyMismatch => certstore_reason::CERTSTORE_REASON_KEY_MISMATCH,
            R::Expired => certstore_reason::CERTSTORE_REASON_EXPIRED,
            R::NotYetValid => certstore_reason::CERTSTORE_REASON_NOT_YET_VALID,
            R::EncryptedKey => certstore_reason::CERTSTORE_REASON_ENCRYPTED_KEY,
            R::UnsupportedKey => certstore_reason::CERTSTORE_REASON_UNSUPPORTED_KEY,
            R::Parse => certstore_reason::CERTSTORE_REASON_PARSE_ERROR,
            R::TooLarge => certstore_reason::CERTSTORE_REASON_TOO_LARGE,
            R::NotRegularFile => certstore_reason::CERTSTORE_REASON_NOT_REGULAR_FILE,
            R::Missing => certstore_reason::CERTSTORE_REASON_MISSING,
            R::Io => certstore_reason::CERTSTORE_REASON_IO_ERROR,
            _ => certstore_reason::CERTSTORE_REASON_OTHER,
        }
    }
}

/// The stable snake_case name of a reason, e.g. "key_mismatch" (the Rust core's, used as a
/// metric label); "unknown" for a value that is not a certstore_reason. Static storage.
#[unsafe(no_mangle)]
pub extern "C" fn certstore_reason_name(reason: i32) -> *const libc::c_char {
    let name: &'static str = match reason {
        0 => "none\0",
        1 => "key_mismatch\0",
        2 => "expired\0",
        3 => "not_yet_valid\0",
        4 => "encrypted_key\0",
        5 => "unsupported_key\0",
        6 => "parse_error\0",
        7 => "too_large\0",
        8 => "not_regular_file\0",
        9 => "missing\0",
        10 => "io_error\0",
        11 => "other\0",
        _ => "unknown\0",
    };
    name.as_ptr().cast()
}

/// The major version of the library this header belongs to (certstore_version_number() is
/// the library's at run time).
pub const CERTSTORE_VERSION_MAJOR: u32 = 0;
/// The minor version of the library this header belongs to.
pub const CERTSTORE_VERSION_MINOR: u32 = 1;
/// The patch version of the library this header belongs to.
pub const CERTSTORE_VERSION_PATCH: u32 = 0;
/// MAJOR * 10000 + MINOR * 100 + PATCH, comparable with certstore_version_number().
pub const CERTSTORE_VERSION_NUMBER: u32 =
    CERTSTORE_VERSION_MAJOR * 10000 + CERTSTORE_VERSION_MINOR * 100 + CERTSTORE_VERSION_PATCH;

/// The version of the library, e.g. "0.1.0". Static storage; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn certstore_version() -> *const libc::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The version of the library as CERTSTORE_VERSION_NUMBER computes it, e.g. 100 for 0.1.0:
/// compare it with the header's CERTSTORE_VERSION_NUMBER to find which library runs.
#[unsafe(no_mangle)]
pub extern "C" fn certstore_version_number() -> u32 {
    CERTSTORE_VERSION_NUMBER
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
        8 => "CERTSTORE_ERR_RESOURCE\0",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_are_the_crate_version() {
        let number = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(
            CERTSTORE_VERSION_MAJOR,
            number(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            CERTSTORE_VERSION_MINOR,
            number(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            CERTSTORE_VERSION_PATCH,
            number(env!("CARGO_PKG_VERSION_PATCH"))
        );
    }
}
