//! The dispatcher: leases due deliveries from the store, attempts each as its own task within
//! a global and a per-endpoint limit (a slow or dead endpoint holds at most its own slots),
//! and records every attempt with the delivery's next step: done, retried on the schedule
//! (honouring `Retry-After`), or failed; an endpoint failing long enough, or answering 410,
//! is disabled. A crash loses nothing: a leased delivery comes due again when its lease ends,
//! and is sent with the same `webhook-id`. Replays (`recover`) need nothing here: the store's
//! claim yields an endpoint's recovered deliveries one at a time, in event order, whichever
//! dispatcher asks, so they take one slot while live traffic keeps the others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironbridge_connectors::backoff::random_unit;
use ironbridge_core::Clock;
use ironbridge_core::crypto::Keys;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    AttemptResult, DeliveryNext, EndpointHealth, OrgId, Store, StoreError, StoreResult,
    WebhookAttempt, WebhookDelivery, WebhookEndpoint, delivery_status,
};
use ironbridge_core::webhooks::{next_attempt, payload};
use ironbridge_model::Timestamp;
use ironbridge_model::webhooks::TEST_EVENT_TYPE;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::WebhookConfig;
use super::endpoints::endpoint_secrets;
use super::sender::{SendOutcome, Sender};

/// How often finished deliveries past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Most deliveries leased by one claim.
const CLAIM_BATCH: usize = 64;

/// Per endpoint: attempts running, and claimed deliveries waiting for one of its slots.
#[derive(Default)]
struct Slots {
    running: HashMap<String, usize>,
    queued: HashMap<String, VecDeque<WebhookDelivery>>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Delivers webhooks. Any number of processes can run one against the same database.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    sender: Sender,
    config: WebhookConfig,
    id: String,
    /// Attempts in flight, and claimed deliveries waiting for a slot, per endpoint.
    slots: Mutex<Slots>,
}

