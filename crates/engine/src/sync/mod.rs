//! The sync runner: pages through every entity a connection's system reads (as its
//! descriptor says: windowed, whole, feed, outbox or time series), maps each raw record and
//! commits each page together with its checkpoint, so a crash resumes from the last committed
//! page and never loses or doubles a record. `window` picks what a run reads, `plan` splits
//! it into slices, `reader` reads and maps them side by side, `writer` commits.

pub mod budget;
mod plan;
mod reader;
mod source_clock;
mod window;
mod writer;

use std::sync::Mutex;

use futures_util::future::join_all;
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, ReadWindow, filters_by_time};
use ironbridge_core::ids;
use ironbridge_core::mapping::MappingDef;
use ironbridge_core::store::{ConnId, Event, OrgId, Store, StoreError, WriteCounts};
use ironbridge_core::system::{FEED_CURSOR_PREFIX, ReadSpec};
use ironbridge_model::api::{CircuitState, ConnectionStatus, ReadKind};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use self::budget::MemoryBudget;
use self::plan::{Slice, Work, decode_plan, encode_plan, plan_slices};
use self::reader::{Fetched, Readers, read_slices};
use self::window::{new_window, permitted_calls, source_now};
use self::writer::Writer;
use crate::telemetry::{self, mode};

/// What one entity's sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityReport {
    /// The entity.
    pub entity: Option<Entity>,
    /// Records written, by outcome.
    pub counts: WriteCounts,
    /// Pages fetched.
    pub pages: u64,
    /// Records that could not be mapped (logged, not stored).
    pub unmappable: u64,
    /// Slices split off one still being read, for a reader that had run out of work.
    pub splits: u64,
    /// Outbox pages acknowledged to the source after their commit.
    pub acknowledged: u64,
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source system failed.
    #[error("{0}")]
    Connector(#[from] ConnectorError),
    /// Storage failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// How far back an incremental run re-reads before the last high-water mark, so records
/// committed late with an earlier timestamp are not missed (the store de-duplicates them).
pub const LOOKBACK_SECS: i64 = 600;
/// How far below the source's "now" a run stops, so it never races writes in flight there.
pub const SETTLE_SECS: i64 = 120;
/// Consecutive failed calls after which an unreachable source is reported `offline` (an
/// open circuit breaker reports it at once).
pub const OFFLINE_AFTER_FAILURES: i64 = 3;
/// Windows shorter than this are read as one slice: an hourly incremental sync costs one
/// request when little changed, not one per slice.
pub const SLICE_MIN_WINDOW_SECS: i64 = 6 * 3600;
/// Readers beyond the connection's concurrency limit (they wait for a slot, never exceed it).
pub const READERS_BEYOND_CONCURRENCY: usize = 2;
/// Records at most that waiting pages add to one transaction (group commit).
pub const GROUP_COMMIT_RECORDS: usize = 2_000;
/// Slices per concurrent reader: more slices than readers keep every reader busy when the
/// data is unevenly spread over time.
pub const SLICES_PER_READER: usize = 4;

/// How to run a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// The job running the sync, if any: an entity whose run an earlier attempt of the same
    /// job finished is not read again (its report is that run's).
    pub job: Option<String>,
    /// Read every entity whole (a resync or a reconciliation): records the source no longer
    /// has are marked deleted once each pass completes.
    pub full: bool,
    /// Days of history of the first sync (`None`: the connector's default).
    pub history_days: Option<u32>,
    /// Reads in flight at most (`None`: the connector's documented concurrency).
    pub max_concurrency: Option<usize>,
    /// Bytes of source pages the sync holds at once (`None`:
    /// [`budget::DEFAULT_MEMORY_BUDGET`]).
    pub memory_budget: Option<usize>,
    /// A poll: only the time series that follow a feed are read, on the short polling
    /// interval. The connection's status is left as it is and no `sync.completed` event is
    /// written (a poll every 30 s would drown the events); refused credentials still make
    /// the connection `reauthorization_required`, with its `sync.failed` event.
    pub poll: bool,
}

