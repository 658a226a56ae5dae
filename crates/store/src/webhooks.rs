//! Webhook storage, shared by both backends like `shared.rs` (compiled once inside each):
//! endpoints, the fan-out of an event into deliveries within the event's transaction, the
//! dispatcher's leased claims, and the attempt log.

use async_trait::async_trait;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    AttemptResult, ChangePosition, DeliveryNext, DeliveryQuery, EndpointHealth, Event, OrgId,
    RecordFeedCursor, StoreError, StoreResult, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
    WebhookStore, delivery_status,
};
use ironbridge_core::webhooks::{endpoint_accepts, event_payload};
use ironbridge_model::Timestamp;
use ironbridge_model::webhooks::is_record_event_type;
use sqlx::Row;

use super::shared::bind_args;
use super::{Backend, CACHE_KEY_LOOKUPS, CLAIM_DELIVERIES, Db, LOCK_ENDPOINT};
use crate::classify;
use crate::lists;

type DbRow = <Db as sqlx::Database>::Row;
type Tx = sqlx::Transaction<'static, Db>;

macro_rules! endpoint_columns {
    () => {
        "id, org_id, url, description, event_types, connection_ids, status, disabled_reason, disabled_at, failing_since, secret, previous_secret, previous_secret_expires_at, created_at, updated_at"
    };
}

macro_rules! attempt_columns {
    () => {
        "id, org_id, delivery_id, endpoint_id, message_id, event_type, attempt, outcome, status_code, error, latency_micros, response_excerpt, created_at"
    };
}

/// Why an endpoint's pending deliveries fail when it is disabled.
const DISABLED_ERROR: &str = "endpoint disabled";

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn list_json(v: Option<&Vec<String>>) -> Option<String> {
    v.map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}

fn list_from(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| serde_json::from_str(&t).unwrap_or_default())
}

