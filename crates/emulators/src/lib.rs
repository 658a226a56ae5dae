//! Faithful local emulators of the APIs Ironbridge connects to (NetSuite REST, SAP S/4HANA OData V2,
//! Business Central API v2.0, the ASCTrac WMS Interface Service, Samsara API v2, the NexTraq web
//! app's JSON endpoints), with seeded data, a controllable clock, fault injection and an admin API.

pub mod asctrac;
pub mod bc;
pub mod common;
pub mod netsuite;
pub mod nextraq;
pub mod samsara;
pub mod sap;

pub use common::tls::LocalTls;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::clock::{Clock, Millis, date_ms};
use common::datagen::{GenCtx, Sizes};
use common::faults::OfflineMode;
use common::net::FaultyListener;
use common::{Core, Dataset};

/// Which real system to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    NetSuite,
    SapS4Hana,
    BusinessCentral,
    /// ASCTrac WMS (its Interface Service).
    Asctrac,
    /// Samsara fleet telematics (REST API v2).
    Samsara,
    /// NexTraq fleet tracking (the web app's session-cookie JSON endpoints).
    NexTraq,
}

impl FromStr for System {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "netsuite" => Ok(System::NetSuite),
            "sap" | "sap-s4hana" | "s4hana" => Ok(System::SapS4Hana),
            "business-central" | "bc" | "businesscentral" => Ok(System::BusinessCentral),
            "asctrac" => Ok(System::Asctrac),
            "samsara" => Ok(System::Samsara),
            "nextraq" => Ok(System::NexTraq),
            other => anyhow::bail!(
                "unknown system {other:?}: expected netsuite, sap, business-central, asctrac, samsara or nextraq"
            ),
        }
    }
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::NetSuite => "netsuite",
            System::SapS4Hana => "sap",
            System::BusinessCentral => "business-central",
            System::Asctrac => "asctrac",
            System::Samsara => "samsara",
            System::NexTraq => "nextraq",
        }
    }
}

/// Everything needed to start an emulator. Switches default to the documented behaviour.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub system: System,
    /// Seed for all generated data and for fault decisions.
    pub seed: u64,
    /// Number of seeded purchase orders (10 to 1,000,000 are realistic sizes; vendors and items scale with it).
    /// For ASCTrac: the warehouse events already in its log at the start (its outboxes' size).
    /// For Samsara and NexTraq: the number of vehicles.
    pub purchase_orders: u64,
    /// Where the clock starts (ms since epoch); seeded history lies in the three years before it.
    pub start_time_ms: Millis,
    /// Let the clock also follow real time (demos); tests keep it frozen and move it through the admin API.
    pub real_time_clock: bool,
    /// How far the system's clock runs ahead of the start time and of the admin API's
    /// reference (negative: behind), as a real host's clock drifts: `Date` headers, record
    /// timestamps and token checks all read the skewed clock. Changeable later through
    /// `POST /__emulator/clock {"offset_seconds": n}`.
    pub clock_offset_secs: i64,
    pub netsuite: netsuite::Settings,
    pub sap: sap::Settings,
    pub business_central: bc::Settings,
    pub asctrac: asctrac::Settings,
    pub samsara: samsara::Settings,
    pub nextraq: nextraq::Settings,
    /// Serve `https` with this identity (its authority's certificate is what clients trust)
    /// instead of plain `http`.
    pub tls: Option<common::tls::LocalTls>,
}

impl EmulatorConfig {
    pub fn new(system: System, seed: u64, purchase_orders: u64) -> Self {
        Self {
            system,
            seed,
            purchase_orders,
            start_time_ms: default_start(),
            real_time_clock: false,
            clock_offset_secs: 0,
            netsuite: netsuite::Settings::default(),
            sap: sap::Settings::default(),
            business_central: bc::Settings::default(),
            asctrac: asctrac::Settings::default(),
            samsara: samsara::Settings::default(),
            nextraq: nextraq::Settings::default(),
            tls: None,
        }
    }
}

