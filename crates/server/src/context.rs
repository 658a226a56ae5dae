//! What wraps every request: a request id (header and error bodies), the API version check and
//! header, the request timeout, one structured log line, and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ironbridge_core::ids::new_id;
use ironbridge_engine::telemetry;
use ironbridge_model::ErrorCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;
use crate::error::ApiError;

/// Header carrying the request id on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Header naming the API version (request: pin; response: served).
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("ironbridge-version");
/// The current version of the v1 API. Versions are dates; breaking changes get a new path.
pub const CURRENT_VERSION: &str = "2026-11-23";
/// Every version this server serves.
pub const SUPPORTED_VERSIONS: &[&str] = &[CURRENT_VERSION];

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served (a fresh one outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| {
        new_id(
            "req",
            ironbridge_core::Clock::now(&ironbridge_core::SystemClock).micros(),
        )
    })
}

/// The id of a request, also in its extensions: for work the request hands to another task
/// (an MCP tool call), which runs it under the same id with [`with_request_id`].
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Runs `work` with `id` as the current request id (error bodies and logs carry it).
pub async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The outermost middleware.
pub async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let received = state.clock.now();
    let request_id = new_id("req", received.micros());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let version = req
        .headers()
        .get(&VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let timeout = state.config.request_timeout;
    let mut response = REQUEST_ID
        .scope(request_id.clone(), async move {
            if let Some(v) = version
                && !SUPPORTED_VERSIONS.contains(&v.as_str())
            {
                return ApiError::new(
                    ErrorCode::UnsupportedApiVersion,
                    format!(
                        "API version {v:?} is not served here. Supported: {}.",
                        SUPPORTED_VERSIONS.join(", ")
                    ),
                )
                .param("Ironbridge-Version")
                .into_response();
            }
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError::unavailable("request timed out").into_response(),
            }
        })
        .await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    headers.insert(VERSION_HEADER, HeaderValue::from_static(CURRENT_VERSION));
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request_id = %request_id, method = %method, path = %path, status, elapsed_ms, "request");
    if let Some(crate::request_log::LoggedOrg(org)) = response.extensions().get() {
        state
            .request_log
            .push(ironbridge_core::store::RequestLogEntry {
                org_id: org.clone(),
                request_id,
                method: method.to_string(),
                path,
                status: i32::from(status),
                latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
                created_at: received,
            });
    }
    response
}

/// Records request counts and latencies per matched route.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Requests handled; labels `method`, `route` (the matched pattern), `status`.
pub const HTTP_REQUESTS: &str = "ironbridge_http_requests_total";
/// Seconds a request took; labels `method`, `route`.
pub const HTTP_REQUEST_DURATION: &str = "ironbridge_http_request_duration_seconds";
/// Seconds a store waited for a connection of a pool; label `pool` (recorded by the store).
pub const DB_POOL_ACQUIRE: &str = "ironbridge_db_pool_acquire_seconds";

/// Buckets (upper bounds, seconds) of request durations, up to the request timeout.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of pool waits: a free connection is taken in microseconds; waits of
/// milliseconds and more mean the pool is exhausted.
const ACQUIRE_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of any other histogram.
const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The exporter's settings: every histogram is a Prometheus histogram with buckets (not a
/// summary), so the processes of a cluster can be aggregated and quantiles taken over any
/// range.
fn builder() -> PrometheusBuilder {
    let own: [(&str, &[f64]); 2] = [
        (HTTP_REQUEST_DURATION, HTTP_BUCKETS),
        (DB_POOL_ACQUIRE, ACQUIRE_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in own.into_iter().chain(telemetry::BUCKETS.iter().copied()) {
        // Only an empty list is refused, and none is.
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            .expect("bucket lists are not empty");
    }
    builder
        .set_buckets(DEFAULT_BUCKETS)
        .expect("bucket lists are not empty")
}

/// Folds recorded histogram samples into their buckets every few seconds, so a process
/// nobody scrapes does not keep every sample until the next scrape. Ends at `shutdown`.
pub async fn metrics_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let Some(handle) = prometheus() else {
        return;
    };
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

/// The process-wide Prometheus recorder (metrics are global, so it is installed once), with
/// every metric described.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match builder().install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// Describes the metrics this process records (the `# HELP` lines).
fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        metrics::Unit::Count,
        "HTTP requests handled, by method, matched route and status."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time an HTTP request took, by method and matched route."
    );
    metrics::describe_histogram!(
        DB_POOL_ACQUIRE,
        metrics::Unit::Seconds,
        "Time the store waited for a connection of a pool, by pool."
    );
    metrics::describe_counter!(
        crate::mcp::MCP_TOOL_CALLS,
        metrics::Unit::Count,
        "MCP tool calls, by tool and outcome (ok or the error code)."
    );
    metrics::describe_histogram!(
        crate::mcp::MCP_TOOL_CALL_DURATION,
        metrics::Unit::Seconds,
        "Time an MCP tool call took, by tool."
    );
    telemetry::describe();
}

/// Answer for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "No such route. See /openapi.json for the API.",
    )
}

/// Answer for known routes called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "This route does not accept this HTTP method. See /openapi.json.",
    )
}

/// Turns a panic into a plain 500; the payload goes to the log, not to the client.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}
