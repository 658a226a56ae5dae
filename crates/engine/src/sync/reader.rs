//! The readers of one entity's run: each takes a slice, pages through it, maps each page on
//! a blocking thread and hands it to the writer; a reader whose slice still has pages left
//! splits off its upper half when another reader is idle.

use std::sync::Mutex;

use ironbridge_core::connector::{Connector, ConnectorError, SourceRecord};
use ironbridge_core::ids;
use ironbridge_core::mapping::MappingDef;
use ironbridge_core::store::{ConnId, PointUpsert, RecordUpsert};
use ironbridge_model::{Entity, Storage, Timestamp};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use super::budget::MemoryBudget;
use super::plan::{Slice, Split, Work};

/// What a reader hands the writer: a page already mapped (readers map while the writer
/// waits on the database, so the two overlap).
pub(super) enum Fetched {
    Page {
        slice: usize,
        /// The page being mapped on a background thread: records and how many did not map.
        mapped: ironbridge_core::background::Background<Mapped>,
        /// Our ids of the records the page's deletion log reports deleted.
        gone: Vec<String>,
        /// Our ids of the records the source closed and removed, with its reason.
        closed: Vec<(String, String)>,
        records: usize,
        /// Held until the page is committed: bounds the pages in memory.
        _permit: OwnedSemaphorePermit,
        next_cursor: Option<String>,
        /// A feed's position once this page is the last one read.
        resume: Option<String>,
        /// What to acknowledge once the page is committed (outboxes).
        receipt: Option<String>,
        /// Told once the page is committed and acknowledged: an outbox's reader waits for
        /// it, since the outbox serves the same records until they are acknowledged.
        committed: Option<tokio::sync::oneshot::Sender<()>>,
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

/// A page mapped: records, or points for an entity stored as points, and how many raw
/// records did not map.
#[derive(Debug, Default)]
pub(super) struct Mapped {
    pub records: Vec<RecordUpsert>,
    pub points: Vec<PointUpsert>,
    pub unmappable: u64,
}

/// Maps a page's raw records; records that do not fit the mapping are logged and counted.
pub(super) fn map_page(
    conn: &ConnId,
    entity: Entity,
    def: &MappingDef,
    raw: Vec<SourceRecord>,
) -> Mapped {
    let mut out = Mapped::default();
    let points = entity.spec().storage != Storage::Records;
    for r in raw {
        let mapped = if points {
            ironbridge_core::written::point_upsert(&conn.0, entity, &r, def)
                .map(|p| out.points.push(p))
        } else {
            ironbridge_core::written::record_upsert(&conn.0, entity, r, def)
                .map(|r| out.records.push(r))
        };
        if let Err(problem) = mapped {
            out.unmappable += 1;
            tracing::warn!(connection = %conn.0, %entity, %problem, "record skipped: it does not fit the mapping");
        }
    }
    out
}

/// What every reader of one entity's run shares.
pub(super) struct Readers<'a> {
    pub connector: &'a dyn Connector,
    pub conn: &'a ConnId,
    pub entity: Entity,
    pub def: &'static MappingDef,
    pub work: &'a Mutex<Work>,
    /// Signalled when a slice advances or ends: a reader waiting for work looks again.
    pub changed: &'a Notify,
    /// The sync's memory budget: each page holds its share until it is committed.
    pub budget: &'a MemoryBudget,
    /// Reads wait for each page's commit (outboxes).
    pub in_step: bool,
}

impl Readers<'_> {
    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads slices until none is left to read or to split, sending each page to the writer;
/// stops when the writer has gone (it failed).
pub(super) async fn read_slices(shared: &Readers<'_>, pages: mpsc::Sender<Fetched>) {
    let Readers {
        connector,
        conn,
        entity,
        def,
        changed,
        budget,
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
            let Some(permit) = budget.reserve().await else {
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
                    let permit = budget.settle(permit, page.bytes());
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
                    // Mapping is CPU work: on a background thread it runs beside the other
                    // readers' parsing and the writer, and this reader asks for its next page
                    // at once instead of waiting for it. Background threads yield to the
                    // API's requests.
                    let raw = page.records;
                    let records = raw.len() + page.deleted.len() + page.closed.len();
                    let gone = page
                        .deleted
                        .iter()
                        .map(|remote| ids::record_id(&conn.0, entity, remote))
                        .collect();
                    let closed = page
                        .closed
                        .into_iter()
                        .map(|c| (ids::record_id(&conn.0, entity, &c.key), c.remote_status))
                        .collect();
                    let owner = conn.clone();
                    let mapped = ironbridge_core::background::run(move || {
                        map_page(&owner, entity, def, raw)
                    });
                    let (committed, wait) = if shared.in_step {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        (Some(tx), Some(rx))
                    } else {
                        (None, None)
                    };
                    let fetched = Fetched::Page {
                        slice: index,
                        mapped,
                        gone,
                        closed,
                        records,
                        _permit: permit,
                        next_cursor: page.next_cursor,
                        resume: page.resume,
                        receipt: page.receipt,
                        committed,
                    };
                    if pages.send(fetched).await.is_err() {
                        return;
                    }
                    if let Some(wait) = wait
                        && wait.await.is_err()
                    {
                        // The writer stopped (it failed): nothing more to read.
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
