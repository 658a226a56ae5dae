//! Flows as the API changes them: a document saved (checked whole, each change a new
//! version; saving the same document again changes nothing), a manual run started, a run
//! shown with its steps' counts.

use ironbridge_core::Clock;
use ironbridge_core::flows::{self as core_flows, Problem, cron::Schedule, new_run, trigger_type};
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{Flow, FlowRun, OrgId, RunStart, Store, StoreError, item_status};
use ironbridge_core::system::Registry;
use ironbridge_model::Timestamp;
use ironbridge_model::flows::{FlowIn, FlowOut, FlowRunOut, FlowRunStepOut, Trigger};
use serde_json::Value;

/// Why a flow could not be saved or run.
#[derive(Debug)]
pub enum FlowError {
    /// The document is invalid: every problem with its path.
    Invalid(Vec<Problem>),
    /// Storage refused or failed (`NotFound`, `Conflict`, ...).
    Store(StoreError),
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        FlowError::Store(e)
    }
}

/// The API's view of a stored flow.
pub fn flow_out(flow: &Flow) -> Result<FlowOut, StoreError> {
    let doc: FlowIn = serde_json::from_str(&flow.document)
        .map_err(|_| StoreError::Internal("a stored flow is unreadable".into()))?;
    Ok(FlowOut {
        id: flow.id.clone(),
        key: doc.key,
        name: doc.name,
        description: doc.description,
        enabled: flow.enabled,
        version: flow.version,
        trigger: doc.trigger,
        steps: doc.steps,
        created_at: flow.created_at,
        updated_at: flow.updated_at,
    })
}

/// Where a change feed trigger starts, and whether it starts at the feed's end.
fn feed_start(doc: &FlowIn) -> bool {
    match &doc.trigger {
        Trigger::RecordChanges(t) => !t.from_beginning.unwrap_or(false),
        _ => false,
    }
}

fn next_run(doc: &FlowIn, now: Timestamp) -> Option<Timestamp> {
    match &doc.trigger {
        Trigger::Schedule(s) => Schedule::parse(&s.cron, s.timezone.as_deref())
            .ok()
            .and_then(|sched| sched.next_after(now)),
        _ => None,
    }
}

fn trigger_connection(doc: &FlowIn) -> Option<String> {
    match &doc.trigger {
        Trigger::RecordChanges(t) => Some(t.connection_id.clone()),
        Trigger::Event(t) => t.connection_id.clone(),
        _ => None,
    }
}

/// Whether a new document's trigger is another than the old one's (so its position starts
/// again): another type, connection, entity, or schedule.
fn trigger_moved(old: &FlowIn, new: &FlowIn) -> bool {
    match (&old.trigger, &new.trigger) {
        (Trigger::RecordChanges(a), Trigger::RecordChanges(b)) => {
            a.connection_id != b.connection_id
                || core_flows::entity_named(&a.entity) != core_flows::entity_named(&b.entity)
        }
        (Trigger::Schedule(a), Trigger::Schedule(b)) => {
            a.cron != b.cron || a.timezone != b.timezone
        }
        (Trigger::Event(_), Trigger::Event(_)) | (Trigger::Manual, Trigger::Manual) => false,
        _ => true,
    }
}

/// Reads and checks a document (shape, expressions, and the connections it names).
pub async fn check(
    store: &dyn Store,
    registry: &Registry,
    org: &OrgId,
    document: &Value,
) -> Result<FlowIn, FlowError> {
    let doc = core_flows::parse(document).map_err(FlowError::Invalid)?;
    let problems = core_flows::check_connections(store, registry, org, &doc).await?;
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(FlowError::Invalid(problems))
    }
}

