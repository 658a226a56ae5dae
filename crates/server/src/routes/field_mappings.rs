//! Field mappings of a connection: its effective mapping, the source fields its records
//! have, overrides (set, preview, delete), their history and reverting to a version. The
//! rules live in `core::field_mappings`; the handlers only read the request and the caller.

use axum::Json;
use axum::extract::State;
use ironbridge_core::field_mappings::FieldMappings;
use ironbridge_core::store::{Connection, OrgId, StoreError};
use ironbridge_model::field_mappings::{
    EntityFieldMappingsOut, FieldMappingChangeOut, FieldMappingHistoryOut, FieldMappingIn,
    FieldMappingRevertIn, FieldMappingVersionOut, FieldMappingsOut, RemoteFieldsOut,
};
use ironbridge_model::{Entity, ErrorCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::connections::owned;
use crate::AppState;
use crate::auth::{AdminActor, AdminAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// An entity named in a path or query: its name (`purchase_order`) or its collection's
/// (`purchase-orders`).
fn entity_named(name: &str, param: &str, code: ErrorCode) -> ApiResult<Entity> {
    Entity::ALL
        .iter()
        .copied()
        .find(|e| e.as_str() == name || e.spec().plural.replace('_', "-") == name)
        .ok_or_else(|| {
            ApiError::new(
                code,
                format!(
                    "`{name}` is not an entity (one of: {}).",
                    Entity::ALL
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .param(param)
        })
}

fn mappings<'a>(
    state: &'a AppState,
    org: &'a OrgId,
    conn: &'a Connection,
) -> ApiResult<FieldMappings<'a>> {
    Ok(FieldMappings {
        store: state.store.as_ref(),
        system: state
            .runtimes
            .registry()
            .require(&conn.system)
            .map_err(ironbridge_core::service::ServiceError::from)?,
        org,
        conn,
        described: None,
    })
}

/// The system's description of `entity`'s fields, read live from the source; `None` when it
/// has none, or cannot be reached now (the stored records still say which fields exist).
async fn described(
    state: &AppState,
    conn: &Connection,
    entity: Entity,
) -> Option<Vec<ironbridge_core::connector::DescribedField>> {
    if conn.status == ironbridge_model::api::ConnectionStatus::Disconnected.as_str() {
        return None;
    }
    let runtime = state.runtimes.get(conn).ok()?;
    match runtime.connector().describe_fields(entity).await {
        Ok(fields) => fields,
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "the source's description of its fields could not be read");
            None
        }
    }
}

/// A 404 when the connection's system does not map `entity`, or `target` (when given) is no
/// field of it: the path names nothing. A field that exists but cannot be changed is refused
/// later, with 422.
fn mapped(
    state: &AppState,
    conn: &Connection,
    entity: Entity,
    target: Option<&str>,
) -> ApiResult<()> {
    let system = state
        .runtimes
        .registry()
        .require(&conn.system)
        .map_err(ironbridge_core::service::ServiceError::from)?;
    // Points are stored as mapped, with no source payload to map again at read time.
    let def = system
        .mapping(entity)
        .filter(|_| entity.spec().storage == ironbridge_model::Storage::Records);
    let Some(def) = def else {
        return Err(ApiError::new(
            ironbridge_model::ErrorCode::NotFound,
            format!(
                "{} connections map no {}s.",
                system.name,
                entity.spec().label
            ),
        )
        .param("entity"));
    };
    if let Some(target) = target
        && let Err(ironbridge_core::field_mappings::TargetError::Unknown(message)) =
            ironbridge_core::field_mappings::Target::parse(entity, def, target)
    {
        return Err(ApiError::new(ironbridge_model::ErrorCode::NotFound, message).param("target"));
    }
    Ok(())
}

/// A missing override reads as 404 (the store's `NotFound` is about the override here).
fn override_missing(e: ironbridge_core::service::ServiceError) -> ApiError {
    match e {
        ironbridge_core::service::ServiceError::Store(StoreError::NotFound) => {
            ApiError::not_found("field mapping override")
        }
        other => other.into(),
    }
}

/// Query of `GET /v1/connections/{id}/field-mappings`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MappingsParams {
    /// Only this entity (`purchase_order`); none when the connection's system does not read it.
    #[param(value_type = Option<Entity>)]
    pub entity: Option<String>,
}

