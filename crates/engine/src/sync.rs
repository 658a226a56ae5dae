//! The sync runner: pages through every readable entity of a connection, maps each raw
//! record and commits each page together with its checkpoint, so a crash resumes from the
//! last committed page and never loses or doubles a record.

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::crypto::sha256_hex;
use ironbridge_core::ids;
use ironbridge_core::mapping::default_mapping;
use ironbridge_core::store::{
    ConnId, Event, OrgId, PageWrite, RecordUpsert, Store, StoreError, WriteCounts,
};
use ironbridge_model::Entity;
use ironbridge_model::api::ConnectionStatus;
use serde_json::{Value, json};

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

fn report_json(reports: &[EntityReport]) -> Value {
    let entities: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "entity": r.entity.map(Entity::as_str),
                "added": r.counts.added,
                "updated": r.counts.updated,
                "deleted": r.counts.deleted,
                "unchanged": r.counts.unchanged,
                "skipped": r.unmappable,
            })
        })
        .collect();
    let sum = |f: fn(&EntityReport) -> u64| reports.iter().map(f).sum::<u64>();
    json!({
        "records_added": sum(|r| r.counts.added),
        "records_updated": sum(|r| r.counts.updated),
        "records_deleted": sum(|r| r.counts.deleted),
        "entities": entities,
    })
}

fn sync_event(
    org: &OrgId,
    conn: &ConnId,
    event_type: &str,
    data: Value,
    clock: &dyn Clock,
) -> Event {
    let now = clock.now();
    Event {
        id: ids::new_id("evt", now.micros()),
        org_id: org.0.clone(),
        connection_id: Some(conn.0.clone()),
        event_type: event_type.to_string(),
        data: data.to_string(),
        created_at: now,
    }
}

/// Syncs every readable entity of a connection and keeps its status in step with reality.
/// The final status change and the `sync.completed` or `sync.failed` event commit together.
pub async fn sync_connection(
    store: &dyn Store,
    connector: &dyn Connector,
    org: &OrgId,
    conn: &ConnId,
    clock: &dyn Clock,
) -> Result<Vec<EntityReport>, SyncError> {
    let started = clock.now();
    store
        .set_connection_status(conn, ConnectionStatus::Syncing.as_str(), started, None)
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
                let code = match &err {
                    SyncError::Connector(e) => failure_code(e),
                    SyncError::Store(_) => "STORE_ERROR",
                };
                let mut data = report_json(&reports);
                data["entity"] = json!(entity.as_str());
                data["error"] = json!({"code": code, "message": safe_message(&err)});
                data["duration_ms"] = json!((clock.now().micros() - started.micros()) / 1000);
                let event = sync_event(org, conn, "sync.failed", data, clock);
                store
                    .set_connection_status(conn, status.as_str(), clock.now(), Some(&event))
                    .await?;
                return Err(err);
            }
        }
    }
    let mut data = report_json(&reports);
    data["duration_ms"] = json!((clock.now().micros() - started.micros()) / 1000);
    let event = sync_event(org, conn, "sync.completed", data, clock);
    store
        .set_connection_status(
            conn,
            ConnectionStatus::Online.as_str(),
            clock.now(),
            Some(&event),
        )
        .await?;
    Ok(reports)
}

/// What an event may say about a failure: connector messages are written to be shown;
/// storage errors are not.
fn safe_message(err: &SyncError) -> String {
    match err {
        SyncError::Connector(ConnectorError::Upstream(_)) => {
            "The source system could not be reached.".into()
        }
        SyncError::Connector(e) => e.to_string(),
        SyncError::Store(_) => "Ironbridge could not store the data; see the logs.".into(),
    }
}
