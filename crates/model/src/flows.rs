//! Flows: declarative workflows between an organization's connections. A flow is a JSON
//! document (this module's `FlowIn`, published in the OpenAPI document as its JSON Schema): a
//! trigger that yields items, and steps that filter, transform, read, write and notify, item
//! by item. Runs, their steps and their items are what the run history shows.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;

/// Most steps in one flow.
pub const MAX_STEPS: usize = 20;
/// Most items one step of a run holds (what a trigger, a read or a transform may yield).
pub const MAX_RUN_ITEMS: usize = 10_000;
/// Most items a manual run or a dry run may be given.
pub const MAX_INPUT_ITEMS: usize = 1_000;
/// Most values one jq expression may yield for one item.
pub const MAX_OUTPUTS_PER_ITEM: usize = 1_000;
/// Most changes one run of a `record_changes` trigger takes, by default.
pub const DEFAULT_CHANGES_PER_RUN: u32 = 100;
/// Largest `batch_size` of a step.
pub const MAX_BATCH_SIZE: u32 = 100;
/// Default `batch_size` of a write or webhook step.
pub const DEFAULT_BATCH_SIZE: u32 = 10;
/// Longest `delay_ms` between a step's batches.
pub const MAX_DELAY_MS: u64 = 600_000;
/// Most records a read step scans.
pub const MAX_READ_LIMIT: u32 = 10_000;
/// Records a read step scans by default.
pub const DEFAULT_READ_LIMIT: u32 = 1_000;
/// Most attempts of an item under the `retry` policy.
pub const MAX_ITEM_ATTEMPTS: u32 = 10;

/// A flow document: what it is called, what starts it, and its steps. Sent to
/// `POST /v1/flows` and `PUT /v1/flows/{flow}`, and kept in files (`examples/flows/`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowIn {
    /// The flow's key, unique in the organization: lowercase letters, digits and `-`, 1 to 64
    /// characters. `PUT /v1/flows/{key}` creates or changes the flow with this key, so a
    /// repository of flow files can be applied again and again.
    #[schema(
        example = "netsuite-po-to-asctrac",
        pattern = "^[a-z0-9][a-z0-9-]{0,63}$"
    )]
    pub key: String,
    /// A name for people (1 to 200 characters).
    #[schema(
        example = "Approved NetSuite purchase orders become ASCTrac expected receipts",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// What the flow is for.
    pub description: Option<String>,
    /// Whether its trigger starts runs (default `true`). Manual runs work either way.
    pub enabled: Option<bool>,
    /// What starts a run and gives it its items.
    pub trigger: Trigger,
    /// The steps, 1 to 20, run in order over the run's items.
    #[schema(min_items = 1, max_items = 20)]
    pub steps: Vec<Step>,
}

/// What starts a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// Records of one entity of a connection were created, changed or deleted: each change
    /// read from the connection's change feed (`GET /v1/changes`) is an item, as the feed
    /// renders it (`seq`, `change`, `entity`, `id`, `record`, `tombstone`) with the
    /// `connection_id`. Each change reaches the flow once, in order; a run takes up to
    /// `max_items_per_run` of them, and the next run starts when it ends.
    RecordChanges(RecordChangesTrigger),
    /// An event of the organization (`sync.completed`, `connection.status_changed`, ...):
    /// the event is the run's one item (`id`, `type`, `connection_id`, `data`, `created_at`).
    Event(EventTrigger),
    /// A schedule: a run at each time of a cron expression, with one item
    /// (`{"scheduled_at": …}`).
    Schedule(ScheduleTrigger),
    /// Runs only when asked (`POST /v1/flows/{flow}/runs`), with the items given.
    Manual,
}

/// The change feed of one entity of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordChangesTrigger {
    /// The connection whose records are followed (`conn_…`).
    pub connection_id: String,
    /// The entity, by name (`purchase_order`) or path (`purchase-orders`).
    #[schema(example = "purchase_order")]
    pub entity: String,
    /// Which changes start runs (default all three).
    #[schema(min_items = 1, max_items = 3)]
    pub changes: Option<Vec<ChangeKind>>,
    /// Whether changes made before the flow existed are taken too (default `false`: the
    /// flow starts at the end of the feed as it is when the flow is created).
    pub from_beginning: Option<bool>,
    /// Most changes one run takes (1–1,000, default 100).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_items_per_run: Option<u32>,
}

