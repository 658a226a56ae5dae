//! The storage seam of writes: idempotency keys (claimed before the work, answered in the
//! transaction of its effect), records written through the API stored at once, and bulk
//! batches of writes processed in the background.

use async_trait::async_trait;
use ironbridge_model::{Entity, Timestamp};

use super::{ConnId, NewJob, OrgId, RecordUpsert, StoreResult};

/// Whose idempotency key: keys are per credential and connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemScope {
    /// The organization (for purges and tenancy).
    pub org_id: String,
    /// The credential that sent the request: an admin key's id, or the connection id for a
    /// connection token.
    pub credential_id: String,
    /// The connection written to (empty for organization-level requests).
    pub connection_id: String,
    /// The caller's `Idempotency-Key`.
    pub key: String,
}

/// What a key was first used for.
#[derive(Debug, Clone)]
pub struct IdemRequest {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// SHA-256 of the method, path and body: another request under the same key is refused.
    pub request_hash: String,
}

/// The first answer given under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body, byte for byte.
    pub body: String,
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemClaim {
    /// The key is this request's to work under. `reconcile`: an earlier attempt under it may
    /// have reached the source (its process died or its answer was lost), so the work must
    /// first look for its effect there.
    Claimed {
        /// An earlier attempt may have reached the source.
        reconcile: bool,
    },
    /// The key was answered before: this answer, byte for byte.
    Replay(IdemAnswer),
    /// The key was used for another request.
    Mismatch,
    /// Another request under the key is in flight.
    InFlight,
}

/// A claimed key and its holder, passed to the write that completes it.
#[derive(Debug, Clone)]
pub struct IdemHold {
    /// The key.
    pub scope: IdemScope,
    /// This attempt's token: only it may complete or release the claim.
    pub owner: String,
}

/// A record the source answered a write with, stored at once.
#[derive(Debug, Clone)]
pub struct WrittenRecord {
    /// Its entity.
    pub entity: Entity,
    /// The record, mapped.
    pub record: RecordUpsert,
    /// Commit time.
    pub now: Timestamp,
    /// A partial record laid over the stored payload ([`crate::partial`]): its write takes
    /// turns with a sync's check of the versions it merged with.
    pub partial: bool,
}

/// Batch states.
pub mod batch_status {
    /// Waiting for a worker.
    pub const QUEUED: &str = "queued";
    /// Being processed.
    pub const RUNNING: &str = "running";
    /// Every operation was tried (some may have failed).
    pub const COMPLETED: &str = "completed";
    /// Stopped at the first failure (`on_error = stop`).
    pub const FAILED: &str = "failed";
    /// Stopped by a cancel before every operation was tried.
    pub const CANCELLED: &str = "cancelled";
}

/// Operation states.
pub mod operation_status {
    /// Not tried yet.
    pub const PENDING: &str = "pending";
    /// Sent to the source; its answer is not stored yet (after a crash: outcome unknown).
    pub const SENDING: &str = "sending";
    /// Written.
    pub const SUCCEEDED: &str = "succeeded";
    /// Refused (by validation or by the source).
    pub const FAILED: &str = "failed";
    /// Never tried: the batch was cancelled or stopped first.
    pub const CANCELLED: &str = "cancelled";
}

/// A batch as stored.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `bat_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The connection written to.
    pub connection_id: String,
    /// See [`batch_status`].
    pub status: String,
    /// Operations per batch (1–100).
    pub batch_size: i64,
    /// Pause between batches.
    pub delay_ms: i64,
    /// `continue` or `stop`.
    pub on_error: String,
    /// Operations in all.
    pub total: i64,
    /// Operations written.
    pub succeeded: i64,
    /// Operations refused.
    pub failed: i64,
    /// Operations never tried.
    pub cancelled: i64,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// The job processing it.
    pub job_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// One operation of a batch.
