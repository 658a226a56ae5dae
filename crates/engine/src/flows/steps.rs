//! What each kind of step does with one item, shared by runs and dry runs: filters and
//! transforms run jq, reads match stored records, writes shape the fields the unified write
//! path takes, webhooks make a `flow.event`'s data. Failures are the API's error objects.

use ironbridge_core::field_mappings;
use ironbridge_core::flows::CompiledStep;
use ironbridge_core::read::render_record;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{ConnId, OrgId, RecordQuery, Store, StoreError};
use ironbridge_core::write::WriteAction;
use ironbridge_model::flows::{MAX_OUTPUTS_PER_ITEM, Step, WriteAction as DocWriteAction};
use serde_json::{Map, Value, json};

/// An item's failure, as the API would answer it.
pub type ItemError = Value;

/// The records a read step scans (rendered), or why they could not be read.
pub type Records = Result<Vec<Value>, ItemError>;

/// A step's expression failed on an item.
pub fn expression_error(step: usize, field: &str, message: &str) -> ItemError {
    json!({
        "code": "VALIDATION_ERROR",
        "type": "invalid_request_error",
        "message": message,
        "param": format!("steps[{step}].{field}"),
    })
}

/// Something the flow names is gone (a connection disconnected or deleted).
pub fn gone(step: usize, message: String) -> ItemError {
    json!({
        "code": "NOT_FOUND",
        "type": "not_found_error",
        "message": message,
        "param": format!("steps[{step}].connection_id"),
    })
}

/// A filter's or a transform's outputs for one item.
pub fn pure(index: usize, step: &CompiledStep, item: &Value) -> Result<Vec<Value>, ItemError> {
    let Some(program) = &step.main else {
        return Ok(vec![item.clone()]);
    };
    match &step.step {
        Step::Filter(_) => program
            .test(item, &[item])
            .map(|keep| if keep { vec![item.clone()] } else { Vec::new() })
            .map_err(|e| expression_error(index, "condition", &e)),
        _ => program
            .run(item, &[item], MAX_OUTPUTS_PER_ITEM)
            .map_err(|e| expression_error(index, "jq", &e)),
    }
}

/// The records a read step scans, rendered as the API renders them (the connection's
/// overrides applied): loaded once per step and attempt.
pub async fn read_records(
    store: &dyn Store,
    runtimes: &Runtimes,
    org: &OrgId,
    index: usize,
    step: &CompiledStep,
) -> Result<Result<Vec<Value>, ItemError>, ServiceError> {
    let Step::Read(read) = &step.step else {
        return Ok(Ok(Vec::new()));
    };
    let Some(entity) = step.entity else {
        return Ok(Ok(Vec::new()));
    };
    let conn = ConnId(read.connection_id.clone());
    let connection = match store.get_connection(org, &conn).await {
        Ok(c) if c.status != "disconnected" => c,
        Ok(_) | Err(StoreError::NotFound) => {
            return Ok(Err(gone(
                index,
                format!(
                    "no live connection {} in this organization",
                    read.connection_id
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let view = match runtimes.registry().get(&connection.system) {
        Some(system) => field_mappings::view::load(store, system, &connection).await?,
        None => None,
    };
    let rows = store
        .list_records(
            &conn,
            &RecordQuery {
                entity,
                after_id: None,
                after_modified: None,
                modified_after: None,
                modified_before: None,
                include_deleted: read.include_deleted.unwrap_or(false),
                include_raw: view.is_some(),
                limit: step.read_limit(),
            },
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text = render_record(&conn.0, entity, row, view.as_ref())?;
        out.push(serde_json::from_str(&text).map_err(|e| ServiceError::Corrupt(e.to_string()))?);
    }
    Ok(Ok(out))
}

/// A read step's outputs for one item: the records its `where` matches, attached under
/// `into` or as the items.
pub fn read(
    index: usize,
    step: &CompiledStep,
    records: &[Value],
    item: &Value,
) -> Result<Vec<Value>, ItemError> {
    let Step::Read(read) = &step.step else {
        return Ok(vec![item.clone()]);
    };
    let mut matched = Vec::new();
    for record in records {
        let keep = match &step.main {
            Some(w) => w
                .test(record, &[item, record])
                .map_err(|e| expression_error(index, "where", &e))?,
            None => true,
        };
        if keep {
            matched.push(record.clone());
        }
    }
    match &read.into {
        Some(key) => {
            let Value::Object(mut object) = item.clone() else {
                return Err(expression_error(
                    index,
                    "into",
                    "`into` attaches records to an item that is a JSON object; this item is not",
                ));
            };
            object.insert(key.clone(), Value::Array(matched));
            Ok(vec![Value::Object(object)])
        }
        None => Ok(matched),
    }
}

/// What a write step writes for one item: the action (an update's record id) and the fields.
pub fn write_input(
    index: usize,
    step: &CompiledStep,
    item: &Value,
) -> Result<(Option<String>, Map<String, Value>), ItemError> {
    let Step::Write(write) = &step.step else {
        return Err(expression_error(index, "type", "not a write step"));
    };
    let body = match &step.main {
        Some(p) => p
            .run_first(item, &[item])
            .map_err(|e| expression_error(index, "data", &e))?
            .unwrap_or(Value::Null),
        None => item.clone(),
    };
    let Value::Object(body) = body else {
        return Err(expression_error(
            index,
            if write.data.is_some() { "data" } else { "type" },
            "the fields to write must be a JSON object (shape the item with a transform step or `data`)",
        ));
    };
    let id = match (write.action.unwrap_or_default(), &step.record_id) {
        (DocWriteAction::Update, Some(p)) => match p.run_first(item, &[item]) {
            Ok(Some(Value::String(id))) => Some(id),
            Ok(_) => {
                return Err(expression_error(
                    index,
                    "record_id",
                    "`record_id` must yield the id of the record to update, a string",
                ));
            }
            Err(e) => return Err(expression_error(index, "record_id", &e)),
        },
        _ => None,
    };
    Ok((id, body))
}

/// The write action of a step's item.
pub fn action(id: &Option<String>) -> WriteAction<'_> {
    match id {
        Some(id) => WriteAction::Update { id },
        None => WriteAction::Create,
    }
}

/// A webhook step's `data.payload` for one item.
pub fn webhook_payload(
    index: usize,
    step: &CompiledStep,
    item: &Value,
) -> Result<Value, ItemError> {
    match &step.main {
        Some(p) => p
            .run_first(item, &[item])
            .map_err(|e| expression_error(index, "data", &e))
            .map(|v| v.unwrap_or(Value::Null)),
        None => Ok(item.clone()),
    }
}
