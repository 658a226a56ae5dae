//! Running a flow: a `flow` job works through its run step by step. A step's items are
//! stored when the step begins (the trigger's when the run is created), worked through in
//! batches, and each end is stored with its effect (the record a write returned, the event a
//! webhook step sends) in one transaction. A write is marked `sending` before it is sent and
//! carries a reference derived from the run, the step and the item, so a worker that takes
//! the run over after a crash looks for an item caught in flight at the source before writing
//! it: each item is written once. A step's outputs become the next step's items.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ironbridge_core::Clock;
use ironbridge_core::clock::Sleeper;
use ironbridge_core::connector::ConnectorError;
use ironbridge_core::field_mappings::{self, ConnectionView};
use ironbridge_core::flows::{self as core_flows, CompiledStep};
use ironbridge_core::ids::new_id;
use ironbridge_core::refusal;
use ironbridge_core::runtime::{ConnectionRuntime, Runtimes};
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{
    ConnId, Event, FlowItem, FlowRun, ItemEnd, OrgId, Store, StoreError, item_status, run_status,
};
use ironbridge_core::{write, written};
use ironbridge_model::Timestamp;
use ironbridge_model::flows::{FlowIn, MAX_RUN_ITEMS, OnItemError, Step};
use serde_json::{Value, json};

use super::steps::{self, ItemError};

/// Why a run stopped before its end.
#[derive(Debug)]
pub enum FlowStop {
    /// Storage failed (or the job's lease was lost: `StoreError::Fenced`).
    Store(StoreError),
    /// A source is unreachable, limiting, or failing: the job is tried again later and the
    /// run resumes where it stopped.
    Source(ServiceError),
}

impl From<StoreError> for FlowStop {
    fn from(e: StoreError) -> Self {
        FlowStop::Store(e)
    }
}

/// How many times a write is sent (or looked for) before an outcome that stays unknown fails
/// the item.
const UNKNOWN_ATTEMPTS: i64 = 3;
/// Outputs read per query when a step's items are gathered for the next.
const OUTPUT_PAGE: u32 = 1_000;

/// The reference every attempt of an item's write carries to the source.
pub fn item_reference(run_id: &str, step_id: &str, idx: i64) -> String {
    written::reference(&["flow", run_id, step_id, &idx.to_string()])
}

/// What a run needs.
pub struct FlowDeps<'a> {
    /// The job's fenced store.
    pub store: &'a dyn Store,
    /// Connection runtimes (their systems, tokens, limits).
    pub runtimes: &'a Runtimes,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Waits between batches and before retries.
    pub sleeper: &'a dyn Sleeper,
}

/// What an item's attempt yielded: its outputs, and the record or event stored with its end.
struct Yielded {
    outputs: Vec<Value>,
    written: Option<(ConnId, ironbridge_core::store::WrittenRecord)>,
    event: Option<Event>,
}

impl Yielded {
    fn outputs(outputs: Vec<Value>) -> Self {
        Yielded {
            outputs,
            written: None,
            event: None,
        }
    }
}

/// One attempt's outcome.
enum Attempt {
    Done(Box<Yielded>),
    Failed(ItemError),
    /// A source failure that is not the item's: the run pauses.
    Source(ServiceError),
}

