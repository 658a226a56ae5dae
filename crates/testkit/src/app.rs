//! `TestApp`: the real server on `127.0.0.1:0` with a fresh database (`db`), a manual clock,
//! the connection runtimes a worker of the same "process" shares, and verb helpers that
//! return status, headers and JSON. Logs of every test of a binary go to one buffer so tests
//! can assert what was (not) logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use ironbridge_core::crypto::{Keys, new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::netguard::Egress;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{NewApiKey, Organization, Store};
use ironbridge_core::system::Registry;
use ironbridge_core::{Clock, ManualClock};
use ironbridge_engine::webhooks::{AddressPolicy, Dispatcher, Resolver, WebhookConfig};
use ironbridge_model::Timestamp;
use ironbridge_server::{AppState, ServerConfig};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::db::TestDb;

/// Everything logged by any test in this binary.
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// DNS for tests: each name answers its scripted address lists in turn (the last one
/// repeats), so a name can resolve to a public address first and an internal one later.
#[derive(Default)]
pub struct FakeDns(Mutex<std::collections::HashMap<String, Vec<Vec<std::net::IpAddr>>>>);

impl FakeDns {
    /// What `host` answers, in turn.
    pub fn script(&self, host: &str, answers: &[&[&str]]) {
        let answers = answers
            .iter()
            .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
            .collect();
        self.0.lock().unwrap().insert(host.to_string(), answers);
    }
}

#[async_trait::async_trait]
impl Resolver for FakeDns {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        let mut names = self.0.lock().unwrap();
        match names.get_mut(host) {
            Some(answers) if answers.len() > 1 => Ok(answers.remove(0)),
            Some(answers) if !answers.is_empty() => Ok(answers[0].clone()),
            _ => Err(std::io::Error::other("no such host")),
        }
    }
}

/// The webhook settings of test apps: loopback allowed (receivers run on it), short
/// timeouts, scripted DNS.
pub fn test_webhook_config(dns: Arc<FakeDns>) -> WebhookConfig {
    WebhookConfig {
        timeout: std::time::Duration::from_secs(2),
        lease: std::time::Duration::from_secs(5),
        policy: Arc::new(AddressPolicy {
            allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
            https_only: false,
        }),
        resolver: dns,
        ..WebhookConfig::default()
    }
}

