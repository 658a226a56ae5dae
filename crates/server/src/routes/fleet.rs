//! Vehicle locations: the fleet's GPS points, served from their own time-ordered storage in
//! cursor pages filtered by vehicle and time, and the latest position of each vehicle.

use axum::Json;
use axum::extract::State;
use ironbridge_core::points::{LocationQuery, PointReader};
use ironbridge_model::Timestamp;
use ironbridge_model::fleet::VehicleLocationList;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::ApiResult;
use crate::extract::ApiQuery;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Query of `GET /v1/vehicle-locations`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LocationParams {
    /// `next_cursor` of the previous page. Bound to the connection and the filters.
    pub cursor: Option<String>,
    /// Points per page, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub page_size: Option<u32>,
    /// Only this vehicle's points (`vhc_…`).
    #[param(pattern = "^vhc_")]
    pub vehicle_id: Option<String>,
    /// Only points recorded at or after this instant (RFC 3339).
    pub recorded_after: Option<Timestamp>,
    /// Only points recorded before this instant (RFC 3339); not before `recorded_after`.
    pub recorded_before: Option<Timestamp>,
}

/// Query of `GET /v1/vehicle-locations/latest`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Vehicles per page, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub page_size: Option<u32>,
    /// Only this vehicle (`vhc_…`).
    #[param(pattern = "^vhc_")]
    pub vehicle_id: Option<String>,
}

fn reader(state: &AppState) -> PointReader<'_> {
    PointReader {
        store: state.store.as_ref(),
        keys: &state.keys,
    }
}

/// List the connection's vehicle locations (GPS points), oldest first (the points of one
/// instant in a fixed order of their vehicles), stable while points arrive, so following the cursors to the end reads
/// each point in the range once. Points older than the retention period are gone.
#[utoipa::path(get, path = "/v1/vehicle-locations", tag = "Vehicle locations", operation_id = "v1.vehicle_locations.list",
    params(LocationParams),
    responses((status = 200, description = "A page of points", body = VehicleLocationList),
        (status = 400, description = "A bad filter, page size or cursor (`INVALID_REQUEST`, `param`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn list_vehicle_locations(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiQuery(q): ApiQuery<LocationParams>,
) -> ApiResult<Json<VehicleLocationList>> {
    let query = LocationQuery {
        cursor: q.cursor,
        page_size: q.page_size,
        vehicle_id: q.vehicle_id,
        recorded_after: q.recorded_after,
        recorded_before: q.recorded_before,
    };
    let (data, next_cursor) = reader(&state).locations(&auth.id(), &query).await?;
    Ok(Json(VehicleLocationList { data, next_cursor }))
}

/// The latest known position of each of the connection's vehicles, by vehicle id.
#[utoipa::path(get, path = "/v1/vehicle-locations/latest", tag = "Vehicle locations", operation_id = "v1.vehicle_locations.latest",
    params(LatestParams),
    responses((status = 200, description = "The newest point of each vehicle", body = VehicleLocationList),
        (status = 400, description = "A bad filter, page size or cursor (`INVALID_REQUEST`, `param`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn latest_vehicle_locations(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiQuery(q): ApiQuery<LatestParams>,
) -> ApiResult<Json<VehicleLocationList>> {
    let (data, next_cursor) = reader(&state)
        .latest(
            &auth.id(),
            q.vehicle_id.as_deref(),
            q.cursor.as_deref(),
            q.page_size,
        )
        .await?;
    Ok(Json(VehicleLocationList { data, next_cursor }))
}
