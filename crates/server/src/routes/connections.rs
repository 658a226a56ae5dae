//! Connections: create (taking a credit), list, read with health, disconnect, reconnect,
//! delete synced data; and `GET /v1/connection` for a connection token's own connection.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::pagination::{PageSize, Pager};
use ironbridge_core::sandbox;
use ironbridge_core::service::{self, Deps};
use ironbridge_core::store::{ConnId, Connection, OrgId, StoreError};
use ironbridge_engine::sync::sync_connection;
use ironbridge_engine::worker::enqueue_sync;
use ironbridge_model::api::{
    CircuitState, ConnectionCreatedOut, ConnectionHealth, ConnectionIn, ConnectionList,
    ConnectionOut, ConnectionStatus, DataDeletedOut, EndUser, EntitySyncStatus, ReconnectIn,
    SystemId,
};
use ironbridge_model::{Entity, ErrorCode};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::{AdminAuth, ConnectionAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Builds the API view of a connection, with health and per-entity sync state.
pub async fn connection_out(state: &AppState, c: Connection) -> ApiResult<ConnectionOut> {
    let id = ConnId(c.id.clone());
    let states = state.store.sync_states(&id).await?;
    let counts = state.store.record_counts(&id).await?;
    // The entities the connection's system reads, and any other it holds state or records
    // of (written ones, or read by an earlier version of its connector).
    let readable = state
        .runtimes
        .registry()
        .get(&c.system)
        .map(|system| system.readable());
    let sync = Entity::ALL
        .iter()
        .filter(|entity| {
            readable.as_ref().is_none_or(|r| r.contains(entity))
                || states.iter().any(|s| s.entity == **entity)
                || counts.iter().any(|(e, _)| e == *entity)
        })
        .map(|&entity| {
            let s = states.iter().find(|s| s.entity == entity);
            EntitySyncStatus {
                entity,
                status: s.map_or("never".into(), |s| s.status.clone()),
                last_started_at: s.and_then(|s| s.last_started_at),
                last_finished_at: s.and_then(|s| s.last_finished_at),
                last_succeeded_at: s.and_then(|s| s.last_succeeded_at),
                record_count: counts
                    .iter()
                    .find(|(e, _)| *e == entity)
                    .map_or(0, |(_, n)| *n),
                last_error: s.and_then(|s| s.last_error.clone()),
            }
        })
        .collect();
    let parse_obj = |text: &str| match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    Ok(ConnectionOut {
        system: SystemId::parse(&c.system)
            .ok_or_else(|| ApiError::internal(format!("unknown system {}", c.system)))?,
        status: ConnectionStatus::parse(&c.status)
            .ok_or_else(|| ApiError::internal(format!("unknown status {}", c.status)))?,
        end_user: c
            .end_user
            .as_deref()
            .and_then(|u| serde_json::from_str::<EndUser>(u).ok()),
        settings: parse_obj(&c.settings),
        health: ConnectionHealth {
            last_successful_call_at: c.last_success_at,
            last_error_at: c.last_error_at,
            last_error_code: c.last_error_code,
            consecutive_errors: c.consecutive_errors,
            error_count: c.error_count,
            circuit_state: match c.circuit_state.as_str() {
                "open" => CircuitState::Open,
                "half_open" => CircuitState::HalfOpen,
                _ => CircuitState::Closed,
            },
            source_clock_offset_ms: c.source_clock_offset_ms,
            source_clock_measured_at: c.source_clock_measured_at,
        },
        id: c.id,
        name: c.name,
        token_prefix: c.token_prefix,
        mcp_access: c.mcp_access,
        created_at: c.created_at,
        disconnected_at: c.disconnected_at,
        last_full_sync_at: c.last_full_sync_at,
        replaces: c.replaces,
        replaced_by: c.replaced_by,
        sync,
    })
}

fn deps(state: &AppState) -> Deps<'_> {
    Deps {
        store: state.store.as_ref(),
        keys: &state.keys,
        registry: state.runtimes.registry(),
        clock: state.clock.as_ref(),
    }
}

