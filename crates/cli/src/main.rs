//! The `ironbridge` binary: one binary for every role.

mod bench;
mod bench_batches;
mod bench_changes;
mod bench_flows;
mod bench_webhooks;
mod config;
mod demo;
mod flows_apply;
mod receiver;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ironbridge_core::crypto::{new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{NewApiKey, Organization, Store};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_engine::webhooks::{Dispatcher, WebhookConfig};
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::{AppState, ServerConfig};
use tokio_util::sync::CancellationToken;

use config::{LogFormat, Overrides, Role, Settings};

/// mimalloc instead of glibc's allocator: a sync allocates and frees millions of small JSON
/// values a second across threads, where glibc spent a fifth of the CPU (see
/// `docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ironbridge: one self-hosted API for your customers' ERP, warehouse and fleet systems.
#[derive(Debug, Parser)]
#[command(name = "ironbridge", version, about = "Ironbridge: one self-hosted API for your customers' ERP, warehouse and fleet systems.", long_about = None)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "IRONBRIDGE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: a SQLite file in the data directory).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Directory for the SQLite database and the generated master key.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Try everything on this machine: emulated ERPs, a sandbox, initial syncs, ready-to-paste
    /// curl commands (a temporary database; nothing else is needed).
    Demo(demo::DemoArgs),
    /// Run the API (migrating the database first).
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Which parts to run: the API, the background worker, or both (default).
        #[arg(long, value_enum)]
        role: Option<Role>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Manage flows kept in files.
    Flows {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Run a faithful local emulator of a source system's API (for demos, tests and benchmarks).
    Emulate {
        /// `netsuite`, `sap`, `business-central`, `asctrac`, `samsara` or `nextraq`.
        system: String,
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of purchase orders (10 to 1,000,000); vendors and items scale with it. For
        /// `asctrac`: the warehouse events already in its log (its outboxes' size); more flow in
        /// as its clock advances. For `samsara` and `nextraq`: the number of vehicles (drivers
        /// follow), which move and report positions as the clock advances.
        #[arg(long, default_value_t = 1000)]
        records: u64,
        /// Let the emulator's clock follow real time (otherwise it moves only through its admin API).
        #[arg(long)]
        real_time: bool,
        /// Seconds the emulated system's clock runs ahead of the start time (negative: behind),
        /// as a real host's clock drifts: its `Date` headers, record times and token checks use
        /// the skewed clock.
        #[arg(
            long,
            default_value_t = 0,
            allow_negative_numbers = true,
            value_name = "SECONDS"
        )]
        clock_offset: i64,
        /// Serve `https` instead of `http`, with a certificate for localhost and 127.0.0.1
        /// signed by a certificate authority generated for this run (for clients that insist
        /// on `https`, such as MSAL). The authority's certificate is written to `--tls-ca-out`.
        #[arg(long)]
        tls: bool,
        /// Where to write the authority's certificate (PEM) with `--tls`; clients trust it
        /// (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`). Default: a file in the temporary directory.
        #[arg(long, value_name = "FILE", requires = "tls")]
        tls_ca_out: Option<std::path::PathBuf>,
    },
    /// Serve the MCP tools of one credential on standard input and output, for desktop
    /// agents (Claude Desktop, Cursor) that start the server themselves. The credential (a
    /// connection token or an organization API key) is read from `IRONBRIDGE_MCP_TOKEN`, never
    /// from the command line. Uses the same database and master key as `serve`.
    Mcp {
        /// Speak MCP over standard input and output (the HTTP endpoint is `/mcp` of `serve`).
        #[arg(long, required = true)]
        stdio: bool,
        /// List only `search_tools`, `describe_tool` and `call_tool` (for agents with many
        /// tools already).
        #[arg(long)]
        meta_tools: bool,
    },
    /// Measure this machine: latency and throughput of the API on a fresh database.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Time page reads and single-record reads over HTTP against a sandbox connection.
    Api(bench::BenchArgs),
    /// Full and incremental syncs of each emulated ERP through the real connectors.
    Sync(bench::SyncBenchArgs),
    /// Webhook deliveries per second and the delay from event to arrival, to a local receiver.
    Webhooks(bench_webhooks::WebhookBenchArgs),
    /// Bulk batch throughput against each emulated ERP with latency, against its limits.
    Batches(bench_batches::BatchBenchArgs),
    /// Change feed throughput: writes that take change numbers, and the feed read and followed.
    Changes(bench_changes::ChangeBenchArgs),
    /// A flow run's items per second against each emulated ERP with latency, against its limits.
    Flows(bench_flows::FlowBenchArgs),
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Create or change flows from their documents (`PUT /v1/flows/{key}` each), with the
    /// admin API key from `IRONBRIDGE_API_KEY`. Applying the same files again changes nothing.
    Apply(flows_apply::ApplyArgs),
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization and print its first admin API key (shown once).
    Create {
        /// Organization name.
        #[arg(long)]
        name: String,
        /// Connection credits (default: the configured default_connection_credits).
        #[arg(long)]
        credits: Option<i64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a person a dashboard account in an organization. The password is read from
    /// `IRONBRIDGE_DASHBOARD_PASSWORD`, or from the first line of standard input.
    AddUser {
        /// The organization (`org_…`).
        #[arg(long)]
        org: String,
        /// Their e-mail address, with which they sign in.
        #[arg(long)]
        email: String,
        /// Also print a one-time sign-in link (valid 15 minutes).
        #[arg(long)]
        sign_in_link: bool,
    },
}

