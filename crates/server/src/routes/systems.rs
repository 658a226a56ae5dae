//! The capability matrix: which systems, entities and operations are supported.

use axum::Json;
use ironbridge_model::api::SystemList;

/// List the systems Ironbridge connects to and, per entity, what each supports: reads,
/// incremental reads, how deletions are detected, creates and updates.
#[utoipa::path(get, path = "/v1/systems", tag = "Systems", operation_id = "v1.systems.list",
    responses((status = 200, description = "The capability matrix", body = SystemList)),
    security(("admin_key" = []), ("connection_token" = [])))]
pub async fn list_systems() -> Json<SystemList> {
    Json(SystemList {
        data: ironbridge_core::capabilities::capabilities(),
    })
}