/// What every entity of one sync shares.
struct SyncRun<'a> {
    store: &'a dyn Store,
    connector: &'a dyn Connector,
    conn: &'a ConnId,
    options: &'a SyncOptions,
    clock: &'a dyn Clock,
    /// The source's clock when the sync began: every new window ends below it.
    source_now: Timestamp,
    /// Bytes of pages in memory at once across all entities (fetched, mapped, waiting or
    /// being written).
    budget: MemoryBudget,
}

/// What the passes of one entity's run share.
struct Pass<'a> {
    entity: Entity,
    read: &'a ReadSpec,
    def: &'static MappingDef,
    permitted: usize,
    /// The run whose keys a pass over everything records as seen.
    seen_run: Option<String>,
}

/// Syncs one entity: resumes its unfinished run or starts a new one (window, slice plan),
/// reads it side by side into the one writer, then sweeps what a complete pass did not see
/// (windowed and whole reads only: feeds and outboxes are not snapshots) and records where
/// a feed stopped. The report counts the whole run, over every attempt it took.
async fn sync_entity(run: &SyncRun<'_>, entity: Entity) -> Result<EntityReport, SyncError> {
    let SyncRun {
        store,
        connector,
        conn,
        options,
        clock,
        source_now,
        ..
    } = *run;
    let mut report = EntityReport {
        entity: Some(entity),
        ..Default::default()
    };
    let system = connector.descriptor();
    let (Some(read), Some(def)) = (system.read(entity), system.mapping(entity)) else {
        return Ok(report);
    };
    let permitted = permitted_calls(connector, options);
    let started = clock.now();
    let state = store.start_sync(conn, entity, started).await?;
    if state.run_id.is_none()
        && options.job.is_some()
        && state.completed_by_job.as_deref() == options.job.as_deref()
    {
        // An earlier attempt of this job (taken over, or retried after another entity
        // failed) finished this entity: its run stands.
        let totals = store
            .finish_sync(conn, entity, clock.now(), None, state.cursor.as_deref())
            .await?;
        report.counts = totals.written;
        report.unmappable = totals.skipped;
        return Ok(report);
    }
    // An unfinished run resumes with its own window and checkpoint: an incremental run by any
    // sync, and a pass over everything by a full sync too, so a full sync taken over after a
    // crash goes on from its last committed page instead of starting again. A full sync does
    // not resume an incremental run: its pass over everything supersedes it.
    let resumes = state.run_id.is_some() && (!options.full || state.window_since.is_none());
    let (run_id, window, plan) = match &state.run_id {
        Some(run) if resumes => {
            let window = ReadWindow {
                modified_since: state.window_since,
                modified_until: state.window_until,
            };
            let plan = decode_plan(&window, state.cursor.as_deref());
            (run.clone(), window, plan)
        }
        _ => {
            let window = new_window(connector, entity, read.kind, &state, options, source_now);
            // A feed continues from where the last sync stopped (a full sync reads it anew),
            // and so does a time series that follows one, once its history is back-filled.
            let position = match read.kind {
                ReadKind::Feed if !options.full => state.cursor.clone(),
                ReadKind::TimeSeries if read.follows_feed && !options.full => state
                    .cursor
                    .clone()
                    .filter(|c| c.starts_with(FEED_CURSOR_PREFIX)),
                _ => None,
            };
            let plan = match read.kind {
                ReadKind::TimeSeries if position.is_some() => {
                    vec![Slice::whole(&window, position.clone())]
                }
                ReadKind::Windowed | ReadKind::TimeSeries => {
                    match plan_slices(connector, entity, &window, permitted).await {
                        Ok(p) => p,
                        Err(err) => return fail(store, conn, entity, clock, err).await,
                    }
                }
                ReadKind::Whole | ReadKind::Feed | ReadKind::Outbox => {
                    vec![Slice::whole(&window, position.clone())]
                }
            };
            let run = ids::new_id("run", clock.now().micros());
            store
                .begin_window(
                    conn,
                    entity,
                    &run,
                    window.modified_since,
                    window.modified_until,
                    position.as_deref(),
                )
                .await?;
            (run, window, plan)
        }
    };
    // What earlier attempts of a resumed run could not map counts too.
    let skipped_before = if resumes { state.run_totals.skipped } else { 0 };
    // Only a pass over everything can tell which records disappeared, and only a snapshot
    // of the source: a feed or an outbox does not list what it no longer has.
    // Time series are append-only: nothing is ever swept.
    let sweeps = window.modified_since.is_none()
        && matches!(read.kind, ReadKind::Windowed | ReadKind::Whole);
    let pass = Pass {
        entity,
        read,
        def,
        permitted,
        seen_run: sweeps.then(|| run_id.clone()),
    };
    // A feed position the source refuses (a cursor it forgot) is opened anew instead of
    // failing every run until a full sync: the history from where the last run read up to
    // (the window's start, in the source's time, less the lookback) to the present fills the
    // gap, and the store keeps each point once.
    let mut reopened = None;
    let progress = match read_pass(run, &pass, &window, &plan, None, &mut report).await {
        Ok(progress) => progress,
        Err(SyncError::Connector(ConnectorError::PositionRefused(why))) if is_feed_run(&plan) => {
            tracing::warn!(connection = %conn.0, %entity, reason = %why, "the source refused the feed position; opening the feed again");
            let gap = ReadWindow {
                modified_since: None,
                modified_until: window.modified_since,
            };
            match open_feed(run, &pass, &gap, &plan, &mut report).await {
                Ok(position) => reopened = Some(position),
                Err(err) => return abandon(store, conn, entity, clock, err).await,
            }
            plan.clone()
        }
        Err(err) => return abandon(store, conn, entity, clock, err).await,
    };
    if sweeps {
        // A record changed at the source during the pass (or in the settle delay before it)
        // carries a time past the pass's upper bound: if it moved there before its slice was
        // read, the pass never saw it. A tail read from the pass's end (less the lookback) up
        // to the source's present sees it, so the sweep marks deleted only what the source
        // really stopped returning. The checkpoint stays the finished pass's: a crash in the
        // tail resumes with the tail alone.
        // An entity's first run has nothing stored from before it to sweep: no tail.
        if let (ReadKind::Windowed, Some(until), Some(_)) =
            (read.kind, window.modified_until, state.high_water)
        {
            let tail = ReadWindow {
                modified_since: Some(until.plus_secs(-LOOKBACK_SECS)),
                modified_until: None,
            };
            let done = Some(encode_plan(&progress));
            let tail_plan = [Slice::whole(&tail, None)];
            if let Err(err) =
                read_pass(run, &pass, &tail, &tail_plan, Some(done), &mut report).await
            {
                return abandon(store, conn, entity, clock, err).await;
            }
        }
        if skipped_before + report.unmappable == 0 {
            let swept = store
                .sweep_unseen(conn, entity, &run_id, clock.now())
                .await?;
            // Marked deleted: written by the sync like its pages' records.
            telemetry::records_synced(system.id.as_str(), entity.as_str(), swept);
        }
    }
    let position = match read.kind {
        ReadKind::Feed => progress.first().and_then(|s| s.cursor.clone()),
        ReadKind::TimeSeries if read.follows_feed => {
            if let Some(position) = reopened {
                position
            } else if is_feed_run(&plan) {
                progress.first().and_then(|s| s.cursor.clone())
            } else {
                match open_feed(run, &pass, &window, &progress, &mut report).await {
                    Ok(position) => position,
                    Err(err) => return abandon(store, conn, entity, clock, err).await,
                }
            }
        }
        _ => None,
    };
    let totals = store
        .finish_sync(conn, entity, clock.now(), None, position.as_deref())
        .await?;
    report.counts = totals.written;
    report.unmappable = totals.skipped;
    // A resumed run is timed from this attempt's start: the time between attempts is the
    // queue's, not the run's.
    let mode = if state.high_water.is_none() {
        mode::INITIAL
    } else if options.full {
        mode::FULL
    } else {
        mode::INCREMENTAL
    };
    telemetry::run_finished(
        system.id.as_str(),
        entity.as_str(),
        mode,
        started,
        clock.now(),
    );
    Ok(report)
}

