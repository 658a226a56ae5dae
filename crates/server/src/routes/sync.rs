//! On-demand syncs: queue one for the calling connection and follow its job.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::store::{Job, OrgId, StoreError};
use ironbridge_engine::worker::enqueue_sync;
use ironbridge_model::api::{SyncIn, SyncJobOut, SyncQueuedOut};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Attempts of an on-demand sync before it fails for good.
const MAX_ATTEMPTS: i64 = 5;

fn out(job: Job) -> SyncJobOut {
    let payload = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap_or_default();
    let full = payload["full"].as_bool().unwrap_or(false);
    let full_reason = payload["reason"].as_str().map(str::to_string);
    SyncJobOut {
        connection_id: job.connection_id.unwrap_or_default(),
        id: job.id,
        status: job.status,
        full,
        full_reason,
        attempts: job.attempts,
        failed_attempts: job.failures,
        max_attempts: job.max_attempts,
        run_at: job.run_at,
        last_error: job.last_error,
        created_at: job.created_at,
        updated_at: job.updated_at,
    }
}

/// Queue a sync of the calling connection. If one is already queued or running, that one is
/// returned instead (`already_queued: true`). Workers pick it up within a second.
#[utoipa::path(post, path = "/v1/sync", tag = "Sync", operation_id = "v1.sync.start",
    request_body(content = Option<SyncIn>, description = "Optional: `{\"full\": true}` restarts every entity from the beginning"),
    responses((status = 202, description = "The queued sync job", body = SyncQueuedOut),
        (status = 409, description = "The connection is disconnected", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn start_sync(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiJson(input): ApiJson<SyncIn>,
) -> ApiResult<(StatusCode, Json<SyncQueuedOut>)> {
    auth.writable()?;
    let org = OrgId(auth.connection.org_id.clone());
    let (job, created) = enqueue_sync(
        state.store.as_ref(),
        state.clock.as_ref(),
        &org,
        &auth.id(),
        input.full,
        MAX_ATTEMPTS,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncQueuedOut {
            job: out(job),
            already_queued: !created,
        }),
    ))
}

/// Get a sync job of the calling connection.
#[utoipa::path(get, path = "/v1/sync/jobs/{id}", tag = "Sync", operation_id = "v1.sync.get_job",
    params(("id" = String, Path, description = "Job id (`job_…`)")),
    responses((status = 200, description = "The job", body = SyncJobOut),
        (status = 404, description = "No such job for this connection", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn get_sync_job(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SyncJobOut>> {
    let org = OrgId(auth.connection.org_id.clone());
    let job = match state.store.get_job(&org, &id).await {
        Ok(job) if job.connection_id.as_deref() == Some(auth.connection.id.as_str()) => job,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("sync job")),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(out(job)))
}
