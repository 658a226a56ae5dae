//! Who is calling. Admin API keys (`ibk_…`) reach the management endpoints; connection tokens
//! (`ibc_…`) reach one connection's data. Both are looked up by their SHA-256 only. The
//! middleware authenticates and rate-limits; the extractors state each handler's access rule.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ironbridge_core::crypto::token_hash;
use ironbridge_core::service::{API_KEY_PREFIX, CONNECTION_TOKEN_PREFIX};
use ironbridge_core::store::{ConnId, Connection, OrgId};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{ConnectionStatus, McpAccess};

use crate::AppState;
use crate::error::ApiError;
use crate::ratelimit::{Decision, client_key};

/// Header with which an admin key picks the connection whose data it reads.
pub const CONNECTION_ID_HEADER: HeaderName = HeaderName::from_static("x-connection-id");

/// An authenticated caller.
#[derive(Clone, Debug)]
pub enum Principal {
    /// An organization's admin key.
    Admin {
        /// The organization.
        org: OrgId,
        /// The key's id.
        key_id: String,
        /// What the key may do through the MCP server.
        mcp_access: McpAccess,
    },
    /// A connection's token.
    Connection(Box<Connection>),
}

impl Principal {
    /// What its rate limit is keyed by.
    pub(crate) fn limit_key(&self) -> &str {
        match self {
            Principal::Admin { key_id, .. } => key_id,
            Principal::Connection(c) => &c.id,
        }
    }

    /// What the credential may do through the MCP server.
    pub fn mcp_access(&self) -> McpAccess {
        match self {
            Principal::Admin { mcp_access, .. } => *mcp_access,
            Principal::Connection(c) => c.mcp_access,
        }
    }

    /// The same credential as if it had been granted writes (to tell a refused write tool
    /// from an unknown one).
    pub(crate) fn with_writes(mut self) -> Self {
        match &mut self {
            Principal::Admin { mcp_access, .. } => *mcp_access = McpAccess::ReadWrite,
            Principal::Connection(c) => c.mcp_access = McpAccess::ReadWrite,
        }
        self
    }
}

fn unauthorized(message: &str, presented: bool) -> ApiError {
    let challenge = if presented {
        r#"Bearer realm="ironbridge", error="invalid_token""#
    } else {
        r#"Bearer realm="ironbridge""#
    };
    ApiError::new(ErrorCode::AuthenticationFailed, message).header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
}

/// The credential `token` is, checked as a request's `Authorization: Bearer` would be (for
/// `ironbridge mcp --stdio`, which has no request).
pub async fn identify_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| unauthorized("The token is not a valid credential.", true))?;
    headers.insert(header::AUTHORIZATION, value);
    identify(state, &headers).await
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "Send an admin API key or a connection token as `Authorization: Bearer <token>`.",
            false,
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1): `BEARER` is `Bearer`.
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| unauthorized("The Authorization header must be `Bearer <token>`.", true))?;
    let hash = token_hash(token);
    let now = state.clock.now();
    if token.starts_with(&format!("{API_KEY_PREFIX}_")) {
        let key = state
            .store
            .find_api_key(&hash)
            .await?
            .ok_or_else(|| unauthorized("Unknown API key.", true))?;
        if key.revoked_at.is_some() {
            return Err(unauthorized("This API key was revoked.", true));
        }
        state.store.touch_api_key(&key.id, now).await?;
        Ok(Principal::Admin {
            org: OrgId(key.org_id),
            key_id: key.id,
            mcp_access: key.mcp_access,
        })
    } else if token.starts_with(&format!("{CONNECTION_TOKEN_PREFIX}_")) {
        let conn = state
            .store
            .find_connection_by_token(&hash)
            .await?
            .ok_or_else(|| unauthorized("Unknown connection token.", true))?;
        if conn.status == ConnectionStatus::Disconnected.as_str() {
            return Err(unauthorized(
                "This connection was disconnected; its token no longer works.",
                true,
            ));
        }
        Ok(Principal::Connection(Box::new(conn)))
    } else {
        Err(unauthorized(
            "Unknown credential: API keys start with `ibk_`, connection tokens with `ibc_`.",
            true,
        ))
    }
}

fn rate_headers(d: &Decision) -> [(HeaderName, HeaderValue); 3] {
    [
        (
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(d.limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(d.reset_secs),
        ),
    ]
}

/// Counts a request without a valid credential against its client address: `Err` with the
/// 429 to answer once the address is over its limit.
fn limit_anonymous_request(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::edge::Peer>>()
        .map(|c| c.0.0.ip());
    let key = client_key(peer, req.headers(), &state.config.trusted_proxies);
    let decision = state.anonymous.check(&key, state.clock.now());
    if decision.allowed {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "Too many requests without a valid credential from this address. Retry after {} s.",
            decision.retry_after_secs
        ),
    )
    .header(
        header::RETRY_AFTER,
        HeaderValue::from(decision.retry_after_secs),
    ))
}

