//! `Idempotency-Key` on POST and PATCH: the key is claimed before the handler runs, a replay
//! within 24 hours answers the first answer byte for byte (with `Idempotent-Replayed: true`),
//! the same key with another request is refused, and one in flight is a conflict. Writes to
//! a source store their answer in the transaction that stores the record written; other
//! requests store it when they end. Keys are per credential and connection.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ironbridge_core::crypto::sha256_hex_joined;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{IdemAnswer, IdemClaim, IdemHold, IdemRequest, IdemScope};
use ironbridge_core::written;
use ironbridge_model::Timestamp;
use ironbridge_model::error::ErrorCode;

use crate::AppState;
use crate::auth::{CONNECTION_ID_HEADER, Principal};
use crate::error::ApiError;

/// The request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed from an earlier request with the same key.
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long a key's answer is replayed.
pub const REPLAY_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;
/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// A claimed key, for the handler that does the work.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The claim, to complete with the answer.
    pub hold: IdemHold,
    /// The reference a write under this key carries to the source (the same for every
    /// attempt under it).
    pub reference: String,
    /// An earlier attempt under this key may have reached the source: look for its effect
    /// there before writing.
    pub reconcile: bool,
}

/// Marks an answer whose key the handler already completed (with the work's effect).
#[derive(Debug, Clone, Copy)]
pub struct KeyAnswered;

fn refuse(code: ErrorCode, message: &str) -> Response {
    ApiError::new(code, message)
        .param("Idempotency-Key")
        .into_response()
}

/// Whose key it is: the credential and connection of the request.
fn scope(req: &Request, key: String) -> Option<IdemScope> {
    match req.extensions().get::<Principal>()? {
        Principal::Admin { org, key_id, .. } => Some(IdemScope {
            org_id: org.0.clone(),
            credential_id: key_id.clone(),
            connection_id: req
                .headers()
                .get(&CONNECTION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            key,
        }),
        Principal::Connection(c) => Some(IdemScope {
            org_id: c.org_id.clone(),
            credential_id: c.id.clone(),
            connection_id: c.id.clone(),
            key,
        }),
    }
}

/// Whether an answer is kept for replay: successes and the source's own refusals (the work
/// ran). Anything else (invalid input, an unreachable source) leaves the key free to retry.
fn keeps(status: StatusCode, body: &[u8]) -> bool {
    if status.is_success() {
        return true;
    }
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
    matches!(
        code.as_deref(),
        Some("BUSINESS_RULE_VIOLATION" | "STATE_CONFLICT")
    )
}

/// Whether an error answer says the write may have reached the source.
fn outcome_unknown(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v["error"]["details"]["reason"] == "outcome_unknown")
}

/// The answer replayed under a key.
fn replay(answer: IdemAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

/// The middleware (after authentication).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PATCH) {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k)
            if !k.is_empty()
                && k.len() <= MAX_KEY_LEN
                && k.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            k.to_string()
        }
        _ => {
            return refuse(
                ErrorCode::InvalidRequest,
                "`Idempotency-Key` must be 1 to 255 visible ASCII characters (a UUID is a good choice).",
            );
        }
    };
    let Some(scope) = scope(&req, key) else {
        return next.run(req).await;
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let limit = crate::extract::body_limit(&state.config, &path);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body exceeds the limit of {limit} bytes."),
            )
            .into_response();
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let request = IdemRequest {
        request_hash: sha256_hex_joined(&[
            method.as_bytes(),
            b"\x1f",
            path.as_bytes(),
            b"?",
            query.as_bytes(),
            b"\x1f",
            &bytes,
        ]),
        method,
        path,
    };
    let now = state.clock.now();
    let owner = new_id("idm", now.micros());
    // The claim outlives the request's own timeout, so a slow request is never taken over
    // while it can still answer.
    let lock = i64::try_from(state.config.request_timeout.as_micros())
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(2);
    let claim = state
        .store
        .claim_idempotency(
            &scope,
            &request,
            &owner,
            now,
            Timestamp(now.micros().saturating_add(lock)),
            Timestamp(now.micros().saturating_add(REPLAY_WINDOW_MICROS)),
        )
        .await;
    let reconcile = match claim {
        Ok(IdemClaim::Claimed { reconcile }) => reconcile,
        Ok(IdemClaim::Replay(answer)) => return replay(answer),
        Ok(IdemClaim::Mismatch) => {
            return refuse(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was used for another request (method, path or body). Use a new key for a new request.",
            );
        }
        Ok(IdemClaim::InFlight) => {
            let mut response = refuse(
                ErrorCode::IdempotencyKeyInUse,
                "A request with this Idempotency-Key is still in flight. Retry shortly to receive its answer.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let context = Idempotency {
        reference: written::reference(&[&scope.credential_id, &scope.connection_id, &scope.key]),
        hold: IdemHold { scope, owner },
        reconcile,
    };
    let hold = context.hold.clone();
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(context);
    let response = next.run(req).await;
    if response.extensions().get::<KeyAnswered>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Answers are small (a record, an error); a body that cannot be read is not stored.
    let bytes = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            let _ = state.store.release_idempotency(&hold, false).await;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let kept = if keeps(parts.status, &bytes) {
        let answer = IdemAnswer {
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        state
            .store
            .answer_idempotency(&hold, &answer)
            .await
            .map(|_| ())
    } else {
        state
            .store
            .release_idempotency(&hold, outcome_unknown(&bytes))
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "could not store an idempotency key's outcome; its claim expires on its own");
    }
    Response::from_parts(parts, Body::from(bytes))
}
