//! Reads one consistent generation of files from disk.
//!
//! The kubelet swaps a whole directory at once by renaming a `..data` symlink, and the visible
//! files are symlinks through it. Every file is opened through its configured path and read;
//! then each path is looked up again (one `stat`): if any names another file than the one read,
//! a swap happened during the read and the read is retried, so cert, key and CA always come
//! from the same directory generation. (A swap is one rename that changes every path at once,
//! and the kubelet never reuses a generation directory.)
//! Files are opened non-blocking and must be regular files, so a FIFO or a device at a path can
//! never hang the reader.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

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
    /// The files read, still open: where they lie is asked only when the bytes are new.
    files: Vec<File>,
}

impl RawFiles {
    /// Files as if read from disk (not a kubelet generation), for validation without I/O.
    pub(crate) fn from_bytes(cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> RawFiles {
        RawFiles {
            cert: cert.to_vec(),
            key: Zeroizing::new(key.to_vec()),
            ca: ca.map(<[u8]>::to_vec),
            content_hash: hash_generation(cert, key, ca),
            files: Vec::new(),
        }
    }

    /// Every file was read from inside a kubelet-style `..<timestamp>` directory: the writer
    /// completed the whole generation before it became visible, so a refusal is final.
    pub(crate) fn complete(&self) -> bool {
        !self.files.is_empty() && self.files.iter().all(in_atomic_generation)
    }
}

/// How many times a read is repeated when a directory swap is seen while reading.
const SWAP_RETRIES: usize = 3;

/// Reads cert, key and CA of one directory generation.
pub(crate) fn read_generation(options: &Options) -> Result<RawFiles, Error> {
    let mut attempt = 0;
    loop {
        let (raw, opened) = read_opened(options)?;
        let still = opened.iter().all(|(path, identity, _)| {
            std::fs::metadata(path).is_ok_and(|m| same_file(&m, *identity))
        });
        if still || attempt == SWAP_RETRIES {
            let files = opened.into_iter().map(|(_, _, file)| file).collect();
            return Ok(RawFiles { files, ..raw });
        }
        attempt += 1;
    }
}

fn same_file(meta: &std::fs::Metadata, (dev, ino): (u64, u64)) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.dev() == dev && meta.ino() == ino
}

/// A file read: its configured path, its device and inode, and the open file.
type Opened<'a> = (&'a Path, (u64, u64), File);

fn read_opened(options: &Options) -> Result<(RawFiles, Vec<Opened<'_>>), Error> {
    let limit = options.max_file_size;
    let mut opened = Vec::with_capacity(3);
    let cert = read_file(
        FileRole::Certificate,
        &options.cert_path,
        limit,
        &mut opened,
    )?
    .to_vec();
    let key = read_file(FileRole::PrivateKey, &options.key_path, limit, &mut opened)?;
    let ca = match &options.ca_path {
        Some(ca_path) => Some(read_file(FileRole::CaBundle, ca_path, limit, &mut opened)?.to_vec()),
        None => None,
    };
    let content_hash = hash_generation(&cert, &key, ca.as_deref());
    let raw = RawFiles {
        cert,
        key,
        ca,
        content_hash,
        files: Vec::new(),
    };
    Ok((raw, opened))
}

/// Whether an open file lies in a directory named like the kubelet's generation directories
/// (`..2024_11_25_12_00_00.123456789`), which appear only once fully written. The kernel's
/// name of the open file says where the path led when it was opened.
fn in_atomic_generation(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .is_ok_and(|path| in_generation_dir(&path))
}

fn in_generation_dir(resolved: &Path) -> bool {
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

/// Reads a whole regular file of at most `limit` bytes through `configured` (symlinks
/// followed) and adds it to `opened`. The buffer is zeroized on every path that drops it,
/// since it may hold a private key.
fn read_file<'a>(
    role: FileRole,
    configured: &'a Path,
    limit: u64,
    opened: &mut Vec<Opened<'a>>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    use std::os::unix::fs::MetadataExt;
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
        .open(configured)
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
    (&file)
        .take(limit.saturating_add(1))
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
    opened.push((configured, (meta.dev(), meta.ino()), file));
    Ok(bytes)
}
