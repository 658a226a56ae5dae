//! Flow documents: read from JSON with every problem named by its path in the document
//! (`steps[2].jq`), checked against the organization's connections and their systems, and
//! compiled (jq expressions, cron schedule) for the engine that runs them.

pub mod cron;

use ironbridge_model::flows::{
    DEFAULT_BATCH_SIZE, DEFAULT_CHANGES_PER_RUN, DEFAULT_READ_LIMIT, ErrorPolicy, FlowIn,
    MAX_BATCH_SIZE, MAX_DELAY_MS, MAX_ITEM_ATTEMPTS, MAX_READ_LIMIT, MAX_STEPS, OnItemError, Step,
    Trigger, WriteAction,
};
use ironbridge_model::webhooks::{is_event_type, is_record_event_type};
use ironbridge_model::{Entity, Storage};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ids::new_id;
use crate::jq::Program;
use crate::store::{ConnId, FlowRun, NewJob, OrgId, Store, StoreError, run_status};
use crate::system::{Registry, WriteOp};
use ironbridge_model::Timestamp;

/// One thing wrong with a document, at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `trigger.cron`, `steps[1].jq` (empty: the document itself).
    pub path: String,
    /// What is wrong, safe to show.
    pub message: String,
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

/// The entity a document names, by name (`purchase_order`) or path (`purchase-orders`);
/// only entities kept as records.
pub fn entity_named(name: &str) -> Option<Entity> {
    Entity::parse(name)
        .or_else(|| {
            Entity::ALL
                .iter()
                .copied()
                .find(|e| e.spec().plural.replace('_', "-") == name || e.spec().plural == name)
        })
        .filter(|e| e.spec().storage == Storage::Records)
}

/// Joins a path and a serde path (`steps[0]` + `on_error.policy`).
fn join(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty() || inner == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => inner.to_string(),
        (false, false) if inner.starts_with('[') => format!("{prefix}{inner}"),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

/// Reads `value` as `T`, a problem naming the path inside it otherwise.
fn typed<T: DeserializeOwned>(value: &Value, at: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde's "at line 1 column 2" means nothing for a value.
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        // A field unknown or missing is named at its own path, not its object's.
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let path = join(at, &inner);
        let path = match &field {
            Some(f) if !path.ends_with(f.as_str()) => join(&path, f),
            _ => path,
        };
        // As every other body names a missing field.
        let message = match (&field, message.starts_with("missing field")) {
            (Some(_), true) => format!("`{path}` is required."),
            _ => message,
        };
        problem(path, message)
    })
}

/// The tagged member `type` of an object, or a problem.
fn tag<'a>(value: &'a Value, at: &str, known: &[&str]) -> Result<&'a str, Problem> {
    let Some(object) = value.as_object() else {
        return Err(problem(at, "must be an object"));
    };
    match object.get("type").and_then(Value::as_str) {
        Some(t) if known.contains(&t) => Ok(t),
        Some(t) => Err(problem(
            join(at, "type"),
            format!("`{t}` is not one of: {}", known.join(", ")),
        )),
        None => Err(problem(
            join(at, "type"),
            format!("missing; one of: {}", known.join(", ")),
        )),
    }
}

const TRIGGER_TYPES: &[&str] = &["record_changes", "event", "schedule", "manual"];
const STEP_TYPES: &[&str] = &["filter", "transform", "read", "write", "webhook"];

/// Reads a flow document, collecting every problem with its path.
pub fn parse(value: &Value) -> Result<FlowIn, Vec<Problem>> {
    let Some(object) = value.as_object() else {
        return Err(vec![problem("", "a flow document must be a JSON object")]);
    };
    let mut problems = Vec::new();
    // The parts are read one by one, so each problem names where it is.
    let trigger = object
        .get("trigger")
        .map(|t| tagged_variant_trigger(t).map_err(|p| problems.push(p)).ok())
        .unwrap_or_else(|| {
            problems.push(problem("trigger", "`trigger` is required."));
            None
        });
    let mut steps = Vec::new();
    match object.get("steps") {
        Some(Value::Array(items)) => {
            for (i, s) in items.iter().enumerate() {
                match tagged_variant_step(s, &format!("steps[{i}]")) {
                    Ok(step) => steps.push(step),
                    Err(p) => problems.push(p),
                }
            }
        }
        Some(_) => problems.push(problem("steps", "must be an array of steps")),
        None => problems.push(problem("steps", "`steps` is required.")),
    }
    // The rest of the document, without the parts read above.
    let mut rest = object.clone();
    rest.insert("trigger".into(), serde_json::json!({"type": "manual"}));
    rest.insert("steps".into(), Value::Array(Vec::new()));
    let doc = match typed::<FlowIn>(&Value::Object(rest), "") {
        Ok(d) => Some(d),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(mut doc), Some(trigger)) = (doc, trigger) else {
        return Err(problems);
    };
    doc.trigger = trigger;
    doc.steps = steps;
    let problems = check_document(&doc);
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(problems)
    }
}

