//! `ironbridge bench batches`: bulk batch throughput against each emulated ERP with latency
//! added to every call. A batch of purchase-order creates runs through the real batch job
//! (`engine::batches`) and the connection's runtime; the figure that matters is how close it
//! comes to what the system's limits allow (its concurrency over the latency, or its request
//! rate where that binds first), with no request refused 429 by the emulator, which enforces
//! the concurrency limit.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use ironbridge_connectors::sleeper::TokioSleeper;
use ironbridge_core::Clock;
use ironbridge_core::crypto::Keys;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    Batch, BatchOperation, NewJob, RecordQuery, Store, batch_status, operation_status,
};
use ironbridge_emulators::System;
use ironbridge_engine::batches::{BATCH_JOB, run_batch};
use ironbridge_engine::sync::{SyncOptions, sync_connection_with};
use ironbridge_model::Entity;
use serde_json::{Value, json};

use crate::bench::{
    EmulatedConnection, connect_emulated, emulator_json, tempfile_dir, throttled_since,
    upstream_requests,
};

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct BatchBenchArgs {
    /// Create operations per batch.
    #[arg(long, default_value_t = 300)]
    pub operations: u32,
    /// Operations per batch of the job (1–100).
    #[arg(long, default_value_t = 50)]
    pub batch_size: u32,
    /// Latency the emulators add to every call (milliseconds).
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// Systems to measure (comma-separated).
    #[arg(
        long,
        default_value = "netsuite,sap,business-central",
        value_delimiter = ','
    )]
    pub systems: Vec<String>,
}

/// The id of the first active record of `entity`.
pub(crate) async fn active(
    store: &dyn Store,
    conn: &ironbridge_core::store::ConnId,
    entity: Entity,
) -> anyhow::Result<String> {
    let q = RecordQuery {
        entity,
        after_id: None,
        after_modified: None,
        modified_after: None,
        modified_before: None,
        include_deleted: false,
        include_raw: false,
        limit: 1000,
    };
    let records = store
        .list_records(conn, &q)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    records
        .iter()
        .find(|r| serde_json::from_str::<Value>(&r.data).is_ok_and(|d| d["status"] == "active"))
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no active {}", entity.as_str()))
}

/// Runs the benchmark and prints one line per system.
pub async fn run(args: BatchBenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let (store, keys, http) = open("bench-batches.db", database_url).await?;
    println!(
        "operations: {}, batch_size: {}, latency: {} ms",
        args.operations, args.batch_size, args.latency_ms
    );
    println!("system | ops/s | allowed ops/s | ratio | source requests | 429 | creates at source");
    for name in &args.systems {
        let WriteBench {
            connection:
                EmulatedConnection {
                    emu,
                    base,
                    clock,
                    org,
                    conn,
                    runtime,
                    ..
                },
            vendor,
            item,
        } = prepare(name, &store, &keys, &http, args.latency_ms).await?;
        let now = clock.now();
        let id = new_id("bat", now.micros());
        let operations: Vec<BatchOperation> = (0..i64::from(args.operations))
            .map(|i| BatchOperation {
                batch_id: id.clone(),
                idx: i,
                action: "create".into(),
                entity: Entity::PURCHASE_ORDER.as_str().into(),
                target_id: None,
                body:
                    json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": "1"}]})
                        .to_string(),
                status: operation_status::PENDING.into(),
                attempts: 0,
                record_id: None,
                result: None,
                updated_at: now,
            })
            .collect();
        let batch = Batch {
            id: id.clone(),
            org_id: org.0.clone(),
            connection_id: conn.0.clone(),
            status: batch_status::QUEUED.into(),
            batch_size: i64::from(args.batch_size.clamp(1, 100)),
            delay_ms: 0,
            on_error: "continue".into(),
            total: i64::from(args.operations),
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            cancel_requested: false,
            job_id: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let job = NewJob {
            id: new_id("job", now.micros()),
            kind: BATCH_JOB.into(),
            org_id: org.0.clone(),
            connection_id: Some(conn.0.clone()),
            payload: json!({"batch_id": id}).to_string(),
            dedupe_key: None,
            run_at: now,
            max_attempts: 1,
            created_at: now,
        };
        store
            .create_batch(&batch, &operations, &job)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let before = upstream_requests(&http, &base).await?;
        let started = Instant::now();
        let done = run_batch(store.as_ref(), &runtime, &org, &id, &clock, &TokioSleeper)
            .await
            .map_err(|e| anyhow::anyhow!("batch on {name}: {e:?}"))?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            done.succeeded == i64::from(args.operations),
            "{name}: {} of {} operations succeeded",
            done.succeeded,
            args.operations
        );
        report(
            name,
            &http,
            &base,
            before,
            &runtime,
            args.operations,
            secs,
            args.latency_ms,
        )
        .await?;
        emu.shutdown().await;
    }
    Ok(())
}

