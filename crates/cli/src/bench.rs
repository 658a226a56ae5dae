//! `ironbridge bench api`: measures the API end to end on this machine. It starts the real
//! server in-process on a fresh database, loads a sandbox connection, then times page reads
//! (following cursors) and single-record reads over HTTP, and reports latency percentiles,
//! throughput and peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ironbridge_core::crypto::{Keys, new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{NewApiKey, Organization};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_engine::BuiltinConnectors;
use ironbridge_server::{AppState, ServerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Purchase orders in the sandbox connection (1 to 5000).
    #[arg(long, default_value_t = 5000)]
    pub purchase_orders: u32,
    /// Page reads to time.
    #[arg(long, default_value_t = 2000)]
    pub requests: u32,
    /// Records per page.
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn summary(name: &str, mut samples: Vec<Duration>, total: Duration) -> Value {
    samples.sort();
    json!({
        "name": name,
        "requests": samples.len(),
        "p50_ms": percentile(&samples, 0.50),
        "p95_ms": percentile(&samples, 0.95),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": percentile(&samples, 1.0),
        "requests_per_s": samples.len() as f64 / total.as_secs_f64(),
    })
}

/// Runs the benchmark and prints the figures as JSON lines and a table.
/// `database_url` is the global `--database-url`; without it a temporary SQLite file is used.
pub async fn run(args: BenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let (url, backend) = match &database_url {
        Some(url) => (
            url.clone(),
            if url.starts_with("sqlite:") {
                "sqlite"
            } else {
                "postgres"
            },
        ),
        None => (
            format!("sqlite://{}", dir.join("bench.db").display()),
            "sqlite",
        ),
    };
    let store = ironbridge_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    let shutdown = CancellationToken::new();
    let config = ServerConfig {
        rate_limit_per_second: 0,
        ..ServerConfig::default()
    };
    let state = AppState::new(
        store.clone(),
        keys,
        clock.clone(),
        Arc::new(BuiltinConnectors::new(clock.clone())),
        config,
        shutdown.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(ironbridge_server::serve(listener, state));

    let now = clock.now();
    let org = Organization {
        id: new_id("org", now.micros()),
        name: "bench".into(),
        connection_credits: 10,
        created_at: now,
    };
    let secret = new_token(API_KEY_PREFIX);
    let key = NewApiKey {
        id: new_id("key", now.micros()),
        name: "bench".into(),
        token_hash: token_hash(&secret),
        prefix: token_prefix(&secret),
        created_at: now,
    };
    store
        .create_organization(&org, &key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let created: Value = client
        .post(format!("{base}/v1/connections"))
        .bearer_auth(&secret)
        .json(&json!({"system": "sandbox", "settings": {"purchase_orders": args.purchase_orders}}))
        .send()
        .await?
        .error_for_status()
        .context("creating the sandbox connection")?
        .json()
        .await?;
    let sync_secs = started.elapsed().as_secs_f64();
    let token = created["token"].as_str().context("no token")?.to_string();
    let records: i64 = created["connection"]["sync"]
        .as_array()
        .map(|s| s.iter().filter_map(|e| e["record_count"].as_i64()).sum())
        .unwrap_or(0);

    let mut pages = Vec::with_capacity(args.requests as usize);
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let t = Instant::now();
    for _ in 0..args.requests {
        let mut url = format!("{base}/v1/purchase-orders?page_size={}", args.page_size);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let s = Instant::now();
        let page: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        pages.push(s.elapsed());
        if ids.len() < 1000 {
            ids.extend(
                page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["id"].as_str().map(str::to_string)),
            );
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    let pages_total = t.elapsed();

    let mut singles = Vec::with_capacity(args.requests as usize);
    let t = Instant::now();
    for i in 0..args.requests as usize {
        let id = &ids[i % ids.len().max(1)];
        let s = Instant::now();
        client
            .get(format!("{base}/v1/purchase-orders/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        singles.push(s.elapsed());
    }
    let singles_total = t.elapsed();

    let results = vec![
        json!({"name": "initial sandbox sync (HTTP create + sync)", "records": records, "seconds": sync_secs, "records_per_s": records as f64 / sync_secs}),
        summary(
            &format!("GET /v1/purchase-orders page_size={}", args.page_size),
            pages,
            pages_total,
        ),
        summary("GET /v1/purchase-orders/{id}", singles, singles_total),
        json!({"name": "peak resident memory", "mib": peak_rss_mib()}),
    ];
    println!(
        "backend: {backend}, purchase orders: {}, requests: {}",
        args.purchase_orders, args.requests
    );
    for r in &results {
        println!("{r}");
    }
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ironbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