#[derive(Debug, Clone)]
pub struct BatchOperation {
    /// Its batch.
    pub batch_id: String,
    /// Position in the batch, from 0.
    pub idx: i64,
    /// `create` or `update`.
    pub action: String,
    /// The entity written.
    pub entity: String,
    /// Our id of the record updated.
    pub target_id: Option<String>,
    /// The unified fields (JSON object).
    pub body: String,
    /// See [`operation_status`].
    pub status: String,
    /// Times it was sent.
    pub attempts: i64,
    /// Our id of the record written.
    pub record_id: Option<String>,
    /// The record written, or the error (JSON).
    pub result: Option<String>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct OperationEnd {
    /// Its position.
    pub idx: i64,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    /// The record written, stored at once with the outcome.
    pub written: Option<WrittenRecord>,
    /// The record rendered, or the error, as JSON.
    pub result: String,
}

/// Storage of idempotency keys, written records and batches.
#[async_trait]
pub trait WriteStore: Send + Sync {
    /// Claims `scope`'s key for `request` until `lock_until`, or says why not: replayed,
    /// used for another request, or in flight. A key left in flight past its lock (its
    /// process died), or whose outcome was unknown, is claimed again with `reconcile`.
    async fn claim_idempotency(
        &self,
        scope: &IdemScope,
        request: &IdemRequest,
        owner: &str,
        now: Timestamp,
        lock_until: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<IdemClaim>;

    /// Stores the answer of a claimed key (work with no stored effect of its own); false
    /// when the claim was lost.
    async fn answer_idempotency(&self, hold: &IdemHold, answer: &IdemAnswer) -> StoreResult<bool>;

    /// Gives a claimed key up: forgotten when the work surely did not reach the source (the
    /// caller may retry with it, even with another body), kept as `unknown` when it may have
    /// (a retry reconciles first).
    async fn release_idempotency(&self, hold: &IdemHold, outcome_unknown: bool) -> StoreResult<()>;

    /// Forgets keys that expired before `now`; returns how many.
    async fn purge_idempotency(&self, now: Timestamp, limit: u32) -> StoreResult<u64>;

    /// Stores a record the source answered a write with, and, in the same transaction, the
    /// answer of the idempotency key it was written under. A complete sync pass in progress
    /// counts it as seen, so its sweep never marks it deleted.
    async fn store_written(
        &self,
        conn: &ConnId,
        written: &WrittenRecord,
        answer: Option<(&IdemHold, &IdemAnswer)>,
    ) -> StoreResult<()>;

    /// Stores a batch, its operations and the job that processes it, in one transaction.
    async fn create_batch(
        &self,
        batch: &Batch,
        operations: &[BatchOperation],
        job: &NewJob,
    ) -> StoreResult<()>;

    /// A batch of the organization.
    async fn get_batch(&self, org: &OrgId, id: &str) -> StoreResult<Batch>;

    /// Batches of a connection, newest first, before a keyset position.
    async fn list_batches(
        &self,
        org: &OrgId,
        conn: &ConnId,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Batch>>;

    /// Operations of a batch of the organization after a position, in order, optionally
    /// with one status.
    async fn list_batch_operations(
        &self,
        org: &OrgId,
        batch_id: &str,
        after_idx: Option<i64>,
        status: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BatchOperation>>;

    /// Asks a batch to stop before its next batch of operations.
    async fn cancel_batch(&self, org: &OrgId, id: &str, now: Timestamp) -> StoreResult<Batch>;

    /// The next operations to run (pending or left sending by a crash), in order.
    async fn next_batch_operations(
        &self,
        batch_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<BatchOperation>>;

    /// Marks operations sent (before the source is called) and the batch running.
    async fn mark_operations_sending(
        &self,
        batch_id: &str,
        idxs: &[i64],
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Records how operations ended, with the records they wrote, in one transaction.
    async fn end_operations(
        &self,
        conn: &ConnId,
        batch_id: &str,
        ends: &[OperationEnd],
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Ends a batch: operations not tried are cancelled, the status set, and its
    /// `batch.completed` event (id `event_id`, with the final counts) written in the same
    /// transaction.
    async fn finish_batch(
        &self,
        batch_id: &str,
        status: &str,
        event_id: &str,
        now: Timestamp,
    ) -> StoreResult<Batch>;
}
