//! The sync runner: pages through every readable entity of a connection, maps each raw
//! record and commits each page together with its checkpoint, so a crash resumes from the
//! last committed page and never loses or doubles a record.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, ReadWindow};
use ironbridge_core::crypto::sha256_hex_joined;
use ironbridge_core::ids;
use ironbridge_core::mapping::default_mapping;
use ironbridge_core::store::{
    ConnId, Event, OrgId, PageWrite, RecordUpsert, Store, StoreError, SyncState, WriteCounts,
};
use ironbridge_model::api::{CircuitState, ConnectionStatus};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

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

fn upsert(
    connection_id: &str,
    entity: Entity,
    raw: &Value,
    def: &ironbridge_core::mapping::MappingDef,
) -> Result<RecordUpsert, String> {
    let mapped = def.apply(connection_id, raw).map_err(|e| e.to_string())?;
    let data = Value::Object(ironbridge_core::unified::complete(entity, mapped.data)).to_string();
    let raw = raw.to_string();
    let content_hash = sha256_hex_joined(&[data.as_bytes(), raw.as_bytes()]);
    Ok(RecordUpsert {
        id: ids::record_id(connection_id, entity, &mapped.remote_id),
        remote_id: mapped.remote_id,
        data,
        raw,
        content_hash,
        remote_created_at: mapped.remote_created_at,
        remote_updated_at: mapped.remote_updated_at,
        remote_was_deleted: mapped.remote_was_deleted,
    })
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
/// Pages a sync may hold in memory beyond one per reader (being written or waiting).
pub const PAGES_IN_MEMORY_BEYOND_READERS: usize = 2;
/// Readers beyond the connection's concurrency limit (they wait for a slot, never exceed it).
pub const READERS_BEYOND_CONCURRENCY: usize = 2;
/// Records at most that waiting pages add to one transaction (group commit).
pub const GROUP_COMMIT_RECORDS: usize = 2_000;
/// Slices per concurrent reader: more slices than readers keep every reader busy when the
/// data is unevenly spread over time.
pub const SLICES_PER_READER: usize = 4;

/// How to run a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Read every entity whole (a resync or a reconciliation): records the source no longer
    /// has are marked deleted once each pass completes.
    pub full: bool,
    /// Days of history of the first sync (`None`: the connector's default).
    pub history_days: Option<u32>,
    /// Reads in flight at most (`None`: the connector's documented concurrency).
    pub max_concurrency: Option<usize>,
}

/// Picks the window of a new run: everything on a full run; on the first run, the history
/// window for transactions and everything for reference data; otherwise from the last
/// high-water mark minus the lookback.
/// The upper bound is `now` (the source's clock read when the sync began) minus the settle
/// delay.
fn new_window(
    connector: &dyn Connector,
    entity: Entity,
    state: &SyncState,
    options: &SyncOptions,
    now: Timestamp,
) -> ReadWindow {
    let until = now.plus_secs(-SETTLE_SECS);
    // Reference data (vendors, items, locations) is wanted whole the first time, whatever its
    // age; later runs read only what changed, like everything else.
    let reference = matches!(entity, Entity::Vendor | Entity::Item | Entity::Location);
    let since = if options.full {
        None
    } else if let Some(hw) = state.high_water {
        Some(hw.plus_secs(-LOOKBACK_SECS))
    } else if reference {
        None
    } else {
        options
            .history_days
            .or_else(|| connector.default_history_days())
            .map(|days| now.plus_secs(-i64::from(days) * 86_400))
    };
    ReadWindow {
        modified_since: since,
        modified_until: Some(until),
    }
}

/// The source's "now": its clock as of the sync's opening call, never ahead of ours.
async fn source_now(connector: &dyn Connector, clock: &dyn Clock) -> Result<Timestamp, SyncError> {
    let ours = clock.now();
    Ok(match connector.source_time().await? {
        Some(theirs) => theirs.min(ours),
        None => ours,
    })
}

/// Calls the connection may have in flight: the option, or the system's documented limit.
fn permitted_calls(connector: &dyn Connector, options: &SyncOptions) -> usize {
    options
        .max_concurrency
        .unwrap_or_else(|| connector.read_concurrency())
        .max(1)
}

