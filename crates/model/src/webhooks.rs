//! Request and response bodies of the webhook API: endpoints, their signing secrets, the
//! delivery log and replay, and the catalogue of event types.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

/// An event type a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    /// The type's name, as in `type` of an event.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// Every event type Ironbridge emits, in catalogue order.
pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        name: "sync.completed",
        description: "A connection's sync finished: records added, updated and deleted per entity, and its duration.",
    },
    EventType {
        name: "sync.failed",
        description: "A connection's sync stopped on an error; `data.error` says why and `data.entity` where. It resumes from its last committed page on the next attempt.",
    },
    EventType {
        name: "connection.reauthorization_required",
        description: "The source system refused the connection's credentials; syncs pause until the customer reconnects. No data is deleted.",
    },
    EventType {
        name: "connection.status_changed",
        description: "A connection changed between settled states (`online`, `offline`, `reauthorization_required`); `data.from` and `data.to`.",
    },
    EventType {
        name: "connection.created",
        description: "An end customer connected their system through Link: `data.system`, `data.end_user`, and `data.link_token_id`. Exchange the `public_token` Link sent to the redirect URL for the connection's token (`POST /v1/link-tokens/exchange`). Connections made with `POST /v1/connections` answer their creator directly and emit no event.",
    },
    EventType {
        name: "connection.reauthorized",
        description: "An end customer renewed a connection's credentials through Link: the connection keeps its id, token, records and history, and syncs resume.",
    },
    EventType {
        name: "connection.disconnected",
        description: "A connection was disconnected: its token stopped working and its credit returned to the pool.",
    },
    EventType {
        name: "system.error",
        description: "Something needs attention that retrying will not fix: a connection's sync failed for good (attempts exhausted), or its stored settings or credentials could not be used.",
    },
    EventType {
        name: "batch.completed",
        description: "A bulk batch ended: `data.status` (`completed`, `failed` when it stopped at a failure, or `cancelled`) with its counts of operations succeeded, failed and cancelled. Per-operation results are at `GET /v1/batches/{id}/operations`.",
    },
    EventType {
        name: "flow.run_completed",
        description: "A flow run ended without failing: `data.status` is `succeeded` or `cancelled`, with the flow (`flow_id`, `flow_key`), the run, its trigger and each step's counts (`steps`: items, succeeded, failed, output). Per-item results are at `GET /v1/flow-runs/{id}/items`.",
    },
    EventType {
        name: "flow.run_failed",
        description: "A flow run failed: `data.error` names the step and item it stopped at (with the item's error as the API would answer it), or why it could not go on; with each step's counts.",
    },
    EventType {
        name: "flow.event",
        description: "A flow's webhook step sent it: `data.name` is the name the step gives it (`vehicle.harsh_braking`), `data.payload` what the step made of the item, with the flow, run, step and item index. Each item's event is recorded once, with the item's end.",
    },
    EventType {
        name: "webhook_endpoint.disabled",
        description: "A webhook endpoint was disabled: every attempt to it failed for the configured period, or it answered 410 Gone. Its pending deliveries were marked failed; re-enable it and recover them.",
    },
    EventType {
        name: "record.created",
        description: "Records of a connection first stored (by a sync or a write), in batches: `data.changes` lists them as `GET /v1/changes` does, with the record. Sent only to endpoints that name this type in `event_types` (not to those receiving all types), read from the change feed in order, each change once.",
    },
    EventType {
        name: "record.updated",
        description: "Records of a connection changed, in batches: `data.changes` lists them at their latest change, with the record. Only to endpoints that name this type.",
    },
    EventType {
        name: "record.deleted",
        description: "Records of a connection deleted in the source system, in batches: `data.changes` lists their tombstones. Only to endpoints that name this type.",
    },
];

/// The record event types, read from the change feed rather than written as events: an
/// endpoint receives them only when it names them (`event_types: null` means every other type).
pub const RECORD_EVENT_TYPES: [&str; 3] = ["record.created", "record.updated", "record.deleted"];

/// Whether `name` is a record event type ([`RECORD_EVENT_TYPES`]).
pub fn is_record_event_type(name: &str) -> bool {
    RECORD_EVENT_TYPES.contains(&name)
}

/// The type of the signed ping sent by `POST /v1/webhook-endpoints/{id}/test`. It is not an
/// event and cannot be subscribed to.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// Whether `name` is an event type endpoints can subscribe to.
pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.iter().any(|t| t.name == name)
}