/// Logs to standard error, or to `file` (plain text, no colour codes) for a command whose
/// screen is its own, such as the demo's progress and summary.
fn init_logs(settings: &Settings, file: Option<std::fs::File>) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log_level));
    let to_file = file.is_some();
    let writer = match file {
        Some(file) => BoxMakeWriter::new(std::sync::Arc::new(file)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!to_file)
        .with_writer(writer);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with_signal(settings)
        .await
        .map(|(store, _)| store)
}

/// The store, and its signal that webhook deliveries may be due.
async fn open_store_with_signal(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Store>, Arc<tokio::sync::Notify>)> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    // A job's transactions and lock waits live well under its lease: a process frozen
    // inside one cannot hold its successor back for long.
    let limit = (std::time::Duration::from_secs(settings.job_lease_secs) / 3)
        .min(std::time::Duration::from_secs(60));
    ironbridge_store::open_with_limits(&url, &ironbridge_store::SessionLimits::uniform(limit))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))
}

pub(crate) async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    token.cancel();
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Where this process's own metrics are scraped: the API's listener, or a worker's
    // `metrics_listen`.
    let health_listen = match settings.role {
        Role::Api | Role::All => {
            if settings.metrics_listen.is_some() {
                tracing::warn!(
                    "metrics_listen is for --role worker; this process serves /metrics on listen"
                );
            }
            None
        }
        Role::Worker => settings.metrics_listen.clone(),
    };
    if matches!(settings.role, Role::Api | Role::All) || health_listen.is_some() {
        // Before the worker starts, so what its first jobs record reaches `/metrics`.
        ironbridge_server::context::prometheus();
    }
    let keys = Arc::new(settings.master_key()?);
    let (store, deliveries_due) = open_store_with_signal(&settings).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    let runtimes = Arc::new(connection_runtimes(&settings, &store, &clock, &keys)?);
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let webhooks = Dispatcher::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        WebhookConfig {
            wake: Some(deliveries_due),
            ..settings.webhooks.config()?
        },
    )
    .context("cannot build the webhook client")?;
    let dispatcher = matches!(settings.role, Role::Worker | Role::All)
        .then(|| tokio::spawn(webhooks.clone().run(shutdown.clone())));
    let worker = matches!(settings.role, Role::Worker | Role::All).then(|| {
        let config = WorkerConfig {
            sync_interval: std::time::Duration::from_secs(settings.sync_interval_secs),
            reconcile_interval: (settings.reconcile_interval_secs > 0)
                .then(|| std::time::Duration::from_secs(settings.reconcile_interval_secs)),
            lease: std::time::Duration::from_secs(settings.job_lease_secs),
            max_jobs: settings.worker_max_jobs,
            drain: std::time::Duration::from_secs(settings.worker_drain_secs),
            sync_memory_bytes: settings.sync_memory_mb << 20,
            point_retention: (settings.point_retention_days > 0)
                .then(|| std::time::Duration::from_secs(settings.point_retention_days * 86_400)),
            poll_interval: (settings.poll_interval_secs > 0)
                .then(|| std::time::Duration::from_secs(settings.poll_interval_secs)),
            ..WorkerConfig::default()
        };
        let worker = Worker::new(store.clone(), runtimes.clone(), clock.clone(), config);
        tokio::spawn(worker.run(shutdown.clone()))
    });
    let config = server_config(&settings)?;
    // Built only by a process that serves HTTP (it installs the metrics recorder).
    let server_shutdown = shutdown.clone();
    let state = move || {
        AppState::new(
            store,
            keys,
            clock,
            runtimes,
            webhooks,
            config,
            server_shutdown,
        )
    };
    if matches!(settings.role, Role::Api | Role::All) {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let backend = if settings.database_url().starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        };
        tracing::info!(address = %settings.listen, database = backend, role = ?settings.role, "ironbridge is serving; API docs at /docs");
        ironbridge_server::serve(listener, state()).await?;
    } else if let Some(address) = health_listen {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?;
        tracing::info!(%address, "ironbridge worker running; /healthz, /readyz and /metrics served");
        ironbridge_server::serve_health(listener, state()).await?;
    } else {
        tracing::info!("ironbridge worker running");
        shutdown.cancelled().await;
    }
    if let Some(worker) = worker {
        // The worker claims nothing more and lets running jobs commit for up to
        // `worker_drain_secs`; those still running then give their leases back, and resume
        // from their checkpoints on the next worker.
        let _ = worker.await;
    }
    if let Some(dispatcher) = dispatcher {
        // Attempts in flight finish (within one timeout); the rest stay due in the store.
        let _ = dispatcher.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Creates a dashboard account (the password from the environment or standard input).
async fn add_user(
    settings: &Settings,
    org: &str,
    email: &str,
    sign_in_link: bool,
) -> anyhow::Result<()> {
    let password = match std::env::var("IRONBRIDGE_DASHBOARD_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let store = open_store(settings).await?;
    let org = ironbridge_core::store::OrgId(org.to_string());
    store
        .get_organization(&org)
        .await
        .map_err(|e| anyhow::anyhow!("no organization {}: {e}", org.0))?;
    let input = ironbridge_model::dashboard::DashboardUserIn {
        email: email.to_string(),
        password,
    };
    let user =
        ironbridge_server::dashboard::create_account(store.as_ref(), &SystemClock, &org, &input)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    println!(
        "Dashboard account {} ({}) created; sign in at /dashboard/sign-in.",
        user.email, user.id
    );
    if sign_in_link {
        let path =
            ironbridge_server::dashboard::new_sign_in_link(store.as_ref(), &SystemClock, &user)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        println!("One-time sign-in link (15 minutes): {path}");
    }
    Ok(())
}

async fn create_org(
    settings: &Settings,
    name: &str,
    credits: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    let credits = credits.unwrap_or(settings.default_connection_credits);
    if credits < 0 {
        anyhow::bail!("--credits must not be negative");
    }
    // First-run bootstrap: the master key is created now, so its back-up warning comes early.
    settings.master_key()?;
    let store = open_store(settings).await?;
    let now = SystemClock.now();
    let org = Organization {
        id: new_id("org", now.micros()),
        name: name.to_string(),
        connection_credits: credits,
        created_at: now,
    };
    let secret = new_token(API_KEY_PREFIX);
    let key = NewApiKey {
        id: new_id("key", now.micros()),
        name: "bootstrap".into(),
        token_hash: token_hash(&secret),
        prefix: token_prefix(&secret),
        created_at: now,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store
        .create_organization(&org, &key)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the organization: {e}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"organization_id": org.id, "name": org.name, "connection_credits": credits, "api_key_id": key.id, "api_key": secret})
        );
    } else {
        println!(
            "Organization {} ({}) created with {} connection credits.",
            org.name, org.id, credits
        );
        println!("Admin API key (shown once, store it safely):\n{secret}");
    }
    Ok(())
}

