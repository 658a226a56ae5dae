//! Writing back to the source system through the unified model. One entry point,
//! [`apply`], serves the HTTP handlers and the batch executor alike: the caller's fields are
//! validated against the connection's write description of the entity (the same one
//! `GET /v1/meta/{entity}` shows, built by [`meta`]), references resolved to the source's keys,
//! and the write sent through the connection's runtime (its limits, breaker and token).
//! Nothing reaches the source that the description refuses.

use ironbridge_model::api::{
    CustomFieldsOut, WriteFieldOut, WriteFieldType, WriteMetaOut, WriteOperationsOut,
};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::connector::{ConnectorError, UnifiedWrite};
use crate::runtime::ConnectionRuntime;
use crate::service::{ServiceError, invalid};
use crate::store::{ConnId, Store};
use crate::system::{
    CustomFields, DecimalRange, SystemDescriptor, WriteField, WriteOp, WriteSpec, WriteType,
};

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction<'a> {
    /// Create a record.
    Create,
    /// Update the record with this Ironbridge id.
    Update {
        /// The record's id (`vnd_…`).
        id: &'a str,
    },
}

impl WriteAction<'_> {
    /// The operation, as descriptors name it.
    pub fn op(&self) -> WriteOp {
        match self {
            WriteAction::Create => WriteOp::Create,
            WriteAction::Update { .. } => WriteOp::Update,
        }
    }
}

/// What a write returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The raw record the source answered with (the shape its read mapping takes).
    pub raw: Value,
    /// When Ironbridge first stored the record, for an update of a stored record (`None` for
    /// a create).
    pub created_at: Option<Timestamp>,
}

/// The envelope every record carries: shown, never written.
static ENVELOPE: &[WriteField] = &[
    WriteField::new(
        "id",
        WriteType::String,
        "Ironbridge's id of the record, prefixed by its entity (`vnd_…`, `po_…`).",
    )
    .read_only(),
    WriteField::new(
        "remote_id",
        WriteType::String,
        "The record's key in the source system.",
    )
    .read_only(),
    WriteField::new(
        "created_at",
        WriteType::Datetime,
        "When Ironbridge first stored the record.",
    )
    .read_only(),
    WriteField::new(
        "modified_at",
        WriteType::Datetime,
        "When Ironbridge last stored a change.",
    )
    .read_only(),
    WriteField::new(
        "remote_created_at",
        WriteType::Datetime,
        "When the source says it was created.",
    )
    .read_only(),
    WriteField::new(
        "remote_updated_at",
        WriteType::Datetime,
        "When the source says it last changed.",
    )
    .read_only(),
    WriteField::new(
        "remote_was_deleted",
        WriteType::Boolean,
        "Whether the source deleted it.",
    )
    .read_only(),
    WriteField::new(
        "remote_data",
        WriteType::Any,
        "The source's own payload (reads with `include_remote_data=true`).",
    )
    .read_only(),
];

/// The envelope fields every record carries and no write may set.
pub fn envelope() -> &'static [WriteField] {
    ENVELOPE
}

