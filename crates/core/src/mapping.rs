//! The mapping engine: turns a raw source record into a unified record by following a
//! declarative definition. Default definitions are data (JSON compiled into the binary, one
//! per system and entity), so "how do fields map" is the definition itself, and per-connection
//! mappings can later run through the same engine at read time without a resync.

use ironbridge_model::api::SystemId;
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids;

/// How a source value is converted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Text (numbers are turned into text).
    #[default]
    String,
    /// Whole number.
    Integer,
    /// Decimal, normalised to a string without exponent.
    Decimal,
    /// A measurement as a JSON number (coordinates, speeds, headings), multiplied by `scale`
    /// when given (`1.609344`: miles to kilometres); from a number, or text that starts with
    /// one (`"38 mph"`).
    Number,
    /// Boolean (also `"true"`/`"false"`, `1`/`0`).
    Bool,
    /// Calendar date `YYYY-MM-DD` (a date-time is cut to its date; OData V2 `/Date(ms)/` is
    /// read too; `0001-01-01`, Business Central's empty date, is no date).
    Date,
    /// Date-time, normalised to RFC 3339 UTC (also from OData V2 `/Date(ms)/`, `/Date(ms+0000)/`).
    Datetime,
    /// A value looked up in `values`, else `default`.
    Enum,
    /// A key of another record, turned into our id for `entity`.
    Ref,
    /// A nested object built from `fields`.
    Object,
}

/// How one unified field is obtained.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Dotted path into the source record (`address.city`, `lines.0.qty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Conversion.
    #[serde(default)]
    pub kind: Kind,
    /// For `enum`: source value → unified value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
    /// Value used when the source has none (or, for `enum`, an unknown one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// For `ref`: the referenced entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity>,
    /// For `object`: the nested fields (paths relative to the same source object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<(String, FieldRule)>>,
    /// For `number`: the factor the source value is multiplied by (a unit conversion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// Where custom fields come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldsRule {
    /// Copy every member of the object at this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Copy every top-level member whose name starts with one of these (`custbody`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

/// A nested list, such as purchase-order lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRule {
    /// Unified field name (`line_items`).
    pub target: String,
    /// Path of the source array.
    pub path: String,
    /// Path of each element's key, relative to the element.
    pub remote_id: String,
    /// Fields of each element.
    pub fields: Vec<(String, FieldRule)>,
    /// Custom fields of each element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFieldsRule>,
}

/// The mapping of one entity of one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingDef {
    /// Source system.
    pub system: SystemId,
    /// Unified entity.
    pub entity: Entity,
    /// Path of the record's key.
    pub remote_id: String,
    /// Source creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_created_at: Option<FieldRule>,
    /// Source modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_updated_at: Option<FieldRule>,
    /// Source deletion flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_was_deleted: Option<FieldRule>,
    /// Unified fields, in output order.
    pub fields: Vec<(String, FieldRule)>,
    /// Custom fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFieldsRule>,
    /// Nested lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListRule>,
}

/// A mapped record: envelope facts plus the unified body.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Source key.
    pub remote_id: String,
    /// Source creation time.
    pub remote_created_at: Option<Timestamp>,
    /// Source modification time.
    pub remote_updated_at: Option<Timestamp>,
    /// Deleted at the source.
    pub remote_was_deleted: bool,
    /// Unified body (without `id` and the stored timestamps).
    pub data: Map<String, Value>,
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The record has no usable key.
    #[error("record has no `{0}` key")]
    MissingKey(String),
    /// A value could not be converted.
    #[error("field `{field}`: {problem}")]
    BadValue {
        /// Unified field.
        field: String,
        /// What was wrong.
        problem: String,
    },
}

/// Looks up a dotted path (`a.b.0.c`) in a JSON value.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_null()).then_some(current)
}

pub(crate) fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// OData V2 verbose JSON dates (SAP): `/Date(ms)/` (`Edm.DateTime`, UTC) and
/// `/Date(ms+0000)/` (`Edm.DateTimeOffset`: the milliseconds are UTC, the offset in minutes
/// only says which zone the value was entered in).
fn odata_v2_date(text: &str) -> Option<Timestamp> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner
        .get(1..)?
        .find(['+', '-'])
        .map_or(inner.len(), |i| i + 1);
    let ms: i64 = inner[..end].parse().ok()?;
    Some(Timestamp(ms.checked_mul(1000)?))
}

