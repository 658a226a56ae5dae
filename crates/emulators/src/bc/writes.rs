//! API v2.0 writes: create a purchase order (deep insert of lines, 201), add lines (201), PATCH with
//! `If-Match` (200 with the entity; stale → `Request_EntityChanged`), DELETE (204).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Bc;
use super::api::{Ctx, Res, Set, json_status};
use super::errors::BcError;
use super::model::{self, Kind};
use crate::common::clock::{day_start, parse_rfc3339};
use crate::common::datagen::{EMPLOYEES, PoLine, PoStatus, PurchaseOrder};
use crate::common::{Dataset, DeletedThrough, RecordKind};

const PO_WRITABLE: [&str; 6] = [
    "vendorId",
    "vendorNumber",
    "orderDate",
    "postingDate",
    "shipToContact",
    "purchaseOrderLines",
];

/// `shipToContact` (Text[100]) when the body sets it; empty clears it.
fn ship_to_contact(m: &Map<String, Value>) -> Result<Option<Option<String>>, BcError> {
    let Some(v) = m.get("shipToContact") else {
        return Ok(None);
    };
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        _ => {
            return Err(BcError::bad(
                "BadRequest",
                "Cannot convert a primitive value to the expected type 'Edm.String'.",
            ));
        }
    };
    let len = text.chars().count();
    if len > 100 {
        return Err(BcError::bad(
            "Application_StringExceededLength",
            format!(
                "The length of the string is {len}, but it must be less than or equal to 100 characters. Value: {text}"
            ),
        ));
    }
    Ok(Some((!text.is_empty()).then_some(text)))
}
const LINE_WRITABLE: [&str; 7] = [
    "documentId",
    "sequence",
    "itemId",
    "lineType",
    "lineObjectNumber",
    "quantity",
    "directUnitCost",
];
const LINE_ALSO: [&str; 2] = ["description", "unitOfMeasureCode"];

fn body(b: &[u8]) -> Result<Map<String, Value>, BcError> {
    match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(BcError::bad(
            "BadRequest",
            "The request body is not a valid JSON object.",
        )),
    }
}

/// Unknown properties and read-only ones are rejected as BC does.
fn check(
    m: &Map<String, Value>,
    writable: &[&str],
    sample: Option<&Value>,
    type_name: &str,
) -> Result<(), BcError> {
    for k in m.keys() {
        if k.starts_with('@')
            || writable.contains(&k.as_str())
            || (type_name == "purchaseOrderLine" && LINE_ALSO.contains(&k.as_str()))
        {
            continue;
        }
        if sample.is_some_and(|s| s.get(k).is_some()) {
            return Err(BcError::bad(
                "BadRequest_InvalidOperation",
                format!("The property '{k}' is read-only and cannot be modified."),
            ));
        }
        return Err(BcError::bad(
            "BadRequest",
            format!(
                "The property '{k}' does not exist on type 'Microsoft.NAV.{type_name}'. Make sure to only use property names that are defined by the type."
            ),
        ));
    }
    Ok(())
}

fn vendor(bc: &Bc, m: &Map<String, Value>, data: &Dataset) -> Result<Option<u64>, BcError> {
    let id = if let Some(v) = m.get("vendorId").and_then(Value::as_str) {
        Some(model::guid_id(bc.core.seed, Kind::Vendor, v).filter(|id| data.vendors.exists(*id)).ok_or_else(|| {
            BcError::bad("Internal_InvalidTableRelation", format!("The field Buy-from Vendor No. of table Purchase Header contains a value ({v}) that cannot be found in the related table (Vendor)."))
        })?)
    } else if let Some(n) = m.get("vendorNumber").and_then(Value::as_str) {
        let id = n
            .strip_prefix('V')
            .and_then(|x| x.parse::<u64>().ok())
            .filter(|id| data.vendors.exists(*id) && model::vendor_number(*id) == n);
        Some(id.ok_or_else(|| {
            BcError::bad("Internal_InvalidTableRelation", format!("The field Buy-from Vendor No. of table Purchase Header contains a value ({n}) that cannot be found in the related table (Vendor)."))
        })?)
    } else {
        None
    };
    if let Some(id) = id
        && data.vendors.get(id).is_some_and(|v| v.inactive)
    {
        return Err(BcError::bad(
            "Application_DialogException",
            format!(
                "You cannot create this type of document when Vendor {} is blocked with type All",
                model::vendor_number(id)
            ),
        ));
    }
    Ok(id)
}

