//! The events API: what happened to the organization's connections, even without webhooks.

use axum::Json;
use axum::extract::State;
use ironbridge_core::pagination::{PageSize, Pager};
use ironbridge_model::api::{EventList, EventOut};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::ApiResult;
use crate::extract::ApiQuery;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events per page, 1 to 500 (default 100).
    pub page_size: Option<u32>,
    /// Only events of this connection.
    pub connection_id: Option<String>,
    /// Only events of this type, e.g. `sync.completed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
}

/// List the organization's events, oldest first. Poll with the last `next_cursor` to receive
/// new events as they happen; it is returned even on the last page.
#[utoipa::path(get, path = "/v1/events", tag = "Events", operation_id = "v1.events.list",
    params(EventParams),
    responses((status = 200, description = "A page of events", body = EventList)),
    security(("admin_key" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiQuery(q): ApiQuery<EventParams>,
) -> ApiResult<Json<EventList>> {
    let page_size = PageSize {
        default: 100,
        max: 500,
    }
    .resolve(q.page_size)?;
    let pager = Pager::new(
        &state.keys,
        &org.0,
        &[
            ("list", "events".into()),
            ("connection_id", q.connection_id.clone().unwrap_or_default()),
            ("type", q.event_type.clone().unwrap_or_default()),
        ],
    );
    let after = pager.position(q.cursor.as_deref())?;
    let events = state
        .store
        .list_events(
            &org,
            after.as_deref(),
            q.connection_id.as_deref(),
            q.event_type.as_deref(),
            page_size,
        )
        .await?;
    // Events are append-only: the position after the last one is where new ones will appear.
    let last = events.last().map(|e| e.id.clone()).or(after);
    let next_cursor = last.map(|id| pager.cursor_after(&id));
    let data = events
        .into_iter()
        .map(|e| EventOut {
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            id: e.id,
            event_type: e.event_type,
            timestamp: e.created_at,
            connection_id: e.connection_id,
        })
        .collect();
    Ok(Json(EventList { data, next_cursor }))
}
