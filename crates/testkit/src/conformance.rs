//! The conformance harness every connector runs: its descriptor is checked against what the
//! connector really does with a live source (its emulator, the sandbox's data, the example's
//! table). Each read entity pages to the end and maps into the unified type; windowed reads
//! honour the window and whole reads say truly that they cannot; feeds give a position and
//! outboxes receipts; entities it does not read, and writes it does not list, are refused as
//! unsupported without a call; its concurrency is its documented limit.

use std::collections::HashSet;

use ironbridge_core::connector::{Connector, ConnectorError, ReadWindow, UnifiedWrite};
use ironbridge_core::system::{WriteOp, check_descriptors};
use ironbridge_core::unified::check_mapped;
use ironbridge_model::api::ReadKind;
use ironbridge_model::{Entity, Timestamp};

/// Pages read at most per entity (enough to cross page boundaries).
pub const MAX_PAGES: usize = 50;

/// What the harness found wrong; empty when the connector conforms.
pub type Problems = Vec<String>;

/// Checks `connector` against its descriptor (and the descriptor against its mappings).
/// The source must hold at least one record of every entity the system reads.
pub async fn check(connector: &dyn Connector) -> Problems {
    let system = connector.descriptor();
    let id = system.id.as_str();
    let mut problems: Problems = check_descriptors(&[system]);
    if let Err(e) = connector.check().await {
        problems.push(format!("{id}: the health check failed: {e}"));
        return problems;
    }
    if connector.read_concurrency() != system.limits.concurrency {
        problems.push(format!(
            "{id}: reads {} at once, the descriptor documents {}",
            connector.read_concurrency(),
            system.limits.concurrency
        ));
    }
    for read in system.reads {
        problems.extend(check_read(connector, read.entity, read.kind).await);
    }
    for &entity in Entity::ALL {
        if system.read(entity).is_none() {
            match connector.fetch_page(entity, &ReadWindow::ALL, None).await {
                Err(ConnectorError::Unsupported(_)) => {}
                other => problems.push(format!(
                    "{id} {entity}: not in the descriptor's reads, yet reading it gave {other:?}"
                )),
            }
        }
        problems.extend(check_writes(connector, entity).await);
    }
    problems
}

async fn check_read(connector: &dyn Connector, entity: Entity, kind: ReadKind) -> Problems {
    let system = connector.descriptor();
    let id = system.id.as_str();
    let mut problems = Vec::new();
    let Some(def) = system.mapping(entity) else {
        return vec![format!("{id} {entity}: no mapping")];
    };
    let mut cursor: Option<String> = None;
    let mut keys = HashSet::new();
    let mut records = 0;
    for _ in 0..MAX_PAGES {
        let page = match connector
            .fetch_page(entity, &ReadWindow::ALL, cursor.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                problems.push(format!("{id} {entity}: reading failed: {e}"));
                return problems;
            }
        };
        for record in &page.records {
            records += 1;
            let raw = match record.parse() {
                Ok(raw) => raw,
                Err(e) => {
                    problems.push(format!("{id} {entity}: a record is not JSON: {e}"));
                    continue;
                }
            };
            match def.apply("conn_conformance", &raw) {
                Ok(mapped) => {
                    if !keys.insert(mapped.remote_id.clone()) {
                        problems.push(format!("{id} {entity}: {} read twice", mapped.remote_id));
                    }
                    if let Err(e) = check_mapped(entity, &mapped) {
                        problems.push(format!(
                            "{id} {entity}: {} is not a valid unified record: {e}",
                            mapped.remote_id
                        ));
                    }
                }
                Err(e) => problems.push(format!("{id} {entity}: a record does not map: {e}")),
            }
        }
        match kind {
            ReadKind::Feed if page.next_cursor.is_none() && page.resume.is_none() => problems.push(
                format!("{id} {entity}: a feed's last page gives no position"),
            ),
            ReadKind::Outbox if !page.records.is_empty() && page.receipt.is_none() => problems
                .push(format!(
                    "{id} {entity}: an outbox page gives nothing to acknowledge"
                )),
            // An outbox is read as a sync reads it: each page acknowledged before the next,
            // which a real outbox serves from its head again.
            ReadKind::Outbox => {
                if let Some(receipt) = &page.receipt
                    && let Err(e) = connector.acknowledge(entity, receipt).await
                {
                    problems.push(format!("{id} {entity}: acknowledging failed: {e}"));
                    return problems;
                }
            }
            _ => {}
        }
        match page.next_cursor {
            Some(next) => {
                if kind == ReadKind::Windowed
                    && let Some(at) = connector.cursor_position(entity, &next)
                    && at.micros() <= 0
                {
                    problems.push(format!("{id} {entity}: a cursor at no time ({next})"));
                }
                cursor = Some(next);
            }
            None => break,
        }
    }
    if records == 0 {
        problems.push(format!("{id} {entity}: the source gave no record to check"));
        return problems;
    }
    // A window after every record: a source that filters by time returns none; one that
    // cannot (read whole) still returns records, as its descriptor must then say.
    let future = ReadWindow {
        modified_since: Some(
            Timestamp::parse_rfc3339("2200-01-01T00:00:00Z").unwrap_or(Timestamp(i64::MAX / 2)),
        ),
        modified_until: None,
    };
    match connector.fetch_page(entity, &future, None).await {
        Ok(page) => match kind {
            ReadKind::Windowed | ReadKind::TimeSeries if !page.records.is_empty() => {
                problems.push(format!(
                    "{id} {entity}: described as read by time, but a future window gave {} records",
                    page.records.len()
                ))
            }
            ReadKind::Whole if page.records.is_empty() => problems.push(format!(
                "{id} {entity}: described as read whole, but it filters by time"
            )),
            _ => {}
        },
        Err(e) => problems.push(format!("{id} {entity}: a windowed read failed: {e}")),
    }
    problems
}

async fn check_writes(connector: &dyn Connector, entity: Entity) -> Problems {
    let system = connector.descriptor();
    let id = system.id.as_str();
    let mut problems = Vec::new();
    let empty = UnifiedWrite::default();
    let listed = system.writes(entity, WriteOp::Create);
    match (listed, connector.creates()) {
        (true, None) => problems.push(format!(
            "{id} {entity}: creates are described but not implemented"
        )),
        (false, Some(writer)) => match writer.create(entity, &empty).await {
            Err(ConnectorError::Unsupported(_)) => {}
            other => problems.push(format!(
                "{id} {entity}: creates are not described, yet one gave {other:?}"
            )),
        },
        _ => {}
    }
    let listed = system.writes(entity, WriteOp::Update);
    match (listed, connector.updates()) {
        (true, None) => problems.push(format!(
            "{id} {entity}: updates are described but not implemented"
        )),
        (false, Some(writer)) => match writer.update(entity, "1", &empty).await {
            Err(ConnectorError::Unsupported(_)) => {}
            other => problems.push(format!(
                "{id} {entity}: updates are not described, yet one gave {other:?}"
            )),
        },
        _ => {}
    }
    problems
}