/// Whether a run's plan follows a feed from its cursor (rather than reading a window).
fn is_feed_run(plan: &[Slice]) -> bool {
    matches!(plan, [slice] if slice.cursor.as_deref().is_some_and(|c| c.starts_with(FEED_CURSOR_PREFIX)))
}

/// Ends a back-fill of a time series that follows a feed: opens the feed (its first pages
/// are every series' latest point), then reads the history from the back-fill's end (less
/// the lookback) to the present, so what was recorded while the back-fill ran is stored too;
/// returns the feed's cursor, where the next run goes on. Both reads commit the finished
/// back-fill as the checkpoint: a crash here opens the feed again, and the store keeps each
/// point once.
async fn open_feed(
    run: &SyncRun<'_>,
    pass: &Pass<'_>,
    window: &ReadWindow,
    progress: &[Slice],
    report: &mut EntityReport,
) -> Result<Option<String>, SyncError> {
    let done = Some(encode_plan(progress));
    let open = [Slice::whole(
        &ReadWindow::ALL,
        Some(FEED_CURSOR_PREFIX.into()),
    )];
    let opened = read_pass(
        run,
        pass,
        &ReadWindow::ALL,
        &open,
        Some(done.clone()),
        report,
    )
    .await?;
    let position = opened.first().and_then(|s| s.cursor.clone());
    if let Some(until) = window.modified_until {
        let tail = ReadWindow {
            modified_since: Some(until.plus_secs(-LOOKBACK_SECS)),
            modified_until: None,
        };
        read_pass(
            run,
            pass,
            &tail,
            &[Slice::whole(&tail, None)],
            Some(done),
            report,
        )
        .await?;
    }
    Ok(position)
}