/// Works through a run until it ends (or must be tried again later).
pub async fn run_flow(deps: &FlowDeps<'_>, org: &OrgId, run_id: &str) -> Result<FlowRun, FlowStop> {
    let store = deps.store;
    let run = store.get_flow_run(org, run_id).await?;
    if run.finished_at.is_some() {
        return Ok(run);
    }
    let flow = store.get_flow(org, &run.flow_id).await?;
    let version = store
        .get_flow_version(org, &run.flow_id, run.flow_version)
        .await?;
    let compiled = serde_json::from_str::<FlowIn>(&version.document)
        .map_err(|e| e.to_string())
        .and_then(|doc| {
            core_flows::compile(&doc).map_err(|p| format!("{}: {}", p.path, p.message))
        });
    let steps: Vec<Arc<CompiledStep>> = match compiled {
        Ok(s) if !s.is_empty() => s.into_iter().map(Arc::new).collect(),
        Ok(_) | Err(_) => {
            let error = json!({"code": "INTERNAL_ERROR", "message": "The flow's document could not be read."});
            return finish(deps, &flow.key, &run, run_status::FAILED, Some(error)).await;
        }
    };
    let mut records: Option<(usize, Arc<steps::Records>)> = None;
    let mut first_batch = true;
    loop {
        let run = store.get_flow_run(org, run_id).await?;
        if run.finished_at.is_some() {
            return Ok(run);
        }
        if run.cancel_requested {
            return finish(deps, &flow.key, &run, run_status::CANCELLED, None).await;
        }
        let k = usize::try_from(run.step).unwrap_or(0).min(steps.len() - 1);
        let step = &steps[k];
        let now = deps.clock.now();
        let items = store
            .next_flow_items(run_id, run.step, now, step.batch_size())
            .await?;
        if items.is_empty() {
            if let Some(at) = store.next_flow_retry(run_id, run.step).await? {
                // Items wait for their retry: the run waits with them.
                let wait = at.micros().saturating_sub(deps.clock.now().micros()).max(0);
                deps.sleeper
                    .sleep(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
                    .await;
                continue;
            }
            if k + 1 == steps.len() {
                return finish(deps, &flow.key, &run, run_status::SUCCEEDED, None).await;
            }
            let next = match gather_outputs(store, run_id, run.step).await? {
                Ok(next) => next,
                Err(error) => {
                    return finish(deps, &flow.key, &run, run_status::FAILED, Some(error)).await;
                }
            };
            store
                .begin_flow_step(run_id, run.step + 1, &next, deps.clock.now())
                .await?;
            first_batch = true;
            continue;
        }
        if !first_batch && step.delay_ms() > 0 {
            deps.sleeper
                .sleep(Duration::from_millis(step.delay_ms()))
                .await;
            first_batch = true;
            // A cancel during the pause stops the run before its next batch.
            continue;
        }
        first_batch = false;
        let (ends, paused) = match &step.step {
            Step::Filter(_) | Step::Transform(_) => {
                let (s, batch) = (step.clone(), items.clone());
                let ends = off_thread(move || pure_batch(k, &s, &batch, now)).await;
                (
                    ends.unwrap_or_else(|| over_budget(k, step, &items, now)),
                    None,
                )
            }
            Step::Read(_) => {
                if records.as_ref().is_none_or(|(at, _)| *at != k) {
                    let loaded = steps::read_records(store, deps.runtimes, org, k, step)
                        .await
                        .map_err(FlowStop::Source)?;
                    records = Some((k, Arc::new(loaded)));
                }
                let loaded = records.as_ref().map(|(_, r)| r.clone());
                let (s, batch) = (step.clone(), items.clone());
                let ends =
                    off_thread(move || read_batch(k, &s, loaded.as_deref(), &batch, now)).await;
                (
                    ends.unwrap_or_else(|| over_budget(k, step, &items, now)),
                    None,
                )
            }
            Step::Write(w) => {
                write_batch(deps, org, &run, k, step, &w.connection_id, &items).await?
            }
            Step::Webhook(_) => {
                let (s, batch, r) = (step.clone(), items.clone(), run.clone());
                let (id, key) = (flow.id.clone(), flow.key.clone());
                let ends =
                    off_thread(move || webhook_batch(&id, &key, &r, k, &s, &batch, now)).await;
                (
                    ends.unwrap_or_else(|| over_budget(k, step, &items, now)),
                    None,
                )
            }
        };
        let stop = ends
            .iter()
            .find(|e| e.status == item_status::FAILED && step.policy.policy != OnItemError::Skip)
            .map(|e| {
                json!({
                    "code": "FLOW_ITEM_FAILED",
                    "message": format!("Step `{}` failed on item {}.", step.step.id(), e.idx),
                    "step": step.step.id(),
                    "index": e.idx,
                    "error": e.error.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()),
                })
            });
        store
            .end_flow_items(run_id, run.step, &ends, deps.clock.now())
            .await?;
        if let Some(error) = stop {
            let run = store.get_flow_run(org, run_id).await?;
            return finish(deps, &flow.key, &run, run_status::FAILED, Some(error)).await;
        }
        if let Some(e) = paused {
            // The items it left `sending` are looked for at the source on the retry.
            return Err(FlowStop::Source(e));
        }
    }
}

