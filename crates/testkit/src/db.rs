//! Fresh databases, one per test, under one convention: a temporary SQLite file, or a new
//! schema of the PostgreSQL server `DATABASE_URL` names. Suites choose PostgreSQL with
//! `TEST_BACKEND=postgres`; the store contract suite asks for both. Under `CI=true` a
//! missing PostgreSQL fails the run instead of being skipped.

use std::sync::Arc;

use ironbridge_core::store::Store;
use ironbridge_core::{Clock, SystemClock};
use ironbridge_store::{PgStore, SqliteStore};

/// One test's database: the store, and the backend for raw access.
pub struct TestDb {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The backend behind it.
    pub backend: Backend,
    /// How to open the same database again (URL and PostgreSQL schema).
    reopen: (String, Option<String>),
}

/// A backend the test can also reach directly.
pub enum Backend {
    /// A SQLite file in a directory removed with the test.
    Sqlite(SqliteStore, tempfile::TempDir),
    /// A schema of its own on the PostgreSQL server.
    Postgres(PgStore),
}

/// Whether this run tests PostgreSQL (`TEST_BACKEND=postgres`, which needs `DATABASE_URL`).
pub fn postgres_selected() -> bool {
    std::env::var("TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL server to test against, if any; under `CI=true` it must be there.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
        }
        _ => None,
    }
}

impl TestDb {
    /// A fresh database of the backend this run tests.
    pub async fn fresh() -> TestDb {
        if postgres_selected() {
            TestDb::postgres()
                .await
                .expect("TEST_BACKEND=postgres needs DATABASE_URL")
        } else {
            TestDb::sqlite().await
        }
    }

    /// A fresh SQLite file.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("ironbridge.db").display());
        let store = SqliteStore::connect(&url).await.expect("sqlite store");
        TestDb {
            store: Arc::new(store.clone()),
            backend: Backend::Sqlite(store, dir),
            reopen: (url, None),
        }
    }

    /// A fresh schema on the PostgreSQL server, when there is one.
    pub async fn postgres() -> Option<TestDb> {
        let url = postgres_url()?;
        let schema = format!(
            "t_{}",
            ironbridge_core::ids::new_id("s", SystemClock.now().micros()).trim_start_matches("s_")
        );
        let admin = PgStore::connect_admin(&url)
            .await
            .expect("postgres reachable");
        admin.create_schema(&schema).await.expect("create schema");
        admin.close().await;
        let store = PgStore::connect(&url, Some(&schema))
            .await
            .expect("postgres store");
        Some(TestDb {
            store: Arc::new(store.clone()),
            backend: Backend::Postgres(store),
            reopen: (url, Some(schema)),
        })
    }

    /// Another store on the same database, with pools of its own: what a second process
    /// sharing the database would have.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match &self.reopen {
            (url, None) => Arc::new(SqliteStore::connect(url).await.expect("sqlite store")),
            (url, Some(schema)) => Arc::new(
                PgStore::connect(url, Some(schema))
                    .await
                    .expect("postgres store"),
            ),
        }
    }

    /// Runs a raw statement against the database, bypassing the store's API.
    pub async fn raw_sql(&self, sql: &'static str) -> u64 {
        match &self.backend {
            Backend::Sqlite(s, _) => s.execute_raw(sql).await.expect("raw statement"),
            Backend::Postgres(p) => p.execute_raw(sql).await.expect("raw statement"),
        }
    }

    /// The plan of every list statement's every shape (name and SQL, plan text, the
    /// columns its index must be searched by).
    pub async fn list_plans(&self) -> Vec<(String, String, Vec<&'static str>)> {
        match &self.backend {
            Backend::Sqlite(s, _) => s.list_plans().await.expect("plans"),
            Backend::Postgres(p) => p.list_plans().await.expect("plans"),
        }
    }

    /// Closes the pool under whoever uses the store.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s, _) => s.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// The SQLite file's bytes, its WAL included (`None` on PostgreSQL).
    pub fn file_bytes(&self) -> Option<Vec<u8>> {
        match &self.backend {
            Backend::Sqlite(_, dir) => {
                let mut all = Vec::new();
                for name in ["ironbridge.db", "ironbridge.db-wal"] {
                    if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
                        all.extend(bytes);
                    }
                }
                Some(all)
            }
            Backend::Postgres(_) => None,
        }
    }

    /// The deliveries-due signal of the store (what `serve` wakes its dispatcher with).
    pub fn deliveries_due(&self) -> Arc<tokio::sync::Notify> {
        match &self.backend {
            Backend::Sqlite(s, _) => s.deliveries_due(),
            Backend::Postgres(p) => p.deliveries_due(),
        }
    }
}
