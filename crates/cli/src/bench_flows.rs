//! `ironbridge bench flows`: a flow run's throughput against each emulated system with
//! latency added to every call. A flow (a jq transform shaping each item into a purchase order,
//! then a write step) runs over `--items` items through the real run (`engine::flows`) and the
//! connection's runtime, as a worker runs it. The figure that matters is how close it comes to
//! what the system's limits allow (its concurrency over the latency, or its request rate where
//! that binds first), with no request refused 429 and exactly one create at the source per item.

use std::time::Instant;

use ironbridge_connectors::sleeper::TokioSleeper;
use ironbridge_core::Clock;
use ironbridge_core::flows::{new_run, trigger_type};
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{Flow, OrgId, RunStart, run_status};
use ironbridge_engine::flows::{FlowDeps, run_flow};
use ironbridge_model::flows::FlowIn;
use serde_json::json;

use crate::bench::{EmulatedConnection, upstream_requests};
use crate::bench_batches::{WriteBench, open, prepare, report};

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
    let (store, keys, http) = open("bench-flows.db", database_url).await?;
    println!(
        "items: {}, batch_size: {}, latency: {} ms",
        args.items, args.batch_size, args.latency_ms
    );
    println!(
        "system | items/s | allowed items/s | ratio | source requests | 429 | creates at source"
    );
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
                    runtimes,
                },
            vendor,
            item,
        } = prepare(name, &store, &keys, &http, args.latency_ms).await?;
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
        anyhow::ensure!(
            done.status == run_status::SUCCEEDED,
            "{name}: the run ended {} ({:?})",
            done.status,
            done.error
        );
        report(
            name,
            &http,
            &base,
            before,
            &runtime,
            args.items,
            secs,
            args.latency_ms,
        )
        .await?;
        emu.shutdown().await;
    }
    Ok(())
}
