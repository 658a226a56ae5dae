//! The storage seam of webhooks: endpoints, one delivery per event and endpoint (created with
//! the event, in its transaction), and the log of every attempt.

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::{OrgId, StoreResult};

/// A webhook endpoint as stored. `secret` and `previous_secret` are ciphertext.
#[derive(Clone)]
pub struct WebhookEndpoint {
    /// `whk_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Label.
    pub description: Option<String>,
    /// Event types received; `None` for all.
    pub event_types: Option<Vec<String>>,
    /// Connections whose events are received; `None` for all.
    pub connection_ids: Option<Vec<String>>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `manual`, `failing` or `gone` while disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<Timestamp>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<Timestamp>,
    /// Encrypted signing secret.
    pub secret: String,
    /// Encrypted previous secret, still used until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    /// End of the rotation overlap.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

// Hand-written so secrets can never reach a log through `{:?}`.
impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Delivery states as stored.
pub mod delivery_status {
    /// Waiting for (or in) an attempt.
    pub const PENDING: &str = "pending";
    /// Delivered.
    pub const SUCCEEDED: &str = "succeeded";
    /// Given up (schedule used up, endpoint disabled, or a test ping that failed).
    pub const FAILED: &str = "failed";
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `dlv_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Sent as `webhook-id`: the event id, or `msg_…` for a test ping.
    pub message_id: String,
    /// The event's type.
    pub event_type: String,
    /// The connection the event concerns.
    pub connection_id: Option<String>,
    /// The exact body sent on every attempt.
    pub payload: String,
    /// See [`delivery_status`].
    pub status: String,
    /// Attempts started; also the fencing token of the current lease.
    pub attempts: i64,
    /// Position in the retry schedule (reset by a replay).
    pub retry_step: i64,
    /// When the next attempt is due; while an attempt runs, when its lease ends.
    pub next_attempt_at: Option<Timestamp>,
    /// The dispatcher holding the lease.
    pub lease_owner: Option<String>,
    /// HTTP status of the last attempt.
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it succeeded.
    pub delivered_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// One HTTP attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAttempt {
    /// `att_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// The delivery.
    pub delivery_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The `webhook-id` sent.
    pub message_id: String,
    /// The event's type.
    pub event_type: String,
    /// 1, 2, ... within the delivery.
    pub attempt: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// HTTP status answered.
    pub status_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Request to end of response, in microseconds.
    pub latency_micros: i64,
    /// Start of the response body.
    pub response_excerpt: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Delivered.
    Succeeded,
    /// Try again at this time (the next step of the schedule).
    Retry(Timestamp),
    /// Give up.
    Failed,
}

/// What an attempt says about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointHealth {
    /// It answered 2xx: the failure streak ends.
    Healthy,
    /// It failed; it is disabled (reason `failing`) if its failure streak started at or
    /// before the given time.
    Failing {
        /// Disable when the streak is at least this old.
        disable_if_since_before: Timestamp,
    },
    /// It answered 410 Gone: disable it at once (reason `gone`).
    Gone,
    /// The attempt says nothing about the endpoint (a test ping, or no request was made).
    Unchanged,
}

/// An attempt's record and its consequences, written in one transaction.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The log entry.
    pub attempt: WebhookAttempt,
    /// The delivery's next state.
    pub next: DeliveryNext,
    /// The endpoint's health.
    pub health: EndpointHealth,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Keyset position: only ids smaller than this (newest first).
    pub before_id: Option<String>,
    /// Maximum rows.
    pub limit: u32,
}

/// Where a webhook endpoint that asks for record events stands in one connection's change
/// feed, when the feed may have moved past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFeedCursor {
    /// The organization of both.
    pub org_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its event types (those of `record.*` it names are sent).
    pub event_types: Vec<String>,
    /// Its connection filter (`None`: every connection).
    pub connection_ids: Option<Vec<String>>,
    /// The connection.
    pub connection_id: String,
    /// The endpoint's position in the connection's feed (`None`: none yet; the connection is
    /// newer than the endpoint's subscription, so its feed is read from the start).
    pub at: Option<super::ChangePosition>,
    /// The connection's last change number taken.
    pub last_seq: i64,
}

