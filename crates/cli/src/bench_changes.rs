//! `ironbridge bench changes`: the change feed's cost and throughput on a fresh database. Pages
//! of purchase orders are written as a sync writes them (each page one transaction that takes
//! the connection's change number), then the feed is read from the start through the read
//! service (rendered JSON, signed cursors), then a tenth of the orders change and the feed is
//! read again from where it ended, and last a reader follows the feed while a writer changes
//! records, the way a client polls during a sync.

use std::time::Instant;

use ironbridge_core::crypto::{Keys, token_hash};
use ironbridge_core::ids::{new_id, record_id};
use ironbridge_core::read::{ChangesQuery, RecordReader};
use ironbridge_core::store::{
    ConnId, NewApiKey, NewConnection, OrgId, Organization, PageWrite, RecordUpsert, Store,
};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_model::Entity;
use serde_json::json;

use crate::bench::tempfile_dir;

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct ChangeBenchArgs {
    /// Purchase orders written (and then read from the feed).
    #[arg(long, default_value_t = 100_000)]
    pub records: u32,
    /// Orders per written page (one transaction each).
    #[arg(long, default_value_t = 500)]
    pub write_page: u32,
    /// Changes per page read from the feed (at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
}

fn order(conn: &ConnId, i: u32, version: u32) -> RecordUpsert {
    let remote = format!("PO-{i:08}");
    let data = json!({
        "number": remote, "status": "approved", "memo": format!("version {version}"),
        "vendor_id": record_id(&conn.0, Entity::VENDOR, &format!("V{}", i % 500)),
        "currency": "USD", "total_amount": format!("{}.00", 100 + i % 900),
        "line_items": (0..3).map(|l| json!({"id": format!("pol_{i}_{l}"), "quantity": "2", "unit_price": "12.50",
            "item_id": record_id(&conn.0, Entity::ITEM, &format!("I{}", (i + l) % 800))})).collect::<Vec<_>>(),
        "custom_fields": {}
    });
    let raw = json!({"tranId": remote, "memo": format!("version {version}"), "status": "B", "lines": [1, 2, 3]});
    RecordUpsert {
        id: record_id(&conn.0, Entity::PURCHASE_ORDER, &remote),
        remote_id: remote,
        data: data.to_string(),
        raw: raw.to_string().into(),
        content_hash: format!("{i}-{version}"),
        remote_created_at: None,
        remote_updated_at: None,
        remote_was_deleted: false,
    }
}

/// Writes orders `ids` at `version`, a page per transaction; orders per second.
async fn write(
    store: &dyn Store,
    conn: &ConnId,
    ids: &[u32],
    version: u32,
    page: u32,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in ids.chunks(page.max(1) as usize) {
        let page = PageWrite {
            entity: Entity::PURCHASE_ORDER,
            records: chunk.iter().map(|i| order(conn, *i, version)).collect(),
            checkpoint: None,
            now: SystemClock.now(),
            seen_run: None,
            deleted: Vec::new(),
            closed: Vec::new(),
            skipped: 0,
            bases: Vec::new(),
            points: Vec::new(),
        };
        store
            .write_page(conn, &page)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

/// Reads the feed from `cursor` to its end: (changes read, changes per second, the cursor).
async fn read(
    reader: &RecordReader<'_>,
    conn: &ConnId,
    cursor: Option<String>,
    page_size: u32,
) -> anyhow::Result<(u64, f64, String)> {
    let started = Instant::now();
    let mut cursor = cursor;
    let mut n = 0u64;
    loop {
        let page = reader
            .changes(
                conn,
                &ChangesQuery {
                    cursor: cursor.clone(),
                    page_size: Some(page_size),
                    entity: None,
                    include_remote_data: false,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let got = page.data.len() as u64;
        n += got;
        // The body as the API sends it.
        std::hint::black_box(page.clone().into_body());
        cursor = Some(page.next_cursor);
        if got == 0 {
            break;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok((n, rate, cursor.unwrap_or_default()))
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: ChangeBenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench-changes.db").display()));
    let store = ironbridge_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let keys = Keys::from_master(&Keys::decode_master(&Keys::generate_master())?)?;
    let now = SystemClock.now();
    let org = OrgId(new_id("org", now.micros()));
    let key = NewApiKey {
        id: new_id("key", now.micros()),
        name: "bench".into(),
        token_hash: token_hash(&org.0),
        prefix: "ibk_".into(),
        created_at: now,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    let organization = Organization {
        id: org.0.clone(),
        name: "bench".into(),
        connection_credits: 1,
        created_at: now,
    };
    store
        .create_organization(&organization, &key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let new = NewConnection {
        id: new_id("conn", now.micros()),
        system: "sandbox".into(),
        name: None,
        status: "online".into(),
        settings: "{}".into(),
        end_user: None,
        credentials: None,
        token_hash: token_hash(&new_id("tok", now.micros())),
        token_prefix: "ibc_".into(),
        created_at: now,
        replaces: None,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    let conn = ConnId(
        store
            .create_connection(&org, &new)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .id,
    );
    let reader = RecordReader {
        store: store.as_ref(),
        keys: &keys,
        view: None,
    };
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "backend: {backend}, orders: {}, write page: {}, feed page: {}",
        args.records, args.write_page, args.page_size
    );
    let all: Vec<u32> = (0..args.records).collect();
    let rate = write(store.as_ref(), &conn, &all, 1, args.write_page).await?;
    println!("initial write (sync pages)  | {rate:>9.0} orders/s");
    let unchanged = write(store.as_ref(), &conn, &all, 1, args.write_page).await?;
    println!("same pages again, unchanged | {unchanged:>9.0} orders/s (no change number taken)");
    let (n, rate, end) = read(&reader, &conn, None, args.page_size).await?;
    anyhow::ensure!(n == u64::from(args.records), "read {n} changes");
    println!("feed from the start         | {rate:>9.0} changes/s ({n} changes)");
    let tenth: Vec<u32> = all.iter().copied().filter(|i| i % 10 == 3).collect();
    let rate = write(store.as_ref(), &conn, &tenth, 2, args.write_page).await?;
    println!("a tenth changed             | {rate:>9.0} orders/s");
    let (n, rate, end) = read(&reader, &conn, Some(end), args.page_size).await?;
    anyhow::ensure!(n == tenth.len() as u64, "read {n} changes");
    println!("feed from its end           | {rate:>9.0} changes/s ({n} changes)");
    // A writer changes every order once more while a reader follows the feed.
    let writer = {
        let store = store.clone();
        let conn = conn.clone();
        let all = all.clone();
        let page = args.write_page;
        tokio::spawn(async move { write(store.as_ref(), &conn, &all, 3, page).await })
    };
    let started = Instant::now();
    let mut cursor = Some(end);
    let mut n = 0u64;
    loop {
        let finished = writer.is_finished();
        let (got, _, next) = read(&reader, &conn, cursor.take(), args.page_size).await?;
        n += got;
        cursor = Some(next);
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    let write_rate = writer.await??;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        n == u64::from(args.records),
        "the follower read {n} of {} changes",
        args.records
    );
    println!(
        "follow during writes        | {:>9.0} changes/s read, writer at {write_rate:.0} orders/s, all {n} read once",
        n as f64 / secs
    );
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
