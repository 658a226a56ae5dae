//! The per-organization API request log, kept cheap: a request only appends to a buffer in
//! memory; a background task writes the buffer in one transaction every second (or sooner
//! when it fills), and deletes entries older than the retention once an hour. A crash loses
//! at most the last second of the log, never a request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironbridge_core::Clock;
use ironbridge_core::store::{RequestLogEntry, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Entries buffered before a write is started early.
const EARLY_FLUSH: usize = 500;
/// Entries kept at most while the database is unreachable; older ones are dropped.
const MAX_BUFFERED: usize = 50_000;

/// The organization a request's credential belongs to, set on the response by the
/// authentication layer so the request is logged under it.
#[derive(Debug, Clone)]
pub struct LoggedOrg(pub String);

/// The buffer of entries not yet written.
#[derive(Default)]
pub struct RequestLog {
    pending: Mutex<Vec<RequestLogEntry>>,
    full: Notify,
    /// Serializes writers, so a flush that returns has written everything pushed before it.
    writing: tokio::sync::Mutex<()>,
}

impl RequestLog {
    /// Adds an entry (never waits for the database).
    pub fn push(&self, entry: RequestLogEntry) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_BUFFERED {
            pending.remove(0);
        }
        pending.push(entry);
        if pending.len() >= EARLY_FLUSH {
            self.full.notify_one();
        }
    }

    /// Writes what is buffered now (the dashboard calls it before reading the log, so a page
    /// shows the requests made until it was asked for).
    pub async fn flush(&self, store: &dyn Store) {
        let _writer = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.write_request_log(&batch).await {
            tracing::warn!(error = %e.chain(), entries = batch.len(), "cannot write the request log; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let newer = std::mem::take(&mut *pending);
            *pending = batch;
            pending.extend(newer);
        }
    }
}

/// Writes the log every second and purges it hourly until shutdown, then writes what is
/// left.
pub async fn upkeep(
    log: Arc<RequestLog>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = log.full.notified() => {}
        }
        log.flush(store.as_ref()).await;
        ticks += 1;
        if ticks % 3600 == 1 {
            let keep = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            match store.purge_request_log(clock.now().plus_secs(-keep)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "purged the request log"),
                Err(e) => tracing::warn!(error = %e.chain(), "cannot purge the request log"),
            }
        }
    }
    log.flush(store.as_ref()).await;
}
