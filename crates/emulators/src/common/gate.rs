//! Middleware in front of every emulated API (never the admin API): logs the request, applies injected
//! faults and the system's concurrency and per-minute limits, answering in the system's own error format,
//! and loses the answer of a request it processed when told to.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use super::Core;
use super::faults::{Injected, LoseMode};
use super::net::Connection;

/// Why a request is being throttled; systems may word their 429 differently per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Injected,
    Concurrency,
    Budget,
}

/// A system's own limits and error bodies, used by the gate.
pub trait SystemErrors: Send + Sync + 'static {
    fn too_many_requests(&self, why: Throttle, retry_after_secs: Option<u64>) -> Response;
    fn server_error(&self, status: StatusCode) -> Response;
    /// (running, queued): requests beyond `running` wait, beyond `running + queued` get 429.
    fn concurrency(&self) -> Option<(u32, u32)> {
        None
    }
    /// Requests allowed per clock minute, and the `Retry-After` to send when over it.
    fn per_minute_budget(&self) -> Option<(u32, Option<u64>)> {
        None
    }
}

#[derive(Clone)]
pub struct Gate {
    pub core: Arc<Core>,
    pub errors: Arc<dyn SystemErrors>,
    slots: Arc<Slots>,
}

#[derive(Default)]
struct Slots {
    state: Mutex<SlotState>,
    freed: Notify,
}

#[derive(Default)]
struct SlotState {
    admitted: u32,
    running: u32,
    minute: i64,
    in_minute: u32,
}

impl Gate {
    pub fn new(core: Arc<Core>, errors: Arc<dyn SystemErrors>) -> Self {
        Self {
            core,
            errors,
            slots: Arc::default(),
        }
    }
}

/// Releases a concurrency slot when the request finishes (or is cancelled by a client disconnect).
struct SlotGuard {
    slots: Arc<Slots>,
    running: bool,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut s = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        s.admitted -= 1;
        if self.running {
            s.running -= 1;
        }
        drop(s);
        self.slots.freed.notify_waiters();
    }
}

pub async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    let core = &g.core;
    let seq = core
        .log
        .start(core.clock.now_ms(), req.method(), req.uri(), req.headers());
    let resp = run(&g, req, next).await;
    core.log.finish(seq, resp.status().as_u16());
    resp
}

/// Logging only, for endpoints that are another host in reality (Entra ID in front of Business
/// Central): they count as upstream calls but are not subject to the system's limits or faults.
pub async fn log_only(State(core): State<Arc<Core>>, req: Request, next: Next) -> Response {
    let seq = core
        .log
        .start(core.clock.now_ms(), req.method(), req.uri(), req.headers());
    let resp = next.run(req).await;
    core.log.finish(seq, resp.status().as_u16());
    resp
}

async fn run(g: &Gate, req: Request, next: Next) -> Response {
    let plan = g.core.faults.plan();
    // Per-minute budget, counted on the emulator clock so tests move time instead of waiting.
    if let Some((budget, retry_after)) = g.errors.per_minute_budget() {
        let minute = g.core.clock.now_ms().div_euclid(60_000);
        let mut s = g.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.minute != minute {
            s.minute = minute;
            s.in_minute = 0;
        }
        if s.in_minute >= budget {
            drop(s);
            return g.errors.too_many_requests(Throttle::Budget, retry_after);
        }
        s.in_minute += 1;
    }
    // Admission first: a slow (latency, hang) request holds its slot like a slow real one.
    let _guard = match admit(g, plan.concurrency_limit).await {
        Ok(guard) => guard,
        Err(resp) => return resp,
    };
    if plan.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
    }
    if plan.hang_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.hang_ms)).await;
    }
    match plan.injected {
        Some(Injected::Error(e)) => {
            let mut resp = Response::new(Body::from(e.body));
            *resp.status_mut() =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(v) = HeaderValue::from_str(&e.content_type) {
                resp.headers_mut().insert("content-type", v);
            }
            for (k, v) in e.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Some(Injected::TooManyRequests { retry_after_secs }) => g
            .errors
            .too_many_requests(Throttle::Injected, retry_after_secs),
        Some(Injected::ServerError(s)) => g
            .errors
            .server_error(StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
        None => {
            let lost = g
                .core
                .faults
                .lose_answer(req.method().as_str(), req.uri().path());
            let connection = req
                .extensions()
                .get::<axum::extract::ConnectInfo<Connection>>()
                .map(|c| c.0.clone());
            let resp = next.run(req).await.into_response();
            match lost {
                None => resp,
                Some((mode, hold_ms)) => lose(resp, mode, hold_ms, connection).await,
            }
        }
    }
}

/// The answer to a request that was processed, lost on its way back.
async fn lose(
    resp: Response,
    mode: LoseMode,
    hold_ms: u64,
    connection: Option<Connection>,
) -> Response {
    match mode {
        LoseMode::Hang => {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            resp
        }
        LoseMode::GatewayTimeout | LoseMode::BadGateway => {
            // A gateway's own page, not the system's error format.
            let (status, text) = if mode == LoseMode::GatewayTimeout {
                (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out")
            } else {
                (StatusCode::BAD_GATEWAY, "502 Bad Gateway")
            };
            let mut r = (status, text).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            r
        }
        LoseMode::Drop => {
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            if bytes.is_empty() {
                // Nothing to cut short (a 204): the connection is reset before the status
                // line goes out.
                if let Some(c) = connection {
                    c.reset();
                }
                return Response::from_parts(parts, Body::empty());
            }
            parts.headers.remove("content-length");
            let head = bytes.slice(..bytes.len().div_ceil(2));
            Response::from_parts(parts, Body::new(CutOff::new(head)))
        }
    }
}

/// A body that sends its first part, pauses so the status line and that part go out, then
/// fails, which makes the server close the connection mid-answer.
struct CutOff {
    head: Option<bytes::Bytes>,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl CutOff {
    fn new(head: bytes::Bytes) -> Self {
        CutOff {
            head: Some(head),
            pause: Some(Box::pin(tokio::time::sleep(Duration::from_millis(20)))),
        }
    }
}

impl http_body::Body for CutOff {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(head) = self.head.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(head))));
        }
        if let Some(pause) = self.pause.as_mut() {
            std::task::ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the answer was lost (lose_answer fault)",
        ))))
    }
}

/// Concurrency: the system's own limit, narrowed by an injected one (which never queues).
async fn admit(g: &Gate, injected: Option<u32>) -> Result<Option<SlotGuard>, Response> {
    let system = g.errors.concurrency();
    let (running_max, queue_max) = match (system, injected) {
        (Some((r, q)), Some(f)) => (r.min(f), if f < r { 0 } else { q }),
        (Some(rq), None) => rq,
        (None, Some(f)) => (f, 0),
        (None, None) => return Ok(None),
    };
    let mut guard = {
        let mut s = g.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.admitted >= running_max.saturating_add(queue_max) {
            drop(s);
            return Err(g.errors.too_many_requests(Throttle::Concurrency, None));
        }
        s.admitted += 1;
        SlotGuard {
            slots: g.slots.clone(),
            running: false,
        }
    };
    loop {
        let freed = g.slots.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        {
            let mut s = g.slots.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.running < running_max {
                s.running += 1;
                guard.running = true;
                break;
            }
        }
        freed.await;
    }
    Ok(Some(guard))
}
