//! Writing purchase orders back to the source system through the unified model.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ironbridge_core::write;
use ironbridge_core::written::Answered;
use ironbridge_model::Entity;
use ironbridge_model::api::{PurchaseOrderIn, PurchaseOrderPatch};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::idempotency::Idempotency;
use crate::routes::written;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Create a purchase order with its lines (one transaction in the source system). On a sandbox
/// connection the answer is exactly what a real write returns, and nothing changes.
#[utoipa::path(post, path = "/v1/purchase-orders", tag = "Purchase orders", operation_id = "v1.purchase_orders.create",
    request_body = PurchaseOrderIn,
    responses((status = 201, description = "The created order as the source system stored it", body = ironbridge_model::entities::PurchaseOrder),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or read-only field (`VALIDATION_ERROR`), or the source refused it (`BUSINESS_RULE_VIOLATION`: invalid vendor, out-of-stock item, ...)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read it back or retry with the same `Idempotency-Key`, never blindly", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_purchase_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiJson(input): ApiJson<PurchaseOrderIn>,
) -> ApiResult<Response> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let raw = write::create_purchase_order(
        state.store.as_ref(),
        &runtime,
        &auth.id(),
        &input,
        idempotency.as_ref().map(|i| i.reference.as_str()),
        idempotency.as_ref().is_some_and(|i| i.reconcile),
    )
    .await?;
    written::respond(
        &state,
        &auth,
        &runtime,
        Entity::PURCHASE_ORDER,
        &Answered {
            raw,
            created_at: None,
        },
        StatusCode::CREATED,
        idempotency.as_deref(),
    )
    .await
}

/// Update a purchase order. Fields left out stay unchanged; `line_items`, when given, replace
/// all lines. Orders the source has closed answer `STATE_CONFLICT`.
#[utoipa::path(patch, path = "/v1/purchase-orders/{id}", tag = "Purchase orders", operation_id = "v1.purchase_orders.update",
    params(("id" = String, Path, description = "Purchase order id (`po_…`)")),
    request_body = PurchaseOrderPatch,
    responses((status = 200, description = "The order as the source system now has it", body = ironbridge_model::entities::PurchaseOrder),
        (status = 404, description = "No such purchase order", body = ErrorBody),
        (status = 409, description = "The order's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid or read-only field, or rejected by the source", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_purchase_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<PurchaseOrderPatch>,
) -> ApiResult<Response> {
    auth.writable()?;
    let runtime = state.runtimes.get(&auth.connection)?;
    let (raw, created_at) =
        write::update_purchase_order(state.store.as_ref(), &runtime, &auth.id(), &id, &patch)
            .await?
            .ok_or_else(|| ApiError::not_found("purchase order"))?;
    written::respond(
        &state,
        &auth,
        &runtime,
        Entity::PURCHASE_ORDER,
        &Answered {
            raw,
            created_at: Some(created_at),
        },
        StatusCode::OK,
        idempotency.as_deref(),
    )
    .await
}