/// Saves a document: a new flow, or the next version of the flow `existing` (by id or key)
/// names. `path_key`: the key a `PUT /v1/flows/{key}` names, which the document must carry.
/// Returns the flow and whether it was created.
pub async fn save(
    store: &dyn Store,
    registry: &Registry,
    clock: &dyn Clock,
    org: &OrgId,
    document: &Value,
    existing: Option<&str>,
) -> Result<(Flow, bool), FlowError> {
    let doc = check(store, registry, org, document).await?;
    let current = match existing {
        Some(id_or_key) => match store.get_flow(org, id_or_key).await {
            Ok(f) => Some(f),
            Err(StoreError::NotFound) if !id_or_key.starts_with("flw_") => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(path) = existing
        && !path.starts_with("flw_")
        && path != doc.key
    {
        return Err(FlowError::Invalid(vec![Problem {
            path: "key".into(),
            message: format!("the document's key must be `{path}`, the key its path names"),
        }]));
    }
    let now = clock.now();
    let text = serde_json::to_string(&doc).map_err(|e| StoreError::Internal(Box::new(e)))?;
    let enabled = doc.enabled.unwrap_or(true);
    let Some(current) = current else {
        let flow = Flow {
            id: new_id("flw", now.micros()),
            org_id: org.0.clone(),
            key: doc.key.clone(),
            version: 1,
            document: text,
            enabled,
            trigger_type: trigger_type(&doc.trigger).into(),
            trigger_connection_id: trigger_connection(&doc),
            feed: None,
            next_run_at: next_run(&doc, now),
            active_run_id: None,
            created_at: now,
            updated_at: now,
        };
        store.create_flow(&flow, feed_start(&doc)).await?;
        return Ok((flow, true));
    };
    let old: FlowIn = serde_json::from_str(&current.document)
        .map_err(|_| StoreError::Internal("a stored flow is unreadable".into()))?;
    // The same document again (a repository applied twice) is no change.
    let unchanged = serde_json::to_value(&old).ok() == serde_json::to_value(&doc).ok();
    if unchanged {
        return Ok((current, false));
    }
    if old.key != doc.key {
        return Err(FlowError::Invalid(vec![Problem {
            path: "key".into(),
            message: format!("a flow's key does not change (it is `{}`)", old.key),
        }]));
    }
    let restarted = enabled && !current.enabled && matches!(doc.trigger, Trigger::Schedule(_));
    let reset = (trigger_moved(&old, &doc) || restarted).then(|| feed_start(&doc));
    let flow = Flow {
        version: current.version + 1,
        document: text,
        enabled,
        trigger_type: trigger_type(&doc.trigger).into(),
        trigger_connection_id: trigger_connection(&doc),
        feed: None,
        next_run_at: next_run(&doc, now),
        updated_at: now,
        ..current
    };
    store.update_flow(&flow, reset).await?;
    Ok((store.get_flow(org, &flow.id).await?, false))
}

/// Starts a manual run with `items` (one empty object when none are given).
pub async fn start_manual(
    store: &dyn Store,
    clock: &dyn Clock,
    org: &OrgId,
    flow_id_or_key: &str,
    items: Option<Vec<Value>>,
) -> Result<FlowRun, StoreError> {
    let flow = store.get_flow(org, flow_id_or_key).await?;
    let items = items.unwrap_or_else(|| vec![Value::Object(Default::default())]);
    let inputs: Vec<String> = items.iter().map(Value::to_string).collect();
    let now = clock.now();
    let (run, job) = new_run(&org.0, &flow.id, flow.version, "manual", inputs.len(), now);
    if !store
        .create_flow_run(&run, &inputs, &job, &RunStart::Manual)
        .await?
    {
        return Err(StoreError::NotFound);
    }
    Ok(run)
}

/// The API's view of a run: its steps (from the version it runs) with their counts.
pub async fn run_out(
    store: &dyn Store,
    org: &OrgId,
    run: FlowRun,
) -> Result<FlowRunOut, StoreError> {
    let version = store
        .get_flow_version(org, &run.flow_id, run.flow_version)
        .await?;
    let doc: FlowIn = serde_json::from_str(&version.document)
        .map_err(|_| StoreError::Internal("a stored flow is unreadable".into()))?;
    let counts = store.flow_run_counts(org, &run.id).await?;
    let steps = doc
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            let of = |status: Option<&str>| {
                counts
                    .iter()
                    .filter(|c| c.step == i && status.is_none_or(|s| c.status == s))
                    .fold((0, 0), |(n, y), c| (n + c.items, y + c.yielded))
            };
            let (items, _) = of(None);
            let (succeeded, output) = of(Some(item_status::SUCCEEDED));
            let (failed, _) = of(Some(item_status::FAILED));
            let status = if i < run.step || (i == run.step && run.finished_at.is_some()) {
                "done"
            } else if i == run.step {
                "running"
            } else {
                "pending"
            };
            FlowRunStepOut {
                id: step.id().to_string(),
                kind: step.kind().to_string(),
                status: status.into(),
                items,
                succeeded,
                failed,
                output,
            }
        })
        .collect();
    Ok(FlowRunOut {
        id: run.id,
        flow_id: run.flow_id,
        flow_version: run.flow_version,
        trigger: run.trigger,
        status: run.status,
        input_count: run.input_count,
        steps,
        error: run.error.and_then(|e| serde_json::from_str(&e).ok()),
        cancel_requested: run.cancel_requested,
        created_at: run.created_at,
        updated_at: run.updated_at,
        finished_at: run.finished_at,
    })
}