/// One part of a run's window, read by keyset on its own, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Slice {
    /// Lower bound (µs, inclusive).
    #[serde(rename = "s")]
    since: Option<i64>,
    /// Upper bound (µs, inclusive).
    #[serde(rename = "u")]
    until: Option<i64>,
    /// The connector's cursor after the last committed page.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// Every page committed.
    #[serde(rename = "d", default)]
    done: bool,
}

impl Slice {
    fn whole(window: &ReadWindow, cursor: Option<String>) -> Slice {
        Slice {
            since: window.modified_since.map(Timestamp::micros),
            until: window.modified_until.map(Timestamp::micros),
            cursor,
            done: false,
        }
    }

    /// An empty range, done: holds a split's place in the plan until the split is recorded.
    fn placeholder() -> Slice {
        Slice {
            since: Some(1),
            until: Some(0),
            cursor: None,
            done: true,
        }
    }

    fn window(&self) -> ReadWindow {
        ReadWindow {
            modified_since: self.since.map(Timestamp),
            modified_until: self.until.map(Timestamp),
        }
    }
}

/// Checkpoints of a sliced run start with this; anything else is a single connector cursor.
const PLAN_PREFIX: &str = "slices1:";

fn encode_plan(slices: &[Slice]) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    format!(
        "{PLAN_PREFIX}{}",
        serde_json::to_string(slices).unwrap_or_default()
    )
}

/// The slices of a run resumed from its stored window and checkpoint.
fn decode_plan(window: &ReadWindow, checkpoint: Option<&str>) -> Vec<Slice> {
    match checkpoint {
        Some(text) => match text.strip_prefix(PLAN_PREFIX) {
            Some(json) => {
                serde_json::from_str(json).unwrap_or_else(|_| vec![Slice::whole(window, None)])
            }
            None => vec![Slice::whole(window, Some(text.to_string()))],
        },
        None => vec![Slice::whole(window, None)],
    }
}

const SECOND: i64 = 1_000_000;

/// Splits a new run's window into slices of equal length, so `readers` reads can be in
/// flight at once. Boundaries are whole seconds and slices do not overlap: slice k covers
/// `(b[k-1], b[k]]`, so every source precision (seconds, milliseconds) reads each instant
/// in exactly one slice. The first slice keeps the window's open lower bound, so records
/// older than the oldest one found are still read.
async fn plan_slices(
    connector: &dyn Connector,
    entity: Entity,
    window: &ReadWindow,
    readers: usize,
) -> Result<Vec<Slice>, SyncError> {
    let single = || vec![Slice::whole(window, None)];
    let Some(until) = window.modified_until else {
        return Ok(single());
    };
    if readers <= 1 || !connector.filters_by_time(entity) {
        return Ok(single());
    }
    let lower = match window.modified_since {
        Some(since) => since,
        None => match connector.oldest_change(entity).await? {
            Some(oldest) => oldest,
            None => return Ok(single()),
        },
    };
    let span = until.micros() - lower.micros();
    if span < SLICE_MIN_WINDOW_SECS * SECOND {
        return Ok(single());
    }
    let n = i64::try_from(readers * SLICES_PER_READER)
        .unwrap_or(1)
        .max(1);
    let mut bounds = Vec::with_capacity(n as usize);
    for k in 1..n {
        let b = (lower.micros() + span / n * k).div_euclid(SECOND) * SECOND;
        if bounds.last().is_none_or(|&last| b > last) {
            bounds.push(b);
        }
    }
    let mut slices = Vec::with_capacity(bounds.len() + 1);
    let mut since = window.modified_since.map(Timestamp::micros);
    for b in bounds {
        slices.push(Slice {
            since,
            until: Some(b),
            cursor: None,
            done: false,
        });
        since = Some(b + 1);
    }
    slices.push(Slice {
        since,
        until: Some(until.micros()),
        cursor: None,
        done: false,
    });
    Ok(slices)
}

/// What a reader hands the writer: a page already mapped (readers map while the writer
/// waits on the database, so the two overlap).
enum Fetched {
    Page {
        slice: usize,
        /// The page being mapped on a blocking thread: records and how many did not map.
        mapped: tokio::task::JoinHandle<(Vec<RecordUpsert>, u64)>,
        records: usize,
        /// Held until the page is committed: bounds the pages in memory.
        _permit: OwnedSemaphorePermit,
        next_cursor: Option<String>,
    },
    /// A reader took over the upper part of slice `victim`, which now ends at `until`.
    Split {
        victim: usize,
        until: i64,
        index: usize,
        slice: Slice,
    },
    Failed(ConnectorError),
}

