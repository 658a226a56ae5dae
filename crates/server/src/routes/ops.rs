//! Liveness, readiness, metrics, the OpenAPI document and the docs page (assets embedded).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use ironbridge_model::api::HealthOut;

use std::time::Duration;

use ironbridge_engine::worker::JOB_KINDS;

use crate::{AppState, context, openapi, scrape};

/// Liveness: the process answers.
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and the process is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = !state.shutdown.is_cancelled() && state.store.ping().await.is_ok();
    let (status, text) = if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(HealthOut {
            status: text.into(),
        }),
    )
        .into_response()
}

/// How long a scrape waits for the queue's counts. The database is slowest when the operator
/// most needs the other metrics (its pool exhausted): past this, the scrape goes without them.
const QUEUE_COUNTS_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus metrics in the text exposition format: what this process recorded (requests,
/// jobs, syncs, webhooks), then gauges read now from its store (pools, the job queue).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = context::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    let counts = tokio::time::timeout(
        QUEUE_COUNTS_TIMEOUT,
        state.store.job_counts(state.clock.now()),
    )
    .await;
    let counts = match counts {
        Ok(Ok(counts)) => Some(counts),
        Ok(Err(e)) => {
            tracing::warn!(error = %e.chain(), "metrics: could not count the queued jobs");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: counting the queued jobs took too long; left out");
            None
        }
    };
    scrape::render_store_gauges(
        &mut body,
        &state.store.pool_stats(),
        counts.as_deref(),
        JOB_KINDS,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The OpenAPI 3.1 document.
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ironbridge API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", deepLinking: true });
</script>
</body>
</html>
"##;

/// The interactive API reference (Swagger UI, served from the binary; no CDN).
pub async fn docs_page() -> Html<&'static str> {
    Html(DOCS_HTML)
}

/// Swagger UI's script, embedded at build time.
pub async fn docs_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    )
        .into_response()
}

/// Swagger UI's stylesheet, embedded at build time.
pub async fn docs_style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../assets/swagger-ui/swagger-ui.css"),
    )
        .into_response()
}
