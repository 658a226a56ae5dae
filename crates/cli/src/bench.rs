//! `ironbridge bench api`: measures the API end to end on this machine. It starts the real
//! server in-process on a fresh database, loads a sandbox connection, then times page reads
//! (following cursors) and single-record reads over HTTP, and reports latency percentiles,
//! throughput and peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ironbridge_core::crypto::{Keys, new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::netguard::Egress;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{NewApiKey, Organization};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_engine::webhooks::{Dispatcher, WebhookConfig};
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
    /// Also time the same page reads as MCP `list_purchase_orders` calls (`POST /mcp`),
    /// each right after its REST read of the same page, and print the ratio.
    #[arg(long)]
    pub mcp: bool,
    /// Also time pages of 200 purchase orders of a second connection with five field
    /// mapping overrides, each right after the same page of the first (no overrides), and
    /// print the ratio.
    #[arg(long)]
    pub overrides: bool,
}

/// Five overrides of the sandbox's purchase orders: two custom fields, a header remap, a line
/// remap and a line custom field.
const BENCH_OVERRIDES: [(&str, &str, &str); 5] = [
    ("custom_fields.status_code", "status", "text"),
    ("custom_fields.total", "totalAmount", "decimal"),
    ("memo", "poNumber", "text"),
    ("line_items.description", "uom", "text"),
    ("line_items.custom_fields.qty", "quantity", "decimal"),
];

/// Pages of 200 orders of a connection with [`BENCH_OVERRIDES`] against the same pages of
/// one without, interleaved.
async fn overrides_case(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    plain_token: &str,
    args: &BenchArgs,
) -> anyhow::Result<Vec<Value>> {
    let created: Value = client
        .post(format!("{base}/v1/connections"))
        .bearer_auth(admin)
        .json(&json!({"system": "sandbox", "settings": {"purchase_orders": args.purchase_orders}}))
        .send()
        .await?
        .error_for_status()
        .context("creating the second sandbox connection")?
        .json()
        .await?;
    let token = created["token"].as_str().context("no token")?.to_string();
    let id = created["connection"]["id"].as_str().context("no id")?;
    for (target, path, kind) in BENCH_OVERRIDES {
        client
            .put(format!(
                "{base}/v1/connections/{id}/field-mappings/purchase_order/{target}"
            ))
            .bearer_auth(admin)
            .json(&json!({"source_path": path, "conversion": {"type": kind}}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("setting the override of {target}"))?;
    }
    let (mut plain, mut mapped) = (Vec::new(), Vec::new());
    let (mut plain_total, mut mapped_total) = (Duration::ZERO, Duration::ZERO);
    let mut cursors: [Option<String>; 2] = [None, None];
    for _ in 0..args.requests {
        for (i, token) in [plain_token, token.as_str()].into_iter().enumerate() {
            let mut url = format!("{base}/v1/purchase-orders?page_size=200");
            if let Some(c) = &cursors[i] {
                url.push_str(&format!("&cursor={c}"));
            }
            let s = Instant::now();
            let page: Value = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let took = s.elapsed();
            if i == 0 {
                plain.push(took);
                plain_total += took;
            } else {
                if page["data"][0]["custom_fields"]
                    .get("status_code")
                    .is_none()
                {
                    anyhow::bail!("the overrides are not applied: {}", page["data"][0]);
                }
                mapped.push(took);
                mapped_total += took;
            }
            cursors[i] = page["next_cursor"].as_str().map(str::to_string);
        }
    }
    let (mut a, mut b) = (plain.clone(), mapped.clone());
    a.sort();
    b.sort();
    let ratio = |p: f64| percentile(&b, p) / percentile(&a, p).max(1e-9);
    Ok(vec![
        summary(
            "GET /v1/purchase-orders page_size=200, no overrides",
            plain,
            plain_total,
        ),
        summary(
            "GET /v1/purchase-orders page_size=200, five overrides",
            mapped,
            mapped_total,
        ),
        json!({"name": "five overrides / none, same pages interleaved", "p50_ratio": ratio(0.50), "p95_ratio": ratio(0.95),
            "p50_overhead_ms": percentile(&b, 0.50) - percentile(&a, 0.50)}),
    ])
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
    let webhooks = Dispatcher::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        WebhookConfig::default(),
    )?;
    let state = AppState::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        Arc::new(Runtimes::new(
            ironbridge_engine::registry::builtin_for(clock.clone(), Egress::local()),
            keys.clone(),
        )),
        webhooks,
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
        mcp_access: ironbridge_model::api::McpAccess::Read,
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
    let mut mcp_pages = Vec::with_capacity(args.requests as usize);
    let mut mcp_total = Duration::ZERO;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let t = Instant::now();
    for _ in 0..args.requests {
        if args.mcp {
            // The same page as a tool call: the REST cursor is the tool's cursor.
            let mut arguments = json!({"page_size": args.page_size});
            if let Some(c) = &cursor {
                arguments["cursor"] = json!(c);
            }
            let s = Instant::now();
            let answer: Value = client
                .post(format!("{base}/mcp"))
                .bearer_auth(&token)
                .header("Accept", "application/json, text/event-stream")
                .header("MCP-Protocol-Version", "2025-06-18")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "list_purchase_orders", "arguments": arguments}}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let took = s.elapsed();
            mcp_pages.push(took);
            mcp_total += took;
            if answer["result"]["isError"] == true || answer.get("error").is_some() {
                anyhow::bail!("the MCP call failed: {answer}");
            }
        }
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
    let pages_total = t.elapsed() - mcp_total;

    let pages_sorted = pages;
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
            pages_sorted.clone(),
            pages_total,
        ),
        summary("GET /v1/purchase-orders/{id}", singles, singles_total),
        json!({"name": "peak resident memory", "mib": peak_rss_mib()}),
    ];
    let mut results = results;
    if args.mcp {
        let mut rest_sorted = pages_sorted.clone();
        rest_sorted.sort();
        let mut mcp_sorted = mcp_pages.clone();
        mcp_sorted.sort();
        let ratio = |p: f64| percentile(&mcp_sorted, p) / percentile(&rest_sorted, p).max(1e-9);
        results.push(summary(
            &format!(
                "MCP tools/call list_purchase_orders page_size={}",
                args.page_size
            ),
            mcp_pages,
            mcp_total,
        ));
        results.push(json!({"name": "MCP / REST, same pages interleaved", "p50_ratio": ratio(0.50), "p95_ratio": ratio(0.95),
            "p50_overhead_ms": percentile(&mcp_sorted, 0.50) - percentile(&rest_sorted, 0.50)}));
    }
    if args.overrides {
        results.extend(overrides_case(&client, &base, &secret, &token, &args).await?);
    }
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

