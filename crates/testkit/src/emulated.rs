//! The emulated systems, started in-process on a random port with seeded data, and wired to
//! their connectors: the settings and credentials each connector needs (NetSuite's M2M
//! client registered with a fresh certificate; SAP's communication user; Business Central's
//! Entra app), and the admin API that moves the emulator's clock and injects faults.

use std::sync::Arc;

use ironbridge_connectors::netsuite::generate_certificate;
use ironbridge_connectors::{asctrac, bc, netsuite, nextraq, samsara, sap};
use ironbridge_core::Clock;
use ironbridge_core::clock::Sleeper;
use ironbridge_core::connector::Connector;
use ironbridge_core::system::SystemDescriptor;
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use ironbridge_model::Timestamp;
use serde_json::{Map, Value, json};

/// The M2M client id registered with an emulated NetSuite.
pub const NETSUITE_CLIENT_ID: &str = "ib-tests";

/// One emulated system and how to connect to it.
pub struct Emulated {
    /// The running emulator.
    pub emulator: RunningEmulator,
    /// The system's descriptor.
    pub system: &'static SystemDescriptor,
    /// Connection settings for its connector.
    pub settings: Map<String, Value>,
    /// Connection credentials for its connector.
    pub credentials: Map<String, Value>,
    http: reqwest::Client,
}

/// The emulator of a system's descriptor (`None`: the system has none, like the sandbox).
pub fn emulator_of(system: &SystemDescriptor) -> Option<System> {
    if system.id == netsuite::ID {
        Some(System::NetSuite)
    } else if system.id == sap::ID {
        Some(System::SapS4Hana)
    } else if system.id == bc::ID {
        Some(System::BusinessCentral)
    } else if system.id == asctrac::ID {
        Some(System::Asctrac)
    } else if system.id == samsara::ID {
        Some(System::Samsara)
    } else if system.id == nextraq::ID {
        Some(System::NexTraq)
    } else {
        None
    }
}

/// The descriptor of an emulated system.
pub fn descriptor_of(system: System) -> &'static SystemDescriptor {
    match system {
        System::NetSuite => &netsuite::DESCRIPTOR,
        System::SapS4Hana => &sap::DESCRIPTOR,
        System::BusinessCentral => &bc::DESCRIPTOR,
        System::Asctrac => &asctrac::DESCRIPTOR,
        System::Samsara => &samsara::DESCRIPTOR,
        System::NexTraq => &nextraq::DESCRIPTOR,
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl Emulated {
    /// Starts `system`'s emulator with `orders` seeded purchase orders (from `seed`), its
    /// clock at the emulators' default start, and registers what the connector needs.
    pub async fn start(system: System, seed: u64, orders: u64) -> Emulated {
        Self::start_with(EmulatorConfig::new(system, seed, orders)).await
    }

    /// Starts an emulator with this configuration.
    pub async fn start_with(config: EmulatorConfig) -> Emulated {
        let system = config.system;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let emulator = ironbridge_emulators::start(config, listener)
            .await
            .expect("the emulator starts");
        let mut emulated = Emulated {
            emulator,
            system: descriptor_of(system),
            settings: Map::new(),
            credentials: Map::new(),
            http: reqwest::Client::new(),
        };
        let base = emulated.emulator.base_url();
        let (settings, credentials) = match system {
            System::NetSuite => {
                let cert = generate_certificate("Ironbridge tests", emulated.now())
                    .expect("a certificate");
                emulated
                    .admin(
                        "POST",
                        "/netsuite/m2m-clients",
                        Some(
                            json!({"client_id": NETSUITE_CLIENT_ID, "certificate_id": "cert-1",
                            "certificate_pem": cert.certificate_pem}),
                        ),
                    )
                    .await;
                (
                    json!({"base_url": base}),
                    json!({"account_id": "1234567_SB1", "client_id": NETSUITE_CLIENT_ID,
                        "certificate_id": "cert-1", "private_key_pem": cert.private_key_pem}),
                )
            }
            System::SapS4Hana => {
                let c = emulated.admin("GET", "/credentials", None).await;
                (
                    json!({"base_url": base, "sap_client": "100"}),
                    json!({"username": c["user"], "password": c["password"]}),
                )
            }
            System::BusinessCentral => {
                let c = emulated.admin("GET", "/credentials", None).await;
                (
                    json!({"base_url": base, "login_url": base, "tenant_id": c["tenant_id"],
                        "environment": c["environment"]}),
                    json!({"client_id": c["client_id"], "client_secret": c["client_secret"]}),
                )
            }
            System::Asctrac => {
                let c = emulated.admin("GET", "/credentials", None).await;
                (
                    json!({"base_url": base, "time_zone": "America/New_York", "facilities": "01,02,03", "docks": "D1,D2"}),
                    json!({"client_id": c["client_id"], "client_secret": c["client_secret"]}),
                )
            }
            System::Samsara => {
                let c = emulated.admin("GET", "/credentials", None).await;
                (
                    json!({"base_url": base}),
                    json!({"api_token": c["tokens"][0]}),
                )
            }
            System::NexTraq => {
                let c = emulated.admin("GET", "/credentials", None).await;
                let zone = emulated.admin("GET", "/settings", None).await["time_zone"].clone();
                (
                    json!({"base_url": base, "time_zone": zone}),
                    json!({"username": c["username"], "password": c["password"]}),
                )
            }
        };
        emulated.settings = object(settings);
        emulated.credentials = object(credentials);
        emulated
    }

    /// The emulator's clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.emulator.core().clock.now_ms() * 1000)
    }

    /// A connector for it, built by its descriptor (allowed to reach loopback).
    pub fn connector(
        &self,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Arc<dyn Connector> {
        self.system
            .connect(
                &self.settings,
                Some(&self.credentials),
                clock,
                sleeper,
                ironbridge_core::netguard::Egress::local(),
            )
            .expect("the connector builds")
    }

    /// Calls the emulator's admin API (`/__emulator{path}`); panics on a failure.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(
            method,
            format!("{}/__emulator{path}", self.emulator.base_url()),
        );
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("the admin API answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "admin {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Every request the emulator's log holds (method, path, status, ...), oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        self.admin("GET", "/requests", None).await["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
