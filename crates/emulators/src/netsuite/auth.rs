//! NetSuite authentication: the OAuth 2.0 M2M token endpoint (JWT assertion checked against the registered
//! certificate), bearer checks on data calls, and TBA (OAuth 1.0a HMAC-SHA256) for the classic clients.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::errors::NsError;
use super::{M2mClient, Ns, Token};
use crate::common::datagen::mix;
use crate::common::rotated_secret;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPES: [&str; 3] = ["restlets", "rest_webservices", "suite_analytics"];

/// `{"error": "..."}` with the status NetSuite documents for that value.
fn oauth_error(ns: &Ns, error: &str) -> Response {
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut resp = (status, Json(json!({ "error": error }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let realm = ns.settings().account_id;
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
            resp.headers_mut().insert("www-authenticate", v);
        }
    }
    resp
}

fn alg_allowed(alg: Algorithm, allow_rs256: bool) -> bool {
    matches!(
        alg,
        Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) || (allow_rs256 && alg == Algorithm::RS256)
}

fn decoding_key(client: &M2mClient, alg: Algorithm) -> Option<DecodingKey> {
    let pem = client.certificate_pem.as_bytes();
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem).ok(),
        _ => DecodingKey::from_rsa_pem(pem).ok(),
    }
}

/// The `aud` values NetSuite would accept: the account's real token URL, or the URL this request used.
fn expected_audiences(ns: &Ns, headers: &HeaderMap) -> Vec<String> {
    let slug = ns.settings().account_slug();
    vec![
        format!("https://{slug}.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"),
        format!(
            "{}/services/rest/auth/oauth2/v1/token",
            ns.core.origin(headers)
        ),
    ]
}

fn scopes_of(v: &Value) -> Option<Vec<String>> {
    match v {
        // The docs say comma-separated; accept spaces too.
        Value::String(s) => Some(
            s.split([',', ' '])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

pub async fn token(State(ns): State<Ns>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(&ns, "invalid_request");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let param = |k: &str| -> Option<&str> {
        let mut it = form.iter().filter(|(n, _)| n == k);
        let first = it.next()?;
        // A repeated parameter is malformed.
        if it.next().is_some() {
            return None;
        }
        Some(first.1.as_str())
    };
    if param("grant_type") != Some("client_credentials") {
        return oauth_error(&ns, "invalid_request");
    }
    // Several client-authentication methods at once are rejected.
    if headers.contains_key("authorization") && param("client_assertion").is_some() {
        return oauth_error(&ns, "invalid_request");
    }
    if param("client_assertion_type") != Some(ASSERTION_TYPE) {
        return oauth_error(&ns, "invalid_request");
    }
    let Some(assertion) = param("client_assertion") else {
        return oauth_error(&ns, "invalid_request");
    };
    match verify_assertion(&ns, &headers, assertion) {
        Ok((client_id, scopes)) => issue(&ns, client_id, scopes),
        Err(code) => oauth_error(&ns, code),
    }
}

/// The assertion's `alg` and `kid`, read directly: jsonwebtoken knows no ES512, so its own
/// header parser refuses an assertion NetSuite accepts.
fn raw_header(assertion: &str) -> Option<(String, Option<String>)> {
    let first = assertion.split('.').next()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).ok()?).ok()?;
    let alg = header.get("alg")?.as_str()?.to_string();
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((alg, kid))
}

/// Verifies an ES512 (ECDSA P-521, SHA-512) assertion against the registered certificate's
/// public key and returns its claims; `None` if the key is not P-521 or the signature fails.
fn verify_es512(client: &M2mClient, assertion: &str) -> Option<Value> {
    let (input, signature) = assertion.rsplit_once('.')?;
    let payload = input.split_once('.')?.1;
    let key = DecodingKey::from_ec_pem(client.certificate_pem.as_bytes()).ok()?;
    let point = key.try_get_as_bytes().ok()?;
    // An uncompressed P-521 point: 0x04 and two 66-byte coordinates.
    if point.len() != 133 {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
        point,
    )
    .verify(input.as_bytes(), &signature)
    .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Checks the client assertion; returns the client id and granted scopes, or the OAuth error value.
fn verify_assertion(
    ns: &Ns,
    headers: &HeaderMap,
    assertion: &str,
) -> Result<(String, Vec<String>), &'static str> {
    let settings = ns.settings();
    let (alg, kid) = raw_header(assertion).ok_or("invalid_request")?;
    let find = |kid: Option<String>| {
        let kid = kid.ok_or("invalid_client")?;
        settings
            .m2m_clients
            .iter()
            .find(|c| c.certificate_id == kid)
            .ok_or("invalid_client")
    };
    let (client, claims) = if alg == "ES512" {
        let client = find(kid)?;
        (
            client,
            verify_es512(client, assertion).ok_or("invalid_client")?,
        )
    } else {
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| "invalid_request")?;
        if !alg_allowed(header.alg, settings.allow_rs256) {
            return Err("invalid_client");
        }
        let client = find(header.kid)?;
        let key = decoding_key(client, header.alg).ok_or("invalid_client")?;
        let mut validation = Validation::new(header.alg);
        // Time rules are checked below against the emulator clock, not the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|_| "invalid_client")?;
        (client, data.claims)
    };
    if claims.get("iss").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err("invalid_client");
    }
    if client.revoked || ns.core.auth.revoked() {
        return Err("invalid_grant");
    }
    let audiences = expected_audiences(ns, headers);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(a),
        Some(Value::Array(xs)) => xs
            .iter()
            .any(|x| x.as_str().is_some_and(|a| audiences.iter().any(|e| e == a))),
        _ => false,
    };
    if !aud_ok {
        return Err("invalid_grant");
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err("invalid_grant");
    };
    let now = ns.core.clock.now_ms() / 1000;
    if exp <= iat || exp.saturating_sub(iat) > 3600 || exp <= now || iat > now.saturating_add(60) {
        return Err("invalid_grant");
    }
    let scopes = claims
        .get("scope")
        .and_then(scopes_of)
        .ok_or("invalid_scope")?;
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err("invalid_scope");
    }
    Ok((client.client_id.clone(), scopes))
}

