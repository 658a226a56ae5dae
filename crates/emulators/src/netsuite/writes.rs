//! Record API writes: create (204 + `Location`), PATCH with NetSuite sublist semantics (`item` appends,
//! `?replace=item` replaces), upsert by `eid:`, delete; purchase orders, vendors and inventory
//! items; external ids unique per record type; validation errors in NetSuite's body, and the
//! role's missing permissions (403).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::Ns;
use super::auth::authorize;
use super::errors::{Detail, NsError};
use super::records::{query_params, rec_type, resolve_id};
use super::render::RecType;
use crate::common::clock::{day_start, parse_rfc3339};
use crate::common::datagen::{EMPLOYEES, Item, ItemKind, PoLine, PoStatus, PurchaseOrder, Vendor};
use crate::common::{Dataset, DeletedThrough, RecordKind};

fn invalid_value(field: &str, value: &str, path: &str) -> NsError {
    NsError::new(
        StatusCode::BAD_REQUEST,
        Detail::new(
            "INVALID_CONTENT",
            format!("Error while accessing resource: You have entered an Invalid Field Value {value} for the following field: {field}"),
        )
        .with("o:errorPath", path),
    )
}

fn user_error(detail: impl Into<String>, path: Option<&str>) -> NsError {
    let mut d = Detail::new(
        "USER_ERROR",
        format!("Error while accessing a resource. {}", detail.into()),
    );
    if let Some(p) = path {
        d = d.with("o:errorPath", p);
    }
    NsError::new(StatusCode::BAD_REQUEST, d)
}

/// NetSuite keeps an external id unique per record type: setting one another order has is
/// refused (400; the wording is inferred from the SOAP `DUP_RCRD` "This record already
/// exists").
fn check_external_id(data: &Dataset, po: &PurchaseOrder) -> Result<(), NsError> {
    let Some(eid) = po.external_id.as_deref() else {
        return Ok(());
    };
    match super::records::find_external(&data.purchase_orders, eid) {
        Some(other) if other != po.id => Err(NsError::new(
            StatusCode::BAD_REQUEST,
            Detail::new(
                "USER_ERROR",
                format!(
                    "Error while accessing a resource. This record already exists: a purchaseOrder has the external ID {eid}."
                ),
            )
            .with("o:errorPath", "externalId"),
        )),
        _ => Ok(()),
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, NsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(NsError::bad_request(
            "INVALID_CONTENT",
            "The request could not be understood by the server due to malformed syntax. Provide a valid JSON object in the request body.",
        )),
    }
}

/// `{"id": "12"}` or `{"id": 12}` → 12.
fn ref_id(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value, field: &str) -> Result<String, NsError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(invalid_value(field, &other.to_string(), field)),
    }
}

/// Bounds that keep amounts far from overflow.
const MAX_QUANTITY: f64 = 1e9;
const MAX_RATE: f64 = 1e9;

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

const PO_READ_ONLY: [&str; 11] = [
    "id",
    "links",
    "createdDate",
    "lastModifiedDate",
    "total",
    "subtotal",
    "status",
    "orderStatus",
    "transactionNumber",
    "email",
    "expense",
];
const PO_WRITABLE: [&str; 11] = [
    "entity",
    "location",
    "tranDate",
    "tranId",
    "memo",
    "externalId",
    "currency",
    "approvalStatus",
    "custbody_ib_priority",
    "custbody_requestor",
    "item",
];

fn strict(headers: &HeaderMap) -> bool {
    headers
        .get("x-netsuite-propertynamevalidation")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("error"))
}

fn check_names(
    body: &Map<String, Value>,
    known: &[&str],
    read_only: &[&str],
    record: &str,
    strict: bool,
) -> Result<(), NsError> {
    if !strict {
        return Ok(());
    }
    for k in body.keys() {
        if !known.contains(&k.as_str()) && !read_only.contains(&k.as_str()) {
            return Err(NsError::new(
                StatusCode::BAD_REQUEST,
                Detail::new("NONEXISTENT_FIELD", format!("Error while accessing a resource. The field '{k}' does not exist on record '{record}'."))
                    .with("o:errorPath", k.clone()),
            ));
        }
    }
    Ok(())
}