/// Limits unauthenticated routes (health, metrics, docs) per client address, as failed
/// authentication is.
pub async fn limit_anonymous(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match limit_anonymous_request(&state, &req) {
        Ok(()) => next.run(req).await,
        // People on Link and dashboard pages get a page, with the same `Retry-After`.
        Err(e) if is_page(req.uri().path()) => {
            let retry = e
                .headers
                .iter()
                .find(|(name, _)| *name == header::RETRY_AFTER)
                .map(|(_, value)| value.clone());
            let mut response = crate::html::PageError::from(e).into_response();
            if let Some(retry) = retry {
                response.headers_mut().insert(header::RETRY_AFTER, retry);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Whether `path` is an HTML page (Link, the dashboard) rather than the API.
fn is_page(path: &str) -> bool {
    path.starts_with("/link/") || path == "/dashboard" || path.starts_with("/dashboard/")
}

/// Authenticates the caller, applies its rate limit and hands the principal to the handler.
/// A failed authentication counts against the client address's limit, so credential guessing
/// and floods of bad tokens get 429; a valid credential is never slowed by them.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let principal = match identify(&state, req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            return match limit_anonymous_request(&state, &req) {
                Ok(()) => e.into_response(),
                Err(limited) => limited.into_response(),
            };
        }
    };
    let decision = state
        .limiter
        .check(principal.limit_key(), state.clock.now());
    if !decision.allowed {
        let mut err = ApiError::new(
            ErrorCode::RateLimitExceeded,
            format!(
                "Rate limit exceeded for this credential. Retry after {} s.",
                decision.retry_after_secs
            ),
        )
        .header(
            header::RETRY_AFTER,
            HeaderValue::from(decision.retry_after_secs),
        );
        for (name, value) in rate_headers(&decision) {
            err = err.header(name, value);
        }
        return err.into_response();
    }
    let org = match &principal {
        Principal::Admin { org, .. } => org.0.clone(),
        Principal::Connection(c) => c.org_id.clone(),
    };
    req.extensions_mut().insert(principal);
    let mut response = next.run(req).await;
    // The request is logged under the credential's organization.
    response
        .extensions_mut()
        .insert(crate::request_log::LoggedOrg(org));
    for (name, value) in rate_headers(&decision) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn principal(parts: &Parts) -> Result<&Principal, ApiError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| ApiError::internal("route is missing the authentication layer"))
}

/// An admin key's organization. Connection tokens are refused with 403.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub OrgId);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match principal(parts)? {
            Principal::Admin { org, .. } => Ok(AdminAuth(org.clone())),
            Principal::Connection(_) => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "Connection tokens can only read and write their connection's data; use an admin API key here.",
            )),
        }
    }
}

/// An admin key's organization and the key itself (for changes recorded with who made them).
/// Connection tokens are refused with 403.
#[derive(Debug, Clone)]
pub struct AdminActor {
    /// The organization.
    pub org: OrgId,
    /// The key's id (`key_…`).
    pub key_id: String,
}

impl AdminActor {
    /// Who made a change, as recorded (`api_key:key_…`).
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.key_id)
    }
}

impl FromRequestParts<AppState> for AdminActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AdminAuth(org) = AdminAuth::from_request_parts(parts, state).await?;
        match principal(parts)? {
            Principal::Admin { key_id, .. } => Ok(AdminActor {
                org,
                key_id: key_id.clone(),
            }),
            Principal::Connection(_) => Err(ApiError::internal("an admin key was expected")),
        }
    }
}

/// The connection whose data a request touches: the token's own, or the one an admin key
/// names in `X-Connection-Id` (which may be disconnected: its history stays readable).
#[derive(Debug, Clone)]
pub struct ConnectionAuth {
    /// The connection.
    pub connection: Connection,
}

impl ConnectionAuth {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        ConnId(self.connection.id.clone())
    }

    /// Refuses writes through a disconnected connection.
    pub fn writable(&self) -> Result<(), ApiError> {
        if self.connection.status == ConnectionStatus::Disconnected.as_str() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "This connection is disconnected; its data is read-only.",
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for ConnectionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts)? {
            Principal::Connection(c) => Ok(ConnectionAuth {
                connection: (**c).clone(),
            }),
            Principal::Admin { org, .. } => {
                let id = parts
                    .headers
                    .get(&CONNECTION_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            "Admin API keys must name a connection in the X-Connection-Id header.",
                        )
                        .param("X-Connection-Id")
                    })?;
                let connection = state
                    .store
                    .get_connection(org, &ConnId(id.to_string()))
                    .await
                    .map_err(|e| match e {
                        ironbridge_core::store::StoreError::NotFound => {
                            ApiError::not_found("connection").param("X-Connection-Id")
                        }
                        other => other.into(),
                    })?;
                Ok(ConnectionAuth { connection })
            }
        }
    }
}
