//! The calling organization and its connection credits.

use axum::Json;
use axum::extract::State;
use ironbridge_model::api::{CreditsOut, OrganizationOut};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::ApiResult;

/// Get the calling organization, with its connection credits.
#[utoipa::path(get, path = "/v1/organization", tag = "Organization", operation_id = "v1.organization.get",
    responses((status = 200, description = "The organization", body = OrganizationOut)),
    security(("admin_key" = [])))]
pub async fn get_organization(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
) -> ApiResult<Json<OrganizationOut>> {
    let o = state.store.get_organization(&org).await?;
    let used = state.store.credits_used(&org).await?;
    Ok(Json(OrganizationOut {
        id: o.id,
        name: o.name,
        created_at: o.created_at,
        connection_credits: CreditsOut {
            total: o.connection_credits,
            used,
            available: (o.connection_credits - used).max(0),
        },
    }))
}
