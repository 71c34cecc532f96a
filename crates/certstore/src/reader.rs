//! Reads one consistent generation of files from disk.
//!
//! The kubelet swaps a whole directory at once by renaming a `..data` symlink, and the visible
//! files are symlinks through it. Each path is resolved once, the resolved files are read, then
//! the paths are resolved again: if any resolution moved, a swap happened during the read and
//! the read is retried, so cert, key and CA always come from the same directory generation.
//! Files are opened non-blocking and must be regular files, so a FIFO or a device at a path can
//! never hang the reader.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, FileRole};
use crate::options::Options;

/// The bytes of one generation, as read.
pub(crate) struct RawFiles {
    pub cert: Vec<u8>,
    pub key: Zeroizing<Vec<u8>>,
    pub ca: Option<Vec<u8>>,
    /// SHA-256 over all three files; equal hashes mean an unchanged generation.
    pub content_hash: [u8; 32],
    /// Every file was read from inside a kubelet-style `..<timestamp>` directory: the writer
    /// completed the whole generation before it became visible, so a refusal is final.
    pub complete: bool,
}

impl RawFiles {
    /// Files as if read from disk (not a kubelet generation), for validation without I/O.
    pub(crate) fn from_bytes(cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> RawFiles {
        RawFiles {
            cert: cert.to_vec(),
            key: Zeroizing::new(key.to_vec()),
            ca: ca.map(<[u8]>::to_vec),
            content_hash: hash_generation(cert, key, ca),
            complete: false,
        }
    }
}

/// How many times a read is repeated when a directory swap is seen while reading.
const SWAP_RETRIES: usize = 3;

/// Reads cert, key and CA of one directory generation.
pub(crate) fn read_generation(options: &Options) -> Result<RawFiles, Error> {
    let mut attempt = 0;
    loop {
        let before = resolve_all(options);
        let raw = read_resolved(options, &before)?;
        let after = resolve_all(options);
        if before == after || attempt == SWAP_RETRIES {
            return Ok(raw);
        }
        attempt += 1;
    }
}

type Resolved = [Option<PathBuf>; 3];

fn resolve_all(options: &Options) -> Resolved {
    [
        std::fs::canonicalize(&options.cert_path).ok(),
        std::fs::canonicalize(&options.key_path).ok(),
        options
            .ca_path
            .as_ref()
            .and_then(|p| std::fs::canonicalize(p).ok()),
    ]
}

fn read_resolved(options: &Options, resolved: &Resolved) -> Result<RawFiles, Error> {
    let limit = options.max_file_size;
    // Read the resolved target when there is one, but name the configured path in errors:
    // that is the path the operator wrote in the configuration.
    let pick = |configured: &Path, resolved: &Option<PathBuf>| -> PathBuf {
        resolved.clone().unwrap_or_else(|| configured.to_path_buf())
    };
    let cert = read_file(
        FileRole::Certificate,
        &options.cert_path,
        &pick(&options.cert_path, &resolved[0]),
        limit,
    )?
    .to_vec();
    let key = read_file(
        FileRole::PrivateKey,
        &options.key_path,
        &pick(&options.key_path, &resolved[1]),
        limit,
    )?;
    let ca = match &options.ca_path {
        Some(ca_path) => Some(
            read_file(
                FileRole::CaBundle,
                ca_path,
                &pick(ca_path, &resolved[2]),
                limit,
            )?
            .to_vec(),
        ),
        None => None,
    };
    let content_hash = hash_generation(&cert, &key, ca.as_deref());
    let complete = resolved.iter().enumerate().all(|(i, r)| match r {
        Some(path) => in_atomic_generation(path),
        None => i == 2 && options.ca_path.is_none(),
    });
    Ok(RawFiles {
        cert,
        key,
        ca,
        content_hash,
        complete,
    })
}

/// Whether a resolved path lies in a directory named like the kubelet's generation directories
/// (`..2024_11_25_12_00_00.123456789`), which appear only once fully written.
fn in_atomic_generation(resolved: &Path) -> bool {
    resolved.parent().is_some_and(|dir| {
        dir.file_name()
            .is_some_and(|name| name.as_encoded_bytes().starts_with(b"..") && name != "..")
    })
}

fn hash_generation(cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [Some(cert), Some(key), ca] {
        match part {
            Some(bytes) => {
                ctx.update(&(bytes.len() as u64 + 1).to_le_bytes());
                ctx.update(bytes);
            }
            None => ctx.update(&0u64.to_le_bytes()),
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Reads a whole regular file of at most `limit` bytes. The buffer is zeroized on every path
/// that drops it, since it may hold a private key.
fn read_file(
    role: FileRole,
    configured: &Path,
    actual: &Path,
    limit: u64,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let io_error = |e: std::io::Error| Error::Io {
        role,
        path: configured.to_path_buf(),
        kind: e.kind(),
        reason: e.to_string(),
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(actual)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "directory"
        } else if file_type.is_fifo() {
            "FIFO"
        } else if file_type.is_char_device() {
            "character device"
        } else if file_type.is_block_device() {
            "block device"
        } else if file_type.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(Error::NotRegularFile {
            role,
            path: configured.to_path_buf(),
            kind,
        });
    }
    let too_large = |size: u64| Error::TooLarge {
        role,
        path: configured.to_path_buf(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    // One byte of headroom so read_to_end does not reallocate (and leave a stale copy) when the
    // size did not change since fstat.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    // Read one byte past the limit so a file that grew after fstat is still caught.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err(Error::Empty {
            role,
            path: configured.to_path_buf(),
        });
    }
    Ok(bytes)
}
