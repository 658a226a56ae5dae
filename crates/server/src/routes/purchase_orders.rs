//! Writing purchase orders back to the source system through the unified model.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use ironbridge_model::Entity;
use ironbridge_model::api::{PurchaseOrderIn, PurchaseOrderPatch};

use super::writes;
use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::ApiResult;
use crate::extract::{ApiFields, ApiPath};
use crate::idempotency::Idempotency;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Create a purchase order with its lines (one transaction in the source system). On a sandbox
/// connection the answer is exactly what a real write returns, and nothing changes.
/// `GET /v1/meta/purchase-orders` says which fields the connection's system takes.
#[utoipa::path(post, path = "/v1/purchase-orders", tag = "Purchase orders", operation_id = "v1.purchase_orders.create",
    request_body = PurchaseOrderIn,
    responses((status = 201, description = "The created order as the source system stored it", body = ironbridge_model::entities::PurchaseOrder),
        (status = 403, description = "The source system's role or user may not create orders (`PERMISSION_DENIED`, `details.remote_code`)", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or read-only field (`VALIDATION_ERROR`), the source refused it (`BUSINESS_RULE_VIOLATION`: invalid vendor, out-of-stock item, ...), or the system cannot create orders (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read it back or retry with the same `Idempotency-Key`, never blindly", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_purchase_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiFields(body, _): ApiFields<PurchaseOrderIn>,
) -> ApiResult<Response> {
    writes::create(
        &state,
        &auth,
        Entity::PURCHASE_ORDER,
        &body,
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
        (status = 403, description = "The source system's role or user may not change orders (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such purchase order", body = ErrorBody),
        (status = 409, description = "The order's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid or read-only field, rejected by the source, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The source did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_purchase_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<PurchaseOrderPatch>,
) -> ApiResult<Response> {
    writes::update(
        &state,
        &auth,
        Entity::PURCHASE_ORDER,
        &id,
        &body,
        idempotency.as_deref(),
    )
    .await
}
