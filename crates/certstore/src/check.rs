//! Validating files once, without a store: what `certstore check` and the store's own reload
//! run, so a command-line verdict and the store's can never disagree.

use crate::error::Error;
use crate::options::Options;
use crate::reader::read_generation;
use crate::snapshot::Snapshot;
use crate::validator::validate;

/// Reads the files named in `options` once and validates them as a reload at `now_unix`
/// (unix seconds) would: the same reader, the same validator, no retries, no watching.
/// Returns the generation that would be served (numbered 1), or the reason it would be refused.
pub fn check(options: &Options, now_unix: i64) -> Result<Snapshot, Error> {
    options.check()?;
    let raw = read_generation(options)?;
    validate(raw, options, now_unix).map_err(|r| r.error)
}

/// Validates certificate, key and CA bytes as if a reload had read them from files named
/// `cert.pem`, `key.pem` and `ca.pem` — the entry point of the fuzz target and of tests that
/// need no files. Not a stable API.
#[doc(hidden)]
pub fn check_bytes(
    cert: &[u8],
    key: &[u8],
    ca: Option<&[u8]>,
    now_unix: i64,
) -> Result<Snapshot, Error> {
    let mut options = Options::new("cert.pem", "key.pem");
    if ca.is_some() {
        options.ca_path = Some("ca.pem".into());
    }
    let raw = crate::reader::RawFiles::from_bytes(cert, key, ca);
    validate(raw, &options, now_unix).map_err(|r| r.error)
}