fn tagged_variant_trigger(value: &Value) -> Result<Trigger, Problem> {
    use ironbridge_model::flows::{EventTrigger, RecordChangesTrigger, ScheduleTrigger};
    let kind = tag(value, "trigger", TRIGGER_TYPES)?;
    let fields = without_type(value);
    Ok(match kind {
        "record_changes" => {
            Trigger::RecordChanges(typed::<RecordChangesTrigger>(&fields, "trigger")?)
        }
        "event" => Trigger::Event(typed::<EventTrigger>(&fields, "trigger")?),
        "schedule" => Trigger::Schedule(typed::<ScheduleTrigger>(&fields, "trigger")?),
        _ => {
            if let Some(extra) = fields.as_object().and_then(|o| o.keys().next()) {
                return Err(problem(
                    join("trigger", extra),
                    "unknown field; a manual trigger has only `type`",
                ));
            }
            Trigger::Manual
        }
    })
}

fn tagged_variant_step(value: &Value, at: &str) -> Result<Step, Problem> {
    use ironbridge_model::flows::{FilterStep, ReadStep, TransformStep, WebhookStep, WriteStep};
    let kind = tag(value, at, STEP_TYPES)?;
    let fields = without_type(value);
    Ok(match kind {
        "filter" => Step::Filter(typed::<FilterStep>(&fields, at)?),
        "transform" => Step::Transform(typed::<TransformStep>(&fields, at)?),
        "read" => Step::Read(typed::<ReadStep>(&fields, at)?),
        "write" => Step::Write(typed::<WriteStep>(&fields, at)?),
        _ => Step::Webhook(typed::<WebhookStep>(&fields, at)?),
    })
}

fn without_type(value: &Value) -> Value {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("type");
    }
    v
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    // `dry-run` is a route of its own (`POST /v1/flows/dry-run`).
    key != "dry-run"
        && !key.starts_with("flw_")
        && !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_name(name: &str, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || extra.contains(&c))
}

/// The variables every expression may use.
pub const ITEM_VARS: &[&str] = &["item"];
/// The variables of a read step's `where`.
pub const WHERE_VARS: &[&str] = &["item", "record"];

fn check_jq(problems: &mut Vec<Problem>, path: String, code: &str, vars: &[&str]) {
    if let Err(e) = Program::compile(code, vars) {
        problems.push(problem(path, format!("not a jq expression: {e}")));
    }
}

fn check_policy(problems: &mut Vec<Problem>, at: &str, policy: &Option<ErrorPolicy>) {
    let Some(p) = policy else { return };
    if let Some(n) = p.max_attempts
        && !(2..=MAX_ITEM_ATTEMPTS).contains(&n)
    {
        problems.push(problem(
            format!("{at}.on_error.max_attempts"),
            format!("must be from 2 to {MAX_ITEM_ATTEMPTS}"),
        ));
    }
    if p.backoff_ms.is_some_and(|b| b > MAX_DELAY_MS) {
        problems.push(problem(
            format!("{at}.on_error.backoff_ms"),
            format!("must be at most {MAX_DELAY_MS}"),
        ));
    }
    if p.policy != OnItemError::Retry && (p.max_attempts.is_some() || p.backoff_ms.is_some()) {
        problems.push(problem(
            format!("{at}.on_error"),
            "`max_attempts` and `backoff_ms` go with the `retry` policy",
        ));
    }
}

fn check_batching(problems: &mut Vec<Problem>, at: &str, size: Option<u32>, delay: Option<u64>) {
    if size.is_some_and(|s| !(1..=MAX_BATCH_SIZE).contains(&s)) {
        problems.push(problem(
            format!("{at}.batch_size"),
            format!("must be from 1 to {MAX_BATCH_SIZE}"),
        ));
    }
    if delay.is_some_and(|d| d > MAX_DELAY_MS) {
        problems.push(problem(
            format!("{at}.delay_ms"),
            format!("must be at most {MAX_DELAY_MS}"),
        ));
    }
}

