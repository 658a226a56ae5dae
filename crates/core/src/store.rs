//! The storage seam: what the rest of Ironbridge needs from a database. Every method names
//! the organization or connection it acts for, so a missing tenant filter cannot compile.

mod dashboard;
mod field_mappings;
mod flows;
mod link;
mod queue;
mod webhooks;
mod writes;

use async_trait::async_trait;
use ironbridge_model::api::McpAccess;
use ironbridge_model::{Entity, Timestamp};

pub use crate::raw_payload::RawPayload;

pub use dashboard::*;
pub use field_mappings::*;
pub use flows::*;
pub use link::*;
pub use queue::*;
pub use webhooks::*;
pub use writes::*;

/// An organization id (`org_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(pub String);

/// A connection id (`conn_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnId(pub String);

/// The cause of a storage failure, kept as an error source for the logs.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Storage failures, classified so the API can answer correctly without showing internals:
/// only [`Conflict`]'s text, written by Ironbridge, ever reaches a response.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row for this tenant.
    #[error("not found")]
    NotFound,
    /// The change conflicts with the current state or a named uniqueness rule.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The organization has no free connection credit.
    #[error("no connection credits available")]
    CreditsExhausted,
    /// The database cannot be reached or the pool is closed.
    #[error("database unavailable")]
    Unavailable(#[source] Cause),
    /// Anything else: logged with its cause, answered without it.
    #[error("database error")]
    Internal(#[source] Cause),
    /// A job's write refused because the job is no longer this attempt's: another worker
    /// took it over (the lease ran out) or it ended. Nothing of the write was kept.
    #[error("the job was taken over by another worker")]
    Fenced,
}

impl StoreError {
    /// A change the data's current state refuses; `message` is shown to the caller.
    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError::Conflict(Conflict::State(message.into()))
    }

    /// The error and every cause under it, for a log line.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

/// Why a change was refused: by the data's state, or by a uniqueness rule the schema names.
/// The text is Ironbridge's, never the database's, so it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The change contradicts the record's state (already revoked, already replaced, ...).
    #[error("{0}")]
    State(String),
    /// A unique key is already taken.
    #[error("{what} already exists")]
    Duplicate {
        /// The constraint or index, by its name in the schema.
        constraint: &'static str,
        /// What it keeps unique, for people (`an API key with this token`).
        what: &'static str,
    },
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The lease a job's writes are fenced by: its id, the worker holding it and the attempt
/// (each claim, takeovers included, starts a new one). A store seen through
/// [`Store::fenced`] checks it inside every transaction it commits, so a worker that lost
/// the job (paused, partitioned or just slow) cannot change anything after its successor
/// began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The job.
    pub job_id: String,
    /// The worker holding its lease.
    pub owner: String,
    /// The attempt (the job's claim count when this worker claimed it).
    pub attempt: i64,
}

impl Fence {
    /// The fence of `job` as claimed by `owner`.
    pub fn of(job: &Job, owner: &str) -> Self {
        Fence {
            job_id: job.id.clone(),
            owner: owner.to_string(),
            attempt: job.attempts,
        }
    }
}

/// What a run of an entity wrote over all its attempts (a run resumed after a crash or a
/// takeover adds to what the earlier attempts wrote).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Records written, by outcome (deletions include the sweep and the deletion log).
    pub written: WriteCounts,
    /// Records that could not be mapped.
    pub skipped: u64,
}

/// An organization.
#[derive(Debug, Clone)]
pub struct Organization {
    /// `org_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Size of the connection credit pool.
    pub connection_credits: i64,
    /// Creation time.
    pub created_at: Timestamp,
}

/// An admin API key's metadata; the secret is only stored as a hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// Label.
    pub name: String,
    /// Visible start of the key.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use, to the minute.
    pub last_used_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// What the key may do through the MCP server.
    pub mcp_access: McpAccess,
}

/// A new admin API key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// `key_…`.
    pub id: String,
    /// Label.
    pub name: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Visible start of the key.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// What the key may do through the MCP server.
    pub mcp_access: McpAccess,
}

