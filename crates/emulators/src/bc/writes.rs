//! API v2.0 writes: create a purchase order (deep insert of lines, 201), add lines (201), PATCH with
//! `If-Match` (200 with the entity; stale → `Request_EntityChanged`), DELETE (204); create and
//! update vendors and items; the app's missing permissions (403).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Bc;
use super::api::{Ctx, Res, Set, json_status};
use super::errors::BcError;
use super::model::{self, Kind};
use crate::common::clock::{day_start, iso_date, parse_rfc3339};
use crate::common::datagen::{EMPLOYEES, Item, ItemKind, PoLine, PoStatus, PurchaseOrder, Vendor};
use crate::common::{Dataset, DeletedThrough, RecordKind};

/// The header properties the API v2.0 page (`APIV2 - Purchase Orders`, page 30066) lets a
/// client set (its fields without `Editable = false`, but `fullyReceived`, which is
/// calculated), then the lines (a create only).
const PO_WRITABLE: [&str; 31] = [
    "vendorId",
    "vendorNumber",
    "orderDate",
    "postingDate",
    "shipToContact",
    "payToVendorId",
    "payToVendorNumber",
    "shipToName",
    "buyFromAddressLine1",
    "buyFromAddressLine2",
    "buyFromCity",
    "buyFromCountry",
    "buyFromState",
    "buyFromPostCode",
    "shipToAddressLine1",
    "shipToAddressLine2",
    "shipToCity",
    "shipToCountry",
    "shipToState",
    "shipToPostCode",
    "shortcutDimension1Code",
    "shortcutDimension2Code",
    "currencyId",
    "currencyCode",
    "pricesIncludeTax",
    "paymentTermsId",
    "shipmentMethodId",
    "purchaser",
    "requestedReceiptDate",
    "discountAmount",
    "purchaseOrderLines",
];

/// The header properties an update may set: all but the lines.
const PO_HEADER: usize = PO_WRITABLE.len() - 1;

/// Text properties of the header the emulator keeps as written, with their table lengths
/// (Purchase Header: Name 100, Address 100, Address 2 50, City 30, Country/Region Code 10,
/// County 30, Post Code 20, dimension and purchaser codes 20).
const PO_TEXT: [(&str, usize, bool); 17] = [
    ("shipToName", 100, false),
    ("buyFromAddressLine1", 100, false),
    ("buyFromAddressLine2", 50, false),
    ("buyFromCity", 30, false),
    ("buyFromCountry", 10, true),
    ("buyFromState", 30, false),
    ("buyFromPostCode", 20, true),
    ("shipToAddressLine1", 100, false),
    ("shipToAddressLine2", 50, false),
    ("shipToCity", 30, false),
    ("shipToCountry", 10, true),
    ("shipToState", 30, false),
    ("shipToPostCode", 20, true),
    ("shortcutDimension1Code", 20, true),
    ("shortcutDimension2Code", 20, true),
    ("purchaser", 20, true),
    ("currencyCode", 10, true),
];

