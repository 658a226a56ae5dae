//! How the Interface Service answers: its `ModelResponse` envelope (`ASCResponse.cs`
//! `BuildResponse`), Web API's `{"Message"}` errors, Newtonsoft's dates (zone-less, with an
//! offset for `DateTime.Now` fields, `0001-01-01T00:00:00` for unset), `StringContent`'s
//! `text/plain` export bodies, and the bearer-token filter (`ASCTracRestAuthenticationFilter.cs`).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::{Asc, AuthBase64, Settings};
use crate::common::clock::{Millis, ms_to_datetime};

/// `BuildResponse(code, msg)`: the two-argument envelope.
pub fn model_response(code: u16, msg: &str) -> Value {
    let msg = msg.replace('~', "\r\n");
    let (desc, status, message) = match code {
        200 => (
            "OK",
            "Success",
            if msg.is_empty() {
                "SUCCESSFULLY PROCESSED".to_string()
            } else {
                msg
            },
        ),
        412 => (
            "Accepted",
            "PARTIAL",
            msg.strip_suffix(',').unwrap_or(&msg).to_string(),
        ),
        204 => (
            "Success",
            "Success",
            if msg.is_empty() {
                "No Records Found".to_string()
            } else {
                msg
            },
        ),
        400 => ("BadRequest", "ERROR", msg),
        500 => ("InternalServerError", "ERROR", msg),
        _ => ("Error", "ERROR", msg),
    };
    json!({"ReturnCode": code, "ReturnCodeDescription": desc, "Status": status, "Message": message})
}

/// `BuildResponse(code, msg, url, cmd)`: an import failure, with the form feed of the C#
/// `"\failed"` when the switch keeps it.
pub fn import_failure(s: &Settings, code: u16, origin: &str, name: &str, msg: &str) -> Value {
    let ff = if s.form_feed_in_error { "\u{c}" } else { " f" };
    let text = format!("HTTP Post on resource \"{origin}/Import/{name}\"{ff}ailed: {msg}");
    model_response(code, &text)
}

/// A JSON answer with `status` (content-negotiated JSON, as `CreateResponse` gives).
pub fn json_answer(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Web API's `CreateErrorResponse`: `{"Message": …}`.
pub fn error_message(status: u16, msg: &str) -> Response {
    json_answer(status, &json!({ "Message": msg }))
}

/// The content type of a successful export body.
pub fn export_content_type(s: &Settings) -> HeaderValue {
    if s.export_text_plain {
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        HeaderValue::from_static("application/json; charset=utf-8")
    }
}

/// An export that selected nothing.
pub fn no_records(s: &Settings) -> Response {
    if s.no_records_object {
        json_answer(
            200,
            &json!({"ReturnCode": 200, "ReturnCodeDescription": "OK", "Status": "Success",
                "Message": "No Records Found"}),
        )
    } else {
        let mut r = (StatusCode::OK, "[]").into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, export_content_type(s));
        r
    }
}

/// A stored `DateTime` (`Kind=Unspecified`): site-local wall time without a zone, or UTC with
/// `Z` when the switch is off.
pub fn date(s: &Settings, ms: Millis) -> Value {
    if s.naive_dates {
        Value::String(wall(
            ms + i64::from(s.site_offset_minutes(ms)) * 60_000,
            false,
        ))
    } else {
        Value::String(format!("{}Z", wall(ms, false)))
    }
}

/// A `DateTime.Now` field (`Kind=Local`): site-local time with its offset and seven fraction
/// digits, as Newtonsoft writes local times.
pub fn now_date(s: &Settings, ms: Millis) -> Value {
    if !s.local_offset_now {
        return date(s, ms);
    }
    let off = s.site_offset_minutes(ms);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    Value::String(format!(
        "{}{sign}{:02}:{:02}",
        wall(ms + i64::from(off) * 60_000, true),
        a / 60,
        a % 60
    ))
}

/// An unset `DateTime` (`DateTime.MinValue`).
pub fn unset_date(s: &Settings) -> Value {
    if s.min_date_unset {
        Value::String("0001-01-01T00:00:00".into())
    } else {
        Value::Null
    }
}

/// A C# `double`: Newtonsoft writes whole values as `10.0`.
pub fn double(s: &Settings, v: f64) -> Value {
    if s.double_point_zero || v.fract() != 0.0 {
        json!(v)
    } else {
        json!(v as i64)
    }
}

/// `yyyy-MM-ddTHH:mm:ss[.fffffff]` of `ms` as given (no zone); trailing fraction zeros
/// trimmed as Newtonsoft does, or seven digits when `full`.
fn wall(ms: Millis, full: bool) -> String {
    let dt = ms_to_datetime(ms);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let ms_part = dt.millisecond();
    if full {
        format!("{base}.{ms_part:03}0000")
    } else if ms_part == 0 {
        base
    } else {
        let f = format!("{ms_part:03}");
        format!("{base}.{}", f.trim_end_matches('0'))
    }
}

/// The 401 of the filter: empty body, `WWW-Authenticate: Bearer realm="<host>"`.
pub fn unauthorized(headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .unwrap_or_else(|| "localhost".into());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"{host}\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The authentication filter: the 401 to answer, or `None` to let the request through.
pub fn refused(asc: &Asc, headers: &HeaderMap) -> Option<Response> {
    let s = asc.settings();
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Only the exact scheme `Bearer` counts; the token is the part before the first `:`.
    let token = value
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.split(':').next().unwrap_or(t).trim().to_string());
    if !s.auth_enabled {
        return None;
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(unauthorized(headers));
    };
    let now = asc.core.clock.now_ms();
    let candidates: Vec<String> = match s.auth_base64 {
        AuthBase64::Raw => vec![token.clone()],
        AuthBase64::Base64 => decode(&token).into_iter().collect(),
        AuthBase64::Both => std::iter::once(token.clone())
            .chain(decode(&token))
            .collect(),
    };
    let tokens = asc.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let ok = candidates.iter().any(|t| {
        tokens.get(t).is_some_and(|issued| {
            issued.start_ms <= now
                && now <= issued.end_ms
                && asc.core.auth.accepts(issued.generation)
        })
    });
    if ok {
        None
    } else {
        Some(unauthorized(headers))
    }
}

fn decode(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_dates_are_written_as_the_service_writes_them() {
        assert_eq!(
            model_response(412, "Purchase Order: PO1, Missing Items: A, B,")["Message"],
            "Purchase Order: PO1, Missing Items: A, B"
        );
        assert_eq!(model_response(200, "")["Message"], "SUCCESSFULLY PROCESSED");
        let s = Settings::default();
        // 2026-01-01T12:00:00Z at -05:00.
        let ms = 1_767_268_800_000;
        assert_eq!(date(&s, ms), "2026-01-01T07:00:00");
        assert_eq!(now_date(&s, ms + 123), "2026-01-01T07:00:00.1230000-05:00");
        assert_eq!(unset_date(&s), "0001-01-01T00:00:00");
        assert_eq!(double(&s, 10.0).to_string(), "10.0");
        let msg = import_failure(&s, 400, "http://h", "POImport", "x")["Message"].clone();
        assert_eq!(
            msg,
            "HTTP Post on resource \"http://h/Import/POImport\"\u{c}ailed: x"
        );
    }
}
