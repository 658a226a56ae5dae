//! Fresh databases for each test: a temporary SQLite file, or a new PostgreSQL schema.

use std::sync::Arc;

use ironbridge_core::store::Store;
use ironbridge_store::{PgStore, SqliteStore};

pub struct SqliteDb {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

pub async fn sqlite() -> SqliteDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url).await.expect("sqlite store");
    SqliteDb {
        store: Arc::new(store),
        _dir: dir,
    }
}

/// The PostgreSQL server to test against, if any. Under CI it must be there.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
        }
        _ => None,
    }
}

pub async fn postgres() -> Option<Arc<dyn Store>> {
    let url = postgres_url()?;
    let schema = format!(
        "t_{}",
        ironbridge_core::ids::new_id(
            "s",
            ironbridge_core::Clock::now(&ironbridge_core::SystemClock).micros()
        )
        .trim_start_matches("s_")
    );
    let admin = PgStore::connect_admin(&url)
        .await
        .expect("postgres reachable");
    admin.create_schema(&schema).await.expect("create schema");
    Some(Arc::new(
        PgStore::connect(&url, Some(&schema))
            .await
            .expect("postgres store"),
    ))
}