/// A connection as stored. `credentials` is ciphertext.
#[derive(Clone)]
pub struct Connection {
    /// `conn_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// System id (`sandbox`, ...).
    pub system: String,
    /// Label.
    pub name: Option<String>,
    /// Stored status (see `ConnectionStatus`).
    pub status: String,
    /// Settings JSON object.
    pub settings: String,
    /// End-user JSON object, if any.
    pub end_user: Option<String>,
    /// Encrypted credentials (`v1.…`), if any.
    pub credentials: Option<String>,
    /// Visible start of the token.
    pub token_prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Disconnection time.
    pub disconnected_at: Option<Timestamp>,
    /// Connection this one replaced.
    pub replaces: Option<String>,
    /// Connection that replaced this one.
    pub replaced_by: Option<String>,
    /// Last successful upstream call.
    pub last_success_at: Option<Timestamp>,
    /// Last failed upstream call.
    pub last_error_at: Option<Timestamp>,
    /// Code of the last failure.
    pub last_error_code: Option<String>,
    /// Failures since the last success.
    pub consecutive_errors: i64,
    /// Failures in total.
    pub error_count: i64,
    /// Circuit breaker state (`closed`, `open`, `half_open`).
    pub circuit_state: String,
    /// When the last full sync (a pass over everything, which finds deletions) succeeded.
    pub last_full_sync_at: Option<Timestamp>,
    /// How far the source's clock ran ahead of ours (negative: behind), in milliseconds, as
    /// the last sync measured it; `None` until measured.
    pub source_clock_offset_ms: Option<i64>,
    /// When the source's clock was last measured.
    pub source_clock_measured_at: Option<Timestamp>,
    /// What the token may do through the MCP server.
    pub mcp_access: McpAccess,
    /// The version of its field mappings (0: the system's defaults, never changed).
    pub mapping_version: i64,
}

// Hand-written so credentials can never reach a log through `{:?}`.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("system", &self.system)
            .field("status", &self.status)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<encrypted>"),
            )
            .finish_non_exhaustive()
    }
}

/// A connection to insert.
#[derive(Clone)]
pub struct NewConnection {
    /// `conn_…`.
    pub id: String,
    /// System id.
    pub system: String,
    /// Label.
    pub name: Option<String>,
    /// Initial status.
    pub status: String,
    /// Settings JSON object.
    pub settings: String,
    /// End-user JSON object.
    pub end_user: Option<String>,
    /// Encrypted credentials.
    pub credentials: Option<String>,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Visible start of the token.
    pub token_prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// The connection this one replaces (reconnect).
    pub replaces: Option<String>,
    /// What the token may do through the MCP server.
    pub mcp_access: McpAccess,
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("id", &self.id)
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// A unified record ready to store, with its raw source payload.
#[derive(Debug, Clone)]
pub struct RecordUpsert {
    /// Our id (derived from the source key).
    pub id: String,
    /// Source key.
    pub remote_id: String,
    /// Unified body (JSON object without the common envelope fields).
    pub data: String,
    /// Raw source payload (its JSON text, compressed).
    pub raw: RawPayload,
    /// Hash of `data` and `raw`: an unchanged record is not rewritten and keeps `modified_at`.
    pub content_hash: String,
    /// Source creation time.
    pub remote_created_at: Option<Timestamp>,
    /// Source modification time.
    pub remote_updated_at: Option<Timestamp>,
    /// Deleted at the source.
    pub remote_was_deleted: bool,
}

/// A page of records, its sync checkpoint, written in one transaction.
#[derive(Debug, Clone)]
pub struct PageWrite {
    /// Entity of every record.
    pub entity: Entity,
    /// The records.
    pub records: Vec<RecordUpsert>,
    /// The connector cursor to resume from after this page.
    pub checkpoint: Option<String>,
    /// Commit time (becomes `created_at` / `modified_at`).
    pub now: Timestamp,
    /// The run that saw these records (complete passes mark them, then sweep the unseen).
    pub seen_run: Option<String>,
    /// Our ids of records the source's deletion log reports deleted: marked deleted (their
    /// last data kept), counted with the page.
    pub deleted: Vec<String>,
    /// Our ids of records the source closed and removed, with the source's reason: marked
    /// deleted, their status `completed` and `remote_status` the reason (purchase orders).
    pub closed: Vec<(String, String)>,
    /// Records of these pages that could not be mapped (added to the run's totals).
    pub skipped: u64,
    /// For records laid over their stored payload ([`crate::partial`]): our id and the
    /// content hash of the stored version each was laid over (`None`: there was none). The
    /// write is refused with [`StoreError::Conflict`], and nothing kept, when one of them
    /// changed since: the caller merges again, so a write committed in between is never
    /// overwritten by a merge that did not see it.
    pub bases: Vec<(String, Option<String>)>,
    /// Points of a time series (an entity stored as points): added unless the series
    /// already has a point at that instant, counted as added or unchanged.
    pub points: Vec<PointUpsert>,
}

/// One point of a time series, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct PointUpsert {
    /// The series (our id of the vehicle).
    pub series_id: String,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// The unified point body (JSON object, without `id` and `created_at`).
    pub data: String,
}

