//! The embedded SQLite store: one file, WAL journal, one writer at a time, readers in their
//! own pool, and a WAL kept bounded however many readers there are.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ironbridge_core::store::{PoolStats, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use tokio::sync::Notify;

use crate::migrate::{self, Migration};
use crate::{classify, pools};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Backend = SqliteStore;

/// SQLite has no row locks; `BEGIN IMMEDIATE` already serializes writers.
pub(crate) const LOCK_ORG: &str = "SELECT connection_credits FROM organizations WHERE id = $1";
/// SQLite has no row locks; `BEGIN IMMEDIATE` already serializes recoveries.
pub(crate) const LOCK_ENDPOINT: &str =
    "SELECT id FROM webhook_endpoints WHERE org_id = $1 AND id = $2";
/// One writer at a time (`BEGIN IMMEDIATE`): a row read in a write transaction is already
/// the writer's.
pub(crate) const FOR_UPDATE: &str = "";
/// One writer at a time (`BEGIN IMMEDIATE`): partial records need no lock of their own.
pub(crate) const LOCK_RECORDS: Option<&str> = None;
pub(crate) const MIGRATIONS: &[Migration] = migrate::SQLITE;
/// One writer at a time (`BEGIN IMMEDIATE`) already makes the claim exclusive.
pub(crate) const CLAIM_JOB: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2, lease_until = $3, updated_at = $4 ",
    "WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND ((status = 'queued' AND run_at <= $4) OR (status = 'running' AND lease_until < $4)) ",
    "ORDER BY run_at, id LIMIT 1) RETURNING ",
    job_columns!()
);
/// One writer at a time (`BEGIN IMMEDIATE`) already makes the claim exclusive.
pub(crate) const CLAIM_DELIVERIES: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_owner = $1, next_attempt_at = $2, updated_at = $3 ",
    "WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $3 ",
    "AND instr($4, ',' || d.endpoint_id || ',') = 0 ",
    replay_head!(),
    " ORDER BY d.next_attempt_at, d.id LIMIT $5) RETURNING ",
    delivery_columns!()
);
/// Whether a page's key lookup (`id IN (…)`) may be a cached prepared statement: on SQLite
/// the plan always uses the primary key.
pub(crate) const CACHE_KEY_LOOKUPS: bool = true;
pub(crate) const LOCK_MIGRATIONS: Option<&str> = None;
/// How a statement's plan is asked for, the setting that goes with it, and the column the
/// plan's lines come in.
pub(crate) const EXPLAIN: (&str, Option<&str>, &str) = ("EXPLAIN QUERY PLAN ", None, "detail");
/// One process owns a SQLite file (`serve` with every role): its in-process limits suffice.
pub(crate) const SHARED_BY_PROCESSES: bool = false;
/// Whether the job still holds its lease (one writer at a time already orders the check
/// before any takeover).
pub(crate) const FENCE_CHECK: &str = "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'";
/// SQLite reads a change feed page along its index whatever the data: nothing to set.
pub(crate) const FEED_SETUP: Option<&str> = None;
/// SQLite plans the sweep the same way whatever the data: nothing to set.
pub(crate) const SWEEP_SETUP: Option<&str> = None;
/// Marks deleted what a complete pass did not see: the run's seen keys are read into one
/// ephemeral index (a non-correlated `IN`), then each record is one lookup.
pub(crate) const SWEEP_UNSEEN: &str = "UPDATE records SET remote_was_deleted = TRUE, modified_at = $4, change_seq = $5 \
     WHERE connection_id = $1 AND entity = $2 AND remote_was_deleted = FALSE \
     AND id NOT IN (SELECT j.value FROM seen_pages s, json_each(s.ids) j WHERE s.connection_id = $1 AND s.entity = $2 AND s.run_id = $3)";

/// A record the source closed and removed ($1 connection, $2 entity, $3 id, $4 now, $5 the
/// source's reason, $6 the change number): flagged deleted, status `completed`, `remote_status` the reason.
pub(crate) const CLOSE_RECORD: &str = "UPDATE records SET remote_was_deleted = TRUE, modified_at = $4, change_seq = $6, \
     data = json_set(data, '$.status', 'completed', '$.remote_status', $5) \
     WHERE connection_id = $1 AND entity = $2 AND id = $3 \
     AND (remote_was_deleted = FALSE OR json_extract(data, '$.remote_status') IS NOT $5)";

/// How the SQLite file is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Read connections (any number read at once in WAL mode).
    pub readers: u32,
    /// The WAL size past which a commit starts a truncating checkpoint. SQLite's own
    /// (passive) checkpoints cannot shrink the file while some reader is always open, so
    /// under steady reads and syncs it would grow without bound.
    pub wal_checkpoint_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 8,
            wal_checkpoint_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Keeps the WAL bounded: after a commit that leaves it past the limit, one background
/// `wal_checkpoint(TRUNCATE)` on the write connection (so no write of this process runs
/// meanwhile; it waits at most the busy timeout for open readers to finish).
#[derive(Debug)]
pub(crate) struct WalGuard {
    /// The `-wal` file (`None`: nothing to watch).
    path: Option<PathBuf>,
    limit: u64,
    running: AtomicBool,
    /// Truncating checkpoints that completed.
    done: AtomicU64,
    /// Signalled when a checkpoint ends.
    ended: Notify,
}

