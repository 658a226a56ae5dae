//! The storage seam of queue statistics: how many jobs wait and run, per kind, as the
//! operations metrics report them (an operator sees the queue grow before syncs fall behind).

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::StoreResult;

/// Jobs of one kind that are queued or running now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    /// The job kind (`sync`).
    pub kind: String,
    /// Queued jobs, due now or later (a retry waits for its back-off).
    pub queued: u64,
    /// Queued jobs already due: those waiting only for a worker.
    pub due: u64,
    /// Jobs a worker holds a lease on (or held one that expired, until it is taken over).
    pub running: u64,
}

/// Queue statistics. Part of [`super::Store`].
#[async_trait]
pub trait QueueStats: Send + Sync {
    /// Queued and running jobs per kind, as of `now` (which decides what is due); kinds
    /// without such jobs are left out. Not tenant-scoped: it is the operator's view of the
    /// whole queue, and it returns counts only, no job and no organization.
    async fn job_counts(&self, now: Timestamp) -> StoreResult<Vec<JobCount>>;
}
