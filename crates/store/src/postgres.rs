//! The PostgreSQL store, for many API and worker processes sharing one database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::store::{PoolStats, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};
use tokio::sync::Notify;

use crate::migrate::{self, Migration};
use crate::{classify, pools};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Backend = PgStore;

/// Locks the organization row so concurrent creations cannot both take the last credit.
pub(crate) const LOCK_ORG: &str =
    "SELECT connection_credits FROM organizations WHERE id = $1 FOR UPDATE";
/// Recoveries of one endpoint take turns (they number its replayed deliveries).
pub(crate) const LOCK_ENDPOINT: &str =
    "SELECT id FROM webhook_endpoints WHERE org_id = $1 AND id = $2 FOR UPDATE";
/// Locks a row read in a write transaction until it commits.
pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";
/// Writes of one connection's entity's partial records take turns (released at commit).
pub(crate) const LOCK_RECORDS: Option<&str> =
    Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
pub(crate) const MIGRATIONS: &[Migration] = migrate::POSTGRES;
/// `SKIP LOCKED`: concurrent workers each take a different job without waiting on each other.
pub(crate) const CLAIM_JOB: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2, lease_until = $3, updated_at = $4 ",
    "WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND ((status = 'queued' AND run_at <= $4) OR (status = 'running' AND lease_until < $4)) ",
    "ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
    job_columns!()
);
/// Several processes may start at once; one migrates, the others wait.
/// `SKIP LOCKED`: concurrent dispatchers each lease different deliveries.
pub(crate) const CLAIM_DELIVERIES: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_owner = $1, next_attempt_at = $2, updated_at = $3 ",
    "WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $3 ",
    "AND strpos($4, ',' || d.endpoint_id || ',') = 0 ",
    replay_head!(),
    " ORDER BY d.next_attempt_at, d.id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING ",
    delivery_columns!()
);
/// Whether a page's key lookup (`id IN (…)`) may be a cached prepared statement. Not on
/// PostgreSQL: after five executions a cached statement may switch to a generic plan, and one
/// planned while `records` was nearly empty (the first sync into a new database) is a
/// sequential scan kept for the connection's life unless an `ANALYZE` invalidates it (never,
/// where autovacuum is off): the first 100,000-order sync ran at 850 orders/s instead of
/// 2,000. Unnamed statements are planned with their values every time.
/// Any number of api and worker processes may share one PostgreSQL database.
pub(crate) const SHARED_BY_PROCESSES: bool = true;
/// Whether the job still holds its lease. `FOR SHARE` holds the job row until the commit, so
/// a takeover (which updates it) is ordered after this write, never between the check and
/// the commit; claims skip a locked job rather than wait for it.
pub(crate) const FENCE_CHECK: &str = "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running' FOR SHARE";
/// Marks deleted what a complete pass did not see: the run's seen keys, unnested once, in a
/// hash anti-join with the entity's records.
pub(crate) const SWEEP_UNSEEN: &str = "WITH seen AS MATERIALIZED (SELECT DISTINCT jsonb_array_elements_text(ids::jsonb) COLLATE \"C\" AS id \
     FROM seen_pages WHERE connection_id = $1 AND entity = $2 AND run_id = $3) \
     UPDATE records r SET remote_was_deleted = TRUE, modified_at = $4, change_seq = $5 \
     WHERE r.connection_id = $1 AND r.entity = $2 AND r.remote_was_deleted = FALSE \
     AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = r.id)";
pub(crate) const CACHE_KEY_LOOKUPS: bool = false;
/// A record the source closed and removed ($1 connection, $2 entity, $3 id, $4 now, $5 the
/// source's reason, $6 the change number): flagged deleted, status `completed`, `remote_status` the reason.
pub(crate) const CLOSE_RECORD: &str = "UPDATE records SET remote_was_deleted = TRUE, modified_at = $4, change_seq = $6, \
     data = (data::jsonb || jsonb_build_object('status', 'completed', 'remote_status', $5::text))::text \
     WHERE connection_id = $1 AND entity = $2 AND id = $3 \
     AND (remote_was_deleted = FALSE OR (data::jsonb ->> 'remote_status') IS DISTINCT FROM $5::text)";
/// Set in the sweep's transaction: the anti-join must hash the run's seen keys whatever the
/// statistics say. Planned from stale ones (a table analysed while nearly empty, the CTE's
/// size unknown), it became a nested loop over every record times every seen key: 15 s per
/// entity of 10,000 orders, four sweeps at once, in a load test.
pub(crate) const SWEEP_SETUP: Option<&str> = Some("SET LOCAL enable_nestloop = off");
/// Set in the transaction of a change feed page: the page must be read along
/// `records_feed` in its order, never gathered whole and sorted. From statistics taken while
/// a connection was small (or none: autovacuum off), PostgreSQL estimated 800 rows past a
/// position where there were 100,000, and sorted them all for each page of 1,000: 240 ms a
/// page instead of 6.
pub(crate) const FEED_SETUP: Option<&str> = Some("SET LOCAL enable_sort = off");
/// How a statement's plan is asked for, the setting that goes with it (sequential scans
/// priced out, so a small test table still shows whether an index can serve the query),
/// and the column the plan's lines come in.
pub(crate) const EXPLAIN: (&str, Option<&str>, &str) = (
    "EXPLAIN ",
    Some("SET LOCAL enable_seqscan = off"),
    "QUERY PLAN",
);
pub(crate) const LOCK_MIGRATIONS: Option<&str> = Some("SELECT pg_advisory_xact_lock(4711001)");

