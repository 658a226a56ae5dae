//! The capability matrix: which systems, entities and operations are supported.

use axum::Json;
use axum::extract::State;
use ironbridge_model::api::SystemList;

use crate::AppState;

/// List the systems Ironbridge connects to and, per entity, what each supports: reads,
/// incremental reads, how deletions are detected, creates and updates.
#[utoipa::path(get, path = "/v1/systems", tag = "Systems", operation_id = "v1.systems.list",
    responses((status = 200, description = "The capability matrix", body = SystemList)),
    security(("admin_key" = []), ("connection_token" = [])))]
pub async fn list_systems(State(state): State<AppState>) -> Json<SystemList> {
    Json(SystemList {
        data: state.runtimes.registry().capabilities(),
    })
}
