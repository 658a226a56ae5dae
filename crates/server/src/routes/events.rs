//! The events API: what happened to the organization's connections, even without webhooks.

use axum::Json;
use axum::extract::State;
use ironbridge_core::pagination::{PageSize, Pager};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{EventList, EventOut};
use ironbridge_model::webhooks::{EVENT_TYPES, TEST_EVENT_TYPE, is_event_type};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
    /// Only events of this connection.
    pub connection_id: Option<String>,
    /// Only events of this type, e.g. `sync.completed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
}

/// Refuses an unknown event type in the query parameter `param`, as endpoint filters refuse
/// one in their body, listing the known types (with the test ping's where `with_test`):
/// filtering on a typo would otherwise answer an empty page that looks like "nothing happened".
pub fn check_event_type(param: &str, name: &str, with_test: bool) -> Result<(), ApiError> {
    if is_event_type(name) || (with_test && name == TEST_EVENT_TYPE) {
        return Ok(());
    }
    let mut known: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
    if with_test {
        known.push(TEST_EVENT_TYPE);
    }
    Err(ApiError::new(
        ErrorCode::InvalidRequest,
        format!(
            "`{param}` is not an event type. Known types: {} (see GET /v1/webhook-event-types).",
            known.join(", ")
        ),
    )
    .param(param))
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
    if let Some(t) = q.event_type.as_deref() {
        check_event_type("type", t, false)?;
    }
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
