//! Writing outbound orders to a warehouse through the unified model: created, then shipped or
//! cancelled, by the one write path every entity takes (`writes::create`, `writes::update`).

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use ironbridge_model::Entity;
use ironbridge_model::warehouse::{OutboundOrderIn, OutboundOrderPatch};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::ApiResult;
use crate::extract::{ApiFields, ApiPath};
use crate::idempotency::Idempotency;
use crate::routes::writes::{create, update};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Create an outbound (customer) order in the warehouse. Which fields the connection's system
/// takes, requires or sets itself is in `GET /v1/meta/outbound-orders`; the write is checked
/// against it first. A warehouse that keeps the order without some of its items answers
/// `422 BUSINESS_RULE_VIOLATION` with `details.remote_code` `PARTIAL_ACCEPTANCE` and
/// `details.missing_items`: it is not a success.
#[utoipa::path(post, path = "/v1/outbound-orders", tag = "Outbound orders", operation_id = "v1.outbound_orders.create",
    request_body = OutboundOrderIn,
    responses((status = 201, description = "The created order as the warehouse stored it", body = ironbridge_model::warehouse::OutboundOrder),
        (status = 409, description = "The order's state forbids the change (`STATE_CONFLICT`), or the connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, read-only or invalid field (`VALIDATION_ERROR`, `param`), refused or only partly accepted by the warehouse (`BUSINESS_RULE_VIOLATION`, `details.remote_code`, `details.missing_items`), or the system cannot create orders (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The warehouse did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_outbound_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiFields(body, _): ApiFields<OutboundOrderIn>,
) -> ApiResult<Response> {
    create(
        &state,
        &auth,
        Entity::OUTBOUND_ORDER,
        &body,
        idempotency.as_deref(),
    )
    .await
}

/// Update an outbound order: confirm it shipped, or cancel it.
#[utoipa::path(patch, path = "/v1/outbound-orders/{id}", tag = "Outbound orders", operation_id = "v1.outbound_orders.update",
    params(("id" = String, Path, description = "Outbound order id (`obo_…`)")),
    request_body = OutboundOrderPatch,
    responses((status = 200, description = "The order as the warehouse now has it", body = ironbridge_model::warehouse::OutboundOrder),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "The order's state forbids the change (`STATE_CONFLICT`: already shipped or cancelled), or the connection is disconnected", body = ErrorBody),
        (status = 422, description = "Invalid field, refused by the warehouse, or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The warehouse did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_outbound_order(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<OutboundOrderPatch>,
) -> ApiResult<Response> {
    update(
        &state,
        &auth,
        Entity::OUTBOUND_ORDER,
        &id,
        &body,
        idempotency.as_deref(),
    )
    .await
}

/// Fields of an outbound order that are shown but never written.
const ORDER_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
    "remote_status",
    "order_type",
    "location_code",
    "scheduled_ship_at",
];

/// Fields of an outbound order's line that are shown but never written.
const LINE_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "line_number",
    "item_code",
    "quantity_shipped",
    "custom_fields",
];

impl crate::extract::BodyRules for OutboundOrderIn {
    fn read_only() -> &'static [&'static str] {
        ORDER_READ_ONLY
    }
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[("line_items", LINE_READ_ONLY)]
    }
}

impl crate::extract::BodyRules for OutboundOrderPatch {
    fn read_only() -> &'static [&'static str] {
        ORDER_READ_ONLY
    }
}