/// 2026-01-01T00:00:00Z: a fixed default so seeded data is identical on every run.
pub fn default_start() -> Millis {
    date_ms(2026, 1, 1).unwrap_or(0)
}

/// A running emulator; dropping it without `shutdown` leaves the server running until the runtime ends.
pub struct RunningEmulator {
    addr: SocketAddr,
    scheme: &'static str,
    system: System,
    core: Arc<Core>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningEmulator {
    /// e.g. `http://127.0.0.1:PORT` (`https` when it serves TLS).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn system(&self) -> System {
        self.system
    }

    /// Shared state, for in-process tests (the admin API offers the same over HTTP).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Ends or starts an outage from outside: while offline the admin API is unreachable too.
    pub fn set_offline(&self, mode: OfflineMode) {
        self.core.faults.go_offline(mode, None);
    }

    pub async fn shutdown(mut self) {
        self.core.faults.go_offline(OfflineMode::Online, None);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Hung requests (fault injection) must not keep shutdown waiting.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// An HTTP-date (RFC 9110 IMF-fixdate).
fn http_date(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Starts an emulator on `listener` and returns once it accepts connections.
pub async fn start(
    config: EmulatorConfig,
    listener: TcpListener,
) -> anyhow::Result<RunningEmulator> {
    if config.purchase_orders == 0 || config.purchase_orders > 10_000_000 {
        anyhow::bail!("purchase_orders must be between 1 and 10,000,000");
    }
    let clock = Clock::new(config.start_time_ms, config.real_time_clock)
        .with_resolution(
            // NetSuite stores, shows and compares whole seconds; so must its clock.
            if config.system == System::NetSuite {
                1000
            } else {
                1
            },
        )
        .with_offset_ms(config.clock_offset_secs.saturating_mul(1000));
    // Seeded history lies before the system's own clock (skewed, at its resolution), so a
    // system running behind holds no record modified in its future, and NetSuite's seeded
    // times are whole seconds even when the start time carries milliseconds.
    let ctx = GenCtx {
        seed: config.seed,
        sizes: Sizes::for_orders(config.purchase_orders),
        epoch: clock.now_ms(),
        unset_change_every: if config.system == System::SapS4Hana {
            config.sap.null_change_time_every
        } else {
            0
        },
    };
    let core =
        Arc::new(Core::new(config.seed, clock, Dataset::new(ctx)).with_tls(config.tls.is_some()));
    let app: Router = match config.system {
        System::NetSuite => netsuite::app(core.clone(), config.netsuite.clone())?,
        System::SapS4Hana => sap::app(core.clone(), config.sap.clone())?,
        System::BusinessCentral => bc::app(core.clone(), config.business_central.clone())?,
        System::Asctrac => {
            asctrac::app(core.clone(), config.asctrac.clone(), config.purchase_orders)?
        }
        System::Samsara => {
            samsara::app(core.clone(), config.samsara.clone(), config.purchase_orders)?
        }
        System::NexTraq => {
            nextraq::app(core.clone(), config.nextraq.clone(), config.purchase_orders)?
        }
    };
    // The `Date` header is the emulated clock's, as a real server's is its own: clients cap
    // their sync windows below it.
    let date_core = core.clone();
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let core = date_core.clone();
            async move {
                let mut response = next.run(req).await;
                if let Ok(value) = http_date(core.clock.now()).parse() {
                    response
                        .headers_mut()
                        .insert(axum::http::header::DATE, value);
                }
                response
            }
        },
    ));
    let listener =
        FaultyListener::new(listener, core.faults.offline_watch())?.with_tls(config.tls.clone());
    let addr = axum::serve::Listener::local_addr(&listener)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<common::net::Connection>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(RunningEmulator {
        addr,
        scheme: core.scheme,
        system: config.system,
        core,
        stop: Some(stop),
        task,
    })
}
