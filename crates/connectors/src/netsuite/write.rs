//! Writes through the record API: purchase-order bodies, vendor and inventory-item bodies
//! (the read mapping run backwards, then put in the record API's types and names), and
//! NetSuite's error bodies turned into connector errors on unified field names.

use ironbridge_core::connector::{
    ConnectorError, PurchaseOrderLineWrite, PurchaseOrderUpdate, PurchaseOrderWrite, UnifiedWrite,
};
use ironbridge_model::Entity;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

/// NetSuite's default internal ids of the common currencies (a new account's currency list).
const CURRENCIES: &[(&str, &str)] = &[("USD", "1"), ("GBP", "2"), ("CAD", "3"), ("EUR", "4")];

fn number(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0
        && let Some(i) = d.to_i64()
    {
        return json!(i);
    }
    d.to_f64().map_or(Value::Null, |f| json!(f))
}

fn reference(id: &str) -> Value {
    json!({ "id": id })
}

fn lines(lines: &[PurchaseOrderLineWrite], default_date: Option<&str>) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut m = Map::new();
            m.insert("item".into(), reference(&l.item_remote_id));
            m.insert("quantity".into(), number(l.quantity));
            if let Some(p) = l.unit_price {
                m.insert("rate".into(), number(p));
            }
            if let Some(d) = &l.description {
                m.insert("description".into(), json!(d));
            }
            if let Some(d) = l.expected_delivery_date.as_deref().or(default_date) {
                m.insert("expectedReceiptDate".into(), json!(d));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "items": items })
}

fn custom(m: &mut Map<String, Value>, fields: &Map<String, Value>) {
    for (k, v) in fields {
        // Selects are written as references, as NetSuite reads them.
        let value = match v {
            Value::Object(o) if o.contains_key("id") => json!({ "id": o["id"] }),
            other => other.clone(),
        };
        m.insert(k.clone(), value);
    }
}

/// The `POST /record/v1/purchaseOrder` body; a create's reference is its `externalId`, which
/// NetSuite keeps unique per record type and finds as `eid:{externalId}`.
pub fn create_body(
    order: &PurchaseOrderWrite,
    external_id: Option<&str>,
) -> Result<Value, ConnectorError> {
    let mut m = Map::new();
    m.insert("entity".into(), reference(&order.vendor_remote_id));
    if let Some(n) = &order.number {
        m.insert("tranId".into(), json!(n));
    }
    if let Some(l) = &order.location_remote_id {
        m.insert("location".into(), reference(l));
    }
    if let Some(c) = &order.currency {
        let id = CURRENCIES
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(c))
            .map(|(_, id)| *id)
            .ok_or_else(|| ConnectorError::BusinessRule {
                remote_code: "INVALID_CURRENCY".into(),
                message: format!("Currency {c} is not one the NetSuite connector can write (USD, GBP, CAD, EUR); leave it out to use the vendor's currency."),
                param: Some("currency".into()),
            })?;
        m.insert("currency".into(), reference(id));
    }
    if let Some(d) = &order.order_date {
        m.insert("tranDate".into(), json!(d));
    }
    if let Some(memo) = &order.memo {
        m.insert("memo".into(), json!(memo));
    }
    custom(&mut m, &order.custom_fields);
    // After the custom fields: the reference is what the order is found by.
    if let Some(eid) = external_id {
        m.insert("externalId".into(), json!(eid));
    }
    m.insert(
        "item".into(),
        lines(&order.lines, order.expected_delivery_date.as_deref()),
    );
    Ok(Value::Object(m))
}

