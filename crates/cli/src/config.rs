//! Configuration: built-in defaults, then an optional TOML file, then `IRONBRIDGE_*`
//! environment variables (`__` separates sections: `IRONBRIDGE_RATE_LIMIT__PER_SECOND`), then
//! command-line flags. Validated once at start-up with messages a person can act on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ironbridge_core::crypto::Keys;
use ironbridge_core::netguard::{Egress, IpNet, NetworkPolicy};
use ironbridge_engine::webhooks::guard::parse_network;
use ironbridge_engine::webhooks::{AddressPolicy, WebhookConfig};
use serde::{Deserialize, Serialize};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which parts of Ironbridge this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The HTTP API only.
    Api,
    /// Background work only (scheduled and requested syncs).
    Worker,
    /// Both (one machine).
    All,
}

/// Rate limits per credential, and per client address for requests without a valid one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (0 disables limiting).
    pub per_second: u32,
    /// Requests allowed in a burst.
    pub burst: u32,
    /// Sustained requests per minute per client address that fail authentication or need
    /// none (health, metrics, docs); 0 disables this limit.
    pub anonymous_per_minute: u32,
    /// Such requests allowed in a burst.
    pub anonymous_burst: u32,
    /// Networks of reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the
    /// client (`["10.0.0.0/8"]`). Empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl RateLimit {
    /// The trusted proxies' networks.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|n| {
                parse_network(n).map_err(|e| anyhow::anyhow!("rate_limit.trusted_proxies: {e}"))
            })
            .collect()
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seconds an attempt may take, connection included (Standard Webhooks: 15 to 30).
    pub timeout_secs: u64,
    /// Seconds between failed attempts, after the first immediate one (Svix's schedule).
    pub retry_schedule_secs: Vec<u64>,
    /// Hours of failed attempts (none succeeding) after which an endpoint is disabled.
    pub disable_after_hours: u64,
    /// Networks webhooks may reach although they are not public, e.g. `["10.1.0.0/16"]`.
    pub allowed_networks: Vec<String>,
    /// Refuse `http://` endpoint URLs.
    pub https_only: bool,
    /// Seconds a dispatcher holds a delivery; after a crash it is sent again this long after
    /// it was claimed. More than `timeout_secs`.
    pub lease_secs: u64,
    /// Attempts in flight at once, in all.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Days finished deliveries and attempts are kept.
    pub retention_days: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let defaults = WebhookConfig::default();
        WebhookSettings {
            timeout_secs: defaults.timeout.as_secs(),
            retry_schedule_secs: defaults
                .retry_schedule
                .iter()
                .map(Duration::as_secs)
                .collect(),
            disable_after_hours: defaults.disable_after.as_secs() / 3600,
            allowed_networks: Vec::new(),
            https_only: false,
            lease_secs: defaults.lease.as_secs(),
            max_in_flight: defaults.max_in_flight,
            max_in_flight_per_endpoint: defaults.max_in_flight_per_endpoint,
            retention_days: defaults.retention.as_secs() / 86_400,
        }
    }
}

