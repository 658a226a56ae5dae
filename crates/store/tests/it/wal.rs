//! The SQLite WAL stays bounded: past its limit a commit starts a truncating checkpoint,
//! which waits for the readers open at that moment, not for a moment with no reader at all
//! (SQLite's own checkpoints can never shrink the file while some reader is always open).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ironbridge_core::store::Store;
use ironbridge_store::{SqliteOptions, SqliteStore};
use sqlx::{Connection, SqliteConnection};

use crate::cases::{T0, conn, org, query, rec, write};

const LIMIT: u64 = 1024 * 1024;

async fn store() -> (SqliteStore, Arc<dyn Store>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let sqlite = SqliteStore::connect_with(
        &url,
        &SqliteOptions {
            readers: 4,
            wal_checkpoint_bytes: LIMIT,
        },
    )
    .await
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    (sqlite, store, url, dir)
}

/// A page of 100 records of about 1 KB each (twice over: data and raw), new at `round`.
fn page(
    c: &ironbridge_core::store::ConnId,
    round: u64,
) -> Vec<ironbridge_core::store::RecordUpsert> {
    (0..100)
        .map(|i| {
            rec(
                c,
                &format!("r{round}-{i}"),
                &format!("{round}-{i}-{}", "x".repeat(1000)),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reader_held_open_only_delays_the_checkpoint() {
    let (sqlite, store, url, _dir) = store().await;
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    // A reader holding its snapshot while a sync writes.
    let mut reader = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM records")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let mut round = 0;
    while sqlite.wal_bytes() <= LIMIT {
        write(&store, &c, page(&c, round), T0.plus_secs(round as i64)).await;
        round += 1;
        assert!(round < 100, "the WAL never passed its limit");
    }
    // The commit that passed the limit started a checkpoint, which waits for the reader.
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    assert_eq!(sqlite.wal_checkpoints().await, 1);
    assert_eq!(sqlite.wal_bytes(), 0, "the checkpoint truncates the WAL");
    // Nothing was lost on the way.
    let total = store.count_records(&c, &query(10)).await.unwrap();
    assert_eq!(total, round * 100);
}

#[tokio::test]
async fn the_wal_stays_bounded_under_constant_reads() {
    let (sqlite, store, _url, _dir) = store().await;
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Four readers, never all idle at once.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, c, stop) = (store.clone(), c.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut q = query(200);
                    q.include_raw = true;
                    store.list_records(&c, &q).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut peak = 0;
    for round in 0..40u64 {
        write(&store, &c, page(&c, round), T0.plus_secs(round as i64)).await;
        peak = peak.max(sqlite.wal_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(
            r.await.unwrap() > 0,
            "each reader read while the pages were written"
        );
    }
    // About 10 MB were written; the WAL held at most its limit and the few pages written
    // while a checkpoint waited its turn for the write connection (without one: 11 MB).
    assert!(peak < 4 * LIMIT, "WAL peaked at {peak} bytes");
    assert!(sqlite.wal_checkpoints().await >= 1);
}
