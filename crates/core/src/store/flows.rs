//! The storage seam of flows: documents kept whole as numbered versions, runs as jobs with
//! their items step by step, and the triggers' positions (change feed, schedule) moved in the
//! transaction that creates the run they start, so each change or tick starts one run.

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::{ChangePosition, ConnId, Event, NewJob, OrgId, StoreResult, WrittenRecord};

/// Run states.
pub mod run_status {
    /// Waiting for a worker.
    pub const QUEUED: &str = "queued";
    /// A worker is on it (or will be again after a pause).
    pub const RUNNING: &str = "running";
    /// Every step done.
    pub const SUCCEEDED: &str = "succeeded";
    /// Stopped at an item's failure, or could not go on.
    pub const FAILED: &str = "failed";
    /// Cancelled through the API.
    pub const CANCELLED: &str = "cancelled";
}

/// Item states.
pub mod item_status {
    /// Not tried yet (or waiting for a retry).
    pub const PENDING: &str = "pending";
    /// Sent to the source by a write; its outcome unknown until ended.
    pub const SENDING: &str = "sending";
    /// Done; its outputs go to the next step.
    pub const SUCCEEDED: &str = "succeeded";
    /// Failed for good.
    pub const FAILED: &str = "failed";
    /// Never tried: the run ended first.
    pub const CANCELLED: &str = "cancelled";
}

/// A flow as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// `flw_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// Its key, unique in the organization.
    pub key: String,
    /// The current version.
    pub version: i64,
    /// The current document (JSON).
    pub document: String,
    /// Whether the trigger starts runs.
    pub enabled: bool,
    /// `record_changes`, `event`, `schedule` or `manual`.
    pub trigger_type: String,
    /// The connection a `record_changes` (or an event) trigger follows.
    pub trigger_connection_id: Option<String>,
    /// Where in the change feed the next run starts (`record_changes`).
    pub feed: Option<ChangePosition>,
    /// When the schedule is next due (`schedule`).
    pub next_run_at: Option<Timestamp>,
    /// The run the trigger waits for before it starts another (`record_changes`).
    pub active_run_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of the document.
    pub updated_at: Timestamp,
}

/// A saved version of a flow's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowVersion {
    /// 1, 2, …
    pub version: i64,
    /// The document (JSON).
    pub document: String,
    /// When it was saved.
    pub created_at: Timestamp,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRun {
    /// `frn_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The flow.
    pub flow_id: String,
    /// The flow's version it runs.
    pub flow_version: i64,
    /// What started it.
    pub trigger: String,
    /// See [`run_status`].
    pub status: String,
    /// The step it is on (0-based).
    pub step: i64,
    /// Items the trigger gave it.
    pub input_count: i64,
    /// Why it failed (JSON object).
    pub error: Option<String>,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Its job.
    pub job_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// One item of a step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowItem {
    /// The run.
    pub run_id: String,
    /// The step (0-based).
    pub step: i64,
    /// Position in the step.
    pub idx: i64,
    /// See [`item_status`].
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The item (JSON).
    pub input: String,
    /// What it yielded (JSON array), once succeeded.
    pub output: Option<String>,
    /// Why it failed (JSON object).
    pub error: Option<String>,
    /// Not to be tried before (a retry's backoff).
    pub not_before: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How an attempt at an item ended.
#[derive(Debug, Clone)]
pub struct ItemEnd {
    /// The item's position in its step.
    pub idx: i64,
    /// `succeeded`, `failed`, or `pending` (tried again from `not_before`).
    pub status: &'static str,
    /// What it yielded (JSON array), when succeeded.
    pub output: Option<String>,
    /// How many values `output` holds.
    pub yielded: i64,
    /// Why it failed (JSON object).
    pub error: Option<String>,
    /// When a retry may start.
    pub not_before: Option<Timestamp>,
    /// A record a write returned, stored with the end (the connection written to).
    pub written: Option<(ConnId, WrittenRecord)>,
    /// An event to record with the end (a webhook step's).
    pub event: Option<Event>,
}

/// Counts of one step's items in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCount {
    /// The step.
    pub step: i64,
    /// The state.
    pub status: String,
    /// Items.
    pub items: i64,
    /// Values they yielded.
    pub yielded: i64,
}

/// What a new run moves with it, in its transaction.
#[derive(Debug, Clone)]
pub enum RunStart {
    /// A manual run: nothing moves.
    Manual,
    /// A run of changes: the flow's feed position moves from `from` to `to`, and the flow
    /// waits for the run.
    Feed {
        /// Where the feed was when read (the run is not created if it moved since).
        from: Option<ChangePosition>,
        /// Where the next run starts.
        to: ChangePosition,
    },
    /// A scheduled run: the schedule moves from `due` to `next`.
    Schedule {
        /// The due time read.
        due: Timestamp,
        /// The next due time.
        next: Option<Timestamp>,
    },
}

/// A flow whose change feed has changes past its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFeedDue {
    /// The flow.
    pub flow_id: String,
    /// Its organization.
    pub org_id: String,
    /// The connection followed.
    pub connection_id: String,
    /// Its position (`None`: not started).
    pub feed: Option<ChangePosition>,
    /// The flow's current version.
    pub version: i64,
    /// The connection's latest change number when this was read.
    pub last_seq: i64,
}