/// A store in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Signalled after a commit that may have made webhook deliveries due (see
    /// [`SqliteStore::deliveries_due`]).
    pub(crate) due: Arc<Notify>,
    /// The job lease every write of this view is fenced by ([`Store::fenced`]).
    pub(crate) fence: Option<Arc<ironbridge_core::store::Fence>>,
    /// Reads (and nothing else: a write there would wait on SQLite's lock, not in a queue).
    pub(crate) pool: SqlitePool,
    /// The one write connection: writers queue for it here, in order, instead of sleeping
    /// in SQLite's busy handler while holding a connection readers need.
    pub(crate) writer: SqlitePool,
    pub(crate) wal: Arc<WalGuard>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `url` (`sqlite://path`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &SqliteOptions::default()).await
    }

    /// [`SqliteStore::connect`] with explicit options.
    pub async fn connect_with(url: &str, opts: &SqliteOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("invalid SQLite URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Sync pages land at random keys (ids are hashes), so writes touch leaf pages all
            // over the records table; SQLite's default 2 MiB cache would re-read them from
            // the file on every page. 32 MiB per connection, allocated only as it fills.
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory")
            // Where SQLite itself resets the WAL, it also gives the space back.
            .pragma("journal_size_limit", opts.wal_checkpoint_bytes.to_string());
        let path = options.get_filename().to_path_buf();
        let wal_path = (!path.as_os_str().is_empty() && path != std::path::Path::new(":memory:"))
            .then(|| {
                let mut p = path.into_os_string();
                p.push("-wal");
                PathBuf::from(p)
            });
        // The writer first: it creates the file and sets WAL mode before readers open it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(classify)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.readers.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(classify)?;
        let store = SqliteStore {
            pool,
            writer,
            due: Arc::default(),
            fence: None,
            wal: Arc::new(WalGuard {
                path: wal_path,
                limit: opts.wal_checkpoint_bytes,
                running: AtomicBool::new(false),
                done: AtomicU64::new(0),
                ended: Notify::new(),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Signalled after each commit in this process that may have made webhook deliveries
    /// due (events written, deliveries replayed or recovered), so a dispatcher need not wait
    /// for its next poll. Other processes sharing the database still find them by polling.
    pub fn deliveries_due(&self) -> Arc<Notify> {
        self.due.clone()
    }

    /// Closes the pools; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Runs a raw statement (tests use it to damage data on purpose).
    pub async fn execute_raw(&self, sql: &'static str) -> Result<u64, StoreError> {
        sqlx::query(sql)
            .execute(&mut *self.write_conn().await?)
            .await
            .map(|r| r.rows_affected())
            .map_err(classify)
    }

    /// The WAL file's size now (0 when there is none).
    pub fn wal_bytes(&self) -> u64 {
        self.wal
            .path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// How many truncating checkpoints have completed, and a wait for the one running (if
    /// any) to end: tests watch the guard with it.
    pub async fn wal_checkpoints(&self) -> u64 {
        let ended = self.wal.ended.notified();
        if self.wal.running.load(Ordering::Acquire) {
            ended.await;
        }
        self.wal.done.load(Ordering::Acquire)
    }

    /// A read connection.
    pub(crate) async fn reader(&self) -> Result<PoolConnection<Db>, StoreError> {
        pools::acquire(&self.pool, "read").await
    }

    /// The write connection, for a statement outside a transaction.
    pub(crate) async fn write_conn(&self) -> Result<PoolConnection<Db>, StoreError> {
        pools::acquire(&self.writer, "write").await
    }

    /// A write transaction that takes the write lock up front, so it never fails half-way
    /// with SQLITE_BUSY when upgrading from a read.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Db>, StoreError> {
        let started = std::time::Instant::now();
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await;
        metrics::histogram!("ironbridge_db_pool_acquire_seconds", "pool" => "write")
            .record(started.elapsed().as_secs_f64());
        tx.map_err(classify)
    }

    pub(crate) fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            pools::stats(&self.pool, "read"),
            pools::stats(&self.writer, "write"),
        ]
    }

    /// After a commit: starts a truncating checkpoint when the WAL is past its limit and
    /// none is running.
    pub(crate) fn after_commit(&self) {
        if self.wal_bytes() <= self.wal.limit || self.wal.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (writer, wal) = (self.writer.clone(), self.wal.clone());
        tokio::spawn(async move {
            let outcome = match pools::acquire(&writer, "write").await {
                Ok(mut conn) => {
                    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(classify)
                }
                Err(e) => Err(e),
            };
            match outcome {
                // busy = 0: every frame is in the database and the file is empty again.
                Ok((0, _, _)) => {
                    wal.done.fetch_add(1, Ordering::AcqRel);
                }
                // Readers outlasted the busy timeout; the next commit tries again.
                Ok(_) => tracing::debug!("WAL checkpoint waited for readers; will retry"),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
            wal.running.store(false, Ordering::Release);
            wal.ended.notify_waiters();
        });
    }
}

// The same query code is compiled once per backend on purpose (see shared.rs).
#[allow(clippy::duplicate_mod)]
#[path = "shared.rs"]
mod shared;

#[allow(clippy::duplicate_mod)]
#[path = "webhooks.rs"]
mod webhooks;

#[allow(clippy::duplicate_mod)]
#[path = "writes.rs"]
mod writes;

#[allow(clippy::duplicate_mod)]
#[path = "field_mappings.rs"]
mod field_mappings;

#[allow(clippy::duplicate_mod)]
#[path = "flows.rs"]
pub(crate) mod flows;

#[allow(clippy::duplicate_mod)]
#[path = "link.rs"]
mod link;

#[allow(clippy::duplicate_mod)]
#[path = "dashboard.rs"]
mod dashboard;
