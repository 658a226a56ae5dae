//! The answer to a write: the record as the source answered it, stored at once (a read
//! right after shows it) in the same transaction as the answer of its idempotency key.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironbridge_core::runtime::ConnectionRuntime;
use ironbridge_core::store::IdemAnswer;
use ironbridge_core::written::{self, Answered};
use ironbridge_model::Entity;

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::ApiResult;
use crate::idempotency::{Idempotency, KeyAnswered};

/// Stores what the source answered as the connection's record and answers with it.
pub async fn respond(
    state: &AppState,
    auth: &ConnectionAuth,
    runtime: &ConnectionRuntime,
    entity: Entity,
    answered: &Answered,
    status: StatusCode,
    idempotency: Option<&Idempotency>,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let (record, rendered) = written::prepare(
        &auth.connection.id,
        runtime.system(),
        entity,
        &answered.raw,
        answered.created_at.unwrap_or(now),
        now,
    )?;
    let body = serde_json::to_string(&rendered)
        .map_err(|e| crate::error::ApiError::internal(e.to_string()))?;
    let answer = idempotency.map(|i| {
        (
            &i.hold,
            IdemAnswer {
                status: status.as_u16(),
                body: body.clone(),
            },
        )
    });
    match answer.as_ref() {
        // A sandbox answers like a real system but keeps nothing (its key's answer only).
        Some((hold, answer)) if !written::keeps_writes(runtime.system()) => {
            state.store.answer_idempotency(hold, answer).await?;
        }
        _ if !written::keeps_writes(runtime.system()) => {}
        answer => {
            state
                .store
                .store_written(&auth.id(), &record, answer.map(|(h, a)| (*h, a)))
                .await?
        }
    }
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if idempotency.is_some() {
        response.extensions_mut().insert(KeyAnswered);
    }
    Ok(response)
}
