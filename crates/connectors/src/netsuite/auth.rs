//! OAuth 2.0 client credentials (machine to machine): a JWT assertion signed with the
//! connection's private key (PS256 for RSA; ES256, ES384 or ES512 for an EC key, by its
//! curve), exchanged at the token endpoint for a 60-minute bearer token.
//! The assertion's times are the source's (our clock corrected by the offset its `Date`
//! headers show), and a refusal that a corrected clock may cure is tried once more.

use ironbridge_core::Clock;
use ironbridge_core::connector::ConnectorError;
use ironbridge_model::Timestamp;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::client::{UpstreamClient, UpstreamError};
use crate::common::SourceClock;
use crate::token::AccessToken;

/// Path of the token endpoint under the account host.
pub const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";

/// Scope requested: the REST web services (record API and SuiteQL).
pub const SCOPE: &str = "rest_webservices";

/// `exp - iat` of an assertion: the most NetSuite allows ("The Request Token Structure":
/// `exp` less than 60 minutes after `iat`; its own example request uses exactly 3600), so the
/// assertion is accepted across the widest range of clock skew.
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// How far `iat` is set before the source's "now": a source whose clock is behind the one we
/// believe (before any `Date` was seen, or drifted since) must not find the assertion issued
/// in its future. Five minutes, the skew NetSuite documents accepting for its other signed
/// requests (TBA timestamps: plus or minus five minutes of the server time).
pub const ASSERTION_BACKDATE_SECS: i64 = 300;

/// A refused assertion is signed again only when the refusal's `Date` moved the source's
/// clock by more than this from the one the assertion used: `Date` has whole seconds and the
/// request takes time in transit, so smaller differences are noise, and a refusal with a
/// clock that was already right is not about time.
pub const CLOCK_CORRECTION_MICROS: i64 = 2_000_000;

/// The connection's secrets, parsed. Debug never shows the key.
#[derive(Clone)]
pub struct Credentials {
    /// NetSuite account id (`123456_SB1`).
    pub account_id: String,
    /// Integration record's client id (the JWT `iss`).
    pub client_id: String,
    /// Certificate id from the M2M setup page (the JWT `kid`).
    pub certificate_id: String,
    /// Parsed signing key.
    pub key: SigningKey,
}