/// Where an emulator serves and how (`ironbridge emulate`).
struct EmulateArgs {
    host: String,
    port: u16,
    seed: u64,
    records: u64,
    real_time: bool,
    clock_offset: i64,
    tls: bool,
    tls_ca_out: Option<std::path::PathBuf>,
}

async fn emulate(system: &str, args: EmulateArgs) -> anyhow::Result<()> {
    let EmulateArgs {
        host,
        port,
        seed,
        records,
        real_time,
        clock_offset,
        tls,
        tls_ca_out,
    } = args;
    use std::str::FromStr;
    let system = ironbridge_emulators::System::from_str(system)?;
    if !(1..=5_000_000).contains(&records) {
        anyhow::bail!("--records must be from 1 to 5000000");
    }
    if clock_offset.unsigned_abs() > 10 * 365 * 86_400 {
        anyhow::bail!("--clock-offset must be within ten years (in seconds)");
    }
    let mut config = ironbridge_emulators::EmulatorConfig::new(system, seed, records);
    config.real_time_clock = real_time;
    config.clock_offset_secs = clock_offset;
    if real_time {
        config.start_time_ms = SystemClock.now().micros() / 1000;
    }
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let started = std::time::Instant::now();
    if tls {
        let identity = ironbridge_emulators::LocalTls::generate(std::slice::from_ref(&host))?;
        let port = listener.local_addr()?.port();
        let path = tls_ca_out.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("ironbridge-emulator-{port}-ca.pem"))
        });
        std::fs::write(&path, identity.ca_pem())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("TLS: trust the certificate authority in {}", path.display());
        config.tls = Some(identity);
    }
    let emulator = ironbridge_emulators::start(config, listener).await?;
    println!(
        "{} emulator listening on {} ({records} {}, seed {seed}, clock offset {clock_offset} s, ready in {:.2?}); admin API under {}/__emulator",
        system.name(),
        emulator.base_url(),
        match system {
            ironbridge_emulators::System::Asctrac => "warehouse events",
            ironbridge_emulators::System::Samsara | ironbridge_emulators::System::NexTraq => {
                "vehicles"
            }
            _ => "purchase orders",
        },
        started.elapsed(),
        emulator.base_url()
    );
    let shutdown = CancellationToken::new();
    shutdown_signal(shutdown.clone()).await;
    emulator.shutdown().await;
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: match &cli.command {
            Command::Serve { listen, .. } => listen.clone(),
            _ => None,
        },
        role: match &cli.command {
            Command::Serve { role, .. } => *role,
            _ => None,
        },
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    // The demo's screen shows its own progress: the service it runs logs to a file in the
    // demo's data directory, which it names.
    let demo_dir = match &cli.command {
        Command::Demo(_) => Some(demo::data_dir()?),
        _ => None,
    };
    let log_file = match &demo_dir {
        Some(dir) => Some(
            std::fs::File::create(dir.join(demo::LOG_FILE))
                .with_context(|| format!("cannot create the demo's log in {}", dir.display()))?,
        ),
        None => None,
    };
    init_logs(&settings, log_file);
    match cli.command {
        Command::Serve { .. } => serve(settings).await,
        Command::Migrate => {
            open_store(&settings).await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Org {
            command:
                OrgCommand::Create {
                    name,
                    credits,
                    json,
                },
        } => create_org(&settings, &name, credits, json).await,
        Command::Org {
            command:
                OrgCommand::AddUser {
                    org,
                    email,
                    sign_in_link,
                },
        } => add_user(&settings, &org, &email, sign_in_link).await,
        Command::Bench {
            command: BenchCommand::Api(args),
        } => bench::run(args, cli.database_url.clone()).await,
        Command::Bench {
            command: BenchCommand::Sync(args),
        } => bench::run_sync(args, cli.database_url.clone()).await,
        Command::Bench {
            command: BenchCommand::Webhooks(args),
        } => bench_webhooks::run(args, cli.database_url.clone()).await,
        Command::Bench {
            command: BenchCommand::Batches(args),
        } => bench_batches::run(args, cli.database_url.clone()).await,
        Command::Bench {
            command: BenchCommand::Flows(args),
        } => bench_flows::run(args, cli.database_url.clone()).await,
        Command::Bench {
            command: BenchCommand::Changes(args),
        } => bench_changes::run(args, cli.database_url.clone()).await,
        Command::Demo(args) => {
            let dir = demo_dir.context("the demo's directory is made above")?;
            demo::run(args, dir).await
        }
        Command::Emulate {
            system,
            port,
            host,
            seed,
            records,
            real_time,
            clock_offset,
            tls,
            tls_ca_out,
        } => {
            let args = EmulateArgs {
                host,
                port,
                seed,
                records,
                real_time,
                clock_offset,
                tls,
                tls_ca_out,
            };
            emulate(&system, args).await
        }
        Command::Flows {
            command: FlowCommand::Apply(args),
        } => flows_apply::run(args, std::env::var("IRONBRIDGE_API_KEY").ok()).await,
        Command::Openapi => {
            println!("{}", ironbridge_server::openapi::document_json());
            Ok(())
        }
        Command::Mcp { meta_tools, .. } => mcp_stdio(settings, meta_tools).await,
    }
}

