//! Counters, the last outcome of reloads, and what the disk holds compared with what is served.

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Error, Reason};

/// A copy of the store's reload history at one instant.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Status {
    /// Generation served now. A publish swaps the snapshot in and records its status under
    /// one lock, so a status taken after [`crate::Store::current`] or
    /// [`crate::Store::generation`] returned generation G shows G or a later one, never an
    /// earlier one, together with that generation's other fields.
    pub generation: u64,
    /// Generations published, the initial load included.
    pub reloads_ok: u64,
    /// Refusals reported (a refusal of the same files is counted once).
    pub reloads_failed: u64,
    /// When the last generation was published.
    pub last_success: Option<SystemTime>,
    /// When the last refusal was reported.
    pub last_failure: Option<SystemTime>,
    /// Why the files on disk are refused now; `None` once a reload found them served or
    /// published them. Cleared as soon as the served files are restored.
    pub last_error: Option<Arc<Error>>,
    /// notAfter of the served leaf, unix seconds.
    pub not_after: i64,
    /// What the last read found on disk, refused or not.
    pub disk: DiskState,
    /// Since when the disk has held a generation other than the one served (refused, or not
    /// yet retried); `None` while they agree.
    pub disk_differs_since: Option<SystemTime>,
    /// Why inotify does not watch (all of) this store's files, when it does not: the store
    /// then re-reads them on its timer, and says so here until the watch is back.
    pub watch_degraded: Option<Arc<Error>>,
    /// How long the last reload took to read and validate the files (set before its event
    /// is published, so a subscriber reading the status sees that reload's duration).
    pub last_reload_duration: std::time::Duration,
    /// How many times the store's watches were found dead and rebuilt, by whichever reload
    /// found it (each also reported as [`crate::Event::WatchRepaired`]).
    pub watch_repairs: u64,
    /// Events of this store discarded because its subscribers were too slow (more than
    /// [`MAX_QUEUED_PER_STORE`](crate::MAX_QUEUED_PER_STORE) waiting); each discard is also
    /// reported by an [`crate::Event::EventsDropped`].
    pub events_dropped: u64,
}

impl Status {
    /// Whether the files on disk differ from the generation served.
    pub fn disk_differs(&self) -> bool {
        self.disk_differs_since.is_some()
    }
}

/// What the files on disk held at the last read, whether or not it was served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskState {
    /// SHA-256 over certificate, key and CA files; `None` when they could not be read.
    pub content_hash: Option<[u8; 32]>,
    /// The leaf's serial (lowercase hex) when the leaf parsed.
    pub serial_hex: Option<String>,
    /// The leaf's notAfter (unix seconds) when the leaf parsed.
    pub not_after: Option<i64>,
    /// Why the disk generation is not served; `None` when it is the served one.
    pub refused: Option<Reason>,
}
