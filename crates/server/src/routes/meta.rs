//! `GET /v1/meta/{entity}`: what a write of an entity takes on the calling connection, from
//! the same description every write is validated against.

use axum::Json;
use axum::extract::State;
use ironbridge_core::service::stored_system;
use ironbridge_core::write;
use ironbridge_model::api::WriteMetaOut;
use ironbridge_model::{Entity, ErrorCode};

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// The entity a URL segment names (`purchase-orders`), as in the entity's collection path.
pub fn entity_of(segment: &str) -> Option<Entity> {
    Entity::ALL
        .iter()
        .copied()
        .find(|e| e.spec().plural.replace('_', "-") == segment)
}

/// What creates and updates of an entity take on this connection: the operations its system
/// supports, every field (type, required on create, read-only, enum values, length limit,
/// description; `line_items` with its element fields) and the custom fields it can write.
/// Writes are validated against this same description before the source is called.
#[utoipa::path(get, path = "/v1/meta/{entity}", tag = "Meta", operation_id = "v1.meta.get",
    params(("entity" = String, Path, description = "The entity as its collection path names it: `vendors`, `items`, `locations`, `purchase-orders`")),
    responses((status = 200, description = "The write description", body = WriteMetaOut),
        (status = 404, description = "No such entity", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn get_meta(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiPath(segment): ApiPath<String>,
) -> ApiResult<Json<WriteMetaOut>> {
    let entity = entity_of(&segment).ok_or_else(|| {
        let known: Vec<String> = Entity::ALL
            .iter()
            .map(|e| e.spec().plural.replace('_', "-"))
            .collect();
        ApiError::new(
            ErrorCode::NotFound,
            format!("No entity `{segment}`; known: {}.", known.join(", ")),
        )
        .param("entity")
    })?;
    let system = stored_system(state.runtimes.registry(), &auth.connection)?;
    Ok(Json(write::meta(system, entity)))
}
