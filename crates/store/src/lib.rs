//! The two implementations of Ironbridge's `Store`: SQLite (embedded default) and PostgreSQL
//! (many processes, one database). Both compile the same query code (`shared.rs`), each with
//! its own types, migrations and the few statements where the dialects differ.

/// Columns of a job row, shared by both backends' statements.
macro_rules! job_columns {
    () => {
        "id, kind, org_id, connection_id, payload, status, run_at, attempts, max_attempts, lease_owner, lease_until, last_error, created_at, updated_at"
    };
}

/// Columns of a webhook delivery row, shared by both backends' statements.
macro_rules! delivery_columns {
    () => {
        "id, org_id, endpoint_id, message_id, event_type, connection_id, payload, status, attempts, retry_step, next_attempt_at, lease_owner, last_status_code, last_error, delivered_at, created_at, updated_at"
    };
}

mod migrate;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use ironbridge_core::store::{Store, StoreError};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Opens the store named by a URL (`sqlite://path` or `postgres://…`) and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_signal(url).await.map(|(store, _)| store)
}

/// [`open`], with the signal raised after each commit of this process that may have made
/// webhook deliveries due (for the dispatcher to wake on).
pub async fn open_with_signal(
    url: &str,
) -> Result<(Arc<dyn Store>, Arc<tokio::sync::Notify>), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, None).await?;
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

/// Classifies a driver error without leaking it into responses.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::Internal(err.to_string()),
    }
}
