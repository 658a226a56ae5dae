//! OAuth 2.0 client credentials (machine to machine): a PS256 JWT assertion signed with the
//! connection's private key, exchanged at the token endpoint for a 60-minute bearer token.

use ironbridge_core::connector::ConnectorError;
use ironbridge_model::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::client::{UpstreamClient, UpstreamError};
use crate::token::AccessToken;

/// Path of the token endpoint under the account host.
pub const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";

/// Scope requested: the REST web services (record API and SuiteQL).
pub const SCOPE: &str = "rest_webservices";

/// Assertions live this long (NetSuite allows at most an hour).
const ASSERTION_LIFETIME_SECS: i64 = 300;

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
    pub key: EncodingKey,
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

/// Parses a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) RSA private key PEM.
pub fn parse_key(pem: &str) -> Result<EncodingKey, ConnectorError> {
    EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| ConnectorError::InvalidSettings {
        param: "credentials.private_key_pem".into(),
        message: "expected an RSA private key in PEM (PKCS#8 or PKCS#1)".into(),
    })
}

/// Builds the signed client assertion.
pub fn assertion(
    credentials: &Credentials,
    token_url: &str,
    now: Timestamp,
) -> Result<String, ConnectorError> {
    let iat = now.micros().div_euclid(1_000_000);
    let mut header = Header::new(Algorithm::PS256);
    header.typ = Some("JWT".into());
    header.kid = Some(credentials.certificate_id.clone());
    let claims = json!({
        "iss": credentials.client_id,
        "scope": [SCOPE],
        "aud": token_url,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_SECS,
    });
    jsonwebtoken::encode(&header, &claims, &credentials.key).map_err(|_| {
        ConnectorError::Upstream("could not sign the NetSuite client assertion".into())
    })
}

/// `expires_in` comes as `"3600"` or `3600`.
fn expires_in(body: &Value) -> Option<i64> {
    match body.get("expires_in")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Exchanges a fresh assertion for an access token.
pub async fn fetch_token(
    client: &UpstreamClient,
    credentials: &Credentials,
    base_url: &str,
    now: Timestamp,
) -> Result<AccessToken, ConnectorError> {
    let token_url = format!("{base_url}{TOKEN_PATH}");
    let jwt = assertion(credentials, &token_url, now)?;
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
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if response.status != 200 {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        return Err(match error {
            "invalid_client" | "invalid_grant" | "unauthorized_client" => {
                ConnectorError::Unauthorized
            }
            _ if response.status == 401 => ConnectorError::Unauthorized,
            "invalid_scope" => ConnectorError::InvalidSettings {
                param: "credentials.client_id".into(),
                message: "the integration is not allowed the rest_webservices scope".into(),
            },
            other => ConnectorError::Upstream(format!(
                "NetSuite token endpoint answered {} {other}",
                response.status
            )),
        });
    }
    let value = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectorError::Upstream("NetSuite token answer has no access_token".into())
        })?;
    let lifetime = expires_in(&body).unwrap_or(3600).clamp(60, 86_400);
    Ok(AccessToken {
        value: value.to_string(),
        expires_at: now.plus_secs(lifetime),
    })
}

/// Transport failures as connector errors (no URLs, no secrets).
pub fn upstream(e: UpstreamError) -> ConnectorError {
    ConnectorError::Upstream(format!("NetSuite: {e}"))
}