/// Storage of flows. Every method that reads on a caller's behalf names the organization.
#[async_trait]
pub trait FlowStore {
    /// Creates a flow with its first version. `Conflict` when its key is taken. With
    /// `feed_from_end`, a change feed trigger starts after the connection's latest change
    /// (read in the same transaction) rather than at `flow.feed`.
    async fn create_flow(&self, flow: &Flow, feed_from_end: bool) -> StoreResult<()>;
    /// Saves `flow`'s document as its next version if its current version is still
    /// `flow.version - 1` (`Conflict` otherwise). `Some(feed_from_end)` when its trigger
    /// changed: the trigger's fields are reset from `flow` (as `create_flow` sets them);
    /// `None` keeps their positions.
    async fn update_flow(&self, flow: &Flow, reset_trigger: Option<bool>) -> StoreResult<()>;
    /// A flow by id or key.
    async fn get_flow(&self, org: &OrgId, id_or_key: &str) -> StoreResult<Flow>;
    /// The organization's flows, by key.
    async fn list_flows(&self, org: &OrgId) -> StoreResult<Vec<Flow>>;
    /// Deletes a flow, its versions, runs and items; its queued jobs end with nothing to do.
    async fn delete_flow(&self, org: &OrgId, id: &str) -> StoreResult<()>;
    /// A flow's versions, newest first.
    async fn list_flow_versions(&self, org: &OrgId, flow_id: &str)
    -> StoreResult<Vec<FlowVersion>>;
    /// One version's document.
    async fn get_flow_version(
        &self,
        org: &OrgId,
        flow_id: &str,
        version: i64,
    ) -> StoreResult<FlowVersion>;

    /// Creates a run with its first step's items (`inputs`, JSON each) and its job, moving
    /// the trigger's position as `start` says; `false` (nothing created) when the position
    /// moved since it was read, or the flow already waits for a run.
    async fn create_flow_run(
        &self,
        run: &FlowRun,
        inputs: &[String],
        job: &NewJob,
        start: &RunStart,
    ) -> StoreResult<bool>;
    /// A run.
    async fn get_flow_run(&self, org: &OrgId, id: &str) -> StoreResult<FlowRun>;
    /// A flow's runs, newest first, before `before_id`.
    async fn list_flow_runs(
        &self,
        org: &OrgId,
        flow_id: &str,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<FlowRun>>;
    /// Counts of a run's items by step and state.
    async fn flow_run_counts(&self, org: &OrgId, run_id: &str) -> StoreResult<Vec<StepCount>>;
    /// A run's items after `(step, idx)`, by step then index.
    async fn list_flow_items(
        &self,
        org: &OrgId,
        run_id: &str,
        step: Option<i64>,
        status: Option<&str>,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<FlowItem>>;
    /// Asks a run to stop before its next batch.
    async fn cancel_flow_run(&self, org: &OrgId, id: &str, now: Timestamp) -> StoreResult<FlowRun>;

    /// The next items of a step to work on: pending or sending, due by `now`, by index.
    async fn next_flow_items(
        &self,
        run_id: &str,
        step: i64,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<FlowItem>>;
    /// When the step's next waiting item is due (`None`: none waits).
    async fn next_flow_retry(&self, run_id: &str, step: i64) -> StoreResult<Option<Timestamp>>;
    /// Marks items as sent (their attempts counted) before a write sends them.
    async fn mark_flow_items_sending(
        &self,
        run_id: &str,
        step: i64,
        idxs: &[i64],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Records how attempts ended, with the records written and events sent, in one
    /// transaction. An item already ended is left as it is.
    async fn end_flow_items(
        &self,
        run_id: &str,
        step: i64,
        ends: &[ItemEnd],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The outputs of a step's succeeded items (JSON arrays), by index, after `after_idx`.
    async fn flow_step_outputs(
        &self,
        run_id: &str,
        step: i64,
        after_idx: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>>;
    /// Starts step `step` with its items, if the run is still on step `step - 1`.
    async fn begin_flow_step(
        &self,
        run_id: &str,
        step: i64,
        inputs: &[String],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Ends a run: open items are cancelled, the flow stops waiting for it, and its
    /// `flow.run_completed` or `flow.run_failed` event is recorded.
    async fn finish_flow_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        event: &Event,
        now: Timestamp,
    ) -> StoreResult<FlowRun>;

    /// Moves a change feed trigger from `from` to `to` without a run (the changes between
    /// were none the flow takes); `false` when it moved since it was read, or waits for a run.
    async fn advance_flow_feed(
        &self,
        flow_id: &str,
        from: Option<&ChangePosition>,
        to: &ChangePosition,
    ) -> StoreResult<bool>;
    /// Enabled flows following a change feed that has changes past their position and
    /// that wait for no run.
    async fn flow_feeds_due(&self, limit: u32) -> StoreResult<Vec<FlowFeedDue>>;
    /// Enabled scheduled flows due by `now`.
    async fn flows_scheduled_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Flow>>;
}
