//! What subscribers are told.

use std::sync::Arc;

use crate::error::Error;
use crate::snapshot::Snapshot;

/// A change of what the store serves, or a refused change.
#[derive(Clone, Debug)]
pub enum Event {
    /// A new generation was validated and is now served.
    Rotated { snapshot: Arc<Snapshot> },
    /// A reload was refused; the generation `served_generation` is still served.
    ReloadFailed {
        error: Arc<Error>,
        served_generation: u64,
    },
}

impl Event {
    /// The generation served after this event.
    pub fn generation(&self) -> u64 {
        match self {
            Event::Rotated { snapshot } => snapshot.generation(),
            Event::ReloadFailed {
                served_generation, ..
            } => *served_generation,
        }
    }
}