/// The environment variable `ironbridge mcp --stdio` reads its credential from.
const MCP_TOKEN_ENV: &str = "IRONBRIDGE_MCP_TOKEN";

/// One runtime per connection, shared by this process's API writes and worker jobs; on a
/// database other processes share, writes take cluster-wide slots and syncs leave them free.
/// Connections reach public addresses, and the private networks and hosts the operator
/// allowed (`connections.allowed_private_networks`), trusting `connections.ca_file` too.
fn connection_runtimes(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    keys: &Arc<ironbridge_core::crypto::Keys>,
) -> anyhow::Result<Runtimes> {
    let runtimes = Runtimes::new(
        ironbridge_engine::registry::builtin_for(clock.clone(), settings.connections.egress()?),
        keys.clone(),
    );
    Ok(if store.shared_by_processes() {
        runtimes.shared(ironbridge_engine::slots::StoreSlots::new(
            store.clone(),
            clock.clone(),
            Arc::new(ironbridge_connectors::sleeper::TokioSleeper),
        ))
    } else {
        runtimes
    })
}

/// `ironbridge mcp --stdio`: one credential's tools on standard input and output, with the
/// API's state (the same store, master key, rate limits and audit log lines on stderr) but no
/// listener and no worker (the `serve` process syncs).
async fn mcp_stdio(settings: Settings, meta_tools: bool) -> anyhow::Result<()> {
    let token = std::env::var(MCP_TOKEN_ENV).map_err(|_| {
        anyhow::anyhow!(
            "set {MCP_TOKEN_ENV} to a connection token (ibc_…) or an organization API key (ibk_…)"
        )
    })?;
    let keys = Arc::new(settings.master_key()?);
    let store = open_store(&settings).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let runtimes = connection_runtimes(&settings, &store, &clock, &keys)?;
    let webhooks = Dispatcher::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        settings.webhooks.config()?,
    )
    .context("cannot build the webhook client")?;
    let state = AppState::new(
        store,
        keys,
        clock,
        Arc::new(runtimes),
        webhooks,
        server_config(&settings)?,
        shutdown,
    );
    let principal = ironbridge_server::auth::identify_token(&state, &token)
        .await
        .map_err(|e| anyhow::anyhow!("{MCP_TOKEN_ENV} is refused: {}", e.message))?;
    let mode = if meta_tools {
        ironbridge_server::mcp::ToolMode::Meta
    } else {
        ironbridge_server::mcp::ToolMode::All
    };
    tracing::info!(
        access = principal.mcp_access().as_str(),
        "serving MCP on stdio"
    );
    ironbridge_server::mcp::serve_stdio(state, principal, mode).await?;
    Ok(())
}

/// The API's settings.
fn server_config(settings: &Settings) -> anyhow::Result<ServerConfig> {
    Ok(ServerConfig {
        rate_limit_per_second: settings.rate_limit.per_second,
        rate_limit_burst: settings.rate_limit.burst,
        max_body_bytes: settings.max_body_bytes,
        max_batch_body_bytes: settings.max_batch_body_bytes,
        request_timeout: settings.request_timeout(),
        anonymous_per_minute: settings.rate_limit.anonymous_per_minute,
        anonymous_burst: settings.rate_limit.anonymous_burst,
        trusted_proxies: settings.rate_limit.trusted_proxies()?,
        link_token_ttl: std::time::Duration::from_secs(settings.link.token_ttl_secs),
        link_frame_ancestors: settings.link.frame_ancestors.clone(),
        dashboard_session_ttl: std::time::Duration::from_secs(settings.dashboard.session_ttl_secs),
        secure_cookies: settings.dashboard.secure_cookies,
        request_log_retention: std::time::Duration::from_secs(
            settings.dashboard.request_log_retention_days * 86_400,
        ),
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