fn date(m: &Map<String, Value>, k: &str) -> Result<Option<i64>, BcError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(&format!("{s}T00:00:00Z"))
            .map(Some)
            .ok_or_else(|| {
                BcError::bad(
                    "Application_EvaluateException",
                    format!("Cannot convert '{s}' to a date."),
                )
            }),
        Some(other) => Err(BcError::bad(
            "Application_EvaluateException",
            format!("Cannot convert '{other}' to a date."),
        )),
    }
}

fn num(m: &Map<String, Value>, k: &str) -> Result<Option<f64>, BcError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(BcError::bad(
            "BadRequest",
            format!("Cannot convert the literal '{other}' to the expected type 'Edm.Decimal'."),
        )),
    }
}

/// A unit cost in cents, bounded so amounts cannot overflow.
fn cost(c: f64) -> Result<i64, BcError> {
    if !(0.0..=1e9).contains(&c) {
        return Err(BcError::bad(
            "Application_FieldValidationException",
            "Direct Unit Cost is out of range.",
        ));
    }
    Ok((c * 100.0).round() as i64)
}

fn new_line(
    bc: &Bc,
    m: &Map<String, Value>,
    po: &PurchaseOrder,
    data: &Dataset,
    now: i64,
) -> Result<PoLine, BcError> {
    check(m, &LINE_WRITABLE, None, "purchaseOrderLine")?;
    match m.get("lineType").and_then(Value::as_str) {
        None | Some("Item") => {}
        Some(other) => {
            return Err(BcError::bad(
                "Application_FieldValidationException",
                format!("Line type {other} is not supported for this line; use Item."),
            ));
        }
    }
    let item = if let Some(g) = m.get("itemId").and_then(Value::as_str) {
        model::guid_id(bc.core.seed, Kind::Item, g).and_then(|id| data.items.get(id))
    } else if let Some(n) = m.get("lineObjectNumber").and_then(Value::as_str) {
        n.strip_prefix("ITEM-")
            .and_then(|x| x.parse::<u64>().ok())
            .and_then(|id| data.items.get(id))
            .filter(|i| i.sku == n)
    } else {
        return Err(BcError::bad(
            "BadRequest_RequiredParamNotProvided",
            "Either itemId or lineObjectNumber must be provided for an Item line.",
        ));
    };
    let item = item.ok_or_else(|| BcError::bad("Internal_InvalidTableRelation", "The field No. of table Purchase Line contains a value that cannot be found in the related table (Item)."))?;
    if item.inactive {
        return Err(BcError::bad(
            "Application_DialogException",
            format!(
                "You cannot purchase item {} because the Blocked check box is selected on the item card.",
                item.sku
            ),
        ));
    }
    let qty = num(m, "quantity")?.unwrap_or(0.0);
    if qty < 0.0 || qty.fract() != 0.0 || qty > 1e9 {
        return Err(BcError::bad(
            "Application_FieldValidationException",
            "Quantity must be a positive whole number.",
        ));
    }
    let line = match m.get("sequence").and_then(Value::as_u64) {
        // Line numbers live in 16 bits of the line id.
        Some(s) if s > 0 && s.is_multiple_of(10_000) && s / 10_000 <= 0xFFFF => (s / 10_000) as u32,
        Some(s) => {
            return Err(BcError::bad(
                "Application_FieldValidationException",
                format!("Sequence {s} is not valid."),
            ));
        }
        None => po
            .lines
            .iter()
            .map(|l| l.line)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
            .min(0xFFFF),
    };
    if po.lines.iter().any(|l| l.line == line) {
        return Err(BcError::new(
            StatusCode::CONFLICT,
            "Internal_EntityWithSameKeyExists",
            "The record already exists.",
        ));
    }
    Ok(PoLine {
        line,
        item_id: item.id,
        description: m
            .get("description")
            .and_then(Value::as_str)
            .map_or(item.description.clone(), str::to_string),
        quantity: qty as i64,
        quantity_received: 0,
        quantity_billed: 0,
        rate_cents: match num(m, "directUnitCost")? {
            None => item.cost_cents,
            Some(c) => cost(c)?,
        },
        unit: item.unit.clone(),
        expected_receipt: day_start(now) + 14 * 86_400_000,
        closed: false,
        project_code: String::new(),
    })
}

