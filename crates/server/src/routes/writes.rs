//! Creating and updating vendors and items through the unified model, and the one path every
//! write handler takes: the body's fields go to `core::write::apply` (validated against the
//! connection's write description, references resolved, written through its runtime) and the
//! record the source answered with is rendered as a read would show it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::service::render_written;
use ironbridge_core::write::{self, WriteAction};
use ironbridge_model::Entity;
use ironbridge_model::api::{ItemIn, ItemPatch, VendorIn, VendorPatch};
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiFields, ApiPath};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Creates a record of `entity` from `body` and answers `201` with it.
pub async fn create(
    state: &AppState,
    auth: &ConnectionAuth,
    entity: Entity,
    body: &Map<String, Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let written = write::apply(
        state.store.as_ref(),
        &runtime,
        &auth.id(),
        entity,
        WriteAction::Create,
        body,
        None,
    )
    .await?
    .ok_or_else(|| ApiError::internal("a create answered no record"))?;
    let now = state.clock.now();
    let record = render_written(
        &auth.connection.id,
        runtime.system(),
        entity,
        written.raw,
        written.created_at.unwrap_or(now),
        now,
    )?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Updates the record `id` of `entity` with `body`; `404` when there is none.
pub async fn update(
    state: &AppState,
    auth: &ConnectionAuth,
    entity: Entity,
    id: &str,
    body: &Map<String, Value>,
) -> ApiResult<Json<Value>> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let written = write::apply(
        state.store.as_ref(),
        &runtime,
        &auth.id(),
        entity,
        WriteAction::Update { id },
        body,
        None,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(entity.spec().label))?;
    let now = state.clock.now();
    let record = render_written(
        &auth.connection.id,
        runtime.system(),
        entity,
        written.raw,
        written.created_at.unwrap_or(now),
        now,
    )?;
    Ok(Json(record))
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
        (status = 422, description = "Missing, read-only or invalid field (`VALIDATION_ERROR`, `param`), refused by the source (`BUSINESS_RULE_VIOLATION`, `details.remote_code`), or the system cannot create vendors (`UNSUPPORTED_OPERATION`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_vendor(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiFields(body, _): ApiFields<VendorIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(&state, &auth, Entity::VENDOR, &body).await
}

/// Update a vendor in the source system. Fields left out stay unchanged.
#[utoipa::path(patch, path = "/v1/vendors/{id}", tag = "Vendors", operation_id = "v1.vendors.update",
    params(("id" = String, Path, description = "Vendor id (`vnd_…`)")),
    request_body = VendorPatch,
    responses((status = 200, description = "The vendor as the source system now has it", body = ironbridge_model::entities::Vendor),
        (status = 403, description = "The source system's role or user may not change vendors (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such vendor", body = ErrorBody),
        (status = 409, description = "The source's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid, read-only or fixed field, refused by the source, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_vendor(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<VendorPatch>,
) -> ApiResult<Json<Value>> {
    update(&state, &auth, Entity::VENDOR, &id, &body).await
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
        (status = 422, description = "Missing, read-only or invalid field (`VALIDATION_ERROR`, `param`), refused by the source (`BUSINESS_RULE_VIOLATION`, `details.remote_code`), or the system cannot create items (`UNSUPPORTED_OPERATION`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_item(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiFields(body, _): ApiFields<ItemIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(&state, &auth, Entity::ITEM, &body).await
}

/// Update an item in the source system. Fields left out stay unchanged.
#[utoipa::path(patch, path = "/v1/items/{id}", tag = "Items", operation_id = "v1.items.update",
    params(("id" = String, Path, description = "Item id (`itm_…`)")),
    request_body = ItemPatch,
    responses((status = 200, description = "The item as the source system now has it", body = ironbridge_model::entities::Item),
        (status = 403, description = "The source system's role or user may not change items (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The source's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid, read-only or fixed field, refused by the source, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_item(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<ItemPatch>,
) -> ApiResult<Json<Value>> {
    update(&state, &auth, Entity::ITEM, &id, &body).await
}
