//! Bulk batches: a `batch` job works through a batch's operations in batches of its size,
//! each batch's operations at once within the connection's limits, pausing between batches.
//! Before an operation is sent it is marked `sending`; a worker that takes the job over after
//! a crash finds such operations with their outcome unknown and looks for each at the
//! source (by the reference every attempt of it carries) before writing, so nothing is
//! written twice. The record each write returns is stored with the operation's result.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use ironbridge_core::Clock;
use ironbridge_core::clock::Sleeper;
use ironbridge_core::connector::ConnectorError;
use ironbridge_core::field_mappings::{self, ConnectionView};
use ironbridge_core::ids::new_id;
use ironbridge_core::refusal;
use ironbridge_core::runtime::ConnectionRuntime;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{
    Batch, BatchOperation, ConnId, OperationEnd, OrgId, Store, StoreError, batch_status,
    operation_status,
};
use ironbridge_core::write::{self, WriteAction};
use ironbridge_core::written;
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Map, Value, json};

/// Kind of the batch job.
pub const BATCH_JOB: &str = "batch";

/// Why a batch job stopped before its end.
#[derive(Debug)]
pub enum BatchStop {
    /// Storage failed (or the job's lease was lost: `StoreError::Fenced`).
    Store(StoreError),
    /// The source is unreachable, limiting, or refused the credentials: the job is tried
    /// again later and resumes where it stopped.
    Source(ServiceError),
}

impl From<StoreError> for BatchStop {
    fn from(e: StoreError) -> Self {
        BatchStop::Store(e)
    }
}

/// How many times an operation is sent (or looked for) before an outcome that stays unknown
/// fails it.
const UNKNOWN_ATTEMPTS: i64 = 3;

/// The reference every attempt of an operation carries to the source.
pub fn operation_reference(batch_id: &str, idx: i64) -> String {
    written::reference(&["batch", batch_id, &idx.to_string()])
}

/// The entity a batch operation names, as the API's paths do (`purchase-orders`).
pub fn parse_entity(name: &str) -> Option<Entity> {
    Entity::ALL.iter().copied().find(|e| path_name(*e) == name)
}

/// An entity's name in the API's paths (`purchase-orders`).
pub fn path_name(entity: Entity) -> String {
    entity.spec().plural.replace('_', "-")
}

/// How one operation ended: done (succeeded or refused), or to try again later.
enum Outcome {
    Ended(OperationEnd),
    Retry(ServiceError),
}

async fn run_operation(
    store: &dyn Store,
    runtime: &ConnectionRuntime,
    conn: &ConnId,
    op: &BatchOperation,
    clock: &dyn Clock,
    view: Option<&ConnectionView>,
) -> Outcome {
    let failed = |error: Value| {
        Outcome::Ended(OperationEnd {
            idx: op.idx,
            status: operation_status::FAILED,
            written: None,
            result: json!({ "error": error }).to_string(),
        })
    };
    let Some(entity) = Entity::parse(&op.entity) else {
        return failed(
            json!({"code": "VALIDATION_ERROR", "type": "invalid_request_error", "message": format!("unknown entity {}", op.entity), "param": "entity"}),
        );
    };
    let body = match serde_json::from_str::<Map<String, Value>>(&op.body) {
        Ok(b) => b,
        Err(_) => {
            return failed(
                json!({"code": "VALIDATION_ERROR", "type": "invalid_request_error", "message": "data must be an object", "param": "data"}),
            );
        }
    };
    let action = match (&op.action[..], &op.target_id) {
        ("update", Some(id)) => WriteAction::Update { id },
        _ => WriteAction::Create,
    };
    let reference = operation_reference(&op.batch_id, op.idx);
    // Sent before and not ended: that attempt may have reached the source.
    let reconcile = op.status == operation_status::SENDING && op.attempts > 1;
    let answered = write::apply(
        store,
        runtime,
        conn,
        entity,
        action,
        &body,
        Some(&reference),
        reconcile,
        view,
    )
    .await;
    let answered = match answered {
        Ok(Some(a)) => a,
        Ok(None) => {
            return failed(
                json!({"code": "NOT_FOUND", "type": "not_found_error", "message": format!("No such {}.", entity.spec().label), "param": "id"}),
            );
        }
        Err(e) => {
            return match refusal::of(&e) {
                Some(r) => failed(r.to_json()),
                None => match e {
                    // Broken data is not retried: the operation fails, the batch goes on.
                    ServiceError::Corrupt(_) | ServiceError::Crypto(_) => {
                        tracing::error!(batch = %op.batch_id, index = op.idx, error = %e, "batch operation failed");
                        failed(
                            json!({"code": "INTERNAL_ERROR", "type": "api_error", "message": "An unexpected error occurred."}),
                        )
                    }
                    // Still unknown after several attempts (the source keeps losing answers,
                    // or cannot look such records up by reference): the operation fails with
                    // the single request's error rather than holding the batch for ever.
                    ServiceError::Connector(ConnectorError::OutcomeUnknown(_))
                        if op.attempts >= UNKNOWN_ATTEMPTS =>
                    {
                        tracing::warn!(batch = %op.batch_id, index = op.idx, error = %e, "batch operation's outcome stays unknown");
                        failed(
                            json!({"code": "OUTCOME_UNKNOWN", "type": "source_system_error", "message": "The source system did not answer this write, which it may or may not have applied, and it could not be found there by its reference. Read the record back before writing it again.", "details": {"reason": "outcome_unknown"}}),
                        )
                    }
                    other => Outcome::Retry(other),
                },
            };
        }
    };
    let now = clock.now();
    match written::prepare(
        &conn.0,
        runtime.system(),
        entity,
        &answered.raw,
        answered.created_at.unwrap_or(now),
        now,
        view,
    ) {
        Ok((record, rendered)) => Outcome::Ended(OperationEnd {
            idx: op.idx,
            status: operation_status::SUCCEEDED,
            written: written::keeps_writes(runtime.system()).then_some(record),
            result: json!({ "record": rendered }).to_string(),
        }),
        Err(e) => {
            tracing::error!(batch = %op.batch_id, index = op.idx, error = %e, "a written record could not be mapped");
            failed(
                json!({"code": "INTERNAL_ERROR", "type": "api_error", "message": "The record was written but could not be read back; it arrives with the next sync."}),
            )
        }
    }
}

