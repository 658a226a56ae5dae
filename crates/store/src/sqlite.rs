//! The embedded SQLite store: one file, WAL journal, one writer at a time.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use tokio::sync::Notify;

use crate::classify;
use crate::migrate::{self, Migration};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Backend = SqliteStore;

/// SQLite has no row locks; `BEGIN IMMEDIATE` already serializes writers.
pub(crate) const LOCK_ORG: &str = "SELECT connection_credits FROM organizations WHERE id = $1";
/// SQLite has no row locks; `BEGIN IMMEDIATE` already serializes recoveries.
pub(crate) const LOCK_ENDPOINT: &str =
    "SELECT id FROM webhook_endpoints WHERE org_id = $1 AND id = $2";
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
/// One process owns a SQLite file (`serve` with every role): its in-process limits suffice.
pub(crate) const SHARED_BY_PROCESSES: bool = false;
/// Whether the job still holds its lease (one writer at a time already orders the check
/// before any takeover).
pub(crate) const FENCE_CHECK: &str = "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'";
/// Marks deleted what a complete pass did not see: the run's seen keys are read into one
/// ephemeral index (a non-correlated `IN`), then each record is one lookup.
pub(crate) const SWEEP_UNSEEN: &str = "UPDATE records SET remote_was_deleted = TRUE, modified_at = $4 \
     WHERE connection_id = $1 AND entity = $2 AND remote_was_deleted = FALSE \
     AND id NOT IN (SELECT j.value FROM seen_pages s, json_each(s.ids) j WHERE s.connection_id = $1 AND s.entity = $2 AND s.run_id = $3)";

/// A store in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Signalled after a commit that may have made webhook deliveries due (see
    /// [`SqliteStore::deliveries_due`]).
    pub(crate) due: Arc<Notify>,
    /// The job lease every write of this view is fenced by ([`Store::fenced`]).
    pub(crate) fence: Option<Arc<ironbridge_core::store::Fence>>,
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `url` (`sqlite://path`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
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
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(classify)?;
        let store = SqliteStore {
            pool,
            due: Arc::default(),
            fence: None,
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

    /// Closes the pool; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs a raw statement (tests use it to damage data on purpose).
    pub async fn execute_raw(&self, sql: &'static str) -> Result<u64, StoreError> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(classify)
    }

    /// A write transaction that takes the write lock up front, so it never fails half-way
    /// with SQLITE_BUSY when upgrading from a read.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Db>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }
}

// The same query code is compiled once per backend on purpose (see shared.rs).
#[allow(clippy::duplicate_mod)]
#[path = "shared.rs"]
mod shared;

#[allow(clippy::duplicate_mod)]
#[path = "webhooks.rs"]
mod webhooks;
