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
    /// The file could not be opened or read. `kind` keeps the operating system's answer
    /// (`NotFound` for a missing file, `PermissionDenied`, ...).
    Io {
        role: FileRole,
        path: PathBuf,
        kind: std::io::ErrorKind,
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
    /// The system refused a resource certstore needs (a thread, a file descriptor).
    Resource(String),
    /// The store was shut down; it serves its last generation but reloads no more.
    Closed,
    /// A bug inside certstore was caught (a panic); the last good generation is still served.
    Internal(String),
}

/// Why a generation was refused, as a stable value for programs (metrics labels, alerts,
/// the C ABI's `certstore_reason`): the message says the same for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The private key does not belong to the leaf certificate.
    KeyMismatch,
    /// The leaf's notAfter has passed.
    Expired,
    /// The leaf's notBefore has not come yet.
    NotYetValid,
    /// The private key is encrypted.
    EncryptedKey,
    /// The private key is of a kind the crypto provider cannot load.
    UnsupportedKey,
    /// A file is empty, its PEM is broken, it holds no item of the expected kind, or a
    /// certificate is not valid X.509.
    Parse,
    /// A file exceeds the size limit.
    TooLarge,
    /// A path names a FIFO, directory, device or socket.
    NotRegularFile,
    /// A file does not exist (or a symlink on its path dangles).
    Missing,
    /// A file could not be opened or read for another reason (permissions, EIO, EMFILE).
    Io,
    /// Anything else: unusable options, a watcher problem, a caught bug.
    Other,
}

impl Reason {
    /// A short snake_case name, stable across versions (used as a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::KeyMismatch => "key_mismatch",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::EncryptedKey => "encrypted_key",
            Reason::UnsupportedKey => "unsupported_key",
            Reason::Parse => "parse_error",
            Reason::TooLarge => "too_large",
            Reason::NotRegularFile => "not_regular_file",
            Reason::Missing => "missing",
            Reason::Io => "io_error",
            Reason::Other => "other",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable reason behind this error.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Io { kind, .. } if *kind == std::io::ErrorKind::NotFound => Reason::Missing,
            Error::Io { .. } => Reason::Io,
            Error::NotRegularFile { .. } => Reason::NotRegularFile,
            Error::TooLarge { .. } => Reason::TooLarge,
            Error::Empty { .. }
            | Error::MalformedPem { .. }
            | Error::NothingFound { .. }
            | Error::InvalidCertificate { .. } => Reason::Parse,
            Error::EncryptedKey { .. } => Reason::EncryptedKey,
            Error::UnsupportedKey { .. } => Reason::UnsupportedKey,
            Error::KeyMismatch { .. } => Reason::KeyMismatch,
            Error::Expired { .. } => Reason::Expired,
            Error::NotYetValid { .. } => Reason::NotYetValid,
            Error::InvalidOptions(_)
            | Error::Watch { .. }
            | Error::Resource(_)
            | Error::Closed
            | Error::Internal(_) => Reason::Other,
        }
    }

    /// The file the problem was found in, when there is one.
    pub fn role(&self) -> Option<FileRole> {
        match self {
            Error::Io { role, .. }
            | Error::NotRegularFile { role, .. }
            | Error::TooLarge { role, .. }
            | Error::Empty { role, .. }
            | Error::MalformedPem { role, .. }
            | Error::NothingFound { role, .. }
            | Error::InvalidCertificate { role, .. } => Some(*role),
            Error::EncryptedKey { .. }
            | Error::UnsupportedKey { .. }
            | Error::KeyMismatch { .. } => Some(FileRole::PrivateKey),
            Error::Expired { .. } | Error::NotYetValid { .. } => Some(FileRole::Certificate),
            Error::InvalidOptions(_)
            | Error::Watch { .. }
            | Error::Resource(_)
            | Error::Closed
            | Error::Internal(_) => None,
        }
    }

    /// The path the problem was found in, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::InvalidOptions(_) | Error::Resource(_) | Error::Closed | Error::Internal(_) => {
                None
            }
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
            Error::Io {
                role, path, reason, ..
            } => {
                write!(f, "{role} file {}: cannot read: {reason}", Shown(path))
            }
            Error::NotRegularFile { role, path, kind } => write!(
                f,
                "{role} file {}: is a {kind}, not a regular file",
                Shown(path)
            ),
            Error::TooLarge {
                role,
                path,
                size,
                limit,
            } => write!(
                f,
                "{role} file {}: {size} bytes exceeds the limit of {limit} bytes",
                Shown(path)
            ),
            Error::Empty { role, path } => write!(f, "{role} file {}: is empty", Shown(path)),
            Error::MalformedPem { role, path, reason } => {
                write!(f, "{role} file {}: malformed PEM: {reason}", Shown(path))
            }
            Error::NothingFound {
                role,
                path,
                expected,
            } => write!(f, "{role} file {}: no {expected} found", Shown(path)),
            Error::EncryptedKey { path } => write!(
                f,
                "private key file {}: key is encrypted; encrypted keys are not supported, \
                 provide an unencrypted PKCS#8, PKCS#1 or SEC1 key",
                Shown(path)
            ),
            Error::UnsupportedKey { path, reason } => write!(
                f,
                "private key file {}: unsupported key: {reason}",
                Shown(path)
            ),
            Error::InvalidCertificate {
                role,
                path,
                index,
                reason,
            } => write!(
                f,
                "{role} file {}: certificate #{index} is invalid: {reason}",
                Shown(path)
            ),
            Error::KeyMismatch { cert, key } => write!(
                f,
                "private key file {}: key does not match the leaf certificate in {}",
                Shown(key),
                Shown(cert)
            ),
            Error::Expired { path, not_after } => write!(
                f,
                "certificate file {}: leaf expired at {} (notAfter)",
                Shown(path),
                crate::time::format_unix(*not_after)
            ),
            Error::NotYetValid { path, not_before } => write!(
                f,
                "certificate file {}: leaf is not valid before {} (notBefore)",
                Shown(path),
                crate::time::format_unix(*not_before)
            ),
            Error::Watch { path, reason } => {
                write!(f, "cannot watch directory {}: {reason}", Shown(path))
            }
            Error::Resource(why) => write!(f, "out of resources: {why}"),
            Error::Closed => write!(f, "the store is shut down"),
            Error::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A path as it goes into a one-line message: printable UTF-8 as is, anything else (control
/// characters such as a newline, bytes that are not UTF-8, backslashes) escaped as `\xNN`, so a
/// hostile or odd file name can neither break a log line nor hide in it.
pub(crate) struct Shown<'a>(pub &'a std::path::Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::ffi::OsStrExt;
        for chunk in self.0.as_os_str().as_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() || c == '\\' {
                    for b in c.to_string().bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Shown;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn odd_bytes_in_paths_are_escaped() {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/certs/a\nb\xff\\c.crt"));
        assert_eq!(Shown(path).to_string(), "/certs/a\\x0ab\\xff\\x5cc.crt");
        assert_eq!(
            Shown(std::path::Path::new("/tls/é.crt")).to_string(),
            "/tls/é.crt"
        );
    }
}