/// Starts the initial sync. The sandbox's data is small, so it is loaded before the creation
/// answers and the caller can page through it at once; real systems are synced by the
/// worker (the connection shows `syncing` and per-entity progress meanwhile). A failure is
/// recorded on the connection (status, health, sync state); the connection itself stays.
pub(crate) async fn initial_sync(state: &AppState, connection: &Connection) {
    if connection.system != sandbox::ID.as_str() {
        let org = OrgId(connection.org_id.clone());
        let queued = enqueue_sync(
            state.store.as_ref(),
            state.clock.as_ref(),
            &org,
            &ConnId(connection.id.clone()),
            false,
            5,
        )
        .await;
        if let Err(e) = queued {
            tracing::error!(connection = %connection.id, error = %e.chain(), "cannot queue the initial sync");
        }
        return;
    }
    let runtime = match state.runtimes.get(connection) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(connection = %connection.id, error = %e, "cannot open connector for the initial sync");
            return;
        }
    };
    let id = ConnId(connection.id.clone());
    let org = OrgId(connection.org_id.clone());
    if let Err(e) = sync_connection(
        state.store.as_ref(),
        runtime.connector().as_ref(),
        &org,
        &id,
        false,
        state.clock.as_ref(),
    )
    .await
    {
        tracing::warn!(connection = %connection.id, error = %e, "initial sync failed");
    }
}

/// Puts a connection whose credentials were just checked to work: the connector that checked
/// them becomes the connection's runtime (its token and limits carry over to the first sync
/// and the first writes), and its sync starts.
pub(crate) async fn start_connection(
    state: &AppState,
    connection: &Connection,
    connector: std::sync::Arc<dyn ironbridge_core::connector::Connector>,
) {
    if let Err(e) = state.runtimes.adopt(connection, connector) {
        tracing::warn!(connection = %connection.id, error = %e, "cannot keep the connection's connector");
    }
    initial_sync(state, connection).await;
}

/// Syncs a new connection, then answers 201 with its state and its token (shown once).
async fn answer_created(
    state: &AppState,
    org: &OrgId,
    created: service::Created,
) -> ApiResult<(StatusCode, Json<ConnectionCreatedOut>)> {
    start_connection(state, &created.connection, created.connector.clone()).await;
    let connection = state
        .store
        .get_connection(org, &ConnId(created.connection.id.clone()))
        .await?;
    let out = connection_out(state, connection).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectionCreatedOut {
            connection: out,
            token: created.token,
        }),
    ))
}

fn creation_error(e: service::ServiceError) -> ApiError {
    match e {
        service::ServiceError::Connector(
            ironbridge_core::connector::ConnectorError::Unauthorized,
        ) => ApiError::new(
            ErrorCode::ValidationError,
            "The source system refused these credentials.",
        )
        .param("credentials"),
        other => other.into(),
    }
}

/// Connect a system. Takes one connection credit; answers with the connection's token, once.
#[utoipa::path(post, path = "/v1/connections", tag = "Connections", operation_id = "v1.connections.create",
    request_body = ConnectionIn,
    responses((status = 201, description = "The connection and its token (shown once)", body = ConnectionCreatedOut),
        (status = 409, description = "No connection credit left (`CONNECTION_CREDITS_EXHAUSTED`)", body = ErrorBody),
        (status = 422, description = "Invalid settings, or the source refused the credentials", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_connection(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<ConnectionIn>,
) -> ApiResult<(StatusCode, Json<ConnectionCreatedOut>)> {
    if input.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "`name` must be at most 200 characters.",
        )
        .param("name"));
    }
    let created = service::create_connection(&deps(&state), &org, &input)
        .await
        .map_err(creation_error)?;
    answer_created(&state, &org, created).await
}

/// Query of `GET /v1/connections`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionListParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Connections per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// List the organization's connections, oldest first, disconnected ones included.
#[utoipa::path(get, path = "/v1/connections", tag = "Connections", operation_id = "v1.connections.list",
    params(ConnectionListParams),
    responses((status = 200, description = "A page of connections", body = ConnectionList)),
    security(("admin_key" = [])))]
