//! Microsoft Entra ID client-credentials token endpoint (client secret or certificate assertion) with
//! Entra's error bodies, OpenID discovery, and bearer checks on API calls.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
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
    let base = bc.core.origin(&headers);
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
        "device_authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

/// Instance discovery (`/common/discovery/instance`), as MSAL asks it of a known host:
/// `api-version=1.0` wants the tenant's discovery document, `1.1` the host's aliases.
pub async fn instance_discovery(
    State(bc): State<Bc>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> = query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(endpoint) = get("authorization_endpoint") else {
        return entra_error(
            &bc,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'authorization_endpoint'.",
        );
    };
    let base = bc.core.origin(&headers);
    let host = base.split("://").nth(1).unwrap_or_default().to_string();
    // `https://<host>/<tenant>/oauth2/…/authorize`: the tenant is the first path segment.
    let tenant = endpoint
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|t| !t.is_empty())
        .unwrap_or("common");
    Json(json!({
        "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
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
        (None, Some(ASSERTION_TYPE), Some(jwt)) => {
            match verify_assertion(&bc, &headers, &tenant, jwt) {
                Ok(()) => true,
                Err(refusal) => return refusal.answer(&bc, client_id),
            }
        }
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

/// Why a certificate assertion was refused, as Entra tells it.
enum Refusal {
    /// No registered certificate has the thumbprint (`x5t` / `x5t#S256`) the assertion names,
    /// or its signature does not verify with that certificate's key (AADSTS700027).
    KeyNotFound(String),
    /// `exp` passed, or `nbf` / `iat` in the future (AADSTS700024).
    OutOfTime { now: i64, nbf: i64, exp: i64 },
    /// Not a JWT, an unsupported `alg`, or claims that do not name this app and endpoint.
    Malformed(&'static str),
}

impl Refusal {
    fn answer(self, bc: &Bc, client_id: &str) -> Response {
        match self {
            Refusal::KeyNotFound(thumbprint) => entra_error(
                bc,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700027,
                &format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']"
                ),
            ),
            Refusal::OutOfTime { now, nbf, exp } => {
                let iso = |t: i64| {
                    let d = ms_to_datetime(t * 1000);
                    format!(
                        "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
                        d.month() as u8,
                        d.day(),
                        d.year(),
                        d.hour(),
                        d.minute(),
                        d.second()
                    )
                };
                entra_error(
                    bc,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700024,
                    &format!(
                        "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                        iso(now),
                        iso(nbf),
                        iso(exp)
                    ),
                )
            }
            Refusal::Malformed(what) => entra_error(
                bc,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50027,
                &format!("JWT token is invalid or malformed. {what}"),
            ),
        }
    }
}

/// A claim that is a number of seconds, whole or not (MSAL Python writes `time.time()`).
fn seconds(c: &Value, name: &str) -> Option<i64> {
    c.get(name).and_then(Value::as_f64).map(|f| f as i64)
}

/// The DER bytes of the first certificate in a PEM text.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Certificate credential: RS256 or PS256 signed by the registered certificate's key, named
/// by its SHA-1 (`x5t`) or SHA-256 (`x5t#S256`) thumbprint; `aud` the token endpoint, `iss` =
/// `sub` = the client id; `exp` not passed.
fn verify_assertion(bc: &Bc, headers: &HeaderMap, tenant: &str, jwt: &str) -> Result<(), Refusal> {
    let s = bc.settings();
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| Refusal::Malformed("The assertion is not a JWT."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(Refusal::Malformed(
            "The assertion's algorithm is not supported.",
        ));
    }
    let b64 = URL_SAFE_NO_PAD;
    // Base64url with or without its `=` padding (MSAL Python pads).
    let named = header
        .x5t_s256
        .clone()
        .map(|t| (t, true))
        .or_else(|| header.x5t.clone().map(|t| (t, false)))
        .map(|(t, sha256)| (t.trim_end_matches('=').to_string(), sha256));
    let shown = |t: &str| {
        b64.decode(t)
            .map(|b| b.iter().map(|x| format!("{x:02X}")).collect::<String>())
            .unwrap_or_else(|_| t.to_string())
    };
    let Some(pem) = s.certificate_pem else {
        return Err(Refusal::KeyNotFound(
            named.map(|(t, _)| shown(&t)).unwrap_or_default(),
        ));
    };
    // A registered certificate is known by its thumbprints; a bare public key (older
    // settings) has none to compare, so only its signature decides.
    if let (Some((thumbprint, sha256)), Some(der)) = (&named, certificate_der(&pem)) {
        let digest = if *sha256 {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
        } else {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der)
        };
        if b64.encode(digest.as_ref()) != *thumbprint {
            return Err(Refusal::KeyNotFound(shown(thumbprint)));
        }
    }
    let thumbprint = named.map(|(t, _)| shown(&t)).unwrap_or_default();
    let key = DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| Refusal::KeyNotFound(thumbprint.clone()))?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .map_err(|_| Refusal::KeyNotFound(thumbprint.clone()))?;
    let c = data.claims;
    let origin = bc.core.origin(headers);
    let auds = [
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("{origin}/{tenant}/oauth2/v2.0/token"),
    ];
    if c.get("iss").and_then(Value::as_str) != Some(s.client_id.as_str())
        || c.get("sub").and_then(Value::as_str) != Some(s.client_id.as_str())
    {
        return Err(Refusal::Malformed(
            "The assertion's iss and sub must be the client id.",
        ));
    }
    if !c
        .get("aud")
        .and_then(Value::as_str)
        .is_some_and(|a| auds.iter().any(|x| x == a))
    {
        return Err(Refusal::Malformed(
            "The assertion's aud must be the token endpoint.",
        ));
    }
    let now = bc.core.clock.now_ms() / 1000;
    let exp = seconds(&c, "exp").ok_or(Refusal::Malformed("The assertion has no exp."))?;
    let nbf = seconds(&c, "nbf")
        .or_else(|| seconds(&c, "iat"))
        .unwrap_or(now);
    // Entra allows five minutes of clock skew on either side.
    if exp + 300 <= now || nbf > now + 300 {
        return Err(Refusal::OutOfTime { now, nbf, exp });
    }
    Ok(())
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
