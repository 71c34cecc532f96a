//! `certstore_options`: what to load and how to watch it, extensible through `struct_size`.
//!
//! The extension scheme, fixed for good: the caller declares the size it compiled
//! (`certstore_options_init(&o, sizeof o)` stores it in `struct_size`); the library reads and
//! writes no byte past that size; fields are only ever appended; a caller's struct shorter
//! than the library's gets defaults for the fields it lacks; a longer one (a newer header on an
//! older library) is accepted when every byte the library does not know is zero.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use certstore_core::{DEFAULT_MAX_FILE_SIZE, DEFAULT_REREAD_INTERVAL, Options, ValidityPolicy};

use crate::certstore_code;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("certstore's C ABI sizes (CERTSTORE_*_V1_SIZE) are defined for 64-bit targets");

/// What to do with a leaf certificate outside its validity window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum certstore_validity_policy {
    /// Refuse an expired or not-yet-valid leaf (default).
    CERTSTORE_VALIDITY_ENFORCE = 0,
    /// Accept the leaf whatever its validity window.
    CERTSTORE_VALIDITY_IGNORE = 1,
}

/// Options for certstore_load(). Prepare it with
/// `certstore_options_init(&options, sizeof options)`, which sets struct_size and the
/// defaults; then set the paths and change what you need. Later versions only append fields,
/// so a program built against an older header keeps working with a newer library.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct certstore_options {
    /// sizeof(certstore_options) as the caller compiled it; set by certstore_options_init().
    pub struct_size: u32,
    /// Reserved; must be zero (certstore_options_init() zeroes it).
    pub _reserved0: u32,
    /// Path of the PEM certificate chain, leaf first. Required. Copied by certstore_load() and
    /// made absolute against the working directory at that moment.
    pub cert_path: *const libc::c_char,
    /// Path of the PEM private key (PKCS#8, PKCS#1 or SEC1; not encrypted). Required.
    pub key_path: *const libc::c_char,
    /// Path of a PEM CA bundle (client CAs / roots), or NULL for none.
    pub ca_path: *const libc::c_char,
    /// Nonzero: watch the files' directories with inotify. Default 1.
    pub watch: i32,
    /// Re-read the files this often (content hash compare); 0 disables. Default 60000.
    pub reread_interval_ms: u32,
    /// Largest accepted file in bytes; 0 is invalid. Default 1048576 (1 MiB).
    pub max_file_size: u64,
    /// A certstore_validity_policy value. Default CERTSTORE_VALIDITY_ENFORCE.
    pub validity: u32,
    /// Reserved for a later version; must be zero (certstore_options_init() zeroes it).
    /// Fields of later versions start at offset CERTSTORE_OPTIONS_V1_SIZE.
    pub _reserved1: u32,
}

/// The options as this build of the library knows them: the public struct, plus, in test
/// builds (feature `abi-test-v2`), a field appended as a later version would, so tests can run
/// programs built against the frozen v1 header against a library whose struct grew.
#[repr(C)]
#[derive(Clone, Copy)]
struct LibraryOptions {
    options: certstore_options,
    #[cfg(feature = "abi-test-v2")]
    test_v2_field: u64,
}

/// sizeof(certstore_options) in version 1 of this header, on 64-bit targets. Never changes:
/// the smallest struct_size certstore_load() accepts.
pub const CERTSTORE_OPTIONS_V1_SIZE: u32 = 56;

// Version 1 ends with `_reserved1` and has no implicit padding (every byte the library copies
// is a named field, so none is ever uninitialised); later fields start at the v1 size.
const _: () = assert!(
    std::mem::offset_of!(certstore_options, _reserved1) + size_of::<u32>()
        == CERTSTORE_OPTIONS_V1_SIZE as usize
        && std::mem::offset_of!(certstore_options, _reserved0) == 4,
    "the fields of version 1 of certstore_options moved"
);

/// Fills the first `size` bytes of `*options` with the defaults and sets struct_size to
/// `size`. Pass `sizeof *options` as your program compiled it. Bytes of fields this library
/// does not know (a newer header) are set to zero. Returns CERTSTORE_ERR_NULL_ARGUMENT for
/// NULL and CERTSTORE_ERR_INVALID_ARGUMENT (writing nothing) when `size` is below
/// CERTSTORE_OPTIONS_V1_SIZE or above 4096.
///
/// # Safety
/// `options` is NULL or points to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_options_init(
    options: *mut certstore_options,
    size: libc::size_t,
) -> certstore_code {
    if options.is_null() {
        return certstore_code::CERTSTORE_ERR_NULL_ARGUMENT;
    }
    if size < CERTSTORE_OPTIONS_V1_SIZE as usize || size > MAX_STRUCT_SIZE {
        return certstore_code::CERTSTORE_ERR_INVALID_ARGUMENT;
    }
    let mut defaults = defaults();
    defaults.options.struct_size = size as u32;
    let ours = size_of::<LibraryOptions>();
    let dst = options.cast::<u8>();
    // SAFETY: the caller provides `size` writable bytes at `options`; we write
    // min(size, ours) bytes from `defaults` (which has `ours`), then zero the rest up to `size`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&defaults as *const LibraryOptions).cast::<u8>(),
            dst,
            size.min(ours),
        );
        if size > ours {
            std::ptr::write_bytes(dst.add(ours), 0, size - ours);
        }
    }
    certstore_code::CERTSTORE_OK
}