/// Maps a page's raw records; records that do not fit the mapping are logged and counted.
fn map_page(
    conn: &ConnId,
    entity: Entity,
    def: &ironbridge_core::mapping::MappingDef,
    raw: &[Value],
) -> (Vec<RecordUpsert>, u64) {
    let mut records = Vec::with_capacity(raw.len());
    let mut unmappable = 0;
    for r in raw {
        match upsert(&conn.0, entity, r, def) {
            Ok(r) => records.push(r),
            Err(problem) => {
                unmappable += 1;
                tracing::warn!(connection = %conn.0, %entity, %problem, "record skipped: it does not fit the mapping");
            }
        }
    }
    (records, unmappable)
}

/// The slices of one entity's run as its readers share them: which wait, which are being
/// read and how far, so a slice still being read can hand its upper part to a reader left
/// without work (slices of equal length rarely hold equal amounts of data).
struct Work {
    slices: Vec<Slice>,
    queue: VecDeque<usize>,
    /// Per slice: being read, and how far (when the connector's cursor tells).
    live: Vec<Live>,
    /// Readers waiting for work.
    idle: usize,
    /// Slices split off but not yet in the queue (their split is on its way to the writer).
    pending: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Live {
    running: bool,
    /// Where the count of records below starts: the position after the first page (the
    /// slice's lower bound says nothing of where its records begin).
    origin: Option<i64>,
    /// Records read since `origin`.
    read: u64,
    /// The largest page seen.
    page: u64,
}

/// The upper part of a slice, split off it at a page boundary.
#[derive(Debug)]
struct Split {
    /// Where the slice now ends.
    until: i64,
    /// The new slice's place in the plan.
    index: usize,
    slice: Slice,
}

impl Work {
    fn new(plan: &[Slice]) -> Work {
        Work {
            slices: plan.to_vec(),
            queue: (0..plan.len()).filter(|&i| !plan[i].done).collect(),
            live: vec![Live::default(); plan.len()],
            idle: 0,
            pending: 0,
        }
    }

    /// The next slice in the queue and its cursor.
    fn take(&mut self) -> Option<(usize, Option<String>)> {
        let index = self.queue.pop_front()?;
        self.live[index].running = true;
        Some((index, self.slices[index].cursor.clone()))
    }

    /// Whether a reader without work should wait: a slice may still be split.
    fn may_split_later(&self) -> bool {
        self.pending > 0 || self.live.iter().any(|l| l.running)
    }

    /// A page of `records` was read from slice `index`, whose cursor now stands at
    /// `position` (the last record read; the next page starts after it). If a reader is
    /// waiting for work and the slice still has two pages or more to read (estimated from
    /// its pages so far), its upper half is split off: at a whole second strictly after
    /// `position`, so no record read is in the new slice and no instant is in both.
    fn advanced(&mut self, index: usize, records: u64, position: Option<i64>) -> Option<Split> {
        let live = &mut self.live[index];
        live.page = live.page.max(records);
        match live.origin {
            Some(_) => live.read += records,
            None => live.origin = position,
        }
        if self.idle <= self.pending + self.queue.len() {
            return None;
        }
        let (Some(p), Some(origin), Some(u)) = (position, live.origin, self.slices[index].until)
        else {
            return None;
        };
        if p <= origin || live.read == 0 {
            return None;
        }
        let left = live.read as f64 / (p - origin) as f64 * (u - p) as f64;
        let middle = (p + (u - p) / 2).div_euclid(SECOND) * SECOND;
        if left < 2.0 * live.page as f64 || middle <= p || middle >= u {
            return None;
        }
        let slice = Slice {
            since: Some(middle + 1),
            until: Some(u),
            cursor: None,
            done: false,
        };
        self.slices[index].until = Some(middle);
        self.slices.push(slice.clone());
        self.live.push(Live::default());
        self.pending += 1;
        Some(Split {
            until: middle,
            index: self.slices.len() - 1,
            slice,
        })
    }

    /// The split-off slice `index` is recorded with the writer: readers may take it.
    fn publish(&mut self, index: usize) {
        self.pending -= 1;
        self.queue.push_back(index);
    }

