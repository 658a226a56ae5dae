//! The two implementations of Ironbridge's `Store`: SQLite (embedded default) and PostgreSQL
//! (many processes, one database). Both compile the same query code (`shared.rs`), each with
//! its own types, migrations and the few statements where the dialects differ.

/// Columns of a job row, shared by both backends' statements.
macro_rules! job_columns {
    () => {
        "id, kind, org_id, connection_id, payload, status, run_at, attempts, failures, max_attempts, lease_owner, lease_until, last_error, created_at, updated_at"
    };
}

/// The claim's condition for replays: a recovered delivery (`replay_seq` set) is claimable
/// only while no pending one of its endpoint precedes it, so an endpoint's replay goes out one
/// delivery at a time, in event order, whichever process claims (the in-flight one is still
/// pending until its attempt is recorded). Live traffic (`replay_seq` NULL) is not held.
macro_rules! replay_head {
    () => {
        "AND (d.replay_seq IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.status = 'pending' AND p.replay_seq < d.replay_seq))"
    };
}

/// Columns of a webhook delivery row, shared by both backends' statements.
macro_rules! delivery_columns {
    () => {
        "id, org_id, endpoint_id, message_id, event_type, connection_id, payload, status, attempts, retry_step, next_attempt_at, lease_owner, last_status_code, last_error, delivered_at, created_at, updated_at"
    };
}

mod lists;
mod migrate;
mod pools;
pub mod postgres;
mod queue;
pub mod sqlite;

use std::sync::Arc;

use ironbridge_core::store::{Conflict, Store, StoreError};

pub use postgres::{PgStore, SessionLimits};
pub use sqlite::{SqliteOptions, SqliteStore};

/// Opens the store named by a URL (`sqlite://path` or `postgres://…`) and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_signal(url).await.map(|(store, _)| store)
}

/// [`open`], with the signal raised after each commit of this process that may have made
/// webhook deliveries due (for the dispatcher to wake on).
pub async fn open_with_signal(
    url: &str,
) -> Result<(Arc<dyn Store>, Arc<tokio::sync::Notify>), StoreError> {
    open_with_limits(url, &SessionLimits::default()).await
}

/// [`open_with_signal`], with the PostgreSQL session limits (SQLite has no sessions to bound:
/// one process owns the file).
pub async fn open_with_limits(
    url: &str,
    limits: &SessionLimits,
) -> Result<(Arc<dyn Store>, Arc<tokio::sync::Notify>), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect_with(url, None, limits).await?;
        let due = store.deliveries_due();
        Ok((Arc::new(store), due))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        let due = store.deliveries_due();
        Ok((Arc::new(store), due))
    } else {
        Err(StoreError::Unavailable(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

/// Unique constraints and indexes a caller can run into, by name (identical in both
/// dialects), with what they keep unique.
const NAMED_CONSTRAINTS: &[(&str, &str)] = &[
    ("api_keys_token_hash_key", "an API key with this token"),
    ("connections_token_hash_key", "a connection with this token"),
    (
        "dashboard_users_email_key",
        "a dashboard account with this e-mail address",
    ),
    ("jobs_dedupe", "a queued or running job for this connection"),
    ("records_remote", "a record with this source key"),
];

/// The name a driver gives a violated constraint, if any: PostgreSQL names it; SQLite names
/// the columns (`UNIQUE constraint failed: api_keys.token_hash`), mapped to the same names.
fn constraint_name(db: &dyn sqlx::error::DatabaseError) -> Option<&'static str> {
    let name = match db.constraint() {
        Some(name) => name.to_string(),
        None => {
            let columns = db.message().strip_prefix("UNIQUE constraint failed: ")?;
            match columns {
                "api_keys.token_hash" => "api_keys_token_hash_key".into(),
                "connections.token_hash" => "connections_token_hash_key".into(),
                "dashboard_users.email" => "dashboard_users_email_key".into(),
                "jobs.dedupe_key" => "jobs_dedupe".into(),
                "records.connection_id, records.entity, records.remote_id" => {
                    "records_remote".into()
                }
                _ => return None,
            }
        }
    };
    NAMED_CONSTRAINTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, _)| *n)
}

/// Classifies a driver error without leaking it into responses: a named unique constraint
/// becomes a typed conflict; any other database error keeps its cause for the logs only.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
            StoreError::Unavailable(Box::new(err))
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            match constraint_name(db.as_ref()) {
                Some(constraint) => {
                    let what = NAMED_CONSTRAINTS
                        .iter()
                        .find(|(n, _)| *n == constraint)
                        .map_or("it", |(_, w)| *w);
                    StoreError::Conflict(Conflict::Duplicate { constraint, what })
                }
                None => StoreError::Internal(Box::new(err)),
            }
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::Internal(Box::new(err)),
    }
}