/// A Standard Webhooks signing secret as the server reads it: `whsec_` and the canonical
/// standard base64 (padded, no stray bits) of 24 to 64 bytes. 8 to 21 full groups of four
/// characters carry 24 to 63 bytes; a final padded group adds one (`xx==`) or two (`xxx=`),
/// up to 64 in all.
pub const SECRET_PATTERN: &str = "^whsec_(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}(?:[A-Za-z0-9+/][AQgw]==)?|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?$";

/// Schema of a secret a client chooses: `null` (or absent) to have one generated.
fn secret_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(SECRET_PATTERN))
        .examples(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        .build()
        .into()
}

/// Most connections one endpoint may be limited to.
pub const MAX_ENDPOINT_CONNECTIONS: usize = 100;

/// Schema of an endpoint's `event_types`: `null`, or one or more known event types.
fn event_types_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let names: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .examples([serde_json::json!(["sync.completed", "sync.failed"])])
        .build()
        .into()
}

/// Schema of an endpoint's `connection_ids`: `null`, or 1 to 100 connection ids.
fn connection_ids_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^conn_")),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_ENDPOINT_CONNECTIONS))
        .build()
        .into()
}

/// Reads an optional whole number of seconds: JSON Schema counts `60.0` an integer, so it is
/// read as `60`; a fraction, a negative number or one past 2^53 is refused.
fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::{Error, Unexpected};
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u64),
        Float(f64),
    }
    // Past 2^53 a float no longer names one whole number.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match Option::<Number>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(Number::Whole(n))) => Ok(Some(n)),
        Ok(Some(Number::Float(f))) if f.fract() == 0.0 && (0.0..=EXACT).contains(&f) => {
            Ok(Some(f as u64))
        }
        Ok(Some(Number::Float(f))) => Err(D::Error::invalid_value(
            Unexpected::Float(f),
            &"a whole number of seconds from 0 to 604800",
        )),
        Err(_) => Err(D::Error::custom(
            "expected a whole number of seconds from 0 to 604800",
        )),
    }
}

/// Reads a field that may be absent (outer `None`), `null` (inner `None`) or a value.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /v1/webhook-endpoints`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointIn {
    /// Where events are POSTed: an `http` or `https` URL on a public address, at most 2048
    /// bytes. Loopback,
    /// private, link-local and metadata addresses are refused unless the operator allows them.
    #[schema(
        example = "https://example.com/webhooks/ironbridge",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://",
        max_length = 2048
    )]
    pub url: String,
    /// Label for people: at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Event types to receive (see `GET /v1/webhook-event-types`), at least one; absent or
    /// `null` for all but the record events (`record.*`), which are sent only when named.
    #[serde(default)]
    #[schema(schema_with = event_types_schema)]
    pub event_types: Option<Vec<String>>,
    /// Only events of these connections (`conn_…`), 1 to 100; absent or `null` for every
    /// connection. An endpoint limited to connections does not receive organization-wide
    /// events.
    #[serde(default)]
    #[schema(schema_with = connection_ids_schema)]
    pub connection_ids: Option<Vec<String>>,
    /// Create it disabled: events are logged as failed deliveries until it is enabled.
    #[serde(default)]
    pub disabled: bool,
    /// The signing secret to use (`whsec_` + base64 of 24 to 64 bytes); generated when absent.
    #[serde(default)]
    #[schema(schema_with = secret_schema)]
    pub secret: Option<String>,
}

/// Body of `PATCH /v1/webhook-endpoints/{id}`: fields left out stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointPatch {
    /// New URL (checked like on creation).
    #[serde(default)]
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://", max_length = 2048)]
    pub url: Option<String>,
    /// New label (at most 500 characters); `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
    /// New event types, at least one; `null` for all but the record events (`record.*`).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = event_types_schema)]
    pub event_types: Option<Option<Vec<String>>>,
    /// New connection filter, 1 to 100 connections; `null` for every connection.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = connection_ids_schema)]
    pub connection_ids: Option<Option<Vec<String>>>,
    /// `true` disables the endpoint (its pending deliveries are marked failed); `false`
    /// enables it again and clears its failure streak.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Whether an endpoint receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEndpointStatus {
    /// Events are delivered.
    Enabled,
    /// Nothing is sent; events are logged as failed deliveries, to recover after enabling.
    Disabled,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointOut {
    /// Endpoint id (`whk_…`).
    #[schema(example = "whk_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Label for people.
    pub description: Option<String>,
    /// Event types received; `null` for all but the record events (`record.*`).
    pub event_types: Option<Vec<String>>,
    /// Connections whose events are received; `null` for every connection.
    pub connection_ids: Option<Vec<String>>,
    /// `enabled` or `disabled`.
    pub status: WebhookEndpointStatus,
    /// Why it is disabled: `manual` (by the API), `failing` (every attempt failed for the
    /// configured period) or `gone` (it answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<Timestamp>,
    /// Start of the current run of failed attempts (none since the last success); the
    /// endpoint is disabled when it reaches the configured period.
    pub failing_since: Option<Timestamp>,
    /// Until when the previous signing secret is still used beside the current one.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Answer to `POST /v1/webhook-endpoints`: the endpoint and its signing secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointCreated {
    /// The endpoint.
    pub endpoint: WebhookEndpointOut,
    /// The signing secret (`whsec_…`); also readable later at `/secret`.
    pub secret: String,
}