/// Reads `plan` (slices of `window`) side by side into the one writer; returns the plan as
/// last committed. `checkpoint`: what every page commits as the checkpoint instead of its
/// own progress (a tail read keeps the finished pass's).
async fn read_pass(
    run: &SyncRun<'_>,
    pass: &Pass<'_>,
    window: &ReadWindow,
    plan: &[Slice],
    checkpoint: Option<Option<String>>,
    report: &mut EntityReport,
) -> Result<Vec<Slice>, SyncError> {
    let SyncRun {
        store,
        connector,
        conn,
        clock,
        ref budget,
        ..
    } = *run;
    let Pass {
        entity,
        read,
        def,
        permitted,
        ..
    } = *pass;
    let work = Mutex::new(Work::new(plan));
    let changed = Notify::new();
    // A reader between calls is parsing or assembling its page; spare readers keep a call
    // waiting for every slot that frees meanwhile (the client never exceeds the limit).
    // Where slices can be split while read, readers beyond the plan's slices take over
    // parts of them.
    let splittable =
        permitted > 1 && filters_by_time(connector, entity) && window.modified_until.is_some();
    let readers = if splittable {
        permitted + READERS_BEYOND_CONCURRENCY
    } else {
        (permitted + READERS_BEYOND_CONCURRENCY)
            .min(plan.len())
            .max(1)
    };
    let (sender, receiver) = mpsc::channel::<Fetched>(readers);
    let shared = Readers {
        connector,
        conn,
        entity,
        def,
        work: &work,
        changed: &changed,
        budget,
        in_step: read.kind == ReadKind::Outbox,
    };
    let reading = {
        let shared = &shared;
        async move {
            let readers: Vec<_> = (0..readers)
                .map(|_| read_slices(shared, sender.clone()))
                .collect();
            drop(sender);
            join_all(readers).await;
        }
    };
    let writer = Writer {
        store,
        connector,
        conn,
        entity,
        clock,
        seen_run: pass.seen_run.clone(),
        checkpoint,
    };
    let writing = writer.run(receiver, plan, report);
    tokio::pin!(writing);
    // The writer ends first only when it failed; the readers still in flight are dropped.
    tokio::select! {
        result = &mut writing => result,
        () = reading => writing.await,
    }
}

