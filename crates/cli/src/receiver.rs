//! A local webhook receiver for `demo` and `bench webhooks`: it verifies each delivery's
//! Standard Webhooks signature with the secret of the endpoint it was sent to (one path per
//! endpoint), answers 204 (or 400 for a bad signature), and counts what arrived, with the
//! delay from each event to its arrival.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ironbridge_core::webhooks::{Secret, verify};
use ironbridge_core::{Clock, SystemClock};
use ironbridge_model::Timestamp;

/// What the receiver saw.
#[derive(Default)]
pub struct Received {
    secrets: Mutex<HashMap<String, Secret>>,
    inner: Mutex<Tally>,
}

/// Counts and delays.
#[derive(Default, Clone)]
pub struct Tally {
    /// Deliveries whose signature verified.
    pub verified: u64,
    /// Deliveries refused (bad or missing signature, unknown path).
    pub refused: u64,
    /// Distinct `webhook-id`s verified.
    pub ids: HashSet<String>,
    /// Microseconds from each event's `timestamp` to its arrival.
    pub delays_micros: Vec<i64>,
    /// Event types verified, in arrival order.
    pub types: Vec<String>,
}

impl Received {
    /// Registers the secret of the endpoint served at `/hooks/{name}`.
    pub fn expect(&self, name: &str, secret: Secret) {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), secret);
    }

    /// A copy of the counts so far.
    pub fn tally(&self) -> Tally {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Deliveries verified so far.
    pub fn verified(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verified
    }

    /// Forgets what arrived so far (between benchmark phases).
    pub fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Tally::default();
    }
}

/// An endpoint that never answers in time (the sender's timeout ends each attempt).
async fn hang() -> StatusCode {
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    StatusCode::NO_CONTENT
}

async fn receive(
    State(rx): State<Arc<Received>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let now = SystemClock.now();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let secret = rx
        .secrets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned();
    let ok = secret.is_some_and(|s| {
        verify(
            &s,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            now.micros() / 1_000_000,
        )
        .is_ok()
    });
    let mut tally = rx.inner.lock().unwrap_or_else(|e| e.into_inner());
    if !ok {
        tally.refused += 1;
        return StatusCode::BAD_REQUEST;
    }
    tally.verified += 1;
    tally.ids.insert(header("webhook-id").to_string());
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(at) = event["timestamp"]
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
        {
            tally.delays_micros.push(now.micros() - at.micros());
        }
        if let Some(t) = event["type"].as_str() {
            tally.types.push(t.to_string());
        }
    }
    StatusCode::NO_CONTENT
}

/// Starts a receiver on `127.0.0.1` (any port); returns its base URL (`…/hooks/{name}` are
/// its endpoints, `…/hang` one that never answers) and what it receives.
pub async fn start() -> anyhow::Result<(String, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/hooks/{name}", post(receive))
        .route("/hang", post(hang))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, received))
}