/// A stored point.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    /// The series (our id of the vehicle).
    pub series_id: String,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// The unified point body.
    pub data: String,
    /// When Ironbridge stored it.
    pub created_at: Timestamp,
}

/// Which points to list: one entity's, in `(recorded_at, series_id)` order.
#[derive(Debug, Clone)]
pub struct PointQuery {
    /// The entity (stored as points).
    pub entity: Entity,
    /// Only this series.
    pub series_id: Option<String>,
    /// Recorded at or after this instant.
    pub from: Option<Timestamp>,
    /// Recorded before this instant.
    pub until: Option<Timestamp>,
    /// After this point of the order (the last one of the previous page).
    pub after: Option<(Timestamp, String)>,
    /// Points at most.
    pub limit: u32,
}

/// A stored record's payload, as a partial record is laid over it.
#[derive(Debug, Clone)]
pub struct StoredPayload {
    /// Our id.
    pub id: String,
    /// The raw payload's text.
    pub raw: String,
    /// Its content hash (the version a page's `bases` name).
    pub content_hash: String,
}

/// What a page write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// New records.
    pub added: u64,
    /// Changed records.
    pub updated: u64,
    /// Records newly marked deleted.
    pub deleted: u64,
    /// Records already stored unchanged.
    pub unchanged: u64,
}

/// A stored record.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Our id.
    pub id: String,
    /// Source key.
    pub remote_id: String,
    /// Unified body JSON.
    pub data: String,
    /// Raw payload JSON, when asked for.
    pub raw: Option<String>,
    /// First stored.
    pub created_at: Timestamp,
    /// Last changed in our store.
    pub modified_at: Timestamp,
    /// Source creation time.
    pub remote_created_at: Option<Timestamp>,
    /// Source modification time.
    pub remote_updated_at: Option<Timestamp>,
    /// Deleted at the source.
    pub remote_was_deleted: bool,
}

/// Which records to list.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    /// Entity.
    pub entity: Entity,
    /// Keyset position: only records after the one with this id, in the query's order.
    pub after_id: Option<String>,
    /// In change order ([`RecordQuery::by_change`]), the `modified_at` of the record at
    /// `after_id`: the position is the pair.
    pub after_modified: Option<Timestamp>,
    /// Only records with `modified_at` strictly after this.
    pub modified_after: Option<Timestamp>,
    /// Only records with `modified_at` strictly before this.
    pub modified_before: Option<Timestamp>,
    /// Include records deleted at the source.
    pub include_deleted: bool,
    /// Also load raw payloads.
    pub include_raw: bool,
    /// Maximum rows.
    pub limit: u32,
}

impl RecordQuery {
    /// Whether pages are in change order (`modified_at`, then id) rather than id order: when
    /// a `modified_*` filter is given, so the filter and the order are one index range.
    pub fn by_change(&self) -> bool {
        self.modified_after.is_some() || self.modified_before.is_some()
    }
}

/// A position in a connection's change feed: after the change of record `(entity, id)`
/// numbered `seq`. Changes are ordered by `(seq, entity, id)`; one transaction's changes share
/// a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ChangePosition {
    /// The change number (0: records stored before the feed existed).
    pub seq: i64,
    /// The entity's name (empty: before every entity).
    pub entity: String,
    /// Our id (empty: before every record).
    pub id: String,
}

impl ChangePosition {
    /// Before every change of a connection.
    pub fn start() -> Self {
        ChangePosition::default()
    }
}

