//! The worker: takes jobs from the job table under a lease (any number of processes can run
//! one), runs them, and records the outcome with bounded retries. The scheduler part queues a
//! sync for every live connection whose last sync is older than the configured interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::crypto::Keys;
use ironbridge_core::crypto::sha256_hex;
use ironbridge_core::ids::new_id;
use ironbridge_core::service::{ConnectorFactory, ServiceError, open_connector, sync_settings};
use ironbridge_core::store::{
    ConnId, Connection, Event, Job, JobOutcome, NewJob, OrgId, Store, StoreError, StoreResult,
};
use ironbridge_model::Timestamp;
use ironbridge_model::api::ConnectionStatus;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::sync::{SyncError, SyncOptions, safe_message, sync_connection_with};

/// Kind of the sync job.
pub const SYNC_JOB: &str = "sync";

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How long a claimed job is ours before another worker may take it over.
    pub lease: Duration,
    /// How long to wait when no job is due.
    pub idle_wait: Duration,
    /// How often each live connection is synced.
    pub sync_interval: Duration,
    /// Attempts of a sync job before it fails for good.
    pub max_attempts: i64,
    /// How often a connection's scheduled sync is a full one (every record read, and those
    /// the source no longer has marked deleted): the sources report deletions only this
    /// way. `None`: never scheduled (`POST /v1/sync {"full": true}` still runs one).
    pub reconcile_interval: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease: Duration::from_secs(300),
            idle_wait: Duration::from_secs(1),
            sync_interval: Duration::from_secs(3600),
            max_attempts: 5,
            reconcile_interval: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The dedupe key of a connection's sync: one queued or running at a time.
pub fn sync_key(conn: &ConnId) -> String {
    format!("sync:{}", conn.0)
}

/// Queues a sync of a connection, or returns the one already queued or running (`false`).
pub async fn enqueue_sync(
    store: &dyn Store,
    clock: &dyn Clock,
    org: &OrgId,
    conn: &ConnId,
    full: bool,
    max_attempts: i64,
) -> StoreResult<(Job, bool)> {
    let now = clock.now();
    let job = NewJob {
        id: new_id("job", now.micros()),
        kind: SYNC_JOB.into(),
        org_id: org.0.clone(),
        connection_id: Some(conn.0.clone()),
        payload: json!({"full": full}).to_string(),
        dedupe_key: Some(sync_key(conn)),
        run_at: now,
        max_attempts,
        created_at: now,
    };
    if let Some(created) = store.enqueue_job(&job).await? {
        return Ok((created, true));
    }
    match store.active_job(&sync_key(conn)).await? {
        Some(existing) => Ok((existing, false)),
        // It finished between the two statements: queue again.
        None => store
            .enqueue_job(&job)
            .await?
            .map(|j| (j, true))
            .ok_or(StoreError::Conflict("sync queue is busy".into())),
    }
}

/// Runs jobs.
pub struct Worker {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    connectors: Arc<dyn ConnectorFactory>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    id: String,
    open: Mutex<HashMap<String, OpenConnector>>,
}

/// A connector kept between jobs, with the fingerprint of the settings and credentials it
/// was built from.
type OpenConnector = (String, Arc<dyn Connector>);

/// Connectors a worker keeps between jobs at most.
const CONNECTOR_CACHE: usize = 10_000;