/// Ends an entity's run that a pass could not finish: its window, checkpoint and totals
/// stay for the next attempt. A lost job writes nothing more.
async fn abandon(
    store: &dyn Store,
    conn: &ConnId,
    entity: Entity,
    clock: &dyn Clock,
    err: SyncError,
) -> Result<EntityReport, SyncError> {
    match err {
        err @ SyncError::Connector(_) => fail(store, conn, entity, clock, err).await,
        err @ SyncError::Store(StoreError::Fenced) => Err(err),
        err => {
            let _ = store
                .finish_sync(conn, entity, clock.now(), Some(&err.to_string()), None)
                .await;
            Err(err)
        }
    }
}

/// Ends an entity's run on a source failure; its window and checkpoint stay for the next
/// attempt. The connection's failure count is kept by the caller, once per sync.
async fn fail(
    store: &dyn Store,
    conn: &ConnId,
    entity: Entity,
    clock: &dyn Clock,
    err: SyncError,
) -> Result<EntityReport, SyncError> {
    store
        .finish_sync(conn, entity, clock.now(), Some(&err.to_string()), None)
        .await?;
    Err(err)
}

/// Whether a failure means the job was lost to another worker (nothing more may be written).
pub(crate) fn is_fenced(err: &SyncError) -> bool {
    matches!(err, SyncError::Store(StoreError::Fenced))
}

fn failure_code(err: &ConnectorError) -> &'static str {
    match err {
        ConnectorError::Unauthorized => "AUTHENTICATION_FAILED",
        ConnectorError::Upstream(_) => "UPSTREAM_UNAVAILABLE",
        ConnectorError::Throttled(_) => "UPSTREAM_RATE_LIMITED",
        _ => "UPSTREAM_ERROR",
    }
}

fn report_json(reports: &[EntityReport]) -> Value {
    let entities: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "entity": r.entity.map(Entity::as_str),
                "added": r.counts.added,
                "updated": r.counts.updated,
                "deleted": r.counts.deleted,
                "unchanged": r.counts.unchanged,
                "skipped": r.unmappable,
            })
        })
        .collect();
    let sum = |f: fn(&EntityReport) -> u64| reports.iter().map(f).sum::<u64>();
    json!({
        "records_added": sum(|r| r.counts.added),
        "records_updated": sum(|r| r.counts.updated),
        "records_deleted": sum(|r| r.counts.deleted),
        "entities": entities,
    })
}

pub(crate) fn sync_event(
    org: &OrgId,
    conn: &ConnId,
    event_type: &str,
    data: Value,
    clock: &dyn Clock,
) -> Event {
    let now = clock.now();
    Event {
        id: ids::new_id("evt", now.micros()),
        org_id: org.0.clone(),
        connection_id: Some(conn.0.clone()),
        event_type: event_type.to_string(),
        data: data.to_string(),
        created_at: now,
    }
}

