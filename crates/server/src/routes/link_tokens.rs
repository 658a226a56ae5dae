//! Link tokens: the organization's backend opens a hosted Link for one end customer
//! (`POST /v1/link-tokens`), and exchanges the public token a finished Link handed to its
//! redirect URL for the connection and its token, once (`POST /v1/link-tokens/exchange`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::crypto::{new_token, token_hash};
use ironbridge_core::ids::new_id;
use ironbridge_core::netguard::Url;
use ironbridge_core::store::{ConnId, LinkToken, OrgId};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{ConnectionStatus, SystemId};
use ironbridge_model::link::{LinkExchangeIn, LinkExchangeOut, LinkTokenIn, LinkTokenOut};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::connections::{connection_out, owned};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Prefix of link tokens.
pub const LINK_TOKEN_PREFIX: &str = "ibl";
/// Prefix of the public tokens a finished Link hands to the redirect URL.
pub const PUBLIC_TOKEN_PREFIX: &str = "ibp";
/// How long after Link finished its public token can be exchanged.
pub const PUBLIC_TOKEN_TTL_SECS: i64 = 24 * 3600;

/// The AAD binding a waiting connection token to its link token's row.
pub fn connection_token_context(link_id: &str) -> String {
    format!("link_tokens:{link_id}:connection_token")
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationError, message).param(param)
}

/// Whether `text` is a colour `#rrggbb`.
pub fn is_colour(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A redirect URL Link may send the customer's browser to: absolute http(s), no credentials.
pub fn redirect_target(text: &str) -> Option<Url> {
    if text.len() > 2000 {
        return None;
    }
    Url::parse(text).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment().is_none()
    })
}

/// Create a link token: a single-use, short-lived address (`/link/{link_token}`) at which the
/// end customer connects their own system, or renews the credentials of `connection_id`.
/// Ironbridge checks the credentials live against the system before it saves anything; the
/// organization receives a `connection.created` (or `connection.reauthorized`) event and a
/// `public_token` on its redirect URL to exchange for the connection's token.
#[utoipa::path(post, path = "/v1/link-tokens", tag = "Link", operation_id = "v1.link_tokens.create",
    request_body = LinkTokenIn,
    responses((status = 201, description = "The link token (shown once) and its page", body = LinkTokenOut),
        (status = 404, description = "No such connection (`connection_id`)", body = ErrorBody),
        (status = 409, description = "The connection is disconnected", body = ErrorBody),
        (status = 422, description = "A bad end user, system, redirect URL or brand", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_link_token(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<LinkTokenIn>,
) -> ApiResult<(StatusCode, Json<LinkTokenOut>)> {
    let user = &input.end_user;
    if user.id.trim().is_empty() || user.id.len() > 200 {
        return Err(invalid(
            "end_user.id",
            "`end_user.id` must be 1 to 200 characters.",
        ));
    }
    if user.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(invalid(
            "end_user.name",
            "`end_user.name` must be at most 200 characters.",
        ));
    }
    if user.email.as_ref().is_some_and(|n| n.len() > 320) {
        return Err(invalid(
            "end_user.email",
            "`end_user.email` must be at most 320 characters.",
        ));
    }
    if redirect_target(&input.redirect_url).is_none() {
        return Err(invalid(
            "redirect_url",
            "`redirect_url` must be an absolute http(s) URL of at most 2000 characters, without credentials or a fragment.",
        ));
    }
    let brand = input.brand.clone().unwrap_or_default();
    if brand.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(invalid(
            "brand.name",
            "`brand.name` must be at most 100 characters.",
        ));
    }
    if brand.colour.as_ref().is_some_and(|c| !is_colour(c)) {
        return Err(invalid(
            "brand.colour",
            "`brand.colour` must be a colour `#rrggbb`.",
        ));
    }
    let registry = state.runtimes.registry();
    let systems: Vec<SystemId> = match (&input.connection_id, &input.systems) {
        (Some(id), _) => {
            let connection = owned(&state, &org, id).await?;
            if connection.status == ConnectionStatus::Disconnected.as_str() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "This connection is disconnected; open a Link without `connection_id` to make a new one.",
                )
                .param("connection_id"));
            }
            let system = SystemId::parse(&connection.system)
                .ok_or_else(|| ApiError::internal("stored connection has a bad system id"))?;
            if input
                .systems
                .as_ref()
                .is_some_and(|s| s != std::slice::from_ref(&system))
            {
                return Err(invalid(
                    "systems",
                    format!(
                        "A re-authorization offers the connection's own system only (`{system}`); leave `systems` out."
                    ),
                ));
            }
            vec![system]
        }
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(invalid(
                    "systems",
                    "`systems` must name at least one system.",
                ));
            }
            let mut out: Vec<SystemId> = Vec::new();
            for (i, id) in list.iter().enumerate() {
                if registry.get(id.as_str()).is_none_or(|s| s.auth.is_empty()) {
                    return Err(invalid(
                        &format!("systems[{i}]"),
                        format!(
                            "`{id}` is not a system customers can connect through Link; see GET /v1/systems."
                        ),
                    ));
                }
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
            out
        }
        (None, None) => registry
            .systems()
            .iter()
            .filter(|s| !s.auth.is_empty())
            .map(|s| s.id.clone())
            .collect(),
    };
    let now = state.clock.now();
    let secret = new_token(LINK_TOKEN_PREFIX);
    let ttl = i64::try_from(state.config.link_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let link = LinkToken {
        id: new_id("lnk", now.micros()),
        org_id: org.0.clone(),
        token_hash: token_hash(&secret),
        end_user: serde_json::to_string(user).map_err(ApiError::internal)?,
        systems: serde_json::to_string(&systems).map_err(ApiError::internal)?,
        connection_id: input.connection_id.clone(),
        redirect_url: input.redirect_url.clone(),
        brand_name: brand.name.filter(|n| !n.trim().is_empty()),
        brand_colour: brand.colour.map(|c| c.to_ascii_lowercase()),
        certificate_id: None,
        expires_at: now.plus_secs(ttl),
        created_at: now,
        claimed_at: None,
        completed_at: None,
        result_connection_id: None,
        public_token_hash: None,
        connection_token: None,
        exchanged_at: None,
    };
    state.store.create_link_token(&org, &link).await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkTokenOut {
            url: format!("/link/{secret}"),
            id: link.id,
            link_token: secret,
            expires_at: link.expires_at,
            end_user: input.end_user,
            systems,
            connection_id: link.connection_id,
            redirect_url: link.redirect_url,
        }),
    ))
}

