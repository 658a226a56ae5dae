//! OData V2 writes: deep insert of a purchase order with items (201), item creation through
//! `to_PurchaseOrderItem`, PATCH/MERGE/PUT (204) with the ETag switch, and DELETE setting the
//! deletion code; suppliers created as business partners in the supplier roles (deep insert of
//! `A_BusinessPartner`), products with their descriptions (deep insert of `A_Product`), and
//! their updates; the communication user's missing authorizations (403).

use std::rc::Rc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::Sap;
use super::errors::SapError;
use super::model::{
    self, BP_PROPS, DESC_PROPS, ITEM_PROPS, PO_PROPS, PRODUCT_PROPS, SUPPLIER_PROPS,
};
use super::service::{
    Req, Resource, Row, atom_response, def_for, entity_uri, etag, find_def, json_text, lookup,
    render_text, wants_json,
};
use super::{ReadOnlyProperties, atom};
use crate::common::Dataset;
use crate::common::clock::day_start;
use crate::common::datagen::{EMPLOYEES, PoLine, PoStatus, PurchaseOrder};
use crate::common::datagen::{Item, Vendor};

fn bad(req: &Req, code: &str, msg: impl Into<String>) -> SapError {
    req.err(StatusCode::BAD_REQUEST, code, msg)
}