/// The number a text starts with (`"38 mph"` → 38).
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    s[..end].parse::<f64>().ok().filter(|n| n.is_finite())
}

pub(crate) fn convert(
    connection_id: &str,
    field: &str,
    rule: &FieldRule,
    source: &Value,
) -> Result<Value, MappingError> {
    let bad = |problem: &str| MappingError::BadValue {
        field: field.to_string(),
        problem: problem.to_string(),
    };
    if rule.kind == Kind::Object {
        let mut out = Map::new();
        for (name, sub) in rule.fields.iter().flatten() {
            out.insert(name.clone(), convert(connection_id, name, sub, source)?);
        }
        let empty = out.values().all(Value::is_null);
        return Ok(if empty {
            rule.default.clone().unwrap_or(Value::Null)
        } else {
            Value::Object(out)
        });
    }
    let Some(raw) = rule.path.as_deref().and_then(|p| lookup(source, p)) else {
        return Ok(rule.default.clone().unwrap_or(Value::Null));
    };
    Ok(match rule.kind {
        Kind::String => match raw {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            _ => return Err(bad("expected text")),
        },
        Kind::Integer => match raw {
            Value::Number(n) if n.is_i64() => raw.clone(),
            Value::String(s) => Value::from(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| bad("expected a whole number"))?,
            ),
            _ => return Err(bad("expected a whole number")),
        },
        Kind::Decimal => {
            let text = match raw {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad("expected a decimal")),
            };
            let d = text
                .parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| bad("expected a decimal"))?;
            Value::String(d.normalize().to_string())
        }
        Kind::Number => {
            let n = match raw {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => leading_number(s),
                _ => None,
            }
            .ok_or_else(|| bad("expected a number"))?;
            let n = n * rule.scale.unwrap_or(1.0);
            // Nine significant decimals are below a GPS fix's precision; they keep a scaled
            // value from printing as 77.24764800000001.
            let n = (n * 1e9).round() / 1e9;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| bad("expected a finite number"))?
        }
        Kind::Bool => match raw {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") || s == "T" || s == "1" => {
                Value::Bool(true)
            }
            Value::String(s) if s.eq_ignore_ascii_case("false") || s == "F" || s == "0" => {
                Value::Bool(false)
            }
            Value::Number(n) => Value::Bool(n.as_i64() != Some(0)),
            _ => return Err(bad("expected a boolean")),
        },
        Kind::Date => {
            let s = raw.as_str().ok_or_else(|| bad("expected a date"))?;
            if let Some(t) = odata_v2_date(s) {
                return Ok(Value::String(t.to_rfc3339()[..10].to_string()));
            }
            let date = s.get(..10).ok_or_else(|| bad("expected a date"))?;
            if date == "0001-01-01" {
                // Business Central's "no date".
                return Ok(rule.default.clone().unwrap_or(Value::Null));
            }
            time::Date::parse(
                date,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| bad("expected a YYYY-MM-DD date"))?;
            Value::String(date.to_string())
        }
        Kind::Datetime => {
            let s = raw.as_str().ok_or_else(|| bad("expected a date-time"))?;
            let t = odata_v2_date(s)
                .or_else(|| Timestamp::parse_rfc3339(s))
                .ok_or_else(|| bad("expected an RFC 3339 date-time"))?;
            Value::String(t.to_rfc3339())
        }
        Kind::Enum => {
            let key = key_text(raw).unwrap_or_default();
            match rule.values.as_ref().and_then(|v| v.get(&key)) {
                Some(v) => v.clone(),
                None => rule.default.clone().unwrap_or(Value::Null),
            }
        }
        Kind::Ref => {
            let entity = rule
                .entity
                .ok_or_else(|| bad("reference without an entity"))?;
            let key = key_text(raw).ok_or_else(|| bad("expected a key"))?;
            Value::String(ids::record_id(connection_id, entity, &key))
        }
        Kind::Object => unreachable!("handled above"),
    })
}