/// Which changes to list: after a position, of every entity or one.
#[derive(Debug, Clone)]
pub struct ChangeQuery {
    /// Only this entity's changes.
    pub entity: Option<Entity>,
    /// Changes after this position.
    pub after: ChangePosition,
    /// Also load raw payloads.
    pub include_raw: bool,
    /// Maximum rows.
    pub limit: u32,
}

/// One record at its latest change.
#[derive(Debug, Clone)]
pub struct StoredChange {
    /// The entity.
    pub entity: Entity,
    /// The number of the record's latest change.
    pub seq: i64,
    /// The number of the change that first stored it.
    pub created_seq: i64,
    /// The record as stored now.
    pub record: StoredRecord,
}

impl StoredChange {
    /// Its position in the feed.
    pub fn position(&self) -> ChangePosition {
        ChangePosition {
            seq: self.seq,
            entity: self.entity.as_str().to_string(),
            id: self.record.id.clone(),
        }
    }

    /// Whether the record was first stored after `from`: a reader at `from` has never seen
    /// any version of it.
    pub fn created_after(&self, from: &ChangePosition) -> bool {
        (
            self.created_seq,
            self.entity.as_str(),
            self.record.id.as_str(),
        ) > (from.seq, from.entity.as_str(), from.id.as_str())
    }
}

/// The state of one connection pool of a store, as `/metrics` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's name (`read`, `write`; `main` where one pool does both).
    pub name: &'static str,
    /// Most connections the pool opens.
    pub max: u32,
    /// Connections open now.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// Per-entity sync state of a connection.
#[derive(Debug, Clone)]
pub struct SyncState {
    /// Entity.
    pub entity: Entity,
    /// `never`, `running`, `succeeded`, `failed`.
    pub status: String,
    /// Connector cursor to resume from.
    pub cursor: Option<String>,
    /// Last start.
    pub last_started_at: Option<Timestamp>,
    /// Last end.
    pub last_finished_at: Option<Timestamp>,
    /// Last success.
    pub last_succeeded_at: Option<Timestamp>,
    /// Last failure reason.
    pub last_error: Option<String>,
    /// Lower bound of the window the current run reads (inclusive).
    pub window_since: Option<Timestamp>,
    /// Upper bound of the window the current run reads.
    pub window_until: Option<Timestamp>,
    /// Upper bound of the last complete run: the next run reads from here (minus a lookback).
    pub high_water: Option<Timestamp>,
    /// The current run, while one is in progress.
    pub run_id: Option<String>,
    /// What the current run wrote so far (over its attempts), or the last run once finished.
    pub run_totals: RunTotals,
    /// The job whose attempt finished the last run (seen through its fence).
    pub completed_by_job: Option<String>,
}

/// A background job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// `job_…`.
    pub id: String,
    /// What to do (`sync`).
    pub kind: String,
    /// Owning organization.
    pub org_id: String,
    /// The connection it concerns, if any.
    pub connection_id: Option<String>,
    /// Kind-specific JSON.
    pub payload: String,
    /// Jobs with the same key are not queued twice while one is queued or running.
    pub dedupe_key: Option<String>,
    /// Earliest start.
    pub run_at: Timestamp,
    /// Attempts before the job fails for good.
    pub max_attempts: i64,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `job_…`.
    pub id: String,
    /// What to do.
    pub kind: String,
    /// Owning organization.
    pub org_id: String,
    /// The connection it concerns.
    pub connection_id: Option<String>,
    /// Kind-specific JSON.
    pub payload: String,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub status: String,
    /// Earliest (next) start.
    pub run_at: Timestamp,
    /// Attempts started so far (each claim, a takeover after a crash included); also the
    /// fencing token of the current lease.
    pub attempts: i64,
    /// Attempts that ended in a failure (a crash or a takeover is not one).
    pub failures: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry; after it another worker may take the job over.
    pub lease_until: Option<Timestamp>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done.
    Succeeded,
    /// Try again at `run_at` (unless attempts are used up, then it fails).
    Retry {
        /// Next start.
        run_at: Timestamp,
        /// Why this attempt failed.
        error: String,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
    },
}

/// An event for the events API and webhooks, written with the change it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…` (time-ordered).
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The connection it concerns.
    pub connection_id: Option<String>,
    /// `sync.completed`, `connection.status_changed`, ...
    pub event_type: String,
    /// Event-specific JSON object.
    pub data: String,
    /// When it happened.
    pub created_at: Timestamp,
}

