//! Connection pools as metrics see them: every acquisition timed into
//! `ironbridge_db_pool_acquire_seconds{pool}`, and each pool's state for the gauges.

use std::time::Instant;

use ironbridge_core::store::{PoolStats, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

use crate::classify;

/// A connection from `pool`, the wait recorded under `name`.
pub(crate) async fn acquire<DB: Database>(
    pool: &Pool<DB>,
    name: &'static str,
) -> Result<PoolConnection<DB>, StoreError> {
    let started = Instant::now();
    let conn = pool.acquire().await;
    metrics::histogram!("ironbridge_db_pool_acquire_seconds", "pool" => name)
        .record(started.elapsed().as_secs_f64());
    conn.map_err(classify)
}

/// The state of `pool`.
pub(crate) fn stats<DB: Database>(pool: &Pool<DB>, name: &'static str) -> PoolStats {
    PoolStats {
        name,
        max: pool.options().get_max_connections(),
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
    }
}
