//! Webhooks: endpoints (create, list, read, change, delete), their signing secrets (read,
//! rotate with an overlap), a signed test ping, the delivery log with each attempt, replay of
//! one delivery and recovery of everything failed since a time; and the event type catalogue.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::pagination::{PageSize, Pager};
use ironbridge_core::store::{
    DeliveryQuery, OrgId, WebhookAttempt, WebhookDelivery, WebhookEndpoint, delivery_status,
};
use ironbridge_engine::webhooks::endpoints::{Endpoints, current_secret};
use ironbridge_model::webhooks::{
    EVENT_TYPES, EventTypeList, EventTypeOut, WebhookAttemptList, WebhookAttemptOut,
    WebhookDeliveryList, WebhookDeliveryOut, WebhookDeliveryStatus, WebhookEndpointCreated,
    WebhookEndpointIn, WebhookEndpointList, WebhookEndpointOut, WebhookEndpointPatch,
    WebhookEndpointStatus, WebhookRecoverIn, WebhookRecoverOut, WebhookSecretOut,
    WebhookSecretRotateIn,
};
use ironbridge_model::{ErrorCode, Timestamp};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

type ErrorBody = ironbridge_model::error::ErrorResponse;

fn rules(state: &AppState) -> Endpoints<'_> {
    let config = state.webhooks.config();
    Endpoints {
        store: state.store.as_ref(),
        keys: &state.keys,
        clock: state.clock.as_ref(),
        policy: &config.policy,
        resolver: config.resolver.as_ref(),
    }
}

fn endpoint_out(ep: WebhookEndpoint) -> WebhookEndpointOut {
    WebhookEndpointOut {
        status: if ep.status == "enabled" {
            WebhookEndpointStatus::Enabled
        } else {
            WebhookEndpointStatus::Disabled
        },
        id: ep.id,
        url: ep.url,
        description: ep.description,
        event_types: ep.event_types,
        connection_ids: ep.connection_ids,
        disabled_reason: ep.disabled_reason,
        disabled_at: ep.disabled_at,
        failing_since: ep.failing_since,
        previous_secret_expires_at: ep.previous_secret_expires_at,
        created_at: ep.created_at,
        updated_at: ep.updated_at,
    }
}

fn attempt_out(a: WebhookAttempt) -> WebhookAttemptOut {
    WebhookAttemptOut {
        id: a.id,
        delivery_id: a.delivery_id,
        endpoint_id: a.endpoint_id,
        message_id: a.message_id,
        event_type: a.event_type,
        attempt: a.attempt,
        outcome: a.outcome,
        status_code: a.status_code.and_then(|s| u16::try_from(s).ok()),
        error: a.error,
        latency_ms: a.latency_micros as f64 / 1000.0,
        response_excerpt: a.response_excerpt,
        created_at: a.created_at,
    }
}

fn delivery_out(d: WebhookDelivery, attempts: Option<Vec<WebhookAttempt>>) -> WebhookDeliveryOut {
    let status = match d.status.as_str() {
        delivery_status::SUCCEEDED => WebhookDeliveryStatus::Succeeded,
        delivery_status::FAILED => WebhookDeliveryStatus::Failed,
        _ => WebhookDeliveryStatus::Pending,
    };
    WebhookDeliveryOut {
        next_attempt_at: (status == WebhookDeliveryStatus::Pending)
            .then_some(d.next_attempt_at)
            .flatten(),
        status,
        payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        id: d.id,
        endpoint_id: d.endpoint_id,
        message_id: d.message_id,
        event_type: d.event_type,
        connection_id: d.connection_id,
        attempts: d.attempts,
        last_status_code: d.last_status_code.and_then(|s| u16::try_from(s).ok()),
        last_error: d.last_error,
        delivered_at: d.delivered_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
        attempt_log: attempts.map(|a| a.into_iter().map(attempt_out).collect()),
    }
}

/// The bounds of the webhook lists' pages.
const PAGE: PageSize = PageSize {
    default: 50,
    max: 100,
};