/// The `PATCH` body and whether the item sublist is replaced (`?replace=item`).
pub fn update_body(update: &PurchaseOrderUpdate) -> Result<(Value, bool), ConnectorError> {
    let mut m = Map::new();
    if let Some(l) = &update.location_remote_id {
        m.insert("location".into(), reference(l));
    }
    if let Some(memo) = &update.memo {
        m.insert("memo".into(), json!(memo));
    }
    custom(&mut m, &update.custom_fields);
    let replace = match &update.lines {
        Some(new_lines) => {
            m.insert(
                "item".into(),
                lines(new_lines, update.expected_delivery_date.as_deref()),
            );
            true
        }
        None if update.expected_delivery_date.is_some() => {
            // NetSuite keeps expected receipt dates on the lines, and the item sublist is not
            // keyed: a date can only be set by replacing the lines.
            return Err(ConnectorError::Unsupported(
                "NetSuite keeps expected delivery dates on lines: send the lines with the new date"
                    .into(),
            ));
        }
        None => false,
    };
    Ok((Value::Object(m), replace))
}

/// The record type a write of `entity` goes to (`None`: none is written).
pub fn record_type(entity: Entity) -> Option<&'static str> {
    if entity == Entity::VENDOR {
        Some("vendor")
    } else if entity == Entity::ITEM {
        Some("inventoryItem")
    } else {
        None
    }
}

/// Where the record API takes a unified field that its read (SuiteQL) names otherwise.
const WRITE_NAMES: &[(&str, &str)] = &[("description", "salesDescription")];

/// The internal id of a currency code, for `{"id": …}` references.
fn currency_id(code: &str) -> Option<&'static str> {
    CURRENCIES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, id)| *id)
}

/// A vendor or inventory-item body: the read mapping run backwards, then the record API's
/// types (booleans, numbers, `{"id"}` references) and names.
pub fn record_body(entity: Entity, write: &UnifiedWrite) -> Result<Value, ConnectorError> {
    let def = super::DESCRIPTOR.mapping(entity).ok_or_else(|| {
        ConnectorError::Unsupported(format!("NetSuite has no mapping of {entity}"))
    })?;
    let reversed = def.reverse(&write.fields);
    if let Some(left) = reversed.left.first() {
        return Err(ConnectorError::Unsupported(format!(
            "Ironbridge cannot write `{left}` to a NetSuite {}",
            entity.spec().label
        )));
    }
    let mut body = reversed.source;
    if let Some(v) = body.remove("isInactive") {
        body.insert(
            "isInactive".into(),
            Value::Bool(v.as_str() == Some("true") || v == Value::Bool(true)),
        );
    }
    if body.contains_key("currency") {
        let code = write.text("currency").unwrap_or_default();
        let id = currency_id(&code).ok_or_else(|| ConnectorError::BusinessRule {
            remote_code: "INVALID_CURRENCY".into(),
            message: format!(
                "Currency {code} is not one the NetSuite connector can write (USD, GBP, CAD, EUR)."
            ),
            param: Some("currency".into()),
        })?;
        body.insert("currency".into(), reference(id));
    }
    // The record type carries the item type; it is not a field of the body.
    body.remove("itemType");
    for (read, write_name) in WRITE_NAMES {
        if let Some(v) = body.remove(*read) {
            body.insert((*write_name).into(), v);
        }
    }
    if let Some(Value::String(cost)) = body.get("cost") {
        let cost: Decimal = cost.parse().map_err(|_| ConnectorError::InvalidSettings {
            param: "unit_cost".into(),
            message: "`unit_cost` is not a decimal".into(),
        })?;
        body.insert("cost".into(), number(cost));
    }
    Ok(Value::Object(body))
}

/// The unified field a record-API error path of a vendor or item names.
fn record_param(entity: Entity, path: &str) -> Option<String> {
    let head = path.split(['.', '[']).next().unwrap_or(path);
    if let Some((read, _)) = WRITE_NAMES.iter().find(|(_, w)| *w == head) {
        return Some((*read).to_string());
    }
    let def = super::DESCRIPTOR.mapping(entity)?;
    def.fields
        .iter()
        .find(|(_, rule)| {
            rule.path
                .as_deref()
                .is_some_and(|p| p == head || p.starts_with(&format!("{head}.")))
        })
        .map(|(name, _)| name.clone())
        .or_else(|| {
            let custom = def.custom_fields.as_ref()?;
            custom
                .prefixes
                .iter()
                .any(|pre| head.starts_with(pre.as_str()))
                .then(|| format!("custom_fields.{head}"))
        })
}

