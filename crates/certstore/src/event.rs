//! What subscribers are told.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Error;
use crate::snapshot::Snapshot;

/// A change of what the store serves, a refused change, or a change in how it watches.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A new generation was validated and is now served.
    Rotated { snapshot: Arc<Snapshot> },
    /// A reload was refused; the generation `served_generation` is still served.
    ReloadFailed {
        error: Arc<Error>,
        served_generation: u64,
    },
    /// inotify cannot watch (some of) the store's files (e.g. `fs.inotify.max_user_watches`
    /// is exhausted): the store re-reads them on its timer until the watch is back.
    WatchDegraded {
        error: Arc<Error>,
        served_generation: u64,
    },
    /// Every watch the store needs is in place again after [`Event::WatchDegraded`].
    WatchRestored { served_generation: u64 },
    /// A watch of this store had died without an event, e.g. an ancestor directory was
    /// replaced: found by any reload (of this store or of another store watching the same
    /// directory) that saw the watched path name another directory (reported a second later,
    /// unless the old directory's deletion is announced meanwhile), or by a re-read that
    /// found on disk a generation no inotify event announced. The watches were rebuilt; the
    /// store reads its files again. `path` names a watched directory that was re-added (the
    /// first, when several were).
    WatchRepaired {
        path: PathBuf,
        served_generation: u64,
    },
    /// The subscribers were slow and `count` events of this store were discarded (oldest
    /// first, never the latest generation) because more than
    /// [`MAX_QUEUED_PER_STORE`](crate::MAX_QUEUED_PER_STORE) waited. Delivered before the
    /// events that followed the discarded ones; [`crate::Status::events_dropped`] counts them
    /// all. `served_generation` is the generation served after the newest discarded event.
    EventsDropped { count: u64, served_generation: u64 },
}

impl Event {
    /// The generation served after this event.
    pub fn generation(&self) -> u64 {
        match self {
            Event::Rotated { snapshot } => snapshot.generation(),
            Event::ReloadFailed {
                served_generation, ..
            }
            | Event::WatchDegraded {
                served_generation, ..
            }
            | Event::WatchRestored { served_generation }
            | Event::WatchRepaired {
                served_generation, ..
            }
            | Event::EventsDropped {
                served_generation, ..
            } => *served_generation,
        }
    }
}
