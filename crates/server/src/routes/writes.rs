//! Creating and updating vendors and items through the unified model, and the one path every
//! write handler takes: the body's fields go to `core::write::apply` (validated against the
//! connection's write description, references resolved, written through its runtime) and the
//! record the source answered with is stored at once (a read right after shows it), in the
//! same transaction as the answer of its idempotency key, and answered as a read shows it.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironbridge_core::runtime::ConnectionRuntime;
use ironbridge_core::store::IdemAnswer;
use ironbridge_core::write::{self, WriteAction, Written};
use ironbridge_core::written;
use ironbridge_model::Entity;
use ironbridge_model::api::{ItemIn, ItemPatch, VendorIn, VendorPatch};
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiFields, ApiPath};
use crate::idempotency::{Idempotency, KeyAnswered};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Creates a record of `entity` from `body` and answers `201` with it. Under an idempotency
/// key the create carries the key's reference to the source, and a retry after an unknown
/// outcome looks the record up there before writing again.
pub async fn create(
    state: &AppState,
    auth: &ConnectionAuth,
    entity: Entity,
    body: &Map<String, Value>,
    idempotency: Option<&Idempotency>,
) -> ApiResult<Response> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let view = state.view(&auth.connection).await?;
    let written = write::apply(
        state.store.as_ref(),
        &runtime,
        &auth.id(),
        entity,
        WriteAction::Create,
        body,
        idempotency.map(|i| i.reference.as_str()),
        idempotency.is_some_and(|i| i.reconcile),
        view.as_deref(),
    )
    .await?
    .ok_or_else(|| ApiError::internal("a create answered no record"))?;
    respond(
        state,
        auth,
        &runtime,
        entity,
        &written,
        StatusCode::CREATED,
        idempotency,
    )
    .await
}

/// Updates the record `id` of `entity` with `body`; `404` when there is none.
pub async fn update(
    state: &AppState,
    auth: &ConnectionAuth,
    entity: Entity,
    id: &str,
    body: &Map<String, Value>,
    idempotency: Option<&Idempotency>,
) -> ApiResult<Response> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let view = state.view(&auth.connection).await?;
    let written = write::apply(
        state.store.as_ref(),
        &runtime,
        &auth.id(),
        entity,
        WriteAction::Update { id },
        body,
        None,
        false,
        view.as_deref(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found(entity.spec().label))?;
    respond(
        state,
        auth,
        &runtime,
        entity,
        &written,
        StatusCode::OK,
        idempotency,
    )
    .await
}

/// Stores what the source answered as the connection's record and answers with it.
async fn respond(
    state: &AppState,
    auth: &ConnectionAuth,
    runtime: &ConnectionRuntime,
    entity: Entity,
    answered: &Written,
    status: StatusCode,
    idempotency: Option<&Idempotency>,
) -> ApiResult<Response> {
    let now = state.clock.now();
    // Answered as this connection's reads show it (the compiled mapping is cached).
    let view = state.view(&auth.connection).await?;
    let (record, rendered) = written::prepare(
        &auth.connection.id,
        runtime.system(),
        entity,
        &answered.raw,
        answered.created_at.unwrap_or(now),
        now,
        view.as_deref(),
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

/// Create a vendor in the source system. Which fields the connection's system takes, requires
/// or sets itself is in `GET /v1/meta/vendors`; the write is checked against it first.
#[utoipa::path(post, path = "/v1/vendors", tag = "Vendors", operation_id = "v1.vendors.create",
    request_body = VendorIn,
    responses((status = 201, description = "The created vendor as the source system stored it", body = ironbridge_model::entities::Vendor),
        (status = 403, description = "The source system's role or user may not create vendors (`PERMISSION_DENIED`, `details.remote_code`)", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, read-only or invalid field (`VALIDATION_ERROR`, `param`), refused by the source (`BUSINESS_RULE_VIOLATION`, `details.remote_code`), or the system cannot create vendors (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read it back or retry with the same `Idempotency-Key`, never blindly", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_vendor(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiFields(body, _): ApiFields<VendorIn>,
) -> ApiResult<Response> {
    create(&state, &auth, Entity::VENDOR, &body, idempotency.as_deref()).await
}

/// Update a vendor in the source system. Fields left out stay unchanged.
#[utoipa::path(patch, path = "/v1/vendors/{id}", tag = "Vendors", operation_id = "v1.vendors.update",
    params(("id" = String, Path, description = "Vendor id (`vnd_…`)")),
    request_body = VendorPatch,
    responses((status = 200, description = "The vendor as the source system now has it", body = ironbridge_model::entities::Vendor),
        (status = 403, description = "The source system's role or user may not change vendors (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such vendor", body = ErrorBody),
        (status = 409, description = "The source's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid, read-only or fixed field, refused by the source, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_vendor(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<VendorPatch>,
) -> ApiResult<Response> {
    update(
        &state,
        &auth,
        Entity::VENDOR,
        &id,
        &body,
        idempotency.as_deref(),
    )
    .await
}

/// Create an item in the source system. Which fields the connection's system takes, requires
/// or sets itself is in `GET /v1/meta/items`; the write is checked against it first.
#[utoipa::path(post, path = "/v1/items", tag = "Items", operation_id = "v1.items.create",
    request_body = ItemIn,
    responses((status = 201, description = "The created item as the source system stored it", body = ironbridge_model::entities::Item),
        (status = 403, description = "The source system's role or user may not create items (`PERMISSION_DENIED`, `details.remote_code`)", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, read-only or invalid field (`VALIDATION_ERROR`, `param`), refused by the source (`BUSINESS_RULE_VIOLATION`, `details.remote_code`), or the system cannot create items (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read it back or retry with the same `Idempotency-Key`, never blindly", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_item(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiFields(body, _): ApiFields<ItemIn>,
) -> ApiResult<Response> {
    create(&state, &auth, Entity::ITEM, &body, idempotency.as_deref()).await
}

/// Update an item in the source system. Fields left out stay unchanged.
#[utoipa::path(patch, path = "/v1/items/{id}", tag = "Items", operation_id = "v1.items.update",
    params(("id" = String, Path, description = "Item id (`itm_…`)")),
    request_body = ItemPatch,
    responses((status = 200, description = "The item as the source system now has it", body = ironbridge_model::entities::Item),
        (status = 403, description = "The source system's role or user may not change items (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The source's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid, read-only or fixed field, refused by the source, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_item(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<ItemPatch>,
) -> ApiResult<Response> {
    update(
        &state,
        &auth,
        Entity::ITEM,
        &id,
        &body,
        idempotency.as_deref(),
    )
    .await
}