/// A rejected vendor or item write as a connector error.
pub fn record_error(entity: Entity, status: u16, body: &Value) -> ConnectorError {
    let (code, detail, path) = error_detail(body);
    match status {
        400 => ConnectorError::BusinessRule {
            remote_code: code,
            message: detail,
            param: path.as_deref().and_then(|p| record_param(entity, p)),
        },
        _ => write_error(status, body),
    }
}

/// NetSuite's error path (`entity`, `item.items[2].item`) as a unified field name.
pub fn param_of(path: &str) -> Option<String> {
    let header = match path {
        "entity" => Some("vendor_id"),
        "location" => Some("location_id"),
        "currency" => Some("currency"),
        "tranDate" => Some("order_date"),
        "tranId" => Some("number"),
        "memo" => Some("memo"),
        "item" | "item.items" => Some("line_items"),
        "externalId" => Some("reference"),
        _ => None,
    };
    if let Some(h) = header {
        return Some(h.to_string());
    }
    let rest = path.strip_prefix("item.items[")?;
    let (index, field) = rest.split_once(']')?;
    let index: usize = index.parse().ok()?;
    let field = match field.trim_start_matches('.') {
        "item" => "item_id",
        "quantity" => "quantity",
        "rate" => "unit_price",
        "description" => "description",
        "expectedReceiptDate" => "expected_delivery_date",
        "" => return Some(format!("line_items[{index}]")),
        _ => return Some(format!("line_items[{index}]")),
    };
    Some(format!("line_items[{index}].{field}"))
}

/// The first `o:errorDetails` entry: code, detail, path.
pub fn error_detail(body: &Value) -> (String, String, Option<String>) {
    let first = body.get("o:errorDetails").and_then(|d| d.get(0));
    let code = first
        .and_then(|d| d.get("o:errorCode"))
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN")
        .to_string();
    let detail = first
        .and_then(|d| d.get("detail"))
        .and_then(Value::as_str)
        .or_else(|| body.get("title").and_then(Value::as_str))
        .unwrap_or("NetSuite rejected the request.")
        .to_string();
    let path = first
        .and_then(|d| d.get("o:errorPath"))
        .and_then(Value::as_str)
        .map(str::to_string);
    (code, detail, path)
}

/// A rejected write as a connector error.
pub fn write_error(status: u16, body: &Value) -> ConnectorError {
    let (code, detail, path) = error_detail(body);
    match status {
        401 => ConnectorError::Unauthorized,
        // The role lacks a permission (`INSUFFICIENT_PERMISSION`): the credentials are good.
        403 => ConnectorError::Forbidden {
            remote_code: code,
            message: detail,
        },
        404 => ConnectorError::NotFound,
        400 if detail.to_ascii_lowercase().contains("closed transaction") => {
            ConnectorError::State {
                remote_code: code,
                message: detail,
            }
        }
        400 => ConnectorError::BusinessRule {
            remote_code: code,
            message: detail,
            param: path.as_deref().and_then(param_of),
        },
        _ => ConnectorError::Upstream(format!("NetSuite answered {status} {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_paths_become_unified_params() {
        assert_eq!(param_of("entity").as_deref(), Some("vendor_id"));
        assert_eq!(
            param_of("item.items[3].item").as_deref(),
            Some("line_items[3].item_id")
        );
        assert_eq!(
            param_of("item.items[0].quantity").as_deref(),
            Some("line_items[0].quantity")
        );
        assert_eq!(param_of("custbody_x"), None);
    }

    #[test]
    fn decimals_are_written_as_json_numbers() {
        assert_eq!(number(Decimal::new(1200, 2)), json!(12));
        assert_eq!(number(Decimal::new(1250, 2)), json!(12.5));
    }
}
