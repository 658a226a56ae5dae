//! The worker: takes jobs from the job table under a lease (any number of processes can run
//! one), runs several at once within a bounded number, and records each outcome with bounded
//! retries. Jobs of one connection are exclusive (a sync holds its connection's queue slot);
//! the connection's runtime (its connector, limits, breaker and token) is shared with the
//! API's writes. On shutdown it stops claiming, lets running jobs commit, and gives back the
//! leases of those still running when the drain time ends. The scheduler part queues a sync
//! for every live connection whose last sync is older than the configured interval.

use std::sync::Arc;
use std::time::Duration;

use ironbridge_connectors::sleeper::TokioSleeper;
use ironbridge_core::Clock;
use ironbridge_core::clock::Sleeper;
use ironbridge_core::connector::ConnectorError;
use ironbridge_core::ids::new_id;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::{ServiceError, sync_settings};
use ironbridge_core::store::{
    ConnId, Event, Fence, Job, JobOutcome, NewJob, OrgId, Store, StoreError, StoreResult,
    batch_status,
};
use ironbridge_model::Timestamp;
use ironbridge_model::api::ConnectionStatus;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batches::{BATCH_JOB, BatchStop, is_final, run_batch};
use crate::flows::{FLOW_JOB, FlowDeps, FlowStop, run_flow};
use crate::sync::{
    SyncError, SyncOptions, is_fenced, safe_message, sync_connection_with, sync_event,
};
use crate::telemetry::{self, outcome};

/// Kind of the sync job.
pub const SYNC_JOB: &str = "sync";
/// Kind of the poll job: a sync of a connection's followed feeds alone, on the short
/// polling interval. It shares the sync's dedupe key, so it never runs beside a sync of the
/// same connection (which reads the feeds too).
pub const POLL_JOB: &str = "poll";
/// How long finished poll jobs are kept (for the queue's metrics and a look at recent
/// failures); older ones are purged a bounded number a minute.
pub const POLL_JOBS_KEPT_SECS: i64 = 3600;

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
    /// Jobs run at once. Syncs mostly wait on the source, so a few per core keep the
    /// connections current; each is bounded by its connection's own limits.
    pub max_jobs: usize,
    /// On shutdown, how long running jobs may go on to finish; those still running then are
    /// stopped (what they committed stays) and their leases given back.
    pub drain: Duration,
    /// Bytes of source pages each sync holds at once: a worker's sync memory is about
    /// `max_jobs` times this, however large the connections' data and pages.
    pub sync_memory_bytes: usize,
    /// How long points of time series (vehicle locations) are kept; older ones are purged a
    /// bounded number a minute, in short transactions. `None`: kept for ever.
    pub point_retention: Option<Duration>,
    /// How often followed feeds (Samsara's vehicle locations) are polled, apart from the
    /// hourly sync. `None`: they are read by the hourly sync only.
    pub poll_interval: Option<Duration>,
}

/// Points deleted per transaction by the retention purge: short enough that syncs and
/// readers interleave.
pub const PURGE_POINTS_BATCH: u32 = 5_000;
/// Points the retention purge deletes a minute at most (at 1.4 million points a day for 500
/// vehicles, about 1,000 arrive a minute: the purge keeps up with a margin).
pub const PURGE_POINTS_PER_MINUTE: u64 = 200_000;

/// Jobs a worker runs at once by default: four per core (eight on a 2-core machine).
pub fn default_max_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 4
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease: Duration::from_secs(300),
            idle_wait: Duration::from_secs(1),
            sync_interval: Duration::from_secs(3600),
            max_attempts: 5,
            reconcile_interval: Some(Duration::from_secs(7 * 86_400)),
            max_jobs: default_max_jobs(),
            drain: Duration::from_secs(30),
            sync_memory_bytes: crate::sync::budget::DEFAULT_MEMORY_BUDGET,
            point_retention: Some(Duration::from_secs(90 * 86_400)),
            poll_interval: Some(Duration::from_secs(30)),
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
    let reason = full.then_some(full_reason::REQUESTED);
    enqueue(store, clock, org, conn, reason, max_attempts).await
}

