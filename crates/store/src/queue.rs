//! Queue statistics ([`QueueStats`]) for both backends: one read-only statement, the same
//! in both dialects, kept apart from the job queue's writes in `shared.rs`. It reads only the
//! active rows, through the `jobs_due (status, run_at)` index, so a scrape stays cheap
//! however many finished jobs the table keeps.

use async_trait::async_trait;
use ironbridge_core::store::{JobCount, QueueStats, StoreResult};
use ironbridge_model::Timestamp;
use sqlx::Row;

use crate::classify;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// Queued (all, and those due by `$1`) and running jobs per kind. `SUM` over an integer
/// `CASE` is a 64-bit integer in both dialects.
const JOB_COUNTS: &str = "SELECT kind, \
     SUM(CASE WHEN status = 'queued' THEN 1 ELSE 0 END) AS queued, \
     SUM(CASE WHEN status = 'queued' AND run_at <= $1 THEN 1 ELSE 0 END) AS due, \
     SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running \
     FROM jobs WHERE status IN ('queued', 'running') GROUP BY kind ORDER BY kind";

/// Implements [`QueueStats`] for a backend, given how to reach its pool from `self`.
macro_rules! queue_stats {
    ($backend:ty, $db:ty, |$this:ident| $pool:expr) => {
        #[async_trait]
        impl QueueStats for $backend {
            async fn job_counts(&self, now: Timestamp) -> StoreResult<Vec<JobCount>> {
                let $this = self;
                let rows = sqlx::query(JOB_COUNTS)
                    .bind(now.micros())
                    .fetch_all($pool)
                    .await
                    .map_err(classify)?;
                // A count is never negative; `SUM` of no row would be NULL.
                let count = |row: &<$db as sqlx::Database>::Row,
                             column: &str|
                 -> Result<u64, sqlx::Error> {
                    let n: Option<i64> = row.try_get(column)?;
                    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
                };
                rows.iter()
                    .map(|row| {
                        Ok(JobCount {
                            kind: row.try_get("kind")?,
                            queued: count(row, "queued")?,
                            due: count(row, "due")?,
                            running: count(row, "running")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(classify)
            }
        }
    };
}

queue_stats!(SqliteStore, sqlx::Sqlite, |store| &store.pool);
queue_stats!(PgStore, sqlx::Postgres, |store| &store.pool);