/// Longest a batch's jq expressions may run. An expression over a huge range would hold its
/// thread for long; past the budget the batch's items fail (under the step's policy) and the
/// thread is left to finish on its own.
const EXPRESSION_BUDGET: Duration = Duration::from_secs(30);

/// Runs `f` (a batch's expressions) on the blocking pool, so a slow expression holds no
/// thread of the runtime; `None` past [`EXPRESSION_BUDGET`].
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(EXPRESSION_BUDGET, task).await {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// The ends of a batch whose expressions ran past the budget.
fn over_budget(k: usize, step: &CompiledStep, items: &[FlowItem], now: Timestamp) -> Vec<ItemEnd> {
    let error = steps::expression_error(
        k,
        "type",
        &format!(
            "the step's expressions ran longer than {} s on this batch of items",
            EXPRESSION_BUDGET.as_secs()
        ),
    );
    items
        .iter()
        .map(|item| end_of(step, item, item.attempts + 1, Err(error.clone()), now))
        .collect()
}

/// The outputs of a step's succeeded items, in order, as the next step's items.
async fn gather_outputs(
    store: &dyn Store,
    run_id: &str,
    step: i64,
) -> Result<Result<Vec<String>, Value>, StoreError> {
    let mut out = Vec::new();
    let mut after = -1;
    loop {
        let page = store
            .flow_step_outputs(run_id, step, after, OUTPUT_PAGE)
            .await?;
        let Some(last) = page.last().map(|(i, _)| *i) else {
            return Ok(Ok(out));
        };
        for (_, output) in &page {
            let values: Vec<Value> = serde_json::from_str(output).unwrap_or_default();
            for v in values {
                if out.len() == MAX_RUN_ITEMS {
                    return Ok(Err(json!({
                        "code": "FLOW_TOO_MANY_ITEMS",
                        "message": format!("Step {} yielded more than {MAX_RUN_ITEMS} items; a run holds at most {MAX_RUN_ITEMS} per step.", step + 1),
                        "step_index": step,
                    })));
                }
                out.push(v.to_string());
            }
        }
        after = last;
    }
}

/// Ends a run with its event.
async fn finish(
    deps: &FlowDeps<'_>,
    flow_key: &str,
    run: &FlowRun,
    status: &str,
    error: Option<Value>,
) -> Result<FlowRun, FlowStop> {
    let now = deps.clock.now();
    let org = OrgId(run.org_id.clone());
    let counts = deps.store.flow_run_counts(&org, &run.id).await?;
    let steps: Vec<Value> = summarize(&counts);
    let event = Event {
        id: new_id("evt", now.micros()),
        org_id: run.org_id.clone(),
        connection_id: None,
        event_type: if status == run_status::FAILED {
            "flow.run_failed"
        } else {
            "flow.run_completed"
        }
        .into(),
        data: json!({
            "flow_id": run.flow_id,
            "flow_key": flow_key,
            "run_id": run.id,
            "status": status,
            "trigger": run.trigger,
            "input_count": run.input_count,
            "steps": steps,
            "error": error,
        })
        .to_string(),
        created_at: now,
    };
    let error_text = error.map(|e| e.to_string());
    Ok(deps
        .store
        .finish_flow_run(&run.id, status, error_text.as_deref(), &event, now)
        .await?)
}

/// Per step: items, succeeded, failed, yielded.
pub fn summarize(counts: &[ironbridge_core::store::StepCount]) -> Vec<Value> {
    let mut by_step: std::collections::BTreeMap<i64, (i64, i64, i64, i64)> = Default::default();
    for c in counts {
        let e = by_step.entry(c.step).or_default();
        e.0 += c.items;
        if c.status == item_status::SUCCEEDED {
            e.1 += c.items;
            e.3 += c.yielded;
        }
        if c.status == item_status::FAILED {
            e.2 += c.items;
        }
    }
    by_step
        .into_iter()
        .map(|(step, (items, succeeded, failed, output))| {
            json!({"step_index": step, "items": items, "succeeded": succeeded, "failed": failed, "output": output})
        })
        .collect()
}

/// An item's input as JSON (a stored item that is not JSON fails alone).
fn input_of(item: &FlowItem) -> Result<Value, ItemError> {
    serde_json::from_str(&item.input).map_err(|_| {
        json!({"code": "INTERNAL_ERROR", "type": "api_error", "message": "The item's stored input is unreadable."})
    })
}

/// The end of an attempt under the step's policy: a failure is retried while attempts
/// remain under `retry`.
fn end_of(
    step: &CompiledStep,
    item: &FlowItem,
    attempt_number: i64,
    attempt: Result<Yielded, ItemError>,
    now: Timestamp,
) -> ItemEnd {
    match attempt {
        Ok(y) => ItemEnd {
            idx: item.idx,
            status: item_status::SUCCEEDED,
            yielded: i64::try_from(y.outputs.len()).unwrap_or(i64::MAX),
            output: Some(Value::Array(y.outputs).to_string()),
            error: None,
            not_before: None,
            written: y.written,
            event: y.event,
        },
        Err(error) => {
            let policy = step.policy;
            let retry =
                policy.policy == OnItemError::Retry && attempt_number < i64::from(policy.attempts);
            let wait = policy.backoff(u32::try_from(attempt_number + 1).unwrap_or(u32::MAX));
            ItemEnd {
                idx: item.idx,
                status: if retry {
                    item_status::PENDING
                } else {
                    item_status::FAILED
                },
                output: None,
                yielded: 0,
                error: Some(error.to_string()),
                not_before: retry.then(|| {
                    Timestamp(now.micros() + i64::try_from(wait * 1000).unwrap_or(i64::MAX / 2))
                }),
                written: None,
                event: None,
            }
        }
    }
}

fn pure_batch(k: usize, step: &CompiledStep, items: &[FlowItem], now: Timestamp) -> Vec<ItemEnd> {
    items
        .iter()
        .map(|item| {
            let attempt = input_of(item)
                .and_then(|input| steps::pure(k, step, &input))
                .map(Yielded::outputs);
            end_of(step, item, item.attempts + 1, attempt, now)
        })
        .collect()
}

fn read_batch(
    k: usize,
    step: &CompiledStep,
    records: Option<&Result<Vec<Value>, ItemError>>,
    items: &[FlowItem],
    now: Timestamp,
) -> Vec<ItemEnd> {
    items
        .iter()
        .map(|item| {
            let attempt = match records {
                Some(Ok(records)) => input_of(item)
                    .and_then(|input| steps::read(k, step, records, &input))
                    .map(Yielded::outputs),
                Some(Err(e)) => Err(e.clone()),
                None => Err(steps::gone(k, "the records could not be read".into())),
            };
            end_of(step, item, item.attempts + 1, attempt, now)
        })
        .collect()
}

fn webhook_batch(
    flow_id: &str,
    flow_key: &str,
    run: &FlowRun,
    k: usize,
    step: &CompiledStep,
    items: &[FlowItem],
    now: Timestamp,
) -> Vec<ItemEnd> {
    let Step::Webhook(hook) = &step.step else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let attempt = input_of(item).and_then(|input| {
                let payload = steps::webhook_payload(k, step, &input)?;
                let event = Event {
                    id: new_id("evt", now.micros()),
                    org_id: run.org_id.clone(),
                    connection_id: None,
                    event_type: "flow.event".into(),
                    data: json!({
                        "name": hook.name,
                        "flow_id": flow_id,
                        "flow_key": flow_key,
                        "run_id": run.id,
                        "step": hook.id,
                        "index": item.idx,
                        "payload": payload,
                    })
                    .to_string(),
                    created_at: now,
                };
                Ok(Yielded {
                    outputs: vec![input],
                    written: None,
                    event: Some(event),
                })
            });
            end_of(step, item, item.attempts + 1, attempt, now)
        })
        .collect()
}

