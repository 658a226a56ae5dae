//! Bulk write batches: queue up to 10,000 creates and updates on the calling connection,
//! follow their progress and results, cancel them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    Batch, BatchOperation, NewJob, OrgId, batch_status, operation_status,
};
use ironbridge_core::system::WriteOp;
use ironbridge_engine::batches::{BATCH_JOB, parse_entity, path_name};
use ironbridge_model::ErrorCode;
use ironbridge_model::batches::{
    BatchIn, BatchOut, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_DELAY_MS, MAX_OPERATIONS,
    OperationAction, OperationOut, OperationPage,
};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Attempts of a batch job that fails (source unreachable) before it fails for good.
const MAX_ATTEMPTS: i64 = 10;
/// Operations per page of results, by default and at most.
const PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn out(b: Batch) -> BatchOut {
    BatchOut {
        pending: (b.total - b.succeeded - b.failed - b.cancelled).max(0),
        id: b.id,
        connection_id: b.connection_id,
        status: b.status,
        batch_size: b.batch_size,
        delay_ms: b.delay_ms,
        on_error: b.on_error,
        total: b.total,
        succeeded: b.succeeded,
        failed: b.failed,
        cancelled: b.cancelled,
        cancel_requested: b.cancel_requested,
        created_at: b.created_at,
        updated_at: b.updated_at,
        finished_at: b.finished_at,
    }
}

fn operation_out(op: BatchOperation) -> OperationOut {
    let result = op
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let (record, error) = match result {
        Some(mut v) => (
            v.get_mut("record").map(Value::take),
            v.get_mut("error").map(Value::take),
        ),
        None => (None, None),
    };
    OperationOut {
        index: op.idx,
        action: op.action,
        entity: ironbridge_model::Entity::parse(&op.entity).map_or(op.entity, path_name),
        status: op.status,
        record_id: op.record_id,
        record,
        error,
        updated_at: op.updated_at,
    }
}

fn invalid(param: String, message: String) -> ApiError {
    ApiError::new(ErrorCode::ValidationError, message).param(param)
}

