//! The source fields a connection really has, found in its stored source payloads: every
//! path with a value, its type inferred from the values, a few examples, the conversions that
//! read all of them, and what the default mapping does with it.

use std::collections::BTreeMap;

use ironbridge_model::field_mappings::{ConversionType, RemoteFieldOut};
use serde_json::{Value, json};

use super::target::{kind_of, type_of};
use crate::mapping::{FieldRule, Kind, MappingDef, convert};

/// Distinct paths kept per entity: payloads with more are cut, not grown without bound.
const MAX_PATHS: usize = 2_000;
/// Nesting followed into objects.
const MAX_DEPTH: usize = 5;

const TRIED: [ConversionType; 6] = [
    ConversionType::Text,
    ConversionType::Integer,
    ConversionType::Decimal,
    ConversionType::Boolean,
    ConversionType::Date,
    ConversionType::DateTime,
];

#[derive(Debug, Default)]
struct Stats {
    /// JSON kinds seen, as inferred type names.
    kinds: Vec<&'static str>,
    examples: Vec<Value>,
    with_value: u64,
    /// `TRIED[i]` failed on some value.
    failed: [bool; 6],
    /// The system's description of it: its type and label.
    described: Option<(String, Option<String>)>,
}

/// Source fields found so far.
#[derive(Debug, Default)]
pub struct Discovery {
    fields: BTreeMap<(String, String), Stats>,
    /// Payloads observed.
    pub sampled: u64,
}