/// A kind of change of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// First stored.
    Created,
    /// Changed.
    Updated,
    /// Deleted in the source system.
    Deleted,
}

impl ChangeKind {
    /// As the change feed names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// Events of the organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// The event types that start a run (1 to 20; see `GET /v1/webhook-event-types`; the
    /// `flow.*` and `record.*` types cannot start flows).
    #[schema(min_items = 1, max_items = 20, example = json!(["sync.completed"]))]
    pub event_types: Vec<String>,
    /// Only events of this connection.
    pub connection_id: Option<String>,
}

/// A cron schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleTrigger {
    /// A cron expression of five fields (minute, hour, day of month, month, day of week),
    /// with `*`, lists, ranges and steps, or six with seconds first.
    #[schema(example = "*/15 * * * *")]
    pub cron: String,
    /// The time zone the expression is read in (IANA name, default `UTC`).
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
}

/// One step of a flow: it takes each item the previous step (or the trigger) yields and
/// yields items for the next.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// Keeps the items for which a jq condition is true.
    Filter(FilterStep),
    /// Replaces each item by what a jq expression yields (none, one or several items).
    Transform(TransformStep),
    /// Reads the stored records of an entity of a connection: those a jq condition matches
    /// for the item are attached to it (`into`) or become the items.
    Read(ReadStep),
    /// Creates or updates a record in a connection through the unified write path (its
    /// validation, field mappings and references), each item once: a write carries a key
    /// derived from the run, the step and the item, so a run taken over after a crash never
    /// writes an item twice. Yields the written record.
    Write(WriteStep),
    /// Sends a `flow.event` webhook event, signed, to the organization's endpoints that take
    /// it: `data.name` is the step's `name`, `data.payload` the item (or what `data` makes
    /// of it). Yields the item unchanged.
    Webhook(WebhookStep),
}

impl Step {
    /// The step's id.
    pub fn id(&self) -> &str {
        match self {
            Step::Filter(s) => &s.id,
            Step::Transform(s) => &s.id,
            Step::Read(s) => &s.id,
            Step::Write(s) => &s.id,
            Step::Webhook(s) => &s.id,
        }
    }

    /// The step's type, as documents name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Filter(_) => "filter",
            Step::Transform(_) => "transform",
            Step::Read(_) => "read",
            Step::Write(_) => "write",
            Step::Webhook(_) => "webhook",
        }
    }

    /// What happens to an item the step fails on.
    pub fn on_error(&self) -> ErrorPolicy {
        match self {
            Step::Filter(s) => s.on_error.clone(),
            Step::Transform(s) => s.on_error.clone(),
            Step::Read(s) => s.on_error.clone(),
            Step::Write(s) => s.on_error.clone(),
            Step::Webhook(s) => s.on_error.clone(),
        }
        .unwrap_or_default()
    }
}

/// Keeps the items a condition is true for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterStep {
    /// The step's id, unique in the flow (letters, digits, `_` and `-`).
    #[schema(example = "approved_only")]
    pub id: String,
    /// A jq expression over the item; the item is kept when its first value is neither
    /// `false` nor `null`.
    #[schema(example = ".record.status == \"approved\"")]
    pub condition: String,
    /// What happens to an item the expression fails on (default `stop`).
    pub on_error: Option<ErrorPolicy>,
}

/// Reshapes items.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    /// The step's id, unique in the flow.
    #[schema(example = "to_expected_receipt")]
    pub id: String,
    /// A jq expression over the item; each value it yields is an item of the next step
    /// (`empty` drops the item).
    #[schema(
        example = "{number: .record.number, line_items: [.record.line_items[] | {item_id, quantity}]}"
    )]
    pub jq: String,
    /// What happens to an item the expression fails on (default `stop`).
    pub on_error: Option<ErrorPolicy>,
}

