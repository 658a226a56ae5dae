//! Writing dispatch routes to a fleet system through the unified model: created with their
//! stops, then changed by a JSON merge patch, by the one write path every entity takes
//! (`writes::create`, `writes::update`). They are read like every entity (`records`).

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use ironbridge_model::Entity;
use ironbridge_model::fleet::{DispatchRouteIn, DispatchRoutePatch};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::ApiResult;
use crate::extract::{ApiFields, ApiPath};
use crate::idempotency::Idempotency;
use crate::routes::writes::{create, update};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Create a dispatch route with its stops in the fleet system. Which fields the connection's
/// system takes, requires or sets itself is in `GET /v1/meta/dispatch-routes`; the write is
/// checked against it first, and `vehicle_id` and `driver_id` must name records of this
/// connection. Under an `Idempotency-Key` a retry creates the route once.
#[utoipa::path(post, path = "/v1/dispatch-routes", tag = "Dispatch routes", operation_id = "v1.dispatch_routes.create",
    request_body = DispatchRouteIn,
    responses((status = 201, description = "The created route as the fleet system stored it", body = ironbridge_model::fleet::DispatchRoute),
        (status = 403, description = "The fleet system's token may not create routes (`PERMISSION_DENIED`, `details.remote_code`)", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, read-only or invalid field, or a vehicle or driver this connection does not have (`VALIDATION_ERROR`, `param`), refused by the fleet system (`BUSINESS_RULE_VIOLATION`, `details.remote_code`), or the system cannot create routes (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The fleet system did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read it back or retry with the same `Idempotency-Key`, never blindly", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn create_dispatch_route(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiFields(body, _): ApiFields<DispatchRouteIn>,
) -> ApiResult<Response> {
    create(
        &state,
        &auth,
        Entity::DISPATCH_ROUTE,
        &body,
        idempotency.as_deref(),
    )
    .await
}

/// Update a dispatch route (a JSON merge patch): fields left out stay unchanged, `null`
/// unassigns the vehicle or driver or removes the note, and `stops` replaces the list (a stop
/// naming its `remote_id` is kept with its progress).
#[utoipa::path(patch, path = "/v1/dispatch-routes/{id}", tag = "Dispatch routes", operation_id = "v1.dispatch_routes.update",
    params(("id" = String, Path, description = "Dispatch route id (`dsr_…`)")),
    request_body = DispatchRoutePatch,
    responses((status = 200, description = "The route as the fleet system now has it", body = ironbridge_model::fleet::DispatchRoute),
        (status = 403, description = "The fleet system's token may not change routes (`PERMISSION_DENIED`)", body = ErrorBody),
        (status = 404, description = "No such route, here or in the fleet system", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid or read-only field, a vehicle or driver this connection does not have (`VALIDATION_ERROR`, `param`), refused by the fleet system (`BUSINESS_RULE_VIOLATION`), or an update the system does not support (`UNSUPPORTED_OPERATION`)", body = ErrorBody),
        (status = 504, description = "The fleet system did not answer the write, which it may or may not have applied (`OUTCOME_UNKNOWN`): read the route back before sending it again", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn update_dispatch_route(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    idempotency: Option<Extension<Idempotency>>,
    ApiPath(id): ApiPath<String>,
    ApiFields(body, _): ApiFields<DispatchRoutePatch>,
) -> ApiResult<Response> {
    update(
        &state,
        &auth,
        Entity::DISPATCH_ROUTE,
        &id,
        &body,
        idempotency.as_deref(),
    )
    .await
}

/// Fields of a dispatch route that are shown but never written.
const ROUTE_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
    "status",
    "remote_status",
    "actual_start_at",
    "actual_end_at",
    "custom_fields",
];

/// Fields of a stop that are shown but never written.
const STOP_READ_ONLY: &[&str] = &[
    "id",
    "sequence",
    "actual_arrival_at",
    "actual_departure_at",
    "status",
    "remote_status",
    "custom_fields",
];

impl crate::extract::BodyRules for DispatchRouteIn {
    fn read_only() -> &'static [&'static str] {
        ROUTE_READ_ONLY
    }
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[("stops", STOP_READ_ONLY)]
    }
}

impl crate::extract::BodyRules for DispatchRoutePatch {
    fn read_only() -> &'static [&'static str] {
        ROUTE_READ_ONLY
    }
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[("stops", STOP_READ_ONLY)]
    }
}
