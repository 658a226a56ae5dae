//! Triggers that start runs from outside a request: change feeds and schedules (event
//! triggers start theirs in the store, with the event). A feed trigger reads the changes past
//! its position and creates one run with them while moving the position, in one transaction;
//! it waits for that run to end before the next, so changes reach a flow in order, each once.
//! A schedule creates one run per due time, moving to the next due time in the same
//! transaction; a schedule overdue for many ticks (the service was down) runs once.

use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::Clock;
use ironbridge_core::field_mappings::ViewCache;
use ironbridge_core::flows::{changes_per_run, cron::Schedule, entity_named, new_run};
use ironbridge_core::read::render_change;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{
    ChangePosition, ChangeQuery, ConnId, Flow, FlowFeedDue, OrgId, RunStart, Store, StoreError,
};
use ironbridge_model::flows::{ChangeKind, FlowIn, Trigger};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Flows looked at per round.
const FLOWS_PER_ROUND: u32 = 500;
/// How often the triggers are looked at when the last round started nothing.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Starts runs of change feed and schedule triggers.
pub struct FlowTriggers {
    store: Arc<dyn Store>,
    runtimes: Arc<Runtimes>,
    clock: Arc<dyn Clock>,
    views: ViewCache,
}

impl FlowTriggers {
    /// Triggers over `store`; `runtimes` gives each connection's system (for its field
    /// mappings).
    pub fn new(store: Arc<dyn Store>, runtimes: Arc<Runtimes>, clock: Arc<dyn Clock>) -> Self {
        FlowTriggers {
            store,
            runtimes,
            clock,
            views: ViewCache::default(),
        }
    }

    /// One round over due feeds and schedules; returns the runs started. A flow that fails
    /// is logged and left as it was, for the next round.
    pub async fn start_due(&self) -> Result<usize, ServiceError> {
        let mut started = 0;
        for due in self.store.flow_feeds_due(FLOWS_PER_ROUND).await? {
            match self.start_feed(&due).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(flow = %due.flow_id, error = %e, "could not start a flow run from its change feed")
                }
            }
        }
        let now = self.clock.now();
        for flow in self.store.flows_scheduled_due(now, FLOWS_PER_ROUND).await? {
            match self.start_scheduled(&flow).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(flow = %flow.id, error = %e, "could not start a scheduled flow run")
                }
            }
        }
        Ok(started)
    }

    /// Runs rounds until `shutdown`: at once while they start runs, else every half second.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let started = match self.start_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look at the flows' triggers");
                    0
                }
            };
            if started > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(IDLE_WAIT) => {}
            }
        }
    }

    async fn start_feed(&self, due: &FlowFeedDue) -> Result<bool, ServiceError> {
        let org = OrgId(due.org_id.clone());
        let flow = match self.store.get_flow(&org, &due.flow_id).await {
            Ok(f) => f,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let doc: FlowIn = serde_json::from_str(&flow.document)
            .map_err(|e| ServiceError::Corrupt(format!("a stored flow is unreadable: {e}")))?;
        let Trigger::RecordChanges(trigger) = &doc.trigger else {
            return Ok(false);
        };
        let Some(entity) = entity_named(&trigger.entity) else {
            return Ok(false);
        };
        let kinds: Vec<&str> = trigger
            .changes
            .clone()
            .unwrap_or_else(|| {
                vec![
                    ChangeKind::Created,
                    ChangeKind::Updated,
                    ChangeKind::Deleted,
                ]
            })
            .into_iter()
            .map(ChangeKind::as_str)
            .collect();
        let conn = ConnId(trigger.connection_id.clone());
        let connection = match self.store.get_connection(&org, &conn).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let view = match self.runtimes.registry().require(&connection.system) {
            Ok(system) => {
                self.views
                    .view(self.store.as_ref(), system, &connection)
                    .await?
            }
            Err(_) => None,
        };
        let from = due.feed.clone().unwrap_or_else(ChangePosition::start);
        let per_run = changes_per_run(&doc.trigger);
        let changes = self
            .store
            .list_changes(
                &conn,
                &ChangeQuery {
                    entity: Some(entity),
                    after: from.clone(),
                    include_raw: view.is_some(),
                    limit: per_run,
                },
            )
            .await?;
        // A short page read to the end of the entity's feed as it was when the counter was
        // read: every change numbered up to that count is in it or before it.
        let to = match changes.last() {
            Some(last) if changes.len() >= per_run as usize => last.position(),
            Some(last) => after_seq(last.seq.max(due.last_seq)),
            None => after_seq(due.last_seq),
        };
        let mut items = Vec::with_capacity(changes.len());
        for change in changes {
            let text = render_change(&conn.0, change, &from, view.as_deref(), false)?;
            let mut item: Value =
                serde_json::from_str(&text).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            if !kinds.contains(&item["change"].as_str().unwrap_or_default()) {
                continue;
            }
            if let Value::Object(m) = &mut item {
                m.insert("connection_id".into(), json!(conn.0));
            }
            items.push(item.to_string());
        }
        if items.is_empty() {
            self.store
                .advance_flow_feed(&flow.id, due.feed.as_ref(), &to)
                .await?;
            return Ok(false);
        }
        let now = self.clock.now();
        let (run, job) = new_run(
            &flow.org_id,
            &flow.id,
            flow.version,
            "record_changes",
            items.len(),
            now,
        );
        Ok(self
            .store
            .create_flow_run(
                &run,
                &items,
                &job,
                &RunStart::Feed {
                    from: due.feed.clone(),
                    to,
                },
            )
            .await?)
    }

    async fn start_scheduled(&self, flow: &Flow) -> Result<bool, ServiceError> {
        let Some(due) = flow.next_run_at else {
            return Ok(false);
        };
        let doc: FlowIn = serde_json::from_str(&flow.document)
            .map_err(|e| ServiceError::Corrupt(format!("a stored flow is unreadable: {e}")))?;
        let Trigger::Schedule(s) = &doc.trigger else {
            return Ok(false);
        };
        let now = self.clock.now();
        let next = Schedule::parse(&s.cron, s.timezone.as_deref())
            .ok()
            .and_then(|sched| sched.next_after(now.max(due)));
        let item = json!({"scheduled_at": due, "started_at": now}).to_string();
        let (run, job) = new_run(&flow.org_id, &flow.id, flow.version, "schedule", 1, now);
        Ok(self
            .store
            .create_flow_run(&run, &[item], &job, &RunStart::Schedule { due, next })
            .await?)
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