/// Syncs every readable entity of a connection and keeps its status in step with reality.
/// The final status change and the `sync.completed` or `sync.failed` event commit together.
///
/// `full` reads every entity whole (a resync or a reconciliation): records the source no
/// longer has are marked deleted once each pass completes.
pub async fn sync_connection(
    store: &dyn Store,
    connector: &dyn Connector,
    org: &OrgId,
    conn: &ConnId,
    full: bool,
    clock: &dyn Clock,
) -> Result<Vec<EntityReport>, SyncError> {
    let options = SyncOptions {
        full,
        ..SyncOptions::default()
    };
    sync_connection_with(store, connector, org, conn, &options, clock).await
}

/// [`sync_connection`] with every option.
///
/// The sync opens with the connector's health check: one cheap call that verifies the
/// credentials and reads the source's clock, so every entity's window ends at the same fresh
/// instant. Entities are then read side by side (the connection's concurrency limit and the
/// pages-in-memory bound are shared), so the small reference entities do not leave the
/// permitted calls idle. A sync that fails counts as one failure of the connection, however
/// many entities failed.
pub async fn sync_connection_with(
    store: &dyn Store,
    connector: &dyn Connector,
    org: &OrgId,
    conn: &ConnId,
    options: &SyncOptions,
    clock: &dyn Clock,
) -> Result<Vec<EntityReport>, SyncError> {
    let started = clock.now();
    let before = store.get_connection(org, conn).await?;
    if !options.poll {
        store
            .set_connection_status(conn, ConnectionStatus::Syncing.as_str(), started, None)
            .await?;
    }
    let mut reports = Vec::new();
    // The first failure in entity order, preferring the one that says most about the
    // connection (refused credentials, then an unreachable source).
    let mut failure: Option<(Option<Entity>, SyncError)> = None;
    let opened = async {
        // A poll reads one feed, whose first call says as much about the credentials.
        if !options.poll {
            connector.check().await?;
        }
        source_now(connector, clock).await
    }
    .await;
    // Measured by the opening call, or by the refusal that stopped it.
    source_clock::record_source_clock(store, connector, conn, clock).await;
    match opened {
        Err(err) => failure = Some((None, err)),
        Ok(now) => {
            // Pages in memory at once are bounded in bytes for the whole sync, so memory is
            // flat however large the sync, its pages and its entities.
            let run = SyncRun {
                store,
                connector,
                conn,
                options,
                clock,
                source_now: now,
                budget: MemoryBudget::new(
                    options
                        .memory_budget
                        .unwrap_or(budget::DEFAULT_MEMORY_BUDGET),
                ),
            };
            let system = connector.descriptor();
            let entities: Vec<Entity> = system
                .readable()
                .into_iter()
                .filter(|e| !options.poll || system.read(*e).is_some_and(|r| r.follows_feed))
                .collect();
            let results = join_all(entities.iter().map(|&e| sync_entity(&run, e))).await;
            for (&entity, result) in entities.iter().zip(results) {
                match result {
                    Ok(report) => reports.push(report),
                    Err(err) => {
                        if failure
                            .as_ref()
                            .is_none_or(|(_, kept)| severity(&err) > severity(kept))
                        {
                            failure = Some((Some(entity), err));
                        }
                    }
                }
            }
        }
    }
    // A job lost to another worker stops at once: its successor reports the sync.
    if let Some((_, err)) = failure.take_if(|(_, err)| is_fenced(err)) {
        return Err(err);
    }
    let Some((entity, err)) = failure else {
        if options.poll {
            return Ok(reports);
        }
        if options.full {
            // Every entity was read whole and swept: the scheduler's next reconciliation is
            // due one interval from now.
            store.record_full_sync(conn, clock.now()).await?;
        }
        let mut data = report_json(&reports);
        data["full"] = json!(options.full);
        data["duration_ms"] = json!((clock.now().micros() - started.micros()) / 1000);
        let event = sync_event(org, conn, "sync.completed", data, clock);
        store
            .complete_sync(conn, ConnectionStatus::Online.as_str(), clock.now(), &event)
            .await?;
        return Ok(reports);
    };
    // A poll that failed for any reason but refused credentials says nothing the next
    // hourly sync would not: it is logged, and the next poll tries again.
    if options.poll && !matches!(err, SyncError::Connector(ConnectorError::Unauthorized)) {
        tracing::info!(connection = %conn.0, error = %safe_message(&err), "a poll of the connection's feeds failed");
        return Err(err);
    }
    // Throttling is the source being busy, not unhealthy: it is not a failed call of the
    // connection's health, and never takes the connection offline.
    if let SyncError::Connector(e) = &err
        && !matches!(e, ConnectorError::Throttled(_))
    {
        store
            .record_call_failure(
                conn,
                clock.now(),
                failure_code(e),
                connector.circuit_state().as_str(),
            )
            .await?;
    }
    let status = match &err {
        SyncError::Connector(ConnectorError::Unauthorized) => {
            ConnectionStatus::ReauthorizationRequired
        }
        // Unreachable is `offline` once it is more than a blip: the circuit opened, or
        // several syncs in a row failed. Until then the connection keeps the settled state
        // it had.
        SyncError::Connector(ConnectorError::Upstream(_)) => {
            let failures = store
                .get_connection(org, conn)
                .await
                .map(|c| c.consecutive_errors)
                .unwrap_or(0);
            if connector.circuit_state() != CircuitState::Closed
                || failures >= OFFLINE_AFTER_FAILURES
            {
                ConnectionStatus::Offline
            } else {
                settled(&before.status)
            }
        }
        _ => settled(&before.status),
    };
    let code = match &err {
        SyncError::Connector(e) => failure_code(e),
        SyncError::Store(e) => {
            // The event says only "see the logs": this is the log it points to.
            tracing::warn!(connection = %conn.0, entity = ?entity.map(Entity::as_str), error = %e, "a sync could not store its data");
            "STORE_ERROR"
        }
    };
    let mut data = report_json(&reports);
    data["full"] = json!(options.full);
    if options.poll {
        data["poll"] = json!(true);
    }
    data["entity"] = json!(entity.map(Entity::as_str));
    data["error"] = json!({"code": code, "message": safe_message(&err)});
    data["duration_ms"] = json!((clock.now().micros() - started.micros()) / 1000);
    let event = sync_event(org, conn, "sync.failed", data, clock);
    store
        .set_connection_status(conn, status.as_str(), clock.now(), Some(&event))
        .await?;
    Err(err)
}