/// A job of one connection due now, under the connection's sync dedupe key (syncs and polls
/// of a connection never run side by side).
fn connection_job(
    kind: &str,
    org: &OrgId,
    conn: &ConnId,
    payload: &serde_json::Value,
    max_attempts: i64,
    now: Timestamp,
) -> NewJob {
    NewJob {
        id: new_id("job", now.micros()),
        kind: kind.into(),
        org_id: org.0.clone(),
        connection_id: Some(conn.0.clone()),
        payload: payload.to_string(),
        dedupe_key: Some(sync_key(conn)),
        run_at: now,
        max_attempts,
        created_at: now,
    }
}

/// Queues a sync that reads everything for `reason` (incremental when `None`), or returns
/// the one already queued or running (`false`).
async fn enqueue(
    store: &dyn Store,
    clock: &dyn Clock,
    org: &OrgId,
    conn: &ConnId,
    reason: Option<&str>,
    max_attempts: i64,
) -> StoreResult<(Job, bool)> {
    let payload = json!({"full": reason.is_some(), "reason": reason});
    let job = connection_job(SYNC_JOB, org, conn, &payload, max_attempts, clock.now());
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
            .ok_or(StoreError::conflict("sync queue is busy")),
    }
}

/// The kinds of job a worker runs, in the order it looks for them.
pub const JOB_KINDS: &[&str] = &[SYNC_JOB, POLL_JOB, BATCH_JOB, FLOW_JOB];

/// Runs jobs.
pub struct Worker {
    store: Arc<dyn Store>,
    runtimes: Arc<Runtimes>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    config: WorkerConfig,
    id: String,
}

