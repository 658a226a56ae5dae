//! Ironbridge's HTTP API. Read in this order: `routes` (every endpoint, one module per
//! resource), `auth` (who is calling), `extract` (JSON and query parsing with precise errors),
//! `error` (the one error body), `context` (request ids, versions, logs, metrics), `scrape`
//! (the store's gauges in `/metrics`), `openapi`; `link` and `html` are the hosted Link pages
//! an end customer connects their system in.

pub mod auth;
pub mod context;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod extract;
pub mod html;
pub mod idempotency;
pub mod link;
pub mod mcp;
pub mod openapi;
pub mod ratelimit;
pub mod request_log;
pub mod routes;
pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ironbridge_core::Clock;
use ironbridge_core::crypto::Keys;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::store::Store;
use ironbridge_engine::webhooks::Dispatcher;
use tokio_util::sync::CancellationToken;

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Sustained requests per second allowed per credential.
    pub rate_limit_per_second: u32,
    /// Requests a credential may make in a burst.
    pub rate_limit_burst: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest accepted body of a bulk batch (`POST /v1/batches`, up to 10,000 operations).
    pub max_batch_body_bytes: usize,
    /// Longest a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Sustained requests per minute per client address without a valid credential: failed
    /// authentication and unauthenticated routes (0 disables the limit).
    pub anonymous_per_minute: u32,
    /// Such requests a client address may make in a burst.
    pub anonymous_burst: u32,
    /// Proxies whose forwarding headers (`Forwarded`, `X-Forwarded-For`) name the client.
    /// Empty: the peer is the client and those headers are ignored.
    pub trusted_proxies: Vec<ironbridge_core::netguard::IpNet>,
    /// How long a link token works after it is created.
    pub link_token_ttl: Duration,
    /// Origins (`https://app.example.com`) allowed to embed the Link pages in a frame, besides
    /// the origin of each link token's redirect URL.
    pub link_frame_ancestors: Vec<String>,
    /// How long a dashboard session lasts.
    pub dashboard_session_ttl: Duration,
    /// Mark the dashboard's cookies `Secure` (set it when clients reach the server over TLS;
    /// a request forwarded with `X-Forwarded-Proto: https` gets them anyway).
    pub secure_cookies: bool,
    /// How long the API request log keeps an entry.
    pub request_log_retention: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            max_body_bytes: 1024 * 1024,
            max_batch_body_bytes: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            anonymous_per_minute: 60,
            anonymous_burst: 20,
            trusted_proxies: Vec::new(),
            link_token_ttl: Duration::from_secs(30 * 60),
            link_frame_ancestors: Vec::new(),
            dashboard_session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            request_log_retention: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// Everything a handler may need, shared by all requests.
pub struct AppStateInner {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Secrets derived from the master key.
    pub keys: Arc<Keys>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The systems, and one connector runtime per connection (shared with the worker of
    /// the same process).
    pub runtimes: Arc<Runtimes>,
    /// Settings.
    pub config: ServerConfig,
    /// Webhook delivery: its rules for endpoint URLs, and test pings.
    pub webhooks: Arc<Dispatcher>,
    /// Per-credential rate limits.
    pub limiter: ratelimit::RateLimiter,
    /// Per-client-address limits of requests without a valid credential.
    pub anonymous: ratelimit::RateLimiter,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Connections' field mappings, compiled, each kept while its version is current.
    pub views: ironbridge_core::field_mappings::ViewCache,
    /// API requests not yet written to the request log.
    pub request_log: Arc<request_log::RequestLog>,
}

/// Cheap-to-clone handle on the shared state.
#[derive(Clone)]
pub struct AppState(pub Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        runtimes: Arc<Runtimes>,
        webhooks: Arc<Dispatcher>,
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let limiter =
            ratelimit::RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst);
        let anonymous =
            ratelimit::RateLimiter::per_minute(config.anonymous_per_minute, config.anonymous_burst);
        context::prometheus();
        AppState(Arc::new(AppStateInner {
            store,
            keys,
            clock,
            runtimes,
            webhooks,
            config,
            limiter,
            anonymous,
            shutdown,
            views: Default::default(),
            request_log: Default::default(),
        }))
    }

    /// The field mappings of `connection` as they are now (`None`: it has no overrides).
    pub async fn view(
        &self,
        connection: &ironbridge_core::store::Connection,
    ) -> Result<
        Option<Arc<ironbridge_core::field_mappings::ConnectionView>>,
        ironbridge_core::service::ServiceError,
    > {
        if connection.mapping_version == 0 {
            return Ok(None);
        }
        let system = self.runtimes.registry().require(&connection.system)?;
        self.views
            .view(self.store.as_ref(), system, connection)
            .await
    }
}

/// The whole application: API routes, operations routes, docs, and the middleware stack.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the application on `listener` until `shutdown` is cancelled, then drains requests.
/// Each request knows its peer's address (the per-address limits key on it).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    serve_router(listener, state.clone(), app(state)).await
}

/// Serves only `/healthz`, `/readyz` and `/metrics` (a worker process, which has no API but
/// whose jobs' metrics must be scraped from it), like [`serve`].
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> std::io::Result<()> {
    serve_router(listener, state.clone(), routes::health_router(state)).await
}

async fn serve_router(
    listener: tokio::net::TcpListener,
    state: AppState,
    router: Router,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    tokio::spawn(context::metrics_upkeep(shutdown.clone()));
    tokio::spawn(request_log::upkeep(
        state.request_log.clone(),
        state.store.clone(),
        state.clock.clone(),
        state.config.request_log_retention,
        shutdown.clone(),
    ));
    let listener = edge::EnvelopeListener::new(listener, state.clock.clone());
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<edge::Peer>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