impl WebhookSettings {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=60).contains(&self.timeout_secs) {
            bail!("webhooks.timeout_secs must be between 1 and 60");
        }
        if self.retry_schedule_secs.len() > 20
            || self.retry_schedule_secs.iter().any(|s| *s > 7 * 86_400)
        {
            bail!("webhooks.retry_schedule_secs may hold at most 20 delays of at most a week each");
        }
        if self.disable_after_hours == 0 {
            bail!("webhooks.disable_after_hours must be at least 1");
        }
        if self.lease_secs <= self.timeout_secs {
            bail!("webhooks.lease_secs must be more than webhooks.timeout_secs");
        }
        if self.max_in_flight == 0 || self.max_in_flight_per_endpoint == 0 {
            bail!("webhooks.max_in_flight and max_in_flight_per_endpoint must be at least 1");
        }
        if self.retention_days == 0 {
            bail!("webhooks.retention_days must be at least 1");
        }
        for n in &self.allowed_networks {
            parse_network(n).map_err(|e| anyhow::anyhow!("webhooks.allowed_networks: {e}"))?;
        }
        Ok(())
    }

    /// The dispatcher's configuration.
    pub fn config(&self) -> anyhow::Result<WebhookConfig> {
        let allowed_networks = self
            .allowed_networks
            .iter()
            .map(|n| {
                parse_network(n).map_err(|e| anyhow::anyhow!("webhooks.allowed_networks: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(WebhookConfig {
            timeout: Duration::from_secs(self.timeout_secs),
            retry_schedule: self
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            disable_after: Duration::from_secs(self.disable_after_hours * 3600),
            lease: Duration::from_secs(self.lease_secs),
            max_in_flight: self.max_in_flight,
            max_in_flight_per_endpoint: self.max_in_flight_per_endpoint,
            retention: Duration::from_secs(self.retention_days * 86_400),
            policy: Arc::new(AddressPolicy {
                allowed_networks,
                https_only: self.https_only,
            }),
            ..WebhookConfig::default()
        })
    }
}

/// Connections to source systems.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// Non-public networks and host names connections may reach (an on-premises SAP
    /// system): `["10.0.0.0/8", "sap.internal.example"]`. Empty by default: connections
    /// reach public addresses only.
    pub allowed_private_networks: Vec<String>,
    /// Megabytes a source's answer may be at most (a page of records, mostly): a sync whose
    /// page is larger fails, naming the connection's `page_size`.
    pub max_response_mb: usize,
    /// A PEM file of certificate authorities trusted besides the system's, for sources
    /// whose certificates a company's own authority signed (on-premises systems).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            allowed_private_networks: Vec::new(),
            max_response_mb: ironbridge_core::netguard::DEFAULT_MAX_RESPONSE_BYTES >> 20,
            ca_file: None,
        }
    }
}

impl ConnectionSettings {
    fn policy(&self) -> anyhow::Result<NetworkPolicy> {
        NetworkPolicy::parse(self.allowed_private_networks.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("connections.allowed_private_networks: {e}"))
    }

    /// Where connectors may connect.
    pub fn egress(&self) -> anyhow::Result<Egress> {
        if !(1..=4096).contains(&self.max_response_mb) {
            anyhow::bail!("connections.max_response_mb must be between 1 and 4096");
        }
        let egress =
            Egress::new(self.policy()?).with_max_response_bytes(self.max_response_mb << 20);
        let Some(path) = &self.ca_file else {
            return Ok(egress);
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("connections.ca_file {}: {e}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            anyhow::bail!(
                "connections.ca_file {}: no PEM certificate in it",
                path.display()
            );
        }
        Ok(egress.with_extra_ca_pem(pem))
    }
}

/// Link, the hosted pages in which end customers connect their systems.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSettings {
    /// Seconds a link token works after it is created (default 1800).
    pub token_ttl_secs: u64,
    /// Origins allowed to embed Link in a frame besides each link token's redirect URL's
    /// origin: `["https://app.example.com"]`.
    pub frame_ancestors: Vec<String>,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            token_ttl_secs: 1800,
            frame_ancestors: Vec::new(),
        }
    }
}