/// Create a webhook endpoint. Its URL must be public (or in an operator-allowed network):
/// the host is resolved now and again at every delivery. Answers with the signing secret.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "Webhooks", operation_id = "v1.webhook_endpoints.create",
    request_body = WebhookEndpointIn,
    responses((status = 201, description = "The endpoint and its signing secret", body = WebhookEndpointCreated),
        (status = 422, description = "A refused URL, an unknown event type or connection, a malformed secret", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<WebhookEndpointIn>,
) -> ApiResult<(StatusCode, Json<WebhookEndpointCreated>)> {
    let (ep, secret) = rules(&state).create(&org, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookEndpointCreated {
            endpoint: endpoint_out(ep),
            secret: secret.expose(),
        }),
    ))
}

/// Query of `GET /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointListParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Endpoints per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// List the organization's webhook endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "Webhooks", operation_id = "v1.webhook_endpoints.list",
    params(EndpointListParams),
    responses((status = 200, description = "A page of endpoints", body = WebhookEndpointList)),
    security(("admin_key" = [])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiQuery(q): ApiQuery<EndpointListParams>,
) -> ApiResult<Json<WebhookEndpointList>> {
    let size = PAGE.resolve(q.page_size)?;
    let pager = Pager::new(&state.keys, &org.0, &[("list", "webhook_endpoints".into())]);
    let after = pager.position(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_webhook_endpoints(&org, after.as_deref(), size + 1)
        .await?;
    let (rows, next_cursor) = pager.page(rows, size, |e| &e.id);
    Ok(Json(WebhookEndpointList {
        data: rows.into_iter().map(endpoint_out).collect(),
        next_cursor,
    }))
}

/// Read a webhook endpoint: its filters, status and failure streak.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "Webhooks", operation_id = "v1.webhook_endpoints.get",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointOut),
        (status = 404, description = "No such endpoint", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookEndpointOut>> {
    let ep = state.store.get_webhook_endpoint(&org, &id).await?;
    Ok(Json(endpoint_out(ep)))
}

/// Change a webhook endpoint: URL, description, filters, or enable/disable it. Disabling
/// marks its pending deliveries failed; enabling clears its failure streak (recover what
/// failed meanwhile with `/recover`).
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "Webhooks", operation_id = "v1.webhook_endpoints.update",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    request_body = WebhookEndpointPatch,
    responses((status = 200, description = "The endpoint as changed", body = WebhookEndpointOut),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A refused URL, an unknown event type or connection", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<WebhookEndpointPatch>,
) -> ApiResult<Json<WebhookEndpointOut>> {
    let ep = rules(&state).update(&org, &id, patch).await?;
    Ok(Json(endpoint_out(ep)))
}

/// Delete a webhook endpoint with its delivery log. Nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "Webhooks", operation_id = "v1.webhook_endpoints.delete",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_webhook_endpoint(&org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Read an endpoint's signing secret, to verify `webhook-signature` (Standard Webhooks).
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/secret", tag = "Webhooks", operation_id = "v1.webhook_endpoints.secret",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    responses((status = 200, description = "The current secret", body = WebhookSecretOut),
        (status = 404, description = "No such endpoint", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_secret(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookSecretOut>> {
    let ep = state.store.get_webhook_endpoint(&org, &id).await?;
    let secret = current_secret(&state.keys, &ep).map_err(ApiError::internal)?;
    let now = state.clock.now();
    Ok(Json(WebhookSecretOut {
        secret: secret.expose(),
        previous_secret_expires_at: ep.previous_secret_expires_at.filter(|t| *t > now),
    }))
}

/// Rotate an endpoint's signing secret. During the overlap (a day by default) every delivery
/// carries two `v1` signatures, one per secret, so receivers can switch without a gap.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/secret/rotate", tag = "Webhooks", operation_id = "v1.webhook_endpoints.rotate_secret",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    request_body(content = Option<WebhookSecretRotateIn>, description = "Optional: the new secret and the overlap"),
    responses((status = 200, description = "The new secret", body = WebhookSecretOut),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A malformed secret or overlap", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<WebhookSecretRotateIn>,
) -> ApiResult<Json<WebhookSecretOut>> {
    let (ep, secret) = rules(&state).rotate(&org, &id, input).await?;
    Ok(Json(WebhookSecretOut {
        secret: secret.expose(),
        previous_secret_expires_at: ep.previous_secret_expires_at,
    }))
}

/// Send a signed `webhook.test` ping to the endpoint now and answer with its delivery and
/// attempt (status, latency, response excerpt). A failed ping is not retried.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/test", tag = "Webhooks", operation_id = "v1.webhook_endpoints.test",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    responses((status = 200, description = "The ping's delivery, with its attempt", body = WebhookDeliveryOut),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn test_endpoint(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookDeliveryOut>> {
    let ep = state.store.get_webhook_endpoint(&org, &id).await?;
    if ep.status != "enabled" {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The endpoint is disabled; enable it before testing it.",
        ));
    }
    let delivery = state.webhooks.send_test(&org, &ep).await?;
    delivery_with_attempts(&state, &org, delivery)
        .await
        .map(Json)
}

async fn delivery_with_attempts(
    state: &AppState,
    org: &OrgId,
    d: WebhookDelivery,
) -> ApiResult<WebhookDeliveryOut> {
    let attempts = state
        .store
        .list_webhook_attempts(org, None, Some(&d.id), None, 100)
        .await?;
    Ok(delivery_out(d, Some(attempts)))
}

/// Replay failed deliveries of one endpoint whose events happened in `[since, until)`, in
/// the order they happened, one request at a time (a delivery that fails again is retried on
/// its schedule and does not hold up the rest), with a fresh retry schedule and their
/// original `webhook-id`s.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/recover", tag = "Webhooks", operation_id = "v1.webhook_endpoints.recover",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)")),
    request_body = WebhookRecoverIn,
    responses((status = 202, description = "How many deliveries were queued again", body = WebhookRecoverOut),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled", body = ErrorBody),
        (status = 422, description = "`since` is not before `until`", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn recover(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<WebhookRecoverIn>,
) -> ApiResult<(StatusCode, Json<WebhookRecoverOut>)> {
    let ep = state.store.get_webhook_endpoint(&org, &id).await?;
    if ep.status != "enabled" {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The endpoint is disabled; enable it before recovering its deliveries.",
        ));
    }
    let now = state.clock.now();
    // Without `until`, everything up to now, including what happened this microsecond.
    let until = input.until.unwrap_or(Timestamp(now.micros() + 1));
    if input.since >= until {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "`since` must be before `until`.",
        )
        .param("since"));
    }
    let replayed = state
        .store
        .recover_webhook_deliveries(&org, &id, input.since, until, now)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(WebhookRecoverOut { replayed })))
}