impl Worker {
    /// A worker with a fresh id.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        connectors: Arc<dyn ConnectorFactory>,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        let id = new_id("wrk", clock.now().micros());
        Worker {
            store,
            keys,
            connectors,
            clock,
            config,
            id,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Queues syncs of the connections that are due; returns how many were queued. A due
    /// sync is a full one (a reconciliation) when the last full sync is older than
    /// `reconcile_interval`.
    pub async fn schedule_due(&self) -> StoreResult<usize> {
        let now = self.clock.now().micros();
        let before = Timestamp(now - micros(self.config.sync_interval));
        let mut queued = 0;
        for (org, conn) in self.store.connections_due(before, 500).await? {
            // A due sync is a full one when the last full sync is older than the
            // reconciliation interval (or, never having had one, the connection is). One that
            // fails is tried again at the next due sync, not every minute.
            let full = match self.config.reconcile_interval {
                Some(interval) => {
                    self.store.last_full_sync(&conn).await?.micros() <= now - micros(interval)
                }
                None => false,
            };
            if enqueue_sync(
                self.store.as_ref(),
                self.clock.as_ref(),
                &org,
                &conn,
                full,
                self.config.max_attempts,
            )
            .await?
            .1
            {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Claims and runs one due job; false when none was due.
    pub async fn run_once(&self) -> StoreResult<bool> {
        let now = self.clock.now();
        let lease_until = Timestamp(now.micros() + micros(self.config.lease));
        let Some(job) = self
            .store
            .claim_job(SYNC_JOB, &self.id, now, lease_until)
            .await?
        else {
            return Ok(false);
        };
        let (outcome, attention) = self.run_sync(&job).await;
        let gives_up = match &outcome {
            JobOutcome::Failed { .. } => true,
            JobOutcome::Retry { .. } => job.attempts >= job.max_attempts,
            JobOutcome::Succeeded => false,
        };
        if gives_up && let Some((code, message)) = attention {
            self.report_system_error(&job, code, &message).await;
        }
        if !self
            .store
            .finish_job(&job, &self.id, self.clock.now(), &outcome)
            .await?
        {
            tracing::warn!(job = %job.id, "lost the lease of a job; its outcome was discarded");
        }
        Ok(true)
    }

    /// Writes a `system.error` event: a connection's sync stopped for good for a reason
    /// retrying will not fix, so someone must look.
    async fn report_system_error(&self, job: &Job, code: &str, message: &str) {
        let now = self.clock.now();
        let event = Event {
            id: new_id("evt", now.micros()),
            org_id: job.org_id.clone(),
            connection_id: job.connection_id.clone(),
            event_type: "system.error".into(),
            data: json!({"code": code, "message": message, "job_id": job.id, "attempts": job.attempts})
                .to_string(),
            created_at: now,
        };
        if let Err(e) = self.store.insert_event(&event).await {
            tracing::warn!(job = %job.id, error = %e, "could not record a system.error event");
        }
    }

    /// Runs a sync job; also says, for a failure, what to report if the job gives up
    /// (credential refusals and lost leases are reported otherwise, or not at all).
    async fn run_sync(&self, job: &Job) -> (JobOutcome, Option<(&'static str, String)>) {
        const SYNC_FAILING: &str = "SYNC_FAILING";
        const CONNECTION_UNUSABLE: &str = "CONNECTION_UNUSABLE";
        if job.attempts > job.max_attempts {
            let error = "attempts exhausted".to_string();
            return (
                JobOutcome::Failed {
                    error: error.clone(),
                },
                Some((
                    SYNC_FAILING,
                    format!("The sync failed {} times in a row.", job.max_attempts),
                )),
            );
        }
        let Some(conn_id) = job.connection_id.clone().map(ConnId) else {
            return (
                JobOutcome::Failed {
                    error: "sync job without a connection".into(),
                },
                None,
            );
        };
        let org = OrgId(job.org_id.clone());
        let connection = match self.store.get_connection(&org, &conn_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return (
                    JobOutcome::Failed {
                        error: "connection not found".into(),
                    },
                    None,
                );
            }
            Err(e) => {
                return (
                    self.retry(job, e.to_string()),
                    Some((
                        SYNC_FAILING,
                        "Ironbridge could not read the connection; see the logs.".into(),
                    )),
                );
            }
        };
        if connection.status == ConnectionStatus::Disconnected.as_str() {
            return (JobOutcome::Succeeded, None);
        }
        let full = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|p| p["full"].as_bool())
            .unwrap_or(false);
        let settings = match sync_settings(&connection) {
            Ok(s) => s,
            Err(e) => {
                return (
                    JobOutcome::Failed {
                        error: e.to_string(),
                    },
                    Some((
                        CONNECTION_UNUSABLE,
                        format!("The connection's settings are invalid: {e}"),
                    )),
                );
            }
        };
        let connector = match self.connector(&connection) {
            Ok(c) => c,
            Err(e) => {
                let message = match &e {
                    // Never a secret in an event: say what to check.
                    ServiceError::Crypto(_) => "The connection's stored credentials cannot be decrypted; check that every process uses the master key they were stored with.".to_string(),
                    other => format!("The connection cannot be opened: {other}"),
                };
                return (
                    JobOutcome::Failed {
                        error: e.to_string(),
                    },
                    Some((CONNECTION_UNUSABLE, message)),
                );
            }
        };
        let options = SyncOptions {
            full,
            history_days: settings.history_days,
            max_concurrency: None,
        };
        let sync = sync_connection_with(
            self.store.as_ref(),
            connector.as_ref(),
            &org,
            &conn_id,
            &options,
            self.clock.as_ref(),
        );
        let heartbeat = self.keep_lease(job);
        tokio::select! {
            result = sync => match result {
                Ok(_) => (JobOutcome::Succeeded, None),
                // Retrying cannot help until the customer reconnects; the connection's
                // `reauthorization_required` event says so.
                Err(SyncError::Connector(ConnectorError::Unauthorized)) => (JobOutcome::Failed { error: "the source system refused the credentials".into() }, None),
                Err(e) => {
                    let message = format!("The sync failed {} times in a row; the last error: {}", job.attempts, safe_message(&e));
                    (self.retry(job, e.to_string()), Some((SYNC_FAILING, message)))
                }
            },
            // Another worker took the job over; it reports its own outcome.
            () = heartbeat => (JobOutcome::Failed { error: "lease lost".into() }, None),
        }
    }

    /// The connector of a connection, kept between jobs so its circuit breaker, rate budget
    /// and cached token carry over from one sync to the next. Rebuilt when the connection's
    /// settings or credentials change.
    fn connector(&self, connection: &Connection) -> Result<Arc<dyn Connector>, ServiceError> {
        let fingerprint = sha256_hex(
            format!(
                "{}\u{0}{}",
                connection.settings,
                connection.credentials.as_deref().unwrap_or("")
            )
            .as_bytes(),
        );
        let mut cache = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, connector)) = cache.get(&connection.id)
            && *known == fingerprint
        {
            return Ok(connector.clone());
        }
        let connector = open_connector(&self.keys, self.connectors.as_ref(), connection)?;
        if cache.len() >= CONNECTOR_CACHE {
            // Simple bound: forget everything; connectors are cheap to rebuild.
            cache.clear();
        }
        cache.insert(connection.id.clone(), (fingerprint, connector.clone()));
        Ok(connector)
    }

    /// Extends the lease every third of its length; returns only if it was lost.
    async fn keep_lease(&self, job: &Job) {
        let every = self.config.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let until = Timestamp(self.clock.now().micros() + micros(self.config.lease));
            match self.store.extend_lease(job, &self.id, until).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(job = %job.id, error = %e, "could not extend a lease"),
            }
        }
    }

    fn retry(&self, job: &Job, error: String) -> JobOutcome {
        // 30 s, 1 min, 2 min, ... capped at an hour.
        let shift = u32::try_from(job.attempts.clamp(1, 8) - 1).unwrap_or(0);
        let delay = (30_000_000i64 << shift).min(3_600_000_000);
        JobOutcome::Retry {
            run_at: Timestamp(self.clock.now().micros() + delay),
            error,
        }
    }

    /// Runs until `shutdown`: schedules due syncs every minute and works through due jobs.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, "worker started");
        let mut last_schedule: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_schedule.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_schedule = Some(tokio::time::Instant::now());
                match self.schedule_due().await {
                    Ok(n) if n > 0 => tracing::info!(queued = n, "scheduled syncs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not schedule syncs"),
                }
            }
            let ran = match self.run_once().await {
                Ok(ran) => ran,
                Err(e) => {
                    tracing::warn!(error = %e, "could not run a job");
                    false
                }
            };
            if !ran {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.config.idle_wait) => {}
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }
}
