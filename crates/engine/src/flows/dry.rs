//! Dry runs: a flow's steps over a handful of items, reads and jq for real, nothing written
//! and nothing sent. A write step checks each item as the write path would (fields,
//! references, the connection's overrides) and shows the fields it would send; a webhook
//! step shows the event's data. Nothing is stored.

use std::sync::Arc;

use ironbridge_core::field_mappings;
use ironbridge_core::flows::{self as core_flows, CompiledStep, entity_named};
use ironbridge_core::read::{render_change, render_record};
use ironbridge_core::refusal;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{
    ChangePosition, ChangeQuery, ConnId, Flow, OrgId, RecordQuery, Store, StoreError,
};
use ironbridge_core::write;
use ironbridge_model::flows::{
    DryRunItemOut, DryRunStepOut, FlowDryRunOut, FlowIn, MAX_RUN_ITEMS, Step, Trigger,
};
use serde_json::{Value, json};

use super::run::off_thread;
use super::steps::{self, ItemError};

/// Items a dry run takes from the trigger when none are given.
const DEFAULT_ITEMS: u32 = 20;
/// Items shown per step.
const SAMPLES: usize = 20;

/// The items a trigger would give a run now: the changes past the flow's position (or the
/// entity's first records if none wait), the newest matching event, or one item.
async fn default_items(
    store: &dyn Store,
    runtimes: &Runtimes,
    org: &OrgId,
    doc: &FlowIn,
    flow: Option<&Flow>,
    now: ironbridge_model::Timestamp,
) -> Result<Vec<Value>, ServiceError> {
    match &doc.trigger {
        Trigger::RecordChanges(t) => {
            let Some(entity) = entity_named(&t.entity) else {
                return Ok(Vec::new());
            };
            let conn = ConnId(t.connection_id.clone());
            let connection = store.get_connection(org, &conn).await?;
            let view = match runtimes.registry().get(&connection.system) {
                Some(system) => field_mappings::view::load(store, system, &connection).await?,
                None => None,
            };
            let from = flow
                .and_then(|f| f.feed.clone())
                .unwrap_or_else(ChangePosition::start);
            let waiting = if flow.is_some() {
                store
                    .list_changes(
                        &conn,
                        &ChangeQuery {
                            entity: Some(entity),
                            after: from.clone(),
                            include_raw: view.is_some(),
                            limit: DEFAULT_ITEMS,
                        },
                    )
                    .await?
            } else {
                Vec::new()
            };
            let mut items = Vec::new();
            for change in waiting {
                let text = render_change(&conn.0, change, &from, view.as_ref(), false)?;
                let mut v: Value = serde_json::from_str(&text)
                    .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
                v["connection_id"] = json!(conn.0);
                items.push(v);
            }
            if items.is_empty() {
                let rows = store
                    .list_records(
                        &conn,
                        &RecordQuery {
                            entity,
                            after_id: None,
                            after_modified: None,
                            modified_after: None,
                            modified_before: None,
                            include_deleted: false,
                            include_raw: view.is_some(),
                            limit: DEFAULT_ITEMS,
                        },
                    )
                    .await?;
                for row in rows {
                    let id = row.id.clone();
                    let text = render_record(&conn.0, entity, row, view.as_ref())?;
                    let record: Value = serde_json::from_str(&text)
                        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
                    items.push(json!({"seq": 0, "change": "updated", "entity": entity.as_str(), "id": id, "record": record, "tombstone": null, "connection_id": conn.0}));
                }
            }
            Ok(items)
        }
        Trigger::Event(t) => {
            let mut newest = None;
            let mut after: Option<String> = None;
            for _ in 0..20 {
                let page = store
                    .list_events(
                        org,
                        after.as_deref(),
                        t.connection_id.as_deref(),
                        None,
                        1000,
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                if let Some(e) = page
                    .iter()
                    .rev()
                    .find(|e| t.event_types.contains(&e.event_type))
                {
                    newest = Some(e.clone());
                }
            }
            Ok(newest
                .map(|e| {
                    vec![json!({
                        "id": e.id,
                        "type": e.event_type,
                        "connection_id": e.connection_id,
                        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
                        "created_at": e.created_at,
                    })]
                })
                .unwrap_or_default())
        }
        Trigger::Schedule(_) => Ok(vec![json!({"scheduled_at": now, "started_at": now})]),
        Trigger::Manual => Ok(vec![json!({})]),
    }
}

/// Runs `doc`'s steps over `items` (or the trigger's) without writing or sending anything.
pub async fn dry_run(
    store: &dyn Store,
    runtimes: &Runtimes,
    org: &OrgId,
    doc: &FlowIn,
    flow: Option<&Flow>,
    items: Option<Vec<Value>>,
    now: ironbridge_model::Timestamp,
) -> Result<FlowDryRunOut, ServiceError> {
    let compiled = core_flows::compile(doc).map_err(|p| ServiceError::Invalid {
        param: p.path,
        message: p.message,
    })?;
    let mut items = match items {
        Some(items) => items,
        None => default_items(store, runtimes, org, doc, flow, now).await?,
    };
    let input_count = items.len();
    let flow_ids = (flow.map(|f| f.id.clone()), flow.map(|f| f.key.clone()));
    let mut out = Vec::with_capacity(compiled.len());
    for (k, step) in compiled.into_iter().enumerate() {
        let step = Arc::new(step);
        let results: Vec<Result<Vec<Value>, ItemError>> = match &step.step {
            Step::Write(_) => {
                let mut results = Vec::with_capacity(items.len());
                for item in &items {
                    results.push(dry_write(store, runtimes, org, k, &step, item).await?);
                }
                results
            }
            _ => {
                let records = match &step.step {
                    Step::Read(_) => {
                        Some(steps::read_records(store, runtimes, org, k, &step).await?)
                    }
                    _ => None,
                };
                let (s, batch, ids) = (step.clone(), items.clone(), flow_ids.clone());
                off_thread(move || {
                    batch
                        .iter()
                        .map(|item| dry_item(k, &s, records.as_ref(), item, &ids))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_else(|| {
                    let error = steps::expression_error(
                        k,
                        "type",
                        "the step's expressions ran too long on these items",
                    );
                    items.iter().map(|_| Err(error.clone())).collect()
                })
            }
        };
        let mut next = Vec::new();
        let mut samples = Vec::new();
        let mut failed = 0;
        for (item, result) in items.iter().zip(results) {
            match &result {
                Ok(values) if step_passes(&step.step) => next.extend(values.iter().cloned()),
                Ok(_) => next.push(item.clone()),
                Err(_) => failed += 1,
            }
            if samples.len() < SAMPLES {
                let (output, error) = match result {
                    Ok(v) => (v, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                samples.push(DryRunItemOut {
                    input: item.clone(),
                    output,
                    error,
                });
            }
        }
        next.truncate(MAX_RUN_ITEMS);
        out.push(DryRunStepOut {
            id: step.step.id().to_string(),
            kind: step.step.kind().to_string(),
            items_in: items.len(),
            items_out: next.len(),
            failed,
            samples,
        });
        items = next;
    }
    Ok(FlowDryRunOut {
        input_count,
        steps: out,
    })
}

/// Whether what a step shows for an item is also what it passes on (a write passes on the
/// record it would write, which a dry run does not have: the fields stand for it).
fn step_passes(step: &Step) -> bool {
    !matches!(step, Step::Webhook(_))
}

/// What a filter, transform, read or webhook step makes of one item.
fn dry_item(
    k: usize,
    step: &CompiledStep,
    records: Option<&Result<Vec<Value>, ItemError>>,
    item: &Value,
    (flow_id, flow_key): &(Option<String>, Option<String>),
) -> Result<Vec<Value>, ItemError> {
    match &step.step {
        Step::Filter(_) | Step::Transform(_) => steps::pure(k, step, item),
        Step::Read(_) => match records {
            Some(Ok(r)) => steps::read(k, step, r, item),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(Vec::new()),
        },
        Step::Webhook(hook) => steps::webhook_payload(k, step, item).map(|payload| {
            vec![json!({
                "name": hook.name,
                "flow_id": flow_id,
                "flow_key": flow_key,
                "run_id": null,
                "step": hook.id,
                "index": 0,
                "payload": payload,
            })]
        }),
        Step::Write(_) => Ok(Vec::new()),
    }
}

/// What a write step would send for one item, checked as the write path checks it.
async fn dry_write(
    store: &dyn Store,
    runtimes: &Runtimes,
    org: &OrgId,
    k: usize,
    step: &CompiledStep,
    item: &Value,
) -> Result<Result<Vec<Value>, ItemError>, ServiceError> {
    let Step::Write(w) = &step.step else {
        return Ok(Ok(Vec::new()));
    };
    let (id, body) = match steps::write_input(k, step, item) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let conn = ConnId(w.connection_id.clone());
    let connection = match store.get_connection(org, &conn).await {
        Ok(c) if c.status != "disconnected" => c,
        Ok(_) | Err(StoreError::NotFound) => {
            return Ok(Err(steps::gone(
                k,
                format!(
                    "no live connection {} in this organization",
                    w.connection_id
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(system) = runtimes.registry().get(&connection.system) else {
        return Ok(Err(steps::gone(
            k,
            "the connection's system is unknown".into(),
        )));
    };
    let Some(entity) = step.entity else {
        return Ok(Ok(Vec::new()));
    };
    let view = field_mappings::view::load(store, system, &connection).await?;
    Ok(
        match write::check(
            store,
            system,
            &conn,
            entity,
            steps::action(&id),
            &body,
            view.as_ref(),
        )
        .await
        {
            Ok(Some(fields)) => Ok(vec![Value::Object(fields)]),
            Ok(None) => Err(
                json!({"code": "NOT_FOUND", "type": "not_found_error", "message": format!("No such {}.", entity.spec().label), "param": format!("steps[{k}].record_id")}),
            ),
            Err(e) => match refusal::of(&e) {
                Some(r) => Err(r.to_json()),
                None => return Err(e),
            },
        },
    )
}