fn custom_fields(rule: Option<&CustomFieldsRule>, source: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(rule) = rule else { return out };
    if let Some(Value::Object(obj)) = rule.object.as_deref().and_then(|p| lookup(source, p)) {
        out.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Value::Object(obj) = source {
        for (k, v) in obj {
            if rule.prefixes.iter().any(|p| k.starts_with(p.as_str())) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn timestamp(
    connection_id: &str,
    name: &str,
    rule: Option<&FieldRule>,
    raw: &Value,
) -> Result<Option<Timestamp>, MappingError> {
    let Some(rule) = rule else { return Ok(None) };
    let value = convert(connection_id, name, rule, raw)?;
    Ok(value.as_str().and_then(Timestamp::parse_rfc3339))
}

impl MappingDef {
    /// Maps one raw record for a connection.
    pub fn apply(&self, connection_id: &str, raw: &Value) -> Result<Mapped, MappingError> {
        let remote_id = lookup(raw, &self.remote_id)
            .and_then(key_text)
            .ok_or_else(|| MappingError::MissingKey(self.remote_id.clone()))?;
        let remote_was_deleted = match &self.remote_was_deleted {
            Some(rule) => convert(connection_id, "remote_was_deleted", rule, raw)?
                .as_bool()
                .unwrap_or(false),
            None => false,
        };
        let mut data = Map::new();
        for (name, rule) in &self.fields {
            data.insert(name.clone(), convert(connection_id, name, rule, raw)?);
        }
        data.insert(
            "custom_fields".into(),
            Value::Object(custom_fields(self.custom_fields.as_ref(), raw)),
        );
        for list in &self.lists {
            let spec = self
                .entity
                .list(&list.target)
                .ok_or_else(|| MappingError::BadValue {
                    field: list.target.clone(),
                    problem: format!("{} has no such list", self.entity),
                })?;
            let mut items = Vec::new();
            if let Some(Value::Array(elements)) = lookup(raw, &list.path) {
                for element in elements {
                    let line_key = lookup(element, &list.remote_id)
                        .and_then(key_text)
                        .ok_or_else(|| {
                            MappingError::MissingKey(format!("{}.{}", list.path, list.remote_id))
                        })?;
                    let mut item = Map::new();
                    item.insert(
                        "id".into(),
                        Value::String(ids::list_item_id(
                            connection_id,
                            spec,
                            &remote_id,
                            &line_key,
                        )),
                    );
                    item.insert("remote_id".into(), Value::String(line_key));
                    for (name, rule) in &list.fields {
                        item.insert(name.clone(), convert(connection_id, name, rule, element)?);
                    }
                    item.insert(
                        "custom_fields".into(),
                        Value::Object(custom_fields(list.custom_fields.as_ref(), element)),
                    );
                    items.push(Value::Object(item));
                }
            }
            data.insert(list.target.clone(), Value::Array(items));
        }
        Ok(Mapped {
            remote_created_at: timestamp(
                connection_id,
                "remote_created_at",
                self.remote_created_at.as_ref(),
                raw,
            )?,
            remote_updated_at: timestamp(
                connection_id,
                "remote_updated_at",
                self.remote_updated_at.as_ref(),
                raw,
            )?,
            remote_id,
            remote_was_deleted,
            data,
        })
    }
}

/// What a read mapping could place of a unified write, in the source's shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reversed {
    /// The source fields set, at their mapped paths.
    pub source: Map<String, Value>,
    /// Unified fields given that the mapping cannot place (a path through a list element,
    /// an enum value no source value maps to, a field the mapping does not read): the
    /// connector places them itself or refuses them.
    pub left: Vec<String>,
}

/// Sets `value` at a dotted path of plain names, making objects on the way; false when the
/// path goes through a list element or a non-object.
fn place(out: &mut Map<String, Value>, path: &str, value: Value) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.parse::<usize>().is_ok())
    {
        return false;
    }
    let mut current = out;
    for part in &parts[..parts.len() - 1] {
        let next = current
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match next {
            Value::Object(map) => current = map,
            _ => return false,
        }
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    true
}

/// The source value of one unified value under `rule`, when the conversion can be undone.
fn unconvert(rule: &FieldRule, value: &Value) -> Option<Value> {
    match rule.kind {
        // References in a write already carry the source's key; other scalars are written
        // as given (a connector whose API wants another date format converts them).
        Kind::String
        | Kind::Integer
        | Kind::Decimal
        | Kind::Number
        | Kind::Bool
        | Kind::Date
        | Kind::Datetime
        | Kind::Ref => Some(value.clone()),
        Kind::Enum => rule
            .values
            .iter()
            .flatten()
            .find(|(_, unified)| *unified == value)
            .map(|(source, _)| Value::String(source.clone())),
        Kind::Object => None,
    }
}

fn reverse_fields(
    rules: &[(String, FieldRule)],
    given: &Map<String, Value>,
    out: &mut Map<String, Value>,
    left: &mut Vec<String>,
    prefix: &str,
) {
    for (name, value) in given {
        let placed = match rules.iter().find(|(n, _)| n == name) {
            Some((_, rule)) if rule.kind == Kind::Object => match (value, &rule.fields) {
                (Value::Object(nested), Some(fields)) => {
                    let before = left.len();
                    reverse_fields(fields, nested, out, left, &format!("{prefix}{name}."));
                    left.len() == before
                }
                _ => false,
            },
            Some((_, rule)) => match (rule.path.as_deref(), unconvert(rule, value)) {
                (Some(path), Some(v)) => place(out, path, v),
                _ => false,
            },
            None => false,
        };
        if !placed {
            left.push(format!("{prefix}{name}"));
        }
    }
}

fn reverse_custom(
    rule: Option<&CustomFieldsRule>,
    given: &Value,
    out: &mut Map<String, Value>,
) -> bool {
    let Value::Object(fields) = given else {
        return false;
    };
    match rule {
        Some(CustomFieldsRule {
            object: Some(path), ..
        }) => place(out, path, Value::Object(fields.clone())),
        Some(rule) if !rule.prefixes.is_empty() => {
            // Top-level members: only names the source would read back as custom.
            if !fields
                .keys()
                .all(|k| rule.prefixes.iter().any(|p| k.starts_with(p.as_str())))
            {
                return false;
            }
            out.extend(fields.clone());
            true
        }
        _ => false,
    }
}

impl MappingDef {
    /// Places a unified write's fields (references already the source's keys) in the source's
    /// shape by running this read mapping backwards where it can: plain paths, conversions
    /// that can be undone (an enum value through the source value that maps to it, the first
    /// when several do), nested objects, custom fields and lists. What it cannot place is
    /// returned in `left`.
    pub fn reverse(&self, given: &Map<String, Value>) -> Reversed {
        let mut out = Reversed::default();
        for (name, value) in given {
            if name == "custom_fields" {
                if !reverse_custom(self.custom_fields.as_ref(), value, &mut out.source) {
                    out.left.push(name.clone());
                }
                continue;
            }
            if let Some(list) = self.lists.iter().find(|l| &l.target == name) {
                let Value::Array(elements) = value else {
                    out.left.push(name.clone());
                    continue;
                };
                let mut items = Vec::with_capacity(elements.len());
                for (i, element) in elements.iter().enumerate() {
                    let mut item = Map::new();
                    if let Value::Object(fields) = element {
                        let (custom, plain): (Map<String, Value>, Map<String, Value>) = fields
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .partition(|(k, _)| k == "custom_fields");
                        reverse_fields(
                            &list.fields,
                            &plain,
                            &mut item,
                            &mut out.left,
                            &format!("{name}[{i}]."),
                        );
                        if let Some(c) = custom.get("custom_fields")
                            && !reverse_custom(list.custom_fields.as_ref(), c, &mut item)
                        {
                            out.left.push(format!("{name}[{i}].custom_fields"));
                        }
                    }
                    items.push(Value::Object(item));
                }
                if !place(&mut out.source, &list.path, Value::Array(items)) {
                    out.left.push(name.clone());
                }
                continue;
            }
            let one: Map<String, Value> = [(name.clone(), value.clone())].into_iter().collect();
            reverse_fields(&self.fields, &one, &mut out.source, &mut out.left, "");
        }
        out
    }
}

impl MappingDef {
    /// Problems of a definition against the entity catalogue: fields outside the unified
    /// body (they would be dropped), nested lists the entity does not have, references to
    /// nothing. Empty when it is sound.
    pub fn problems(&self) -> Vec<String> {
        let spec = self.entity.spec();
        let mut out = Vec::new();
        let check_rule = |name: &str, rule: &FieldRule, out: &mut Vec<String>| {
            if rule.kind == Kind::Ref && rule.entity.is_none() {
                out.push(format!("{name}: a reference without an entity"));
            }
            if rule.kind != Kind::Object && rule.path.is_none() && rule.default.is_none() {
                out.push(format!("{name}: neither a path nor a default"));
            }
        };
        for (name, rule) in &self.fields {
            if !spec.fields.contains(&name.as_str()) || name == "custom_fields" {
                out.push(format!("{name}: not a field of {}", self.entity));
            }
            check_rule(name, rule, &mut out);
        }
        for list in &self.lists {
            match self.entity.list(&list.target) {
                None => out.push(format!("{}: not a list of {}", list.target, self.entity)),
                Some(l) => {
                    for (name, rule) in &list.fields {
                        if !l.fields.contains(&name.as_str())
                            || ["id", "remote_id", "custom_fields"].contains(&name.as_str())
                        {
                            out.push(format!("{}.{name}: not a field of the list", list.target));
                        }
                        check_rule(name, rule, &mut out);
                    }
                }
            }
        }
        out.into_iter()
            .map(|p| format!("{} {}: {p}", self.system, self.entity))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> MappingDef {
        serde_json::from_value(json!({
            "system": "sandbox", "entity": "purchase_order", "remote_id": "id",
            "remote_updated_at": {"path": "updated", "kind": "datetime"},
            "remote_was_deleted": {"path": "gone", "kind": "bool"},
            "fields": [
                ["status", {"path": "st", "kind": "enum", "values": {"A": "approved"}, "default": "unknown"}],
                ["vendor_id", {"path": "vendor", "kind": "ref", "entity": "vendor"}],
                ["total_amount", {"path": "total", "kind": "decimal"}],
                ["order_date", {"path": "date", "kind": "date"}],
                ["address", {"kind": "object", "fields": [["city", {"path": "addr.city"}]]}]
            ],
            "custom_fields": {"object": "cf", "prefixes": ["custbody"]},
            "lists": [{"target": "line_items", "path": "lines", "remote_id": "n",
                       "fields": [["quantity", {"path": "q", "kind": "decimal"}]]}]
        }))
        .unwrap()
    }

    #[test]
    fn maps_fields_refs_enums_lists_and_custom_fields() {
        let raw = json!({"id": 42, "updated": "2026-01-02T03:04:05+01:00", "st": "A", "vendor": "V1",
            "total": "1250.500", "date": "2026-01-02T00:00:00Z", "addr": {"city": "Dayton"},
            "cf": {"project": "P-1"}, "custbody_x": 1,
            "lines": [{"n": 1, "q": 2}, {"n": "2", "q": "1e1"}]});
        let m = def().apply("conn_1", &raw).unwrap();
        assert_eq!(m.remote_id, "42");
        assert_eq!(
            m.remote_updated_at.unwrap().to_rfc3339(),
            "2026-01-02T02:04:05Z"
        );
        assert!(!m.remote_was_deleted);
        assert_eq!(m.data["status"], "approved");
        assert_eq!(
            m.data["vendor_id"],
            ids::record_id("conn_1", Entity::VENDOR, "V1")
        );
        assert_eq!(m.data["total_amount"], "1250.5");
        assert_eq!(m.data["order_date"], "2026-01-02");
        assert_eq!(m.data["address"], json!({"city": "Dayton"}));
        assert_eq!(
            m.data["custom_fields"],
            json!({"project": "P-1", "custbody_x": 1})
        );
        let lines = m.data["line_items"].as_array().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["remote_id"], "2");
        assert_eq!(lines[1]["quantity"], "10");
        assert_eq!(lines[0]["id"], ids::line_id("conn_1", "42", "1"));
    }

    #[test]
    fn numbers_scale_and_read_leading_numbers_of_text() {
        let rule = |scale| FieldRule {
            path: Some("v".into()),
            kind: Kind::Number,
            scale,
            ..FieldRule::default()
        };
        let at = |v: Value, scale| convert("c", "f", &rule(scale), &json!({ "v": v }));
        assert_eq!(at(json!(48), Some(1.609344)).unwrap(), json!(77.248512));
        assert_eq!(at(json!("38 mph"), None).unwrap(), json!(38.0));
        assert_eq!(at(json!("-84.33"), None).unwrap(), json!(-84.33));
        assert!(at(json!("fast"), None).is_err());
        assert!(at(json!(true), None).is_err());
    }

    #[test]
    fn odata_v2_dates_and_empty_dates_convert() {
        let rule = |kind| FieldRule {
            path: Some("d".into()),
            kind,
            ..FieldRule::default()
        };
        let conv = |kind, v: Value| convert("c", "f", &rule(kind), &json!({"d": v}));
        assert_eq!(
            conv(Kind::Datetime, json!("/Date(1767225600123+0000)/")).unwrap(),
            json!("2026-01-01T00:00:00.123Z")
        );
        assert_eq!(
            conv(Kind::Datetime, json!("/Date(1767225600000)/")).unwrap(),
            json!("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            conv(Kind::Date, json!("/Date(1767225600000)/")).unwrap(),
            json!("2026-01-01")
        );
        assert_eq!(conv(Kind::Date, json!("0001-01-01")).unwrap(), Value::Null);
        assert!(conv(Kind::Datetime, json!("/Date(x)/")).is_err());
    }

    #[test]
    fn unknown_enum_values_fall_back_and_bad_values_are_reported() {
        let raw = json!({"id": "1", "st": "ZZ", "total": "abc"});
        let err = def().apply("c", &raw).unwrap_err();
        assert_eq!(
            err,
            MappingError::BadValue {
                field: "total_amount".into(),
                problem: "expected a decimal".into()
            }
        );
        let raw = json!({"id": "1", "st": "ZZ", "gone": "true"});
        let m = def().apply("c", &raw).unwrap();
        assert_eq!(m.data["status"], "unknown");
        assert!(m.remote_was_deleted);
        assert_eq!(m.data["address"], Value::Null);
        assert_eq!(
            def().apply("c", &json!({"st": "A"})).unwrap_err(),
            MappingError::MissingKey("id".into())
        );
    }
}

#[cfg(test)]
mod problem_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn definitions_outside_the_catalogue_are_reported() {
        let def: MappingDef = serde_json::from_value(json!({
            "system": "sandbox", "entity": "vendor", "remote_id": "id",
            "fields": [["name", {"path": "n"}], ["colour", {"path": "c"}],
                       ["currency", {"kind": "ref"}]],
            "lists": [{"target": "line_items", "path": "l", "remote_id": "n", "fields": []}]
        }))
        .unwrap();
        let problems = def.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("colour: not a field of vendor"));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("reference without an entity"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("neither a path nor a default"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("line_items: not a list of vendor"))
        );
    }
}

#[cfg(test)]
mod reverse_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_are_placed_by_running_the_read_mapping_backwards() {
        let def: MappingDef = serde_json::from_value(json!({
            "system": "sandbox", "entity": "purchase_order", "remote_id": "id",
            "fields": [
                ["number", {"path": "header.no"}],
                ["status", {"path": "st", "kind": "enum", "values": {"A": "approved", "R": "approved", "D": "draft"}}],
                ["vendor_id", {"path": "vendor", "kind": "ref", "entity": "vendor"}],
                ["location_id", {"path": "items.0.plant", "kind": "ref", "entity": "location"}],
                ["order_date", {"path": "date", "kind": "date"}]
            ],
            "custom_fields": {"object": "cf"},
            "lists": [{"target": "line_items", "path": "lines", "remote_id": "n",
                       "fields": [["quantity", {"path": "q", "kind": "decimal"}],
                                  ["item_id", {"path": "it", "kind": "ref", "entity": "item"}]]}]
        }))
        .unwrap();
        let given = json!({
            "number": "PO-1", "status": "approved", "vendor_id": "V1", "location_id": "P1",
            "order_date": "2026-01-02", "memo": "not read", "custom_fields": {"project": "X"},
            "line_items": [{"item_id": "I9", "quantity": "2", "unit_price": "3"}]
        });
        let r = def.reverse(given.as_object().unwrap());
        assert_eq!(
            Value::Object(r.source.clone()),
            json!({"header": {"no": "PO-1"}, "st": "A", "vendor": "V1", "date": "2026-01-02",
                   "cf": {"project": "X"}, "lines": [{"it": "I9", "q": "2"}]})
        );
        let mut left = r.left;
        left.sort();
        assert_eq!(left, ["line_items[0].unit_price", "location_id", "memo"]);
        // Read forwards again, the placed fields come back as given.
        let mut raw = r.source;
        raw.insert("id".into(), json!("1"));
        raw["lines"][0]["n"] = json!(1);
        let m = def.apply("c", &Value::Object(raw)).unwrap();
        assert_eq!(
            (&m.data["number"], &m.data["status"], &m.data["order_date"]),
            (&json!("PO-1"), &json!("approved"), &json!("2026-01-02"))
        );
        assert_eq!(m.data["line_items"][0]["quantity"], "2");
    }
}