/// What can be checked in the document alone.
fn check_document(doc: &FlowIn) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !valid_key(&doc.key) {
        problems.push(problem(
            "key",
            "must be 1 to 64 lowercase letters, digits and `-`, starting with a letter or digit",
        ));
    }
    if doc.name.trim().is_empty() || doc.name.chars().count() > 200 {
        problems.push(problem("name", "must be 1 to 200 characters"));
    }
    if doc
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        problems.push(problem("description", "must be at most 2,000 characters"));
    }
    match &doc.trigger {
        Trigger::RecordChanges(t) => {
            if entity_named(&t.entity).is_none() {
                problems.push(problem(
                    "trigger.entity",
                    format!("`{}` is not an entity with changes", t.entity),
                ));
            }
            if t.max_items_per_run
                .is_some_and(|n| !(1..=1000).contains(&n))
            {
                problems.push(problem(
                    "trigger.max_items_per_run",
                    "must be from 1 to 1000",
                ));
            }
            if t.changes.as_ref().is_some_and(Vec::is_empty) {
                problems.push(problem(
                    "trigger.changes",
                    "must name at least one kind of change",
                ));
            }
        }
        Trigger::Event(t) => {
            if t.event_types.is_empty() || t.event_types.len() > 20 {
                problems.push(problem(
                    "trigger.event_types",
                    "must name 1 to 20 event types",
                ));
            }
            for (i, name) in t.event_types.iter().enumerate() {
                if name.starts_with("flow.") || is_record_event_type(name) || !is_event_type(name) {
                    problems.push(problem(
                        format!("trigger.event_types[{i}]"),
                        format!(
                            "`{name}` cannot start a flow (see GET /v1/webhook-event-types; `flow.*` and `record.*` types cannot)"
                        ),
                    ));
                }
            }
        }
        Trigger::Schedule(t) => {
            if let Err(e) = cron::Schedule::parse(&t.cron, t.timezone.as_deref()) {
                let at = if e.contains("time zone") {
                    "trigger.timezone"
                } else {
                    "trigger.cron"
                };
                problems.push(problem(at, e));
            }
        }
        Trigger::Manual => {}
    }
    if doc.steps.is_empty() || doc.steps.len() > MAX_STEPS {
        problems.push(problem(
            "steps",
            format!("must hold 1 to {MAX_STEPS} steps"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, step) in doc.steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        if !valid_name(step.id(), &[]) {
            problems.push(problem(
                format!("{at}.id"),
                "must be 1 to 64 letters, digits, `_` and `-`",
            ));
        } else if !seen.insert(step.id().to_string()) {
            problems.push(problem(
                format!("{at}.id"),
                format!("`{}` is the id of an earlier step", step.id()),
            ));
        }
        match step {
            Step::Filter(s) => {
                check_jq(
                    &mut problems,
                    format!("{at}.condition"),
                    &s.condition,
                    ITEM_VARS,
                );
                check_policy(&mut problems, &at, &s.on_error);
            }
            Step::Transform(s) => {
                check_jq(&mut problems, format!("{at}.jq"), &s.jq, ITEM_VARS);
                check_policy(&mut problems, &at, &s.on_error);
            }
            Step::Read(s) => {
                if entity_named(&s.entity).is_none() {
                    problems.push(problem(
                        format!("{at}.entity"),
                        format!("`{}` is not an entity kept as records", s.entity),
                    ));
                }
                if let Some(w) = &s.where_ {
                    check_jq(&mut problems, format!("{at}.where"), w, WHERE_VARS);
                }
                if s.into.as_ref().is_some_and(|k| !valid_name(k, &[])) {
                    problems.push(problem(
                        format!("{at}.into"),
                        "must be 1 to 64 letters, digits, `_` and `-`",
                    ));
                }
                if s.limit.is_some_and(|l| !(1..=MAX_READ_LIMIT).contains(&l)) {
                    problems.push(problem(
                        format!("{at}.limit"),
                        format!("must be from 1 to {MAX_READ_LIMIT}"),
                    ));
                }
                check_policy(&mut problems, &at, &s.on_error);
            }
            Step::Write(s) => {
                if entity_named(&s.entity).is_none() {
                    problems.push(problem(
                        format!("{at}.entity"),
                        format!("`{}` is not an entity kept as records", s.entity),
                    ));
                }
                match (s.action.unwrap_or_default(), &s.record_id) {
                    (WriteAction::Update, None) => problems.push(problem(
                        format!("{at}.record_id"),
                        "an update names the record to update: a jq expression yielding its id",
                    )),
                    (WriteAction::Create, Some(_)) => problems.push(problem(
                        format!("{at}.record_id"),
                        "only an update names a record",
                    )),
                    (_, Some(r)) => {
                        check_jq(&mut problems, format!("{at}.record_id"), r, ITEM_VARS)
                    }
                    _ => {}
                }
                if let Some(d) = &s.data {
                    check_jq(&mut problems, format!("{at}.data"), d, ITEM_VARS);
                }
                check_batching(&mut problems, &at, s.batch_size, s.delay_ms);
                check_policy(&mut problems, &at, &s.on_error);
            }
            Step::Webhook(s) => {
                if !valid_name(&s.name, b".") {
                    problems.push(problem(
                        format!("{at}.name"),
                        "must be 1 to 64 letters, digits, `_`, `-` and `.`",
                    ));
                }
                if let Some(d) = &s.data {
                    check_jq(&mut problems, format!("{at}.data"), d, ITEM_VARS);
                }
                check_batching(&mut problems, &at, s.batch_size, s.delay_ms);
                check_policy(&mut problems, &at, &s.on_error);
            }
        }
    }
    problems
}

/// Checks the connections a document names: each must be one of the organization's, live,
/// and its system must read (or, for a write step, write) the entity named with it.
pub async fn check_connections(
    store: &dyn Store,
    registry: &Registry,
    org: &OrgId,
    doc: &FlowIn,
) -> Result<Vec<Problem>, StoreError> {
    let mut problems = Vec::new();
    let mut named: Vec<(String, &str, &str, Option<WriteOp>)> = Vec::new();
    match &doc.trigger {
        Trigger::RecordChanges(t) => {
            named.push(("trigger".into(), &t.connection_id, &t.entity, None))
        }
        Trigger::Event(t) => {
            if let Some(c) = &t.connection_id {
                named.push(("trigger".into(), c, "", None));
            }
        }
        _ => {}
    }
    for (i, step) in doc.steps.iter().enumerate() {
        match step {
            Step::Read(s) => named.push((format!("steps[{i}]"), &s.connection_id, &s.entity, None)),
            Step::Write(s) => named.push((
                format!("steps[{i}]"),
                &s.connection_id,
                &s.entity,
                Some(match s.action.unwrap_or_default() {
                    WriteAction::Create => WriteOp::Create,
                    WriteAction::Update => WriteOp::Update,
                }),
            )),
            _ => {}
        }
    }
    for (at, conn, entity, op) in named {
        let path = format!("{at}.connection_id");
        let connection = match store.get_connection(org, &ConnId(conn.to_string())).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                problems.push(problem(
                    path,
                    format!("no connection {conn} in this organization"),
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        if connection.status == "disconnected" {
            problems.push(problem(path, format!("connection {conn} is disconnected")));
            continue;
        }
        let (Some(system), Some(entity)) = (registry.get(&connection.system), entity_named(entity))
        else {
            continue;
        };
        let entity_path = format!("{at}.entity");
        match op {
            Some(op) => {
                if !system.writes(entity, op) {
                    problems.push(problem(
                        entity_path,
                        format!(
                            "{} does not {} {} records",
                            system.name,
                            match op {
                                WriteOp::Create => "create",
                                WriteOp::Update => "update",
                            },
                            entity.spec().label
                        ),
                    ));
                }
            }
            None => {
                if system.read(entity).is_none() {
                    problems.push(problem(
                        entity_path,
                        format!("{} has no {} records", system.name, entity.spec().label),
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// A step's error policy, resolved: how many attempts an item has, and the first backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// What happens after the last attempt fails.
    pub policy: OnItemError,
    /// Attempts in all (1 unless `retry`).
    pub attempts: u32,
    /// First wait before a retry, in milliseconds.
    pub backoff_ms: u64,
}

impl Policy {
    /// The policy of `step`.
    pub fn of(step: &Step) -> Policy {
        let p = step.on_error();
        Policy {
            policy: p.policy,
            attempts: match p.policy {
                OnItemError::Retry => p.max_attempts.unwrap_or(3),
                _ => 1,
            },
            backoff_ms: p.backoff_ms.unwrap_or(1_000),
        }
    }

    /// The wait before attempt `next` (2 or more), in milliseconds: doubling, at most an
    /// hour.
    pub fn backoff(&self, next: u32) -> u64 {
        let shift = next.saturating_sub(2).min(20);
        self.backoff_ms.saturating_mul(1u64 << shift).min(3_600_000)
    }
}

/// A step ready to run: its document and its compiled expressions.
pub struct CompiledStep {
    /// The step as written.
    pub step: Step,
    /// The filter's condition, the transform's expression, the read's `where`, the write's
    /// `data`, the webhook's `data`.
    pub main: Option<Program>,
    /// The write's `record_id`.
    pub record_id: Option<Program>,
    /// The entity a read or write names.
    pub entity: Option<Entity>,
    /// Its error policy.
    pub policy: Policy,
}

impl CompiledStep {
    /// Items per batch of a write or webhook step (others work in batches of 100).
    pub fn batch_size(&self) -> u32 {
        match &self.step {
            Step::Write(s) => s.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            Step::Webhook(s) => s.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            _ => 100,
        }
        .clamp(1, MAX_BATCH_SIZE)
    }

    /// Pause between batches, in milliseconds.
    pub fn delay_ms(&self) -> u64 {
        match &self.step {
            Step::Write(s) => s.delay_ms.unwrap_or(0),
            Step::Webhook(s) => s.delay_ms.unwrap_or(0),
            _ => 0,
        }
        .min(MAX_DELAY_MS)
    }

    /// Records a read step scans.
    pub fn read_limit(&self) -> u32 {
        match &self.step {
            Step::Read(s) => s
                .limit
                .unwrap_or(DEFAULT_READ_LIMIT)
                .clamp(1, MAX_READ_LIMIT),
            _ => 0,
        }
    }
}

/// Compiles a (checked) document's steps.
pub fn compile(doc: &FlowIn) -> Result<Vec<CompiledStep>, Problem> {
    doc.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let at = format!("steps[{i}]");
            let prog = |code: &str, vars: &[&str], field: &str| {
                Program::compile(code, vars).map_err(|e| problem(format!("{at}.{field}"), e))
            };
            let (main, record_id, entity) = match step {
                Step::Filter(s) => (
                    Some(prog(&s.condition, ITEM_VARS, "condition")?),
                    None,
                    None,
                ),
                Step::Transform(s) => (Some(prog(&s.jq, ITEM_VARS, "jq")?), None, None),
                Step::Read(s) => (
                    s.where_
                        .as_deref()
                        .map(|w| prog(w, WHERE_VARS, "where"))
                        .transpose()?,
                    None,
                    entity_named(&s.entity),
                ),
                Step::Write(s) => (
                    s.data
                        .as_deref()
                        .map(|d| prog(d, ITEM_VARS, "data"))
                        .transpose()?,
                    s.record_id
                        .as_deref()
                        .map(|r| prog(r, ITEM_VARS, "record_id"))
                        .transpose()?,
                    entity_named(&s.entity),
                ),
                Step::Webhook(s) => (
                    s.data
                        .as_deref()
                        .map(|d| prog(d, ITEM_VARS, "data"))
                        .transpose()?,
                    None,
                    None,
                ),
            };
            Ok(CompiledStep {
                policy: Policy::of(step),
                step: step.clone(),
                main,
                record_id,
                entity,
            })
        })
        .collect()
}

/// The kind of a flow run's job.
pub const FLOW_JOB: &str = "flow";

/// Attempts of a flow run's job that fails (source unreachable, storage) before the run
/// fails for good.
pub const FLOW_JOB_ATTEMPTS: i64 = 10;

/// A run and its job, as the engine and the store make them.
pub fn new_run(
    org_id: &str,
    flow_id: &str,
    version: i64,
    trigger: &str,
    input_count: usize,
    now: Timestamp,
) -> (FlowRun, NewJob) {
    let id = new_id("frn", now.micros());
    let job_id = new_id("job", now.micros());
    let run = FlowRun {
        id: id.clone(),
        org_id: org_id.to_string(),
        flow_id: flow_id.to_string(),
        flow_version: version,
        trigger: trigger.to_string(),
        status: run_status::QUEUED.into(),
        step: 0,
        input_count: i64::try_from(input_count).unwrap_or(i64::MAX),
        error: None,
        cancel_requested: false,
        job_id: job_id.clone(),
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    let job = NewJob {
        id: job_id,
        kind: FLOW_JOB.into(),
        org_id: org_id.to_string(),
        connection_id: None,
        payload: serde_json::json!({ "run_id": id }).to_string(),
        dedupe_key: Some(format!("flow_run:{id}")),
        run_at: now,
        max_attempts: FLOW_JOB_ATTEMPTS,
        created_at: now,
    };
    (run, job)
}

/// Changes one run of a `record_changes` trigger takes.
pub fn changes_per_run(trigger: &Trigger) -> u32 {
    match trigger {
        Trigger::RecordChanges(t) => t
            .max_items_per_run
            .unwrap_or(DEFAULT_CHANGES_PER_RUN)
            .clamp(1, 1000),
        _ => DEFAULT_CHANGES_PER_RUN,
    }
}

/// The trigger's type as runs and storage name it.
pub fn trigger_type(trigger: &Trigger) -> &'static str {
    match trigger {
        Trigger::RecordChanges(_) => "record_changes",
        Trigger::Event(_) => "event",
        Trigger::Schedule(_) => "schedule",
        Trigger::Manual => "manual",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(doc: Value) -> Vec<String> {
        parse(&doc)
            .unwrap_err()
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn reads_a_valid_document() {
        let doc = parse(&json!({
            "key": "po-to-wms",
            "name": "POs to the warehouse",
            "trigger": {"type": "record_changes", "connection_id": "conn_1", "entity": "purchase-orders", "changes": ["created", "updated"]},
            "steps": [
                {"type": "filter", "id": "approved", "condition": ".record.status == \"approved\""},
                {"type": "transform", "id": "shape", "jq": "{number: .record.number}"},
                {"type": "write", "id": "create", "connection_id": "conn_2", "entity": "purchase-orders", "batch_size": 20, "on_error": {"policy": "retry", "max_attempts": 4}}
            ]
        }))
        .unwrap();
        assert_eq!(doc.steps.len(), 3);
        let compiled = compile(&doc).unwrap();
        assert_eq!(compiled[2].batch_size(), 20);
        assert_eq!(compiled[2].policy.attempts, 4);
        assert_eq!(compiled[2].entity, Some(Entity::PURCHASE_ORDER));
    }

    #[test]
    fn names_each_problem_by_its_path() {
        assert_eq!(
            paths(json!({
                "key": "Bad Key",
                "name": "x",
                "trigger": {"type": "schedule", "cron": "61 * * * *"},
                "steps": [
                    {"type": "transform", "id": "a", "jq": ".a +"},
                    {"type": "write", "id": "a", "connection_id": "c", "entity": "nothing", "on_error": {"policy": "sometimes"}},
                    {"type": "teleport", "id": "b"},
                    {"type": "filter", "id": "c", "condition": "true", "extra": 1}
                ]
            })),
            vec![
                "steps[1].on_error.policy",
                "steps[2].type",
                "steps[3].extra",
            ]
        );
        // Once the shapes are right, what they say is checked.
        assert_eq!(
            paths(json!({
                "key": "Bad Key",
                "name": "x",
                "trigger": {"type": "schedule", "cron": "61 * * * *"},
                "steps": [
                    {"type": "transform", "id": "a", "jq": ".a +"},
                    {"type": "write", "id": "a", "connection_id": "c", "entity": "nothing", "batch_size": 0},
                    {"type": "write", "id": "u", "connection_id": "c", "entity": "items", "action": "update"}
                ]
            })),
            vec![
                "key",
                "trigger.cron",
                "steps[0].jq",
                "steps[1].id",
                "steps[1].entity",
                "steps[1].batch_size",
                "steps[2].record_id",
            ]
        );
        assert_eq!(
            paths(json!({"key": "k", "name": "n", "steps": []})),
            vec!["trigger"]
        );
        assert_eq!(paths(json!([1])), vec![""]);
        assert_eq!(
            paths(
                json!({"key": "k", "name": "n", "trigger": {"type": "event", "event_types": ["flow.run_completed", "nope"]}, "steps": [{"type": "filter", "id": "f", "condition": "true"}]})
            ),
            vec!["trigger.event_types[0]", "trigger.event_types[1]"]
        );
        assert_eq!(
            paths(
                json!({"key": "k", "name": "n", "trigger": {"type": "manual", "x": 1}, "steps": [{"type": "filter", "id": "f", "condition": "true"}], "colour": "red"})
            ),
            vec!["trigger.x", "colour"]
        );
    }

    #[test]
    fn backs_off_doubling() {
        let p = Policy {
            policy: OnItemError::Retry,
            attempts: 5,
            backoff_ms: 500,
        };
        assert_eq!(
            (p.backoff(2), p.backoff(3), p.backoff(4)),
            (500, 1000, 2000)
        );
    }
}