/// How a job ended for the worker.
enum Ran {
    /// Its outcome to record, and what to report if it gives up.
    Outcome(JobOutcome, Option<(&'static str, String)>),
    /// The sync recorded the job's success itself, with its `sync.completed` event.
    Completed,
    /// Another worker took the job over: nothing more is written.
    Lost,
}

/// Claims a job may take per attempt it is allowed: a takeover after a crash starts a new
/// attempt without failing one (a full sync resumes where it stopped), but a job that kills
/// every worker running it must still end.
pub const CLAIMS_PER_ATTEMPT: i64 = 4;

/// Why a sync job reads everything (`reason` in its payload).
pub mod full_reason {
    /// Asked for (`POST /v1/sync {"full": true}`).
    pub const REQUESTED: &str = "requested";
    /// The scheduler's reconciliation, due every `reconcile_interval`.
    pub const RECONCILIATION_DUE: &str = "reconciliation_due";
    /// An incremental sync upgraded because the reconciliation was overdue.
    pub const RECONCILIATION_OVERDUE: &str = "reconciliation_overdue";
}

impl Worker {
    /// A worker with a fresh id, sharing the process's connection runtimes.
    pub fn new(
        store: Arc<dyn Store>,
        runtimes: Arc<Runtimes>,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        let id = new_id("wrk", clock.now().micros());
        Worker {
            store,
            runtimes,
            clock,
            sleeper: Arc::new(TokioSleeper),
            config,
            id,
        }
    }

    /// How the worker waits between the batches of a bulk batch (tests move a manual
    /// clock instead).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The worker's id (its leases' owner).
    pub fn id(&self) -> &str {
        &self.id
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
            if enqueue(
                self.store.as_ref(),
                self.clock.as_ref(),
                &org,
                &conn,
                full.then_some(full_reason::RECONCILIATION_DUE),
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

    /// Queues polls of the connections whose followed feeds were last read a polling
    /// interval ago or more; returns how many were queued. A connection whose sync (or poll)
    /// is queued or running is left to it.
    pub async fn schedule_polls(&self) -> StoreResult<usize> {
        let Some(interval) = self.config.poll_interval else {
            return Ok(0);
        };
        let now = self.clock.now();
        let before = Timestamp(now.micros() - micros(interval));
        let mut queued = 0;
        for (org, conn) in self.store.connections_to_poll(before, 500).await? {
            // The next poll is the retry: one attempt.
            let job = connection_job(POLL_JOB, &org, &conn, &json!({"poll": true}), 1, now);
            if self.store.enqueue_job(&job).await?.is_some() {
                queued += 1;
            }
        }
        let kept = Timestamp(now.micros() - POLL_JOBS_KEPT_SECS * 1_000_000);
        self.store
            .purge_finished_jobs(POLL_JOB, kept, 5_000)
            .await?;
        Ok(queued)
    }

    /// Claims the next due job of any kind, under a lease.
    async fn claim(&self) -> StoreResult<Option<Job>> {
        let now = self.clock.now();
        let lease_until = Timestamp(now.micros() + micros(self.config.lease));
        for kind in JOB_KINDS {
            if let Some(job) = self
                .store
                .claim_job(kind, &self.id, now, lease_until)
                .await?
            {
                // A job taken over after its worker died counts from when it was due, so
                // its wait includes the attempt that was lost.
                telemetry::job_claimed(&job.kind, job.run_at, now);
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Claims and runs one due job; false when none was due.
    pub async fn run_once(&self) -> StoreResult<bool> {
        let Some(job) = self.claim().await? else {
            return Ok(false);
        };
        self.execute(job, &CancellationToken::new()).await?;
        Ok(true)
    }

    /// Runs a claimed job to its end and records the outcome; when `stop` is cancelled
    /// first, the job is stopped (what it committed stays) and its lease given back.
    async fn execute(&self, job: Job, stop: &CancellationToken) -> StoreResult<()> {
        let claimed = self.clock.now();
        let ended = |result: &'static str| {
            telemetry::job_ended(&job.kind, result, claimed, self.clock.now());
        };
        // Every write the job makes is fenced by its lease: once another worker has taken it
        // over, this one changes nothing more.
        let store = self.store.fenced(Fence::of(&job, &self.id));
        let ran = tokio::select! {
            ran = self.run_job(store.as_ref(), &job) => ran,
            () = stop.cancelled() => {
                let released = self.store.release_job(&job, &self.id, self.clock.now()).await;
                ended(match released {
                    Ok(true) => outcome::RELEASED,
                    _ => outcome::LOST,
                });
                if released? {
                    tracing::info!(job = %job.id, "job stopped by the shutdown; its lease was given back");
                }
                return Ok(());
            }
        };
        let (result, attention) = match ran {
            Ran::Outcome(result, attention) => (result, attention),
            Ran::Completed => {
                ended(outcome::SUCCEEDED);
                return Ok(());
            }
            Ran::Lost => {
                ended(outcome::LOST);
                tracing::warn!(job = %job.id, attempt = job.attempts, "lost the job to another worker; stopped it, and its successor reports the outcome");
                return Ok(());
            }
        };
        let gives_up = match &result {
            JobOutcome::Failed { .. } => true,
            JobOutcome::Retry { .. } => job.failures + 1 >= job.max_attempts,
            JobOutcome::Succeeded => false,
        };
        if gives_up && let Some((code, message)) = attention {
            self.report_system_error(store.as_ref(), &job, code, &message)
                .await;
        }
        let finished = store
            .finish_job(&job, &self.id, self.clock.now(), &result)
            .await;
        ended(match (&finished, &result) {
            (Ok(true), JobOutcome::Succeeded) => outcome::SUCCEEDED,
            (Ok(true), _) if gives_up => outcome::FAILED,
            (Ok(true), _) => outcome::RETRIED,
            _ => outcome::LOST,
        });
        if !finished? {
            tracing::warn!(job = %job.id, "lost the lease of a job; its outcome was discarded");
        }
        Ok(())
    }

    /// Runs a job of a known kind.
    async fn run_job(&self, store: &dyn Store, job: &Job) -> Ran {
        match job.kind.as_str() {
            SYNC_JOB | POLL_JOB => self.run_sync(store, job).await,
            BATCH_JOB => self.run_batch(store, job).await,
            FLOW_JOB => self.run_flow(store, job).await,
            other => Ran::Outcome(
                JobOutcome::Failed {
                    error: format!("unknown job kind {other}"),
                },
                None,
            ),
        }
    }

    /// Writes a `system.error` event: a connection's sync stopped for good for a reason
    /// retrying will not fix, so someone must look.
    async fn report_system_error(&self, store: &dyn Store, job: &Job, code: &str, message: &str) {
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
        if let Err(e) = store.insert_event(&event).await {
            tracing::warn!(job = %job.id, error = %e.chain(), "could not record a system.error event");
        }
    }

    /// Runs a sync job; also says, for a failure, what to report if the job gives up
    /// (credential refusals and lost leases are reported otherwise, or not at all).
    async fn run_sync(&self, store: &dyn Store, job: &Job) -> Ran {
        const SYNC_FAILING: &str = "SYNC_FAILING";
        const CONNECTION_UNUSABLE: &str = "CONNECTION_UNUSABLE";
        let failed = |error: String, attention: Option<(&'static str, String)>| {
            Ran::Outcome(JobOutcome::Failed { error }, attention)
        };
        let Some(conn_id) = job.connection_id.clone().map(ConnId) else {
            return failed("sync job without a connection".into(), None);
        };
        let org = OrgId(job.org_id.clone());
        let connection = match store.get_connection(&org, &conn_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return failed("connection not found".into(), None),
            Err(e) => {
                return Ran::Outcome(
                    self.retry(job, e.to_string()),
                    Some((
                        SYNC_FAILING,
                        "Ironbridge could not read the connection; see the logs.".into(),
                    )),
                );
            }
        };
        if connection.status == ConnectionStatus::Disconnected.as_str() {
            return Ran::Outcome(JobOutcome::Succeeded, None);
        }
        if job.attempts > job.max_attempts * CLAIMS_PER_ATTEMPT {
            // Every worker that ran it stopped before it ended (killed, or out of memory):
            // the sync did not fail, so it says so, and the connection leaves `syncing`.
            let message = format!(
                "The sync was interrupted {} times (the process running it stopped) and was given up.",
                job.attempts - 1
            );
            return match self
                .give_up_interrupted(store, &org, &conn_id, &message)
                .await
            {
                Err(StoreError::Fenced) => Ran::Lost,
                _ => failed(
                    "interrupted too often".into(),
                    Some((SYNC_FAILING, message)),
                ),
            };
        }
        let payload = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap_or_default();
        let mut full = payload["full"].as_bool().unwrap_or(false);
        let poll = job.kind == POLL_JOB;
        if poll && connection.status != ConnectionStatus::Online.as_str() {
            // Offline or refused since it was queued: the hourly sync brings it back.
            return Ran::Outcome(JobOutcome::Succeeded, None);
        }
        if !full
            && !poll
            && let Some(interval) = self.config.reconcile_interval
        {
            // An incremental sync while the reconciliation is overdue would leave deletions
            // unflagged until the scheduler's next one: it becomes that reconciliation, and
            // the job says so.
            let due = Timestamp(self.clock.now().micros() - micros(interval));
            let overdue = connection
                .last_full_sync_at
                .unwrap_or(connection.created_at)
                <= due;
            if overdue {
                full = true;
                let payload = json!({"full": true, "reason": full_reason::RECONCILIATION_OVERDUE});
                match store
                    .update_job_payload(job, &self.id, &payload.to_string())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) | Err(StoreError::Fenced) => return Ran::Lost,
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e.chain(), "could not note a sync's upgrade to a full one")
                    }
                }
            }
        }
        let settings = match sync_settings(&connection) {
            Ok(s) => s,
            Err(e) => {
                return failed(
                    e.to_string(),
                    Some((
                        CONNECTION_UNUSABLE,
                        format!("The connection's settings are invalid: {e}"),
                    )),
                );
            }
        };
        let runtime = match self.runtimes.get(&connection) {
            Ok(c) => c,
            Err(e) => {
                let message = match &e {
                    // Never a secret in an event: say what to check.
                    ServiceError::Crypto(_) => "The connection's stored credentials cannot be decrypted; check that every process uses the master key they were stored with.".to_string(),
                    other => format!("The connection cannot be opened: {other}"),
                };
                return failed(e.to_string(), Some((CONNECTION_UNUSABLE, message)));
            }
        };
        let options = SyncOptions {
            job: Some(job.id.clone()),
            full,
            history_days: settings.history_days,
            max_concurrency: Some(runtime.sync_concurrency()),
            memory_budget: Some(self.config.sync_memory_bytes),
            poll,
        };
        let sync = sync_connection_with(
            store,
            runtime.connector().as_ref(),
            &org,
            &conn_id,
            &options,
            self.clock.as_ref(),
        );
        let heartbeat = self.keep_lease(job);
        tokio::select! {
            result = sync => match result {
                // A poll writes no `sync.completed`: its job's success is recorded here.
                Ok(_) if poll => Ran::Outcome(JobOutcome::Succeeded, None),
                Ok(_) => Ran::Completed,
                Err(e) if is_fenced(&e) => Ran::Lost,
                Err(e) if poll => failed(safe_message(&e), None),
                // Retrying cannot help until the customer reconnects; the connection's
                // `reauthorization_required` event says so.
                Err(SyncError::Connector(ConnectorError::Unauthorized)) => failed("the source system refused the credentials".into(), None),
                Err(e) => {
                    let message = format!("The sync failed {} times in a row; the last error: {}", job.failures + 1, safe_message(&e));
                    Ran::Outcome(self.retry(job, e.to_string()), Some((SYNC_FAILING, message)))
                }
            },
            // Another worker took the job over; it reports its own outcome.
            () = heartbeat => Ran::Lost,
        }
    }

    /// Ends a sync that was interrupted too often: the connection returns from `syncing` to
    /// `online` (an interruption says nothing about the source), with a `sync.failed` event
    /// that says what happened.
    async fn give_up_interrupted(
        &self,
        store: &dyn Store,
        org: &OrgId,
        conn: &ConnId,
        message: &str,
    ) -> StoreResult<()> {
        let data = json!({"error": {"code": "SYNC_INTERRUPTED", "message": message}});
        let event = sync_event(org, conn, "sync.failed", data, self.clock.as_ref());
        let status = match store.get_connection(org, conn).await?.status.as_str() {
            "syncing" => ConnectionStatus::Online,
            other => ConnectionStatus::parse(other).unwrap_or(ConnectionStatus::Online),
        };
        store
            .set_connection_status(conn, status.as_str(), event.created_at, Some(&event))
            .await
    }

    /// Runs a bulk batch job; a source that cannot be reached makes it try again later
    /// (it resumes where it stopped), refused credentials end it.
    async fn run_batch(&self, store: &dyn Store, job: &Job) -> Ran {
        let failed = |error: String| Ran::Outcome(JobOutcome::Failed { error }, None);
        let payload = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap_or_default();
        let Some(batch_id) = payload["batch_id"].as_str() else {
            return failed("batch job without a batch".into());
        };
        let org = OrgId(job.org_id.clone());
        let Some(conn_id) = job.connection_id.clone().map(ConnId) else {
            return failed("batch job without a connection".into());
        };
        let connection = match store.get_connection(&org, &conn_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return failed("connection not found".into()),
            Err(e) => return Ran::Outcome(self.retry(job, e.to_string()), None),
        };
        let runtime = match self.runtimes.get(&connection) {
            Ok(r) => r,
            Err(e) => return failed(e.to_string()),
        };
        let run = run_batch(
            store,
            &runtime,
            &org,
            batch_id,
            self.clock.as_ref(),
            self.sleeper.as_ref(),
        );
        let heartbeat = self.keep_lease(job);
        tokio::select! {
            result = run => match result {
                Ok(_) => Ran::Outcome(JobOutcome::Succeeded, None),
                Err(BatchStop::Store(StoreError::Fenced)) => Ran::Lost,
                Err(BatchStop::Store(e)) => Ran::Outcome(self.retry(job, e.chain()), None),
                Err(BatchStop::Source(e)) if is_final(&e) => {
                    self.end_batch(store, &org, batch_id).await;
                    failed(e.to_string())
                }
                Err(BatchStop::Source(e)) => Ran::Outcome(self.retry(job, e.to_string()), None),
            },
            () = heartbeat => Ran::Lost,
        }
    }

    /// Runs a flow run's job: a source that cannot be reached makes it try again later (the
    /// run resumes where it stopped); refused credentials, or the last attempt, end the run.
    async fn run_flow(&self, store: &dyn Store, job: &Job) -> Ran {
        let failed = |error: String| Ran::Outcome(JobOutcome::Failed { error }, None);
        let payload = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap_or_default();
        let Some(run_id) = payload["run_id"].as_str() else {
            return failed("flow job without a run".into());
        };
        let org = OrgId(job.org_id.clone());
        let deps = FlowDeps {
            store,
            runtimes: self.runtimes.as_ref(),
            clock: self.clock.as_ref(),
            sleeper: self.sleeper.as_ref(),
        };
        let last_attempt = job.failures + 1 >= job.max_attempts;
        let heartbeat = self.keep_lease(job);
        let result = tokio::select! {
            result = run_flow(&deps, &org, run_id) => result,
            () = heartbeat => return Ran::Lost,
        };
        match result {
            Ok(_) => Ran::Outcome(JobOutcome::Succeeded, None),
            // The flow (and its runs) was deleted: nothing is left to do.
            Err(FlowStop::Store(StoreError::NotFound)) => Ran::Outcome(JobOutcome::Succeeded, None),
            Err(FlowStop::Store(StoreError::Fenced)) => Ran::Lost,
            Err(FlowStop::Store(e)) => {
                if last_attempt {
                    crate::flows::run::fail_run(
                        &deps,
                        &org,
                        run_id,
                        "The run could not go on: storage kept failing.",
                    )
                    .await;
                }
                Ran::Outcome(self.retry(job, e.chain()), None)
            }
            Err(FlowStop::Source(e)) if crate::flows::run::is_final(&e) => {
                crate::flows::run::fail_run(
                    &deps,
                    &org,
                    run_id,
                    "A connection's credentials were refused; reconnect it and run the flow again.",
                )
                .await;
                failed(e.to_string())
            }
            Err(FlowStop::Source(e)) => {
                if last_attempt {
                    crate::flows::run::fail_run(
                        &deps,
                        &org,
                        run_id,
                        "The run could not go on: a source system kept failing.",
                    )
                    .await;
                }
                Ran::Outcome(self.retry(job, e.to_string()), None)
            }
        }
    }

    /// Ends a batch that cannot go on (its `batch.completed` says `failed`).
    async fn end_batch(&self, store: &dyn Store, org: &OrgId, batch_id: &str) {
        let now = self.clock.now();
        let ended = async {
            let batch = store.get_batch(org, batch_id).await?;
            if batch.finished_at.is_none() {
                store
                    .finish_batch(
                        batch_id,
                        batch_status::FAILED,
                        &new_id("evt", now.micros()),
                        now,
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = ended.await {
            tracing::warn!(batch = %batch_id, error = %e.chain(), "could not end a batch");
        }
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
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e.chain(), "could not extend a lease")
                }
            }
        }
    }

    fn retry(&self, job: &Job, error: String) -> JobOutcome {
        // 30 s, 1 min, 2 min, ... capped at an hour.
        let shift = u32::try_from(job.failures.clamp(0, 7)).unwrap_or(0);
        let delay = (30_000_000i64 << shift).min(3_600_000_000);
        JobOutcome::Retry {
            run_at: Timestamp(self.clock.now().micros() + delay),
            error,
        }
    }

    /// Deletes points older than the retention, of every entity stored as points: at most
    /// [`PURGE_POINTS_PER_MINUTE`] a call, in transactions of [`PURGE_POINTS_BATCH`].
    pub async fn purge_points(&self) -> Result<u64, StoreError> {
        let Some(retention) = self.config.point_retention else {
            return Ok(0);
        };
        let before = Timestamp(
            self.clock.now().micros()
                - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX / 2),
        );
        let mut purged = 0;
        for entity in ironbridge_model::Entity::ALL
            .iter()
            .filter(|e| e.spec().storage != ironbridge_model::Storage::Records)
        {
            let n = self
                .store
                .purge_points(*entity, before, PURGE_POINTS_BATCH, PURGE_POINTS_PER_MINUTE)
                .await?;
            if n > 0 {
                tracing::info!(%entity, purged = n, "points past their retention purged");
            }
            purged += n;
        }
        Ok(purged)
    }