/// The running server and what a test reaches around it.
pub struct TestApp {
    /// Keys derived from the test master key.
    pub keys: Arc<Keys>,
    /// The connection runtimes the server uses; a worker of the same "process" shares them.
    pub runtimes: Arc<Runtimes>,
    /// The webhook dispatcher (the server's test pings use it; tests may run it).
    pub webhooks: Arc<Dispatcher>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The database under it.
    pub db: TestDb,
    /// The injected clock.
    pub clock: ManualClock,
    /// Cancels the server (dropped apps cancel it too).
    pub shutdown: CancellationToken,
    /// The server task.
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A response: status, headers, parsed JSON body (Null if not JSON).
pub struct Res {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The JSON body (`Null` when it is not JSON).
    pub body: Value,
    /// The body as sent, byte for byte (lossy UTF-8).
    pub text: String,
}

impl Res {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error response: status, code, a request id equal to the header.
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        let err = &self.body["error"];
        assert_eq!(err["code"], code, "body: {}", self.body);
        assert!(err["type"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        let id = err["request_id"].as_str().expect("request_id");
        assert!(id.starts_with("req_"));
        assert_eq!(
            self.header("x-request-id"),
            Some(id),
            "request id header matches the body"
        );
        assert_eq!(self.header("ironbridge-version"), Some("2026-11-23"));
        err
    }
}

/// Where every test app's clock starts.
pub const T0: &str = "2026-11-23T00:00:00Z";

impl TestApp {
    /// The server with the built-in systems and no rate limit.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(ServerConfig {
            rate_limit_per_second: 0,
            anonymous_per_minute: 0,
            ..ServerConfig::default()
        })
        .await
    }

    /// The server with these settings.
    pub async fn spawn_with(config: ServerConfig) -> TestApp {
        let dns = Arc::new(FakeDns::default());
        Self::spawn_full(config, test_webhook_config(dns)).await
    }

    /// A test app with these webhook settings (and no rate limit).
    pub async fn spawn_webhooks(webhooks: WebhookConfig) -> TestApp {
        Self::spawn_full(
            ServerConfig {
                rate_limit_per_second: 0,
                anonymous_per_minute: 0,
                ..ServerConfig::default()
            },
            webhooks,
        )
        .await
    }

    /// The server with these settings and webhook settings, and the built-in systems
    /// (allowed to reach loopback, where the emulators run).
    pub async fn spawn_full(config: ServerConfig, webhook_config: WebhookConfig) -> TestApp {
        Self::spawn_systems(config, webhook_config, |clock| {
            ironbridge_engine::registry::builtin_for(clock, Egress::local())
        })
        .await
    }

    /// The server with the systems `registry` makes (given the app's clock).
    pub async fn spawn_systems(
        config: ServerConfig,
        webhook_config: WebhookConfig,
        registry: impl FnOnce(Arc<dyn Clock>) -> Registry,
    ) -> TestApp {
        init_logs();
        let db = TestDb::fresh().await;
        let (store, deliveries_due) = (db.store.clone(), db.deliveries_due());
        let clock = ManualClock::new(Timestamp::parse_rfc3339(T0).unwrap());
        let keys = Arc::new(Keys::from_master(&[42u8; 32]).unwrap());
        let shutdown = CancellationToken::new();
        let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
        let webhooks = Dispatcher::new(
            store.clone(),
            keys.clone(),
            clock_dyn.clone(),
            // As `serve` does: woken by the store when deliveries come due.
            WebhookConfig {
                wake: Some(deliveries_due),
                ..webhook_config
            },
        )
        .unwrap();
        let runtimes = Arc::new(Runtimes::new(registry(clock_dyn.clone()), keys.clone()));
        let state = AppState::new(
            store.clone(),
            keys.clone(),
            clock_dyn.clone(),
            runtimes.clone(),
            webhooks.clone(),
            config,
            shutdown.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(ironbridge_server::serve(listener, state));
        TestApp {
            keys,
            runtimes,
            webhooks,
            base,
            client: reqwest::Client::new(),
            store,
            db,
            clock,
            shutdown,
            server: Some(server),
        }
    }

    /// A second API process on the same database: its own store pools, runtimes and caches,
    /// the same keys and clock. Its `db` is a fresh one it does not use.
    pub async fn second_process(&self) -> TestApp {
        let store = self.db.reopen().await;
        let clock = self.clock.clone();
        let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
        let shutdown = CancellationToken::new();
        let webhooks = Dispatcher::new(
            store.clone(),
            self.keys.clone(),
            clock_dyn.clone(),
            test_webhook_config(Arc::default()),
        )
        .unwrap();
        let runtimes = Arc::new(Runtimes::new(
            ironbridge_engine::registry::builtin_for(clock_dyn.clone(), Egress::local()),
            self.keys.clone(),
        ));
        let state = AppState::new(
            store.clone(),
            self.keys.clone(),
            clock_dyn,
            runtimes.clone(),
            webhooks.clone(),
            ServerConfig {
                rate_limit_per_second: 0,
                anonymous_per_minute: 0,
                ..ServerConfig::default()
            },
            shutdown.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(ironbridge_server::serve(listener, state));
        TestApp {
            keys: self.keys.clone(),
            runtimes,
            webhooks,
            base,
            client: reqwest::Client::new(),
            store,
            db: TestDb::fresh().await,
            clock,
            shutdown,
            server: Some(server),
        }
    }

    /// Creates an organization directly in the store and returns (org id, admin key).
    pub async fn org(&self, credits: i64) -> (String, String) {
        let now = self.clock.now();
        let org = Organization {
            id: new_id("org", now.micros()),
            name: "Acme".into(),
            connection_credits: credits,
            created_at: now,
        };
        let secret = new_token(API_KEY_PREFIX);
        let key = NewApiKey {
            id: new_id("key", now.micros()),
            name: "test".into(),
            token_hash: token_hash(&secret),
            prefix: token_prefix(&secret),
            created_at: now,
            mcp_access: ironbridge_model::api::McpAccess::Read,
        };
        self.store.create_organization(&org, &key).await.unwrap();
        (org.id, secret)
    }

    /// Creates a sandbox connection; returns (connection id, token).
    pub async fn connection(&self, key: &str, settings: Value) -> (String, String) {
        let res = self
            .post(
                key,
                "/v1/connections",
                json!({"system": "sandbox", "name": "Test ERP", "settings": settings}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        (
            res.body["connection"]["id"].as_str().unwrap().to_string(),
            res.body["token"].as_str().unwrap().to_string(),
        )
    }

    /// Sends a request and reads its answer.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Res {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// The server's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET` with a bearer credential.
    pub async fn get(&self, token: &str, path: &str) -> Res {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    /// `POST` of a JSON body with a bearer credential.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> Res {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// `PATCH` of a JSON body with a bearer credential.
    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Res {
        self.send(
            self.client
                .patch(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// `DELETE` with a bearer credential.
    pub async fn delete(&self, token: &str, path: &str) -> Res {
        self.send(self.client.delete(self.url(path)).bearer_auth(token))
            .await
    }

    /// Every record of a list endpoint, following cursors; also returns the first page's
    /// `total_count` (0 when it has none: record lists count with `include_total=true`).
    pub async fn all(&self, token: &str, path: &str) -> (Vec<Value>, u64) {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut total = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_string(),
            };
            let res = self.get(token, &url).await;
            assert_eq!(res.status, 200, "{}", res.body);
            total.get_or_insert(res.body["total_count"].as_u64().unwrap_or(0));
            out.extend(res.body["data"].as_array().unwrap().iter().cloned());
            match res.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        (out, total.unwrap_or(0))
    }

    /// Runs a raw statement against the database, bypassing the API.
    pub async fn raw_sql(&self, sql: &'static str) -> u64 {
        self.db.raw_sql(sql).await
    }

    /// Closes the database pool under the running server.
    pub async fn close_database(&self) {
        self.db.close().await
    }

    /// The SQLite file's bytes (None on PostgreSQL).
    pub fn database_bytes(&self) -> Option<Vec<u8>> {
        self.db.file_bytes()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