/// Queue a bulk batch of creates and updates on the calling connection. It runs in the
/// background, in batches of `batch_size` operations (each batch's operations at once
/// within the source's limits) with `delay_ms` between batches. Each operation is written
/// exactly once, even if the worker running it stops: it carries its own idempotency.
/// `batch.completed` is sent when it ends.
#[utoipa::path(post, path = "/v1/batches", tag = "Batches", operation_id = "v1.batches.create",
    request_body = BatchIn,
    responses((status = 202, description = "The queued batch", body = BatchOut),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "An operation names an entity or action the connection's system cannot write, or a setting is out of range", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_batch(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiJson(input): ApiJson<BatchIn>,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    auth.writable()?;
    if input.operations.is_empty() || input.operations.len() > MAX_OPERATIONS {
        return Err(invalid(
            "operations".into(),
            format!("a batch holds 1 to {MAX_OPERATIONS} operations"),
        ));
    }
    let batch_size = input.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(invalid(
            "batch_size".into(),
            format!("batch_size must be between 1 and {MAX_BATCH_SIZE}"),
        ));
    }
    let delay_ms = input.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(invalid(
            "delay_ms".into(),
            format!("delay_ms must be at most {MAX_DELAY_MS}"),
        ));
    }
    let system = state.runtimes.get(&auth.connection)?.system();
    let now = state.clock.now();
    let id = new_id("bat", now.micros());
    let mut operations = Vec::with_capacity(input.operations.len());
    for (i, op) in input.operations.into_iter().enumerate() {
        let at = |field: &str| format!("operations[{i}].{field}");
        let entity = parse_entity(&op.entity).ok_or_else(|| {
            invalid(
                at("entity"),
                format!(
                    "unknown entity `{}` (use its path name, e.g. `purchase-orders`)",
                    op.entity
                ),
            )
        })?;
        let write_op = match op.action {
            OperationAction::Create => WriteOp::Create,
            OperationAction::Update => WriteOp::Update,
        };
        if !system.writes(entity, write_op) {
            return Err(invalid(
                at("action"),
                format!(
                    "{} cannot {} {} records through Ironbridge",
                    system.name,
                    op.action.as_str(),
                    entity.spec().label
                ),
            ));
        }
        match (op.action, &op.id) {
            (OperationAction::Update, None) => {
                return Err(invalid(
                    at("id"),
                    "an update names the record's `id`".into(),
                ));
            }
            (OperationAction::Create, Some(_)) => {
                return Err(invalid(at("id"), "a create takes no `id`".into()));
            }
            _ => {}
        }
        operations.push(BatchOperation {
            batch_id: id.clone(),
            idx: i64::try_from(i).unwrap_or(i64::MAX),
            action: op.action.as_str().into(),
            entity: entity.as_str().into(),
            target_id: op.id,
            body: Value::Object(op.data).to_string(),
            status: operation_status::PENDING.into(),
            attempts: 0,
            record_id: None,
            result: None,
            updated_at: now,
        });
    }
    let job_id = new_id("job", now.micros());
    let batch = Batch {
        id: id.clone(),
        org_id: auth.connection.org_id.clone(),
        connection_id: auth.connection.id.clone(),
        status: batch_status::QUEUED.into(),
        batch_size: i64::from(batch_size),
        delay_ms: i64::try_from(delay_ms).unwrap_or(0),
        on_error: input.on_error.unwrap_or_default().as_str().into(),
        total: i64::try_from(operations.len()).unwrap_or(i64::MAX),
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        cancel_requested: false,
        job_id: Some(job_id.clone()),
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    let job = NewJob {
        id: job_id,
        kind: BATCH_JOB.into(),
        org_id: batch.org_id.clone(),
        connection_id: Some(batch.connection_id.clone()),
        payload: serde_json::json!({ "batch_id": id }).to_string(),
        dedupe_key: None,
        run_at: now,
        max_attempts: MAX_ATTEMPTS,
        created_at: now,
    };
    state.store.create_batch(&batch, &operations, &job).await?;
    Ok((StatusCode::ACCEPTED, Json(out(batch))))
}

fn owned(auth: &ConnectionAuth, batch: Batch) -> ApiResult<Batch> {
    // Another connection's batch is not this caller's, even in the same organization.
    if batch.connection_id != auth.connection.id {
        return Err(ApiError::not_found("batch"));
    }
    Ok(batch)
}

async fn load(state: &AppState, auth: &ConnectionAuth, id: &str) -> ApiResult<Batch> {
    let org = OrgId(auth.connection.org_id.clone());
    match state.store.get_batch(&org, id).await {
        Ok(b) => owned(auth, b),
        Err(ironbridge_core::store::StoreError::NotFound) => Err(ApiError::not_found("batch")),
        Err(e) => Err(e.into()),
    }
}