/// A private key an assertion can be signed with: the key types NetSuite's certificates
/// take ("RSA key … 3072 bits, or 4096 bits. … EC key … 256 bits, 384 bits, or 521 bits",
/// subsect_162755332391).
#[derive(Clone)]
pub enum SigningKey {
    /// RSA, signed PS256 (RSA-PSS; NetSuite no longer takes PKCS#1 v1.5 signatures).
    Rsa(EncodingKey),
    /// EC, signed with the algorithm of its curve (P-256 ES256, P-384 ES384, P-521 ES512).
    /// jsonwebtoken has no ES512, so EC assertions are signed with aws-lc-rs directly.
    Ec {
        /// The JOSE `alg`.
        alg: &'static str,
        /// The key pair.
        key: Arc<EcdsaKeyPair>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_id", &self.account_id)
            .field("client_id", &"<redacted>")
            .field("certificate_id", &self.certificate_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Parses a private key PEM: RSA (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) or EC
/// on P-256, P-384 or P-521 (PKCS#8, as `openssl req -newkey ec` writes it).
pub fn parse_key(pem: &str) -> Result<SigningKey, ConnectorError> {
    if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok(SigningKey::Rsa(key));
    }
    parse_ec_key(pem).ok_or_else(|| ConnectorError::InvalidSettings {
        param: "credentials.private_key_pem".into(),
        message: "expected an RSA private key (PKCS#8 or PKCS#1) or an EC private key on P-256, P-384 or P-521 (PKCS#8) in PEM".into(),
    })
}

fn parse_ec_key(pem: &str) -> Option<SigningKey> {
    let pair = rcgen::KeyPair::from_pem(pem).ok()?;
    let curves: [(
        &rcgen::SignatureAlgorithm,
        &'static str,
        &'static EcdsaSigningAlgorithm,
    ); 3] = [
        (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            "ES256",
            &ECDSA_P256_SHA256_FIXED_SIGNING,
        ),
        (
            &rcgen::PKCS_ECDSA_P384_SHA384,
            "ES384",
            &ECDSA_P384_SHA384_FIXED_SIGNING,
        ),
        (
            &rcgen::PKCS_ECDSA_P521_SHA512,
            "ES512",
            &ECDSA_P521_SHA512_FIXED_SIGNING,
        ),
    ];
    let (_, alg, signing) = curves
        .into_iter()
        .find(|(a, _, _)| pair.algorithm() == *a)?;
    let key = EcdsaKeyPair::from_pkcs8(signing, &pair.serialize_der()).ok()?;
    Some(SigningKey::Ec {
        alg,
        key: Arc::new(key),
    })
}

/// Builds the signed client assertion; `now` is the source's time (our clock corrected).
pub fn assertion(
    credentials: &Credentials,
    token_url: &str,
    now: Timestamp,
) -> Result<String, ConnectorError> {
    let iat = now.micros().div_euclid(1_000_000) - ASSERTION_BACKDATE_SECS;
    let claims = json!({
        "iss": credentials.client_id,
        "scope": [SCOPE],
        "aud": token_url,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_SECS,
    });
    let failed = || ConnectorError::Upstream("could not sign the NetSuite client assertion".into());
    match &credentials.key {
        SigningKey::Rsa(key) => {
            let mut header = Header::new(Algorithm::PS256);
            header.typ = Some("JWT".into());
            header.kid = Some(credentials.certificate_id.clone());
            jsonwebtoken::encode(&header, &claims, key).map_err(|_| failed())
        }
        SigningKey::Ec { alg, key } => {
            let header = json!({"typ": "JWT", "alg": alg, "kid": credentials.certificate_id});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = key
                .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
                .map_err(|_| failed())?;
            Ok(format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            ))
        }
    }
}

/// `expires_in` comes as `"3600"` or `3600`.
fn expires_in(body: &Value) -> Option<i64> {
    match body.get("expires_in")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Exchanges a fresh assertion for an access token. Every answer's `Date` teaches
/// `source_clock` the source's time. `invalid_grant` is also what NetSuite answers to an
/// assertion outside its time rules, so when the refusal's `Date` moved the source's clock
/// (by more than [`CLOCK_CORRECTION_MICROS`]) the assertion is signed again with the corrected
/// clock and sent once more; a refusal with a clock that was already right is `Unauthorized`.
pub(crate) async fn fetch_token(
    client: &UpstreamClient,
    credentials: &Credentials,
    base_url: &str,
    clock: &dyn Clock,
    source_clock: &SourceClock,
) -> Result<AccessToken, ConnectorError> {
    let token_url = format!("{base_url}{TOKEN_PATH}");
    for attempt in 0..2 {
        let ours = clock.now();
        let used = source_clock.offset_micros();
        let jwt = assertion(credentials, &token_url, source_clock.corrected(ours))?;
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ];
        let response = client
            .send(|http| http.post(&token_url).form(&form))
            .await
            .map_err(upstream)?;
        source_clock.observe(&response.headers, clock.now());
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status == 200 {
            return token_from(&body, ours);
        }
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let corrected = source_clock
            .offset_micros()
            .is_some_and(|now| (now - used.unwrap_or(0)).abs() > CLOCK_CORRECTION_MICROS);
        if error == "invalid_grant" && attempt == 0 && corrected {
            tracing::info!(
                offset_ms = source_clock.offset_micros().unwrap_or(0) / 1000,
                "NetSuite refused the client assertion; signing it again on the source's clock"
            );
            continue;
        }
        return Err(refusal(response.status, error));
    }
    Err(ConnectorError::Unauthorized)
}

/// The token of a successful answer; its lifetime counts from `issued` on our clock.
fn token_from(body: &Value, issued: Timestamp) -> Result<AccessToken, ConnectorError> {
    let value = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectorError::Upstream("NetSuite token answer has no access_token".into())
        })?;
    let lifetime = expires_in(body).unwrap_or(3600).clamp(60, 86_400);
    Ok(AccessToken {
        value: value.to_string(),
        expires_at: issued.plus_secs(lifetime),
    })
}

/// A refusal of the token endpoint as the connector error.
fn refusal(status: u16, error: &str) -> ConnectorError {
    match error {
        "invalid_client" | "invalid_grant" | "unauthorized_client" => ConnectorError::Unauthorized,
        _ if status == 401 => ConnectorError::Unauthorized,
        "invalid_scope" => ConnectorError::InvalidSettings {
            param: "credentials.client_id".into(),
            message: "the integration is not allowed the rest_webservices scope".into(),
        },
        other => {
            ConnectorError::Upstream(format!("NetSuite token endpoint answered {status} {other}"))
        }
    }
}

/// Transport failures as connector errors (no URLs, no secrets).
pub fn upstream(e: UpstreamError) -> ConnectorError {
    match e {
        UpstreamError::RateLimited(_) | UpstreamError::Status { status: 429, .. } => {
            ConnectorError::Throttled(format!("NetSuite: {e}"))
        }
        UpstreamError::OutcomeUnknown(what) => {
            ConnectorError::OutcomeUnknown(format!("NetSuite: {what}"))
        }
        e => ConnectorError::Upstream(format!("NetSuite: {e}")),
    }
}
