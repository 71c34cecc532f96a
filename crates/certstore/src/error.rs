//! What can go wrong when a generation is read, validated or watched.

use std::fmt;
use std::path::PathBuf;

/// The file a problem was found in. Every [`Error`] names one, so an operator can tell which of
/// the three mounted files to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// The certificate chain (leaf first).
    Certificate,
    /// The private key of the leaf.
    PrivateKey,
    /// The CA bundle (client CAs on a server, roots on a client).
    CaBundle,
}

impl fmt::Display for FileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileRole::Certificate => "certificate",
            FileRole::PrivateKey => "private key",
            FileRole::CaBundle => "CA bundle",
        })
    }
}

/// Why a generation was refused, or why the store could not start.
///
/// The `Display` form is one line meant for operators: it names the file and the reason and
/// never contains key material (PEM parse errors of the key file are reduced to their kind).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The options are unusable (empty path, zero size limit, ...).
    InvalidOptions(String),
    /// The file could not be opened or read.
    Io {
        role: FileRole,
        path: PathBuf,
        reason: String,
    },
    /// The path names something other than a regular file (FIFO, directory, device, socket).
    NotRegularFile {
        role: FileRole,
        path: PathBuf,
        kind: &'static str,
    },
    /// The file is larger than [`crate::Options::max_file_size`].
    TooLarge {
        role: FileRole,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The file is empty.
    Empty { role: FileRole, path: PathBuf },
    /// The PEM text is broken (missing END line, bad base64, truncated).
    MalformedPem {
        role: FileRole,
        path: PathBuf,
        reason: &'static str,
    },
    /// The file parsed but holds no item of the kind expected.
    NothingFound {
        role: FileRole,
        path: PathBuf,
        expected: &'static str,
    },
    /// The private key is encrypted; certstore does not take passphrases.
    EncryptedKey { path: PathBuf },
    /// The private key is of a kind or encoding the crypto provider cannot load.
    UnsupportedKey { path: PathBuf, reason: String },
    /// A certificate is not valid X.509 DER.
    InvalidCertificate {
        role: FileRole,
        path: PathBuf,
        index: usize,
        reason: String,
    },
    /// The private key does not belong to the leaf certificate.
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The leaf's notAfter is in the past.
    Expired { path: PathBuf, not_after: i64 },
    /// The leaf's notBefore is in the future.
    NotYetValid { path: PathBuf, not_before: i64 },
    /// The file watcher could not be set up on a directory.
    Watch { path: PathBuf, reason: String },
    /// A bug inside certstore was caught (a panic); the last good generation is still served.
    Internal(String),
}

impl Error {
    /// The path the problem was found in, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::InvalidOptions(_) | Error::Internal(_) => None,
            Error::Io { path, .. }
            | Error::NotRegularFile { path, .. }
            | Error::TooLarge { path, .. }
            | Error::Empty { path, .. }
            | Error::MalformedPem { path, .. }
            | Error::NothingFound { path, .. }
            | Error::EncryptedKey { path }
            | Error::UnsupportedKey { path, .. }
            | Error::InvalidCertificate { path, .. }
            | Error::Expired { path, .. }
            | Error::NotYetValid { path, .. }
            | Error::Watch { path, .. } => Some(path),
            Error::KeyMismatch { key, .. } => Some(key),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            Error::Io { role, path, reason } => {
                write!(f, "{role} file {}: cannot read: {reason}", path.display())
            }
            Error::NotRegularFile { role, path, kind } => write!(
                f,
                "{role} file {}: is a {kind}, not a regular file",
                path.display()
            ),
            Error::TooLarge {
                role,
                path,
                size,
                limit,
            } => write!(
                f,
                "{role} file {}: {size} bytes exceeds the limit of {limit} bytes",
                path.display()
            ),
            Error::Empty { role, path } => write!(f, "{role} file {}: is empty", path.display()),
            Error::MalformedPem { role, path, reason } => {
                write!(f, "{role} file {}: malformed PEM: {reason}", path.display())
            }
            Error::NothingFound {
                role,
                path,
                expected,
            } => write!(f, "{role} file {}: no {expected} found", path.display()),
            Error::EncryptedKey { path } => write!(
                f,
                "private key file {}: key is encrypted; encrypted keys are not supported, \
                 provide an unencrypted PKCS#8, PKCS#1 or SEC1 key",
                path.display()
            ),
            Error::UnsupportedKey { path, reason } => write!(
                f,
                "private key file {}: unsupported key: {reason}",
                path.display()
            ),
            Error::InvalidCertificate {
                role,
                path,
                index,
                reason,
            } => write!(
                f,
                "{role} file {}: certificate #{index} is invalid: {reason}",
                path.display()
            ),
            Error::KeyMismatch { cert, key } => write!(
                f,
                "private key file {}: key does not match the leaf certificate in {}",
                key.display(),
                cert.display()
            ),
            Error::Expired { path, not_after } => write!(
                f,
                "certificate file {}: leaf expired at {} (notAfter)",
                path.display(),
                crate::time::format_unix(*not_after)
            ),
            Error::NotYetValid { path, not_before } => write!(
                f,
                "certificate file {}: leaf is not valid before {} (notBefore)",
                path.display(),
                crate::time::format_unix(*not_before)
            ),
            Error::Watch { path, reason } => {
                write!(f, "cannot watch directory {}: {reason}", path.display())
            }
            Error::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for Error {}