fn endpoint_from(row: &DbRow) -> Result<WebhookEndpoint, sqlx::Error> {
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: list_from(row.try_get("event_types")?),
        connection_ids: list_from(row.try_get("connection_ids")?),
        status: row.try_get("status")?,
        disabled_reason: row.try_get("disabled_reason")?,
        disabled_at: ts(row.try_get("disabled_at")?),
        failing_since: ts(row.try_get("failing_since")?),
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_expires_at: ts(row.try_get("previous_secret_expires_at")?),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn delivery_from(row: &DbRow) -> Result<WebhookDelivery, sqlx::Error> {
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        message_id: row.try_get("message_id")?,
        event_type: row.try_get("event_type")?,
        connection_id: row.try_get("connection_id")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        retry_step: row.try_get("retry_step")?,
        next_attempt_at: ts(row.try_get("next_attempt_at")?),
        lease_owner: row.try_get("lease_owner")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        delivered_at: ts(row.try_get("delivered_at")?),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn attempt_from(row: &DbRow) -> Result<WebhookAttempt, sqlx::Error> {
    Ok(WebhookAttempt {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        delivery_id: row.try_get("delivery_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        message_id: row.try_get("message_id")?,
        event_type: row.try_get("event_type")?,
        attempt: row.try_get("attempt")?,
        outcome: row.try_get("outcome")?,
        status_code: row.try_get("status_code")?,
        error: row.try_get("error")?,
        latency_micros: row.try_get("latency_micros")?,
        response_excerpt: row.try_get("response_excerpt")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn rows_to<T>(rows: &[DbRow], f: fn(&DbRow) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(f)
        .collect::<Result<_, _>>()
        .map_err(classify)
}

/// Keeps an endpoint's subscription to record events in step with its event types, in the
/// transaction that changes them (`was`: whether it had one). A new subscription starts at
/// the present of each of the organization's connections (the next change number); a
/// connection created later has no position and is read from its start. Dropping the record
/// types drops the positions.
async fn subscribe_record_events(
    tx: &mut Tx,
    org: &OrgId,
    ep: &WebhookEndpoint,
    was: bool,
) -> StoreResult<()> {
    let wants = ep
        .event_types
        .as_ref()
        .is_some_and(|types| types.iter().any(|t| is_record_event_type(t)));
    if wants == was {
        return Ok(());
    }
    sqlx::query("UPDATE webhook_endpoints SET record_events = $3 WHERE org_id = $1 AND id = $2")
        .bind(&org.0)
        .bind(&ep.id)
        .bind(wants)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    let sql = if wants {
        "INSERT INTO webhook_record_cursors (endpoint_id, connection_id, org_id, seq, entity, id) \
         SELECT $2, c.id, c.org_id, COALESCE(k.last_seq, 0) + 1, '', '' FROM connections c \
         LEFT JOIN change_counters k ON k.connection_id = c.id WHERE c.org_id = $1 \
         ON CONFLICT (endpoint_id, connection_id) DO NOTHING"
    } else {
        "DELETE FROM webhook_record_cursors WHERE org_id = $1 AND endpoint_id = $2"
    };
    sqlx::query(sql)
        .bind(&org.0)
        .bind(&ep.id)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}

fn feed_cursor_from(row: &DbRow) -> Result<RecordFeedCursor, sqlx::Error> {
    let seq: Option<i64> = row.try_get("at_seq")?;
    Ok(RecordFeedCursor {
        org_id: row.try_get("org_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_types: list_from(row.try_get("event_types")?).unwrap_or_default(),
        connection_ids: list_from(row.try_get("connection_ids")?),
        connection_id: row.try_get("connection_id")?,
        at: match seq {
            Some(seq) => Some(ChangePosition {
                seq,
                entity: row.try_get("at_entity")?,
                id: row.try_get("at_id")?,
            }),
            None => None,
        },
        last_seq: row.try_get("last_seq")?,
    })
}

async fn insert_delivery(tx: &mut Tx, d: &WebhookDelivery) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO webhook_deliveries (",
        delivery_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&d.id)
    .bind(&d.org_id)
    .bind(&d.endpoint_id)
    .bind(&d.message_id)
    .bind(&d.event_type)
    .bind(&d.connection_id)
    .bind(&d.payload)
    .bind(&d.status)
    .bind(d.attempts)
    .bind(d.retry_step)
    .bind(d.next_attempt_at.map(Timestamp::micros))
    .bind(&d.lease_owner)
    .bind(d.last_status_code)
    .bind(&d.last_error)
    .bind(d.delivered_at.map(Timestamp::micros))
    .bind(d.created_at.micros())
    .bind(d.updated_at.micros())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(classify)
}

/// The outbox fan-out: one delivery of `event` per endpoint of its organization whose filters
/// accept it, written in the event's own transaction so an event can never lack its
/// deliveries. Deliveries to disabled endpoints are logged as failed, so recovering after
/// re-enabling sends them.
pub(crate) async fn fan_out(tx: &mut Tx, event: &Event) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT id, status, event_types, connection_ids FROM webhook_endpoints WHERE org_id = $1",
    )
    .bind(&event.org_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(classify)?;
    if rows.is_empty() {
        return Ok(());
    }
    let payload = event_payload(event);
    for row in rows {
        let endpoint_id: String = row.try_get("id").map_err(classify)?;
        let status: String = row.try_get("status").map_err(classify)?;
        let types = list_from(row.try_get("event_types").map_err(classify)?);
        let conns = list_from(row.try_get("connection_ids").map_err(classify)?);
        if !endpoint_accepts(
            types.as_deref(),
            conns.as_deref(),
            &event.event_type,
            event.connection_id.as_deref(),
        ) {
            continue;
        }
        let enabled = status == "enabled";
        let delivery = WebhookDelivery {
            id: new_id("dlv", event.created_at.micros()),
            org_id: event.org_id.clone(),
            endpoint_id,
            message_id: event.id.clone(),
            event_type: event.event_type.clone(),
            connection_id: event.connection_id.clone(),
            payload: payload.clone(),
            status: if enabled {
                delivery_status::PENDING
            } else {
                delivery_status::FAILED
            }
            .into(),
            attempts: 0,
            retry_step: 0,
            next_attempt_at: enabled.then_some(event.created_at),
            lease_owner: None,
            last_status_code: None,
            last_error: (!enabled).then(|| DISABLED_ERROR.into()),
            delivered_at: None,
            created_at: event.created_at,
            updated_at: event.created_at,
        };
        insert_delivery(tx, &delivery).await?;
    }
    Ok(())
}

/// Marks an endpoint's pending deliveries failed (it was disabled).
async fn fail_pending(tx: &mut Tx, endpoint_id: &str, now: Timestamp) -> StoreResult<()> {
    sqlx::query("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL, replay_seq = NULL, last_error = $2, updated_at = $3 WHERE endpoint_id = $1 AND status = 'pending'")
        .bind(endpoint_id)
        .bind(DISABLED_ERROR)
        .bind(now.micros())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(classify)
}

/// Disables an endpoint that kept failing or is gone, with its event and its pending
/// deliveries failed. No-op if it is already disabled.
async fn disable(
    tx: &mut Tx,
    org: &str,
    endpoint_id: &str,
    reason: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let row = sqlx::query("UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, disabled_at = $3, updated_at = $3 WHERE id = $1 AND status = 'enabled' RETURNING url, failing_since")
        .bind(endpoint_id)
        .bind(reason)
        .bind(now.micros())
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    let Some(row) = row else {
        return Ok(());
    };
    let url: String = row.try_get("url").map_err(classify)?;
    let failing_since = ts(row.try_get("failing_since").map_err(classify)?);
    fail_pending(tx, endpoint_id, now).await?;
    let event = Event {
        id: new_id("evt", now.micros()),
        org_id: org.to_string(),
        connection_id: None,
        event_type: "webhook_endpoint.disabled".into(),
        data: serde_json::json!({
            "endpoint_id": endpoint_id,
            "url": url,
            "reason": reason,
            "failing_since": failing_since.map(Timestamp::to_rfc3339),
        })
        .to_string(),
        created_at: now,
    };
    super::shared::insert_event(tx, &event).await
}

#[async_trait]
impl WebhookStore for Backend {
    async fn create_webhook_endpoint(&self, org: &OrgId, ep: &WebhookEndpoint) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(concat!(
            "INSERT INTO webhook_endpoints (",
            endpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&ep.id)
        .bind(&org.0)
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(list_json(ep.event_types.as_ref()))
        .bind(list_json(ep.connection_ids.as_ref()))
        .bind(&ep.status)
        .bind(&ep.disabled_reason)
        .bind(ep.disabled_at.map(Timestamp::micros))
        .bind(ep.failing_since.map(Timestamp::micros))
        .bind(&ep.secret)
        .bind(&ep.previous_secret)
        .bind(ep.previous_secret_expires_at.map(Timestamp::micros))
        .bind(ep.created_at.micros())
        .bind(ep.updated_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        subscribe_record_events(&mut tx, org, ep, false).await?;
        tx.commit().await.map_err(classify)
    }

    async fn get_webhook_endpoint(&self, org: &OrgId, id: &str) -> StoreResult<WebhookEndpoint> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
            ),
            org,
            id,
            endpoint_from,
        )
        .await
    }

    async fn list_webhook_endpoints(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(&org.0)
        .bind(after_id.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, endpoint_from)
    }

    async fn update_webhook_endpoint(&self, org: &OrgId, ep: &WebhookEndpoint) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let previous: Option<(String, bool)> = sqlx::query_as(
            "SELECT status, record_events FROM webhook_endpoints WHERE org_id = $1 AND id = $2",
        )
        .bind(&org.0)
        .bind(&ep.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some((previous, record_events)) = previous else {
            return Err(StoreError::NotFound);
        };
        sqlx::query("UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, connection_ids = $6, status = $7, disabled_reason = $8, disabled_at = $9, failing_since = $10, secret = $11, previous_secret = $12, previous_secret_expires_at = $13, updated_at = $14 WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(&ep.id)
            .bind(&ep.url)
            .bind(&ep.description)
            .bind(list_json(ep.event_types.as_ref()))
            .bind(list_json(ep.connection_ids.as_ref()))
            .bind(&ep.status)
            .bind(&ep.disabled_reason)
            .bind(ep.disabled_at.map(Timestamp::micros))
            .bind(ep.failing_since.map(Timestamp::micros))
            .bind(&ep.secret)
            .bind(&ep.previous_secret)
            .bind(ep.previous_secret_expires_at.map(Timestamp::micros))
            .bind(ep.updated_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if previous == "enabled" && ep.status != "enabled" {
            fail_pending(&mut tx, &ep.id, ep.updated_at).await?;
        }
        subscribe_record_events(&mut tx, org, ep, record_events).await?;
        tx.commit().await.map_err(classify)
    }

    async fn delete_webhook_endpoint(&self, org: &OrgId, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        for sql in [
            "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            "DELETE FROM webhook_record_cursors WHERE endpoint_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn create_webhook_delivery(&self, org: &OrgId, d: &WebhookDelivery) -> StoreResult<()> {
        if d.org_id != org.0 {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.begin_write().await?;
        insert_delivery(&mut tx, d).await?;
        tx.commit().await.map_err(classify)
    }

    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        skip_endpoints: &[String],
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        // `,id1,id2,`: a membership test both dialects evaluate without array types.
        let skip = if skip_endpoints.is_empty() {
            String::new()
        } else {
            format!(",{},", skip_endpoints.join(","))
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(CLAIM_DELIVERIES)
            .bind(owner)
            .bind(lease_until.micros())
            .bind(now.micros())
            .bind(skip)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let mut claimed = rows_to(&rows, delivery_from)?;
        // RETURNING has no order: oldest event first.
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    async fn release_webhook_delivery(
        &self,
        d: &WebhookDelivery,
        owner: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_deliveries SET attempts = attempts - 1, lease_owner = NULL, next_attempt_at = $4 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'pending'")
            .bind(&d.id)
            .bind(owner)
            .bind(d.attempts)
            .bind(at.micros())
            .execute(&mut *self.write_conn().await?)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn finish_webhook_attempt(
        &self,
        d: &WebhookDelivery,
        owner: &str,
        result: &AttemptResult,
    ) -> StoreResult<bool> {
        let a = &result.attempt;
        let now = a.created_at;
        let mut tx = self.begin_write().await?;
        sqlx::query(concat!(
            "INSERT INTO webhook_attempts (",
            attempt_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&a.id)
        .bind(&a.org_id)
        .bind(&a.delivery_id)
        .bind(&a.endpoint_id)
        .bind(&a.message_id)
        .bind(&a.event_type)
        .bind(a.attempt)
        .bind(&a.outcome)
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.latency_micros)
        .bind(&a.response_excerpt)
        .bind(a.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let (status, next_at, step, delivered) = match result.next {
            DeliveryNext::Succeeded => (delivery_status::SUCCEEDED, None, d.retry_step, Some(now)),
            DeliveryNext::Retry(at) => (delivery_status::PENDING, Some(at), d.retry_step + 1, None),
            DeliveryNext::Failed => (delivery_status::FAILED, None, d.retry_step, None),
        };
        let updated = sqlx::query("UPDATE webhook_deliveries SET status = $4, next_attempt_at = $5, retry_step = $6, lease_owner = NULL, replay_seq = NULL, last_status_code = $7, last_error = $8, delivered_at = COALESCE($9, delivered_at), updated_at = $10 WHERE id = $1 AND lease_owner = $2 AND attempts = $3")
            .bind(&d.id)
            .bind(owner)
            .bind(d.attempts)
            .bind(status)
            .bind(next_at.map(Timestamp::micros))
            .bind(step)
            .bind(a.status_code)
            .bind(&a.error)
            .bind(delivered.map(Timestamp::micros))
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected()
            == 1;
        match result.health {
            EndpointHealth::Healthy => {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(&d.endpoint_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            EndpointHealth::Failing {
                disable_if_since_before,
            } => {
                let since: Option<Option<i64>> = sqlx::query_scalar("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since")
                    .bind(&d.endpoint_id)
                    .bind(now.micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?;
                if since
                    .flatten()
                    .is_some_and(|s| s <= disable_if_since_before.micros())
                {
                    disable(&mut tx, &d.org_id, &d.endpoint_id, "failing", now).await?;
                }
            }
            EndpointHealth::Gone => {
                disable(&mut tx, &d.org_id, &d.endpoint_id, "gone", now).await?;
            }
            EndpointHealth::Unchanged => {}
        }
        tx.commit().await.map_err(classify)?;
        Ok(updated)
    }

    async fn get_webhook_delivery(&self, org: &OrgId, id: &str) -> StoreResult<WebhookDelivery> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE org_id = $1 AND id = $2"
            ),
            org,
            id,
            delivery_from,
        )
        .await
    }

    async fn list_webhook_deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        q: &DeliveryQuery,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let statement = lists::deliveries(delivery_columns!(), org, endpoint_id, q);
        let rows = bind_args(&statement.sql, &statement.args)
            .persistent(CACHE_KEY_LOOKUPS)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows_to(&rows, delivery_from)
    }

    async fn list_webhook_attempts(
        &self,
        org: &OrgId,
        endpoint_id: Option<&str>,
        delivery_id: Option<&str>,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookAttempt>> {
        let statement = lists::attempts(
            attempt_columns!(),
            org,
            endpoint_id,
            delivery_id,
            before_id,
            limit,
        );
        let rows = bind_args(&statement.sql, &statement.args)
            .persistent(CACHE_KEY_LOOKUPS)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows_to(&rows, attempt_from)
    }

    async fn replay_webhook_delivery(
        &self,
        org: &OrgId,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<WebhookDelivery> {
        let row = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET status = 'pending', retry_step = 0, next_attempt_at = $3, lease_owner = NULL, replay_seq = NULL, updated_at = $3 ",
            "WHERE org_id = $1 AND id = $2 AND status <> 'pending' RETURNING ",
            delivery_columns!()
        ))
        .bind(&org.0)
        .bind(id)
        .bind(now.micros())
        .fetch_optional(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?;
        match row {
            Some(row) => {
                self.due.notify_one();
                delivery_from(&row).map_err(classify)
            }
            None => {
                self.get_webhook_delivery(org, id).await?;
                Err(StoreError::conflict(
                    "the delivery is already pending; it will be attempted as scheduled",
                ))
            }
        }
    }

    async fn recover_webhook_deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        since: Timestamp,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // Concurrent recoveries of one endpoint take turns, so their sequence numbers differ.
        let endpoint: Option<String> = sqlx::query_scalar(LOCK_ENDPOINT)
            .bind(&org.0)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        if endpoint.is_none() {
            return Ok(0);
        }
        // After the replay still under way, if any: a second recovery queues behind it.
        let last_seq: Option<i64> = sqlx::query_scalar("SELECT MAX(replay_seq) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' AND replay_seq IS NOT NULL")
            .bind(endpoint_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3 AND created_at < $4 ORDER BY created_at, id")
            .bind(&org.0)
            .bind(endpoint_id)
            .bind(since.micros())
            .bind(until.micros())
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        // Due now, numbered in event order: the claim takes an endpoint's replayed deliveries
        // one at a time, lowest number first (see `replay_head!`).
        let first_seq = last_seq.unwrap_or(0) + 1;
        for (i, id) in ids.iter().enumerate() {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            sqlx::query("UPDATE webhook_deliveries SET status = 'pending', retry_step = 0, next_attempt_at = $2, lease_owner = NULL, replay_seq = $3, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now.micros())
                .bind(first_seq.saturating_add(i))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        self.due.notify_one();
        Ok(ids.len() as u64)
    }

    async fn record_feeds_due(&self, limit: u32) -> StoreResult<Vec<RecordFeedCursor>> {
        let rows = sqlx::query(
            "SELECT e.id AS endpoint_id, e.org_id, e.event_types, e.connection_ids, c.id AS connection_id, \
             w.seq AS at_seq, w.entity AS at_entity, w.id AS at_id, k.last_seq \
             FROM webhook_endpoints e JOIN connections c ON c.org_id = e.org_id \
             JOIN change_counters k ON k.connection_id = c.id \
             LEFT JOIN webhook_record_cursors w ON w.endpoint_id = e.id AND w.connection_id = c.id \
             WHERE e.record_events = TRUE AND e.status = 'enabled' AND (w.seq IS NULL OR k.last_seq >= w.seq) \
             LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, feed_cursor_from)
    }

    async fn advance_record_feed(
        &self,
        cursor: &RecordFeedCursor,
        to: &ChangePosition,
        deliveries: &[WebhookDelivery],
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // Moved only from where the caller read: a second process that read the same
        // changes finds the position gone and stores nothing.
        let moved = match &cursor.at {
            Some(at) => sqlx::query(
                "UPDATE webhook_record_cursors SET seq = $3, entity = $4, id = $5 \
                 WHERE endpoint_id = $1 AND connection_id = $2 AND seq = $6 AND entity = $7 AND id = $8",
            )
            .bind(&cursor.endpoint_id)
            .bind(&cursor.connection_id)
            .bind(to.seq)
            .bind(&to.entity)
            .bind(&to.id)
            .bind(at.seq)
            .bind(&at.entity)
            .bind(&at.id)
            .execute(&mut *tx)
            .await,
            None => sqlx::query(
                "INSERT INTO webhook_record_cursors (endpoint_id, connection_id, org_id, seq, entity, id) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (endpoint_id, connection_id) DO NOTHING",
            )
            .bind(&cursor.endpoint_id)
            .bind(&cursor.connection_id)
            .bind(&cursor.org_id)
            .bind(to.seq)
            .bind(&to.entity)
            .bind(&to.id)
            .execute(&mut *tx)
            .await,
        }
        .map_err(classify)?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        for d in deliveries {
            if d.org_id != cursor.org_id || d.endpoint_id != cursor.endpoint_id {
                return Err(StoreError::NotFound);
            }
            insert_delivery(&mut tx, d).await?;
        }
        tx.commit().await.map_err(classify)?;
        if !deliveries.is_empty() {
            self.due.notify_one();
        }
        Ok(true)
    }

    async fn purge_webhook_history(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending')")
            .bind(before.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let deleted = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
        )
        .bind(before.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        tx.commit().await.map_err(classify)?;
        Ok(deleted)
    }
}