/// A key pair Ironbridge generated for a customer; `private_key` is ciphertext.
#[derive(Clone)]
pub struct Certificate {
    /// `crt_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The system it is for (`netsuite`).
    pub system: String,
    /// Encrypted private key PEM.
    pub private_key: String,
    /// Public certificate PEM.
    pub certificate_pem: String,
    /// Validity start.
    pub not_before: Timestamp,
    /// Validity end.
    pub not_after: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("id", &self.id)
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// Everything Ironbridge stores. Implemented for SQLite and PostgreSQL by `ironbridge-store`
/// and checked by one contract suite on both.
#[async_trait]
pub trait Store:
    WebhookStore
    + WriteStore
    + FieldMappingStore
    + FlowStore
    + LinkStore
    + DashboardStore
    + QueueStats
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// The state of each of the store's connection pools, for metrics.
    fn pool_stats(&self) -> Vec<PoolStats> {
        Vec::new()
    }

    /// Creates an organization with its first admin key.
    async fn create_organization(&self, org: &Organization, key: &NewApiKey) -> StoreResult<()>;
    /// Reads an organization.
    async fn get_organization(&self, org: &OrgId) -> StoreResult<Organization>;
    /// Live (not disconnected) connections of an organization: the credits in use.
    async fn credits_used(&self, org: &OrgId) -> StoreResult<i64>;

