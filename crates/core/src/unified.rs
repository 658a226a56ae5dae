//! The exact shape of each unified record: every field present (null when the source has no
//! value), in the same order, whatever system it came from. Mappings decide values; this
//! module decides shape, so a system whose mapping omits a field still answers like the others.

use ironbridge_model::Entity;
use serde_json::{Map, Value};

/// The unified body's fields of an entity (the envelope fields are added when rendering).
pub fn fields(entity: Entity) -> &'static [&'static str] {
    entity.spec().fields
}

fn shape(fields: &[&str], mut data: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(fields.len());
    for &field in fields {
        let value = data.remove(field).unwrap_or(Value::Null);
        let value = match (field, value) {
            ("custom_fields", Value::Null) => Value::Object(Map::new()),
            (_, v) => v,
        };
        out.insert(field.to_string(), value);
    }
    if !data.is_empty() {
        tracing::debug!(fields = ?data.keys().collect::<Vec<_>>(), "mapped fields outside the unified model were dropped");
    }
    out
}

/// Gives a mapped body the entity's exact shape, nested lists included (an absent list is an
/// empty one).
pub fn complete(entity: Entity, data: Map<String, Value>) -> Map<String, Value> {
    let spec = entity.spec();
    let mut out = shape(spec.fields, data);
    for list in spec.lists {
        match out.get_mut(list.field) {
            Some(Value::Array(elements)) => {
                for element in elements.iter_mut() {
                    if let Value::Object(map) = std::mem::take(element) {
                        *element = Value::Object(shape(list.fields, map));
                    }
                }
            }
            Some(other) => *other = Value::Array(Vec::new()),
            None => {}
        }
    }
    out
}

/// Checks that a mapped record, completed to its shape and given an envelope, is a valid
/// value of the entity's unified type (the decoding error else): what every mapping must
/// produce.
pub fn check_mapped(entity: Entity, mapped: &crate::mapping::Mapped) -> Result<(), String> {
    let mut body = complete(entity, mapped.data.clone());
    let ts = |t: Option<ironbridge_model::Timestamp>| {
        t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
    };
    for (k, v) in [
        ("id", Value::String(format!("{}_check", entity.id_prefix()))),
        ("remote_id", Value::String(mapped.remote_id.clone())),
        ("created_at", Value::String("2026-01-01T00:00:00Z".into())),
        ("modified_at", Value::String("2026-01-01T00:00:00Z".into())),
        ("remote_created_at", ts(mapped.remote_created_at)),
        ("remote_updated_at", ts(mapped.remote_updated_at)),
        ("remote_was_deleted", Value::Bool(mapped.remote_was_deleted)),
    ] {
        body.insert(k.into(), v);
    }
    (entity.spec().schema.decodes)(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_become_null_and_unknown_ones_are_dropped() {
        let body = json!({"name": "Acme", "nickname": "A", "status": "active"})
            .as_object()
            .unwrap()
            .clone();
        let out = complete(Entity::VENDOR, body);
        assert_eq!(
            out.keys().map(String::as_str).collect::<Vec<_>>(),
            Entity::VENDOR.spec().fields
        );
        assert_eq!(
            (&out["email"], &out["custom_fields"]),
            (&Value::Null, &json!({}))
        );
        assert!(!out.contains_key("nickname"));
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_get_their_shape_and_a_missing_list_is_empty() {
        let body = json!({"status": "draft", "line_items": [{"remote_id": "1", "extra": 2}]});
        let out = complete(Entity::PURCHASE_ORDER, body.as_object().unwrap().clone());
        let line = out["line_items"][0].as_object().unwrap();
        assert_eq!(
            line.keys().map(String::as_str).collect::<Vec<_>>(),
            Entity::PURCHASE_ORDER.spec().lists[0].fields
        );
        assert_eq!(line["custom_fields"], json!({}));
        let bare = complete(Entity::PURCHASE_ORDER, Map::new());
        assert_eq!(bare["line_items"], json!([]));
    }
}
