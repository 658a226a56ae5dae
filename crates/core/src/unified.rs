//! The exact shape of each unified record: every field present (null when the source has no
//! value), in the same order, whatever system it came from. Mappings decide values; this
//! module decides shape, so a system whose mapping omits a field still answers like the others.

use ironbridge_model::Entity;
use serde_json::{Map, Value};

const PURCHASE_ORDER: &[&str] = &[
    "number",
    "status",
    "remote_status",
    "vendor_id",
    "location_id",
    "currency",
    "order_date",
    "expected_delivery_date",
    "subtotal",
    "tax_amount",
    "total_amount",
    "memo",
    "custom_fields",
    "line_items",
];
const LINE: &[&str] = &[
    "id",
    "remote_id",
    "line_number",
    "item_id",
    "description",
    "quantity",
    "quantity_received",
    "unit_of_measure",
    "unit_price",
    "total_amount",
    "expected_delivery_date",
    "custom_fields",
];
const VENDOR: &[&str] = &[
    "code",
    "name",
    "status",
    "email",
    "phone",
    "tax_id",
    "currency",
    "payment_terms",
    "address",
    "custom_fields",
];
const ITEM: &[&str] = &[
    "code",
    "name",
    "description",
    "item_type",
    "status",
    "unit_of_measure",
    "unit_cost",
    "quantity_on_hand",
    "quantity_available",
    "custom_fields",
];
const LOCATION: &[&str] = &[
    "code",
    "name",
    "location_type",
    "status",
    "address",
    "custom_fields",
];

/// The unified body's fields of an entity (the envelope fields are added when rendering).
pub fn fields(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::PurchaseOrder => PURCHASE_ORDER,
        Entity::Vendor => VENDOR,
        Entity::Item => ITEM,
        Entity::Location => LOCATION,
    }
}

fn shape(fields: &[&str], mut data: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(fields.len());
    for &field in fields {
        let value = data.remove(field).unwrap_or(Value::Null);
        let value = match (field, value) {
            ("custom_fields", Value::Null) => Value::Object(Map::new()),
            ("line_items", Value::Null) => Value::Array(Vec::new()),
            (_, v) => v,
        };
        out.insert(field.to_string(), value);
    }
    if !data.is_empty() {
        tracing::debug!(fields = ?data.keys().collect::<Vec<_>>(), "mapped fields outside the unified model were dropped");
    }
    out
}

/// Gives a mapped body the entity's exact shape.
pub fn complete(entity: Entity, data: Map<String, Value>) -> Map<String, Value> {
    let mut out = shape(fields(entity), data);
    if let Some(Value::Array(lines)) = out.get_mut("line_items") {
        for line in lines.iter_mut() {
            if let Value::Object(map) = std::mem::take(line) {
                *line = Value::Object(shape(LINE, map));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironbridge_model::entities::{Item, Location, PurchaseOrder, Vendor};
    use serde_json::json;

    fn envelope(mut body: Map<String, Value>) -> Value {
        for (k, v) in [
            ("id", json!("x_1")),
            ("remote_id", json!("1")),
            ("created_at", json!("2026-01-01T00:00:00Z")),
            ("modified_at", json!("2026-01-01T00:00:00Z")),
            ("remote_created_at", Value::Null),
            ("remote_updated_at", Value::Null),
            ("remote_was_deleted", json!(false)),
        ] {
            body.insert(k.into(), v);
        }
        Value::Object(body)
    }

    /// The lists must name exactly the model's fields: a sparse body completed and
    /// round-tripped through the typed model keeps exactly the same keys.
    #[test]
    fn field_lists_match_the_model() {
        let enums = |entity| match entity {
            Entity::PurchaseOrder => {
                json!({"status": "draft", "line_items": [{"id": "pol_1", "remote_id": "1"}]})
            }
            Entity::Vendor => json!({"status": "active"}),
            Entity::Item => json!({"status": "active", "item_type": "inventory"}),
            Entity::Location => json!({"status": "active", "location_type": "warehouse"}),
        };
        for entity in Entity::ALL {
            let body = complete(entity, enums(entity).as_object().unwrap().clone());
            let value = envelope(body);
            let typed = match entity {
                Entity::PurchaseOrder => serde_json::to_value(
                    serde_json::from_value::<PurchaseOrder>(value.clone()).unwrap(),
                ),
                Entity::Vendor => {
                    serde_json::to_value(serde_json::from_value::<Vendor>(value.clone()).unwrap())
                }
                Entity::Item => {
                    serde_json::to_value(serde_json::from_value::<Item>(value.clone()).unwrap())
                }
                Entity::Location => {
                    serde_json::to_value(serde_json::from_value::<Location>(value.clone()).unwrap())
                }
            }
            .unwrap();
            let keys = |v: &Value| {
                v.as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>()
            };
            assert_eq!(keys(&typed), keys(&value), "{entity}");
            if entity == Entity::PurchaseOrder {
                assert_eq!(keys(&typed["line_items"][0]), keys(&value["line_items"][0]));
            }
        }
    }

    #[test]
    fn missing_fields_become_null_and_unknown_ones_are_dropped() {
        let body = json!({"name": "Acme", "nickname": "A", "status": "active"})
            .as_object()
            .unwrap()
            .clone();
        let out = complete(Entity::Vendor, body);
        assert_eq!(out.keys().map(String::as_str).collect::<Vec<_>>(), VENDOR);
        assert_eq!(
            (&out["email"], &out["custom_fields"]),
            (&Value::Null, &json!({}))
        );
        assert!(!out.contains_key("nickname"));
    }
}
