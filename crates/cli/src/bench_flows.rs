//! `ironbridge bench flows`: a flow run's throughput against each emulated system with
//! latency added to every call. A flow (a jq transform shaping each item into a purchase order,
//! then a write step) runs over `--items` items through the real run (`engine::flows`) and the
//! connection's runtime, as a worker runs it. The figure that matters is how close it comes to
//! what the system's limits allow (its concurrency over the latency, or its request rate where
//! that binds first), with no request refused 429 and exactly one create at the source per item.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use ironbridge_connectors::sleeper::TokioSleeper;
use ironbridge_core::Clock;
use ironbridge_core::crypto::Keys;
use ironbridge_core::flows::{new_run, trigger_type};
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{Flow, OrgId, RunStart, run_status};
use ironbridge_emulators::System;
use ironbridge_engine::flows::{FlowDeps, run_flow};
use ironbridge_engine::sync::{SyncOptions, sync_connection_with};
use ironbridge_model::Entity;
use ironbridge_model::flows::FlowIn;
use serde_json::{Value, json};

use crate::bench::{
    EmulatedConnection, connect_emulated, emulator_json, tempfile_dir, throttled_since,
    upstream_requests,
};
use crate::bench_batches::active;

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct FlowBenchArgs {
    /// Items of the run.
    #[arg(long, default_value_t = 300)]
    pub items: u32,
    /// Items per batch of the write step (1–100).
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

/// Runs the benchmark and prints one line per system.
pub async fn run(args: FlowBenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench-flows.db").display()));
    let store = ironbridge_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    let http = reqwest::Client::new();
    println!(
        "items: {}, batch_size: {}, latency: {} ms",
        args.items, args.batch_size, args.latency_ms
    );
    println!(
        "system | items/s | allowed items/s | ratio | source requests | 429 | creates at source"
    );
    for name in &args.systems {
        let system = System::from_str(name)?;
        let EmulatedConnection {
            emu,
            base,
            clock,
            org,
            conn,
            runtime,
            runtimes,
        } = connect_emulated(system, 100, &store, &keys, &http).await?;
        sync_connection_with(
            store.as_ref(),
            runtime.connector().as_ref(),
            &org,
            &conn,
            &SyncOptions {
                full: true,
                ..SyncOptions::default()
            },
            &clock,
        )
        .await
        .map_err(|e| anyhow::anyhow!("sync of {name}: {e}"))?;
        let vendor = active(store.as_ref(), &conn, Entity::VENDOR).await?;
        let item = active(store.as_ref(), &conn, Entity::ITEM).await?;
        let limits = runtime.system().limits;
        let concurrency = runtime.connector().read_concurrency().max(1);
        emulator_json(
            &http,
            reqwest::Method::PATCH,
            format!("{base}/__emulator/faults"),
            Some(json!({"latency_ms": args.latency_ms, "concurrency_limit": limits.concurrency})),
        )
        .await?;
        let doc: FlowIn = serde_json::from_value(json!({
            "key": "bench",
            "name": "Orders from items",
            "trigger": {"type": "manual"},
            "steps": [
                {"type": "transform", "id": "shape", "jq": "{vendor_id: .vendor, line_items: [{item_id: .item, quantity: .quantity}]}"},
                {"type": "write", "id": "create", "connection_id": conn.0, "entity": "purchase-orders", "batch_size": args.batch_size.clamp(1, 100)}
            ]
        }))?;
        let now = clock.now();
        let flow = Flow {
            id: new_id("flw", now.micros()),
            org_id: org.0.clone(),
            key: doc.key.clone(),
            version: 1,
            document: serde_json::to_string(&doc)?,
            enabled: true,
            trigger_type: trigger_type(&doc.trigger).into(),
            trigger_connection_id: None,
            feed: None,
            next_run_at: None,
            active_run_id: None,
            created_at: now,
            updated_at: now,
        };
        store
            .create_flow(&flow, false)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let inputs: Vec<String> = (0..args.items)
            .map(|i| {
                json!({"vendor": vendor, "item": item, "quantity": format!("{}", i % 7 + 1)})
                    .to_string()
            })
            .collect();
        let (run, job) = new_run(&org.0, &flow.id, 1, "manual", inputs.len(), now);
        store
            .create_flow_run(&run, &inputs, &job, &RunStart::Manual)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let before = upstream_requests(&http, &base).await?;
        let deps = FlowDeps {
            store: store.as_ref(),
            runtimes: &runtimes,
            clock: &clock,
            sleeper: &TokioSleeper,
        };
        let started = Instant::now();
        let done = run_flow(&deps, &OrgId(org.0.clone()), &run.id)
            .await
            .map_err(|e| anyhow::anyhow!("flow on {name}: {e:?}"))?;
        let secs = started.elapsed().as_secs_f64();
        let requests = upstream_requests(&http, &base).await? - before;
        let throttled = throttled_since(&http, &base, before).await?;
        let log = emulator_json(
            &http,
            reqwest::Method::GET,
            format!("{base}/__emulator/requests"),
            None,
        )
        .await?;
        let creates = log["entries"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|r: &&Value| {
                    r["method"] == "POST"
                        && r["seq"].as_u64().is_some_and(|s| s > before)
                        && !r["path"].as_str().unwrap_or("").contains("token")
                })
                .count()
        });
        anyhow::ensure!(
            done.status == run_status::SUCCEEDED,
            "{name}: the run ended {} ({:?})",
            done.status,
            done.error
        );
        let rate = f64::from(args.items) / secs;
        // As `bench batches` counts it: every call in flight for the latency, at most
        // `concurrency` at once, no more than the documented rate, divided by the calls one
        // write takes.
        let calls_per_write = (requests as f64 / f64::from(args.items)).max(1.0);
        let mut calls = concurrency as f64 * 1000.0 / args.latency_ms.max(1) as f64;
        if limits.per_second > 0.0 {
            calls = calls.min(limits.per_second);
        }
        let allowed = calls / calls_per_write;
        println!(
            "{name} | {rate:.1} | {allowed:.1} | {:.2} | {requests} | {throttled} | {creates}",
            rate / allowed
        );
        emu.shutdown().await;
    }
    Ok(())
}