/// Validates `body` (the unified fields, a JSON object) against the connection's write
/// description for `entity`, resolves references, and writes through the runtime.
/// Returns the raw record the source answered with, and the record's `created_at` for an
/// update of a stored record (None for a create). `Ok(None)`: no such record (update).
///
/// `reference` is an opaque key (at most 12 ASCII letters and digits) carried into the
/// source with the write, so a write whose outcome is unknown can be found there. A create
/// goes through [`crate::reconcile::create_once`]: with `unknown_before` (an earlier attempt
/// under the same reference may have reached the source) it is looked for there first, and
/// written only if it is not found.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    store: &dyn Store,
    runtime: &ConnectionRuntime,
    conn: &ConnId,
    entity: Entity,
    action: WriteAction<'_>,
    body: &Map<String, Value>,
    reference: Option<&str>,
    unknown_before: bool,
    view: Option<&crate::field_mappings::ConnectionView>,
) -> Result<Option<Written>, ServiceError> {
    let system = runtime.system();
    let op = action.op();
    let spec = writable(system, entity, op)?;
    // Fields this connection maps through overrides are written where they are read from.
    let translated;
    let body = match view.and_then(|v| v.entity(entity)) {
        Some(v) => {
            translated = crate::field_mappings::translate_write(v, system, entity, body)?;
            &translated
        }
        None => body,
    };
    // Checked before anything is read or sent (`create_once` checks it again for its callers).
    if let Some(r) = reference {
        crate::connector::check_reference(r)?;
    }
    // A partial record's answer is laid over what is stored (ASCTrac answers an order's
    // update with its status alone), so its stored payload is read with it.
    let partial = system
        .read(entity)
        .is_some_and(|r| r.payload == crate::system::Payload::Partial);
    let existing = match action {
        WriteAction::Create => None,
        WriteAction::Update { id } => match store.get_record(conn, entity, id, partial).await? {
            Some(r) => Some(r),
            None => return Ok(None),
        },
    };
    let mut fields = validate(system, spec, body, op)?;
    resolve(store, conn, spec, &mut fields).await?;
    let write = UnifiedWrite {
        fields,
        reference: reference.map(str::to_string),
    };
    match existing {
        None => {
            let raw = crate::reconcile::create_once(runtime, entity, &write, unknown_before)
                .await?
                .raw;
            Ok(Some(Written {
                raw,
                created_at: None,
            }))
        }
        Some(record) => match runtime.update(entity, &record.remote_id, &write).await {
            Ok(raw) => {
                let raw = match record.raw.as_deref() {
                    Some(stored) if partial => laid_over(stored, raw),
                    _ => raw,
                };
                Ok(Some(Written {
                    raw,
                    created_at: Some(record.created_at),
                }))
            }
            Err(ServiceError::Connector(ConnectorError::NotFound)) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// Checks a write as [`apply`] would before it sends anything: the connection's overrides
/// translated, the fields validated, references resolved (an update's record must be
/// stored). Returns the fields as they would be sent, references as the source's keys (a
/// dry run shows them). `Ok(None)`: no such record (update).
pub async fn check(
    store: &dyn Store,
    system: &SystemDescriptor,
    conn: &ConnId,
    entity: Entity,
    action: WriteAction<'_>,
    body: &Map<String, Value>,
    view: Option<&crate::field_mappings::ConnectionView>,
) -> Result<Option<Map<String, Value>>, ServiceError> {
    let op = action.op();
    let spec = writable(system, entity, op)?;
    let translated;
    let body = match view.and_then(|v| v.entity(entity)) {
        Some(v) => {
            translated = crate::field_mappings::translate_write(v, system, entity, body)?;
            &translated
        }
        None => body,
    };
    if let WriteAction::Update { id } = action
        && store.get_record(conn, entity, id, false).await?.is_none()
    {
        return Ok(None);
    }
    let mut fields = validate(system, spec, body, op)?;
    resolve(store, conn, spec, &mut fields).await?;
    Ok(Some(fields))
}

/// A partial answer laid over the stored payload; the answer alone when the stored payload
/// is damaged (what the source answered is never lost).
fn laid_over(stored: &str, answer: Value) -> Value {
    crate::partial::overlay(stored, &answer.to_string())
        .ok()
        .and_then(|merged| serde_json::from_str(&merged).ok())
        .unwrap_or(answer)
}

/// The write description of `entity` if the system supports `op` on it; else the refusal
/// naming the operation.
pub fn writable(
    system: &SystemDescriptor,
    entity: Entity,
    op: WriteOp,
) -> Result<&'static WriteSpec, ServiceError> {
    match system.write(entity) {
        Some(spec) if system.writes(entity, op) => Ok(spec),
        _ => Err(ServiceError::Unsupported {
            entity,
            operation: op,
            message: format!(
                "{} cannot {} {} records through Ironbridge",
                system.name,
                op.as_str(),
                entity.spec().label
            ),
        }),
    }
}

/// What a write of `entity` takes on `system`, as `GET /v1/meta/{entity}` shows it.
pub fn meta(system: &SystemDescriptor, entity: Entity) -> WriteMetaOut {
    let spec = system.write(entity);
    let fields = match spec {
        Some(spec) => ENVELOPE.iter().chain(spec.fields).map(field_out).collect(),
        None => Vec::new(),
    };
    let custom = spec.map_or(CustomFields::NONE, |s| s.custom_fields);
    WriteMetaOut {
        entity,
        system: system.id.clone(),
        operations: WriteOperationsOut {
            create: system.writes(entity, WriteOp::Create),
            update: system.writes(entity, WriteOp::Update),
        },
        fields,
        custom_fields: CustomFieldsOut {
            fields: custom.fields.iter().map(field_out).collect(),
            prefixes: custom.prefixes.iter().map(|p| p.to_string()).collect(),
            any_name: custom.any_name,
        },
    }
}

fn field_out(f: &WriteField) -> WriteFieldOut {
    let (field_type, values, references, min_items, nested) = match f.ty {
        WriteType::String => (WriteFieldType::String, None, None, None, None),
        WriteType::Decimal(_) => (WriteFieldType::Decimal, None, None, None, None),
        WriteType::Boolean => (WriteFieldType::Boolean, None, None, None, None),
        WriteType::Integer => (WriteFieldType::Integer, None, None, None, None),
        WriteType::Number { .. } => (WriteFieldType::Number, None, None, None, None),
        WriteType::Date => (WriteFieldType::Date, None, None, None, None),
        WriteType::Datetime => (WriteFieldType::Datetime, None, None, None, None),
        WriteType::Enum(values) => (
            WriteFieldType::Enum,
            Some(values.iter().map(|v| v.to_string()).collect()),
            None,
            None,
            None,
        ),
        WriteType::Reference(e) => (WriteFieldType::Reference, None, Some(e), None, None),
        WriteType::Currency => (WriteFieldType::Currency, None, None, None, None),
        WriteType::Email => (WriteFieldType::Email, None, None, None, None),
        WriteType::Object(fields) => (
            WriteFieldType::Object,
            None,
            None,
            None,
            Some(fields.iter().map(field_out).collect()),
        ),
        WriteType::List { fields, min } => (
            WriteFieldType::Array,
            None,
            None,
            Some(min),
            Some(fields.iter().map(field_out).collect()),
        ),
        WriteType::Any => (WriteFieldType::Any, None, None, None, None),
    };
    WriteFieldOut {
        name: f.name.to_string(),
        field_type,
        required: f.required,
        read_only: f.read_only,
        updatable: f.updatable,
        values,
        max_length: f.max_length,
        references,
        min_items,
        description: f.description.to_string(),
        fields: nested,
    }
}

/// Problems of a write description against the entity catalogue: every unified body field
/// described once and in order, lists with the catalogue's element fields, no field both
/// required and read-only, enums with values. Empty when it is sound.
pub fn description_problems(spec: &WriteSpec) -> Vec<String> {
    let mut out = Vec::new();
    let catalogue = spec.entity.spec();
    let expected: Vec<&str> = catalogue
        .fields
        .iter()
        .copied()
        .filter(|f| *f != "custom_fields")
        .collect();
    let described: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
    if described != expected {
        out.push(format!(
            "fields {described:?} differ from the catalogue's {expected:?}"
        ));
    }
    fn walk(fields: &[WriteField], prefix: &str, out: &mut Vec<String>) {
        for f in fields {
            let name = format!("{prefix}{}", f.name);
            if f.required && f.read_only {
                out.push(format!("{name}: both required and read-only"));
            }
            if fields.iter().filter(|o| o.name == f.name).count() > 1 {
                out.push(format!("{name}: described twice"));
            }
            match f.ty {
                WriteType::Enum([]) => {
                    out.push(format!("{name}: an enum without values"));
                }
                WriteType::Any | WriteType::Integer if !f.read_only => {
                    out.push(format!("{name}: only read-only fields have this type"));
                }
                _ if f.clearable && (f.required || !f.updatable) => {
                    out.push(format!("{name}: cleared by an update it cannot make"));
                }
                WriteType::Object(nested) => walk(nested, &format!("{name}."), out),
                WriteType::List { fields: nested, .. } => walk(nested, &format!("{name}[]."), out),
                _ => {}
            }
        }
    }
    walk(spec.fields, "", &mut out);
    for f in spec.fields {
        if let WriteType::List { fields, .. } = f.ty {
            match spec.entity.list(f.name) {
                Some(list) => {
                    let names: Vec<&str> = fields.iter().map(|e| e.name).collect();
                    if names != list.fields {
                        out.push(format!(
                            "{}: element fields {names:?} differ from the catalogue's {:?}",
                            f.name, list.fields
                        ));
                    }
                }
                None => out.push(format!("{}: a list the catalogue does not have", f.name)),
            }
        }
    }
    walk(spec.custom_fields.fields, "custom_fields.", &mut out);
    out
}

/// Validation of one write against a description.
struct Check<'a> {
    system: &'a SystemDescriptor,
    label: &'static str,
}

fn param(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

impl Check<'_> {
    fn read_only(&self, p: &str, f: Option<&WriteField>) -> ServiceError {
        let why = match f {
            Some(f) if !f.description.is_empty() => format!(" {}", f.description),
            _ => " The source system sets it.".to_string(),
        };
        invalid(
            p,
            format!("`{p}` is read-only on {}.{why}", self.system.name),
        )
    }

    /// Checks the object `given` against `fields` (and, at the top, the envelope and custom
    /// fields); returns the normalised fields in description order.
    fn object(
        &self,
        fields: &[WriteField],
        custom: Option<&CustomFields>,
        top: bool,
        given: &Map<String, Value>,
        prefix: &str,
        op: WriteOp,
    ) -> Result<Map<String, Value>, ServiceError> {
        // Names first: an unknown, read-only or fixed field is refused whatever its value.
        for name in given.keys() {
            let p = param(prefix, name);
            if name == "custom_fields" && custom.is_some() {
                continue;
            }
            if top && let Some(f) = ENVELOPE.iter().find(|f| f.name == name) {
                return Err(self.read_only(&p, Some(f)));
            }
            let Some(f) = fields.iter().find(|f| f.name == name) else {
                let what = if prefix.is_empty() {
                    format!("a {}", self.label)
                } else {
                    format!("`{}`", prefix.trim_end_matches('.'))
                };
                return Err(invalid(&p, format!("`{p}` is not a field of {what}.")));
            };
            if f.read_only {
                return Err(self.read_only(&p, Some(f)));
            }
            if op == WriteOp::Update && !f.updatable {
                return Err(invalid(
                    &p,
                    format!("`{p}` cannot be changed after creation."),
                ));
            }
        }
        if op == WriteOp::Create {
            for f in fields.iter().filter(|f| f.required) {
                if given.get(f.name).is_none_or(Value::is_null) {
                    let p = param(prefix, f.name);
                    return Err(invalid(&p, format!("`{p}` is required.")));
                }
            }
        }
        let mut out = Map::new();
        for f in fields {
            let Some(v) = given.get(f.name) else {
                continue;
            };
            if v.is_null() {
                // Cleared in an update where the system takes it; otherwise the same as
                // leaving it out.
                if op == WriteOp::Update && f.clearable {
                    out.insert(f.name.to_string(), Value::Null);
                }
                continue;
            }
            let p = param(prefix, f.name);
            out.insert(f.name.to_string(), self.value(f, v, &p, op)?);
        }
        if let Some(custom) = custom
            && let Some(v) = given.get("custom_fields").filter(|v| !v.is_null())
        {
            let p = param(prefix, "custom_fields");
            let Value::Object(members) = v else {
                return Err(invalid(&p, format!("`{p}` must be an object.")));
            };
            if !members.is_empty() {
                out.insert("custom_fields".into(), self.custom(custom, members, &p)?);
            }
        }
        Ok(out)
    }

    fn custom(
        &self,
        custom: &CustomFields,
        members: &Map<String, Value>,
        prefix: &str,
    ) -> Result<Value, ServiceError> {
        let mut out = Map::new();
        for (name, v) in members {
            let p = format!("{prefix}.{name}");
            if let Some(f) = custom.fields.iter().find(|f| f.name == name) {
                if f.read_only {
                    return Err(self.read_only(&p, Some(f)));
                }
                if !v.is_null() {
                    out.insert(name.clone(), self.value(f, v, &p, WriteOp::Create)?);
                }
                continue;
            }
            if custom.any_name || custom.prefixes.iter().any(|pre| name.starts_with(pre)) {
                out.insert(name.clone(), v.clone());
                continue;
            }
            let known: Vec<String> = custom
                .fields
                .iter()
                .map(|f| format!("`{}`", f.name))
                .chain(custom.prefixes.iter().map(|pre| format!("`{pre}…`")))
                .collect();
            let message = if known.is_empty() {
                format!(
                    "`{p}`: Ironbridge writes no custom fields of {} {}s.",
                    self.system.name, self.label
                )
            } else {
                format!(
                    "`{p}` is not a custom field {} takes here (known: {}).",
                    self.system.name,
                    known.join(", ")
                )
            };
            return Err(invalid(&p, message));
        }
        Ok(Value::Object(out))
    }

    fn value(
        &self,
        f: &WriteField,
        v: &Value,
        p: &str,
        op: WriteOp,
    ) -> Result<Value, ServiceError> {
        let text = || {
            v.as_str()
                .ok_or_else(|| invalid(p, format!("`{p}` must be text.")))
        };
        match f.ty {
            WriteType::String => {
                let s = text()?;
                if f.required && s.trim().is_empty() {
                    return Err(invalid(p, format!("`{p}` must not be empty.")));
                }
                if let Some(max) = f.max_length
                    && s.chars().count() > max as usize
                {
                    return Err(invalid(
                        p,
                        format!(
                            "`{p}` must be at most {max} characters ({} keeps no more).",
                            self.system.name
                        ),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Decimal(range) => {
                let amount = serde_json::from_value::<ironbridge_model::amount::Amount>(v.clone())
                    .map_err(|_| {
                        invalid(
                            p,
                            format!(
                                "`{p}` must be a decimal amount such as \"12.50\" or a number."
                            ),
                        )
                    })?
                    .0;
                match range {
                    DecimalRange::Positive if amount <= Decimal::ZERO => {
                        return Err(invalid(p, format!("`{p}` must be greater than zero.")));
                    }
                    DecimalRange::NonNegative if amount < Decimal::ZERO => {
                        return Err(invalid(p, format!("`{p}` must not be negative.")));
                    }
                    _ => {}
                }
                Ok(Value::String(amount.normalize().to_string()))
            }
            WriteType::Number { min, max } => match v.as_f64() {
                Some(x) if x.is_finite() && (min..=max).contains(&x) => Ok(v.clone()),
                _ => Err(invalid(
                    p,
                    format!("`{p}` must be a number from {min} to {max}."),
                )),
            },
            WriteType::Boolean => v
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| invalid(p, format!("`{p}` must be true or false."))),
            WriteType::Date => {
                let s = text()?;
                let ok = s.len() == 10
                    && time::Date::parse(
                        s,
                        &time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .is_ok();
                if !ok {
                    return Err(invalid(
                        p,
                        format!("`{p}` must be a date in YYYY-MM-DD form"),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Datetime => {
                let s = text()?;
                match Timestamp::parse_rfc3339(s) {
                    Some(t) => Ok(Value::String(t.to_rfc3339())),
                    None => Err(invalid(
                        p,
                        format!(
                            "`{p}` must be an RFC 3339 date-time with an offset, such as 2026-03-01T08:00:00Z."
                        ),
                    )),
                }
            }
            WriteType::Enum(values) => {
                let s = text()?;
                if !values.contains(&s) {
                    return Err(invalid(
                        p,
                        format!(
                            "`{p}` must be one of {} on {}.",
                            values
                                .iter()
                                .map(|v| format!("`{v}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            self.system.name
                        ),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Reference(entity) => {
                let s = text()?;
                if Entity::from_id(s) != Some(entity) {
                    return Err(invalid(
                        p,
                        format!(
                            "`{p}` must be a {} id (`{}_…`)",
                            entity.as_str(),
                            entity.id_prefix()
                        ),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Currency => {
                let s = text()?;
                if s.len() != 3 || !s.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(invalid(
                        p,
                        format!("`{p}` must be a three-letter ISO 4217 code such as USD"),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Email => {
                let s = text()?;
                let ok = s.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                        && !domain.contains('@')
                });
                if !ok {
                    return Err(invalid(p, format!("`{p}` must be an e-mail address.")));
                }
                if let Some(max) = f.max_length
                    && s.chars().count() > max as usize
                {
                    return Err(invalid(
                        p,
                        format!("`{p}` must be at most {max} characters."),
                    ));
                }
                Ok(Value::String(s.to_string()))
            }
            WriteType::Object(fields) => match v {
                Value::Object(m) => Ok(Value::Object(self.object(
                    fields,
                    None,
                    false,
                    m,
                    &format!("{p}."),
                    op,
                )?)),
                _ => Err(invalid(p, format!("`{p}` must be an object."))),
            },
            WriteType::List { fields, min } => {
                let Value::Array(elements) = v else {
                    return Err(invalid(p, format!("`{p}` must be a list.")));
                };
                if elements.len() < min as usize {
                    let what = if min == 1 {
                        "at least one element".to_string()
                    } else {
                        format!("at least {min} elements")
                    };
                    return Err(invalid(p, format!("`{p}` needs {what}.")));
                }
                let mut out = Vec::with_capacity(elements.len());
                for (i, e) in elements.iter().enumerate() {
                    let ep = format!("{p}[{i}]");
                    let Value::Object(m) = e else {
                        return Err(invalid(&ep, format!("`{ep}` must be an object.")));
                    };
                    // Each element is a whole new one: a list is replaced, never merged.
                    out.push(Value::Object(self.object(
                        fields,
                        None,
                        false,
                        m,
                        &format!("{ep}."),
                        WriteOp::Create,
                    )?));
                }
                Ok(Value::Array(out))
            }
            WriteType::Any | WriteType::Integer => Err(self.read_only(p, Some(f))),
        }
    }
}

/// Validates a write's fields against `spec` for `op`: unknown, read-only and (on an update)
/// fixed fields refused by name, required ones present (on a create), every value checked
/// against its type and rules. Returns the normalised fields (decimals as strings, references
/// still Ironbridge ids), in description order.
pub fn validate(
    system: &SystemDescriptor,
    spec: &WriteSpec,
    body: &Map<String, Value>,
    op: WriteOp,
) -> Result<Map<String, Value>, ServiceError> {
    let check = Check {
        system,
        label: spec.entity.spec().label,
    };
    check.object(spec.fields, Some(&spec.custom_fields), true, body, "", op)
}

/// Where references sit in a validated write: (JSON pointer, param, entity).
fn references(
    fields: &[WriteField],
    given: &Map<String, Value>,
    pointer: &str,
    prefix: &str,
    out: &mut Vec<(String, String, Entity)>,
) {
    for f in fields {
        let Some(v) = given.get(f.name) else { continue };
        let ptr = format!("{pointer}/{}", f.name);
        let p = format!("{prefix}{}", f.name);
        match (f.ty, v) {
            (WriteType::Reference(e), Value::String(_)) => out.push((ptr, p, e)),
            (WriteType::Object(nested), Value::Object(m)) => {
                references(nested, m, &ptr, &format!("{p}."), out)
            }
            (WriteType::List { fields: nested, .. }, Value::Array(elements)) => {
                for (i, e) in elements.iter().enumerate() {
                    if let Value::Object(m) = e {
                        references(nested, m, &format!("{ptr}/{i}"), &format!("{p}[{i}]."), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Replaces every reference (our ids) by the source's key, in description order (header
/// fields before lines), or says which one names no record of this connection.
async fn resolve(
    store: &dyn Store,
    conn: &ConnId,
    spec: &WriteSpec,
    fields: &mut Map<String, Value>,
) -> Result<(), ServiceError> {
    let mut found = Vec::new();
    references(spec.fields, fields, "", "", &mut found);
    if found.is_empty() {
        return Ok(());
    }
    let mut doc = Value::Object(std::mem::take(fields));
    let result = async {
        for (pointer, p, entity) in found {
            let Some(slot) = doc.pointer_mut(&pointer) else {
                continue;
            };
            let id = slot.as_str().unwrap_or_default().to_string();
            *slot = Value::String(remote_key(store, conn, entity, &id, &p).await?);
        }
        Ok::<(), ServiceError>(())
    }
    .await;
    if let Value::Object(m) = doc {
        *fields = m;
    }
    result
}

/// Resolves one of our ids to the source system's key, or says which field is wrong.
async fn remote_key(
    store: &dyn Store,
    conn: &ConnId,
    entity: Entity,
    id: &str,
    param: &str,
) -> Result<String, ServiceError> {
    if Entity::from_id(id) != Some(entity) {
        return Err(invalid(
            param,
            format!(
                "`{param}` must be a {} id (`{}_…`)",
                entity.as_str(),
                entity.id_prefix()
            ),
        ));
    }
    match store.get_record(conn, entity, id, false).await? {
        Some(r) if !r.remote_was_deleted => Ok(r.remote_id),
        _ => Err(invalid(
            param,
            format!("no {} with id {id} in this connection", entity.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_spec() -> &'static WriteSpec {
        crate::sandbox::DESCRIPTOR
            .write(Entity::PURCHASE_ORDER)
            .unwrap()
    }

    fn check(body: Value, op: WriteOp) -> Result<Map<String, Value>, (String, String)> {
        validate(
            &crate::sandbox::DESCRIPTOR,
            order_spec(),
            body.as_object().unwrap(),
            op,
        )
        .map_err(|e| match e {
            ServiceError::Invalid { param, message } => (param, message),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn fields_are_refused_by_name_before_their_values_are_read() {
        let param = |body: Value, op| check(body, op).unwrap_err().0;
        assert_eq!(param(json!({"colour": 1}), WriteOp::Create), "colour");
        assert_eq!(
            param(json!({"total_amount": "5"}), WriteOp::Create),
            "total_amount"
        );
        assert_eq!(param(json!({"id": "po_1"}), WriteOp::Create), "id");
        assert_eq!(
            param(json!({"vendor_id": "vnd_1"}), WriteOp::Update),
            "vendor_id"
        );
        assert_eq!(param(json!({"memo": "x"}), WriteOp::Create), "vendor_id");
        assert_eq!(
            param(
                json!({"vendor_id": "vnd_1", "line_items": [{"quantity": "1"}]}),
                WriteOp::Create
            ),
            "line_items[0].item_id"
        );
        assert_eq!(
            param(
                json!({"vendor_id": "vnd_1", "line_items": [{"item_id": "itm_1", "quantity": "0"}]}),
                WriteOp::Create
            ),
            "line_items[0].quantity"
        );
        assert_eq!(
            param(
                json!({"vendor_id": "vnd_1", "line_items": [{"item_id": "itm_1", "quantity": "1", "line_number": 3}]}),
                WriteOp::Create
            ),
            "line_items[0].line_number"
        );
        assert_eq!(
            param(
                json!({"vendor_id": "vnd_1", "line_items": []}),
                WriteOp::Create
            ),
            "line_items"
        );
        assert_eq!(
            param(
                json!({"vendor_id": "itm_1", "line_items": [{"item_id": "itm_1", "quantity": 1}]}),
                WriteOp::Create
            ),
            "vendor_id"
        );
    }

    #[test]
    fn values_are_normalised() {
        let out = check(
            json!({"memo": null, "line_items": [{"item_id": "itm_1", "quantity": 2.50, "unit_price": "1.10"}], "vendor_id": "vnd_1", "custom_fields": {"projectCode": "P"}}),
            WriteOp::Create,
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"vendor_id": "vnd_1", "custom_fields": {"projectCode": "P"}, "line_items": [{"item_id": "itm_1", "quantity": "2.5", "unit_price": "1.1"}]})
        );
    }

    #[test]
    fn every_built_in_description_is_sound() {
        let problems = crate::system::check_descriptors(&[&crate::sandbox::DESCRIPTOR]);
        assert!(problems.is_empty(), "{problems:?}");
        let meta = meta(&crate::sandbox::DESCRIPTOR, Entity::PURCHASE_ORDER);
        assert!(meta.operations.create && meta.operations.update);
        assert!(meta.custom_fields.any_name);
        let vendors = meta_of_unwritten();
        assert!(!vendors.operations.create && vendors.fields.is_empty());
    }

    static VENDOR_LIKE: WriteSpec = WriteSpec {
        entity: Entity::VENDOR,
        create: true,
        update: true,
        fields: &[
            crate::describe::text("name", "The name.").required().max(5),
            WriteField::new("email", WriteType::Email, "E-mail."),
            crate::describe::active_status("Status."),
            WriteField::new(
                "address",
                WriteType::Object(crate::describe::ADDRESS_PARTS),
                "Address.",
            ),
            crate::describe::text("code", "Code.").create_only(),
        ],
        custom_fields: CustomFields {
            fields: &[crate::describe::text("known", "A known one.").max(3)],
            prefixes: &["cust"],
            any_name: false,
        },
    };

    fn vendor_param(body: Value, op: WriteOp) -> String {
        match validate(
            &crate::sandbox::DESCRIPTOR,
            &VENDOR_LIKE,
            body.as_object().unwrap(),
            op,
        ) {
            Err(ServiceError::Invalid { param, .. }) => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_rule_of_a_description_is_applied_and_named() {
        let p = vendor_param;
        assert_eq!(p(json!({"name": "toolong"}), WriteOp::Create), "name");
        assert_eq!(p(json!({"name": " "}), WriteOp::Create), "name");
        assert_eq!(p(json!({"name": 5}), WriteOp::Create), "name");
        assert_eq!(
            p(json!({"name": "a", "email": "a@b"}), WriteOp::Create),
            "email"
        );
        assert_eq!(
            p(json!({"name": "a", "status": "gone"}), WriteOp::Create),
            "status"
        );
        assert_eq!(
            p(
                json!({"name": "a", "address": {"town": "x"}}),
                WriteOp::Create
            ),
            "address.town"
        );
        assert_eq!(
            p(
                json!({"name": "a", "address": {"city": 1}}),
                WriteOp::Create
            ),
            "address.city"
        );
        assert_eq!(p(json!({"code": "c"}), WriteOp::Update), "code");
        assert_eq!(
            p(
                json!({"name": "a", "custom_fields": {"other": 1}}),
                WriteOp::Create
            ),
            "custom_fields.other"
        );
        assert_eq!(
            p(
                json!({"name": "a", "custom_fields": {"known": "long"}}),
                WriteOp::Create
            ),
            "custom_fields.known"
        );
        assert_eq!(
            p(json!({"name": "a", "custom_fields": []}), WriteOp::Create),
            "custom_fields"
        );
        assert_eq!(
            p(json!({"remote_data": {}}), WriteOp::Update),
            "remote_data"
        );
        // An update requires nothing; what it gives is checked and kept.
        let ok = validate(
            &crate::sandbox::DESCRIPTOR,
            &VENDOR_LIKE,
            json!({"email": "ap@example.com", "address": {"city": "Oslo"}, "custom_fields": {"cust_x": [1], "known": "abc"}})
                .as_object()
                .unwrap(),
            WriteOp::Update,
        )
        .unwrap();
        assert_eq!(
            Value::Object(ok),
            json!({"email": "ap@example.com", "address": {"city": "Oslo"}, "custom_fields": {"cust_x": [1], "known": "abc"}})
        );
        assert!(description_problems(&VENDOR_LIKE)[0].contains("differ from the catalogue"));
    }

    static ROUTE_LIKE: &[WriteField] = &[
        WriteField::new("at", WriteType::Datetime, "When."),
        WriteField::new(
            "lat",
            WriteType::Number {
                min: -90.0,
                max: 90.0,
            },
            "Latitude.",
        ),
        crate::describe::text("note", "Cleared by null.").clearable(),
        crate::describe::text("name", "Not cleared."),
    ];

    #[test]
    fn date_times_numbers_and_cleared_fields_are_checked() {
        let spec = WriteSpec {
            fields: ROUTE_LIKE,
            custom_fields: CustomFields::NONE,
            ..VENDOR_LIKE
        };
        let run = |body: Value, op| {
            validate(
                &crate::sandbox::DESCRIPTOR,
                &spec,
                body.as_object().unwrap(),
                op,
            )
        };
        let ok = run(
            json!({"at": "2026-03-01T09:00:00+01:00", "lat": -33.5, "note": null, "name": null}),
            WriteOp::Update,
        )
        .unwrap();
        // Normalised to UTC; null kept only where the field is cleared by it.
        assert_eq!(
            Value::Object(ok),
            json!({"at": "2026-03-01T08:00:00Z", "lat": -33.5, "note": null})
        );
        let created = run(json!({"note": null}), WriteOp::Create).unwrap();
        assert!(created.is_empty(), "a create leaves a null out");
        for (body, param) in [
            (json!({"at": "2026-03-01"}), "at"),
            (json!({"at": "yesterday"}), "at"),
            (json!({"lat": 91}), "lat"),
            (json!({"lat": "12"}), "lat"),
        ] {
            match run(body, WriteOp::Update) {
                Err(ServiceError::Invalid { param: p, .. }) => assert_eq!(p, param),
                other => panic!("{other:?}"),
            }
        }
    }

    fn meta_of_unwritten() -> WriteMetaOut {
        meta(&crate::sandbox::DESCRIPTOR, Entity::VENDOR)
    }
}