/// Get a batch of the calling connection and its progress.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "Batches", operation_id = "v1.batches.get",
    params(("id" = String, Path, description = "Batch id (`bat_…`)")),
    responses((status = 200, description = "The batch", body = BatchOut),
        (status = 404, description = "No such batch for this connection", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn get_batch(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BatchOut>> {
    Ok(Json(out(load(&state, &auth, &id).await?)))
}

/// Ask a batch to stop: operations already sent end as they will, the rest are cancelled
/// before the next batch of operations. Cancelling an ended batch changes nothing.
#[utoipa::path(post, path = "/v1/batches/{id}/cancel", tag = "Batches", operation_id = "v1.batches.cancel",
    params(("id" = String, Path, description = "Batch id (`bat_…`)")),
    responses((status = 200, description = "The batch, with `cancel_requested`", body = BatchOut),
        (status = 404, description = "No such batch for this connection", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn cancel_batch(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BatchOut>> {
    let batch = load(&state, &auth, &id).await?;
    if batch.finished_at.is_some() {
        return Ok(Json(out(batch)));
    }
    let org = OrgId(auth.connection.org_id.clone());
    let batch = state
        .store
        .cancel_batch(&org, &id, state.clock.now())
        .await?;
    Ok(Json(out(batch)))
}

/// Query of a batch's operation results.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// Only operations in this state: `pending`, `sending`, `succeeded`, `failed`, `cancelled`.
    #[param(pattern = "^(pending|sending|succeeded|failed|cancelled)$")]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Operations per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
}

/// The results of a batch's operations, in order: the record written, or the structured
/// error the single write would have answered.
#[utoipa::path(get, path = "/v1/batches/{id}/operations", tag = "Batches", operation_id = "v1.batches.operations",
    params(("id" = String, Path, description = "Batch id (`bat_…`)"), OperationsQuery),
    responses((status = 200, description = "A page of results", body = OperationPage),
        (status = 400, description = "Bad cursor, status or page size", body = ErrorBody),
        (status = 404, description = "No such batch for this connection", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn list_operations(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<OperationsQuery>,
) -> ApiResult<Json<OperationPage>> {
    let bad = |param: &str, message: &str| {
        ApiError::new(ErrorCode::InvalidRequest, message.to_string()).param(param.to_string())
    };
    let limit = query.page_size.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad("page_size", "page_size must be between 1 and 1000"));
    }
    const STATES: [&str; 5] = [
        operation_status::PENDING,
        operation_status::SENDING,
        operation_status::SUCCEEDED,
        operation_status::FAILED,
        operation_status::CANCELLED,
    ];
    if let Some(s) = &query.status
        && !STATES.contains(&s.as_str())
    {
        return Err(bad(
            "status",
            "status must be pending, sending, succeeded, failed or cancelled",
        ));
    }
    let after = match &query.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "The cursor is not one this list gave.",
            )
            .param("cursor")
        })?),
    };
    let batch = load(&state, &auth, &id).await?;
    let org = OrgId(batch.org_id.clone());
    let ops = state
        .store
        .list_batch_operations(&org, &batch.id, after, query.status.as_deref(), limit + 1)
        .await?;
    let more = ops.len() > limit as usize;
    let data: Vec<OperationOut> = ops
        .into_iter()
        .take(limit as usize)
        .map(operation_out)
        .collect();
    let next_cursor = if more {
        data.last().map(|o| o.index.to_string())
    } else {
        None
    };
    Ok(Json(OperationPage { data, next_cursor }))
}

/// Query of a connection's batches.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchesQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Batches per page (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A page of batches.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchPage {
    /// Batches, newest first.
    pub data: Vec<BatchOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The calling connection's batches, newest first.
#[utoipa::path(get, path = "/v1/batches", tag = "Batches", operation_id = "v1.batches.list",
    params(BatchesQuery),
    responses((status = 200, description = "A page of batches", body = BatchPage),
        (status = 400, description = "Bad cursor or page size", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn list_batches(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiQuery(query): ApiQuery<BatchesQuery>,
) -> ApiResult<Json<BatchPage>> {
    let limit = query.page_size.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "page_size must be between 1 and 100",
        )
        .param("page_size"));
    }
    if let Some(c) = &query.cursor
        && !(c.starts_with("bat_") && c.len() < 64)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "The cursor is not one this list gave.",
        )
        .param("cursor"));
    }
    let org = OrgId(auth.connection.org_id.clone());
    let batches = state
        .store
        .list_batches(&org, &auth.id(), query.cursor.as_deref(), limit + 1)
        .await?;
    let more = batches.len() > limit as usize;
    let data: Vec<BatchOut> = batches.into_iter().take(limit as usize).map(out).collect();
    let next_cursor = if more {
        data.last().map(|b| b.id.clone())
    } else {
        None
    };
    Ok(Json(BatchPage { data, next_cursor }))
}