/// A page of webhook endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointList {
    /// Endpoints, oldest first.
    pub data: Vec<WebhookEndpointOut>,
    /// Cursor for the next page, absent on the last page.
    pub next_cursor: Option<String>,
}

/// An endpoint's signing secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecretOut {
    /// The current secret (`whsec_…`): every delivery carries a `v1` signature made with it.
    pub secret: String,
    /// Until when deliveries also carry a signature made with the previous secret.
    pub previous_secret_expires_at: Option<Timestamp>,
}

/// Body of `POST /v1/webhook-endpoints/{id}/secret/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecretRotateIn {
    /// The new secret (`whsec_` + base64 of 24 to 64 bytes); generated when absent.
    #[serde(default)]
    #[schema(schema_with = secret_schema)]
    pub secret: Option<String>,
    /// Seconds during which deliveries are signed with both the old and the new secret, so
    /// receivers can switch without losing one (0 to 604800, default 86400). A whole number;
    /// `60.0` is read as `60`, as JSON Schema counts it an integer.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_secs: Option<u64>,
}

/// State of one event's delivery to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every scheduled attempt failed, or the endpoint is disabled; replay or recover it.
    Failed,
}

/// One event's delivery to one endpoint, across all its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryOut {
    /// Delivery id (`dlv_…`).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The message id, sent as `webhook-id` on every attempt: the event id (`evt_…`), or a
    /// `msg_…` id for test pings. Receivers deduplicate on it.
    pub message_id: String,
    /// The event's type.
    pub event_type: String,
    /// The connection the event concerns.
    pub connection_id: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: WebhookDeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<Timestamp>,
    /// HTTP status of the last attempt, if the endpoint answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it succeeded.
    pub delivered_at: Option<Timestamp>,
    /// The exact body sent (the same bytes on every attempt).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Creation time (when the event happened).
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Its attempts, newest first (only when one delivery is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<WebhookAttemptOut>>,
}

/// A page of deliveries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// Deliveries, newest first.
    pub data: Vec<WebhookDeliveryOut>,
    /// Cursor for the next (older) page, absent on the last page.
    pub next_cursor: Option<String>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptOut {
    /// Attempt id (`att_…`).
    pub id: String,
    /// The delivery.
    pub delivery_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The message id sent as `webhook-id`.
    pub message_id: String,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first attempt of the delivery, then 2, 3, ...
    pub attempt: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// HTTP status answered, if any.
    pub status_code: Option<u16>,
    /// Why it failed: `timeout`, `connection_failed`, `blocked_address`, `redirect`, `http_status`, ...
    pub error: Option<String>,
    /// Milliseconds from sending the request to the end of the response (or the failure).
    pub latency_ms: f64,
    /// The first kilobyte of the response body.
    pub response_excerpt: Option<String>,
    /// When it was made (also its `webhook-timestamp`).
    pub created_at: Timestamp,
}

/// A page of attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptList {
    /// Attempts, newest first.
    pub data: Vec<WebhookAttemptOut>,
    /// Cursor for the next (older) page, absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/webhook-endpoints/{id}/recover`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRecoverIn {
    /// Replay failed deliveries of events that happened at or after this time.
    pub since: Timestamp,
    /// ... and before this time (default: now).
    #[serde(default)]
    pub until: Option<Timestamp>,
}

/// Answer to `POST /v1/webhook-endpoints/{id}/recover`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookRecoverOut {
    /// Failed deliveries queued again, in the order their events happened.
    pub replayed: u64,
}

/// One entry of the event type catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventTypeOut {
    /// The type, as in `type` of events and `event_types` of endpoints.
    #[schema(example = "sync.completed")]
    pub name: String,
    /// What it means.
    pub description: String,
}

/// Answer to `GET /v1/webhook-event-types`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventTypeList {
    /// Every event type.
    pub data: Vec<EventTypeOut>,
}
