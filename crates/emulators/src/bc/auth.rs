//! Microsoft Entra ID client-credentials token endpoint (client secret or certificate assertion) with
//! Entra's error bodies, OpenID discovery, and bearer checks on API calls.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::errors::BcError;
use super::{AccessToken, Bc};
use crate::common::clock::ms_to_datetime;
use crate::common::datagen::mix;
use crate::common::rotated_secret;

const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn entra_error(bc: &Bc, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let now = bc.core.clock.now_ms();
    let d = ms_to_datetime(now);
    let ts = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    let g = |salt: u64| {
        let h = mix(now as u64, salt, code as u64);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16,
            (h >> 48) as u16,
            h & 0xFFFF_FFFF_FFFF
        )
    };
    let (trace, corr) = (g(1), g(2));
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

pub async fn discovery(
    State(bc): State<Bc>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
    );
    let t = if tenant == "organizations" || tenant == "common" {
        bc.settings().tenant_id
    } else {
        tenant
    };
    Json(json!({
        "token_endpoint": format!("{base}/{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "issuer": format!("https://login.microsoftonline.com/{t}/v2.0"),
        "authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

pub async fn token(
    State(bc): State<Bc>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = bc.settings();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if tenant != s.tenant_id && tenant != "organizations" {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let Some(grant) = get("grant_type") else {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    if grant != "client_credentials" {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(client_id) = get("client_id") else {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if client_id != s.client_id {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    match get("scope") {
        Some(SCOPE) => {}
        None => {
            return entra_error(
                &bc,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        }
        Some(other) => {
            return entra_error(
                &bc,
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {other} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
    }
    let g = bc.core.auth.generation();
    let authed = match (
        get("client_secret"),
        get("client_assertion_type"),
        get("client_assertion"),
    ) {
        (Some(secret), None, None) => secret == rotated_secret(&s.client_secret, g),
        (None, Some(ASSERTION_TYPE), Some(jwt)) => verify_assertion(&bc, &headers, &tenant, jwt),
        (None, None, None) => {
            return entra_error(
                &bc,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
        _ => {
            return entra_error(
                &bc,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90014,
                "A required field for this request is missing or malformed.",
            );
        }
    };
    if !authed || bc.core.auth.revoked() {
        return entra_error(
            &bc,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let now = bc.core.clock.now_ms();
    let n = bc.tokens.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    let header =
        URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"RS256","x5t":"emulator","kid":"emulator"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"aud": "https://api.businesscentral.dynamics.com", "iss": format!("https://sts.windows.net/{}/", s.tenant_id),
               "iat": now / 1000, "nbf": now / 1000, "exp": now / 1000 + s.token_lifetime_secs, "appid": client_id,
               "roles": ["API.ReadWrite.All", "Automation.ReadWrite.All"], "tid": s.tenant_id, "ver": "1.0"})
            .to_string(),
    );
    let sig = URL_SAFE_NO_PAD.encode(
        mix(bc.core.seed ^ now as u64, 0xE17, n)
            .to_be_bytes()
            .repeat(4),
    );
    let token = format!("{header}.{payload}.{sig}");
    bc.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
        token.clone(),
        AccessToken {
            expires_ms: now + s.token_lifetime_secs * 1000,
            generation: g,
        },
    );
    Json(json!({"token_type": "Bearer", "expires_in": s.token_lifetime_secs, "ext_expires_in": s.token_lifetime_secs, "access_token": token}))
        .into_response()
}

/// Certificate credential: RS256 or PS256, `aud` = the token endpoint, `iss` = `sub` = client id.
fn verify_assertion(bc: &Bc, headers: &HeaderMap, tenant: &str, jwt: &str) -> bool {
    let s = bc.settings();
    let Some(pem) = s.certificate_pem else {
        return false;
    };
    let Ok(header) = jsonwebtoken::decode_header(jwt) else {
        return false;
    };
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return false;
    }
    let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) else {
        return false;
    };
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let Ok(data) = jsonwebtoken::decode::<Value>(jwt, &key, &v) else {
        return false;
    };
    let c = data.claims;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let auds = [
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("http://{host}/{tenant}/oauth2/v2.0/token"),
    ];
    let now = bc.core.clock.now_ms() / 1000;
    c.get("iss").and_then(Value::as_str) == Some(s.client_id.as_str())
        && c.get("sub").and_then(Value::as_str) == Some(s.client_id.as_str())
        && c.get("aud")
            .and_then(Value::as_str)
            .is_some_and(|a| auds.iter().any(|x| x == a))
        && c.get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > now)
        && c.get("nbf")
            .and_then(Value::as_i64)
            .is_none_or(|n| n <= now + 300)
}

pub fn authenticate(bc: &Bc, headers: &HeaderMap) -> Result<(), BcError> {
    if bc.core.auth.revoked() {
        return Err(BcError::unauthorized());
    }
    let t = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(BcError::unauthorized)?;
    let tokens = bc.tokens.lock().unwrap_or_else(|e| e.into_inner());
    match tokens.get(t.trim()) {
        Some(at)
            if at.expires_ms > bc.core.clock.now_ms() && bc.core.auth.accepts(at.generation) =>
        {
            Ok(())
        }
        _ => Err(BcError::unauthorized()),
    }
}