/// The dashboard of organizations' developers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    /// Seconds a signed-in session lasts (default 43200, twelve hours).
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure`: set it when people reach the server over TLS (a
    /// request forwarded with `X-Forwarded-Proto: https` gets it anyway).
    pub secure_cookies: bool,
    /// Days the API request log keeps an entry (default 14).
    pub request_log_retention_days: u64,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            session_ttl_secs: 12 * 3600,
            secure_cookies: false,
            request_log_retention_days: 14,
        }
    }
}

impl LinkSettings {
    fn validate(&self) -> anyhow::Result<()> {
        if !(60..=86_400).contains(&self.token_ttl_secs) {
            bail!("link.token_ttl_secs must be between 60 and 86400");
        }
        for origin in &self.frame_ancestors {
            let url = ironbridge_core::netguard::Url::parse(origin).ok();
            let plain = url.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
                    && !origin.ends_with('/')
            });
            if !plain {
                bail!(
                    "link.frame_ancestors: {origin:?} is not an origin like https://app.example.com"
                );
            }
        }
        Ok(())
    }
}

impl DashboardSettings {
    fn validate(&self) -> anyhow::Result<()> {
        if !(300..=30 * 86_400).contains(&self.session_ttl_secs) {
            bail!("dashboard.session_ttl_secs must be between 300 and 2592000");
        }
        if !(1..=3650).contains(&self.request_log_retention_days) {
            bail!("dashboard.request_log_retention_days must be between 1 and 3650");
        }
        Ok(())
    }
}

/// Every setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: String,
    /// Directory for the SQLite file and the generated master key.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Base64 master key (32 bytes). Prefer `master_key_file`.
    pub master_key: Option<String>,
    /// File holding the base64 master key. Default: `<data_dir>/master.key`, generated if absent.
    pub master_key_file: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `ironbridge_server=debug,info`.
    pub log_level: String,
    /// Connection credits of newly created organizations.
    pub default_connection_credits: i64,
    /// Per-credential rate limit.
    pub rate_limit: RateLimit,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest body of a bulk batch (`POST /v1/batches`) in bytes.
    pub max_batch_body_bytes: usize,
    /// Seconds before a request is answered with 503.
    pub request_timeout_secs: u64,
    /// `api`, `worker` or `all`.
    pub role: Role,
    /// Seconds between scheduled syncs of each connection.
    pub sync_interval_secs: u64,
    /// Seconds between scheduled full syncs of each connection, which mark the records the
    /// source no longer has as deleted (0: never; `POST /v1/sync {"full": true}` still runs one).
    pub reconcile_interval_secs: u64,
    /// Seconds a worker holds a job without renewing it: after a crash, another worker (or
    /// the restarted one) takes the job over this long after the last renewal.
    pub job_lease_secs: u64,
    /// Jobs (syncs) a worker process runs at once (default: four per core).
    pub worker_max_jobs: usize,
    /// Megabytes of source pages each sync holds in memory at once (fetched, mapped or
    /// waiting to be written). A worker's sync memory is about `worker_max_jobs` times this.
    pub sync_memory_mb: usize,
    /// Seconds a stopping worker lets its running jobs finish; those still running then are
    /// stopped (what they committed stays) and their leases given back at once.
    pub worker_drain_secs: u64,
    /// Days vehicle locations (and other time-series points) are kept; older points are
    /// purged by the workers (0: kept for ever).
    pub point_retention_days: u64,
    /// Seconds between polls of the feeds a connection follows (Samsara's vehicle
    /// locations), apart from the hourly sync of everything else; 5 to 3600, or 0 to read
    /// them with the scheduled sync only.
    pub poll_interval_secs: u64,
    /// Where a `--role worker` process serves `/healthz`, `/readyz` and `/metrics` (what its
    /// jobs record is reported only by itself); none by default. Other roles serve them on
    /// `listen`.
    pub metrics_listen: Option<String>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Connections to source systems.
    pub connections: ConnectionSettings,
    /// Link's hosted pages.
    #[serde(default)]
    pub link: LinkSettings,
    /// The dashboard.
    #[serde(default)]
    pub dashboard: DashboardSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("ironbridge-data"),
            database_url: None,
            master_key: None,
            master_key_file: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            default_connection_credits: 10,
            rate_limit: RateLimit {
                per_second: 20,
                burst: 100,
                anonymous_per_minute: 60,
                anonymous_burst: 20,
                trusted_proxies: Vec::new(),
            },
            max_body_bytes: 1024 * 1024,
            max_batch_body_bytes: 32 * 1024 * 1024,
            request_timeout_secs: 30,
            role: Role::All,
            sync_interval_secs: 3600,
            reconcile_interval_secs: 7 * 86_400,
            job_lease_secs: 300,
            worker_max_jobs: ironbridge_engine::worker::default_max_jobs(),
            sync_memory_mb: ironbridge_engine::sync::budget::DEFAULT_MEMORY_BUDGET >> 20,
            worker_drain_secs: 30,
            point_retention_days: 90,
            poll_interval_secs: 30,
            metrics_listen: None,
            webhooks: WebhookSettings::default(),
            connections: ConnectionSettings::default(),
            link: LinkSettings::default(),
            dashboard: DashboardSettings::default(),
        }
    }
}

/// Flags that override the configuration.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `serve --role`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl Settings {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("IRONBRIDGE_").split("__").ignore(&[
                "config",
                "mcp_token",
                "api_key",
                "url",
                "dashboard_password",
            ]))
            .merge(Serialized::defaults(overrides));
        let settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.link.validate()?;
        self.dashboard.validate()?;
        self.listen.parse::<SocketAddr>().with_context(|| {
            format!(
                "listen = {:?} is not an address like 127.0.0.1:8080",
                self.listen
            )
        })?;
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!(
                "database_url must start with sqlite:// or postgres:// (got a URL of another kind)"
            );
        }
        if self.default_connection_credits < 0 {
            bail!("default_connection_credits must not be negative");
        }
        if self.rate_limit.per_second > 0 && self.rate_limit.burst == 0 {
            bail!("rate_limit.burst must be at least 1");
        }
        if self.rate_limit.anonymous_per_minute > 0 && self.rate_limit.anonymous_burst == 0 {
            bail!("rate_limit.anonymous_burst must be at least 1");
        }
        self.rate_limit.trusted_proxies()?;
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if self.max_batch_body_bytes < self.max_body_bytes {
            bail!("max_batch_body_bytes must be at least max_body_bytes");
        }
        if self.request_timeout_secs == 0 {
            bail!("request_timeout_secs must be at least 1");
        }
        if self.sync_interval_secs < 60 {
            bail!("sync_interval_secs must be at least 60");
        }
        if self.poll_interval_secs != 0 && !(5..=3600).contains(&self.poll_interval_secs) {
            bail!("poll_interval_secs must be 0 (no polling) or between 5 and 3600");
        }
        if self.reconcile_interval_secs != 0
            && self.reconcile_interval_secs < self.sync_interval_secs
        {
            bail!("reconcile_interval_secs must be 0 (never) or at least sync_interval_secs");
        }
        if !(3..=86_400).contains(&self.job_lease_secs) {
            bail!("job_lease_secs must be between 3 and 86400");
        }
        if !(1..=1024).contains(&self.worker_max_jobs) {
            bail!("worker_max_jobs must be between 1 and 1024");
        }
        if !(8..=65_536).contains(&self.sync_memory_mb) {
            bail!("sync_memory_mb must be between 8 and 65536");
        }
        if self.worker_drain_secs > 3600 {
            bail!("worker_drain_secs must be at most 3600");
        }
        if let Some(address) = &self.metrics_listen {
            address.parse::<SocketAddr>().with_context(|| {
                format!("metrics_listen = {address:?} is not an address like 127.0.0.1:9090")
            })?;
        }
        self.webhooks.validate()?;
        self.connections.policy()?;
        if let Some(key) = &self.master_key {
            Keys::decode_master(key).context(
                "master_key must be 32 random bytes, base64-encoded (try: openssl rand -base64 32)",
            )?;
        }
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("ironbridge.db").display())
        })
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Reads the master key from config, a key file, or generates the default key file.
    pub fn master_key(&self) -> anyhow::Result<Keys> {
        if let Some(key) = &self.master_key {
            return Ok(Keys::from_master(&Keys::decode_master(key)?)?);
        }
        let path = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"));
        if !path.exists() {
            if self.master_key_file.is_some() {
                bail!("master_key_file {} does not exist", path.display());
            }
            write_new_key(&path)?;
            tracing::warn!(path = %path.display(), "generated a new master key; back it up: without it stored credentials cannot be decrypted");
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the master key file {}", path.display()))?;
        let bytes = Keys::decode_master(&text)
            .with_context(|| format!("{} must hold 32 bytes, base64-encoded", path.display()))?;
        Ok(Keys::from_master(&bytes)?)
    }
}

fn write_new_key(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the master key file {}", path.display()))?;
    file.write_all(Keys::generate_master().as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_layers_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\n[rate_limit]\nper_second = 5\nburst = 7\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(
            (
                s.listen.as_str(),
                s.rate_limit.per_second,
                s.rate_limit.burst
            ),
            ("127.0.0.1:9999", 5, 7)
        );
        let o = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        assert_eq!(
            Settings::load(Some(&file), &o).unwrap().listen,
            "127.0.0.1:7000"
        );
    }

    #[test]
    fn worker_settings_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "worker_max_jobs = 3\nworker_drain_secs = 5\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((s.worker_max_jobs, s.worker_drain_secs), (3, 5));
        assert!(Settings::default().worker_max_jobs >= 1);
        std::fs::write(&file, "worker_max_jobs = 0\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker_max_jobs must be between 1 and 1024"),
            "{err}"
        );
        std::fs::write(&file, "sync_memory_mb = 128\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(
            (s.sync_memory_mb, Settings::default().sync_memory_mb),
            (128, 64)
        );
        std::fs::write(&file, "sync_memory_mb = 1\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sync_memory_mb must be between 8 and 65536"),
            "{err}"
        );
        assert_eq!(Settings::default().metrics_listen, None);
        std::fs::write(&file, "metrics_listen = \"9090\"\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics_listen = \"9090\" is not an address"),
            "{err}"
        );
    }

    #[test]
    fn reconciliation_is_never_more_often_than_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "reconcile_interval_secs = 600\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("reconcile_interval_secs"), "{err}");
        std::fs::write(&file, "reconcile_interval_secs = 0\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(s.reconcile_interval_secs, 0, "0 turns it off");
        assert_eq!(Settings::default().reconcile_interval_secs, 7 * 86_400);
    }

    #[test]
    fn polling_is_bounded_or_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        for bad in [1, 3601] {
            std::fs::write(&file, format!("poll_interval_secs = {bad}\n")).unwrap();
            let err = Settings::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("poll_interval_secs"), "{bad}: {err}");
        }
        std::fs::write(&file, "poll_interval_secs = 0\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(s.poll_interval_secs, 0, "0 turns it off");
        assert_eq!(Settings::default().poll_interval_secs, 30);
    }

    #[test]
    fn bad_settings_get_readable_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an address"), "{err}");
        std::fs::write(&file, "colour = \"red\"\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        std::fs::write(&file, "master_key = \"short\"\n").unwrap();
        let err = format!(
            "{:#}",
            Settings::load(Some(&file), &Overrides::default()).unwrap_err()
        );
        assert!(
            err.contains("32 random bytes") && !err.contains("short"),
            "{err}"
        );
        let err = Settings::load(
            Some(&dir.path().join("missing.toml")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not exist"), "{err}");
        for (toml, expected) in [
            (
                "[webhooks]\nallowed_networks = [\"nowhere\"]\n",
                "allowed_networks",
            ),
            (
                "[webhooks]\ntimeout_secs = 30\nlease_secs = 20\n",
                "lease_secs",
            ),
            ("[webhooks]\ntimeout_secs = 0\n", "timeout_secs"),
            (
                "[rate_limit]\ntrusted_proxies = [\"proxy\"]\n",
                "rate_limit.trusted_proxies",
            ),
            (
                "[rate_limit]\nanonymous_per_minute = 5\nanonymous_burst = 0\n",
                "anonymous_burst",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let err = Settings::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn webhook_settings_become_the_dispatcher_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[webhooks]\nallowed_networks = [\"127.0.0.1\", \"10.1.0.0/16\"]\nretry_schedule_secs = [1, 2]\nhttps_only = true\n",
        )
        .unwrap();
        let c = Settings::load(Some(&file), &Overrides::default())
            .unwrap()
            .webhooks
            .config()
            .unwrap();
        assert_eq!(
            c.retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert!(c.policy.https_only);
        assert!(c.policy.permits("127.0.0.1".parse().unwrap()));
        assert!(c.policy.permits("10.1.2.3".parse().unwrap()));
        assert!(!c.policy.permits("10.2.0.1".parse().unwrap()));
        let d = Settings::default().webhooks.config().unwrap();
        assert_eq!(d.retry_schedule.len(), 7);
        assert!(!d.policy.permits("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn connections_trust_the_operators_extra_authorities() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let ca = dir.path().join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(&ca, pem).unwrap();
        std::fs::write(
            &file,
            format!("[connections]\nca_file = {:?}\n", ca.display().to_string()),
        )
        .unwrap();
        let e = Settings::load(Some(&file), &Overrides::default())
            .unwrap()
            .connections
            .egress()
            .unwrap();
        assert_eq!(e.extra_ca_pem.as_deref(), Some(pem));
        assert!(
            Settings::default()
                .connections
                .egress()
                .unwrap()
                .extra_ca_pem
                .is_none()
        );
        // A file that is missing or holds no certificate stops the service, naming it.
        for bad in ["no such file", "not a certificate"] {
            if bad == "not a certificate" {
                std::fs::write(&ca, bad).unwrap();
            } else {
                std::fs::remove_file(&ca).unwrap();
            }
            let err = Settings::load(Some(&file), &Overrides::default())
                .unwrap()
                .connections
                .egress()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("connections.ca_file"), "{err}");
            if bad == "no such file" {
                std::fs::write(&ca, pem).unwrap();
            }
        }
    }

    #[test]
    fn connections_reach_public_addresses_unless_the_operator_allows_more() {
        let d = Settings::default().connections.egress().unwrap();
        assert!(!d.policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!d.policy.permits("10.1.2.3".parse().unwrap()));
        assert!(d.policy.permits("93.184.216.34".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[connections]\nallowed_private_networks = [\"10.0.0.0/8\", \"sap.internal.example\"]\n",
        )
        .unwrap();
        let e = Settings::load(Some(&file), &Overrides::default())
            .unwrap()
            .connections
            .egress()
            .unwrap();
        assert!(e.policy.permits("10.1.2.3".parse().unwrap()));
        assert!(!e.policy.permits("127.0.0.1".parse().unwrap()));
        assert!(e.policy.allows_host("sap.internal.example"));
        assert_eq!(e.max_response_bytes, 32 << 20);
        std::fs::write(&file, "[connections]\nmax_response_mb = 8\n").unwrap();
        let e = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(e.connections.egress().unwrap().max_response_bytes, 8 << 20);
        std::fs::write(&file, "[connections]\nmax_response_mb = 0\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default());
        let err = match s {
            Ok(s) => s.connections.egress().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("max_response_mb must be between 1 and 4096"),
            "{err}"
        );
        std::fs::write(
            &file,
            "[connections]\nallowed_private_networks = [\"10.0.0.0/33\"]\n",
        )
        .unwrap();
        let err = Settings::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connections.allowed_private_networks"),
            "{err}"
        );
    }

    #[test]
    fn the_master_key_file_is_generated_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        let first = s.master_key().unwrap();
        let ct = first.encrypt("ctx", b"secret").unwrap();
        let again = s.master_key().unwrap();
        assert_eq!(again.decrypt("ctx", &ct).unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