    /// Runs until `shutdown`: schedules due syncs every minute and works through due jobs,
    /// up to `max_jobs` at once. On shutdown it claims nothing more and waits up to `drain`
    /// for the running jobs; those still running then are stopped and their leases given
    /// back, so another worker takes them over at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        tracing::info!(worker = %this.id, max_jobs = this.config.max_jobs, "worker started");
        let slots = Arc::new(Semaphore::new(this.config.max_jobs.max(1)));
        let stop = CancellationToken::new();
        let mut running = JoinSet::new();
        let mut last_schedule: Option<tokio::time::Instant> = None;
        let mut last_poll: Option<tokio::time::Instant> = None;
        // Record event deliveries, from the change feed, beside the jobs (a worker busy with
        // long syncs still makes them as the syncs' pages commit).
        let record_events = tokio::spawn(
            crate::webhooks::RecordEvents::new(
                this.store.clone(),
                this.runtimes.clone(),
                this.clock.clone(),
            )
            .run(shutdown.clone()),
        );
        // Flow runs from change feeds and schedules, beside the jobs.
        let flow_triggers = tokio::spawn(
            crate::flows::FlowTriggers::new(
                this.store.clone(),
                this.runtimes.clone(),
                this.clock.clone(),
            )
            .run(shutdown.clone()),
        );
        'work: while !shutdown.is_cancelled() {
            if let Some(interval) = this.config.poll_interval
                && last_poll.is_none_or(|t| t.elapsed() >= interval.min(Duration::from_secs(60)))
            {
                last_poll = Some(tokio::time::Instant::now());
                if let Err(e) = this.schedule_polls().await {
                    tracing::warn!(error = %e.chain(), "could not schedule polls");
                }
            }
            if last_schedule.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_schedule = Some(tokio::time::Instant::now());
                match this.schedule_due().await {
                    Ok(n) if n > 0 => tracing::info!(queued = n, "scheduled syncs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e.chain(), "could not schedule syncs"),
                }
                // Idempotency keys past their 24 hours, a bounded number a minute.
                if let Err(e) = this.store.purge_idempotency(this.clock.now(), 5_000).await {
                    tracing::warn!(error = %e.chain(), "could not purge expired idempotency keys");
                }
                if let Err(e) = this.purge_points().await {
                    tracing::warn!(error = %e.chain(), "could not purge points past their retention");
                }
            }
            // Reap what finished, so the set only holds running jobs.
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = shutdown.cancelled() => break 'work,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break 'work,
                },
            };
            let claimed = match this.claim().await {
                Ok(job) => job,
                Err(e) => {
                    tracing::warn!(error = %e.chain(), "could not claim a job");
                    None
                }
            };
            match claimed {
                Some(job) => {
                    let worker = this.clone();
                    let stop = stop.clone();
                    running.spawn(async move {
                        let id = job.id.clone();
                        if let Err(e) = worker.execute(job, &stop).await {
                            tracing::warn!(job = %id, error = %e.chain(), "could not record a job's outcome");
                        }
                        drop(permit);
                    });
                }
                None => {
                    drop(permit);
                    tokio::select! {
                        () = shutdown.cancelled() => break 'work,
                        () = tokio::time::sleep(this.config.idle_wait) => {}
                    }
                }
            }
        }
        if !running.is_empty() {
            tracing::info!(
                jobs = running.len(),
                drain_secs = this.config.drain.as_secs(),
                "waiting for running jobs"
            );
            let drained = tokio::time::timeout(this.config.drain, async {
                while running.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                // Each stopped job gives its lease back before its task ends.
                stop.cancel();
                while running.join_next().await.is_some() {}
            }
        }
        let _ = record_events.await;
        let _ = flow_triggers.await;
        tracing::info!(worker = %this.id, "worker stopped");
    }
}