/// Works through a batch until it ends (or must be tried again later). Every store write
/// goes through `store`, the job's fenced view.
pub async fn run_batch(
    store: &dyn Store,
    runtime: &ConnectionRuntime,
    org: &OrgId,
    batch_id: &str,
    clock: &dyn Clock,
    sleeper: &dyn Sleeper,
) -> Result<Batch, BatchStop> {
    let mut first = true;
    loop {
        let batch = store.get_batch(org, batch_id).await?;
        let conn = ConnId(batch.connection_id.clone());
        if batch.finished_at.is_some() {
            return Ok(batch);
        }
        if batch.cancel_requested {
            return finish(store, &batch, batch_status::CANCELLED, clock).await;
        }
        if !first && batch.delay_ms > 0 {
            sleeper
                .sleep(Duration::from_millis(
                    u64::try_from(batch.delay_ms).unwrap_or(0),
                ))
                .await;
            // A cancel during the pause stops the batch before its next batch.
            if store.get_batch(org, batch_id).await?.cancel_requested {
                return finish(store, &batch, batch_status::CANCELLED, clock).await;
            }
        }
        first = false;
        let size = u32::try_from(batch.batch_size.clamp(1, 100)).unwrap_or(50);
        let ops = store.next_batch_operations(batch_id, size).await?;
        if ops.is_empty() {
            return finish(store, &batch, batch_status::COMPLETED, clock).await;
        }
        let idxs: Vec<i64> = ops.iter().map(|o| o.idx).collect();
        // Durably "sent" before anything is sent: after a crash the outcome is unknown,
        // never forgotten. (`attempts` counts this marking.)
        store
            .mark_operations_sending(batch_id, &idxs, clock.now())
            .await?;
        let ops: Vec<BatchOperation> = ops
            .into_iter()
            .map(|mut o| {
                o.attempts += 1;
                if o.status == operation_status::PENDING {
                    o.status = operation_status::SENDING.into();
                    o.attempts = 1;
                }
                o
            })
            .collect();
        // The connection's field mappings as they are now (a change applies from the next
        // batch of operations).
        let connection = store.get_connection(org, &conn).await?;
        let view = field_mappings::view::load(store, runtime.system(), &connection)
            .await
            .map_err(BatchStop::Source)?;
        let view = view.as_ref();
        let parallel = runtime.connector().read_concurrency().max(1);
        // Boxed: the operations' futures borrow this loop's state across awaits.
        let sends: Vec<Pin<Box<dyn Future<Output = Outcome> + Send + '_>>> = ops
            .iter()
            .map(|op| {
                Box::pin(run_operation(store, runtime, &conn, op, clock, view))
                    as Pin<Box<dyn Future<Output = Outcome> + Send + '_>>
            })
            .collect();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(sends)
            .buffered(parallel)
            .collect()
            .await;
        let mut ends = Vec::with_capacity(outcomes.len());
        let mut retry = None;
        for outcome in outcomes {
            match outcome {
                Outcome::Ended(end) => ends.push(end),
                Outcome::Retry(e) => retry = Some(e),
            }
        }
        let any_failed = ends.iter().any(|e| e.status == operation_status::FAILED);
        store
            .end_operations(&conn, batch_id, &ends, clock.now())
            .await?;
        if any_failed && batch.on_error == "stop" {
            return finish(store, &batch, batch_status::FAILED, clock).await;
        }
        if let Some(e) = retry {
            // The operations it left `sending` are looked for at the source on the retry.
            return Err(BatchStop::Source(e));
        }
    }
}

async fn finish(
    store: &dyn Store,
    batch: &Batch,
    status: &str,
    clock: &dyn Clock,
) -> Result<Batch, BatchStop> {
    let now: Timestamp = clock.now();
    Ok(store
        .finish_batch(&batch.id, status, &new_id("evt", now.micros()), now)
        .await?)
}

/// Whether a source failure stops the batch for good (the credentials are refused: nothing
/// goes through until the customer reconnects).
pub fn is_final(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Connector(ConnectorError::Unauthorized))
}
