//! SAP authentication: Basic (communication user), OAuth 2.0 client credentials at
//! `/sap/bc/sec/oauth2/token`, and the CSRF token handshake tied to the session cookie.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::errors::SapError;
use super::{BearerToken, Sap};
use crate::common::datagen::mix;
use crate::common::rotated_secret;

fn realm(sap: &Sap) -> String {
    let s = sap.settings();
    format!(
        "SAP NetWeaver Application Server [{}/{}]",
        s.system_id, s.sap_client
    )
}

fn unauthorized(sap: &Sap) -> SapError {
    SapError::Unauthorized {
        html: sap.settings().auth_failure_html,
        realm: realm(sap),
    }
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Checks Basic or Bearer credentials on a service call.
pub fn authenticate(sap: &Sap, headers: &HeaderMap) -> Result<(), SapError> {
    if sap.core.auth.revoked() {
        return Err(unauthorized(sap));
    }
    let s = sap.settings();
    let g = sap.core.auth.generation();
    if let Some((u, p)) = basic(headers) {
        // SAP user names are case-insensitive.
        if u.eq_ignore_ascii_case(&s.user) && p == rotated_secret(&s.password, g) {
            return Ok(());
        }
        return Err(unauthorized(sap));
    }
    if let Some(t) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        let tokens = sap.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bt) = tokens.get(t.trim())
            && bt.expires_ms > sap.core.clock.now_ms()
            && sap.core.auth.accepts(bt.generation)
        {
            return Ok(());
        }
    }
    Err(unauthorized(sap))
}

/// `POST /sap/bc/sec/oauth2/token` with `Authorization: Basic client_id:secret`.
pub async fn token(State(sap): State<Sap>, headers: HeaderMap, body: Bytes) -> Response {
    let s = sap.settings();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type", "error_description": "Only client_credentials is supported"}))).into_response();
    }
    let g = sap.core.auth.generation();
    let creds = basic(&headers).or_else(|| Some((get("client_id")?, get("client_secret")?)));
    let ok = !sap.core.auth.revoked()
        && creds.is_some_and(|(id, secret)| {
            id == s.oauth_client_id && secret == rotated_secret(&s.oauth_client_secret, g)
        });
    if !ok {
        let mut r = (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"}))).into_response();
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"oauth2/token\""),
        );
        return r;
    }
    let now = sap.core.clock.now_ms();
    let n = sap.tokens.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    let token = format!(
        "{:016x}{:016x}",
        mix(sap.core.seed ^ now as u64, 0x0A7, n),
        mix(sap.core.seed, 0x0A8, n)
    );
    sap.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
        token.clone(),
        BearerToken {
            expires_ms: now + s.token_lifetime_secs * 1000,
            generation: g,
        },
    );
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": s.token_lifetime_secs, "scope": "API_PURCHASEORDER_PROCESS_SRV_0001"}))
        .into_response()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn wants_token(headers: &HeaderMap) -> bool {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("fetch"))
}

/// Answers `x-csrf-token: Fetch`: reuses the session's token or opens a session with a new one.
pub fn fetch_token(sap: &Sap, headers: &HeaderMap, out: &mut HeaderMap) {
    let s = sap.settings();
    let name = s.cookie_name();
    let mut sessions = sap.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let existing =
        cookie(headers, &name).and_then(|sid| sessions.get(&sid).map(|t| (sid, t.clone())));
    let (sid, token) = existing.unwrap_or_else(|| {
        let n = sessions.len() as u64;
        let now = sap.core.clock.now_ms() as u64;
        let sid = format!(
            "{:016x}{:016x}",
            mix(sap.core.seed ^ now, 0x5E5, n),
            mix(now, 0x5E6, n)
        );
        let token = STANDARD.encode(mix(sap.core.seed ^ now, 0xC5F, n).to_be_bytes().repeat(2));
        sessions.insert(sid.clone(), token.clone());
        (sid, token)
    });
    if let Ok(v) = HeaderValue::from_str(&token) {
        out.insert("x-csrf-token", v);
    }
    for c in [
        format!("{name}={sid}; path=/; HttpOnly"),
        format!("sap-usercontext=sap-client={}; path=/", s.sap_client),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            out.append("set-cookie", v);
        }
    }
}

/// A modifying request must carry the token of its session cookie.
pub fn check_token(sap: &Sap, headers: &HeaderMap) -> Result<(), SapError> {
    let s = sap.settings();
    if !s.csrf_required {
        return Ok(());
    }
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .ok_or(SapError::Csrf)?;
    let sid = cookie(headers, &s.cookie_name()).ok_or(SapError::Csrf)?;
    let sessions = sap.sessions.lock().unwrap_or_else(|e| e.into_inner());
    match sessions.get(&sid) {
        Some(t) if t == sent => Ok(()),
        _ => Err(SapError::Csrf),
    }
}