fn issue(ns: &Ns, client_id: String, scopes: Vec<String>) -> Response {
    let settings = ns.settings();
    let now_ms = ns.core.clock.now_ms();
    let now = now_ms / 1000;
    let exp = now + settings.token_lifetime_secs;
    let n = {
        let tokens = ns.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.len() as u64
    };
    let nonce = mix(ns.core.seed ^ now_ms as u64, 0x70C3, n);
    // Shaped like NetSuite's own tokens (a JWT); clients only need it to be opaque.
    let header = URL_SAFE_NO_PAD.encode(r#"{"kid":"s.SYSTEM.2020_1","typ":"JWT","alg":"RS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        json!({
            "sub": "4030059;0;3;7;N",
            "aud": [client_id, format!("app:{:016x}", mix(ns.core.seed, 0xA99, 1))],
            "scope": scopes,
            "iss": format!("https://{}.suitetalk.api.netsuite.com", settings.account_slug()),
            "oit": now,
            "exp": exp,
            "iat": now,
            "jti": format!("{nonce:016x}"),
        })
        .to_string(),
    );
    let sig = URL_SAFE_NO_PAD.encode(nonce.to_be_bytes().repeat(4));
    let token = format!("{header}.{payload}.{sig}");
    ns.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
        token.clone(),
        Token {
            client_id,
            expires_ms: exp * 1000,
            generation: ns.core.auth.generation(),
        },
    );
    let expires_in = if settings.token_expires_in_as_string {
        json!(settings.token_lifetime_secs.to_string())
    } else {
        json!(settings.token_lifetime_secs)
    };
    Json(json!({ "access_token": token, "expires_in": expires_in, "token_type": "Bearer" }))
        .into_response()
}