/// The database (a temporary SQLite file `file`, or the one given), a fresh master key, and an
/// HTTP client, as the write benchmarks use them.
pub(crate) async fn open(
    file: &str,
    database_url: Option<String>,
) -> anyhow::Result<(Arc<dyn Store>, Arc<Keys>, reqwest::Client)> {
    let url = match database_url {
        Some(url) => url,
        None => format!("sqlite://{}", tempfile_dir()?.join(file).display()),
    };
    let store = ironbridge_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    Ok((store, keys, reqwest::Client::new()))
}

/// A connection ready for a write benchmark: synced (the reference data writes name), an
/// active vendor and item, and the emulator adding `latency_ms` to every call and enforcing
/// the system's concurrency limit.
pub(crate) struct WriteBench {
    pub connection: EmulatedConnection,
    pub vendor: String,
    pub item: String,
}

/// Starts `name`'s emulator, connects and syncs it, and sets its latency.
pub(crate) async fn prepare(
    name: &str,
    store: &Arc<dyn Store>,
    keys: &Arc<Keys>,
    http: &reqwest::Client,
    latency_ms: u64,
) -> anyhow::Result<WriteBench> {
    let system = System::from_str(name)?;
    let connection = connect_emulated(system, 100, store, keys, http).await?;
    let EmulatedConnection {
        base,
        clock,
        org,
        conn,
        runtime,
        ..
    } = &connection;
    sync_connection_with(
        store.as_ref(),
        runtime.connector().as_ref(),
        org,
        conn,
        &SyncOptions {
            full: true,
            ..SyncOptions::default()
        },
        clock,
    )
    .await
    .map_err(|e| anyhow::anyhow!("sync of {name}: {e}"))?;
    let vendor = active(store.as_ref(), conn, Entity::VENDOR).await?;
    let item = active(store.as_ref(), conn, Entity::ITEM).await?;
    let limits = runtime.system().limits;
    emulator_json(
        http,
        reqwest::Method::PATCH,
        format!("{base}/__emulator/faults"),
        Some(json!({"latency_ms": latency_ms, "concurrency_limit": limits.concurrency})),
    )
    .await?;
    Ok(WriteBench {
        connection,
        vendor,
        item,
    })
}

/// Prints one line: `writes` creates in `secs` against what the system's limits allow, with
/// the source's requests, its 429s and its creates since request `before`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn report(
    name: &str,
    http: &reqwest::Client,
    base: &str,
    before: u64,
    runtime: &ironbridge_core::runtime::ConnectionRuntime,
    writes: u32,
    secs: f64,
    latency_ms: u64,
) -> anyhow::Result<()> {
    let limits = runtime.system().limits;
    let concurrency = runtime.connector().read_concurrency().max(1);
    let requests = upstream_requests(http, base).await? - before;
    let throttled = throttled_since(http, base, before).await?;
    let log = emulator_json(
        http,
        reqwest::Method::GET,
        format!("{base}/__emulator/requests"),
        None,
    )
    .await?;
    let creates = log["entries"].as_array().map_or(0, |e| {
        e.iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["seq"].as_u64().is_some_and(|s| s > before)
                    && !r["path"].as_str().unwrap_or("").contains("token")
            })
            .count()
    });
    let rate = f64::from(writes) / secs;
    // What the limits allow: every call in flight for the latency, at most `concurrency`
    // at once, and no more than the documented rate where there is one; a write that
    // takes several calls (NetSuite answers a create with its location, read next)
    // divides it.
    let calls_per_write = (requests as f64 / f64::from(writes)).max(1.0);
    let mut calls = concurrency as f64 * 1000.0 / latency_ms.max(1) as f64;
    if limits.per_second > 0.0 {
        calls = calls.min(limits.per_second);
    }
    let allowed = calls / calls_per_write;
    println!(
        "{name} | {rate:.1} | {allowed:.1} | {:.2} | {requests} | {throttled} | {creates}",
        rate / allowed
    );
    Ok(())
}