/// Looks records up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadStep {
    /// The step's id, unique in the flow.
    #[schema(example = "warehouse_items")]
    pub id: String,
    /// The connection read (`conn_…`), one of the organization's.
    pub connection_id: String,
    /// The entity, by name (`item`) or path (`items`).
    #[schema(example = "items")]
    pub entity: String,
    /// A jq condition over each record, with the item as `$item`; records it is true for
    /// match (default: every record).
    #[serde(rename = "where")]
    #[schema(example = "$item.record.line_items | any(.item_code == $record.code)")]
    pub where_: Option<String>,
    /// When set, the matched records are attached to the item under this key (an array)
    /// and the item goes on; when absent, each matched record becomes an item.
    #[schema(example = "warehouse_items")]
    pub into: Option<String>,
    /// Records scanned at most, newest change first (1–10,000, default 1,000).
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Records deleted in the source too (default `false`).
    pub include_deleted: Option<bool>,
    /// What happens to an item the read fails on (default `stop`).
    pub on_error: Option<ErrorPolicy>,
}

/// Writes records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteStep {
    /// The step's id, unique in the flow.
    #[schema(example = "create_expected_receipt")]
    pub id: String,
    /// The connection written to (`conn_…`), one of the organization's.
    pub connection_id: String,
    /// The entity, by path (`purchase-orders`) or name (`purchase_order`).
    #[schema(example = "purchase-orders")]
    pub entity: String,
    /// `create` (default) or `update`.
    pub action: Option<WriteAction>,
    /// For `update`: a jq expression over the item yielding the id of the record to update
    /// (`po_…`).
    #[schema(example = ".id")]
    pub record_id: Option<String>,
    /// A jq expression over the item yielding the fields to write, exactly as the single
    /// create or update takes them (default: the item itself).
    pub data: Option<String>,
    /// Items written per batch (1–100, default 10), concurrently within the connection's
    /// limits.
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<u32>,
    /// Pause between batches in milliseconds (0–600,000, default 0).
    #[schema(maximum = 600000)]
    pub delay_ms: Option<u64>,
    /// What happens to an item the source refuses (default `stop`).
    pub on_error: Option<ErrorPolicy>,
}

/// Create or update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteAction {
    /// Create a record.
    #[default]
    Create,
    /// Update the record `record_id` names.
    Update,
}

/// Sends webhook events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookStep {
    /// The step's id, unique in the flow.
    #[schema(example = "notify")]
    pub id: String,
    /// The event's name, `data.name` of the `flow.event` (letters, digits, `_`, `-` and `.`,
    /// 1 to 64).
    #[schema(example = "vehicle.harsh_braking")]
    pub name: String,
    /// A jq expression over the item yielding `data.payload` (default: the item).
    pub data: Option<String>,
    /// Events made per batch (1–100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<u32>,
    /// Pause between batches in milliseconds (0–600,000, default 0).
    #[schema(maximum = 600000)]
    pub delay_ms: Option<u64>,
    /// What happens to an item the expression fails on (default `stop`).
    pub on_error: Option<ErrorPolicy>,
}

/// What a step does with an item it fails on. Failures of the source itself (unreachable,
/// rate limited, 5xx) are not the item's: the run pauses and resumes later, where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorPolicy {
    /// `stop` (default): the run fails at the first failed item (the step's other items in
    /// flight end first). `skip`: the item is reported failed and the run goes on without
    /// it. `retry`: the item is tried again after `backoff_ms`, doubling, up to
    /// `max_attempts`; then the run fails.
    pub policy: OnItemError,
    /// Attempts of an item under `retry` (2–10, default 3).
    #[schema(minimum = 2, maximum = 10)]
    pub max_attempts: Option<u32>,
    /// First wait before a retry in milliseconds (0–600,000, default 1,000), doubling.
    #[schema(maximum = 600000)]
    pub backoff_ms: Option<u64>,
}

/// The error policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnItemError {
    /// Fail the run.
    #[default]
    Stop,
    /// Report the item and go on.
    Skip,
    /// Try the item again with backoff, then fail the run.
    Retry,
}

/// A flow as stored: its document with its id and version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowOut {
    /// Flow id (`flw_…`).
    pub id: String,
    /// The flow's key.
    pub key: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Whether its trigger starts runs.
    pub enabled: bool,
    /// The document's version: 1 when created, one more at each change of the document.
    pub version: i64,
    /// What starts a run.
    pub trigger: Trigger,
    /// The steps.
    pub steps: Vec<Step>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its document last changed.
    pub updated_at: Timestamp,
}

