//! Samsara's wire formats: the error body `{message, requestId}`, the 429 with a fractional
//! `Retry-After`, opaque cursors, the `{data, pagination}` envelope and RFC 3339 times.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::SamsaraState;
use crate::common::Core;
use crate::common::clock::{Millis, iso_millis, parse_rfc3339};
use crate::common::datagen::mix;

/// A request id in the form Samsara's support asks for: stable per (seed, n).
pub fn request_id(core: &Core, counter: &AtomicU64) -> String {
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let a = mix(core.seed, 0x5A45_A4A1, n);
    let b = mix(core.seed, 0x5A45_A4A2, n);
    format!(
        "{:08x}.{:04x}.{:04x}.{:04x}.{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// An error in Samsara's shape.
pub fn error(sam: &SamsaraState, status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "message": message, "requestId": sam.request_id() })),
    )
        .into_response()
}

/// `400` with a message.
pub fn bad_request(sam: &SamsaraState, message: impl AsRef<str>) -> Response {
    error(sam, StatusCode::BAD_REQUEST, message.as_ref())
}

/// A refused request, small to pass around; [`Refusal::render`] answers it in Samsara's shape.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status to answer.
    pub status: StatusCode,
    /// The `message` of the error body.
    pub message: String,
}

impl Refusal {
    /// `400` with a message.
    pub fn bad(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The answer: `{message, requestId}` with the status.
    pub fn render(self, sam: &SamsaraState) -> Response {
        error(sam, self.status, &self.message)
    }
}

/// A checked parameter, or why the request is refused.
pub type Checked<T> = Result<T, Refusal>;

/// Seconds as Samsara writes them in `Retry-After`: up to five decimals, no trailing zeros.
pub fn seconds_text(secs: f64) -> String {
    let s = format!("{:.5}", secs.max(0.00001));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// `429 Too Many Requests`, with `Retry-After` when known.
pub fn too_many(sam: &SamsaraState, wait_secs: Option<f64>) -> Response {
    let mut r = error(sam, StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    if let Some(w) = wait_secs
        && let Ok(v) = HeaderValue::from_str(&seconds_text(w))
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

/// An opaque cursor for `text`.
pub fn cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

/// The fields of a cursor made by [`cursor`] whose first field is `kind`; `None` when it is
/// not one (tampered, or from another endpoint).
pub fn uncursor(after: &str, kind: &str) -> Option<Vec<i64>> {
    let bytes = URL_SAFE_NO_PAD.decode(after.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split(':');
    if parts.next()? != kind {
        return None;
    }
    parts.map(|p| p.parse().ok()).collect()
}

/// `{data, pagination}`: `endCursor` is empty on a list's last page.
pub fn page(data: Vec<Value>, next: Option<String>) -> Response {
    let has_next = next.is_some();
    Json(json!({
        "data": data,
        "pagination": {"endCursor": next.unwrap_or_default(), "hasNextPage": has_next},
    }))
    .into_response()
}

/// A feed page: the cursor is always given (the client keeps it to resume); `hasNextPage`
/// false means caught up.
pub fn feed_page(data: Vec<Value>, end_cursor: String, has_next: bool) -> Response {
    Json(json!({
        "data": data,
        "pagination": {"endCursor": end_cursor, "hasNextPage": has_next},
    }))
    .into_response()
}

/// RFC 3339 with milliseconds, UTC.
pub fn time(ms: Millis) -> String {
    iso_millis(ms)
}

/// A required RFC 3339 parameter.
pub fn required_time(q: &super::Query, name: &str) -> Checked<Millis> {
    match q.get(name) {
        None => Err(Refusal::bad(format!("{name} is required"))),
        Some(s) => parse_rfc3339(s).ok_or_else(|| {
            Refusal::bad(format!(
                "Invalid value for {name}: {s:?} is not an RFC 3339 time"
            ))
        }),
    }
}

/// An optional RFC 3339 parameter.
pub fn optional_time(q: &super::Query, name: &str) -> Checked<Option<Millis>> {
    if q.get(name).is_none() {
        return Ok(None);
    }
    required_time(q, name).map(Some)
}

/// `limit`: default and maximum 512.
pub fn limit(q: &super::Query) -> Checked<usize> {
    match q.get("limit") {
        None => Ok(512),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=512).contains(&n) => Ok(n),
            _ => Err(Refusal::bad(format!(
                "Invalid value for limit: {s:?} (must be an integer from 1 to 512)"
            ))),
        },
    }
}

/// An `after` that is not a cursor of this endpoint.
pub fn bad_cursor() -> Refusal {
    Refusal::bad("Invalid value for after: not a cursor of this endpoint")
}

/// A JSON number for a float, or null when it is not finite.
pub fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_fractional_without_trailing_zeros() {
        assert_eq!(seconds_text(0.25), "0.25");
        assert_eq!(seconds_text(0.402351), "0.40235");
        assert_eq!(seconds_text(2.0), "2");
        assert_eq!(seconds_text(0.0), "0.00001");
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_kinds() {
        let c = cursor("h:12:345");
        assert_eq!(uncursor(&c, "h"), Some(vec![12, 345]));
        assert_eq!(uncursor(&c, "f"), None);
        assert_eq!(uncursor("not base64!", "h"), None);
    }
}