/// Applies the editable header properties of `m` to `po` (`Code` fields upper-cased, as
/// Business Central stores them), checked as the page checks them.
fn apply_header(
    bc: &Bc,
    po: &mut PurchaseOrder,
    m: &Map<String, Value>,
    data: &Dataset,
) -> Result<(), BcError> {
    let mut header = po.header.take().map(|h| *h).unwrap_or_default();
    for (k, max, code) in PO_TEXT {
        if let Some(x) = text_prop(m, k, max)? {
            let x = if code { x.to_uppercase() } else { x };
            if k == "currencyCode" {
                if !CURRENCIES.contains(&x.as_str()) {
                    return Err(BcError::bad(
                        "BadRequest",
                        "The \"currencyCode\" does not match to a Currency.",
                    ));
                }
                // Blank is the local currency, which the API shows by its code.
                po.currency = if x.is_empty() { "USD".into() } else { x };
                continue;
            }
            header.insert(k.into(), Value::String(x));
        }
    }
    if let Some(d) = date(m, "requestedReceiptDate")? {
        header.insert("requestedReceiptDate".into(), Value::String(iso_date(d)));
    }
    match m.get("pricesIncludeTax") {
        None => {}
        Some(Value::Bool(b)) => {
            header.insert("pricesIncludeTax".into(), Value::Bool(*b));
        }
        Some(other) => {
            return Err(BcError::bad(
                "BadRequest",
                format!("Cannot convert the literal '{other}' to the expected type 'Edm.Boolean'."),
            ));
        }
    }
    if let Some(d) = num(m, "discountAmount")? {
        if d < 0.0 {
            return Err(BcError::bad(
                "Application_FieldValidationException",
                "Invoice Discount Amount must not be negative.",
            ));
        }
        header.insert("discountAmount".into(), serde_json::json!(d));
    }
    // The company has no payment terms, shipment methods or currencies by id: only the
    // blank GUID (none) is taken.
    for (k, what) in [
        ("paymentTermsId", "Payment Terms"),
        ("shipmentMethodId", "Shipment Method"),
        ("currencyId", "Currency"),
    ] {
        if let Some(g) = text_prop(m, k, 36)?
            && g != model::EMPTY_GUID
        {
            return Err(BcError::bad(
                "BadRequest",
                format!("The \"{k}\" does not match to a {what}."),
            ));
        }
    }
    let pay_to = match (
        m.get("payToVendorId").and_then(Value::as_str),
        m.get("payToVendorNumber").and_then(Value::as_str),
    ) {
        (Some(g), _) => {
            Some(model::guid_id(bc.core.seed, Kind::Vendor, g).and_then(|id| data.vendors.get(id)))
        }
        (None, Some(n)) => Some(data.vendor_by_number(n)),
        (None, None) => None,
    };
    if let Some(found) = pay_to {
        let v = found
            .ok_or_else(|| BcError::bad("BadRequest", "The pay-to vendor cannot be found."))?;
        header.insert(
            "payToVendorId".into(),
            Value::String(model::guid(bc.core.seed, Kind::Vendor, v.id)),
        );
        header.insert("payToVendorNumber".into(), Value::String(v.number.clone()));
        header.insert("payToName".into(), Value::String(v.name.clone()));
    }
    po.header = (!header.is_empty()).then(|| Box::new(header));
    Ok(())
}

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
        let id = data.vendor_by_number(n).map(|v| v.id);
        Some(id.ok_or_else(|| {
            BcError::bad("Internal_InvalidTableRelation", format!("The field Buy-from Vendor No. of table Purchase Header contains a value ({n}) that cannot be found in the related table (Vendor)."))
        })?)
    } else {
        None
    };
    if let Some(v) = id.and_then(|id| data.vendors.get(id))
        && v.inactive
    {
        return Err(BcError::bad(
            "Application_DialogException",
            format!(
                "You cannot create this type of document when Vendor {} is blocked with type All",
                v.number
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
        data.item_by_sku(n)
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

/// `Microsoft.NAV.receiveAndInvoice` (API page 30066): posts what each line still has to
/// receive and to invoice ("Purch.-Post" with Receive and Invoice, the lines' default
/// quantities being the outstanding ones). A posted invoice remembers the order; an order
/// invoiced in full is deleted, as posting deletes it (`DeleteAfterPosting`).
pub fn receive_and_invoice(data: &mut Dataset, id: u64, now: i64) -> Result<(), BcError> {
    let mut po = data
        .purchase_orders
        .get(id)
        // The entity a bound action runs on is read first: a missing one is 404 [I].
        .ok_or_else(|| BcError::not_found("Purchase Header"))?;
    if po
        .lines
        .iter()
        .all(|l| l.quantity_received >= l.quantity && l.quantity_billed >= l.quantity)
    {
        return Err(BcError::bad(
            "Application_DialogException",
            "There is nothing to post because the document does not contain a quantity or amount.",
        ));
    }
    let invoiced_cents = po
        .lines
        .iter()
        .map(|l| {
            (l.quantity - l.quantity_billed)
                .max(0)
                .saturating_mul(l.rate_cents)
        })
        .fold(0i64, i64::saturating_add);
    for l in &mut po.lines {
        l.quantity_received = l.quantity_received.max(l.quantity);
        l.quantity_billed = l.quantity_billed.max(l.quantity);
    }
    data.posted_invoices.push(crate::common::PostedInvoice {
        order_id: po.id,
        order_number: model::po_number(po.id),
        vendor_id: po.vendor_id,
        currency: po.currency.clone(),
        total_cents: invoiced_cents,
        posted_at: now,
    });
    // Everything is now invoiced: posting deletes the order and its lines.
    data.delete(RecordKind::PurchaseOrder, id, now, DeletedThrough::RestApi);
    Ok(())
}

/// Report 499 "Delete Invoiced Purch. Orders": deletes the orders posting did not (invoiced
/// by a separate invoice): some line invoiced, nothing left to receive, everything received
/// invoiced. Returns how many went.
pub fn delete_invoiced_orders(data: &mut Dataset, now: i64) -> usize {
    let done: Vec<u64> = data
        .purchase_orders
        .ids()
        .iter()
        .filter_map(|&id| data.purchase_orders.get(id))
        .filter(|po| {
            po.lines.iter().any(|l| l.quantity_billed != 0)
                && po.lines.iter().all(|l| {
                    l.quantity_received >= l.quantity && l.quantity_billed >= l.quantity_received
                })
        })
        .map(|po| po.id)
        .collect();
    for &id in &done {
        data.delete(
            RecordKind::PurchaseOrder,
            id,
            now,
            DeletedThrough::UserInterface,
        );
    }
    done.len()
}

/// The base application's table behind an API page: (id, name).
fn table_of(set: Set) -> (u32, &'static str) {
    match set {
        Set::PurchaseOrders => (38, "Purchase Header"),
        Set::PurchaseOrderLines => (39, "Purchase Line"),
        Set::Vendors => (23, "Vendor"),
        Set::Items => (27, "Item"),
        Set::PurchaseInvoices => (122, "Purch. Inv. Header"),
    }
}

/// Refuses a write of a page whose table the app may not write (the `denied_sets` switch).
fn permitted(bc: &Bc, set: Set, action: &str) -> Result<(), BcError> {
    if !bc.settings().denied_sets.iter().any(|d| d == set.name()) {
        return Ok(());
    }
    let (id, name) = table_of(set);
    Err(BcError::new(
        StatusCode::FORBIDDEN,
        "Internal_ServerError",
        format!(
            "Sorry, the current permissions prevented the action. (TableData {id} {name} {action}: Base Application)"
        ),
    ))
}

/// The page a write goes to, and the permission it needs.
fn target(method: &str, res: &Res) -> Option<(Set, &'static str)> {
    let action = match method {
        "POST" => "Insert",
        "PATCH" => "Modify",
        "DELETE" => "Delete",
        _ => return None,
    };
    match res {
        Res::Collection(set) | Res::Entity(set, _) => Some((*set, action)),
        Res::Lines(_) => Some((Set::PurchaseOrderLines, action)),
        // Posting modifies (and may delete) the order.
        Res::Action(..) => Some((Set::PurchaseOrders, "Modify")),
        _ => None,
    }
}

const VENDOR_WRITABLE: [&str; 15] = [
    "number",
    "displayName",
    "addressLine1",
    "addressLine2",
    "city",
    "state",
    "country",
    "postalCode",
    "phoneNumber",
    "email",
    "website",
    "taxRegistrationNumber",
    "currencyCode",
    "blocked",
    "taxLiable",
];
const ITEM_WRITABLE: [&str; 9] = [
    "number",
    "displayName",
    "type",
    "itemCategoryCode",
    "blocked",
    "gtin",
    "unitPrice",
    "unitCost",
    "baseUnitOfMeasureCode",
];

/// A text property within its table field's length, as BC checks it.
fn text_prop(m: &Map<String, Value>, k: &str, max: usize) -> Result<Option<String>, BcError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(BcError::bad(
            "Application_StringExceededLength",
            format!(
                "The length of the string is {}, but it must be less than or equal to {max} characters. Value: {s}",
                s.chars().count()
            ),
        )),
        Some(other) => Err(BcError::bad(
            "BadRequest",
            format!("Cannot convert the literal '{other}' to the expected type 'Edm.String'."),
        )),
    }
}

/// Currency codes the emulated company's Currency table holds (blank is the local currency).
const CURRENCIES: [&str; 8] = ["", "USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF"];

fn apply_vendor(v: &mut Vendor, m: &Map<String, Value>, data: &Dataset) -> Result<(), BcError> {
    if let Some(n) = text_prop(m, "number", 20)? {
        if data.vendor_by_number(&n).is_some_and(|o| o.id != v.id) {
            return Err(BcError::new(
                StatusCode::CONFLICT,
                "Internal_EntityWithSameKeyExists",
                format!(
                    "The record in table Vendor already exists. Identification fields and values: No.='{n}'"
                ),
            ));
        }
        v.number = n;
    }
    if let Some(x) = text_prop(m, "displayName", 100)? {
        v.name = x;
    }
    for (k, max, slot) in [
        ("addressLine1", 100, &mut v.address),
        ("city", 30, &mut v.city),
        ("state", 30, &mut v.state),
        ("country", 10, &mut v.country),
        ("postalCode", 20, &mut v.zip),
        ("phoneNumber", 30, &mut v.phone),
        ("email", 80, &mut v.email),
        ("taxRegistrationNumber", 20, &mut v.tax_id),
    ] {
        if let Some(x) = text_prop(m, k, max)? {
            *slot = x;
        }
    }
    // Fields the emulator does not keep are still checked.
    text_prop(m, "addressLine2", 50)?;
    text_prop(m, "website", 80)?;
    if let Some(c) = text_prop(m, "currencyCode", 10)? {
        if !CURRENCIES.contains(&c.as_str()) {
            return Err(BcError::bad(
                "Internal_InvalidTableRelation",
                format!(
                    "The field Currency Code of table Vendor contains a value ({c}) that cannot be found in the related table (Currency)."
                ),
            ));
        }
        v.currency = c;
    }
    if let Some(b) = text_prop(m, "blocked", 10)? {
        // An enum takes its members' names (`_x0020_` for the blank member).
        v.inactive = match b.as_str() {
            "All" => true,
            "_x0020_" | "Payment" => false,
            other => {
                return Err(BcError::bad(
                    "BadRequest",
                    format!(
                        "Cannot convert the literal '{other}' to the expected type 'Microsoft.NAV.vendorBlocked'."
                    ),
                ));
            }
        };
    }
    Ok(())
}

fn apply_item(i: &mut Item, m: &Map<String, Value>, data: &Dataset) -> Result<(), BcError> {
    if let Some(n) = text_prop(m, "number", 20)? {
        if data.item_by_sku(&n).is_some_and(|o| o.id != i.id) {
            return Err(BcError::new(
                StatusCode::CONFLICT,
                "Internal_EntityWithSameKeyExists",
                format!(
                    "The record in table Item already exists. Identification fields and values: No.='{n}'"
                ),
            ));
        }
        i.sku = n;
    }
    if let Some(x) = text_prop(m, "displayName", 100)? {
        i.name = x;
    }
    if let Some(t) = text_prop(m, "type", 20)? {
        i.kind = match t.as_str() {
            "Inventory" => ItemKind::Inventory,
            "Non_x002D_Inventory" => ItemKind::NonInventory,
            "Service" => ItemKind::Service,
            other => {
                return Err(BcError::bad(
                    "BadRequest",
                    format!(
                        "Cannot convert the literal '{other}' to the expected type 'Microsoft.NAV.itemType'."
                    ),
                ));
            }
        };
    }
    if let Some(x) = text_prop(m, "itemCategoryCode", 20)? {
        i.category = x;
    }
    if let Some(x) = text_prop(m, "gtin", 14)? {
        i.gtin = x;
    }
    if let Some(x) = text_prop(m, "baseUnitOfMeasureCode", 10)? {
        i.unit = x;
    }
    match m.get("blocked") {
        None => {}
        Some(Value::Bool(b)) => i.inactive = *b,
        Some(other) => {
            return Err(BcError::bad(
                "BadRequest",
                format!("Cannot convert the literal '{other}' to the expected type 'Edm.Boolean'."),
            ));
        }
    }
    if let Some(c) = num(m, "unitCost")? {
        i.cost_cents = cost(c)?;
    }
    if let Some(p) = num(m, "unitPrice")? {
        i.price_cents = cost(p)?;
    }
    Ok(())
}

pub fn write(bc: &Bc, ctx: &Ctx, res: Res, raw: &[u8]) -> Result<Response, BcError> {
    let now = ctx.now;
    if let Some((set, action)) = target(ctx.method.as_str(), &res) {
        permitted(bc, set, action)?;
    }
    let mut data = bc.core.write();
    let method = ctx.method.as_str();
    match (method, res) {
        ("POST", Res::Action(id, action)) => match action.as_str() {
            "receiveAndInvoice" => {
                receive_and_invoice(&mut data, id, now)?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            other => Err(BcError::segment(&format!("Microsoft.NAV.{other}"))),
        },
        ("POST", Res::Collection(Set::Vendors)) => {
            let m = body(raw)?;
            let sample = data
                .vendors
                .get(1)
                .map(|v| model::vendor_json(ctx.seed, &v, 0));
            check(&m, &VENDOR_WRITABLE, sample.as_ref(), "vendor")?;
            let mut v = data
                .vendors
                .get(1)
                .ok_or_else(|| BcError::not_found("Vendor"))?;
            v.id = 0;
            v.number = String::new();
            v.name = String::new();
            for slot in [
                &mut v.address,
                &mut v.city,
                &mut v.state,
                &mut v.country,
                &mut v.zip,
                &mut v.phone,
                &mut v.email,
                &mut v.tax_id,
            ] {
                slot.clear();
            }
            v.currency = String::new();
            v.inactive = false;
            v.created = now;
            v.last_modified = now;
            apply_vendor(&mut v, &m, &data)?;
            let given = !v.number.is_empty();
            let id = data.vendors.insert(v.clone());
            v.id = id;
            if !given {
                // The vendor number series.
                v.number = model::vendor_number(id);
            }
            data.vendors.replace(v.clone());
            Ok(created(
                ctx,
                Set::Vendors,
                model::vendor_json(ctx.seed, &v, data.vendors.revision(id)),
            ))
        }
        ("POST", Res::Collection(Set::Items)) => {
            let m = body(raw)?;
            let sample = data.items.get(1).map(|i| model::item_json(ctx.seed, &i, 0));
            check(&m, &ITEM_WRITABLE, sample.as_ref(), "item")?;
            let mut i = data
                .items
                .get(1)
                .ok_or_else(|| BcError::not_found("Item"))?;
            i.id = 0;
            i.sku = String::new();
            i.name = String::new();
            i.description = String::new();
            i.gtin = String::new();
            i.inactive = false;
            i.kind = ItemKind::Inventory;
            i.cost_cents = 0;
            i.price_cents = 0;
            i.created = now;
            i.last_modified = now;
            apply_item(&mut i, &m, &data)?;
            let given = !i.sku.is_empty();
            let id = data.items.insert(i.clone());
            i.id = id;
            if !given {
                // The item number series.
                i.sku = format!("ITEM-{id:05}");
            }
            data.items.replace(i.clone());
            Ok(created(
                ctx,
                Set::Items,
                model::item_json(ctx.seed, &i, data.items.revision(id)),
            ))
        }
        ("PATCH", Res::Entity(Set::Vendors, id)) => {
            let m = body(raw)?;
            let mut v = data
                .vendors
                .get(id)
                .ok_or_else(|| BcError::not_found("Vendor"))?;
            let current = model::vendor_json(ctx.seed, &v, data.vendors.revision(id));
            check_etag(bc, ctx, current["@odata.etag"].as_str().unwrap_or_default())?;
            check(&m, &VENDOR_WRITABLE, Some(&current), "vendor")?;
            apply_vendor(&mut v, &m, &data)?;
            v.last_modified = now;
            data.vendors.replace(v.clone());
            Ok(updated(
                ctx,
                Set::Vendors,
                model::vendor_json(ctx.seed, &v, data.vendors.revision(id)),
            ))
        }
        ("PATCH", Res::Entity(Set::Items, id)) => {
            let m = body(raw)?;
            let mut i = data
                .items
                .get(id)
                .ok_or_else(|| BcError::not_found("Item"))?;
            let current = model::item_json(ctx.seed, &i, data.items.revision(id));
            check_etag(bc, ctx, current["@odata.etag"].as_str().unwrap_or_default())?;
            check(&m, &ITEM_WRITABLE, Some(&current), "item")?;
            apply_item(&mut i, &m, &data)?;
            i.last_modified = now;
            data.items.replace(i.clone());
            Ok(updated(
                ctx,
                Set::Items,
                model::item_json(ctx.seed, &i, data.items.revision(id)),
            ))
        }
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
                change_time_unset: false,
                currency: data
                    .vendors
                    .get(vendor_id)
                    .map_or("USD".into(), |v| v.currency),
                memo: String::new(),
                external_id: ship_to_contact(&m)?.flatten(),
                header: None,
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
            apply_header(bc, &mut po, &m, &data)?;
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
            check(
                &m,
                &PO_WRITABLE[..PO_HEADER],
                Some(&sample),
                "purchaseOrder",
            )?;
            if let Some(v) = vendor(bc, &m, &data)? {
                po.vendor_id = v;
            }
            if let Some(c) = ship_to_contact(&m)? {
                po.external_id = c;
            }
            if let Some(d) = date(&m, "orderDate")? {
                po.order_date = d;
            }
            apply_header(bc, &mut po, &m, &data)?;
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