/// The effective field mapping of every entity of a connection: for each unified field, line
/// field and custom field, its source path, its conversion, and whether it is the default or
/// an override.
#[utoipa::path(get, path = "/v1/connections/{id}/field-mappings", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.list",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"), MappingsParams),
    responses((status = 200, description = "The effective mapping", body = FieldMappingsOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Not an entity this connection maps", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_mappings(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MappingsParams>,
) -> ApiResult<Json<FieldMappingsOut>> {
    let conn = owned(&state, &org, &id).await?;
    let only = q
        .entity
        .as_deref()
        .map(|e| entity_named(e, "entity", ErrorCode::ValidationError))
        .transpose()?;
    Ok(Json(mappings(&state, &org, &conn)?.effective(only).await?))
}

/// The effective field mapping of one entity of a connection.
#[utoipa::path(get, path = "/v1/connections/{id}/field-mappings/{entity}", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.get",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"),
        ("entity" = Entity, Path, description = "The entity (`purchase_order`)")),
    responses((status = 200, description = "The entity's effective mapping", body = EntityFieldMappingsOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Not an entity this connection maps", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_mappings(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath((id, entity)): ApiPath<(String, String)>,
) -> ApiResult<Json<EntityFieldMappingsOut>> {
    let conn = owned(&state, &org, &id).await?;
    let entity = entity_named(&entity, "entity", ErrorCode::NotFound)?;
    mapped(&state, &conn, entity, None)?;
    let mut all = mappings(&state, &org, &conn)?
        .effective(Some(entity))
        .await?;
    all.data
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("an entity's mapping was not listed"))
}

/// Query of the changes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeParams {
    /// Check and preview the change on stored records without saving it.
    pub dry_run: Option<bool>,
}

