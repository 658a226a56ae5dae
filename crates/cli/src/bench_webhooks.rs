//! `ironbridge bench webhooks`: webhook delivery measured on this machine. Events are written
//! to a fresh database the way the engine writes them (each fans out to every endpoint in its
//! transaction); the real dispatcher delivers them, signed, over loopback to a local receiver
//! that verifies every signature. Reports deliveries per second for a burst, and the delay
//! from each event to its arrival (p50/p99) at a steady rate, optionally beside an endpoint
//! that never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironbridge_core::crypto::{Keys, new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{Event, NewApiKey, OrgId, Organization, Store};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_engine::webhooks::endpoints::Endpoints;
use ironbridge_engine::webhooks::{AddressPolicy, Dispatcher, WebhookConfig};
use ironbridge_model::webhooks::WebhookEndpointIn;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What `bench webhooks` measures.
#[derive(Debug, clap::Args)]
pub struct WebhookBenchArgs {
    /// Events written in the burst (each is delivered to every endpoint).
    #[arg(long, default_value_t = 2_000)]
    pub events: u64,
    /// Endpoints receiving every event.
    #[arg(long, default_value_t = 4)]
    pub endpoints: u64,
    /// Events per second in the steady-rate phase (10 seconds).
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Also subscribe an endpoint that never answers (each attempt runs into the timeout).
    #[arg(long)]
    pub hanging: bool,
    /// Let the dispatcher find events by polling only (as a process that did not write them
    /// does), instead of being woken when they are committed.
    #[arg(long)]
    pub poll_only: bool,
}

fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn emit(store: &dyn Store, org: &OrgId, n: u64) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let event = Event {
        id: new_id("evt", now.micros()),
        org_id: org.0.clone(),
        connection_id: None,
        event_type: "system.error".into(),
        data: json!({"code": "BENCH", "n": n}).to_string(),
        created_at: now,
    };
    store
        .insert_event(&event)
        .await
        .map_err(|e| anyhow::anyhow!("cannot write an event: {e}"))
}

/// Waits until the receiver has verified `expected` deliveries (or a minute passes).
async fn arrivals(received: &crate::receiver::Received, expected: u64) -> bool {
    let started = Instant::now();
    while received.verified() < expected {
        if started.elapsed() > Duration::from_secs(60) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// Runs the benchmark and prints the figures.
pub async fn run(args: WebhookBenchArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("ironbridge-bench-webhooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let (store, deliveries_due) = ironbridge_store::open_with_signal(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = WebhookConfig {
        policy: Arc::new(AddressPolicy {
            allowed_networks: vec!["127.0.0.1/32".parse()?],
            https_only: false,
        }),
        wake: (!args.poll_only).then_some(deliveries_due),
        ..WebhookConfig::default()
    };
    let (base, received) = crate::receiver::start().await?;

    let now = clock.now();
    let org = OrgId(new_id("org", now.micros()));
    let secret = new_token(API_KEY_PREFIX);
    store
        .create_organization(
            &Organization {
                id: org.0.clone(),
                name: "bench".into(),
                connection_credits: 1,
                created_at: now,
            },
            &NewApiKey {
                id: new_id("key", now.micros()),
                name: "bench".into(),
                token_hash: token_hash(&secret),
                prefix: token_prefix(&secret),
                created_at: now,
                mcp_access: ironbridge_model::api::McpAccess::Read,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = Endpoints {
        store: store.as_ref(),
        keys: &keys,
        clock: clock.as_ref(),
        policy: &config.policy,
        resolver: config.resolver.as_ref(),
    };
    for i in 0..args.endpoints {
        let name = format!("e{i}");
        let (_, secret) = rules
            .create(
                &org,
                WebhookEndpointIn {
                    url: format!("{base}/hooks/{name}"),
                    description: None,
                    event_types: None,
                    connection_ids: None,
                    disabled: false,
                    secret: None,
                },
            )
            .await?;
        received.expect(&name, secret);
    }
    if args.hanging {
        rules
            .create(
                &org,
                WebhookEndpointIn {
                    url: format!("{base}/hang"),
                    description: Some("never answers".into()),
                    event_types: None,
                    connection_ids: None,
                    disabled: false,
                    secret: None,
                },
            )
            .await?;
    }
    let dispatcher = Dispatcher::new(store.clone(), keys.clone(), clock.clone(), config)?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(shutdown.clone()));
    println!(
        "backend: {backend}, endpoints: {}{}, burst: {} events, steady rate: {}/s",
        args.endpoints,
        if args.hanging {
            " + 1 that never answers"
        } else {
            ""
        },
        args.events,
        args.rate
    );

    // Burst: every event written at once, then delivered as fast as the dispatcher can.
    let started = Instant::now();
    for n in 0..args.events {
        emit(store.as_ref(), &org, n).await?;
    }
    let written = started.elapsed();
    let expected = args.events * args.endpoints;
    let complete = arrivals(&received, expected).await;
    let burst = started.elapsed();
    let tally = received.tally();
    let mut delays = tally.delays_micros.clone();
    delays.sort_unstable();
    let burst_line = json!({
        "phase": "burst",
        "backend": backend,
        "events": args.events,
        "deliveries": tally.verified,
        "complete": complete,
        "refused": tally.refused,
        "events_written_per_s": args.events as f64 / written.as_secs_f64(),
        "deliveries_per_s": tally.verified as f64 / burst.as_secs_f64(),
        "delay_p50_ms": percentile_ms(&delays, 0.5),
        "delay_p99_ms": percentile_ms(&delays, 0.99),
    });
    println!("{burst_line}");

    // Steady rate: the delay from an event to its arrival when the dispatcher keeps up.
    received.reset();
    let steady = args.rate * 10;
    let every = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut next = tokio::time::Instant::now();
    for n in 0..steady {
        emit(store.as_ref(), &org, n).await?;
        next += every;
        tokio::time::sleep_until(next).await;
    }
    let complete = arrivals(&received, steady * args.endpoints).await;
    let tally = received.tally();
    let mut delays = tally.delays_micros.clone();
    delays.sort_unstable();
    let steady_line = json!({
        "phase": "steady",
        "backend": backend,
        "events": steady,
        "deliveries": tally.verified,
        "complete": complete,
        "delay_p50_ms": percentile_ms(&delays, 0.5),
        "delay_p99_ms": percentile_ms(&delays, 0.99),
        "delay_max_ms": percentile_ms(&delays, 1.0),
    });
    println!("{steady_line}");
    println!(
        "\nburst: {:.0} deliveries/s ({} in {:.2} s), delay p50 {:.1} ms p99 {:.1} ms\nsteady {}/s: delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        burst_line["deliveries_per_s"].as_f64().unwrap_or(0.0),
        burst_line["deliveries"],
        burst.as_secs_f64(),
        burst_line["delay_p50_ms"].as_f64().unwrap_or(0.0),
        burst_line["delay_p99_ms"].as_f64().unwrap_or(0.0),
        args.rate,
        steady_line["delay_p50_ms"].as_f64().unwrap_or(0.0),
        steady_line["delay_p99_ms"].as_f64().unwrap_or(0.0),
        steady_line["delay_max_ms"].as_f64().unwrap_or(0.0),
    );
    shutdown.cancel();
    // Attempts to the hanging endpoint end at their timeout; do not wait for them.
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