/// A bound on struct_size so that a garbage value cannot make the library read far.
pub(crate) const MAX_STRUCT_SIZE: usize = 4096;

fn defaults() -> LibraryOptions {
    LibraryOptions {
        options: certstore_options {
            struct_size: size_of::<LibraryOptions>() as u32,
            _reserved0: 0,
            cert_path: std::ptr::null(),
            key_path: std::ptr::null(),
            ca_path: std::ptr::null(),
            watch: 1,
            reread_interval_ms: DEFAULT_REREAD_INTERVAL.as_millis() as u32,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            validity: certstore_validity_policy::CERTSTORE_VALIDITY_ENFORCE as u32,
            _reserved1: 0,
        },
        #[cfg(feature = "abi-test-v2")]
        test_v2_field: 0,
    }
}

/// Checks a caller-declared struct size against ours: `Ok(bytes to copy)` or the reason it is
/// unusable. `tail` reads the caller's bytes past ours, which must be zero.
pub(crate) fn declared_size(
    what: &str,
    declared: usize,
    v1: usize,
    ours: usize,
    tail: impl FnOnce(usize) -> bool,
) -> Result<usize, String> {
    if declared < v1 || declared > MAX_STRUCT_SIZE {
        return Err(format!(
            "{what}.struct_size is {declared}, expected at least {v1} (and at most \
             {MAX_STRUCT_SIZE}): initialise it with the size your program compiled"
        ));
    }
    if declared > ours && !tail(declared - ours) {
        return Err(format!(
            "{what} sets fields this library version does not know (struct_size {declared}, \
             this library knows {ours} bytes): upgrade the library or leave them zero"
        ));
    }
    Ok(declared.min(ours))
}

/// The options the caller passed, converted; `Err` carries the reason for
/// CERTSTORE_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `options` is non-NULL and points to at least `struct_size` readable bytes laid out as a
/// certstore_options prefix; its string fields are NULL or NUL-terminated.
pub(crate) unsafe fn convert(options: *const certstore_options) -> Result<Options, String> {
    // SAFETY: struct_size is the first field of every version of the struct, and the caller
    // guarantees at least that much is readable.
    let declared = unsafe { options.cast::<u32>().read_unaligned() } as usize;
    let ours = size_of::<LibraryOptions>();
    let copy = declared_size(
        "options",
        declared,
        CERTSTORE_OPTIONS_V1_SIZE as usize,
        ours,
        |extra| {
            // SAFETY: `declared` bytes are readable at `options`; the tail is its last `extra`.
            let tail = unsafe { std::slice::from_raw_parts(options.cast::<u8>().add(ours), extra) };
            tail.iter().all(|&b| b == 0)
        },
    )?;
    let mut library = defaults();
    // SAFETY: `copy` <= declared bytes are readable at `options` and `copy` <= ours bytes are
    // writable at `library`; the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            (&mut library as *mut LibraryOptions).cast::<u8>(),
            copy,
        );
    }
    let raw = library.options;
    if raw._reserved0 != 0 || raw._reserved1 != 0 {
        return Err("options has reserved fields set: initialise it with \
                    certstore_options_init(&options, sizeof options)"
            .into());
    }
    let path = |p: *const libc::c_char, name: &str| -> Result<Option<PathBuf>, String> {
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: non-NULL string fields are NUL-terminated per the contract.
        let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
        if bytes.is_empty() {
            return Err(format!("options.{name} is an empty string"));
        }
        Ok(Some(PathBuf::from(OsStr::from_bytes(bytes))))
    };
    let cert_path = path(raw.cert_path, "cert_path")?.ok_or("options.cert_path is NULL")?;
    let key_path = path(raw.key_path, "key_path")?.ok_or("options.key_path is NULL")?;
    let mut converted = Options::new(cert_path, key_path);
    converted.ca_path = path(raw.ca_path, "ca_path")?;
    converted.watch = raw.watch != 0;
    converted.reread_interval = match raw.reread_interval_ms {
        0 => None,
        ms => Some(Duration::from_millis(u64::from(ms))),
    };
    if raw.max_file_size == 0 {
        return Err("options.max_file_size is 0".into());
    }
    converted.max_file_size = raw.max_file_size;
    converted.validity = match raw.validity {
        0 => ValidityPolicy::Enforce,
        1 => ValidityPolicy::Ignore,
        other => {
            return Err(format!(
                "options.validity {other} is not a certstore_validity_policy"
            ));
        }
    };
    Ok(converted)
}
