//! The change feed: every record of the calling connection created, changed or deleted, in
//! the order the changes were stored, from a cursor that can be followed forever.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ironbridge_core::read::{ChangesQuery, RecordReader};
use ironbridge_model::api::ChangeList;
use ironbridge_model::{Entity, ErrorCode, Storage};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Query of `GET /v1/changes`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeParams {
    /// `next_cursor` of the previous page (absent: from the beginning of the feed). Bound to
    /// the connection and to `entity`.
    pub cursor: Option<String>,
    /// Changes per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// Only this entity's changes, by its name (`purchase_order`) or its collection path
    /// (`purchase-orders`).
    pub entity: Option<String>,
    /// Add each record's source payload as `remote_data`.
    pub include_remote_data: Option<bool>,
}

/// The entity a query names, by name or collection path; only entities kept as records
/// have changes (vehicle locations are read by time from their own list).
fn entity_param(name: &str) -> Result<Entity, ApiError> {
    Entity::parse(name)
        .or_else(|| super::meta::entity_of(name))
        .filter(|e| e.spec().storage == Storage::Records)
        .ok_or_else(|| {
            let known: Vec<&str> = Entity::ALL
                .iter()
                .filter(|e| e.spec().storage == Storage::Records)
                .map(|e| e.as_str())
                .collect();
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "`entity` is not an entity with changes. Known: {}.",
                    known.join(", ")
                ),
            )
            .param("entity")
        })
}

/// The connection's change feed: every record created, updated or deleted, in the order the
/// changes were stored (by `seq`, then entity and id), each with the record as the record
/// routes answer it (field mappings applied) or, for a deletion, its tombstone. A record
/// changed several times since the cursor appears once, at its latest change. Follow
/// `next_cursor` forever: it is returned on every page, the last one too, and no change is
/// missed or returned twice, whatever syncs or writes run meanwhile.
#[utoipa::path(get, path = "/v1/changes", tag = "Changes", operation_id = "v1.changes.list",
    params(ChangeParams),
    responses((status = 200, description = "A page of changes", body = ChangeList),
        (status = 400, description = "A bad entity, page size or cursor (`INVALID_REQUEST`, `INVALID_CURSOR`, `param`)", body = ErrorBody)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn list_changes(
    State(state): State<AppState>,
    auth: ConnectionAuth,
    ApiQuery(q): ApiQuery<ChangeParams>,
) -> ApiResult<Response> {
    let entity = q.entity.as_deref().map(entity_param).transpose()?;
    let query = ChangesQuery {
        cursor: q.cursor,
        page_size: q.page_size,
        entity,
        include_remote_data: q.include_remote_data.unwrap_or(false),
    };
    let view = state.view(&auth.connection).await?;
    let reader = RecordReader {
        store: state.store.as_ref(),
        keys: &state.keys,
        view,
    };
    let page = reader.changes(&auth.id(), &query).await?;
    // Records are written out as JSON text, never as a tree (see `read::render_text`).
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        page.into_body(),
    )
        .into_response())
}