/// An emulator of a system, running in this process on real time, and a connection to it
/// opened through its runtime (as the worker and the API use it).
pub(crate) struct EmulatedConnection {
    pub emu: ironbridge_emulators::RunningEmulator,
    pub base: String,
    pub clock: ironbridge_core::OffsetClock,
    pub org: ironbridge_core::store::OrgId,
    pub conn: ironbridge_core::store::ConnId,
    pub runtime: Arc<ironbridge_core::runtime::ConnectionRuntime>,
    /// The runtimes the connection's runtime belongs to (a flow finds it there).
    pub runtimes: Arc<Runtimes>,
}

/// Starts `system`'s emulator with `records` purchase orders and connects to it.
pub(crate) async fn connect_emulated(
    system: ironbridge_emulators::System,
    records: u64,
    store: &Arc<dyn ironbridge_core::store::Store>,
    keys: &Arc<Keys>,
    http: &reqwest::Client,
) -> anyhow::Result<EmulatedConnection> {
    use ironbridge_connectors::{bc, netsuite, sap};
    use ironbridge_core::OffsetClock;
    use ironbridge_core::service::{Deps, create_connection};
    use ironbridge_core::store::{ConnId, OrgId};
    use ironbridge_emulators::{EmulatorConfig, System};
    use ironbridge_model::api::ConnectionIn;

    let start_ms = SystemClock.now().micros() / 1000;
    let mut config = EmulatorConfig::new(system, 1, records);
    config.start_time_ms = start_ms;
    // A warehouse of a fixed size (2,000 items in 3 facilities): only its outboxes grow with
    // `--records`, so the run shows what the outbox's size costs.
    config.asctrac.items = 2_000;
    // Both clocks follow real time (rate limits and the emulators' per-minute budgets
    // work as in production) and jump ahead together for the incremental run.
    config.real_time_clock = true;
    let emu =
        ironbridge_emulators::start(config, tokio::net::TcpListener::bind("127.0.0.1:0").await?)
            .await?;
    let base = emu.base_url();
    let clock = OffsetClock::new();
    let registry =
        ironbridge_engine::registry::builtin_for(Arc::new(clock.clone()), Egress::local());
    let now = clock.now();
    let org = Organization {
        id: new_id("org", now.micros()),
        name: "bench".into(),
        connection_credits: 10,
        created_at: now,
    };
    let key = NewApiKey {
        id: new_id("key", now.micros()),
        name: "bench".into(),
        token_hash: token_hash(&new_token(API_KEY_PREFIX)),
        prefix: "ibk_".into(),
        created_at: now,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store
        .create_organization(&org, &key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (id, settings, credentials) = match system {
        System::NetSuite => {
            let cert = ironbridge_connectors::netsuite::certs::generate_certificate("bench", now)?;
            let register = json!({"client_id": "bench", "certificate_id": "bench-1", "certificate_pem": cert.certificate_pem});
            emulator_json(
                http,
                reqwest::Method::POST,
                format!("{base}/__emulator/netsuite/m2m-clients"),
                Some(register),
            )
            .await?;
            (
                netsuite::ID,
                json!({"base_url": base}),
                json!({"account_id": "1234567", "client_id": "bench", "certificate_id": "bench-1", "private_key_pem": cert.private_key_pem}),
            )
        }
        System::SapS4Hana => {
            let c = emulator_json(
                http,
                reqwest::Method::GET,
                format!("{base}/__emulator/credentials"),
                None,
            )
            .await?;
            (
                sap::ID,
                json!({"base_url": base, "page_size": 1000}),
                json!({"username": c["user"], "password": c["password"]}),
            )
        }
        System::BusinessCentral => {
            let c = emulator_json(
                http,
                reqwest::Method::GET,
                format!("{base}/__emulator/credentials"),
                None,
            )
            .await?;
            (
                bc::ID,
                json!({"base_url": base, "login_url": base, "tenant_id": c["tenant_id"], "environment": c["environment"]}),
                json!({"client_id": c["client_id"], "client_secret": c["client_secret"]}),
            )
        }
        System::Asctrac => {
            let c = emulator_json(
                http,
                reqwest::Method::GET,
                format!("{base}/__emulator/credentials"),
                None,
            )
            .await?;
            (
                ironbridge_connectors::asctrac::ID,
                json!({"base_url": base, "time_zone": "America/New_York", "facilities": "01,02,03", "docks": "D1,D2", "page_size": 1000}),
                json!({"client_id": c["client_id"], "client_secret": c["client_secret"]}),
            )
        }
        System::Samsara => {
            let c = emulator_json(
                http,
                reqwest::Method::GET,
                format!("{base}/__emulator/credentials"),
                None,
            )
            .await?;
            (
                ironbridge_connectors::samsara::ID,
                json!({"base_url": base}),
                json!({"api_token": c["tokens"][0]}),
            )
        }
        System::NexTraq => {
            let c = emulator_json(
                http,
                reqwest::Method::GET,
                format!("{base}/__emulator/credentials"),
                None,
            )
            .await?;
            (
                ironbridge_connectors::nextraq::ID,
                json!({"base_url": base, "time_zone": "Eastern"}),
                json!({"username": c["username"], "password": c["password"]}),
            )
        }
    };
    let deps = Deps {
        store: store.as_ref(),
        keys,
        registry: &registry,
        clock: &clock,
    };
    let input = ConnectionIn {
        system: id,
        name: None,
        credentials: credentials.as_object().cloned(),
        settings: settings.as_object().cloned(),
        end_user: None,
        mcp_access: None,
    };
    let created = create_connection(&deps, &OrgId(org.id.clone()), &input)
        .await
        .map_err(|e| anyhow::anyhow!("connecting {}: {e}", system.name()))?;
    let conn = ConnId(created.connection.id.clone());
    // Through the connection's runtime, as the worker syncs: on a database several
    // processes may share (PostgreSQL), the sync leaves the write share of the limit free.
    let mut runtimes = Runtimes::new(registry.clone(), keys.clone());
    if store.shared_by_processes() {
        runtimes = runtimes.shared(ironbridge_engine::slots::StoreSlots::new(
            store.clone(),
            Arc::new(clock.clone()),
            Arc::new(ironbridge_connectors::sleeper::TokioSleeper),
        ));
    }
    let runtime = runtimes
        .adopt(&created.connection, created.connector.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(EmulatedConnection {
        emu,
        base,
        clock,
        org: OrgId(org.id),
        conn,
        runtime,
        runtimes: Arc::new(runtimes),
    })
}

pub(crate) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ironbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What `bench sync` measures.
#[derive(Debug, clap::Args)]
pub struct SyncBenchArgs {
    /// Purchase orders in each emulated ERP (for `asctrac`: warehouse events in its outboxes).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Purchase orders changed before the incremental sync (for `asctrac`: warehouse events
    /// that happen before it).
    #[arg(long, default_value_t = 1_000)]
    pub changes: u64,
    /// Systems to measure (comma-separated).
    #[arg(
        long,
        default_value = "netsuite,sap,business-central",
        value_delimiter = ','
    )]
    pub systems: Vec<String>,
    /// Latency the emulators add to every API call (milliseconds), to measure how well a
    /// sync uses the system's concurrency limit.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Megabytes of source pages each sync holds at once (the worker's `sync_memory_mb`).
    #[arg(long, default_value_t = ironbridge_engine::sync::budget::DEFAULT_MEMORY_BUDGET >> 20)]
    pub memory_mb: usize,
}

/// PostgreSQL's WAL position in bytes, read before and after a sync to see what it wrote.
const WAL_POSITION: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";

/// Requests answered 429 since log entry `since`.
pub(crate) async fn throttled_since(
    http: &reqwest::Client,
    base: &str,
    since: u64,
) -> anyhow::Result<u64> {
    let log = emulator_json(
        http,
        reqwest::Method::GET,
        format!("{base}/__emulator/requests?since={since}"),
        None,
    )
    .await?;
    Ok(log["entries"].as_array().map_or(0, |e| {
        e.iter().filter(|e| e["status"] == 429).count() as u64
    }))
}

pub(crate) async fn emulator_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method, url);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let text = request.send().await?.error_for_status()?.text().await?;
    Ok(if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    })
}