/// Admin: register (or replace) an M2M client certificate mapping.
pub async fn register_client(State(ns): State<Ns>, body: Option<Json<M2mClient>>) -> Response {
    let Some(Json(client)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {client_id, certificate_id, certificate_pem}"})),
        )
            .into_response();
    };
    let usable = [Algorithm::PS256, Algorithm::ES256]
        .into_iter()
        .any(|a| decoding_key(&client, a).is_some());
    if !usable {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "certificate_pem is not an RSA or EC certificate or public key"})),
        )
            .into_response();
    }
    let mut s = ns.settings.write().unwrap_or_else(|e| e.into_inner());
    s.m2m_clients
        .retain(|c| c.certificate_id != client.certificate_id);
    s.m2m_clients.push(client);
    StatusCode::NO_CONTENT.into_response()
}

/// Checks the credential on a data call.
pub fn authorize(ns: &Ns, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), NsError> {
    let settings = ns.settings();
    let realm = settings.account_id.clone();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| NsError::invalid_login(&realm))?;
    if ns.core.auth.revoked() {
        return Err(NsError::invalid_login(&realm));
    }
    if let Some(token) = auth.strip_prefix("Bearer ") {
        let tokens = ns.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let t = tokens
            .get(token.trim())
            .ok_or_else(|| NsError::invalid_login(&realm))?;
        if t.expires_ms <= ns.core.clock.now_ms() || !ns.core.auth.accepts(t.generation) {
            return Err(NsError::invalid_login(&realm));
        }
        return Ok(());
    }
    if let Some(params) = auth.strip_prefix("OAuth ") {
        let tba = settings
            .tba
            .as_ref()
            .ok_or_else(|| NsError::invalid_login(&realm))?;
        let token_secret = rotated_secret(&tba.token_secret, ns.core.auth.generation());
        if verify_tba(
            &ns.core.origin(headers),
            method,
            uri,
            params,
            tba,
            &token_secret,
        ) {
            return Ok(());
        }
    }
    Err(NsError::invalid_login(&realm))
}

/// RFC 3986 percent-encoding as OAuth 1.0a requires.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Verifies an OAuth 1.0a HMAC-SHA256 signature over the request as the client sent it.
fn verify_tba(
    origin: &str,
    method: &Method,
    uri: &Uri,
    params: &str,
    tba: &super::TbaCredentials,
    token_secret: &str,
) -> bool {
    let mut oauth: Vec<(String, String)> = Vec::new();
    for part in params.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let v = pct_decode(v.trim().trim_matches('"'));
        oauth.push((k.trim().to_string(), v));
    }
    let get = |k: &str| oauth.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("oauth_consumer_key") != Some(tba.consumer_key.as_str())
        || get("oauth_token") != Some(tba.token_id.as_str())
        || get("oauth_signature_method") != Some("HMAC-SHA256")
    {
        return false;
    }
    let Some(signature) = get("oauth_signature") else {
        return false;
    };
    let mut pairs: Vec<(String, String)> = oauth
        .iter()
        .filter(|(k, _)| k != "oauth_signature" && k != "realm")
        .map(|(k, v)| (pct(k), pct(v)))
        .collect();
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            pairs.push((pct(&k), pct(&v)));
        }
    }
    pairs.sort();
    let normalized = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{}{}", origin.to_lowercase(), uri.path());
    let base = format!("{}&{}&{}", method.as_str(), pct(&url), pct(&normalized));
    let key = format!("{}&{}", pct(&tba.consumer_secret), pct(token_secret));
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    let Ok(sig) = STANDARD.decode(signature) else {
        return false;
    };
    aws_lc_rs::hmac::verify(&k, base.as_bytes(), &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        assert_eq!(pct("a b&c=d~"), "a%20b%26c%3Dd~");
        assert_eq!(pct_decode("a%20b%26c%3Dd~"), "a b&c=d~");
        assert_eq!(pct_decode("bad%2"), "bad%2");
    }

    #[test]
    fn scopes_accept_string_and_array() {
        assert_eq!(
            scopes_of(&json!("restlets,rest_webservices")).unwrap(),
            vec!["restlets", "rest_webservices"]
        );
        assert_eq!(
            scopes_of(&json!(["rest_webservices"])).unwrap(),
            vec!["rest_webservices"]
        );
        assert!(scopes_of(&json!(3)).is_none());
    }
}
