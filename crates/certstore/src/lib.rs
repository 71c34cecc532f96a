//! certstore keeps a TLS certificate, its private key and an optional CA bundle in memory,
//! follows their files on disk, and swaps in a new generation only after it validated.
//!
//! The data path runs one way: files on disk → [`reader`](crate) (one consistent directory
//! generation, resolved once through the kubelet's `..data` link) → validator (PEM, X.509, key
//! matches leaf, validity window, CA bundle) → [`Store`] (an `ArcSwap` of the current
//! [`Snapshot`] and a generation counter) → notifier (subscribers called on one thread with no
//! lock held). Reloads are triggered by inotify on the parent directories, a re-read timer
//! comparing content hashes, and [`Store::reload`]. A bad new generation never replaces a good
//! one: the store keeps serving the last good snapshot and reports [`Event::ReloadFailed`].
//!
//! ```no_run
//! use certstore::{Event, Options, Store};
//! let store = Store::open(Options::new("/certs/tls.crt", "/certs/tls.key").with_ca("/certs/ca.crt"))?;
//! store.subscribe(|event| match event {
//!     Event::Rotated { snapshot } => println!("now serving serial {}", snapshot.serial_hex()),
//!     Event::ReloadFailed { error, .. } => eprintln!("kept the last good certificate: {error}"),
//! });
//! let current = store.current(); // no I/O, no lock
//! # Ok::<(), certstore::Error>(())
//! ```

mod check;
mod error;
mod event;
mod notifier;
mod options;
mod reader;
mod snapshot;
mod status;
mod store;
mod time;
mod validator;
mod watcher;

pub use check::check;
pub use error::{Error, FileRole, Reason};
pub use event::Event;
pub use notifier::SubscriptionId;
pub use options::{DEFAULT_MAX_FILE_SIZE, DEFAULT_REREAD_INTERVAL, Options, ValidityPolicy};
pub use snapshot::Snapshot;
pub use status::Status;
pub use store::{ReloadOutcome, Store};
pub use time::{format_unix, unix_millis};