/// Storage of webhook endpoints, deliveries and attempts. Part of [`super::Store`].
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates an endpoint.
    async fn create_webhook_endpoint(&self, org: &OrgId, ep: &WebhookEndpoint) -> StoreResult<()>;
    /// An endpoint of the organization.
    async fn get_webhook_endpoint(&self, org: &OrgId, id: &str) -> StoreResult<WebhookEndpoint>;
    /// Endpoints after a keyset position, oldest first.
    async fn list_webhook_endpoints(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Replaces an endpoint's mutable fields. Disabling it fails its pending deliveries in
    /// the same transaction.
    async fn update_webhook_endpoint(&self, org: &OrgId, ep: &WebhookEndpoint) -> StoreResult<()>;
    /// Deletes an endpoint with its deliveries and attempts.
    async fn delete_webhook_endpoint(&self, org: &OrgId, id: &str) -> StoreResult<()>;

    /// Inserts a delivery outside the event fan-out (test pings), already leased to `owner`.
    async fn create_webhook_delivery(&self, org: &OrgId, d: &WebhookDelivery) -> StoreResult<()>;
    /// Leases up to `limit` due deliveries (pending, `next_attempt_at <= now`) of enabled
    /// endpoints not in `skip_endpoints`, oldest due first: each gets one more attempt and
    /// `next_attempt_at = lease_until`, so a crashed dispatcher's deliveries come due again
    /// when their lease ends. Many dispatchers can claim at once and never get the same one.
    /// Of an endpoint's recovered deliveries only the first still pending in event order is
    /// claimable, so a recovery goes out one delivery at a time, across processes; live
    /// deliveries are claimed beside it.
    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        skip_endpoints: &[String],
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Hands a claimed delivery back unattempted, due at `at`.
    async fn release_webhook_delivery(
        &self,
        d: &WebhookDelivery,
        owner: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Records an attempt and applies its consequences, in one transaction: the attempt row
    /// always; the delivery's next state only if `owner` still holds the lease of this
    /// attempt (returns false otherwise), which also takes a recovered delivery out of its
    /// replay (the next one becomes claimable); the endpoint's failure streak, and its
    /// disabling (with a `webhook_endpoint.disabled` event and its pending deliveries failed).
    async fn finish_webhook_attempt(
        &self,
        d: &WebhookDelivery,
        owner: &str,
        result: &AttemptResult,
    ) -> StoreResult<bool>;
    /// A delivery of the organization.
    async fn get_webhook_delivery(&self, org: &OrgId, id: &str) -> StoreResult<WebhookDelivery>;
    /// Deliveries of an endpoint, newest first.
    async fn list_webhook_deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        query: &DeliveryQuery,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Attempts of an endpoint, or of one delivery, newest first, before a keyset position.
    async fn list_webhook_attempts(
        &self,
        org: &OrgId,
        endpoint_id: Option<&str>,
        delivery_id: Option<&str>,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookAttempt>>;
    /// Queues a finished (succeeded or failed) delivery again with a fresh retry schedule;
    /// `Conflict` while it is pending.
    async fn replay_webhook_delivery(
        &self,
        org: &OrgId,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<WebhookDelivery>;
    /// Queues again every failed delivery of an endpoint created in `[since, until)`, as one
    /// replay: due now, claimed one at a time in the order their events happened (after any
    /// replay of the endpoint still under way). A replayed delivery leaves the sequence when
    /// its attempt ends: delivered, failed for good, or rescheduled (then retried on the
    /// normal schedule, no longer holding up the rest). Returns how many; 0 for an endpoint
    /// the organization does not have.
    async fn recover_webhook_deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        since: Timestamp,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Up to `limit` (endpoint, connection) pairs whose endpoint is enabled, names record
    /// event types, and may have changes to send: the connection's feed has a change number
    /// at or past the endpoint's position. Not tenant-scoped: it serves every organization.
    async fn record_feeds_due(&self, limit: u32) -> StoreResult<Vec<RecordFeedCursor>>;
    /// Stores the deliveries made from a pair's changes and moves its position from
    /// `cursor.at` to `to`, in one transaction. False (nothing stored) when the position is no
    /// longer `cursor.at`: another process sent those changes.
    async fn advance_record_feed(
        &self,
        cursor: &RecordFeedCursor,
        to: &super::ChangePosition,
        deliveries: &[WebhookDelivery],
    ) -> StoreResult<bool>;
    /// Deletes finished deliveries and attempts created before `before` (retention). Not
    /// tenant-scoped: it serves every organization.
    async fn purge_webhook_history(&self, before: Timestamp) -> StoreResult<u64>;
}