fn parse_body(req: &Req, body: &[u8]) -> Result<Map<String, Value>, SapError> {
    match serde_json::from_slice::<Value>(body) {
        // Some clients wrap the payload in `d`.
        Ok(Value::Object(mut m)) => match m.remove("d") {
            Some(Value::Object(inner)) if m.is_empty() => Ok(inner),
            Some(other) => {
                m.insert("d".into(), other);
                Ok(m)
            }
            None => Ok(m),
        },
        _ => Err(bad(
            req,
            "/IWBEP/CM_MGW_RT/001",
            "Malformed request body: a JSON object is expected",
        )),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(req: &Req, v: &Value, prop: &str) -> Result<f64, SapError> {
    text(v)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or_else(|| {
            bad(
                req,
                "/IWBEP/CM_MGW_RT/006",
                format!("Invalid value for property '{prop}'"),
            )
        })
}

/// A net price in cents, bounded so amounts cannot overflow.
fn price(req: &Req, v: &Value) -> Result<i64, SapError> {
    let x = number(req, v, "NetPriceAmount")?;
    if !(0.0..=1e9).contains(&x) {
        return Err(bad(
            req,
            "/IWBEP/CM_MGW_RT/006",
            "Invalid value for property 'NetPriceAmount'",
        ));
    }
    Ok((x * 100.0).round() as i64)
}

fn check_props(
    req: &Req,
    body: &Map<String, Value>,
    known: &[model::Prop],
    navs: &[&str],
) -> Result<(), SapError> {
    for k in body.keys() {
        if k == "__metadata" || navs.contains(&k.as_str()) {
            continue;
        }
        if !known.iter().any(|p| p.name == k) {
            return Err(bad(
                req,
                "/IWBEP/CM_MGW_RT/005",
                format!("Property '{k}' is invalid"),
            ));
        }
    }
    Ok(())
}

/// A property `sap:creatable="false"` (on a create) or `sap:updatable="false"` (on an
/// update) in the body: ignored, or refused when the tenant rejects them
/// (`read_only_properties`; the message follows SAP's "Update of the read-only property &1
/// not possible", its code is inferred).
fn read_only(
    sap: &Sap,
    req: &Req,
    body: &Map<String, Value>,
    known: &[model::Prop],
    creating: bool,
) -> Result<(), SapError> {
    if sap.settings().read_only_properties == ReadOnlyProperties::Ignore {
        return Ok(());
    }
    let hit = body.keys().find(|k| {
        known
            .iter()
            .any(|p| p.name == *k && if creating { !p.creatable } else { !p.updatable })
    });
    match hit {
        Some(k) => Err(bad(
            req,
            "/IWBEP/CM_MGW_RT/007",
            format!("Update of the read-only property {k} not possible"),
        )),
        None => Ok(()),
    }
}

/// "Your Reference" (`CorrespncExternalReference`, `Edm.String` of `MaxLength` 12) when the
/// body sets it: `Some(None)` clears it. A longer value is refused (the Gateway's wording for
/// it is inferred).
fn your_reference(req: &Req, m: &Map<String, Value>) -> Result<Option<Option<String>>, SapError> {
    let Some(v) = m.get("CorrespncExternalReference") else {
        return Ok(None);
    };
    let r = match v {
        Value::Null => String::new(),
        other => text(other).ok_or_else(|| {
            bad(
                req,
                "/IWBEP/CM_MGW_RT/006",
                "Invalid value for property 'CorrespncExternalReference'",
            )
        })?,
    };
    if r.chars().count() > 12 {
        return Err(bad(
            req,
            "/IWBEP/CM_MGW_RT/006",
            "Invalid value for property 'CorrespncExternalReference': at most 12 characters",
        ));
    }
    Ok(Some((!r.is_empty()).then_some(r)))
}

/// Supplier given by key: must exist and not be blocked for purchasing.
fn supplier(req: &Req, v: &Value, data: &Dataset) -> Result<u64, SapError> {
    let key = text(v).unwrap_or_default();
    let vendor = model::supplier_id(&key).and_then(|id| data.vendors.get(id));
    match vendor {
        None => Err(bad(req, "ME/045", format!("Supplier {key} does not exist"))),
        Some(v) if v.inactive => Err(bad(
            req,
            "ME/046",
            format!("Supplier {key} is blocked for purchasing"),
        )),
        Some(v) => Ok(v.id),
    }
}

fn location_for_plant(plant: &str) -> Option<u64> {
    (1..=6).find(|l| model::plant(*l) == plant)
}

/// Builds one PO line from an item payload.
fn new_line(
    req: &Req,
    m: &Map<String, Value>,
    po: &PurchaseOrder,
    data: &Dataset,
    now: i64,
) -> Result<PoLine, SapError> {
    check_props(req, m, ITEM_PROPS, &["to_PurchaseOrder"])?;
    let material = m.get("Material").and_then(text).unwrap_or_default();
    if material.is_empty() {
        return Err(bad(req, "ME/062", "Enter a material"));
    }
    let item_id = model::product_id(&material, data)
        .and_then(|id| data.items.get(id))
        .filter(|i| !i.inactive)
        .ok_or_else(|| bad(req, "ME/062", format!("Material {material} does not exist")))?;
    let qty = match m.get("OrderQuantity") {
        Some(v) => number(req, v, "OrderQuantity")?,
        None => 0.0,
    };
    if qty <= 0.0 || qty.fract() != 0.0 || qty > 1e9 {
        return Err(bad(req, "ME/069", "Enter a quantity greater than zero"));
    }
    if let Some(p) = m.get("Plant").and_then(text)
        && location_for_plant(&p).is_none()
    {
        return Err(bad(req, "ME/039", format!("Plant {p} does not exist")));
    }
    let rate = match m.get("NetPriceAmount") {
        Some(v) => price(req, v)?,
        None => item_id.cost_cents,
    };
    let line = match m.get("PurchaseOrderItem").and_then(text) {
        Some(k) => model::item_line(&k)
            .ok_or_else(|| bad(req, "ME/040", format!("Item number {k} is invalid")))?,
        None => po
            .lines
            .iter()
            .map(|l| l.line)
            .max()
            .unwrap_or(0)
            .saturating_add(1),
    };
    if po.lines.iter().any(|l| l.line == line) {
        return Err(bad(
            req,
            "ME/041",
            format!("Item {} already exists", model::item_key(line)),
        ));
    }
    Ok(PoLine {
        line,
        item_id: item_id.id,
        description: m
            .get("PurchaseOrderItemText")
            .and_then(text)
            .unwrap_or(item_id.description.clone()),
        quantity: qty as i64,
        quantity_received: 0,
        quantity_billed: 0,
        rate_cents: rate,
        unit: m
            .get("PurchaseOrderQuantityUnit")
            .and_then(text)
            .unwrap_or(item_id.unit.clone()),
        expected_receipt: day_start(now) + 14 * 86_400_000,
        closed: false,
        project_code: m
            .get("YY1_ProjectCode_PDI")
            .and_then(text)
            .unwrap_or_default(),
    })
}

fn nav_array(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) => o
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn created(sap: &Sap, req: &Req, row: &Row, data: &Dataset, expand: &[String]) -> Response {
    let def = def_for(row);
    let uri = entity_uri(req, def, row, data);
    let settings = sap.settings();
    let mut r = if wants_json(req) {
        let mut out = String::from("{\"d\":");
        render_text(&settings, req, row, data, None, expand, &mut out);
        out.push('}');
        json_text(StatusCode::CREATED, out)
    } else {
        let x = atom::entry(&settings, req, row, data, None, expand);
        atom_response(StatusCode::CREATED, x, "entry")
    };
    if let Ok(v) = HeaderValue::from_str(&uri) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// ETag rule when the switch is on: missing `If-Match` → 428, stale → 412.
fn check_etag(sap: &Sap, req: &Req, row: &Row, data: &Dataset) -> Result<(), SapError> {
    if !sap.settings().etag {
        return Ok(());
    }
    let Some(current) = etag(row, data) else {
        return Ok(());
    };
    match req.headers.get("if-match").and_then(|v| v.to_str().ok()) {
        None => Err(req.err(
            StatusCode::PRECONDITION_REQUIRED,
            "/IWBEP/CM_MGW_RT/028",
            "Precondition required: send If-Match with the entity's ETag",
        )),
        Some("*") => Ok(()),
        Some(t) if t == current => Ok(()),
        Some(_) => Err(req.err(
            StatusCode::PRECONDITION_FAILED,
            "/IWBEP/CM_MGW_RT/027",
            "The entity was changed by another user; read it again",
        )),
    }
}

fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

/// The entity set a write changes.
fn written_set(res: &Resource) -> Option<&str> {
    match res {
        Resource::Collection(set) | Resource::Entity(set, _) | Resource::Nav(set, _, _) => {
            Some(set.as_str())
        }
        _ => None,
    }
}

/// Refuses a write of a set the communication user may not change (`denied_entity_sets`).
fn permitted(sap: &Sap, req: &Req, res: &Resource) -> Result<(), SapError> {
    let Some(set) = written_set(res) else {
        return Ok(());
    };
    if !sap.settings().denied_entity_sets.iter().any(|d| d == set) {
        return Ok(());
    }
    Err(req.err(
        StatusCode::FORBIDDEN,
        "/IWBEP/CM_MGW_RT/010",
        format!(
            "User {} is not authorized to change data of entity set {set}",
            sap.settings().user
        ),
    ))
}

fn required_text(
    req: &Req,
    m: &Map<String, Value>,
    prop: &str,
    code: &str,
) -> Result<String, SapError> {
    match m.get(prop).and_then(text) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(bad(
            req,
            code,
            format!("Enter a value for property '{prop}'"),
        )),
    }
}

/// A text property within its declared length.
fn bounded(req: &Req, props: &[model::Prop], prop: &str, v: &str) -> Result<(), SapError> {
    let max = props
        .iter()
        .find(|p| p.name == prop)
        .and_then(|p| match p.ty {
            model::Edm::Str(n) => Some(n as usize),
            _ => None,
        });
    if max.is_some_and(|max| v.chars().count() > max) {
        return Err(bad(
            req,
            "/IWBEP/CM_MGW_RT/006",
            format!(
                "Invalid value for property '{prop}': longer than {} characters",
                max.unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

fn flag(req: &Req, v: &Value, prop: &str) -> Result<bool, SapError> {
    v.as_bool().ok_or_else(|| {
        bad(
            req,
            "/IWBEP/CM_MGW_RT/006",
            format!("Invalid value for property '{prop}'"),
        )
    })
}

/// Supplier data of a deep insert or an update of `A_Supplier`; not-updatable properties
/// are ignored, as the Gateway ignores them.
fn apply_supplier(req: &Req, v: &mut Vendor, m: &Map<String, Value>) -> Result<(), SapError> {
    check_props(req, m, SUPPLIER_PROPS, &[])?;
    if let Some(b) = m.get("PurchasingIsBlocked") {
        v.inactive = flag(req, b, "PurchasingIsBlocked")?;
    }
    Ok(())
}

/// Creates a supplier: a business partner of category 2 (organization) in the supplier
/// roles, with its supplier data.
fn create_partner(
    req: &Req,
    m: &Map<String, Value>,
    data: &mut Dataset,
) -> Result<Vendor, SapError> {
    check_props(req, m, BP_PROPS, &["to_BusinessPartnerRole", "to_Supplier"])?;
    let category = m
        .get("BusinessPartnerCategory")
        .and_then(text)
        .unwrap_or_default();
    if category != "2" {
        return Err(bad(
            req,
            "R11/001",
            format!(
                "Business partner category '{category}' is not valid here: suppliers are created as organizations (category 2) in this system"
            ),
        ));
    }
    let name = required_text(req, m, "OrganizationBPName1", "R11/401")?;
    bounded(req, BP_PROPS, "OrganizationBPName1", &name)?;
    let roles: Vec<String> = nav_array(m.get("to_BusinessPartnerRole"))
        .iter()
        .filter_map(|r| r.get("BusinessPartnerRole").and_then(text))
        .collect();
    if !roles
        .iter()
        .any(|r| model::SUPPLIER_ROLES.contains(&r.as_str()))
    {
        return Err(bad(
            req,
            "R11/655",
            "Enter a supplier role (FLVN00 or FLVN01) for the business partner",
        ));
    }
    let mut v = data
        .vendors
        .get(1)
        .ok_or_else(|| bad(req, "R11/001", "No supplier template"))?;
    v.id = 0;
    v.name = name;
    v.inactive = false;
    v.created = req.now;
    v.last_modified = req.now;
    match m.get("to_Supplier") {
        Some(Value::Object(sm)) => apply_supplier(req, &mut v, sm)?,
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(bad(
                req,
                "/IWBEP/CM_MGW_RT/001",
                "Malformed to_Supplier: an object is expected",
            ));
        }
    }
    let id = data.vendors.insert(v.clone());
    v.id = id;
    v.number = format!("V{id:05}");
    data.vendors.replace(v.clone());
    Ok(v)
}

/// Creates a product with its descriptions.
fn create_product(req: &Req, m: &Map<String, Value>, data: &mut Dataset) -> Result<Item, SapError> {
    check_props(req, m, PRODUCT_PROPS, &["to_Description"])?;
    let key = required_text(req, m, "Product", "M3/302")?;
    bounded(req, PRODUCT_PROPS, "Product", &key)?;
    if data.item_by_sku(&key).is_some() {
        return Err(bad(req, "M3/351", format!("Product {key} already exists")));
    }
    let product_type = required_text(req, m, "ProductType", "M3/140")?;
    let kind = model::product_kind(&product_type).ok_or_else(|| {
        bad(
            req,
            "M3/140",
            format!("Product type '{product_type}' does not exist (property 'ProductType')"),
        )
    })?;
    let unit = required_text(req, m, "BaseUnit", "M3/315")?;
    bounded(req, PRODUCT_PROPS, "BaseUnit", &unit)?;
    let mut i = data
        .items
        .get(1)
        .ok_or_else(|| bad(req, "M3/302", "No product template"))?;
    i.id = 0;
    i.sku = key.clone();
    i.name = String::new();
    i.description = String::new();
    i.unit = unit;
    i.kind = kind;
    i.inactive = false;
    i.created = req.now;
    i.last_modified = req.now;
    if let Some(g) = m.get("ProductGroup").and_then(text) {
        i.category = g;
    }
    if let Some(b) = m.get("IsMarkedForDeletion") {
        i.inactive = flag(req, b, "IsMarkedForDeletion")?;
    }
    for d in nav_array(m.get("to_Description")) {
        let Value::Object(dm) = d else {
            return Err(bad(
                req,
                "/IWBEP/CM_MGW_RT/001",
                "Malformed item in to_Description",
            ));
        };
        check_props(req, &dm, DESC_PROPS, &[])?;
        if dm.get("Language").and_then(text).as_deref() == Some("EN")
            && let Some(t) = dm.get("ProductDescription").and_then(text)
        {
            bounded(req, DESC_PROPS, "ProductDescription", &t)?;
            i.name = t.clone();
            i.description = t;
        }
    }
    let id = data.items.insert(i.clone());
    i.id = id;
    Ok(i)
}

/// Changes a product; the key, type and base unit are not updatable.
fn update_product(req: &Req, i: &mut Item, m: &Map<String, Value>) -> Result<(), SapError> {
    check_props(req, m, PRODUCT_PROPS, &["to_Description"])?;
    if let Some(b) = m.get("IsMarkedForDeletion") {
        i.inactive = flag(req, b, "IsMarkedForDeletion")?;
    }
    if let Some(g) = m.get("ProductGroup").and_then(text) {
        i.category = g;
    }
    i.last_modified = req.now;
    Ok(())
}

/// One modifying request under the data's write lock.
pub fn write(sap: &Sap, req: &Req, res: Resource, body: &[u8]) -> Result<Response, SapError> {
    let mut data = sap.core.write();
    write_in(sap, req, res, body, &mut data)
}

/// One modifying request against `data`, which the caller holds locked (a `$batch` changeset
/// holds it across its requests, so they apply together or not at all).
pub fn write_in(
    sap: &Sap,
    req: &Req,
    res: Resource,
    body: &[u8],
    data: &mut Dataset,
) -> Result<Response, SapError> {
    let method = req.method.as_str().to_string();
    let now = req.now;
    permitted(sap, req, &res)?;
    match (method.as_str(), res) {
        ("POST", Resource::Collection(set)) if set == "A_BusinessPartner" => {
            let m = parse_body(req, body)?;
            let v = create_partner(req, &m, data)?;
            Ok(created(
                sap,
                req,
                &Row::Partner(v),
                data,
                &["to_Supplier".to_string()],
            ))
        }
        ("POST", Resource::Collection(set)) if set == "A_Product" => {
            let m = parse_body(req, body)?;
            let i = create_product(req, &m, data)?;
            Ok(created(
                sap,
                req,
                &Row::Product(i),
                data,
                &["to_Description".to_string()],
            ))
        }
        ("POST", Resource::Collection(set)) if set == "A_PurchaseOrder" => {
            let m = parse_body(req, body)?;
            check_props(req, &m, PO_PROPS, &["to_PurchaseOrderItem"])?;
            read_only(sap, req, &m, PO_PROPS, true)?;
            let vendor_id = match m.get("Supplier") {
                None => return Err(bad(req, "ME/081", "Enter Supplier")),
                Some(v) => supplier(req, v, data)?,
            };
            if m.get("PurchasingGroup")
                .and_then(text)
                .unwrap_or_default()
                .is_empty()
            {
                return Err(bad(req, "ME/083", "Enter Purchasing Group"));
            }
            let currency = m
                .get("DocumentCurrency")
                .and_then(text)
                .or_else(|| data.vendors.get(vendor_id).map(|v| v.currency))
                .unwrap_or_else(|| "USD".into());
            let mut po = PurchaseOrder {
                id: 0,
                number: String::new(),
                vendor_id,
                location_id: 1,
                status: PoStatus::PendingReceipt,
                order_date: day_start(now),
                created: now,
                last_modified: now,
                change_time_unset: false,
                currency,
                memo: String::new(),
                external_id: your_reference(req, &m)?.flatten(),
                header: None,
                priority: m
                    .get("YY1_Priority_PDH")
                    .and_then(text)
                    .unwrap_or_else(|| "Normal".into()),
                requestor_id: EMPLOYEES[0].0,
                lines: Vec::new(),
            };
            let items = nav_array(m.get("to_PurchaseOrderItem"));
            for it in &items {
                let Value::Object(im) = it else {
                    return Err(bad(
                        req,
                        "/IWBEP/CM_MGW_RT/001",
                        "Malformed item in to_PurchaseOrderItem",
                    ));
                };
                read_only(sap, req, im, ITEM_PROPS, true)?;
                let line = new_line(req, im, &po, data, now)?;
                if let Some(loc) = im
                    .get("Plant")
                    .and_then(text)
                    .and_then(|p| location_for_plant(&p))
                {
                    po.location_id = loc;
                }
                po.lines.push(line);
            }
            if po.lines.is_empty() {
                return Err(bad(req, "ME/702", "Enter at least one item"));
            }
            let id = data.purchase_orders.insert(po.clone());
            po.id = id;
            po.number = model::po_key(id);
            data.purchase_orders.replace(po.clone());
            Ok(created(
                sap,
                req,
                &Row::Po(Rc::new(po)),
                data,
                &["to_PurchaseOrderItem".to_string()],
            ))
        }
        ("POST", Resource::Nav(set, keys, nav))
            if set == "A_PurchaseOrder" && nav == "to_PurchaseOrderItem" =>
        {
            let def = find_def(req, &set)?;
            let Row::Po(po) = lookup(req, def, &keys, data)? else {
                return Err(req.not_found(&set));
            };
            let mut po = (*po).clone();
            if po.status == PoStatus::Closed {
                return Err(bad(
                    req,
                    "06/028",
                    format!(
                        "Purchase order {} is deleted; changes are not possible",
                        model::po_key(po.id)
                    ),
                ));
            }
            let m = parse_body(req, body)?;
            read_only(sap, req, &m, ITEM_PROPS, true)?;
            let line = new_line(req, &m, &po, data, now)?;
            po.lines.push(line);
            po.last_modified = now;
            let idx = po.lines.len() - 1;
            data.purchase_orders.replace(po.clone());
            Ok(created(sap, req, &Row::Item(Rc::new(po), idx), data, &[]))
        }
        ("PATCH" | "MERGE" | "PUT", Resource::Entity(set, keys)) => {
            let def = find_def(req, &set)?;
            let row = lookup(req, def, &keys, data)?;
            let m = parse_body(req, body)?;
            match row {
                Row::Po(ref po) => {
                    check_etag(sap, req, &row, data)?;
                    check_props(req, &m, PO_PROPS, &["to_PurchaseOrderItem"])?;
                    read_only(sap, req, &m, PO_PROPS, false)?;
                    let mut po = (**po).clone();
                    if po.status == PoStatus::Closed {
                        return Err(bad(
                            req,
                            "06/028",
                            format!(
                                "Purchase order {} is deleted; changes are not possible",
                                model::po_key(po.id)
                            ),
                        ));
                    }
                    if let Some(v) = m.get("Supplier") {
                        po.vendor_id = supplier(req, v, data)?;
                    }
                    if let Some(v) = m.get("PurchasingGroup")
                        && text(v).unwrap_or_default().is_empty()
                    {
                        return Err(bad(req, "ME/083", "Enter Purchasing Group"));
                    }
                    if let Some(v) = m.get("DocumentCurrency").and_then(text) {
                        po.currency = v;
                    }
                    if let Some(v) = m.get("YY1_Priority_PDH").and_then(text) {
                        po.priority = v;
                    }
                    if let Some(r) = your_reference(req, &m)? {
                        po.external_id = r;
                    }
                    // Other properties are not updatable and are ignored, as the Gateway does.
                    po.last_modified = now;
                    data.purchase_orders.replace(po);
                    Ok(no_content())
                }
                Row::Item(ref po, idx) => {
                    check_etag(sap, req, &Row::Po(po.clone()), data)?;
                    check_props(req, &m, ITEM_PROPS, &["to_PurchaseOrder"])?;
                    read_only(sap, req, &m, ITEM_PROPS, false)?;
                    let mut po = (**po).clone();
                    if po.status == PoStatus::Closed {
                        return Err(bad(
                            req,
                            "06/028",
                            format!(
                                "Purchase order {} is deleted; changes are not possible",
                                model::po_key(po.id)
                            ),
                        ));
                    }
                    let l = &mut po.lines[idx];
                    if let Some(v) = m.get("OrderQuantity") {
                        let q = number(req, v, "OrderQuantity")?;
                        if q <= 0.0 || q.fract() != 0.0 || q > 1e9 {
                            return Err(bad(req, "ME/069", "Enter a quantity greater than zero"));
                        }
                        l.quantity = q as i64;
                    }
                    if let Some(v) = m.get("NetPriceAmount") {
                        l.rate_cents = price(req, v)?;
                    }
                    if let Some(v) = m.get("PurchaseOrderItemText").and_then(text) {
                        l.description = v;
                    }
                    if let Some(v) = m.get("YY1_ProjectCode_PDI").and_then(text) {
                        l.project_code = v;
                    }
                    // The item has no LastChangeDateTime: the header's moves instead.
                    po.last_modified = now;
                    data.purchase_orders.replace(po);
                    Ok(no_content())
                }
                Row::Supplier(ref v) => {
                    let mut v = v.clone();
                    apply_supplier(req, &mut v, &m)?;
                    v.last_modified = now;
                    data.vendors.replace(v);
                    Ok(no_content())
                }
                Row::Partner(ref v) => {
                    check_props(
                        req,
                        &m,
                        BP_PROPS,
                        &["to_BusinessPartnerRole", "to_Supplier"],
                    )?;
                    let mut v = v.clone();
                    if let Some(n) = m.get("OrganizationBPName1") {
                        let n = text(n).unwrap_or_default();
                        if n.trim().is_empty() {
                            return Err(bad(
                                req,
                                "R11/401",
                                "Enter a value for property 'OrganizationBPName1'",
                            ));
                        }
                        bounded(req, BP_PROPS, "OrganizationBPName1", &n)?;
                        v.name = n;
                    }
                    v.last_modified = now;
                    data.vendors.replace(v);
                    Ok(no_content())
                }
                Row::Product(ref i) => {
                    let mut i = i.clone();
                    update_product(req, &mut i, &m)?;
                    data.items.replace(i);
                    Ok(no_content())
                }
                Row::Desc(ref i) => {
                    check_props(req, &m, DESC_PROPS, &[])?;
                    let mut i = i.clone();
                    if let Some(t) = m.get("ProductDescription").and_then(text) {
                        bounded(req, DESC_PROPS, "ProductDescription", &t)?;
                        i.name = t.clone();
                        i.description = t;
                    }
                    i.last_modified = now;
                    data.items.replace(i);
                    Ok(no_content())
                }
                _ => Err(req.err(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "/IWBEP/CM_MGW_RT/034",
                    format!("Updates of {set} are not allowed"),
                )),
            }
        }
        ("DELETE", Resource::Entity(set, keys)) => {
            let def = find_def(req, &set)?;
            let row = lookup(req, def, &keys, data)?;
            match row {
                Row::Po(ref po) => {
                    check_etag(sap, req, &row, data)?;
                    let mut po = (**po).clone();
                    po.status = PoStatus::Closed;
                    po.lines.iter_mut().for_each(|l| l.closed = true);
                    po.last_modified = now;
                    data.purchase_orders.replace(po);
                    Ok(no_content())
                }
                Row::Item(ref po, idx) => {
                    check_etag(sap, req, &Row::Po(po.clone()), data)?;
                    let mut po = (**po).clone();
                    // Deleting an item sets its deletion code; the row stays.
                    po.lines[idx].closed = true;
                    if po.lines.iter().all(|l| l.closed) {
                        po.status = PoStatus::Closed;
                    }
                    po.last_modified = now;
                    data.purchase_orders.replace(po);
                    Ok(no_content())
                }
                _ => Err(req.err(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "/IWBEP/CM_MGW_RT/034",
                    format!("Deletion of {set} is not allowed"),
                )),
            }
        }
        (_, Resource::Metadata) => Err(req.err(
            StatusCode::METHOD_NOT_ALLOWED,
            "/IWBEP/CM_MGW_RT/034",
            "The request method is not allowed for $metadata",
        )),
        (m, _) => Err(req.err(
            StatusCode::METHOD_NOT_ALLOWED,
            "/IWBEP/CM_MGW_RT/034",
            format!("Method {m} is not allowed for this resource"),
        )),
    }
}
