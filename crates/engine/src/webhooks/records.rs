//! Record events (`record.created`, `record.updated`, `record.deleted`), made from the change
//! feed rather than written as events: no row is written per record unless an endpoint asks
//! for them. Each endpoint that names them has a position in the feed of each of its
//! organization's connections; a round reads up to [`FEED_BATCH`] changes past it, makes one
//! delivery per record event type the endpoint takes (its `data.changes` the changes as
//! `GET /v1/changes` renders them, field mappings applied), and stores the deliveries with the
//! new position in one transaction. The dispatcher then sends them like any other delivery
//! (signed, retried, logged, replayable). A crash before the commit leaves the position where
//! it was, and one after it has already stored the deliveries: each change is sent once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::Clock;
use ironbridge_core::field_mappings::ViewCache;
use ironbridge_core::ids::new_id;
use ironbridge_core::read::render_change;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{
    ChangePosition, ChangeQuery, ConnId, OrgId, RecordFeedCursor, Store, WebhookDelivery,
    delivery_status,
};
use ironbridge_core::webhooks::payload;
use ironbridge_model::webhooks::RECORD_EVENT_TYPES;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Changes read for one endpoint and connection per round (one delivery per event type).
pub const FEED_BATCH: u32 = 100;
/// (endpoint, connection) pairs looked at per round.
const PAIRS_PER_ROUND: u32 = 1_000;
/// How often the feeds are looked at when the last round found nothing.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Makes record event deliveries from the change feed.
pub struct RecordEvents {
    store: Arc<dyn Store>,
    runtimes: Arc<Runtimes>,
    clock: Arc<dyn Clock>,
    views: ViewCache,
}

impl RecordEvents {
    /// A producer over `store`; `runtimes` gives each connection's system (for its field
    /// mappings).
    pub fn new(store: Arc<dyn Store>, runtimes: Arc<Runtimes>, clock: Arc<dyn Clock>) -> Self {
        RecordEvents {
            store,
            runtimes,
            clock,
            views: ViewCache::default(),
        }
    }

    /// One round over every due (endpoint, connection) pair; returns the deliveries made.
    /// A pair that fails is logged and left where it was, for the next round.
    pub async fn produce(&self) -> Result<usize, ServiceError> {
        let due = self.store.record_feeds_due(PAIRS_PER_ROUND).await?;
        let mut made = 0;
        for cursor in &due {
            match self.produce_one(cursor).await {
                Ok(n) => made += n,
                Err(e) => tracing::warn!(
                    endpoint = %cursor.endpoint_id,
                    connection = %cursor.connection_id,
                    error = %e,
                    "could not make record event deliveries"
                ),
            }
        }
        Ok(made)
    }

    /// Rounds until every due pair is caught up; returns the deliveries made (tests and
    /// benchmarks drive it so).
    pub async fn produce_all(&self) -> Result<usize, ServiceError> {
        let mut made = 0;
        loop {
            let before = self.store.record_feeds_due(PAIRS_PER_ROUND).await?;
            let n = self.produce().await?;
            made += n;
            let after = self.store.record_feeds_due(PAIRS_PER_ROUND).await?;
            if n == 0 && after == before {
                return Ok(made);
            }
        }
    }

    /// Runs rounds until `shutdown`, at once while there is work, else every half second.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let made = match self.produce().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the record event feeds");
                    0
                }
            };
            if made > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(IDLE_WAIT) => {}
            }
        }
    }

    async fn produce_one(&self, cursor: &RecordFeedCursor) -> Result<usize, ServiceError> {
        let wanted: Vec<&str> = RECORD_EVENT_TYPES
            .iter()
            .copied()
            .filter(|t| cursor.event_types.iter().any(|e| e == t))
            .collect();
        let allowed = cursor
            .connection_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&cursor.connection_id));
        if wanted.is_empty() || !allowed {
            // Not a connection this endpoint follows: its changes so far are passed over.
            let to = after_seq(cursor.last_seq);
            if cursor.at.as_ref().is_none_or(|at| *at < to) {
                self.store.advance_record_feed(cursor, &to, &[]).await?;
            }
            return Ok(0);
        }
        let org = OrgId(cursor.org_id.clone());
        let conn = ConnId(cursor.connection_id.clone());
        let connection = self.store.get_connection(&org, &conn).await?;
        let view = match self.runtimes.registry().require(&connection.system) {
            Ok(system) => {
                self.views
                    .view(self.store.as_ref(), system, &connection)
                    .await?
            }
            Err(_) => None,
        };
        let from = cursor.at.clone().unwrap_or_else(ChangePosition::start);
        let changes = self
            .store
            .list_changes(
                &conn,
                &ChangeQuery {
                    entity: None,
                    after: from.clone(),
                    include_raw: view.is_some(),
                    limit: FEED_BATCH,
                },
            )
            .await?;
        let Some(last) = changes.last() else {
            return Ok(0);
        };
        // A short page read to the end of the feed: the last change's whole transaction is
        // in it (its rows commit together), so the position can move past its number, and
        // the pair is not due again until a later change.
        let to = if changes.len() < FEED_BATCH as usize {
            after_seq(last.seq)
        } else {
            last.position()
        };
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for change in changes {
            let text = render_change(&conn.0, change, &from, view.as_deref(), false)?;
            let item: Value =
                serde_json::from_str(&text).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            let kind = format!("record.{}", item["change"].as_str().unwrap_or_default());
            if wanted.contains(&kind.as_str()) {
                groups.entry(kind).or_default().push(item);
            }
        }
        let now = self.clock.now();
        let deliveries: Vec<WebhookDelivery> = groups
            .into_iter()
            .map(|(kind, items)| {
                let message_id = new_id("msg", now.micros());
                WebhookDelivery {
                    id: new_id("dlv", now.micros()),
                    org_id: cursor.org_id.clone(),
                    endpoint_id: cursor.endpoint_id.clone(),
                    payload: payload(
                        &message_id,
                        &kind,
                        now,
                        Some(&conn.0),
                        json!({"changes": items}),
                    ),
                    message_id,
                    event_type: kind,
                    connection_id: Some(conn.0.clone()),
                    status: delivery_status::PENDING.into(),
                    attempts: 0,
                    retry_step: 0,
                    next_attempt_at: Some(now),
                    lease_owner: None,
                    last_status_code: None,
                    last_error: None,
                    delivered_at: None,
                    created_at: now,
                    updated_at: now,
                }
            })
            .collect();
        if self
            .store
            .advance_record_feed(cursor, &to, &deliveries)
            .await?
        {
            Ok(deliveries.len())
        } else {
            // Another process sent these changes.
            Ok(0)
        }
    }
}

/// The position after every change numbered `seq` or less.
fn after_seq(seq: i64) -> ChangePosition {
    ChangePosition {
        seq: seq + 1,
        entity: String::new(),
        id: String::new(),
    }
}