/// `If-Match` is required on PATCH and DELETE; `*` matches anything.
fn check_etag(bc: &Bc, ctx: &Ctx, current: &str) -> Result<(), BcError> {
    match ctx.headers.get("if-match").and_then(|v| v.to_str().ok()) {
        Some("*") => Ok(()),
        Some(t) if t == current => Ok(()),
        Some(t) if t.starts_with("W/\"") => {
            let status = if bc.settings().entity_changed_status_409 {
                StatusCode::CONFLICT
            } else {
                StatusCode::PRECONDITION_FAILED
            };
            Err(BcError::new(
                status,
                "Request_EntityChanged",
                "Another user has already changed the record.",
            ))
        }
        _ => Err(BcError::bad(
            "BadRequest_InvalidToken",
            "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request.",
        )),
    }
}

fn released(bc: &Bc, po: &PurchaseOrder) -> Result<(), BcError> {
    if bc.settings().released_orders_read_only && model::status(po.status) == "Open" {
        return Err(BcError::bad(
            "Application_FieldValidationException",
            format!(
                "Status must be equal to 'Open'  in Purchase Header: Document Type=Order, No.={}. Current value is 'Released'.",
                model::po_number(po.id)
            ),
        ));
    }
    Ok(())
}

fn created(ctx: &Ctx, set: Set, v: Value) -> Response {
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let mut v = v;
    v["@odata.context"] = json!(ctx.context(&format!("/{}/$entity", set.name())));
    let mut r = json_status(StatusCode::CREATED, v);
    let loc = format!(
        "{}/companies({})/{}({id})",
        ctx.root,
        ctx.company,
        set.name()
    );
    if let Ok(h) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert("location", h);
    }
    r
}

fn updated(ctx: &Ctx, set: Set, mut v: Value) -> Response {
    v["@odata.context"] = json!(ctx.context(&format!("/{}/$entity", set.name())));
    let etag = v["@odata.etag"].as_str().unwrap_or_default().to_string();
    let mut r = json_status(StatusCode::OK, v);
    if let Ok(h) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert("etag", h);
    }
    r
}

fn add_line(
    bc: &Bc,
    ctx: &Ctx,
    data: &mut Dataset,
    id: u64,
    m: &Map<String, Value>,
) -> Result<Response, BcError> {
    let mut po = data
        .purchase_orders
        .get(id)
        .ok_or_else(|| BcError::not_found("Purchase Header"))?;
    released(bc, &po)?;
    let line = new_line(bc, m, &po, data, ctx.now)?;
    po.lines.push(line.clone());
    po.last_modified = ctx.now;
    data.purchase_orders.replace(po.clone());
    Ok(created(
        ctx,
        Set::PurchaseOrderLines,
        model::line_json(ctx.seed, &po, &line, data),
    ))
}