/// Writes a batch of items, each at once within the connection's limits. Returns the ends,
/// and the source failure that pauses the run if one did (the items it caught are left
/// `sending`, looked for at the source on the retry).
async fn write_batch(
    deps: &FlowDeps<'_>,
    org: &OrgId,
    run: &FlowRun,
    k: usize,
    step: &CompiledStep,
    connection_id: &str,
    items: &[FlowItem],
) -> Result<(Vec<ItemEnd>, Option<ServiceError>), FlowStop> {
    let store = deps.store;
    let now = deps.clock.now();
    let conn = ConnId(connection_id.to_string());
    let connection = match store.get_connection(org, &conn).await {
        Ok(c) if c.status != "disconnected" => Some(c),
        Ok(_) | Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let (Some(connection), Some(entity)) = (connection, step.entity) else {
        let error = steps::gone(
            k,
            format!("no live connection {connection_id} in this organization"),
        );
        let ends = items
            .iter()
            .map(|item| end_of(step, item, item.attempts + 1, Err(error.clone()), now))
            .collect();
        return Ok((ends, None));
    };
    let runtime = deps.runtimes.get(&connection).map_err(FlowStop::Source)?;
    let view = field_mappings::view::load(store, runtime.system(), &connection)
        .await
        .map_err(FlowStop::Source)?;
    let idxs: Vec<i64> = items.iter().map(|i| i.idx).collect();
    // Durably "sent" before anything is sent: after a crash the outcome is unknown, never
    // forgotten (`attempts` counts this marking).
    store
        .mark_flow_items_sending(&run.id, run.step, &idxs, now)
        .await?;
    let parallel = runtime.connector().read_concurrency().max(1);
    let view = view.as_ref();
    let runtime: &Arc<ConnectionRuntime> = &runtime;
    let sends: Vec<Pin<Box<dyn Future<Output = Attempt> + Send + '_>>> = items
        .iter()
        .map(|item| {
            Box::pin(write_item(
                deps, runtime, &conn, entity, run, k, step, item, view,
            )) as Pin<Box<dyn Future<Output = Attempt> + Send + '_>>
        })
        .collect();
    let attempts: Vec<Attempt> = futures_util::stream::iter(sends)
        .buffered(parallel)
        .collect()
        .await;
    let mut ends = Vec::with_capacity(items.len());
    let mut paused = None;
    for (item, attempt) in items.iter().zip(attempts) {
        match attempt {
            Attempt::Done(y) => ends.push(end_of(step, item, item.attempts + 1, Ok(*y), now)),
            Attempt::Failed(e) => ends.push(end_of(step, item, item.attempts + 1, Err(e), now)),
            Attempt::Source(e) => paused = Some(e),
        }
    }
    Ok((ends, paused))
}

#[allow(clippy::too_many_arguments)]
async fn write_item(
    deps: &FlowDeps<'_>,
    runtime: &ConnectionRuntime,
    conn: &ConnId,
    entity: ironbridge_model::Entity,
    run: &FlowRun,
    k: usize,
    step: &CompiledStep,
    item: &FlowItem,
    view: Option<&ConnectionView>,
) -> Attempt {
    let input = match input_of(item) {
        Ok(i) => i,
        Err(e) => return Attempt::Failed(e),
    };
    let (id, body) = match steps::write_input(k, step, &input) {
        Ok(x) => x,
        Err(e) => return Attempt::Failed(e),
    };
    let reference = item_reference(&run.id, step.step.id(), item.idx);
    // Sent before and not ended: that attempt may have reached the source.
    let reconcile = item.status == item_status::SENDING;
    let answered = write::apply(
        deps.store,
        runtime,
        conn,
        entity,
        steps::action(&id),
        &body,
        Some(&reference),
        reconcile,
        view,
    )
    .await;
    let answered = match answered {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Attempt::Failed(
                json!({"code": "NOT_FOUND", "type": "not_found_error", "message": format!("No such {}.", entity.spec().label), "param": format!("steps[{k}].record_id")}),
            );
        }
        Err(e) => {
            return match refusal::of(&e) {
                Some(r) => Attempt::Failed(r.to_json()),
                None => match e {
                    ServiceError::Corrupt(_) | ServiceError::Crypto(_) => {
                        tracing::error!(run = %run.id, index = item.idx, error = %e, "flow write failed");
                        Attempt::Failed(
                            json!({"code": "INTERNAL_ERROR", "type": "api_error", "message": "An unexpected error occurred."}),
                        )
                    }
                    ServiceError::Connector(ConnectorError::OutcomeUnknown(_))
                        if item.attempts + 1 >= UNKNOWN_ATTEMPTS =>
                    {
                        tracing::warn!(run = %run.id, index = item.idx, error = %e, "flow write's outcome stays unknown");
                        Attempt::Failed(
                            json!({"code": "OUTCOME_UNKNOWN", "type": "source_system_error", "message": "The source system did not answer this write, which it may or may not have applied, and it could not be found there by its reference.", "details": {"reason": "outcome_unknown"}}),
                        )
                    }
                    other => Attempt::Source(other),
                },
            };
        }
    };
    let now = deps.clock.now();
    match written::prepare(
        &conn.0,
        runtime.system(),
        entity,
        &answered.raw,
        answered.created_at.unwrap_or(now),
        now,
        view,
    ) {
        Ok((record, rendered)) => Attempt::Done(Box::new(Yielded {
            outputs: vec![rendered],
            written: written::keeps_writes(runtime.system()).then(|| (conn.clone(), record)),
            event: None,
        })),
        Err(e) => {
            tracing::error!(run = %run.id, index = item.idx, error = %e, "a record a flow wrote could not be mapped");
            Attempt::Failed(
                json!({"code": "INTERNAL_ERROR", "type": "api_error", "message": "The record was written but could not be read back; it arrives with the next sync."}),
            )
        }
    }
}

/// Whether a source failure stops the run for good (its credentials are refused: nothing
/// goes through until the customer reconnects).
pub fn is_final(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Connector(ConnectorError::Unauthorized))
}

/// Ends a run that cannot go on (a connection's credentials refused, attempts exhausted).
pub async fn fail_run(deps: &FlowDeps<'_>, org: &OrgId, run_id: &str, message: &str) {
    let ended = async {
        let run = deps.store.get_flow_run(org, run_id).await?;
        if run.finished_at.is_some() {
            return Ok::<_, FlowStop>(());
        }
        let key = deps
            .store
            .get_flow(org, &run.flow_id)
            .await
            .map(|f| f.key)
            .unwrap_or_default();
        let error = json!({"code": "FLOW_RUN_STOPPED", "message": message});
        finish(deps, &key, &run, run_status::FAILED, Some(error)).await?;
        Ok(())
    };
    if let Err(e) = ended.await {
        tracing::warn!(run = %run_id, error = ?e, "could not end a flow run");
    }
}