/// Creates or changes the override of one field: remap a unified field or line field to
/// another source path, add a custom field from any source path with a conversion, or
/// remove a custom field the default mapping brings. It is checked against the connection's
/// stored records (the source path must be in them, the conversion must read every value)
/// and applies to every answer at once, with no resync.
#[utoipa::path(put, path = "/v1/connections/{id}/field-mappings/{entity}/{target}", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.set",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"),
        ("entity" = Entity, Path, description = "The entity (`purchase_order`)"),
        ("target" = String, Path, description = "The field: `memo`, `address.city`, `custom_fields.cost_center`, `line_items.description`, `line_items.custom_fields.project`"),
        ChangeParams),
    request_body = FieldMappingIn,
    responses((status = 200, description = "The field's mapping after the change, with a preview on stored records", body = FieldMappingChangeOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Another change was saved at the same moment", body = ErrorBody),
        (status = 422, description = "The target cannot be mapped, the source path is unknown for this connection, or the conversion fails on stored records (`param` says which)", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn set_mapping(
    State(state): State<AppState>,
    actor: AdminActor,
    ApiPath((id, entity, target)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<ChangeParams>,
    ApiJson(input): ApiJson<FieldMappingIn>,
) -> ApiResult<Json<FieldMappingChangeOut>> {
    let out = change_mapping(
        &state,
        &actor.org,
        &actor.actor(),
        (&id, &entity, &target),
        input,
        q.dry_run.unwrap_or(false),
    )
    .await?;
    Ok(Json(out))
}

/// Checks, previews and (unless `dry_run`) saves the change of one field's mapping of the
/// organization's connection, recorded as made by `actor` (an API key, a dashboard user).
pub(crate) async fn change_mapping(
    state: &AppState,
    org: &OrgId,
    actor: &str,
    (id, entity, target): (&str, &str, &str),
    input: FieldMappingIn,
    dry_run: bool,
) -> ApiResult<FieldMappingChangeOut> {
    let conn = owned(state, org, id).await?;
    let entity = entity_named(entity, "entity", ErrorCode::NotFound)?;
    mapped(state, &conn, entity, Some(target))?;
    let mut m = mappings(state, org, &conn)?;
    if !input.remove {
        m.described = described(state, &conn, entity).await;
    }
    Ok(
        m.set(entity, target, input, dry_run, actor, state.clock.now())
            .await?,
    )
}

/// Deletes the override of one field: a unified field reads its default source again, an
/// added custom field is gone, a removed one is back.
#[utoipa::path(delete, path = "/v1/connections/{id}/field-mappings/{entity}/{target}", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.delete",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"),
        ("entity" = Entity, Path, description = "The entity (`purchase_order`)"),
        ("target" = String, Path, description = "The field whose override is deleted"),
        ChangeParams),
    responses((status = 200, description = "The field's mapping after the change, with a preview", body = FieldMappingChangeOut),
        (status = 404, description = "No such connection, or the field has no override", body = ErrorBody),
        (status = 422, description = "The target is not a field of the entity", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn delete_mapping(
    State(state): State<AppState>,
    actor: AdminActor,
    ApiPath((id, entity, target)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<ChangeParams>,
) -> ApiResult<Json<FieldMappingChangeOut>> {
    let conn = owned(&state, &actor.org, &id).await?;
    let entity = entity_named(&entity, "entity", ErrorCode::NotFound)?;
    mapped(&state, &conn, entity, Some(&target))?;
    let out = mappings(&state, &actor.org, &conn)?
        .delete(
            entity,
            &target,
            q.dry_run.unwrap_or(false),
            &actor.actor(),
            state.clock.now(),
        )
        .await
        .map_err(override_missing)?;
    Ok(Json(out))
}

/// Query of the history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Versions per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Every change of a connection's field mappings, newest first: what changed, the override
/// before and after, who made it and when, and every override in force after it.
#[utoipa::path(get, path = "/v1/connections/{id}/field-mappings/history", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.history",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"), HistoryParams),
    responses((status = 200, description = "A page of versions", body = FieldMappingHistoryOut),
        (status = 404, description = "No such connection", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn history(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> ApiResult<Json<FieldMappingHistoryOut>> {
    let conn = owned(&state, &org, &id).await?;
    let out = mappings(&state, &org, &conn)?
        .history(&state.keys, q.cursor.as_deref(), q.page_size)
        .await?;
    Ok(Json(out))
}

/// Restores the overrides of an earlier version (0: the system's defaults), saved as a new
/// version so the history keeps everything.
#[utoipa::path(post, path = "/v1/connections/{id}/field-mappings/revert", tag = "Field mappings",
    operation_id = "v1.connections.field_mappings.revert",
    params(("id" = String, Path, description = "Connection id (`conn_…`)")),
    request_body = FieldMappingRevertIn,
    responses((status = 200, description = "The new version", body = FieldMappingVersionOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "No such version", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn revert(
    State(state): State<AppState>,
    actor: AdminActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<FieldMappingRevertIn>,
) -> ApiResult<Json<FieldMappingVersionOut>> {
    let conn = owned(&state, &actor.org, &id).await?;
    let out = mappings(&state, &actor.org, &conn)?
        .revert(input.version, &actor.actor(), state.clock.now())
        .await?;
    Ok(Json(out))
}

/// Query of `GET /v1/connections/{id}/remote-fields`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoteFieldsParams {
    /// The entity (`purchase_order`).
    #[param(value_type = Entity)]
    pub entity: String,
}

/// The source fields a connection's records of an entity really have, found in their stored
/// source payloads: each path (of the record, or of one line), its inferred type, examples,
/// the conversions that read every value, and what the default mapping fills from it.
#[utoipa::path(get, path = "/v1/connections/{id}/remote-fields", tag = "Field mappings",
    operation_id = "v1.connections.remote_fields.list",
    params(("id" = String, Path, description = "Connection id (`conn_…`)"), RemoteFieldsParams),
    responses((status = 200, description = "The source fields", body = RemoteFieldsOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Not an entity this connection maps", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn remote_fields(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RemoteFieldsParams>,
) -> ApiResult<Json<RemoteFieldsOut>> {
    let conn = owned(&state, &org, &id).await?;
    let entity = entity_named(&q.entity, "entity", ErrorCode::ValidationError)?;
    mapped(&state, &conn, entity, None)?;
    let mut m = mappings(&state, &org, &conn)?;
    m.described = described(&state, &conn, entity).await;
    Ok(Json(m.remote_fields(entity).await?))
}