    /// Adds an admin key.
    async fn create_api_key(&self, org: &OrgId, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// Finds a live or revoked key by the hash of its secret.
    async fn find_api_key(&self, token_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// All keys of an organization, oldest first.
    async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; `Conflict` if already revoked.
    async fn revoke_api_key(
        &self,
        org: &OrgId,
        key_id: &str,
        now: Timestamp,
    ) -> StoreResult<ApiKey>;
    /// Records that a key was used.
    async fn touch_api_key(&self, key_id: &str, now: Timestamp) -> StoreResult<()>;

    /// Creates a connection if the organization has a free credit, atomically.
    async fn create_connection(&self, org: &OrgId, new: &NewConnection) -> StoreResult<Connection>;
    /// Disconnects `old` (if live) and creates its replacement in one transaction.
    async fn reconnect(
        &self,
        org: &OrgId,
        old: &ConnId,
        new: &NewConnection,
        now: Timestamp,
    ) -> StoreResult<Connection>;
    /// Reads a connection of the organization.
    async fn get_connection(&self, org: &OrgId, id: &ConnId) -> StoreResult<Connection>;
    /// Finds a connection by the hash of its token.
    async fn find_connection_by_token(&self, token_hash: &str) -> StoreResult<Option<Connection>>;
    /// Lists connections by id after a keyset position, with the total count.
    async fn list_connections(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<Connection>, u64)>;
    /// Disconnects a connection; `Conflict` if it already is.
    async fn disconnect_connection(
        &self,
        org: &OrgId,
        id: &ConnId,
        now: Timestamp,
    ) -> StoreResult<Connection>;
    /// Deletes the synced records and sync state of a connection; returns how many records.
    async fn delete_connection_data(&self, org: &OrgId, id: &ConnId) -> StoreResult<u64>;
    /// Sets a connection's status unless it is disconnected. When the status changes, a
    /// `connection.status_changed` event (and `connection.reauthorization_required` when that
    /// is the new status) is written in the same transaction, as is `event` if given.
    async fn set_connection_status(
        &self,
        conn: &ConnId,
        status: &str,
        now: Timestamp,
        event: Option<&Event>,
    ) -> StoreResult<()>;
    /// Records a successful upstream call.
    async fn record_call_success(&self, conn: &ConnId, now: Timestamp) -> StoreResult<()>;
    /// Records a failed upstream call, with the circuit breaker's state after it
    /// (`closed`, `open`, `half_open`); returns the failures since the last success.
    async fn record_call_failure(
        &self,
        conn: &ConnId,
        now: Timestamp,
        code: &str,
        circuit_state: &str,
    ) -> StoreResult<i64>;

    /// Per-entity sync states of a connection.
    async fn sync_states(&self, conn: &ConnId) -> StoreResult<Vec<SyncState>>;
    /// Marks an entity's sync as running and returns its state: an unfinished run's window
    /// and cursor to resume from, and the last complete run's high-water mark.
    async fn start_sync(
        &self,
        conn: &ConnId,
        entity: Entity,
        now: Timestamp,
    ) -> StoreResult<SyncState>;
    /// Starts a new run reading `since..=until`, from `cursor` (a feed's position; `None`
    /// for every other read).
    async fn begin_window(
        &self,
        conn: &ConnId,
        entity: Entity,
        run_id: &str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> StoreResult<()>;
    /// After a complete pass of `run_id` over everything, marks the records it did not see as
    /// deleted at the source (and adds them to the run's totals); returns how many.
    async fn sweep_unseen(
        &self,
        conn: &ConnId,
        entity: Entity,
        run_id: &str,
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Writes a page of records and the checkpoint after it, in one transaction.
    async fn write_page(&self, conn: &ConnId, page: &PageWrite) -> StoreResult<WriteCounts>;
    /// Ends an entity's sync: success moves the high-water mark to the run's upper bound,
    /// clears the run and keeps `position` as the cursor (a feed's, for the next run; `None`
    /// otherwise); failure keeps the window, cursor and totals to resume. Returns the run's
    /// totals over all its attempts.
    async fn finish_sync(
        &self,
        conn: &ConnId,
        entity: Entity,
        now: Timestamp,
        error: Option<&str>,
        position: Option<&str>,
    ) -> StoreResult<RunTotals>;

    /// A page of records in id order.
    async fn list_records(
        &self,
        conn: &ConnId,
        query: &RecordQuery,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// A page of the connection's change feed: records in `(change_seq, entity, id)` order
    /// after the query's position, each at its latest change (deleted ones included).
    async fn list_changes(
        &self,
        conn: &ConnId,
        query: &ChangeQuery,
    ) -> StoreResult<Vec<StoredChange>>;
    /// How many records match (ignoring `after_id` and `limit`).
    async fn count_records(&self, conn: &ConnId, query: &RecordQuery) -> StoreResult<u64>;
    /// One record by our id.
    async fn get_record(
        &self,
        conn: &ConnId,
        entity: Entity,
        id: &str,
        include_raw: bool,
    ) -> StoreResult<Option<StoredRecord>>;
    /// The stored payloads of the records `ids` (our ids) that exist.
    async fn payloads(
        &self,
        conn: &ConnId,
        entity: Entity,
        ids: &[String],
    ) -> StoreResult<Vec<StoredPayload>>;
    /// A page of points, in `recorded_at` order (the points of one instant in the store's
    /// fixed order of their series); `after` names the last point of the previous page.
    async fn list_points(&self, conn: &ConnId, query: &PointQuery)
    -> StoreResult<Vec<StoredPoint>>;
    /// The newest point of each series, in series order, after `after_series`; only
    /// `series_id`'s when given.
    async fn latest_points(
        &self,
        conn: &ConnId,
        entity: Entity,
        series_id: Option<&str>,
        after_series: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredPoint>>;
    /// Deletes points of `entity` recorded before `before`, in transactions of at most
    /// `batch` points each (so no lock is held long), at most `max` in all; returns how many.
    async fn purge_points(
        &self,
        entity: Entity,
        before: Timestamp,
        batch: u32,
        max: u64,
    ) -> StoreResult<u64>;
    /// Stored record count per entity (for an entity kept as points, its points: counted as
    /// they are written and purged).
    async fn record_counts(&self, conn: &ConnId) -> StoreResult<Vec<(Entity, i64)>>;

    /// Queues a job; `None` if one with the same dedupe key is already queued or running.
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<Option<Job>>;
    /// The queued or running job with this dedupe key.
    async fn active_job(&self, dedupe_key: &str) -> StoreResult<Option<Job>>;
    /// A job of the organization.
    async fn get_job(&self, org: &OrgId, id: &str) -> StoreResult<Job>;
    /// Takes the next due job of `kind` (or one whose lease expired) for `owner`
    /// until `lease_until`; many workers can claim at once and never get the same job.
    async fn claim_job(
        &self,
        kind: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Job>>;
    /// Replaces a running job's payload (what it turned out to do); fenced like
    /// `finish_job`, false when the lease was lost.
    async fn update_job_payload(&self, job: &Job, owner: &str, payload: &str) -> StoreResult<bool>;
    /// Extends a lease; false if the job was taken over (the attempt must stop).
    async fn extend_lease(&self, job: &Job, owner: &str, until: Timestamp) -> StoreResult<bool>;
    /// Records an attempt's outcome; false if the lease was lost (a late worker cannot
    /// overwrite the attempt that replaced it).
    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        now: Timestamp,
        outcome: &JobOutcome,
    ) -> StoreResult<bool>;
    /// Takes one of a connection's `slots` write slots for `holder` until `until` (a free
    /// one, or one whose lease ended before `now`); `None` when all are held.
    async fn acquire_write_slot(
        &self,
        conn: &ConnId,
        slots: u32,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<u32>>;
    /// Frees a write slot `holder` took.
    async fn release_write_slot(&self, conn: &ConnId, slot: u32, holder: &str) -> StoreResult<()>;
    /// Extends `holder`'s lease of a write slot to `until`; false when it is no longer held.
    async fn renew_write_slot(
        &self,
        conn: &ConnId,
        slot: u32,
        holder: &str,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether other processes may share this database (PostgreSQL): a connection's calls
    /// are then coordinated through it, not only within this process.
    fn shared_by_processes(&self) -> bool {
        false
    }
    /// Gives a running job back to the queue, due at `now`, without using up its attempt (a
    /// worker shutting down before the job finished). Fenced like `finish_job`; false when
    /// the lease was lost.
    async fn release_job(&self, job: &Job, owner: &str, now: Timestamp) -> StoreResult<bool>;
    /// Live connections whose last sync started before `started_before` (or never), for the
    /// scheduler; followed feeds, read by polls, do not count. Not tenant-scoped: the
    /// scheduler serves every organization.
    async fn connections_due(
        &self,
        started_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(OrgId, ConnId)>>;

    /// Online connections with a followed feed (a time series whose stored position is a
    /// feed cursor) last read before `started_before`, for the poller. Not tenant-scoped,
    /// like [`Store::connections_due`].
    async fn connections_to_poll(
        &self,
        started_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(OrgId, ConnId)>>;

    /// Deletes up to `limit` finished (succeeded or failed) jobs of `kind` last updated
    /// before `before`; returns how many. Polls leave a job every few seconds.
    async fn purge_finished_jobs(
        &self,
        kind: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;

    /// When the connection's last full sync succeeded, or when the connection was created if
    /// none has: the scheduler reconciles (a full sync) once this is old enough.
    async fn last_full_sync(&self, conn: &ConnId) -> StoreResult<Timestamp>;

    /// Records that a full sync of the connection succeeded at `at`.
    async fn record_full_sync(&self, conn: &ConnId, at: Timestamp) -> StoreResult<()>;

    /// A sync's success: the connection's status, its `sync.completed` event and, seen
    /// through a job's fence, the job's success, in one transaction (a crash cannot leave a
    /// completed sync to be run, and announced, again).
    async fn complete_sync(
        &self,
        conn: &ConnId,
        status: &str,
        now: Timestamp,
        event: &Event,
    ) -> StoreResult<()>;

    /// This store as a job sees it: every write it commits checks `fence` in the same
    /// transaction and is refused with [`StoreError::Fenced`] (and rolled back) once the job
    /// is no longer that attempt's.
    fn fenced(&self, fence: Fence) -> std::sync::Arc<dyn Store>;

    /// Stores a generated key pair.
    async fn create_certificate(&self, cert: &Certificate) -> StoreResult<()>;
    /// A key pair of the organization.
    async fn get_certificate(&self, org: &OrgId, id: &str) -> StoreResult<Certificate>;

    /// The organization's newest events, newest first (the dashboard's page).
    async fn recent_events(&self, org: &OrgId, limit: u32) -> StoreResult<Vec<Event>>;

    /// Writes an event.
    async fn insert_event(&self, event: &Event) -> StoreResult<()>;
    /// Events of an organization after a keyset position, oldest first, optionally for one
    /// connection or one type.
    async fn list_events(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        connection: Option<&str>,
        event_type: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;

    /// Records the source's clock offset from ours (milliseconds, negative: behind) as
    /// measured at `at`, for the connection's health.
    async fn record_source_clock(
        &self,
        conn: &ConnId,
        offset_ms: i64,
        at: Timestamp,
    ) -> StoreResult<()>;
}
