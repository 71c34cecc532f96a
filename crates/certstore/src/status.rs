//! Counters and the last outcome of reloads, for health checks and metrics.

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Error;

/// A copy of the store's reload history at one instant.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Generation served now.
    pub generation: u64,
    /// Generations published, the initial load included.
    pub reloads_ok: u64,
    /// Reloads refused (after retries).
    pub reloads_failed: u64,
    /// When the last generation was published.
    pub last_success: Option<SystemTime>,
    /// When the last reload was refused.
    pub last_failure: Option<SystemTime>,
    /// Why the most recent reload was refused; `None` when it succeeded (or found no change).
    pub last_error: Option<Arc<Error>>,
    /// notAfter of the served leaf, unix seconds.
    pub not_after: i64,
}
