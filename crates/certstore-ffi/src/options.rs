//! `certstore_options`: what to load and how to watch it, extensible through `struct_size`.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use certstore_core::{DEFAULT_MAX_FILE_SIZE, DEFAULT_REREAD_INTERVAL, Options, ValidityPolicy};

/// What to do with a leaf certificate outside its validity window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum certstore_validity_policy {
    /// Refuse an expired or not-yet-valid leaf (default).
    CERTSTORE_VALIDITY_ENFORCE = 0,
    /// Accept the leaf whatever its validity window.
    CERTSTORE_VALIDITY_IGNORE = 1,
}

/// Options for certstore_load(). Always start from certstore_options_init(), which sets
/// struct_size and the defaults; then set the paths and change what you need. Fields added in
/// later versions go at the end, so a program built against an older header keeps working.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct certstore_options {
    /// sizeof(certstore_options) as the caller compiled it; set by certstore_options_init().
    pub struct_size: u32,
    /// Path of the PEM certificate chain, leaf first. Required. Copied by certstore_load().
    pub cert_path: *const libc::c_char,
    /// Path of the PEM private key (PKCS#8, PKCS#1 or SEC1; not encrypted). Required.
    pub key_path: *const libc::c_char,
    /// Path of a PEM CA bundle (client CAs / roots), or NULL for none.
    pub ca_path: *const libc::c_char,
    /// Watch the files' directories with inotify. Default true.
    pub watch: bool,
    /// Re-read the files this often (content hash compare); 0 disables. Default 60000.
    pub reread_interval_ms: u32,
    /// Largest accepted file in bytes; 0 is invalid. Default 1048576 (1 MiB).
    pub max_file_size: u64,
    /// A certstore_validity_policy value. Default CERTSTORE_VALIDITY_ENFORCE.
    pub validity: u32,
}

/// The size of the first version of certstore_options: the smallest struct_size accepted.
const OPTIONS_V1_SIZE: usize = size_of::<certstore_options>();

/// Fills `options` with the defaults and sets struct_size. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or points to writable memory for one certstore_options.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn certstore_options_init(options: *mut certstore_options) {
    if options.is_null() {
        return;
    }
    // SAFETY: non-NULL and writable per the contract above.
    unsafe { options.write(defaults()) };
}

fn defaults() -> certstore_options {
    certstore_options {
        struct_size: size_of::<certstore_options>() as u32,
        cert_path: std::ptr::null(),
        key_path: std::ptr::null(),
        ca_path: std::ptr::null(),
        watch: true,
        reread_interval_ms: DEFAULT_REREAD_INTERVAL.as_millis() as u32,
        max_file_size: DEFAULT_MAX_FILE_SIZE,
        validity: certstore_validity_policy::CERTSTORE_VALIDITY_ENFORCE as u32,
    }
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
    let ours = size_of::<certstore_options>();
    if !(OPTIONS_V1_SIZE..=ours).contains(&declared) {
        return Err(format!(
            "options.struct_size is {declared}, expected {OPTIONS_V1_SIZE}..={ours}: call \
             certstore_options_init() and build against a certstore.h of this or an older version"
        ));
    }
    // A caller built against an older header passes a shorter struct: its fields are read,
    // the newer ones keep their defaults.
    let mut raw = defaults();
    // SAFETY: `declared` bytes are readable at `options` (the caller's struct_size) and
    // writable at `raw` (declared <= ours); the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            (&mut raw as *mut certstore_options).cast::<u8>(),
            declared,
        );
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
    converted.watch = raw.watch;
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
