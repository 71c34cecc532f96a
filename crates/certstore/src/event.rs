//! What subscribers are told.

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
            | Event::WatchRestored { served_generation } => *served_generation,
        }
    }
}
