//! The sync runner: pages through every readable entity of a connection, maps each raw
//! record and commits each page together with its checkpoint, so a crash resumes from the
//! last committed page and never loses or doubles a record.

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, ReadWindow};
use ironbridge_core::crypto::sha256_hex;
use ironbridge_core::ids;
use ironbridge_core::mapping::default_mapping;
use ironbridge_core::store::{
    ConnId, Event, OrgId, PageWrite, RecordUpsert, Store, StoreError, SyncState, WriteCounts,
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
    let data = Value::Object(ironbridge_core::unified::complete(entity, mapped.data)).to_string();
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

/// How far back an incremental run re-reads before the last high-water mark, so records
/// committed late with an earlier timestamp are not missed (the store de-duplicates them).
pub const LOOKBACK_SECS: i64 = 600;
/// How far below the source's "now" a run stops, so it never races writes in flight there.
pub const SETTLE_SECS: i64 = 120;

/// Picks the window of a new run: everything on a full run; on the first run, the history
/// window for transactions and everything for reference data; otherwise from the last
/// high-water mark minus the lookback.
/// The upper bound is the source's clock (or ours) minus the settle delay.
async fn new_window(
    connector: &dyn Connector,
    entity: Entity,
    state: &SyncState,
    full: bool,
    clock: &dyn Clock,
) -> Result<ReadWindow, SyncError> {
    let ours = clock.now();
    let now = match connector.source_time().await? {
        Some(theirs) => theirs.min(ours),
        None => ours,
    };
    let until = now.plus_secs(-SETTLE_SECS);
    // Reference data (vendors, items, locations) is wanted whole the first time, whatever its
    // age; later runs read only what changed, like everything else.
    let reference = matches!(entity, Entity::Vendor | Entity::Item | Entity::Location);
    let since = if full {
        None
    } else if let Some(hw) = state.high_water {
        Some(hw.plus_secs(-LOOKBACK_SECS))
    } else if reference {
        None
    } else {
        connector
            .default_history_days()
            .map(|days| now.plus_secs(-i64::from(days) * 86_400))
    };
    Ok(ReadWindow {
        modified_since: since,
        modified_until: Some(until),
    })
}

async fn sync_entity(
    store: &dyn Store,
    connector: &dyn Connector,
    conn: &ConnId,
    entity: Entity,
    full: bool,
    clock: &dyn Clock,
) -> Result<EntityReport, SyncError> {
    let mut report = EntityReport {
        entity: Some(entity),
        ..Default::default()
    };
    let Some(def) = default_mapping(connector.system(), entity) else {
        return Ok(report);
    };
    let state = store.start_sync(conn, entity, clock.now()).await?;
    // An unfinished run resumes with its own window and cursor; otherwise a new run starts.
    let (run_id, window, mut cursor) = match (&state.run_id, full) {
        (Some(run), false) => (
            run.clone(),
            ReadWindow {
                modified_since: state.window_since,
                modified_until: state.window_until,
            },
            state.cursor.clone(),
        ),
        _ => {
            let window = match new_window(connector, entity, &state, full, clock).await {
                Ok(w) => w,
                Err(err) => return fail(store, conn, entity, clock, err).await,
            };
            let run = ids::new_id("run", clock.now().micros());
            store
                .begin_window(
                    conn,
                    entity,
                    &run,
                    window.modified_since,
                    window.modified_until,
                )
                .await?;
            (run, window, None)
        }
    };
    // Only a pass over everything can tell which records disappeared.
    let complete_pass = window.modified_since.is_none();
    loop {
        let page = match connector
            .fetch_page(entity, &window, cursor.as_deref())
            .await
        {
            Ok(page) => page,
            Err(err) => return fail(store, conn, entity, clock, err.into()).await,
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
        let page_write = PageWrite {
            entity,
            records,
            checkpoint: page.next_cursor.clone(),
            now: clock.now(),
            seen_run: complete_pass.then(|| run_id.clone()),
        };
        let counts = store.write_page(conn, &page_write).await?;
        report.counts.added += counts.added;
        report.counts.updated += counts.updated;
        report.counts.deleted += counts.deleted;
        report.counts.unchanged += counts.unchanged;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if complete_pass && report.unmappable == 0 {
        report.counts.deleted += store
            .sweep_unseen(conn, entity, &run_id, clock.now())
            .await?;
    }
    store.finish_sync(conn, entity, clock.now(), None).await?;
    Ok(report)
}

async fn fail(
    store: &dyn Store,
    conn: &ConnId,
    entity: Entity,
    clock: &dyn Clock,
    err: SyncError,
) -> Result<EntityReport, SyncError> {
    if let SyncError::Connector(e) = &err {
        store
            .record_call_failure(conn, clock.now(), failure_code(e))
            .await?;
    }
    store
        .finish_sync(conn, entity, clock.now(), Some(&err.to_string()))
        .await?;
    Err(err)
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
///
/// `full` reads every entity whole (a resync or a reconciliation): records the source no
/// longer has are marked deleted once each pass completes.
pub async fn sync_connection(
    store: &dyn Store,
    connector: &dyn Connector,
    org: &OrgId,
    conn: &ConnId,
    full: bool,
    clock: &dyn Clock,
) -> Result<Vec<EntityReport>, SyncError> {
    let started = clock.now();
    store
        .set_connection_status(conn, ConnectionStatus::Syncing.as_str(), started, None)
        .await?;
    let mut reports = Vec::new();
    for &entity in connector.readable() {
        match sync_entity(store, connector, conn, entity, full, clock).await {
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
