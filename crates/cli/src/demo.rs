//! `ironbridge demo`: everything at once on one machine. It starts the ERP emulators
//! in-process, the API and the worker on a fresh SQLite database, creates an organization and
//! a connection to each emulated ERP plus a sandbox, shows the initial syncs with progress
//! bars, and prints the credentials and ready-to-paste curl commands. A local receiver takes
//! the webhooks of the syncs (signed, verified), to watch in the delivery log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ironbridge_core::crypto::{Keys, new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::netguard::Egress;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{NewApiKey, Organization};
use ironbridge_core::webhooks::Secret;
use ironbridge_core::{Clock, SystemClock};
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use ironbridge_engine::webhooks::{AddressPolicy, Dispatcher, WebhookConfig};
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::{AppState, ServerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Options of `ironbridge demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Purchase orders in each emulated ERP (the first sync reads the last 90 days of them).
    #[arg(long, default_value_t = 2000)]
    pub records: u64,
}

async fn emulator(system: System, records: u64) -> anyhow::Result<RunningEmulator> {
    let mut config = EmulatorConfig::new(system, 7, records);
    // The demo's ERPs live in real time from now, so tokens and certificates made now are
    // valid there, and changes made through their admin APIs reach the next incremental sync.
    config.start_time_ms = SystemClock.now().micros() / 1000;
    config.real_time_clock = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    ironbridge_emulators::start(config, listener).await
}

struct Demo {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Demo {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("{path} answered {status}: {}", body["error"]["message"]);
        }
        Ok(body)
    }

    /// How many vehicles report, and the newest point, in a line.
    async fn points(&self, token: &str) -> anyhow::Result<String> {
        let latest: Value = self
            .http
            .get(format!("{}/v1/vehicle-locations/latest", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let data = latest["data"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let newest = data
            .iter()
            .filter_map(|p| p["recorded_at"].as_str())
            .max()
            .unwrap_or("none");
        Ok(format!(
            "{} vehicles reporting, newest point {newest}",
            data.len()
        ))
    }

    async fn connect(
        &self,
        name: &str,
        system: &str,
        settings: Value,
        credentials: Value,
    ) -> anyhow::Result<(String, String)> {
        let body = self
            .post("/v1/connections", json!({"system": system, "name": name, "settings": settings, "credentials": credentials, "end_user": {"id": "demo-customer"}}))
            .await
            .with_context(|| format!("connecting {name}"))?;
        let id = body["connection"]["id"]
            .as_str()
            .context("no connection id")?
            .to_string();
        let token = body["token"].as_str().context("no token")?.to_string();
        Ok((id, token))
    }
}

/// Vehicles of the demo's Samsara fleet for `records` (20 for the default 2,000): a week of
/// points every 30 s is about 20,000 each.
fn samsara_vehicles(records: u64) -> u64 {
    (records / 100).clamp(2, 20)
}

/// Vehicles of the demo's NexTraq fleet for `records` (6 for the default 2,000): read one
/// vehicle and day per request, 4 requests a second.
fn nextraq_vehicles(records: u64) -> u64 {
    (records / 300).clamp(2, 6)
}

async fn admin_json(emulator: &RunningEmulator, path: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(format!("{}{path}", emulator.base_url()))
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Follows a connection's initial sync on a progress bar until it settles.
async fn follow(http: reqwest::Client, base: String, token: String, bar: ProgressBar) -> Value {
    loop {
        let res = http
            .get(format!("{base}/v1/connection"))
            .bearer_auth(&token)
            .send()
            .await;
        let Ok(conn) = res.and_then(|r| r.error_for_status()) else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let conn: Value = conn.json().await.unwrap_or(Value::Null);
        let entities = conn["sync"].as_array().cloned().unwrap_or_default();
        let records: i64 = entities
            .iter()
            .filter_map(|e| e["record_count"].as_i64())
            .sum();
        let done = entities
            .iter()
            .filter(|e| e["status"] == "succeeded")
            .count();
        bar.set_position(records.max(0) as u64);
        bar.set_message(format!(
            "{} · {done}/{} entities",
            conn["status"].as_str().unwrap_or("?"),
            entities.len()
        ));
        let settled = conn["status"] != "syncing"
            && entities.iter().all(|e| e["status"] != "running")
            && entities.iter().any(|e| e["status"] != "never");
        if settled {
            bar.finish_with_message(format!(
                "{} · {records} records",
                conn["status"].as_str().unwrap_or("?")
            ));
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the demo until Ctrl-C.
/// The file in the demo's data directory that the service's logs go to.
pub const LOG_FILE: &str = "ironbridge.log";

/// A new data directory for this demo (its database and its log).
pub fn data_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ironbridge-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo's directory {}", dir.display()))?;
    Ok(dir)
}

/// Runs the demo with its data (and the service's log) in `dir`.
pub async fn run(args: DemoArgs, dir: std::path::PathBuf) -> anyhow::Result<()> {
    println!(
        "The service's logs go to {} (this screen shows the demo's own progress).",
        dir.join(LOG_FILE).display()
    );
    let url = format!("sqlite://{}", dir.join("ironbridge.db").display());
    let (store, deliveries_due) = ironbridge_store::open_with_signal(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the demo database: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Arc::new(Keys::from_master(&Keys::decode_master(
        &Keys::generate_master(),
    )?)?);
    let shutdown = CancellationToken::new();
    // The demo's emulators run on this machine: allow loopback, as an operator would allow
    // an on-premises system with `connections.allowed_private_networks`.
    let runtimes = Arc::new(Runtimes::new(
        ironbridge_engine::registry::builtin_for(clock.clone(), Egress::local()),
        keys.clone(),
    ));

    println!(
        "Starting the emulated ERPs ({} purchase orders each)...",
        args.records
    );
    let netsuite = emulator(System::NetSuite, args.records).await?;
    let sap = emulator(System::SapS4Hana, args.records).await?;
    let bc = emulator(System::BusinessCentral, args.records).await?;
    println!(
        "Starting the emulated ASCTrac WMS ({} warehouse events)...",
        args.records
    );
    let asctrac = emulator(System::Asctrac, args.records).await?;
    let (samsara_n, nextraq_n) = (
        samsara_vehicles(args.records),
        nextraq_vehicles(args.records),
    );
    println!(
        "Starting the emulated fleets: Samsara ({samsara_n} vehicles) and NexTraq ({nextraq_n} vehicles)..."
    );
    let samsara = emulator(System::Samsara, samsara_n).await?;
    let nextraq = emulator(System::NexTraq, nextraq_n).await?;

    let (receiver_base, received) = crate::receiver::start().await?;
    // The demo's receiver is on this machine: allow loopback, as an operator would with
    // `webhooks.allowed_networks`.
    let webhooks = Dispatcher::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        WebhookConfig {
            policy: Arc::new(AddressPolicy {
                allowed_networks: vec!["127.0.0.1/32".parse()?],
                https_only: false,
            }),
            wake: Some(deliveries_due),
            ..WebhookConfig::default()
        },
    )?;
    let dispatcher = tokio::spawn(webhooks.clone().run(shutdown.clone()));

    let config = ServerConfig {
        rate_limit_per_second: 0,
        ..ServerConfig::default()
    };
    let state = AppState::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        runtimes.clone(),
        webhooks,
        config,
        shutdown.clone(),
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(ironbridge_server::serve(listener, state.clone()));
    let worker = Worker::new(
        store.clone(),
        runtimes,
        clock.clone(),
        WorkerConfig {
            idle_wait: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
    );
    let worker = tokio::spawn(worker.run(shutdown.clone()));

    let now = clock.now();
    let org = Organization {
        id: new_id("org", now.micros()),
        name: "Demo Software Inc.".into(),
        connection_credits: 10,
        created_at: now,
    };
    let key = new_token(API_KEY_PREFIX);
    let api_key = NewApiKey {
        id: new_id("key", now.micros()),
        name: "demo".into(),
        token_hash: token_hash(&key),
        prefix: token_prefix(&key),
        created_at: now,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store
        .create_organization(&org, &api_key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let demo = Demo {
        base: base.clone(),
        key: key.clone(),
        http: reqwest::Client::new(),
    };

    let endpoint = demo
        .post(
            "/v1/webhook-endpoints",
            json!({"url": format!("{receiver_base}/hooks/demo"), "description": "The demo's local receiver"}),
        )
        .await?;
    let endpoint_id = endpoint["endpoint"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    received.expect(
        "demo",
        Secret::parse(endpoint["secret"].as_str().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("the endpoint's secret: {e}"))?,
    );

    // NetSuite, option A: Ironbridge makes the key pair; "the customer" uploads the
    // certificate to NetSuite (here: registers it with the emulator).
    let cert = demo
        .post(
            "/v1/certificates",
            json!({"system": "netsuite", "common_name": "Ironbridge demo"}),
        )
        .await?;
    let register = json!({"client_id": "demo-client", "certificate_id": "demo-cert-1", "certificate_pem": cert["certificate_pem"]});
    reqwest::Client::new()
        .post(format!(
            "{}/__emulator/netsuite/m2m-clients",
            netsuite.base_url()
        ))
        .json(&register)
        .send()
        .await?
        .error_for_status()
        .context("registering the certificate with the NetSuite emulator")?;
    let sap_creds = admin_json(&sap, "/__emulator/credentials").await?;
    let bc_creds = admin_json(&bc, "/__emulator/credentials").await?;
    let asctrac_creds = admin_json(&asctrac, "/__emulator/credentials").await?;
    let samsara_creds = admin_json(&samsara, "/__emulator/credentials").await?;
    let nextraq_creds = admin_json(&nextraq, "/__emulator/credentials").await?;

    let connections = vec![
        ("Sandbox ERP", demo.connect("Sandbox ERP", "sandbox", json!({}), json!({})).await?),
        (
            "NetSuite",
            demo.connect(
                "NetSuite",
                "netsuite",
                json!({"base_url": netsuite.base_url()}),
                json!({"account_id": "1234567", "client_id": "demo-client", "certificate_id": "demo-cert-1", "ironbridge_certificate": cert["id"]}),
            )
            .await?,
        ),
        (
            "SAP S/4HANA",
            demo.connect("SAP S/4HANA", "sap_s4hana", json!({"base_url": sap.base_url()}), json!({"username": sap_creds["user"], "password": sap_creds["password"]})).await?,
        ),
        (
            "Business Central",
            demo.connect(
                "Business Central",
                "business_central",
                json!({"base_url": bc.base_url(), "login_url": bc.base_url(), "tenant_id": bc_creds["tenant_id"], "environment": bc_creds["environment"]}),
                json!({"client_id": bc_creds["client_id"], "client_secret": bc_creds["client_secret"]}),
            )
            .await?,
        ),
        (
            "ASCTrac WMS",
            demo.connect(
                "ASCTrac WMS",
                "asctrac",
                json!({"base_url": asctrac.base_url(), "time_zone": "America/New_York", "facilities": "01,02,03", "docks": "D1,D2"}),
                json!({"client_id": asctrac_creds["client_id"], "client_secret": asctrac_creds["client_secret"]}),
            )
            .await?,
        ),
        (
            "Samsara",
            demo.connect(
                "Samsara",
                "samsara",
                json!({"base_url": samsara.base_url()}),
                json!({"api_token": samsara_creds["tokens"][0]}),
            )
            .await?,
        ),
        (
            "NexTraq",
            demo.connect(
                "NexTraq",
                "nextraq",
                json!({"base_url": nextraq.base_url(), "time_zone": "Eastern"}),
                json!({"username": nextraq_creds["username"], "password": nextraq_creds["password"]}),
            )
            .await?,
        ),
    ];

    println!(
        "\nInitial syncs (purchase orders of the last 90 days; vendors, items and locations whole; the warehouse's outboxes until empty; a week of vehicle locations):"
    );
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("  {prefix:18} {spinner} {pos:>7} records  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut follows = Vec::new();
    for (name, (_, token)) in &connections {
        let bar = bars.add(
            ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(name.to_string()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        follows.push(tokio::spawn(follow(
            demo.http.clone(),
            base.clone(),
            token.clone(),
            bar,
        )));
    }
    for f in follows {
        f.await?;
    }
    // Give the last sync's webhook a moment to arrive.
    for _ in 0..30 {
        if received
            .tally()
            .types
            .iter()
            .filter(|t| *t == "sync.completed")
            .count()
            >= connections.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (name, (_, token)) in &connections[connections.len() - 2..] {
        let points = demo.points(token).await.unwrap_or_default();
        println!("  {name}: {points}");
    }
    let tally = received.tally();
    println!(
        "\nWebhooks: the demo receiver at {receiver_base}/hooks/demo verified {} signed deliveries ({} sync.completed), refused {}.",
        tally.verified,
        tally
            .types
            .iter()
            .filter(|t| *t == "sync.completed")
            .count(),
        tally.refused
    );

    // Link and the dashboard: a customer's hosted connection page, and a developer's
    // account signed in by a one-time link.
    let link = demo
        .post(
            "/v1/link-tokens",
            json!({"end_user": {"id": "demo-customer", "name": "Demo Customer Ltd."},
                "redirect_url": format!("{base}/dashboard"),
                "brand": {"name": "Demo Software Inc.", "colour": "#0b5fff"}}),
        )
        .await?;
    let password = new_token("demo");
    let person = ironbridge_server::dashboard::create_account(
        store.as_ref(),
        clock.as_ref(),
        &ironbridge_core::store::OrgId(org.id.clone()),
        &ironbridge_model::dashboard::DashboardUserIn {
            email: "developer@demo.example".into(),
            password: password.clone(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the demo's dashboard account: {}", e.message))?;
    let sign_in =
        ironbridge_server::dashboard::new_sign_in_link(store.as_ref(), clock.as_ref(), &person)
            .await
            .map_err(|e| anyhow::anyhow!("cannot make a sign-in link: {}", e.message))?;

    println!(
        "\nIronbridge is running at {base} (docs: {base}/docs). Data: {}",
        dir.display()
    );
    println!(
        "\nLink, where a customer connects their own system (single use, 30 minutes; try the sandbox with any API key, or `revoked` to see a refusal):\n  {base}{}",
        link["url"].as_str().unwrap_or_default()
    );
    println!(
        "\nDashboard: {base}/dashboard (developer@demo.example, password {password})\n  Signed in at once (one use, 15 minutes): {base}{sign_in}"
    );
    println!("\nAdmin API key:\n  export KEY={key}");
    for (name, (id, token)) in &connections {
        println!("\n{name} ({id}):\n  export TOKEN={token}");
    }
    println!("\nTry:");
    println!(
        "  curl -s \"{base}/v1/purchase-orders?page_size=5\" -H \"Authorization: Bearer $TOKEN\""
    );
    println!(
        "  curl -s \"{base}/v1/inventory-levels?page_size=5\" -H \"Authorization: Bearer $TOKEN\"   (ASCTrac's token; also receipts, shipments, outbound-orders, inventory-transactions)"
    );
    println!(
        "  curl -s \"{base}/v1/vehicle-locations/latest\" -H \"Authorization: Bearer $TOKEN\"   (Samsara's or NexTraq's token; also vehicle-locations?vehicle_id=…, vehicles, drivers, driver-behavior-events, fuel-events)"
    );
    println!("  curl -s {base}/v1/connection -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -s -X POST {base}/v1/sync -H \"Authorization: Bearer $TOKEN\"");
    println!(
        "  curl -s \"{base}/v1/events?type=sync.completed\" -H \"Authorization: Bearer $KEY\""
    );
    println!("  curl -s {base}/v1/systems -H \"Authorization: Bearer $KEY\"");
    println!(
        "  curl -s \"{base}/v1/webhook-endpoints/{endpoint_id}/deliveries?event_type=sync.completed\" -H \"Authorization: Bearer $KEY\""
    );
    println!(
        "  curl -s {base}/v1/webhook-endpoints/{endpoint_id}/attempts -H \"Authorization: Bearer $KEY\""
    );
    println!(
        "  curl -s -X POST {base}/v1/webhook-endpoints/{endpoint_id}/test -H \"Authorization: Bearer $KEY\""
    );
    println!(
        "\nEmulators: NetSuite {}, SAP {}, Business Central {}, ASCTrac {}, Samsara {}, NexTraq {} (admin API under /__emulator).",
        netsuite.base_url(),
        sap.base_url(),
        bc.base_url(),
        asctrac.base_url(),
        samsara.base_url(),
        nextraq.base_url()
    );
    println!("Press Ctrl-C to stop.");

    crate::shutdown_signal(shutdown.clone()).await;
    let _ = server.await;
    let _ = worker.await;
    let _ = dispatcher.await;
    netsuite.shutdown().await;
    sap.shutdown().await;
    bc.shutdown().await;
    asctrac.shutdown().await;
    samsara.shutdown().await;
    nextraq.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
