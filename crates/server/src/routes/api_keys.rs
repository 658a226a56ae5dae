//! Admin API keys: list, create (the secret is shown once), revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::crypto::{new_token, token_hash, token_prefix};
use ironbridge_core::ids::new_id;
use ironbridge_core::service::API_KEY_PREFIX;
use ironbridge_core::store::{ApiKey, NewApiKey, StoreError};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{ApiKeyCreatedOut, ApiKeyIn, ApiKeyList, ApiKeyOut};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

fn out(k: ApiKey) -> ApiKeyOut {
    ApiKeyOut {
        id: k.id,
        name: k.name,
        prefix: k.prefix,
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        revoked_at: k.revoked_at,
        mcp_access: k.mcp_access,
    }
}

/// List the organization's admin API keys (never their secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "API keys", operation_id = "v1.api_keys.list",
    responses((status = 200, description = "All keys, revoked ones included", body = ApiKeyList)),
    security(("admin_key" = [])))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
) -> ApiResult<Json<ApiKeyList>> {
    let keys = state.store.list_api_keys(&org).await?;
    Ok(Json(ApiKeyList {
        data: keys.into_iter().map(out).collect(),
    }))
}

/// Create an admin API key. The secret is in this response only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "API keys", operation_id = "v1.api_keys.create",
    request_body = ApiKeyIn,
    responses((status = 201, description = "The key and its secret", body = ApiKeyCreatedOut),
        (status = 422, description = "Invalid name", body = ironbridge_model::error::ErrorResponse)),
    security(("admin_key" = [])))]
pub async fn create_api_key(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreatedOut>)> {
    let name = input.name.trim();
    // Characters, not bytes, as the document's `maxLength` counts them.
    if name.is_empty() || input.name.chars().count() > 100 {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "`name` must be 1 to 100 characters.",
        )
        .param("name"));
    }
    let secret = new_token(API_KEY_PREFIX);
    let key = NewApiKey {
        id: new_id("key", state.clock.now().micros()),
        name: name.to_string(),
        token_hash: token_hash(&secret),
        prefix: token_prefix(&secret),
        created_at: state.clock.now(),
        mcp_access: input.mcp_access.unwrap_or_default(),
    };
    let created = state.store.create_api_key(&org, &key).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreatedOut {
            api_key: out(created),
            key: secret,
        }),
    ))
}

/// Revoke an admin API key. It stops working at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "API keys", operation_id = "v1.api_keys.revoke",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses((status = 200, description = "The revoked key", body = ApiKeyOut),
        (status = 404, description = "No such key", body = ironbridge_model::error::ErrorResponse),
        (status = 409, description = "Already revoked", body = ironbridge_model::error::ErrorResponse)),
    security(("admin_key" = [])))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKeyOut>> {
    match state
        .store
        .revoke_api_key(&org, &id, state.clock.now())
        .await
    {
        Ok(k) => Ok(Json(out(k))),
        Err(StoreError::NotFound) => Err(ApiError::not_found("API key")),
        Err(StoreError::Conflict(_)) => Err(ApiError::new(
            ErrorCode::Conflict,
            "This API key is already revoked.",
        )),
        Err(e) => Err(e.into()),
    }
}