/// How long a session may sit idle inside a transaction, and wait for a lock, before the
/// server ends it or the statement. Set from `db_transaction_timeout_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// `idle_in_transaction_session_timeout`.
    pub idle_in_transaction: Duration,
    /// `lock_timeout`.
    pub lock_wait: Duration,
}

impl SessionLimits {
    /// Both limits at `limit`.
    pub fn uniform(limit: Duration) -> Self {
        SessionLimits {
            idle_in_transaction: limit,
            lock_wait: limit,
        }
    }
}

impl Default for SessionLimits {
    /// One minute each: a page commit takes well under a second, a job's lease five minutes.
    fn default() -> Self {
        SessionLimits::uniform(Duration::from_secs(60))
    }
}

/// A store in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Signalled after a commit that may have made webhook deliveries due (see
    /// [`PgStore::deliveries_due`]).
    pub(crate) due: Arc<Notify>,
    /// The job lease every write of this view is fenced by ([`Store::fenced`]).
    pub(crate) fence: Option<Arc<ironbridge_core::store::Fence>>,
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects, optionally into a schema (tests isolate themselves this way), and migrates,
    /// with the default [`SessionLimits`].
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        Self::connect_with(url, schema, &SessionLimits::default()).await
    }

    /// [`PgStore::connect`] with explicit session limits.
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        limits: &SessionLimits,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".into()))?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        // A process frozen or cut off inside a transaction must not hold its row locks (and so
        // a job's successor) until TCP gives up, two hours by default: the server ends such a
        // session, and no statement waits for a lock longer than that either. Both stay well
        // under a job's lease, so a takeover is never blocked by its stale predecessor.
        let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
        options = options.options([
            (
                "idle_in_transaction_session_timeout",
                ms(limits.idle_in_transaction).as_str(),
            ),
            ("lock_timeout", ms(limits.lock_wait).as_str()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx already pings a connection when it comes back to the pool (and closes a
            // broken one); a second ping before every use cost a round trip per query. A
            // connection that died meanwhile fails one statement, answered as unavailable.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(classify)?;
        let store = PgStore {
            pool,
            due: Arc::default(),
            fence: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating, for administrative statements (creating test schemas).
    pub async fn connect_admin(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".into()))?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(classify)?;
        Ok(PgStore {
            pool,
            due: Arc::default(),
            fence: None,
        })
    }

    /// Creates a schema; the name must be lowercase letters, digits and underscores.
    pub async fn create_schema(&self, name: &str) -> Result<(), StoreError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::Internal("invalid schema name".into()));
        }
        // Identifiers cannot be bound as parameters; the name was checked above.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {name}"
        )))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(classify)
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

    /// One number a diagnostic statement returns (benchmarks read the WAL position and
    /// row versions this way); `sql` is Ironbridge's own text, never a caller's.
    pub async fn scalar_i64(&self, sql: &'static str) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)
    }

    /// A transaction. `BEGIN` runs in its own task: sqlx 0.9 loses track of a transaction
    /// whose `BEGIN` future is dropped while in flight (a sync cancelled when its lease is
    /// lost, a shutdown), and the connection goes back to the pool still inside it, so every
    /// later statement on it would run in a transaction nobody commits, holding its locks.
    /// Run to completion, the `BEGIN` always yields a `Transaction`, whose drop rolls back.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Db>, StoreError> {
        let pool = self.pool.clone();
        let started = std::time::Instant::now();
        let begun = tokio::spawn(async move { pool.begin().await }).await;
        metrics::histogram!("ironbridge_db_pool_acquire_seconds", "pool" => "main")
            .record(started.elapsed().as_secs_f64());
        match begun {
            Ok(begun) => begun.map_err(classify),
            Err(_) => Err(StoreError::Unavailable("the database task stopped".into())),
        }
    }

    /// A connection for a read (PostgreSQL reads and writes share one pool: row versions
    /// let them run side by side).
    pub(crate) async fn reader(&self) -> Result<PoolConnection<Db>, StoreError> {
        pools::acquire(&self.pool, "main").await
    }

    /// A connection for a statement that writes outside a transaction.
    pub(crate) async fn write_conn(&self) -> Result<PoolConnection<Db>, StoreError> {
        pools::acquire(&self.pool, "main").await
    }

    pub(crate) fn pool_stats(&self) -> Vec<PoolStats> {
        vec![pools::stats(&self.pool, "main")]
    }

    /// After a commit: nothing to do (the server manages its own WAL).
    pub(crate) fn after_commit(&self) {}
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
