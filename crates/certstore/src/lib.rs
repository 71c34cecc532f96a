//! certstore keeps a TLS certificate, its private key and an optional CA bundle in memory,
//! follows their files on disk, and swaps in a new generation only after it validated.
//!
//! The data path runs one way: files on disk → reader (one consistent directory generation,
//! resolved once through the kubelet's `..data` link) → validator (PEM, X.509, key matches
//! leaf, validity window, CA bundle; every output re-encoded from the DER it accepted) →
//! [`Store`] (an `ArcSwap` of the one current [`Snapshot`], stamped with its generation when
//! published) → notifier (subscribers called on one thread with no lock held). A bad new
//! generation never replaces a good one: the store keeps serving the last good snapshot,
//! reports [`Event::ReloadFailed`], and records what the disk holds in [`Status`].
//!
//! Every store of a process shares one engine: one inotify instance read by one thread, a
//! registry of watched directories (one watch per distinct directory), two reload workers and
//! one notifier thread. It starts with the first store and stops with the last. Reloads are
//! triggered by inotify on the directories of every symlink on a file's path, a re-read timer
//! comparing content hashes, retries after refusals a writer in progress can explain (never a
//! sleep: any event cuts them short), and [`Store::reload`].
//!
//! ```no_run
//! use certstore::{Event, Options, Store};
//! let store = Store::open(Options::new("/certs/tls.crt", "/certs/tls.key").with_ca("/certs/ca.crt"))?;
//! store.subscribe(|event| match event {
//!     Event::Rotated { snapshot } => println!("now serving serial {}", snapshot.serial_hex()),
//!     Event::ReloadFailed { error, .. } => eprintln!("kept the last good certificate: {error}"),
//!     _ => {}
//! });
//! let current = store.current(); // no I/O, no lock
//! # Ok::<(), certstore::Error>(())
//! ```

// The only unsafe code is the inotify/eventfd system calls in engine/sys.rs (allowed there,
// each block with its SAFETY argument); the lints keep it so.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod check;
mod engine;
mod error;
mod event;
mod notifier;
mod options;
mod pem;
mod reader;
mod snapshot;
mod status;
mod store;
mod time;
mod validator;

pub use check::{check, check_bytes};
pub use engine::{DEGRADED_REREAD_INTERVAL, simulate_lost_events, simulate_watch_limit};
pub use error::{Error, FileRole, Reason};
pub use event::Event;
pub use notifier::{MAX_QUEUED_PER_STORE, SubscriptionId};
pub use options::{DEFAULT_MAX_FILE_SIZE, DEFAULT_REREAD_INTERVAL, Options, ValidityPolicy};
pub use snapshot::Snapshot;
pub use status::{DiskState, Status};
pub use store::{ReloadOutcome, Store};
pub use time::{format_unix, unix_millis};
