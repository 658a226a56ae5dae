//! Bulk write batches: up to 10,000 creates and updates on one connection, processed in the
//! background in batches of a chosen size, with per-operation results.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::Timestamp;

/// Most operations in one batch.
pub const MAX_OPERATIONS: usize = 10_000;
/// Largest `batch_size`.
pub const MAX_BATCH_SIZE: u32 = 100;
/// Default `batch_size`.
pub const DEFAULT_BATCH_SIZE: u32 = 50;
/// Longest `delay_ms` between batches.
pub const MAX_DELAY_MS: u64 = 600_000;

/// What to do when an operation fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Go on with the other operations (the default).
    #[default]
    Continue,
    /// Stop at the first failure: operations not yet tried are cancelled.
    Stop,
}

impl OnError {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Continue => "continue",
            OnError::Stop => "stop",
        }
    }
}

/// Create or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationAction {
    /// Create a record (`POST /v1/{entity}`).
    Create,
    /// Update a record (`PATCH /v1/{entity}/{id}`).
    Update,
}

impl OperationAction {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationAction::Create => "create",
            OperationAction::Update => "update",
        }
    }
}

/// One write of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationIn {
    /// `create` or `update`.
    pub action: OperationAction,
    /// The entity as the API names it in paths: `purchase-orders`, `vendors`, `items`.
    #[schema(
        example = "purchase-orders",
        pattern = "^(purchase-orders|vendors|items)$"
    )]
    pub entity: String,
    /// The record to update (`po_…`); only for `update`.
    pub id: Option<String>,
    /// The fields, exactly as the single create or update takes them.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// A bulk batch to run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    /// The writes, 1 to 10,000, run in this order.
    #[schema(min_items = 1, max_items = 10000)]
    pub operations: Vec<OperationIn>,
    /// Operations sent per batch (1–100, default 50); the operations of a batch run
    /// concurrently within the connection's limits.
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<u32>,
    /// Pause between batches in milliseconds (0–600,000, default 0).
    #[schema(maximum = 600000)]
    pub delay_ms: Option<u64>,
    /// `continue` (default) or `stop` at the first failure.
    pub on_error: Option<OnError>,
}

/// A bulk batch and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchOut {
    /// Batch id (`bat_…`).
    pub id: String,
    /// The connection written to.
    pub connection_id: String,
    /// `queued`, `running`, `completed` (every operation tried), `failed` (stopped at a
    /// failure with `on_error: stop`) or `cancelled`.
    #[schema(example = "running")]
    pub status: String,
    /// Operations per batch.
    pub batch_size: i64,
    /// Pause between batches in milliseconds.
    pub delay_ms: i64,
    /// `continue` or `stop`.
    pub on_error: String,
    /// Operations in all.
    pub total: i64,
    /// Operations written.
    pub succeeded: i64,
    /// Operations refused.
    pub failed: i64,
    /// Operations never tried (cancelled, or stopped at a failure).
    pub cancelled: i64,
    /// Operations not finished yet.
    pub pending: i64,
    /// A cancel was asked for; the batch stops before its next batch of operations.
    pub cancel_requested: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// The result of one operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationOut {
    /// Position in the batch, from 0.
    pub index: i64,
    /// `create` or `update`.
    pub action: String,
    /// The entity written.
    pub entity: String,
    /// `pending`, `sending`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// Our id of the record written.
    pub record_id: Option<String>,
    /// The record as the source answered (on success).
    #[schema(value_type = Option<Object>)]
    pub record: Option<Value>,
    /// The structured error (on failure), as the single write would answer it.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A page of operation results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationPage {
    /// The operations, in order.
    pub data: Vec<OperationOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}