pub fn write(bc: &Bc, ctx: &Ctx, res: Res, raw: &[u8]) -> Result<Response, BcError> {
    let now = ctx.now;
    let mut data = bc.core.write();
    let method = ctx.method.as_str();
    match (method, res) {
        ("POST", Res::Collection(Set::PurchaseOrders)) => {
            let m = body(raw)?;
            let sample = data
                .purchase_orders
                .get(1)
                .map(|p| model::po_json(ctx.seed, &p, &data));
            check(&m, &PO_WRITABLE, sample.as_ref(), "purchaseOrder")?;
            let vendor_id = vendor(bc, &m, &data)?.ok_or_else(|| {
                BcError::bad(
                    "BadRequest_RequiredParamNotProvided",
                    "vendorId or vendorNumber must be provided.",
                )
            })?;
            let order_date = date(&m, "orderDate")?.unwrap_or(day_start(now));
            let mut po = PurchaseOrder {
                id: 0,
                number: String::new(),
                vendor_id,
                location_id: 1,
                // New documents are open (draft) until released.
                status: PoStatus::Rejected,
                order_date,
                created: now,
                last_modified: now,
                currency: data
                    .vendors
                    .get(vendor_id)
                    .map_or("USD".into(), |v| v.currency),
                memo: String::new(),
                external_id: ship_to_contact(&m)?.flatten(),
                priority: "Normal".into(),
                requestor_id: EMPLOYEES[0].0,
                lines: Vec::new(),
            };
            if let Some(lines) = m.get("purchaseOrderLines") {
                let Value::Array(ls) = lines else {
                    return Err(BcError::bad(
                        "BadRequest",
                        "purchaseOrderLines must be an array.",
                    ));
                };
                for l in ls {
                    let Value::Object(lm) = l else {
                        return Err(BcError::bad(
                            "BadRequest",
                            "Each purchaseOrderLine must be an object.",
                        ));
                    };
                    let line = new_line(bc, lm, &po, &data, now)?;
                    po.lines.push(line);
                }
            }
            let id = data.purchase_orders.insert(po.clone());
            po.id = id;
            po.number = model::po_number(id);
            data.purchase_orders.replace(po.clone());
            let mut v = model::po_json(ctx.seed, &po, &data);
            if ctx.param("$expand") == Some("purchaseOrderLines") {
                v["purchaseOrderLines"] = Value::Array(
                    po.lines
                        .iter()
                        .map(|l| model::line_json(ctx.seed, &po, l, &data))
                        .collect(),
                );
            }
            Ok(created(ctx, Set::PurchaseOrders, v))
        }
        ("POST", Res::Lines(id)) => {
            let m = body(raw)?;
            if let Some(d) = m.get("documentId").and_then(Value::as_str)
                && model::guid_id(bc.core.seed, Kind::PurchaseOrder, d) != Some(id)
            {
                return Err(BcError::bad(
                    "BadRequest_InvalidOperation",
                    "documentId does not match the purchase order in the URL.",
                ));
            }
            add_line(bc, ctx, &mut data, id, &m)
        }
        ("POST", Res::Collection(Set::PurchaseOrderLines)) => {
            let m = body(raw)?;
            let d = m.get("documentId").and_then(Value::as_str).ok_or_else(|| {
                BcError::bad(
                    "BadRequest_RequiredParamNotProvided",
                    "documentId must be provided.",
                )
            })?;
            let id = model::guid_id(bc.core.seed, Kind::PurchaseOrder, d)
                .ok_or_else(|| BcError::not_found("Purchase Header"))?;
            add_line(bc, ctx, &mut data, id, &m)
        }
        ("PATCH", Res::Entity(Set::PurchaseOrders, id)) => {
            let m = body(raw)?;
            let mut po = data
                .purchase_orders
                .get(id)
                .ok_or_else(|| BcError::not_found("Purchase Header"))?;
            check_etag(
                bc,
                ctx,
                &model::etag(
                    po.last_modified,
                    po.id,
                    data.purchase_orders.revision(po.id),
                ),
            )?;
            let sample = model::po_json(ctx.seed, &po, &data);
            check(&m, &PO_WRITABLE[..5], Some(&sample), "purchaseOrder")?;
            if let Some(v) = vendor(bc, &m, &data)? {
                po.vendor_id = v;
            }
            if let Some(c) = ship_to_contact(&m)? {
                po.external_id = c;
            }
            if let Some(d) = date(&m, "orderDate")? {
                po.order_date = d;
            }
            po.last_modified = now;
            data.purchase_orders.replace(po.clone());
            Ok(updated(
                ctx,
                Set::PurchaseOrders,
                model::po_json(ctx.seed, &po, &data),
            ))
        }
        ("PATCH", Res::Entity(Set::PurchaseOrderLines, key)) => {
            let m = body(raw)?;
            let mut po = data
                .purchase_orders
                .get(key >> 16)
                .ok_or_else(|| BcError::not_found("Purchase Line"))?;
            let idx = po
                .lines
                .iter()
                .position(|l| l.line as u64 == key & 0xFFFF)
                .ok_or_else(|| BcError::not_found("Purchase Line"))?;
            check_etag(
                bc,
                ctx,
                &model::etag(po.last_modified, key, data.purchase_orders.revision(po.id)),
            )?;
            released(bc, &po)?;
            check(
                &m,
                &["quantity", "directUnitCost", "description"],
                Some(&model::line_json(ctx.seed, &po, &po.lines[idx], &data)),
                "purchaseOrderLine",
            )?;
            if let Some(q) = num(&m, "quantity")? {
                if q < 0.0 || q.fract() != 0.0 || q > 1e9 {
                    return Err(BcError::bad(
                        "Application_FieldValidationException",
                        "Quantity must be a positive whole number.",
                    ));
                }
                po.lines[idx].quantity = q as i64;
            }
            if let Some(c) = num(&m, "directUnitCost")? {
                po.lines[idx].rate_cents = cost(c)?;
            }
            if let Some(d) = m.get("description").and_then(Value::as_str) {
                po.lines[idx].description = d.to_string();
            }
            po.last_modified = now;
            data.purchase_orders.replace(po.clone());
            Ok(updated(
                ctx,
                Set::PurchaseOrderLines,
                model::line_json(ctx.seed, &po, &po.lines[idx], &data),
            ))
        }
        ("DELETE", Res::Entity(Set::PurchaseOrders, id)) => {
            let po = data
                .purchase_orders
                .get(id)
                .ok_or_else(|| BcError::not_found("Purchase Header"))?;
            check_etag(
                bc,
                ctx,
                &model::etag(
                    po.last_modified,
                    po.id,
                    data.purchase_orders.revision(po.id),
                ),
            )?;
            data.delete(
                RecordKind::PurchaseOrder,
                id,
                ctx.now,
                DeletedThrough::RestApi,
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ("DELETE", Res::Entity(Set::PurchaseOrderLines, key)) => {
            let mut po = data
                .purchase_orders
                .get(key >> 16)
                .ok_or_else(|| BcError::not_found("Purchase Line"))?;
            check_etag(
                bc,
                ctx,
                &model::etag(po.last_modified, key, data.purchase_orders.revision(po.id)),
            )?;
            released(bc, &po)?;
            po.lines.retain(|l| l.line as u64 != key & 0xFFFF);
            po.last_modified = now;
            data.purchase_orders.replace(po);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (m, Res::Entity(set, _)) if m == "PATCH" || m == "DELETE" || m == "POST" => {
            Err(BcError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequest_MethodNotAllowed",
                format!(
                    "'{m}' requests for '{}' of EdmType 'Entity' are not allowed within Dynamics 365 Business Central OData web services.",
                    set.name()
                ),
            ))
        }
        (m, _) => Err(BcError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest_MethodNotAllowed",
            format!("'{m}' requests are not allowed for this resource."),
        )),
    }
}