/// Query of `GET /v1/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Deliveries per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// Only `pending`, `succeeded` or `failed` deliveries.
    pub status: Option<WebhookDeliveryStatus>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
}

fn status_str(s: WebhookDeliveryStatus) -> &'static str {
    match s {
        WebhookDeliveryStatus::Pending => delivery_status::PENDING,
        WebhookDeliveryStatus::Succeeded => delivery_status::SUCCEEDED,
        WebhookDeliveryStatus::Failed => delivery_status::FAILED,
    }
}

/// The delivery log of an endpoint, newest first: each event's status, attempts, last
/// answer and next attempt.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "Webhooks", operation_id = "v1.webhook_endpoints.deliveries",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)"), DeliveryListParams),
    responses((status = 200, description = "A page of deliveries", body = WebhookDeliveryList),
        (status = 404, description = "No such endpoint", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListParams>,
) -> ApiResult<Json<WebhookDeliveryList>> {
    let size = PAGE.resolve(q.page_size)?;
    if let Some(t) = q.event_type.as_deref() {
        super::events::check_event_type("event_type", t, true)?;
    }
    state.store.get_webhook_endpoint(&org, &id).await?;
    let status = q.status.map(status_str);
    let pager = Pager::new(
        &state.keys,
        &org.0,
        &[
            ("list", "webhook_deliveries".into()),
            ("endpoint", id.clone()),
            ("status", status.unwrap_or_default().into()),
            ("event_type", q.event_type.clone().unwrap_or_default()),
        ],
    );
    let before = pager.position(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_webhook_deliveries(
            &org,
            &id,
            &DeliveryQuery {
                status: status.map(str::to_string),
                event_type: q.event_type,
                before_id: before,
                limit: size + 1,
            },
        )
        .await?;
    let (rows, next_cursor) = pager.page(rows, size, |d| &d.id);
    Ok(Json(WebhookDeliveryList {
        data: rows.into_iter().map(|d| delivery_out(d, None)).collect(),
        next_cursor,
    }))
}

/// Query of `GET /v1/webhook-endpoints/{id}/attempts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptListParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Attempts per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Every attempt made to an endpoint, newest first: HTTP status, latency, response excerpt,
/// or why it failed.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/attempts", tag = "Webhooks", operation_id = "v1.webhook_endpoints.attempts",
    params(("id" = String, Path, description = "Endpoint id (`whk_…`)"), AttemptListParams),
    responses((status = 200, description = "A page of attempts", body = WebhookAttemptList),
        (status = 404, description = "No such endpoint", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_attempts(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AttemptListParams>,
) -> ApiResult<Json<WebhookAttemptList>> {
    let size = PAGE.resolve(q.page_size)?;
    state.store.get_webhook_endpoint(&org, &id).await?;
    let pager = Pager::new(
        &state.keys,
        &org.0,
        &[
            ("list", "webhook_attempts".into()),
            ("endpoint", id.clone()),
        ],
    );
    let before = pager.position(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_webhook_attempts(&org, Some(&id), None, before.as_deref(), size + 1)
        .await?;
    let (rows, next_cursor) = pager.page(rows, size, |a| &a.id);
    Ok(Json(WebhookAttemptList {
        data: rows.into_iter().map(attempt_out).collect(),
        next_cursor,
    }))
}

/// Read one delivery with every attempt (newest first) and the exact payload sent.
#[utoipa::path(get, path = "/v1/webhook-deliveries/{id}", tag = "Webhooks", operation_id = "v1.webhook_deliveries.get",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses((status = 200, description = "The delivery and its attempts", body = WebhookDeliveryOut),
        (status = 404, description = "No such delivery", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookDeliveryOut>> {
    let d = state.store.get_webhook_delivery(&org, &id).await?;
    delivery_with_attempts(&state, &org, d).await.map(Json)
}

/// Send a finished (succeeded or failed) delivery again, with its original `webhook-id` and
/// body and a fresh retry schedule.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/replay", tag = "Webhooks", operation_id = "v1.webhook_deliveries.replay",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses((status = 202, description = "The delivery, pending again", body = WebhookDeliveryOut),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "It is still pending, or its endpoint is disabled", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<WebhookDeliveryOut>)> {
    let d = state.store.get_webhook_delivery(&org, &id).await?;
    let ep = state
        .store
        .get_webhook_endpoint(&org, &d.endpoint_id)
        .await?;
    if ep.status != "enabled" {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The delivery's endpoint is disabled; enable it before replaying.",
        ));
    }
    let d = state
        .store
        .replay_webhook_delivery(&org, &id, state.clock.now())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_out(d, None))))
}

/// The event types endpoints can subscribe to.
#[utoipa::path(get, path = "/v1/webhook-event-types", tag = "Webhooks", operation_id = "v1.webhook_event_types.list",
    responses((status = 200, description = "Every event type", body = EventTypeList)),
    security(("admin_key" = [])))]
pub async fn list_event_types(AdminAuth(_org): AdminAuth) -> Json<EventTypeList> {
    Json(EventTypeList {
        data: EVENT_TYPES
            .iter()
            .map(|t| EventTypeOut {
                name: t.name.into(),
                description: t.description.into(),
            })
            .collect(),
    })
}