impl Dispatcher {
    /// A dispatcher with a fresh id.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        config: WebhookConfig,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let sender = config.sender()?;
        let id = new_id("dsp", clock.now().micros());
        Ok(Arc::new(Dispatcher {
            store,
            keys,
            clock,
            sender,
            config,
            id,
            slots: Mutex::new(Slots::default()),
        }))
    }

    /// Its settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leases due deliveries of endpoints that have room, up to [`CLAIM_BATCH`] at a time,
    /// and returns those that can start now. An endpoint's deliveries beyond its free slots
    /// wait in its local queue (still leased to this dispatcher) and start as its attempts
    /// end; endpoints that are full or have a queue are skipped by the claim.
    async fn claim(&self) -> StoreResult<Vec<WebhookDelivery>> {
        let per_endpoint = self.config.max_in_flight_per_endpoint.max(1);
        let (busy, free) = {
            let slots = self.slots();
            let busy: Vec<String> = slots
                .running
                .iter()
                .filter(|(e, n)| **n >= per_endpoint || slots.queued.contains_key(*e))
                .map(|(e, _)| e.clone())
                .collect();
            let used = slots.running.values().sum::<usize>()
                + slots.queued.values().map(VecDeque::len).sum::<usize>();
            (
                busy,
                self.config
                    .max_in_flight
                    .saturating_sub(used)
                    .min(CLAIM_BATCH),
            )
        };
        if free == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let lease_until = Timestamp(now.micros().saturating_add(micros(self.config.lease)));
        let claimed = self
            .store
            .claim_webhook_deliveries(
                &self.id,
                now,
                lease_until,
                &busy,
                u32::try_from(free).unwrap_or(u32::MAX),
            )
            .await?;
        let mut start = Vec::with_capacity(claimed.len());
        let mut slots = self.slots();
        for d in claimed {
            let running = slots.running.entry(d.endpoint_id.clone()).or_default();
            if *running < per_endpoint {
                *running += 1;
                start.push(d);
            } else {
                slots
                    .queued
                    .entry(d.endpoint_id.clone())
                    .or_default()
                    .push_back(d);
            }
        }
        Ok(start)
    }

    /// The next queued delivery of an endpoint whose attempt just ended, keeping its slot;
    /// or none, freeing the slot. Queued deliveries whose lease is nearly over are returned
    /// for release instead (another dispatcher may take them then).
    fn next_queued(&self, endpoint_id: &str) -> (Option<WebhookDelivery>, Vec<WebhookDelivery>) {
        let margin = micros(self.config.timeout) + 5_000_000;
        let now = self.clock.now().micros();
        let mut slots = self.slots();
        let mut stale = Vec::new();
        let mut next = None;
        if let Some(queue) = slots.queued.get_mut(endpoint_id) {
            while let Some(d) = queue.pop_front() {
                if d.next_attempt_at
                    .is_some_and(|lease| lease.micros() - now > margin)
                {
                    next = Some(d);
                    break;
                }
                stale.push(d);
            }
            if queue.is_empty() {
                slots.queued.remove(endpoint_id);
            }
        }
        if next.is_none()
            && let Some(n) = slots.running.get_mut(endpoint_id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.running.remove(endpoint_id);
            }
        }
        (next, stale)
    }

    /// Runs a slot of an endpoint: attempts a claimed delivery, records it, then the
    /// endpoint's queued deliveries one after another, and frees the slot.
    async fn attempt_in_slot(self: Arc<Self>, first: WebhookDelivery) -> usize {
        let mut d = first;
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Err(e) = self.attempt(&d).await {
                tracing::warn!(delivery = %d.id, error = %e.chain(), "could not record a webhook attempt; it is retried when its lease ends");
            }
            let (next, stale) = self.next_queued(&d.endpoint_id);
            for s in stale {
                if let Err(e) = self
                    .store
                    .release_webhook_delivery(&s, &self.id, self.clock.now())
                    .await
                {
                    tracing::warn!(delivery = %s.id, error = %e.chain(), "could not release a webhook delivery; it is retried when its lease ends");
                }
            }
            match next {
                Some(n) => d = n,
                None => return attempts,
            }
        }
    }

    /// Makes one attempt of a delivery this dispatcher has leased and records it. Returns
    /// the result, and whether the delivery's state was updated (false if the lease was lost).
    async fn attempt(&self, d: &WebhookDelivery) -> StoreResult<(AttemptResult, bool)> {
        let org = OrgId(d.org_id.clone());
        let started_at = self.clock.now();
        let started = Instant::now();
        let endpoint = match self.store.get_webhook_endpoint(&org, &d.endpoint_id).await {
            Ok(ep) => Some(ep),
            // Deleted meanwhile: its deliveries went with it.
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let outcome = match &endpoint {
            None => SendOutcome::not_sent("endpoint_deleted", started),
            Some(ep) if ep.status != "enabled" => {
                SendOutcome::not_sent("endpoint_disabled", started)
            }
            Some(ep) => self.send(ep, d, started_at).await,
        };
        let result = self.judge(d, &outcome, started_at);
        let updated = self
            .store
            .finish_webhook_attempt(d, &self.id, &result)
            .await?;
        metrics::counter!(
            crate::telemetry::WEBHOOK_ATTEMPTS,
            "outcome" => if outcome.succeeded() { "succeeded" } else { "failed" }
        )
        .increment(1);
        metrics::histogram!(crate::telemetry::WEBHOOK_ATTEMPT)
            .record(outcome.latency.as_secs_f64());
        Ok((result, updated))
    }

    async fn send(&self, ep: &WebhookEndpoint, d: &WebhookDelivery, now: Timestamp) -> SendOutcome {
        let started = Instant::now();
        let secrets = match endpoint_secrets(&self.keys, ep, now) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(endpoint = %ep.id, error = %e, "a webhook signing secret cannot be decrypted (wrong master key?)");
                return SendOutcome::not_sent("secret_unreadable", started);
            }
        };
        let refs: Vec<_> = secrets.iter().collect();
        self.sender
            .send(&ep.url, &d.message_id, now, &d.payload, &refs)
            .await
    }

    /// The attempt's record and consequences.
    fn judge(&self, d: &WebhookDelivery, outcome: &SendOutcome, at: Timestamp) -> AttemptResult {
        let now = self.clock.now();
        let ping = d.event_type == TEST_EVENT_TYPE;
        let not_sent = outcome.status.is_none()
            && matches!(
                outcome.error,
                Some("endpoint_disabled" | "endpoint_deleted")
            );
        let next = if outcome.succeeded() {
            DeliveryNext::Succeeded
        } else if outcome.gone() || ping || not_sent {
            DeliveryNext::Failed
        } else {
            let step = usize::try_from(d.retry_step).unwrap_or(usize::MAX);
            next_attempt(
                &self.config.retry_schedule,
                step,
                now,
                outcome.retry_after,
                2.0 * random_unit() - 1.0,
            )
            .map_or(DeliveryNext::Failed, DeliveryNext::Retry)
        };
        let health = if ping || not_sent {
            EndpointHealth::Unchanged
        } else if outcome.succeeded() {
            EndpointHealth::Healthy
        } else if outcome.gone() {
            EndpointHealth::Gone
        } else {
            EndpointHealth::Failing {
                disable_if_since_before: Timestamp(
                    now.micros()
                        .saturating_sub(micros(self.config.disable_after)),
                ),
            }
        };
        AttemptResult {
            attempt: WebhookAttempt {
                id: new_id("att", at.micros()),
                org_id: d.org_id.clone(),
                delivery_id: d.id.clone(),
                endpoint_id: d.endpoint_id.clone(),
                message_id: d.message_id.clone(),
                event_type: d.event_type.clone(),
                attempt: d.attempts,
                outcome: if outcome.succeeded() {
                    "succeeded"
                } else {
                    "failed"
                }
                .into(),
                status_code: outcome.status.map(i64::from),
                error: outcome.error.map(str::to_string),
                latency_micros: micros(outcome.latency),
                response_excerpt: outcome.excerpt.clone(),
                created_at: at,
            },
            next,
            health,
        }
    }

    /// Sends a signed `webhook.test` ping to an endpoint now, once (no retries), and returns
    /// its delivery as recorded.
    pub async fn send_test(
        &self,
        org: &OrgId,
        ep: &WebhookEndpoint,
    ) -> StoreResult<WebhookDelivery> {
        let now = self.clock.now();
        let msg_id = new_id("msg", now.micros());
        let body = payload(
            &msg_id,
            TEST_EVENT_TYPE,
            now,
            None,
            serde_json::json!({"endpoint_id": ep.id}),
        );
        let delivery = WebhookDelivery {
            id: new_id("dlv", now.micros()),
            org_id: org.0.clone(),
            endpoint_id: ep.id.clone(),
            message_id: msg_id,
            event_type: TEST_EVENT_TYPE.into(),
            connection_id: None,
            payload: body,
            status: delivery_status::PENDING.into(),
            attempts: 1,
            retry_step: 0,
            next_attempt_at: Some(Timestamp(
                now.micros().saturating_add(micros(self.config.lease)),
            )),
            lease_owner: Some(self.id.clone()),
            last_status_code: None,
            last_error: None,
            delivered_at: None,
            created_at: now,
            updated_at: now,
        };
        self.store.create_webhook_delivery(org, &delivery).await?;
        self.attempt(&delivery).await?;
        self.store.get_webhook_delivery(org, &delivery.id).await
    }

    /// Claims every due delivery that fits the limits and attempts them all to the end;
    /// returns how many attempts were made (tests and benchmarks drive the dispatcher so).
    pub async fn run_due(self: &Arc<Self>) -> StoreResult<usize> {
        let batch = self.claim().await?;
        let mut tasks = JoinSet::new();
        for d in batch {
            tasks.spawn(self.clone().attempt_in_slot(d));
        }
        let mut attempts = 0;
        while let Some(done) = tasks.join_next().await {
            attempts += done.unwrap_or(0);
        }
        Ok(attempts)
    }

    /// Runs until `shutdown`: attempts deliveries as they come due, each in its own task, and
    /// deletes history past its retention every hour. On shutdown it stops claiming and
    /// waits for the attempts in flight (at most one timeout).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(dispatcher = %self.id, "webhook dispatcher started");
        let mut tasks = JoinSet::new();
        let mut last_purge: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                last_purge = Some(Instant::now());
                self.purge().await;
            }
            let mut wait = self.config.poll_interval;
            match self.claim().await {
                Ok(batch) if !batch.is_empty() => {
                    for d in batch {
                        tasks.spawn(self.clone().attempt_in_slot(d));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The database is away: say so once a second, not at every poll.
                    tracing::warn!(error = %e.chain(), "could not claim webhook deliveries");
                    wait = wait.max(Duration::from_secs(1));
                }
            }
            let woken = async {
                match &self.config.wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
                // A slot freed: more may fit now.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.timeout + Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "webhook attempts still in flight at shutdown; they are retried when their lease ends"
            );
        }
        tracing::info!(dispatcher = %self.id, "webhook dispatcher stopped");
    }

    async fn purge(&self) {
        let before = Timestamp(
            self.clock
                .now()
                .micros()
                .saturating_sub(micros(self.config.retention)),
        );
        match self.store.purge_webhook_history(before).await {
            Ok(n) if n > 0 => tracing::info!(
                deleted = n,
                "deleted webhook deliveries past their retention"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.chain(), "could not delete old webhook deliveries"),
        }
    }
}
