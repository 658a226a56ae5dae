//! The sync runner: pages through every readable entity of a connection, maps each raw
//! record and commits each page together with its checkpoint, so a crash resumes from the
//! last committed page and never loses or doubles a record.

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::crypto::sha256_hex;
use ironbridge_core::ids;
use ironbridge_core::mapping::default_mapping;
use ironbridge_core::store::{ConnId, PageWrite, RecordUpsert, Store, StoreError, WriteCounts};
use ironbridge_model::Entity;
use ironbridge_model::api::ConnectionStatus;
use serde_json::Value;

/// What one entity's sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityReport {
    /// The entity.
    pub entity: Option<Entity>,
    /// Records written, by outcome.
    pub counts: WriteCounts,
    /// Pages fetched.
    pub pages: u64,
    /// Records that could not be mapped (logged, not stored).
    pub unmappable: u64,
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source system failed.
    #[error("{0}")]
    Connector(#[from] ConnectorError),
    /// Storage failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn upsert(
    connection_id: &str,
    entity: Entity,
    raw: &Value,
    def: &ironbridge_core::mapping::MappingDef,
) -> Result<RecordUpsert, String> {
    let mapped = def.apply(connection_id, raw).map_err(|e| e.to_string())?;
    let data = Value::Object(mapped.data).to_string();
    let raw = raw.to_string();
    let content_hash = sha256_hex(format!("{data}\u{0}{raw}").as_bytes());
    Ok(RecordUpsert {
        id: ids::record_id(connection_id, entity, &mapped.remote_id),
        remote_id: mapped.remote_id,
        data,
        raw,
        content_hash,
        remote_created_at: mapped.remote_created_at,
        remote_updated_at: mapped.remote_updated_at,
        remote_was_deleted: mapped.remote_was_deleted,
    })
}

async fn sync_entity(
    store: &dyn Store,
    connector: &dyn Connector,
    conn: &ConnId,
    entity: Entity,
    clock: &dyn Clock,
) -> Result<EntityReport, SyncError> {
    let mut report = EntityReport {
        entity: Some(entity),
        ..Default::default()
    };
    let Some(def) = default_mapping(connector.system(), entity) else {
        return Ok(report);
    };
    let mut cursor = store.start_sync(conn, entity, clock.now()).await?;
    loop {
        let page = match connector.fetch_page(entity, cursor.as_deref()).await {
            Ok(page) => page,
            Err(err) => {
                store
                    .record_call_failure(conn, clock.now(), failure_code(&err))
                    .await?;
                store
                    .finish_sync(conn, entity, clock.now(), Some(&err.to_string()))
                    .await?;
                return Err(err.into());
            }
        };
        store.record_call_success(conn, clock.now()).await?;
        report.pages += 1;
        let mut records = Vec::with_capacity(page.records.len());
        for raw in &page.records {
            match upsert(&conn.0, entity, raw, def) {
                Ok(r) => records.push(r),
                Err(problem) => {
                    report.unmappable += 1;
                    tracing::warn!(connection = %conn.0, %entity, %problem, "record skipped: it does not fit the mapping");
                }
            }
        }
        let counts = store
            .write_page(
                conn,
                &PageWrite {
                    entity,
                    records,
                    checkpoint: page.next_cursor.clone(),
                    now: clock.now(),
                },
            )
            .await?;
        report.counts.added += counts.added;
        report.counts.updated += counts.updated;
        report.counts.deleted += counts.deleted;
        report.counts.unchanged += counts.unchanged;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    store.finish_sync(conn, entity, clock.now(), None).await?;
    Ok(report)
}

fn failure_code(err: &ConnectorError) -> &'static str {
    match err {
        ConnectorError::Unauthorized => "AUTHENTICATION_FAILED",
        ConnectorError::Upstream(_) => "UPSTREAM_UNAVAILABLE",
        _ => "UPSTREAM_ERROR",
    }
}

/// Syncs every readable entity of a connection and keeps its status in step with reality.
pub async fn sync_connection(
    store: &dyn Store,
    connector: &dyn Connector,
    conn: &ConnId,
    clock: &dyn Clock,
) -> Result<Vec<EntityReport>, SyncError> {
    store
        .set_connection_status(conn, ConnectionStatus::Syncing.as_str())
        .await?;
    let mut reports = Vec::new();
    for &entity in connector.readable() {
        match sync_entity(store, connector, conn, entity, clock).await {
            Ok(report) => reports.push(report),
            Err(err) => {
                let status = match &err {
                    SyncError::Connector(ConnectorError::Unauthorized) => {
                        ConnectionStatus::ReauthorizationRequired
                    }
                    SyncError::Connector(ConnectorError::Upstream(_)) => ConnectionStatus::Offline,
                    _ => ConnectionStatus::Online,
                };
                store.set_connection_status(conn, status.as_str()).await?;
                return Err(err);
            }
        }
    }
    store
        .set_connection_status(conn, ConnectionStatus::Online.as_str())
        .await?;
    Ok(reports)
}