/// A page of flows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowList {
    /// The flows, by key.
    pub data: Vec<FlowOut>,
}

/// An earlier (or the current) version of a flow's document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowVersionOut {
    /// The version.
    pub version: i64,
    /// The document as it was.
    pub document: FlowIn,
    /// When it was saved.
    pub created_at: Timestamp,
}

/// The versions of a flow, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowVersionList {
    /// The versions.
    pub data: Vec<FlowVersionOut>,
}

/// A manual run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRunIn {
    /// The run's items (0 to 1,000; default one empty object). For a flow triggered by
    /// record changes or events, give items shaped as the trigger makes them.
    #[schema(max_items = 1000, value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
}

/// A dry run: the steps run over the items, reads and jq for real, but nothing is written
/// and no event is sent; each write is checked as the write path would check it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDryRunIn {
    /// The items (0 to 1,000). Default: the changes the trigger would take next (the newest
    /// records of the entity if none are waiting), the newest matching event, or one empty
    /// object.
    #[schema(max_items = 1000, value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
}

/// A dry run of a document not saved yet: the same as a saved flow's, with the document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDocumentDryRunIn {
    /// The document to try, checked as creating it would check it.
    pub flow: FlowIn,
    /// The items (0 to 1,000). Default: as for a saved flow, from its trigger.
    #[schema(max_items = 1000, value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
}

/// What a dry run found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowDryRunOut {
    /// The items the run started with.
    pub input_count: usize,
    /// Each step, in order.
    pub steps: Vec<DryRunStepOut>,
}

/// What one step would do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DryRunStepOut {
    /// The step's id.
    pub id: String,
    /// The step's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Items it took.
    pub items_in: usize,
    /// Items it yielded.
    pub items_out: usize,
    /// Items it failed on.
    pub failed: usize,
    /// The first 20 items: what went in, what came out or would be written or sent, and the
    /// error.
    pub samples: Vec<DryRunItemOut>,
}

/// One item of a dry run's step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DryRunItemOut {
    /// The item as the step took it.
    #[schema(value_type = Object)]
    pub input: Value,
    /// What it yielded (a write: the fields as they would be sent; a webhook: the event's
    /// `data`).
    #[schema(value_type = Vec<Object>)]
    pub output: Vec<Value>,
    /// Why it failed, as the API would answer it.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// A run of a flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowRunOut {
    /// Run id (`frn_…`).
    pub id: String,
    /// The flow.
    pub flow_id: String,
    /// The version of the flow's document it runs.
    pub flow_version: i64,
    /// What started it: `record_changes`, `event`, `schedule` or `manual`.
    #[schema(example = "record_changes")]
    pub trigger: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// Items the trigger gave it.
    pub input_count: i64,
    /// Each step with its counts, in order.
    pub steps: Vec<FlowRunStepOut>,
    /// Why it failed.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// A cancel was asked for: the run stops before its next batch.
    pub cancel_requested: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// A step of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowRunStepOut {
    /// The step's id.
    pub id: String,
    /// The step's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending` (not reached), `running` or `done`.
    pub status: String,
    /// Items it took.
    pub items: i64,
    /// Items it ended with success.
    pub succeeded: i64,
    /// Items it failed on.
    pub failed: i64,
    /// Items it yielded to the next step.
    pub output: i64,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowRunList {
    /// The runs.
    pub data: Vec<FlowRunOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One item of a step of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowItemOut {
    /// The step's id.
    pub step: String,
    /// Position in the step, from 0.
    pub index: i64,
    /// `pending`, `sending`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The item as the step took it (cut to 64 KiB of JSON in this view).
    #[schema(value_type = Object)]
    pub input: Value,
    /// What it yielded (cut the same way).
    #[schema(value_type = Option<Vec<Object>>)]
    pub output: Option<Value>,
    /// Why it failed, as the API would answer it.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A page of a run's items.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowItemPage {
    /// The items, by step then index.
    pub data: Vec<FlowItemOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}