/// Applies a PO body (create or PATCH) to `po`.
fn apply_po(
    po: &mut PurchaseOrder,
    body: &Map<String, Value>,
    data: &Dataset,
    replace_items: bool,
    now: i64,
) -> Result<(), NsError> {
    if let Some(v) = body.get("entity") {
        let raw = ref_id(v).ok_or_else(|| invalid_value("entity", &v.to_string(), "entity"))?;
        let vendor = raw
            .parse::<u64>()
            .ok()
            .and_then(|id| data.vendors.get(id))
            .filter(|v| !v.inactive)
            .ok_or_else(|| invalid_value("entity", &raw, "entity"))?;
        po.vendor_id = vendor.id;
        po.currency = vendor.currency;
    }
    if let Some(v) = body.get("location") {
        let raw = ref_id(v).ok_or_else(|| invalid_value("location", &v.to_string(), "location"))?;
        let loc = raw
            .parse::<u64>()
            .ok()
            .filter(|id| data.locations.exists(*id))
            .ok_or_else(|| invalid_value("location", &raw, "location"))?;
        po.location_id = loc;
    }
    if let Some(v) = body.get("currency") {
        let raw = ref_id(v).unwrap_or_default();
        po.currency = match raw.as_str() {
            "1" => "USD".into(),
            "4" => "EUR".into(),
            _ => return Err(invalid_value("currency", &raw, "currency")),
        };
    }
    if let Some(v) = body.get("tranDate") {
        let s = text(v, "tranDate")?;
        po.order_date = parse_rfc3339(&format!("{s}T00:00:00Z"))
            .ok_or_else(|| invalid_value("tranDate", &s, "tranDate"))?;
    }
    if let Some(v) = body.get("tranId") {
        po.number = text(v, "tranId")?;
    }
    if let Some(v) = body.get("memo") {
        po.memo = text(v, "memo")?;
    }
    if let Some(v) = body.get("externalId") {
        let s = text(v, "externalId")?;
        po.external_id = if s.is_empty() { None } else { Some(s) };
    }
    if let Some(v) = body.get("custbody_ib_priority") {
        po.priority = text(v, "custbody_ib_priority")?;
    }
    if let Some(v) = body.get("custbody_requestor") {
        let first = v
            .get("items")
            .and_then(|i| i.get(0))
            .or_else(|| v.get(0))
            .unwrap_or(v);
        let raw = ref_id(first).unwrap_or_default();
        let emp = raw
            .parse::<u64>()
            .ok()
            .filter(|id| EMPLOYEES.iter().any(|e| e.0 == *id))
            .ok_or_else(|| invalid_value("custbody_requestor", &raw, "custbody_requestor"))?;
        po.requestor_id = emp;
    }
    if let Some(v) = body.get("approvalStatus") {
        let raw = ref_id(v).unwrap_or_default();
        po.status = match (raw.as_str(), po.status) {
            ("1", PoStatus::PendingApproval | PoStatus::Rejected) => PoStatus::PendingApproval,
            ("2", PoStatus::PendingApproval) => PoStatus::PendingReceipt,
            ("3", PoStatus::PendingApproval) => PoStatus::Rejected,
            ("1" | "2" | "3", s) if raw == super::render::approval(s)["id"] => s,
            _ => return Err(invalid_value("approvalStatus", &raw, "approvalStatus")),
        };
    }
    if let Some(v) = body.get("item") {
        let lines = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid_value("item", &v.to_string(), "item"))?;
        if replace_items {
            po.lines.clear();
        }
        for (i, l) in lines.iter().enumerate() {
            let path = format!("item.items[{i}]");
            let item_raw = l.get("item").and_then(ref_id).ok_or_else(|| {
                user_error(
                    "Please enter value(s) for: Item",
                    Some(&format!("{path}.item")),
                )
            })?;
            let item = item_raw
                .parse::<u64>()
                .ok()
                .and_then(|id| data.items.get(id))
                .filter(|it| !it.inactive)
                .ok_or_else(|| invalid_value("item", &item_raw, &format!("{path}.item")))?;
            let quantity = match l.get("quantity") {
                None => 1.0,
                Some(q) => number(q).ok_or_else(|| {
                    invalid_value("quantity", &q.to_string(), &format!("{path}.quantity"))
                })?,
            };
            if quantity <= 0.0 || quantity.fract() != 0.0 || quantity > MAX_QUANTITY {
                return Err(invalid_value(
                    "quantity",
                    &quantity.to_string(),
                    &format!("{path}.quantity"),
                ));
            }
            let rate = match l.get("rate") {
                None => item.cost_cents,
                Some(r) => match number(r) {
                    Some(x) if x.abs() <= MAX_RATE => cents(x),
                    _ => {
                        return Err(invalid_value(
                            "rate",
                            &r.to_string(),
                            &format!("{path}.rate"),
                        ));
                    }
                },
            };
            let next_line = po
                .lines
                .iter()
                .map(|l| l.line)
                .max()
                .unwrap_or(0)
                .saturating_add(1);
            po.lines.push(PoLine {
                line: next_line,
                item_id: item.id,
                description: l
                    .get("description")
                    .and_then(Value::as_str)
                    .map_or(item.description.clone(), str::to_string),
                quantity: quantity as i64,
                quantity_received: 0,
                quantity_billed: 0,
                rate_cents: rate,
                unit: item.unit.clone(),
                expected_receipt: l
                    .get("expectedReceiptDate")
                    .and_then(Value::as_str)
                    .and_then(|d| parse_rfc3339(&format!("{d}T00:00:00Z")))
                    .unwrap_or(day_start(now) + 14 * 86_400_000),
                closed: l.get("isClosed").and_then(Value::as_bool).unwrap_or(false),
                project_code: l
                    .get("custcol_ib_project_code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    if po.lines.is_empty() {
        return Err(user_error(
            "You must enter at least one line item for this transaction.",
            Some("item"),
        ));
    }
    // Closing every line closes the order, as in NetSuite.
    if po.lines.iter().all(|l| l.closed) {
        po.status = PoStatus::Closed;
    }
    po.last_modified = now;
    Ok(())
}

fn created_response(ns: &Ns, headers: &HeaderMap, t: RecType, id: u64, create: bool) -> Response {
    let status = if create && ns.settings().create_status == 201 {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut r = status.into_response();
    let loc = format!(
        "{}/services/rest/record/v1/{}/{id}",
        ns.core.origin(headers),
        t.name()
    );
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// The permission a role needs to write a record type, as NetSuite names it.
fn permission_name(t: RecType) -> &'static str {
    match t {
        RecType::PurchaseOrder => "Transactions -> Purchase Order",
        RecType::Vendor => "Lists -> Vendors",
        RecType::InventoryItem => "Lists -> Items",
        RecType::Location => "Lists -> Locations",
    }
}

/// Refuses a write of a record type the role may not write (the `denied_record_types` switch).
fn permitted(ns: &Ns, t: RecType) -> Result<(), NsError> {
    let denied = ns
        .settings()
        .denied_record_types
        .iter()
        .any(|d| d.eq_ignore_ascii_case(t.name()));
    if !denied {
        return Ok(());
    }
    Err(NsError::new(
        StatusCode::FORBIDDEN,
        Detail::new(
            "INSUFFICIENT_PERMISSION",
            format!(
                "Permission Violation: You need  the '{}' permission to access this page. Please contact your account administrator.",
                permission_name(t)
            ),
        ),
    ))
}

/// A body field the record keeps to itself, refused as NetSuite refuses it.
fn read_only_field(field: &str) -> NsError {
    user_error(
        format!(
            "You do not have permissions to set a value for element {field} due to one of the following reasons: 1) The field is read-only; 2) An associated feature is disabled; 3) The field is available either when a record is created or updated, but not in both cases."
        ),
        Some(field),
    )
}

fn check_read_only(body: &Map<String, Value>, read_only: &[&str]) -> Result<(), NsError> {
    match body.keys().find(|k| read_only.contains(&k.as_str())) {
        Some(k) => Err(read_only_field(k)),
        None => Ok(()),
    }
}

const VENDOR_READ_ONLY: [&str; 5] = ["id", "links", "dateCreated", "lastModifiedDate", "entityId"];
const ITEM_READ_ONLY: [&str; 5] = ["id", "links", "createdDate", "lastModifiedDate", "itemType"];
const ITEM_FIELDS: [&str; 6] = [
    "itemId",
    "displayName",
    "salesDescription",
    "purchaseDescription",
    "cost",
    "isInactive",
];

fn apply_vendor(v: &mut Vendor, body: &Map<String, Value>, now: i64) -> Result<(), NsError> {
    check_read_only(body, &VENDOR_READ_ONLY)?;
    if let Some(x) = body.get("companyName") {
        v.name = text(x, "companyName")?;
    }
    if let Some(x) = body.get("currency") {
        let raw = ref_id(x).unwrap_or_default();
        let code = raw
            .parse::<u64>()
            .ok()
            .and_then(super::render::currency_code)
            .ok_or_else(|| invalid_value("currency", &raw, "currency"))?;
        v.currency = code.to_string();
    }
    if let Some(x) = body.get("email") {
        v.email = text(x, "email")?;
    }
    if let Some(x) = body.get("phone") {
        v.phone = text(x, "phone")?;
    }
    if let Some(x) = body.get("isInactive") {
        v.inactive = x
            .as_bool()
            .ok_or_else(|| invalid_value("isInactive", &x.to_string(), "isInactive"))?;
    }
    if v.name.is_empty() {
        return Err(user_error(
            "Please enter value(s) for: Company Name",
            Some("companyName"),
        ));
    }
    v.last_modified = now;
    Ok(())
}

const VENDOR_FIELDS: [&str; 5] = ["companyName", "email", "phone", "isInactive", "currency"];

/// Another vendor with the same name, refused as a duplicate entity.
fn unique_vendor(data: &Dataset, v: &Vendor) -> Result<(), NsError> {
    match data.vendor_by_name(&v.name) {
        Some(other) if other.id != v.id => Err(NsError::new(
            StatusCode::BAD_REQUEST,
            Detail::new("DUP_ENTITY", "This entity already exists.")
                .with("o:errorPath", "companyName"),
        )),
        _ => Ok(()),
    }
}

fn apply_item(i: &mut Item, body: &Map<String, Value>, now: i64) -> Result<(), NsError> {
    check_read_only(body, &ITEM_READ_ONLY)?;
    if let Some(x) = body.get("itemId") {
        i.sku = text(x, "itemId")?;
    }
    if let Some(x) = body.get("displayName") {
        i.name = text(x, "displayName")?;
    }
    for key in ["salesDescription", "purchaseDescription"] {
        if let Some(x) = body.get(key) {
            i.description = text(x, key)?;
        }
    }
    if let Some(x) = body.get("cost") {
        i.cost_cents = match number(x) {
            Some(c) if (0.0..=MAX_RATE).contains(&c) => cents(c),
            _ => return Err(invalid_value("cost", &x.to_string(), "cost")),
        };
    }
    if let Some(x) = body.get("isInactive") {
        i.inactive = x
            .as_bool()
            .ok_or_else(|| invalid_value("isInactive", &x.to_string(), "isInactive"))?;
    }
    if i.sku.trim().is_empty() {
        return Err(user_error(
            "Please enter value(s) for: Item Name/Number",
            Some("itemId"),
        ));
    }
    i.last_modified = now;
    Ok(())
}

/// Another item with the same name/number, refused as a duplicate.
fn unique_item(data: &Dataset, i: &Item) -> Result<(), NsError> {
    match data.item_by_sku(&i.sku) {
        Some(other) if other.id != i.id => Err(NsError::new(
            StatusCode::BAD_REQUEST,
            Detail::new("DUP_ITEM", "This item already exists.").with("o:errorPath", "itemId"),
        )),
        _ => Ok(()),
    }
}

pub async fn create(
    State(ns): State<Ns>,
    Path(rtype): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    permitted(&ns, t)?;
    let body = parse_body(&body)?;
    let now = ns.core.clock.now_ms();
    let mut data = ns.core.write();
    match t {
        RecType::PurchaseOrder => {
            check_names(
                &body,
                &PO_WRITABLE,
                &PO_READ_ONLY,
                "purchaseOrder",
                strict(&headers),
            )?;
            if !body.contains_key("entity") {
                return Err(user_error(
                    "Please enter value(s) for: Vendor",
                    Some("entity"),
                ));
            }
            let mut po = new_po(&data, now);
            apply_po(&mut po, &body, &data, true, now)?;
            check_external_id(&data, &po)?;
            let id = data.purchase_orders.insert(po.clone());
            if !body.contains_key("tranId") {
                po.id = id;
                po.number = format!("PO{id:06}");
                data.purchase_orders.replace(po);
            }
            Ok(created_response(&ns, &headers, t, id, true))
        }
        RecType::Vendor => {
            check_names(
                &body,
                &VENDOR_FIELDS,
                &["id", "links"],
                "vendor",
                strict(&headers),
            )?;
            let mut v = data
                .vendors
                .get(1)
                .ok_or_else(|| user_error("No vendor template", None))?;
            v.name = String::new();
            v.inactive = false;
            v.created = now;
            v.currency = "USD".into();
            apply_vendor(&mut v, &body, now)?;
            v.id = 0;
            unique_vendor(&data, &v)?;
            let id = data.vendors.insert(v.clone());
            v.id = id;
            v.number = format!("V{id:05}");
            data.vendors.replace(v);
            Ok(created_response(&ns, &headers, t, id, true))
        }
        RecType::InventoryItem => {
            check_names(
                &body,
                &ITEM_FIELDS,
                &ITEM_READ_ONLY,
                "inventoryItem",
                strict(&headers),
            )?;
            let mut i = data
                .items
                .get(1)
                .ok_or_else(|| user_error("No item template", None))?;
            i.sku = String::new();
            i.name = String::new();
            i.description = String::new();
            i.inactive = false;
            i.created = now;
            i.kind = ItemKind::Inventory;
            apply_item(&mut i, &body, now)?;
            i.id = 0;
            unique_item(&data, &i)?;
            let id = data.items.insert(i);
            Ok(created_response(&ns, &headers, t, id, true))
        }
        _ => Err(not_writable(t)),
    }
}

fn not_writable(t: RecType) -> NsError {
    NsError::new(
        StatusCode::FORBIDDEN,
        Detail::new(
            "INSUFFICIENT_PERMISSION",
            format!(
                "Permission Violation: The role used for this integration lacks the permission to edit records of type {}.",
                t.name()
            ),
        ),
    )
}

fn new_po(data: &Dataset, now: i64) -> PurchaseOrder {
    PurchaseOrder {
        id: 0,
        number: String::new(),
        vendor_id: 0,
        location_id: data.locations.ids().first().copied().unwrap_or(1),
        status: PoStatus::PendingReceipt,
        order_date: day_start(now),
        created: now,
        last_modified: now,
        change_time_unset: false,
        currency: "USD".into(),
        memo: String::new(),
        external_id: None,
        header: None,
        priority: "Normal".into(),
        requestor_id: EMPLOYEES[0].0,
        lines: Vec::new(),
    }
}

fn update_po(
    ns: &Ns,
    data: &mut Dataset,
    id: u64,
    body: &Map<String, Value>,
    replace: bool,
    now: i64,
) -> Result<(), NsError> {
    let mut po = data
        .purchase_orders
        .get(id)
        .ok_or_else(|| user_error("Record not found", None))?;
    if po.status == PoStatus::Closed && ns.settings().reject_closed_order_edits {
        return Err(user_error("You cannot edit a closed transaction.", None));
    }
    apply_po(&mut po, body, data, replace, now)?;
    check_external_id(data, &po)?;
    data.purchase_orders.replace(po);
    Ok(())
}

pub async fn update(
    State(ns): State<Ns>,
    Path((rtype, raw_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    let body = parse_body(&body)?;
    permitted(&ns, t)?;
    let p = query_params(&raw);
    let replace = p
        .get("replace")
        .is_some_and(|r| r.split(',').any(|s| s.trim() == "item"));
    let now = ns.core.clock.now_ms();
    let mut data = ns.core.write();
    let id = resolve_id(&ns, t, &data, &raw_id, uri.path())?;
    match t {
        RecType::PurchaseOrder => {
            check_names(
                &body,
                &PO_WRITABLE,
                &PO_READ_ONLY,
                "purchaseOrder",
                strict(&headers),
            )?;
            update_po(&ns, &mut data, id, &body, replace, now)?;
        }
        RecType::Vendor => {
            check_names(
                &body,
                &VENDOR_FIELDS,
                &["id", "links"],
                "vendor",
                strict(&headers),
            )?;
            let mut v = data
                .vendors
                .get(id)
                .ok_or_else(|| user_error("Record not found", None))?;
            apply_vendor(&mut v, &body, now)?;
            unique_vendor(&data, &v)?;
            data.vendors.replace(v);
        }
        RecType::InventoryItem => {
            check_names(
                &body,
                &ITEM_FIELDS,
                &ITEM_READ_ONLY,
                "inventoryItem",
                strict(&headers),
            )?;
            let mut i = data
                .items
                .get(id)
                .ok_or_else(|| user_error("Record not found", None))?;
            if i.kind != ItemKind::Inventory {
                // Another item type lives under another record type.
                return Err(NsError::not_found(
                    &ns.settings().not_found_code,
                    t.name(),
                    &raw_id,
                    uri.path(),
                ));
            }
            apply_item(&mut i, &body, now)?;
            unique_item(&data, &i)?;
            data.items.replace(i);
        }
        _ => return Err(not_writable(t)),
    }
    Ok(created_response(&ns, &headers, t, id, false))
}

pub async fn upsert(
    State(ns): State<Ns>,
    Path((rtype, raw_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    permitted(&ns, t)?;
    let Some(eid) = raw_id.strip_prefix("eid:") else {
        return Err(NsError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Detail::new(
                "INVALID_METHOD",
                "PUT is supported only with an external ID: /record/v1/{type}/eid:{externalId}.",
            ),
        ));
    };
    if t != RecType::PurchaseOrder {
        return Err(not_writable(t));
    }
    let mut body = parse_body(&body)?;
    check_names(
        &body,
        &PO_WRITABLE,
        &PO_READ_ONLY,
        "purchaseOrder",
        strict(&headers),
    )?;
    body.insert("externalId".into(), Value::String(eid.to_string()));
    let now = ns.core.clock.now_ms();
    let mut data = ns.core.write();
    match super::records::find_external(&data.purchase_orders, eid) {
        Some(id) => {
            update_po(&ns, &mut data, id, &body, true, now)?;
            Ok(created_response(&ns, &headers, t, id, false))
        }
        None => {
            if !body.contains_key("entity") {
                return Err(user_error(
                    "Please enter value(s) for: Vendor",
                    Some("entity"),
                ));
            }
            let mut po = new_po(&data, now);
            apply_po(&mut po, &body, &data, true, now)?;
            let id = data.purchase_orders.insert(po.clone());
            po.id = id;
            if !body.contains_key("tranId") {
                po.number = format!("PO{id:06}");
            }
            data.purchase_orders.replace(po);
            Ok(created_response(&ns, &headers, t, id, true))
        }
    }
}

pub async fn delete(
    State(ns): State<Ns>,
    Path((rtype, raw_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    permitted(&ns, t)?;
    let mut data = ns.core.write();
    let id = resolve_id(&ns, t, &data, &raw_id, uri.path())?;
    if t != RecType::PurchaseOrder {
        // Seeded vendors, items and locations are all referenced by orders.
        return Err(user_error(
            "This record cannot be deleted because it has dependent records.",
            None,
        ));
    }
    let now = ns.core.clock.now_ms();
    data.delete(RecordKind::PurchaseOrder, id, now, DeletedThrough::RestApi);
    Ok(StatusCode::NO_CONTENT.into_response())
}
