//! How a [`crate::Store`] finds, limits and judges its files.

use std::path::PathBuf;
use std::time::Duration;

/// Whether a new leaf outside its validity window may be served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValidityPolicy {
    /// Refuse a leaf that is expired or not yet valid (the default): a client would refuse it.
    #[default]
    Enforce,
    /// Serve the leaf whatever its validity window (for tests and clock-less devices).
    Ignore,
}

/// Where the files are and how they are watched. Start from [`Options::new`] and change the
/// fields you need (fields are added over time).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// PEM certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1; unencrypted).
    pub key_path: PathBuf,
    /// Optional PEM CA bundle: client CAs on a server, roots on a client.
    pub ca_path: Option<PathBuf>,
    /// Watch the parent directories with inotify (the fast path). Default `true`.
    pub watch: bool,
    /// Re-read the files this often and publish them if their content changed; the safety net
    /// for writers inotify cannot see. `None` disables it. Default 60 s.
    pub reread_interval: Option<Duration>,
    /// Largest accepted file, in bytes. Default 1 MiB.
    pub max_file_size: u64,
    /// What to do with a leaf outside its validity window. Default [`ValidityPolicy::Enforce`].
    pub validity: ValidityPolicy,
    /// Delays between attempts when a reload is refused for a reason a writer in progress can
    /// cause (a key that does not match yet, truncated PEM, a missing or unreadable file),
    /// before the failure is reported. A non-atomic writer (cert first, key later) is caught in
    /// between. The waits hold no lock and block no thread: any file event or explicit reload
    /// runs at once. Refusals a half-written file cannot explain (expired, not yet valid,
    /// encrypted key, a FIFO, a file over the size limit), and any refusal of a kubelet-style
    /// `..data` generation (whose files are complete when it appears), are reported at once.
    /// Default 5, 20, 80, 320 ms.
    pub retry_backoff: Vec<Duration>,
}

/// Default largest file: far above any real chain, far below anything that hurts.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 20;
/// Default re-read interval of the safety timer.
pub const DEFAULT_REREAD_INTERVAL: Duration = Duration::from_secs(60);

impl Options {
    /// Options with the defaults above for a certificate and key path.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        Options {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            ca_path: None,
            watch: true,
            reread_interval: Some(DEFAULT_REREAD_INTERVAL),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            validity: ValidityPolicy::Enforce,
            retry_backoff: [5, 20, 80, 320]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
        }
    }

    /// Sets the CA bundle path.
    pub fn with_ca(mut self, ca_path: impl Into<PathBuf>) -> Self {
        self.ca_path = Some(ca_path.into());
        self
    }

    /// The same options with every path made absolute against the current working directory,
    /// so a later `chdir` changes nothing. Symlinks are kept: they are followed at every read.
    pub(crate) fn absolute(mut self) -> Result<Options, crate::Error> {
        let abs = |p: &mut PathBuf| -> Result<(), crate::Error> {
            *p = std::path::absolute(&*p).map_err(|e| {
                crate::Error::InvalidOptions(format!(
                    "cannot make {} absolute: {e}",
                    crate::error::Shown(p)
                ))
            })?;
            Ok(())
        };
        abs(&mut self.cert_path)?;
        abs(&mut self.key_path)?;
        if let Some(ca) = self.ca_path.as_mut() {
            abs(ca)?;
        }
        Ok(self)
    }

    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let bad = |why: &str| Err(crate::Error::InvalidOptions(why.to_owned()));
        if self.cert_path.as_os_str().is_empty() {
            return bad("cert_path is empty");
        }
        if self.key_path.as_os_str().is_empty() {
            return bad("key_path is empty");
        }
        if self
            .ca_path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad("ca_path is empty (leave it unset for no CA bundle)");
        }
        if self.max_file_size == 0 {
            return bad("max_file_size must be greater than zero");
        }
        if self.reread_interval == Some(Duration::ZERO) {
            return bad("reread_interval must be greater than zero (None disables it)");
        }
        Ok(())
    }
}