pub async fn list_connections(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiQuery(q): ApiQuery<ConnectionListParams>,
) -> ApiResult<Json<ConnectionList>> {
    let page_size = PageSize {
        default: 50,
        max: 100,
    }
    .resolve(q.page_size)?;
    let pager = Pager::new(&state.keys, &org.0, &[("list", "connections".into())]);
    let after = pager.position(q.cursor.as_deref())?;
    let (rows, total) = state
        .store
        .list_connections(&org, after.as_deref(), page_size + 1)
        .await?;
    let (rows, next_cursor) = pager.page(rows, page_size, |c| &c.id);
    let mut data = Vec::with_capacity(rows.len());
    for c in rows {
        data.push(connection_out(&state, c).await?);
    }
    Ok(Json(ConnectionList {
        data,
        next_cursor,
        total_count: Some(total),
    }))
}

/// The organization's connection `id`, or 404.
pub(crate) async fn owned(state: &AppState, org: &OrgId, id: &str) -> ApiResult<Connection> {
    state
        .store
        .get_connection(org, &ConnId(id.to_string()))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("connection"),
            other => other.into(),
        })
}

/// Get a connection with its status, health and per-entity sync state.
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "Connections", operation_id = "v1.connections.get",
    params(("id" = String, Path, description = "Connection id (`conn_…`)")),
    responses((status = 200, description = "The connection", body = ConnectionOut),
        (status = 404, description = "No such connection", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_connection(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ConnectionOut>> {
    let c = owned(&state, &org, &id).await?;
    Ok(Json(connection_out(&state, c).await?))
}

/// Disconnect: the token stops working at once, syncs stop, the credit returns to the pool.
/// Synced data stays until deleted.
#[utoipa::path(post, path = "/v1/connections/{id}/disconnect", tag = "Connections", operation_id = "v1.connections.disconnect",
    params(("id" = String, Path, description = "Connection id (`conn_…`)")),
    responses((status = 200, description = "The disconnected connection", body = ConnectionOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Already disconnected", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn disconnect_connection(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ConnectionOut>> {
    owned(&state, &org, &id).await?;
    let c = state
        .store
        .disconnect_connection(&org, &ConnId(id), state.clock.now())
        .await?;
    tracing::info!(connection = %c.id, "connection disconnected");
    Ok(Json(connection_out(&state, c).await?))
}

/// Reconnect: a new connection with a new token replaces this one (which is disconnected).
/// Credentials are reused unless new ones are given.
#[utoipa::path(post, path = "/v1/connections/{id}/reconnect", tag = "Connections", operation_id = "v1.connections.reconnect",
    params(("id" = String, Path, description = "Connection id (`conn_…`)")),
    request_body(content = Option<ReconnectIn>, description = "Optional: new credentials"),
    responses((status = 201, description = "The new connection and its token (shown once)", body = ConnectionCreatedOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Already replaced, or no credit left", body = ErrorBody),
        (status = 422, description = "The source refused the credentials", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn reconnect_connection(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<ReconnectIn>,
) -> ApiResult<(StatusCode, Json<ConnectionCreatedOut>)> {
    owned(&state, &org, &id).await?;
    let created = service::reconnect(&deps(&state), &org, &ConnId(id), input.credentials.as_ref())
        .await
        .map_err(creation_error)?;
    answer_created(&state, &org, created).await
}

/// Delete a disconnected connection's synced data (records and sync state).
#[utoipa::path(delete, path = "/v1/connections/{id}/data", tag = "Connections", operation_id = "v1.connections.delete_data",
    params(("id" = String, Path, description = "Connection id (`conn_…`)")),
    responses((status = 200, description = "How many records were deleted", body = DataDeletedOut),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The connection is still live; disconnect it first", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn delete_connection_data(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DataDeletedOut>> {
    owned(&state, &org, &id).await?;
    let deleted_records = state
        .store
        .delete_connection_data(&org, &ConnId(id))
        .await?;
    Ok(Json(DataDeletedOut { deleted_records }))
}

/// The calling connection's status, health and sync state.
#[utoipa::path(get, path = "/v1/connection", tag = "Connections", operation_id = "v1.connection.get",
    responses((status = 200, description = "The connection", body = ConnectionOut)),
    security(("connection_token" = []), ("admin_key" = [])))]
pub async fn get_current_connection(
    State(state): State<AppState>,
    auth: ConnectionAuth,
) -> ApiResult<Json<ConnectionOut>> {
    Ok(Json(connection_out(&state, auth.connection).await?))
}
