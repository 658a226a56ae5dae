//! The one writer of an entity's run: commits each page the readers hand it together with
//! the whole slice plan as its checkpoint (pages already waiting join the same transaction),
//! so a restart resumes every slice from its last committed page; acknowledges outbox pages
//! once they are committed; lays partial records over what is stored for them.

use std::collections::HashMap;

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::partial;
use ironbridge_core::store::{ConnId, PageWrite, Store, StoreError, StoredPayload, WriteCounts};
use ironbridge_core::system::Payload;
use ironbridge_model::{Entity, Timestamp};
use tokio::sync::mpsc;

use super::plan::{SECOND, Slice, encode_plan};
use super::reader::Fetched;
use super::{EntityReport, GROUP_COMMIT_RECORDS, SyncError};

/// What the writer of one run needs.
pub(super) struct Writer<'a> {
    pub store: &'a dyn Store,
    pub connector: &'a dyn Connector,
    pub conn: &'a ConnId,
    pub entity: Entity,
    pub clock: &'a dyn Clock,
    /// The run whose pass stamps the records it sees (complete passes only).
    pub seen_run: Option<String>,
    /// What every page commits as its checkpoint, instead of the plan's progress (a tail
    /// read keeps the finished pass's).
    pub checkpoint: Option<Option<String>>,
}

impl Writer<'_> {
    /// Commits pages until the readers are done; returns the plan as last committed.
    pub(super) async fn run(
        &self,
        mut receiver: mpsc::Receiver<Fetched>,
        plan: &[Slice],
        report: &mut EntityReport,
    ) -> Result<Vec<Slice>, SyncError> {
        let Writer {
            store,
            connector,
            conn,
            entity,
            clock,
            ..
        } = *self;
        let mut progress = plan.to_vec();
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
            let mut points = Vec::new();
            let mut deleted = Vec::new();
            let mut closed = Vec::new();
            let mut skipped = 0;
            let mut receipts = Vec::new();
            let mut waiting = Vec::new();
            let mut failure = None;
            for fetched in batch {
                match fetched {
                    Fetched::Page {
                        slice,
                        mapped,
                        gone,
                        closed: page_closed,
                        next_cursor,
                        resume,
                        receipt,
                        committed,
                        ..
                    } => {
                        let Ok(page) = mapped.await else {
                            failure =
                                Some(ConnectorError::Upstream("mapping a page failed".into()));
                            break;
                        };
                        report.pages += 1;
                        report.unmappable += page.unmappable;
                        skipped += page.unmappable;
                        points.extend(page.points);
                        deleted.extend(gone);
                        closed.extend(page_closed);
                        progress[slice].done = next_cursor.is_none();
                        // A feed caught up keeps where it stopped, for the next sync.
                        progress[slice].cursor = next_cursor.or(resume);
                        records.extend(page.records);
                        receipts.extend(receipt);
                        waiting.extend(committed);
                    }
                    Fetched::Split {
                        victim,
                        until,
                        index,
                        slice,
                    } => {
                        progress[victim].until = Some(until);
                        if progress.len() <= index {
                            // Another split's slot, filled when its message arrives: until
                            // then its range is still its victim's.
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
            if !records.is_empty()
                || !points.is_empty()
                || !deleted.is_empty()
                || !closed.is_empty()
                || failure.is_none()
            {
                // Health needs the last successful call, not every one: one write a second.
                if last_success.is_none_or(|t| now.micros() - t.micros() >= SECOND) {
                    store.record_call_success(conn, now).await?;
                    last_success = Some(now);
                }
                let checkpoint = match &self.checkpoint {
                    Some(fixed) => fixed.clone(),
                    None if progress.len() == 1 => progress[0].cursor.clone(),
                    None => Some(encode_plan(&progress)),
                };
                let mut page_write = PageWrite {
                    entity,
                    records,
                    checkpoint,
                    now,
                    seen_run: self.seen_run.clone(),
                    deleted,
                    closed,
                    skipped,
                    bases: Vec::new(),
                    points,
                };
                let writing = std::time::Instant::now();
                let counts = match connector.descriptor().read(entity) {
                    Some(read) if read.payload == Payload::Partial => {
                        self.write_partial(&mut page_write).await?
                    }
                    _ => store.write_page(conn, &page_write).await?,
                };
                tracing::debug!(connection = %conn.0, %entity, records = page_write.records.len() + page_write.points.len(), write_ms = writing.elapsed().as_millis() as u64, "pages written");
                report.counts.added += counts.added;
                report.counts.updated += counts.updated;
                report.counts.deleted += counts.deleted;
                report.counts.unchanged += counts.unchanged;
                crate::telemetry::records_synced(
                    connector.descriptor().id.as_str(),
                    entity.as_str(),
                    counts.added + counts.updated + counts.deleted + counts.unchanged,
                );
                // Only now may the source forget these records: a crash before this point
                // re-reads them, and the store de-duplicates them.
                for receipt in receipts {
                    connector.acknowledge(entity, &receipt).await?;
                    report.acknowledged += 1;
                }
                for reader in waiting {
                    let _ = reader.send(());
                }
            }
            if let Some(err) = failure {
                return Err(SyncError::Connector(err));
            }
        }
        Ok(progress)
    }

    /// Writes a page of partial records, each laid over the payload stored for it: what
    /// the source sends lacks members (an order's lines) that only the stored record has.
    /// A stored record that changes between the merge and the commit (a write through the
    /// API) makes the store refuse the page; it is merged again with what is stored now.
    async fn write_partial(&self, page: &mut PageWrite) -> Result<WriteCounts, SyncError> {
        let Writer {
            store,
            connector,
            conn,
            entity,
            ..
        } = *self;
        let Some(def) = connector.descriptor().mapping(entity) else {
            return Ok(store.write_page(conn, page).await?);
        };
        let parts = std::mem::take(&mut page.records);
        let mut ids: Vec<String> = parts.iter().map(|r| r.id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = store.payloads(conn, entity, &ids).await?;
            let by_id: HashMap<&str, &StoredPayload> =
                stored.iter().map(|p| (p.id.as_str(), p)).collect();
            page.bases = ids
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        by_id.get(id.as_str()).map(|p| p.content_hash.clone()),
                    )
                })
                .collect();
            page.records = parts
                .iter()
                .map(|part| match by_id.get(part.id.as_str()) {
                    None => part.clone(),
                    Some(base) => partial::merge(&conn.0, entity, def, part, &base.raw)
                        .unwrap_or_else(|problem| {
                            // Only a damaged stored payload gets here: the part stands alone.
                            tracing::warn!(connection = %conn.0, %entity, %problem, "a partial record could not be merged");
                            part.clone()
                        }),
                })
                .collect();
            match store.write_page(conn, page).await {
                Err(StoreError::Conflict(_)) if attempt < MERGE_ATTEMPTS => {
                    tracing::debug!(connection = %conn.0, %entity, attempt, "stored records changed while merging; merging again");
                }
                written => return Ok(written?),
            }
        }
    }
}

/// Times a page of partial records is merged again when stored records keep changing
/// under it (each time a write through the API committed in between).
const MERGE_ATTEMPTS: u32 = 5;