    fn finished(&mut self, index: usize) {
        self.live[index].running = false;
    }
}

/// What every reader of one entity's run shares.
struct Readers<'a> {
    connector: &'a dyn Connector,
    conn: &'a ConnId,
    entity: Entity,
    def: &'static ironbridge_core::mapping::MappingDef,
    work: &'a Mutex<Work>,
    /// Signalled when a slice advances or ends: a reader waiting for work looks again.
    changed: &'a Notify,
    in_memory: Arc<Semaphore>,
}

impl Readers<'_> {
    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads slices until none is left to read or to split, sending each page to the writer;
/// stops when the writer has gone (it failed).
async fn read_slices(shared: &Readers<'_>, pages: mpsc::Sender<Fetched>) {
    let Readers {
        connector,
        conn,
        entity,
        def,
        changed,
        ref in_memory,
        ..
    } = *shared;
    loop {
        let (index, mut cursor) = loop {
            // Registered before looking, so a change between the look and the wait is seen.
            let notified = changed.notified();
            {
                let mut work = shared.work();
                if let Some(taken) = work.take() {
                    break taken;
                }
                if !work.may_split_later() {
                    return;
                }
                work.idle += 1;
            }
            notified.await;
            shared.work().idle -= 1;
        };
        loop {
            // A page is in memory from its fetch until its commit; wait for room first.
            let Ok(permit) = in_memory.clone().acquire_owned().await else {
                return;
            };
            // Read at every page: a split may have narrowed the slice.
            let window = shared.work().slices[index].window();
            let fetching = std::time::Instant::now();
            match connector
                .fetch_page(entity, &window, cursor.as_deref())
                .await
            {
                Ok(page) => {
                    let fetched_in = fetching.elapsed();
                    let next = page.next_cursor.clone();
                    tracing::debug!(connection = %conn.0, %entity, slice = index, records = page.records.len(), fetch_ms = fetched_in.as_millis() as u64, "page read");
                    let position = next
                        .as_deref()
                        .and_then(|c| connector.cursor_position(entity, c))
                        .map(Timestamp::micros);
                    let split = shared
                        .work()
                        .advanced(index, page.records.len() as u64, position);
                    if let Some(Split {
                        until,
                        index: new,
                        slice,
                    }) = split
                    {
                        tracing::debug!(connection = %conn.0, %entity, slice = index, new, "slice split");
                        // The writer learns of the split before any page of the new slice
                        // (which is queued only once this is sent), so a checkpoint never
                        // holds the new slice without the narrowed one.
                        let message = Fetched::Split {
                            victim: index,
                            until,
                            index: new,
                            slice,
                        };
                        if pages.send(message).await.is_err() {
                            return;
                        }
                        shared.work().publish(new);
                        changed.notify_waiters();
                    }
                    // Mapping is CPU work: on a blocking thread it runs beside the other
                    // readers' parsing and the writer, and this reader asks for its next page
                    // at once instead of waiting for it.
                    let raw = page.records;
                    let records = raw.len();
                    let owner = conn.clone();
                    let mapped =
                        tokio::task::spawn_blocking(move || map_page(&owner, entity, def, &raw));
                    let fetched = Fetched::Page {
                        slice: index,
                        mapped,
                        records,
                        _permit: permit,
                        next_cursor: page.next_cursor,
                    };
                    if pages.send(fetched).await.is_err() {
                        return;
                    }
                    match next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                Err(err) => {
                    let _ = pages.send(Fetched::Failed(err)).await;
                    return;
                }
            }
        }
        shared.work().finished(index);
        changed.notify_waiters();
    }
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
    /// Pages in memory at once across all entities (fetched, mapped, waiting or written).
    in_memory: Arc<Semaphore>,
}

async fn sync_entity(run: &SyncRun<'_>, entity: Entity) -> Result<EntityReport, SyncError> {
    let SyncRun {
        store,
        connector,
        conn,
        options,
        clock,
        source_now,
        ref in_memory,
    } = *run;
    let mut report = EntityReport {
        entity: Some(entity),
        ..Default::default()
    };
    let Some(def) = default_mapping(connector.system(), entity) else {
        return Ok(report);
    };
    let permitted = permitted_calls(connector, options);
    let state = store.start_sync(conn, entity, clock.now()).await?;
    // An unfinished run resumes with its own window and checkpoint; otherwise a new run starts.
    let (run_id, window, plan) = match (&state.run_id, options.full) {
        (Some(run), false) => {
            let window = ReadWindow {
                modified_since: state.window_since,
                modified_until: state.window_until,
            };
            let plan = decode_plan(&window, state.cursor.as_deref());
            (run.clone(), window, plan)
        }
        _ => {
            let window = new_window(connector, entity, &state, options, source_now);
            let plan = match plan_slices(connector, entity, &window, permitted).await {
                Ok(p) => p,
                Err(err) => return fail(store, conn, entity, clock, err).await,
            };
            let run = ids::new_id("run", clock.now().micros());
            store
                .begin_window(
                    conn,
                    entity,
                    &run,
                    window.modified_since,
                    window.modified_until,
                )
                .await?;
            (run, window, plan)
        }
    };
    // Only a pass over everything can tell which records disappeared.
    let complete_pass = window.modified_since.is_none();
    let work = Mutex::new(Work::new(&plan));
    let changed = Notify::new();
    // A reader between calls is parsing or assembling its page; spare readers keep a call
    // waiting for every slot that frees meanwhile (the client never exceeds the limit).
    // Where slices can be split while read, readers beyond the plan's slices take over
    // parts of them.
    let splittable =
        permitted > 1 && connector.filters_by_time(entity) && window.modified_until.is_some();
    let readers = if splittable {
        permitted + READERS_BEYOND_CONCURRENCY
    } else {
        (permitted + READERS_BEYOND_CONCURRENCY)
            .min(plan.len())
            .max(1)
    };
    let (sender, mut receiver) = mpsc::channel::<Fetched>(readers);
    let shared = Readers {
        connector,
        conn,
        entity,
        def,
        work: &work,
        changed: &changed,
        in_memory: in_memory.clone(),
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
    // The one writer: maps each page and commits it with the whole plan as its checkpoint,
    // so a restart resumes every slice from its last committed page.
    let written = {
        let writing = async {
            let mut progress = plan.clone();
            let mut last_success: Option<Timestamp> = None;
            while let Some(first) = receiver.recv().await {
                // Pages already waiting join this one in the same transaction (group commit):
                // small pages do not each pay for a commit, and the checkpoint written is the
                // plan after all of them, so atomicity is unchanged.
                let mut batch = vec![first];
                let mut queued: usize = 0;
                while queued < GROUP_COMMIT_RECORDS {
                    match receiver.try_recv() {
                        Ok(more) => {
                            if let Fetched::Page { records, .. } = &more {
                                queued += records;
                            }
                            batch.push(more);
                        }
                        Err(_) => break,
                    }
                }
                let mut records = Vec::new();
                let mut failure = None;
                for fetched in batch {
                    match fetched {
                        Fetched::Page {
                            slice,
                            mapped,
                            next_cursor,
                            ..
                        } => {
                            let Ok((page, unmappable)) = mapped.await else {
                                failure =
                                    Some(ConnectorError::Upstream("mapping a page failed".into()));
                                break;
                            };
                            report.pages += 1;
                            report.unmappable += unmappable;
                            progress[slice].done = next_cursor.is_none();
                            progress[slice].cursor = next_cursor;
                            records.extend(page);
                        }
                        Fetched::Split {
                            victim,
                            until,
                            index,
                            slice,
                        } => {
                            progress[victim].until = Some(until);
                            if progress.len() <= index {
                                // Another split's slot, filled when its message arrives:
                                // until then its range is still its victim's.
                                progress.resize(index + 1, Slice::placeholder());
                            }
                            progress[index] = slice;
                            report.splits += 1;
                        }
                        Fetched::Failed(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
                let now = clock.now();
                if !records.is_empty() || failure.is_none() {
                    // Health needs the last successful call, not every one: one write a second.
                    if last_success.is_none_or(|t| now.micros() - t.micros() >= SECOND) {
                        store.record_call_success(conn, now).await?;
                        last_success = Some(now);
                    }
                    let checkpoint = if progress.len() == 1 {
                        progress[0].cursor.clone()
                    } else {
                        Some(encode_plan(&progress))
                    };
                    let page_write = PageWrite {
                        entity,
                        records,
                        checkpoint,
                        now,
                        seen_run: complete_pass.then(|| run_id.clone()),
                    };
                    let writing = std::time::Instant::now();
                    let counts = store.write_page(conn, &page_write).await?;
                    tracing::debug!(connection = %conn.0, %entity, records = page_write.records.len(), write_ms = writing.elapsed().as_millis() as u64, "pages written");
                    report.counts.added += counts.added;
                    report.counts.updated += counts.updated;
                    report.counts.deleted += counts.deleted;
                    report.counts.unchanged += counts.unchanged;
                }
                if let Some(err) = failure {
                    return Err(SyncError::Connector(err));
                }
            }
            Ok(())
        };
        tokio::pin!(writing);
        // The writer ends first only when it failed; the readers still in flight are dropped.
        tokio::select! {
            result = &mut writing => result,
            () = reading => writing.await,
        }
    };
    match written {
        Ok(()) => {}
        Err(err @ SyncError::Connector(_)) => {
            return fail(store, conn, entity, clock, err).await;
        }
        Err(err) => {
            let _ = store
                .finish_sync(conn, entity, clock.now(), Some(&err.to_string()))
                .await;
            return Err(err);
        }
    }
    if complete_pass && report.unmappable == 0 {
        report.counts.deleted += store
            .sweep_unseen(conn, entity, &run_id, clock.now())
            .await?;
    }
    store.finish_sync(conn, entity, clock.now(), None).await?;
    Ok(report)
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
        .finish_sync(conn, entity, clock.now(), Some(&err.to_string()))
        .await?;
    Err(err)
}

fn failure_code(err: &ConnectorError) -> &'static str {
    match err {
        ConnectorError::Unauthorized => "AUTHENTICATION_FAILED",
        ConnectorError::Upstream(_) => "UPSTREAM_UNAVAILABLE",
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

fn sync_event(
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
    store
        .set_connection_status(conn, ConnectionStatus::Syncing.as_str(), started, None)
        .await?;
    let mut reports = Vec::new();
    // The first failure in entity order, preferring the one that says most about the
    // connection (refused credentials, then an unreachable source).
    let mut failure: Option<(Option<Entity>, SyncError)> = None;
    let opened = async {
        connector.check().await?;
        source_now(connector, clock).await
    };
    match opened.await {
        Err(err) => failure = Some((None, err)),
        Ok(now) => {
            let readers = permitted_calls(connector, options) + READERS_BEYOND_CONCURRENCY;
            // Pages in memory at once are bounded for the whole sync, so memory is
            // `pages × page size` however large the sync and however many entities.
            let run = SyncRun {
                store,
                connector,
                conn,
                options,
                clock,
                source_now: now,
                in_memory: Arc::new(Semaphore::new(readers + PAGES_IN_MEMORY_BEYOND_READERS)),
            };
            let entities = connector.readable();
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
    let Some((entity, err)) = failure else {
        if options.full {
            // Every entity was read whole and swept: the scheduler's next reconciliation is
            // due one interval from now.
            store.record_full_sync(conn, clock.now()).await?;
        }
        let mut data = report_json(&reports);
        data["duration_ms"] = json!((clock.now().micros() - started.micros()) / 1000);
        let event = sync_event(org, conn, "sync.completed", data, clock);
        store
            .set_connection_status(
                conn,
                ConnectionStatus::Online.as_str(),
                clock.now(),
                Some(&event),
            )
            .await?;
        return Ok(reports);
    };
    if let SyncError::Connector(e) = &err {
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
        SyncError::Store(_) => "STORE_ERROR",
    };
    let mut data = report_json(&reports);
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
        SyncError::Connector(e) => e.to_string(),
        SyncError::Store(_) => "Ironbridge could not store the data; see the logs.".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ironbridge_core::ManualClock;
    use ironbridge_core::sandbox::{SandboxConnector, data};
    use serde_json::Map;

    use super::*;

    fn sandbox() -> SandboxConnector {
        let clock = ManualClock::new(data::anchor().plus_secs(86_400));
        SandboxConnector::new(&Map::new(), None, Arc::new(clock)).unwrap()
    }

    fn assert_tiles(slices: &[Slice], window: &ReadWindow) {
        assert_eq!(
            slices.first().unwrap().since,
            window.modified_since.map(Timestamp::micros)
        );
        assert_eq!(
            slices.last().unwrap().until,
            window.modified_until.map(Timestamp::micros)
        );
        for pair in slices.windows(2) {
            let end = pair[0].until.unwrap();
            assert_eq!(end % SECOND, 0, "inner bounds are whole seconds");
            assert_eq!(pair[1].since, Some(end + 1), "no gap and no overlap");
            assert!(pair[1].until.unwrap() > end);
        }
    }

    #[tokio::test]
    async fn long_windows_split_into_slices_that_tile_them() {
        let c = sandbox();
        let until = data::anchor();
        let window = ReadWindow {
            modified_since: Some(until.plus_secs(-90 * 86_400)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PurchaseOrder, &window, 3)
            .await
            .unwrap();
        assert_eq!(slices.len(), 3 * SLICES_PER_READER);
        assert_tiles(&slices, &window);

        // All history: the oldest change sets the scale, the first slice stays open below.
        let all = ReadWindow {
            modified_since: None,
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PurchaseOrder, &all, 2)
            .await
            .unwrap();
        assert_eq!(slices.len(), 2 * SLICES_PER_READER);
        assert_tiles(&slices, &all);
    }

    #[tokio::test]
    async fn short_windows_and_single_readers_read_in_one_pass() {
        let c = sandbox();
        let until = data::anchor();
        let short = ReadWindow {
            modified_since: Some(until.plus_secs(-3600)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PurchaseOrder, &short, 5)
            .await
            .unwrap();
        assert_eq!(slices, vec![Slice::whole(&short, None)]);
        let long = ReadWindow {
            modified_since: Some(until.plus_secs(-90 * 86_400)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PurchaseOrder, &long, 1)
            .await
            .unwrap();
        assert_eq!(slices, vec![Slice::whole(&long, None)]);
    }

    #[test]
    fn a_slice_with_pages_left_hands_its_upper_half_to_an_idle_reader() {
        let slice = |since: i64, until: i64| Slice {
            since: Some(since * SECOND),
            until: Some(until * SECOND),
            cursor: None,
            done: false,
        };
        let mut work = Work::new(&[slice(0, 1_000), slice(1_001, 2_000)]);
        for index in 0..2 {
            assert_eq!(work.take().map(|t| t.0), Some(index));
        }
        assert!(work.take().is_none());
        // No reader is waiting: nothing is split, however much is left.
        assert!(work.advanced(0, 10, Some(100 * SECOND)).is_none());
        assert!(work.advanced(0, 10, Some(150 * SECOND)).is_none());
        work.idle = 1;
        // Slice 1: 10 records in 900 s so far, 50 s left (about 1 record): not worth a page.
        assert!(work.advanced(1, 10, Some(1_050 * SECOND)).is_none());
        assert!(work.advanced(1, 10, Some(1_950 * SECOND)).is_none());
        // Slice 0: 20 records in 150.5 s, 749.5 s left: about 100 records, split at a
        // whole second halfway through what is left.
        let split = work.advanced(0, 10, Some(250 * SECOND + 500_000)).unwrap();
        assert_eq!(split.until, 625 * SECOND);
        assert_eq!(split.index, 2);
        assert_eq!(work.slices[0].until, Some(split.until));
        assert_eq!(
            split.slice.since,
            Some(split.until + 1),
            "no instant in both"
        );
        assert_eq!(split.slice.until, Some(1_000 * SECOND));
        // Not taken until the writer has been told; then once.
        assert!(work.take().is_none());
        assert!(work.may_split_later());
        assert!(
            work.advanced(0, 10, Some(260 * SECOND)).is_none(),
            "one waiting reader, one split"
        );
        work.publish(split.index);
        assert_eq!(work.take().map(|t| t.0), Some(2));
        work.idle = 0;
        for index in 0..3 {
            work.finished(index);
        }
        assert!(!work.may_split_later(), "readers without work may stop");
    }

    #[test]
    fn plans_round_trip_and_plain_cursors_resume_as_one_slice() {
        let window = ReadWindow {
            modified_since: Some(Timestamp(5 * SECOND)),
            modified_until: Some(Timestamp(50 * SECOND)),
        };
        let plan = vec![
            Slice {
                since: Some(5 * SECOND),
                until: Some(20 * SECOND),
                cursor: Some("abc".into()),
                done: false,
            },
            Slice {
                since: Some(20 * SECOND + 1),
                until: Some(50 * SECOND),
                cursor: None,
                done: true,
            },
        ];
        let text = encode_plan(&plan);
        assert!(text.starts_with(PLAN_PREFIX));
        assert_eq!(decode_plan(&window, Some(&text)), plan);
        assert_eq!(
            decode_plan(&window, Some("200")),
            vec![Slice::whole(&window, Some("200".into()))]
        );
        assert_eq!(
            decode_plan(&window, None),
            vec![Slice::whole(&window, None)]
        );
    }
}