pub(crate) async fn upstream_requests(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let counts = emulator_json(
        http,
        reqwest::Method::GET,
        format!("{base}/__emulator/requests/count"),
        None,
    )
    .await?;
    Ok(counts["total"].as_u64().unwrap_or(0))
}

/// Reads every entity the connector reads, whole, page after page (one call at a time, as
/// a plain script following next links would): the bodies are read and cut into records,
/// nothing is mapped or stored. Returns the purchase orders read.
async fn bare_pull(connector: &dyn ironbridge_core::connector::Connector) -> anyhow::Result<u64> {
    use ironbridge_core::connector::ReadWindow;
    let mut orders = 0;
    for entity in connector.descriptor().readable() {
        let mut cursor: Option<String> = None;
        loop {
            let page = connector
                .fetch_page(entity, &ReadWindow::ALL, cursor.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{entity}: {e}"))?;
            if entity == ironbridge_model::Entity::PURCHASE_ORDER {
                orders += page.records.len() as u64;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(orders)
}

/// Full then incremental sync of each emulated ERP into a fresh database, through the real
/// connectors and sync engine; reports records/s, upstream requests and peak memory.
pub async fn run_sync(args: SyncBenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    use ironbridge_core::store::RecordQuery;
    use ironbridge_emulators::System;
    use ironbridge_engine::sync::{SyncOptions, sync_connection_with};
    use std::str::FromStr;

    let dir = tempfile_dir()?;
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", dir.join("bench-sync.db").display()));
    let store = ironbridge_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    // PostgreSQL only: a second pool reads the WAL position and row versions.
    let pg_diagnostics = if url.starts_with("postgres") {
        Some(
            ironbridge_store::PgStore::connect(&url, None)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?,
        )
    } else {
        None
    };
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    let http = reqwest::Client::new();
    println!(
        "backend: {}, purchase orders per system: {}, changes: {}",
        if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        },
        args.records,
        args.changes
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
            ..
        } = connect_emulated(system, args.records, &store, &keys, &http).await?;
        let connector = runtime.connector().clone();
        let owner = org.clone();
        // One sync of the connection, full or incremental, named in its error.
        let sync = |full: bool, what: &'static str| {
            let options = SyncOptions {
                full,
                max_concurrency: Some(runtime.sync_concurrency()),
                memory_budget: Some(args.memory_mb << 20),
                ..SyncOptions::default()
            };
            let (store, connector, owner, conn, clock) =
                (&store, &connector, &owner, &conn, &clock);
            async move {
                sync_connection_with(
                    store.as_ref(),
                    connector.as_ref(),
                    owner,
                    conn,
                    &options,
                    clock,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{what} of {name}: {e}"))
            }
        };
        // The system's documented concurrency limit, enforced by the emulator (429 beyond
        // it), so the run shows whether we ever exceed it; plus the injected latency.
        let concurrency = runtime.sync_concurrency();
        let limit = match system {
            System::NetSuite => 15,
            _ => concurrency as u64,
        };
        emulator_json(
            &http,
            reqwest::Method::PATCH,
            format!("{base}/__emulator/faults"),
            Some(json!({"latency_ms": args.latency_ms, "concurrency_limit": limit})),
        )
        .await?;
        if system == System::Asctrac {
            // A warehouse: its outboxes drained (each page committed, then acknowledged) and
            // its stock read whole; then new events flow in and an incremental sync reads them.
            let count = |entities: &'static [ironbridge_model::Entity]| {
                let (store, conn) = (&store, &conn);
                async move {
                    let mut n = 0;
                    for &entity in entities {
                        let q = RecordQuery {
                            entity,
                            after_id: None,
                            after_modified: None,
                            modified_after: None,
                            modified_before: None,
                            include_deleted: true,
                            include_raw: false,
                            limit: 1,
                        };
                        n += store
                            .count_records(conn, &q)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    Ok::<u64, anyhow::Error>(n)
                }
            };
            use ironbridge_model::Entity as E;
            const OUTBOXES: &[E] = &[
                E::RECEIPT,
                E::OUTBOUND_ORDER,
                E::SHIPMENT,
                E::INVENTORY_TRANSACTION,
            ];
            let before = upstream_requests(&http, &base).await?;
            let started = Instant::now();
            let reports = sync(false, "initial sync").await?;
            let full_secs = started.elapsed().as_secs_f64();
            let full_requests = upstream_requests(&http, &base).await? - before;
            let full_throttled = throttled_since(&http, &base, before).await?;
            let full_peak = peak_rss_mib();
            let rows: u64 = reports
                .iter()
                .filter(|r| r.entity.is_some_and(|e| OUTBOXES.contains(&e)))
                .map(|r| r.counts.added + r.counts.updated + r.counts.unchanged)
                .sum();
            let stored = count(OUTBOXES).await?;
            let levels = count(&[E::INVENTORY_LEVEL]).await?;
            let outbox = emulator_json(
                &http,
                reqwest::Method::GET,
                format!("{base}/__emulator/asctrac/outbox"),
                None,
            )
            .await?;
            let left: u64 = outbox
                .as_object()
                .map(|o| {
                    o.values()
                        .map(|c| c["F"].as_u64().unwrap_or(0) + c["S"].as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0);
            // `changes` more events happen at the warehouse (one a minute).
            let advance = 60 * args.changes.max(1);
            emulator_json(
                &http,
                reqwest::Method::POST,
                format!("{base}/__emulator/clock"),
                Some(json!({"advance_seconds": advance})),
            )
            .await?;
            clock.advance_secs(advance as i64);
            let before = upstream_requests(&http, &base).await?;
            let started = Instant::now();
            let reports = sync(false, "incremental sync").await?;
            let inc_secs = started.elapsed().as_secs_f64();
            let inc_requests = upstream_requests(&http, &base).await? - before;
            let inc_rows: u64 = reports
                .iter()
                .filter(|r| r.entity.is_some_and(|e| OUTBOXES.contains(&e)))
                .map(|r| r.counts.added + r.counts.updated + r.counts.unchanged)
                .sum();
            println!(
                "{}",
                json!({
                    "system": name,
                    "latency_ms": args.latency_ms,
                    "concurrency": concurrency,
                    "initial": {"outbox_rows_read": rows, "records_stored": stored, "inventory_levels": levels, "seconds": full_secs, "rows_per_s": rows as f64 / full_secs, "upstream_requests": full_requests, "answered_429": full_throttled, "rows_left_in_outboxes": left, "peak_rss_mib": full_peak},
                    "incremental": {"events_at_source": args.changes, "outbox_rows_read": inc_rows, "seconds": inc_secs, "upstream_requests": inc_requests},
                    "peak_rss_mib": peak_rss_mib(),
                })
            );
            emu.shutdown().await;
            continue;
        }
        if matches!(system, System::Samsara | System::NexTraq) {
            samsara_run(&SamsaraRun {
                name,
                args: &args,
                http: &http,
                base: &base,
                store: &store,
                conn: &conn,
                connector: connector.as_ref(),
                clock: &clock,
                concurrency,
                sync: &|full| Box::pin(sync(full, "sync")),
            })
            .await?;
            emu.shutdown().await;
            continue;
        }
        // The reference: the same pages through the same connector and client, one after
        // another, bodies read and cut into records, nothing mapped or stored.
        let before = upstream_requests(&http, &base).await?;
        let started = Instant::now();
        let bare_orders = bare_pull(connector.as_ref())
            .await
            .map_err(|e| anyhow::anyhow!("bare pull of {name}: {e}"))?;
        let bare_secs = started.elapsed().as_secs_f64();
        let bare_requests = upstream_requests(&http, &base).await? - before;
        let bare_peak = peak_rss_mib();
        let before = upstream_requests(&http, &base).await?;
        let started = Instant::now();
        sync(true, "full sync").await?;
        let full_secs = started.elapsed().as_secs_f64();
        let full_requests = upstream_requests(&http, &base).await? - before;
        let full_throttled = throttled_since(&http, &base, before).await?;
        let full_peak = peak_rss_mib();
        // With latency L and C calls in flight, the sync cannot take less than
        // requests × L / C: how close we come is how well we use the concurrency limit.
        let bound_secs =
            full_requests as f64 * args.latency_ms as f64 / 1000.0 / concurrency.max(1) as f64;
        let q = RecordQuery {
            entity: ironbridge_model::Entity::PURCHASE_ORDER,
            after_id: None,
            after_modified: None,
            modified_after: None,
            modified_before: None,
            include_deleted: true,
            include_raw: false,
            limit: 1,
        };
        let orders = store
            .count_records(&conn, &q)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;

        // Change some orders at the source, let time pass, sync incrementally.
        emulator_json(
            &http,
            reqwest::Method::POST,
            format!("{base}/__emulator/clock"),
            Some(json!({"advance_seconds": 600})),
        )
        .await?;
        clock.advance_secs(600);
        for n in 1..=args.changes.min(args.records) {
            http.post(format!(
                "{base}/__emulator/records/purchase_orders/{n}/touch"
            ))
            .send()
            .await?
            .error_for_status()?;
        }
        emulator_json(
            &http,
            reqwest::Method::POST,
            format!("{base}/__emulator/clock"),
            Some(json!({"advance_seconds": 300})),
        )
        .await?;
        clock.advance_secs(300);
        let before = upstream_requests(&http, &base).await?;
        let started = Instant::now();
        let reports = sync(false, "incremental sync").await?;
        let inc_secs = started.elapsed().as_secs_f64();
        let inc_requests = upstream_requests(&http, &base).await? - before;
        let inc_throttled = throttled_since(&http, &base, before).await?;
        let po = reports
            .iter()
            .find(|r| r.entity == Some(ironbridge_model::Entity::PURCHASE_ORDER));
        let seen = po.map_or(0, |r| {
            r.counts.updated + r.counts.unchanged + r.counts.added
        });
        // A full sync with nothing changed at the source: what it costs the database. On
        // PostgreSQL, the record rows it rewrote (new row versions) and the WAL it wrote.
        emulator_json(
            &http,
            reqwest::Method::POST,
            format!("{base}/__emulator/clock"),
            Some(json!({"advance_seconds": 900})),
        )
        .await?;
        clock.advance_secs(900);
        let pg = match &pg_diagnostics {
            Some(pg) => {
                pg.execute_raw("DROP TABLE IF EXISTS bench_row_versions")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                pg.execute_raw(
                    "CREATE TABLE bench_row_versions AS SELECT id, xmin::text AS version FROM records",
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let wal = pg
                    .scalar_i64(WAL_POSITION)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Some((pg, wal))
            }
            None => None,
        };
        let started = Instant::now();
        sync(true, "idle full sync").await?;
        let idle_secs = started.elapsed().as_secs_f64();
        let (rows_rewritten, wal_bytes) = match pg {
            Some((pg, wal_before)) => {
                let wal = pg
                    .scalar_i64(WAL_POSITION)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let rewritten = pg
                    .scalar_i64(
                        "SELECT COUNT(*) FROM records r JOIN bench_row_versions b ON b.id = r.id WHERE r.xmin::text <> b.version",
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                pg.execute_raw("DROP TABLE bench_row_versions")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (json!(rewritten), json!(wal - wal_before))
            }
            None => (Value::Null, Value::Null),
        };
        println!(
            "{}",
            json!({
                "system": name,
                "latency_ms": args.latency_ms,
                "concurrency": concurrency,
                "bare_pull": {"purchase_orders": bare_orders, "seconds": bare_secs, "orders_per_s": bare_orders as f64 / bare_secs, "upstream_requests": bare_requests, "peak_rss_mib": bare_peak},
                "full": {"purchase_orders": orders, "seconds": full_secs, "orders_per_s": orders as f64 / full_secs, "upstream_requests": full_requests, "answered_429": full_throttled, "concurrency_use": if args.latency_ms > 0 { bound_secs / full_secs } else { f64::NAN }, "rate_vs_bare_pull": (orders as f64 / full_secs) / (bare_orders as f64 / bare_secs), "peak_rss_mib": full_peak},
                "incremental": {"changed_at_source": args.changes, "orders_read": seen, "seconds": inc_secs, "upstream_requests": inc_requests, "answered_429": inc_throttled},
                "idle_full": {"seconds": idle_secs, "record_rows_rewritten": rows_rewritten, "wal_bytes": wal_bytes},
                "peak_rss_mib": peak_rss_mib(),
            })
        );
        emu.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What a fleet run (Samsara, NexTraq) needs from the bench's loop.
struct SamsaraRun<'a> {
    name: &'a str,
    args: &'a SyncBenchArgs,
    http: &'a reqwest::Client,
    base: &'a str,
    store: &'a Arc<dyn ironbridge_core::store::Store>,
    conn: &'a ironbridge_core::store::ConnId,
    connector: &'a dyn ironbridge_core::connector::Connector,
    clock: &'a ironbridge_core::OffsetClock,
    concurrency: usize,
    #[allow(clippy::type_complexity)]
    sync: &'a dyn Fn(
        bool,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = anyhow::Result<Vec<ironbridge_engine::sync::EntityReport>>,
                > + 'a,
        >,
    >,
}

/// A fleet (Samsara, or NexTraq's per-vehicle, per-day trail): GPS points back-filled over
/// the history window (7 days of every vehicle, one point per 30 s; 60 s for NexTraq) into the
/// point storage with the other entities, against a bare pull of the same pages of every
/// entity (bodies read and cut, nothing mapped or stored; `of_bare` compares the two times);
/// then an hour of new points read incrementally; then the retention purge of the older half.
async fn samsara_run(r: &SamsaraRun<'_>) -> anyhow::Result<()> {
    use ironbridge_model::Entity as E;
    let now = r.clock.now();
    let window = ironbridge_core::connector::ReadWindow {
        modified_since: Some(now.plus_secs(-7 * 86_400)),
        modified_until: Some(now.plus_secs(-ironbridge_engine::sync::SETTLE_SECS)),
    };
    let before = upstream_requests(r.http, r.base).await?;
    let started = Instant::now();
    // Every page the sync reads, one after another: the points' history and the other
    // entities (fuel levels, safety events, vehicles...), read whole or over the window.
    let mut bare_points = 0u64;
    let mut bare_records = 0u64;
    for read in r.connector.descriptor().reads {
        let window = match read.kind {
            ironbridge_model::api::ReadKind::Windowed
            | ironbridge_model::api::ReadKind::TimeSeries => window,
            _ => ironbridge_core::connector::ReadWindow::ALL,
        };
        let mut cursor: Option<String> = None;
        loop {
            let page = r
                .connector
                .fetch_page(read.entity, &window, cursor.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("bare pull of {}: {e}", r.name))?;
            if read.entity == E::VEHICLE_LOCATION {
                bare_points += page.records.len() as u64;
            } else {
                bare_records += page.records.len() as u64;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let bare_secs = started.elapsed().as_secs_f64();
    let bare_requests = upstream_requests(r.http, r.base).await? - before;
    let before = upstream_requests(r.http, r.base).await?;
    let started = Instant::now();
    let reports = (r.sync)(false).await?;
    let secs = started.elapsed().as_secs_f64();
    let requests = upstream_requests(r.http, r.base).await? - before;
    let throttled = throttled_since(r.http, r.base, before).await?;
    let peak = peak_rss_mib();
    let points = reports
        .iter()
        .find(|x| x.entity == Some(E::VEHICLE_LOCATION))
        .map_or(0, |x| x.counts.added);
    let records: u64 = reports
        .iter()
        .filter(|x| x.entity != Some(E::VEHICLE_LOCATION))
        .map(|x| x.counts.added)
        .sum();
    // An hour at the source, then an incremental sync.
    emulator_json(
        r.http,
        reqwest::Method::POST,
        format!("{}/__emulator/clock", r.base),
        Some(json!({"advance_seconds": 3600})),
    )
    .await?;
    r.clock.advance_secs(3600);
    let before = upstream_requests(r.http, r.base).await?;
    let started = Instant::now();
    let reports = (r.sync)(false).await?;
    let inc_secs = started.elapsed().as_secs_f64();
    let inc_requests = upstream_requests(r.http, r.base).await? - before;
    let inc_points = reports
        .iter()
        .find(|x| x.entity == Some(E::VEHICLE_LOCATION))
        .map_or(0, |x| x.counts.added);
    // The retention purge of everything older than three and a half days.
    let started = Instant::now();
    let purged = r
        .store
        .purge_points(
            E::VEHICLE_LOCATION,
            now.plus_secs(-84 * 3600),
            5_000,
            u64::MAX,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let purge_secs = started.elapsed().as_secs_f64();
    let _ = r.conn;
    println!(
        "{}",
        json!({
            "system": r.name,
            "vehicles": r.args.records,
            "latency_ms": r.args.latency_ms,
            "concurrency": r.concurrency,
            "bare_pull": {"points": bare_points, "other_records": bare_records, "seconds": bare_secs, "points_per_s": bare_points as f64 / bare_secs, "upstream_requests": bare_requests},
            "initial": {"points_stored": points, "other_records_stored": records, "seconds": secs, "points_per_s": points as f64 / secs,
                "of_bare": bare_secs / secs,
                "upstream_requests": requests, "points_per_request": points as f64 / requests.max(1) as f64,
                "answered_429": throttled, "peak_rss_mib": peak},
            "incremental_hour": {"points_stored": inc_points, "seconds": inc_secs, "upstream_requests": inc_requests},
            "purge": {"points": purged, "seconds": purge_secs, "points_per_s": purged as f64 / purge_secs},
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