/// How much a failure says about the connection: the one reported for a sync is the most
/// telling of its entities' failures.
fn severity(err: &SyncError) -> u8 {
    match err {
        SyncError::Store(StoreError::Fenced) => 4,
        SyncError::Connector(ConnectorError::Unauthorized) => 3,
        SyncError::Connector(ConnectorError::Upstream(_)) => 2,
        SyncError::Connector(_) => 1,
        SyncError::Store(_) => 0,
    }
}

/// The state a connection returns to after a failed sync that says nothing new about it.
fn settled(before: &str) -> ConnectionStatus {
    match before {
        "offline" => ConnectionStatus::Offline,
        "reauthorization_required" => ConnectionStatus::ReauthorizationRequired,
        _ => ConnectionStatus::Online,
    }
}

/// What an event may say about a failure: connector messages are written to be shown;
/// storage errors are not.
pub(crate) fn safe_message(err: &SyncError) -> String {
    match err {
        SyncError::Connector(ConnectorError::Upstream(_)) => {
            "The source system could not be reached.".into()
        }
        SyncError::Connector(ConnectorError::Throttled(_)) => {
            "The source system kept limiting the rate of requests; the sync goes on from where it stopped at its next attempt.".into()
        }
        // A setting of the connection: named, as an API refusal names it.
        SyncError::Connector(ConnectorError::InvalidSettings { param, message }) => {
            format!("`{param}` {message}")
        }
        SyncError::Connector(e) => e.to_string(),
        SyncError::Store(_) => "Ironbridge could not store the data; see the logs.".into(),
    }
}