fn inferred(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "decimal",
        Value::String(s) => {
            let date = s.len() == 10
                && time::Date::parse(
                    s,
                    &time::macros::format_description!("[year]-[month]-[day]"),
                )
                .is_ok();
            if date {
                "date"
            } else if s.starts_with("/Date(")
                || (s.len() >= 20 && ironbridge_model::Timestamp::parse_rfc3339(s).is_some())
            {
                "date_time"
            } else {
                "text"
            }
        }
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Discovery {
    /// Adds one source payload of an entity mapped by `def`.
    pub fn observe(&mut self, def: &MappingDef, raw: &Value) {
        self.sampled += 1;
        self.walk(def, "record", "", raw, 0);
    }

    fn walk(&mut self, def: &MappingDef, scope: &str, prefix: &str, v: &Value, depth: usize) {
        let Value::Object(members) = v else { return };
        for (name, value) in members {
            let path = format!("{prefix}{name}");
            match value {
                Value::Object(_) if depth < MAX_DEPTH => {
                    self.walk(def, scope, &format!("{path}."), value, depth + 1);
                }
                Value::Array(elements) => {
                    let list = (scope == "record")
                        .then(|| def.lists.iter().find(|l| l.path == path))
                        .flatten();
                    match list {
                        Some(list) => {
                            let target = list.target.clone();
                            for e in elements {
                                self.walk(def, &target, "", e, depth + 1);
                            }
                        }
                        None => {
                            self.note(scope, &path, value);
                            if let Some(first @ Value::Object(_)) = elements.first()
                                && depth < MAX_DEPTH
                            {
                                self.walk(def, scope, &format!("{path}.0."), first, depth + 1);
                            }
                        }
                    }
                }
                _ => self.note(scope, &path, value),
            }
        }
    }

    fn note(&mut self, scope: &str, path: &str, value: &Value) {
        let key = (scope.to_string(), path.to_string());
        if !self.fields.contains_key(&key) && self.fields.len() >= MAX_PATHS {
            return;
        }
        let stats = self.fields.entry(key).or_default();
        let kind = inferred(value);
        if !stats.kinds.contains(&kind) {
            stats.kinds.push(kind);
        }
        if value.is_null() {
            return;
        }
        stats.with_value += 1;
        let example = match value {
            Value::String(s) if s.chars().count() > 100 => {
                Value::String(s.chars().take(100).collect())
            }
            Value::Array(_) | Value::Object(_) => return,
            v => v.clone(),
        };
        if stats.examples.len() < 3 && !stats.examples.contains(&example) {
            stats.examples.push(example);
        }
        let holder = json!({ "v": value });
        for (i, t) in TRIED.iter().enumerate() {
            if !stats.failed[i] {
                let rule = FieldRule {
                    path: Some("v".into()),
                    kind: kind_of(*t),
                    ..FieldRule::default()
                };
                stats.failed[i] = convert("", "v", &rule, &holder).is_err();
            }
        }
    }

    /// Adds the system's description of its fields: each marks the field described, and
    /// adds it when no stored record has it.
    pub fn describe(&mut self, fields: &[crate::connector::DescribedField]) {
        for f in fields {
            let key = (f.scope.clone(), f.path.clone());
            if !self.fields.contains_key(&key) && self.fields.len() >= MAX_PATHS {
                continue;
            }
            self.fields.entry(key).or_default().described = Some((f.kind.clone(), f.label.clone()));
        }
    }

    /// Whether a path was seen in `scope` (`record` or a list), with or without a value.
    pub fn has(&self, scope: &str, path: &str) -> bool {
        self.fields
            .contains_key(&(scope.to_string(), path.to_string()))
    }

    /// The fields found, with what the default mapping `def` fills from each.
    pub fn fields(self, def: &MappingDef) -> Vec<RemoteFieldOut> {
        self.fields
            .into_iter()
            .map(|((scope, path), s)| {
                let described_kind = s.described.as_ref().map(|(k, _)| k.as_str());
                let kind = match s.kinds.as_slice() {
                    [] => described_kind.unwrap_or("null"),
                    [one] => one,
                    many => {
                        let kinds: Vec<_> = many.iter().filter(|k| **k != "null").collect();
                        match kinds.as_slice() {
                            [one] => one,
                            _ if kinds.iter().all(|k| ["integer", "decimal"].contains(k)) => {
                                "decimal"
                            }
                            _ => "text",
                        }
                    }
                };
                let conversions = if s.with_value == 0 {
                    Vec::new()
                } else {
                    TRIED
                        .iter()
                        .zip(s.failed)
                        .filter(|(_, failed)| !failed)
                        .map(|(t, _)| *t)
                        .collect()
                };
                RemoteFieldOut {
                    mapped_to: mapped_to(def, &scope, &path),
                    path,
                    scope,
                    kind: kind.to_string(),
                    examples: s.examples,
                    records_with_value: s.with_value,
                    conversions,
                    described: s.described.is_some(),
                    label: s.described.and_then(|(_, l)| l),
                }
            })
            .collect()
    }
}

/// The unified fields the default mapping fills from a source path.
fn mapped_to(def: &MappingDef, scope: &str, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rules = |rules: &[(String, FieldRule)], prefix: &str| {
        for (name, rule) in rules {
            if rule.kind == Kind::Object {
                for (member, r) in rule.fields.iter().flatten() {
                    if r.path.as_deref() == Some(path) {
                        out.push(format!("{prefix}{name}.{member}"));
                    }
                }
            } else if rule.path.as_deref() == Some(path) && type_of(rule.kind).is_some() {
                out.push(format!("{prefix}{name}"));
            }
        }
    };
    if scope == "record" {
        rules(&def.fields, "");
        if def.remote_id == path {
            out.push("remote_id".into());
        }
    } else if let Some(list) = def.lists.iter().find(|l| l.target == scope) {
        rules(&list.fields, &format!("{scope}."));
        if list.remote_id == path {
            out.push(format!("{scope}.remote_id"));
        }
    }
    let custom = if scope == "record" {
        def.custom_fields.as_ref()
    } else {
        def.lists
            .iter()
            .find(|l| l.target == scope)
            .and_then(|l| l.custom_fields.as_ref())
    };
    if let Some(custom) = custom {
        let prefix = if scope == "record" {
            String::new()
        } else {
            format!("{scope}.")
        };
        if !path.contains('.') && custom.prefixes.iter().any(|p| path.starts_with(p.as_str())) {
            out.push(format!("{prefix}custom_fields.{path}"));
        }
        if let Some(object) = &custom.object
            && let Some(member) = path.strip_prefix(&format!("{object}."))
            && !member.contains('.')
        {
            out.push(format!("{prefix}custom_fields.{member}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_types_examples_and_defaults_are_found() {
        let def: MappingDef = serde_json::from_value(json!({
            "system": "sandbox", "entity": "purchase_order", "remote_id": "id",
            "fields": [["memo", {"path": "memo"}], ["vendor_id", {"path": "entity.id", "kind": "ref", "entity": "vendor"}]],
            "custom_fields": {"prefixes": ["custbody"]},
            "lists": [{"target": "line_items", "path": "lines", "remote_id": "line",
                       "fields": [["quantity", {"path": "qty", "kind": "decimal"}]]}]
        }))
        .unwrap();
        let mut d = Discovery::default();
        d.observe(
            &def,
            &json!({"id": "1", "memo": "a", "entity": {"id": "V1"}, "custbody_cc": "12",
                    "when": "2026-01-02", "lines": [{"line": 1, "qty": "2.5"}], "tags": [{"t": 1}]}),
        );
        d.observe(
            &def,
            &json!({"id": "2", "memo": null, "custbody_cc": 13, "when": "2026-02-03",
                    "lines": [{"line": 2, "qty": 3}]}),
        );
        assert!(d.has("record", "memo") && d.has("line_items", "qty"));
        assert!(!d.has("record", "qty"));
        let fields = d.fields(&def);
        let f = |scope: &str, path: &str| {
            fields
                .iter()
                .find(|f| f.scope == scope && f.path == path)
                .unwrap()
                .clone()
        };
        let memo = f("record", "memo");
        assert_eq!((memo.kind.as_str(), memo.records_with_value), ("text", 1));
        assert_eq!(memo.mapped_to, ["memo"]);
        let cc = f("record", "custbody_cc");
        assert_eq!(cc.mapped_to, ["custom_fields.custbody_cc"]);
        assert!(cc.conversions.contains(&ConversionType::Integer));
        assert!(!cc.conversions.contains(&ConversionType::Date));
        assert_eq!(f("record", "when").kind, "date");
        assert_eq!(f("record", "entity.id").mapped_to, ["vendor_id"]);
        assert_eq!(f("line_items", "qty").mapped_to, ["line_items.quantity"]);
        // Numbers sent as text stay text; the decimal conversion reads them all.
        assert_eq!(f("line_items", "qty").kind, "text");
        assert!(
            f("line_items", "qty")
                .conversions
                .contains(&ConversionType::Decimal)
        );
        assert_eq!(f("record", "tags.0.t").kind, "integer");
        assert_eq!(f("record", "id").mapped_to, ["remote_id"]);
    }
}