/// Exchange the `public_token` a finished Link added to the redirect URL for the connection
/// it made and the connection's token. Works once, for 24 hours, and only with an admin key
/// of the organization that opened the Link.
#[utoipa::path(post, path = "/v1/link-tokens/exchange", tag = "Link", operation_id = "v1.link_tokens.exchange",
    request_body = LinkExchangeIn,
    responses((status = 200, description = "The connection and its token (shown once)", body = LinkExchangeOut),
        (status = 404, description = "Unknown, already exchanged, expired, or another organization's public token", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn exchange_public_token(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<LinkExchangeIn>,
) -> ApiResult<Json<LinkExchangeOut>> {
    let gone = || {
        ApiError::new(
            ErrorCode::NotFound,
            "No such public token: it is unknown to this organization, was already exchanged, or is more than 24 hours old.",
        )
        .param("public_token")
    };
    let text = input.public_token.trim();
    if !text.starts_with(&format!("{PUBLIC_TOKEN_PREFIX}_")) || text.len() > 200 {
        return Err(gone());
    }
    let now = state.clock.now();
    let link = state
        .store
        .exchange_public_token(
            &org,
            &token_hash(text),
            now,
            now.plus_secs(-PUBLIC_TOKEN_TTL_SECS),
        )
        .await?
        .ok_or_else(gone)?;
    let token = match &link.connection_token {
        Some(sealed) => {
            let plain = state
                .keys
                .decrypt(&connection_token_context(&link.id), sealed)
                .map_err(ApiError::internal)?;
            Some(String::from_utf8(plain).map_err(ApiError::internal)?)
        }
        None => None,
    };
    let connection_id = link
        .result_connection_id
        .ok_or_else(|| ApiError::internal("a finished link token names no connection"))?;
    let connection = state
        .store
        .get_connection(&OrgId(org.0.clone()), &ConnId(connection_id))
        .await?;
    Ok(Json(LinkExchangeOut {
        connection: connection_out(&state, connection).await?,
        token,
        reauthorized: link.connection_id.is_some(),
    }))
}
