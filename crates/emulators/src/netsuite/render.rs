//! Canonical records rendered as NetSuite REST JSON (references, sublists, inline custom fields), and the
//! body fields each record type exposes to `q` filters.

use serde_json::{Map, Value, json};

use super::qfilter::{FieldType, FieldValue};
use crate::common::Dataset;
use crate::common::clock::{iso_date, iso_seconds};
use crate::common::datagen::{
    EMPLOYEES, Item, ItemKind, Location, PoLine, PoStatus, PurchaseOrder, Vendor,
};

/// Record types the emulator serves; path names are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecType {
    PurchaseOrder,
    Vendor,
    InventoryItem,
    Location,
}

impl RecType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "purchaseorder" => Some(RecType::PurchaseOrder),
            "vendor" => Some(RecType::Vendor),
            "inventoryitem" => Some(RecType::InventoryItem),
            "location" => Some(RecType::Location),
            _ => None,
        }
    }

    /// The lowercase name NetSuite uses in the links it generates.
    pub fn link_name(self) -> &'static str {
        match self {
            RecType::PurchaseOrder => "purchaseorder",
            RecType::Vendor => "vendor",
            RecType::InventoryItem => "inventoryitem",
            RecType::Location => "location",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecType::PurchaseOrder => "purchaseOrder",
            RecType::Vendor => "vendor",
            RecType::InventoryItem => "inventoryItem",
            RecType::Location => "location",
        }
    }

    /// Body fields usable in `q` (the metadata's `x-ns-filterable` ones).
    pub fn filterable(self) -> &'static [(&'static str, FieldType)] {
        match self {
            RecType::PurchaseOrder => &[
                ("id", FieldType::Number),
                ("tranId", FieldType::String),
                ("tranDate", FieldType::Date),
                ("createdDate", FieldType::DateTime),
                ("lastModifiedDate", FieldType::DateTime),
                ("entity", FieldType::Number),
                ("location", FieldType::Number),
                ("currency", FieldType::Number),
                ("total", FieldType::Number),
                ("memo", FieldType::String),
                ("email", FieldType::String),
                ("externalId", FieldType::String),
                ("custbody_ib_priority", FieldType::String),
            ],
            RecType::Vendor => &[
                ("id", FieldType::Number),
                ("entityId", FieldType::String),
                ("companyName", FieldType::String),
                ("email", FieldType::String),
                ("isInactive", FieldType::Boolean),
                ("dateCreated", FieldType::DateTime),
                ("lastModifiedDate", FieldType::DateTime),
            ],
            RecType::InventoryItem => &[
                ("id", FieldType::Number),
                ("itemId", FieldType::String),
                ("displayName", FieldType::String),
                ("upcCode", FieldType::String),
                ("cost", FieldType::Number),
                ("isInactive", FieldType::Boolean),
                ("createdDate", FieldType::DateTime),
                ("lastModifiedDate", FieldType::DateTime),
            ],
            RecType::Location => &[
                ("id", FieldType::Number),
                ("name", FieldType::String),
                ("isInactive", FieldType::Boolean),
            ],
        }
    }

    /// The field an index can answer range filters on.
    pub fn last_modified_field(self) -> Option<&'static str> {
        match self {
            RecType::Location => None,
            _ => Some("lastModifiedDate"),
        }
    }
}

/// Money in cents as NetSuite prints it: `3800`, `12.5`.
pub fn money(cents: i64) -> Value {
    if cents % 100 == 0 {
        json!(cents / 100)
    } else {
        json!(cents as f64 / 100.0)
    }
}

pub fn record_url(base: &str, t: RecType, id: u64) -> String {
    format!("{base}/services/rest/record/v1/{}/{id}", t.link_name())
}

fn self_link(href: String) -> Value {
    json!([{ "rel": "self", "href": href }])
}

/// `{id, refName, links}` reference to another record.
pub fn reference(base: &str, t: RecType, id: u64, ref_name: &str) -> Value {
    json!({ "id": id.to_string(), "refName": ref_name, "links": self_link(record_url(base, t, id)) })
}

/// A select value without a record of its own.
fn select(id: &str, ref_name: &str) -> Value {
    json!({ "id": id, "refName": ref_name })
}

/// The currency list of a new account: (internal id, ISO code, name).
pub const CURRENCIES: &[(u64, &str, &str)] = &[
    (1, "USD", "US Dollar"),
    (2, "GBP", "British pound"),
    (3, "CAD", "Canadian Dollar"),
    (4, "EUR", "Euro"),
];

/// The internal id and name of a currency code (US Dollar for an unknown one).
pub fn currency_of(code: &str) -> (u64, &'static str) {
    CURRENCIES
        .iter()
        .find(|(_, c, _)| *c == code)
        .map_or((1, "US Dollar"), |(id, _, name)| (*id, *name))
}

/// The ISO code of a currency's internal id.
pub fn currency_code(id: u64) -> Option<&'static str> {
    CURRENCIES
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, c, _)| *c)
}

fn currency(base: &str, code: &str) -> Value {
    let (id, name) = currency_of(code);
    json!({ "id": id.to_string(), "refName": name, "links": self_link(format!("{base}/services/rest/record/v1/currency/{id}")) })
}

fn subsidiary(base: &str) -> Value {
    json!({ "id": "1", "refName": "Ironbridge Industrial Inc.", "links": self_link(format!("{base}/services/rest/record/v1/subsidiary/1")) })
}

pub fn approval(status: PoStatus) -> Value {
    match status {
        PoStatus::PendingApproval => select("1", "Pending Approval"),
        PoStatus::Rejected => select("3", "Rejected"),
        _ => select("2", "Approved"),
    }
}

pub fn po_json(base: &str, po: &PurchaseOrder, data: &Dataset, expand: bool) -> Value {
    let url = record_url(base, RecType::PurchaseOrder, po.id);
    let vendor = data.vendors.get(po.vendor_id);
    let vendor_name = vendor.as_ref().map_or(String::new(), |v| v.name.clone());
    let location = data.locations.get(po.location_id);
    let mut m = Map::new();
    let self_href = if expand {
        format!("{url}?expandSubResources=true")
    } else {
        url.clone()
    };
    m.insert("links".into(), self_link(self_href));
    m.insert("id".into(), json!(po.id.to_string()));
    m.insert("tranId".into(), json!(po.number));
    m.insert(
        "transactionNumber".into(),
        json!(format!("PURCHORD{}", po.id)),
    );
    m.insert("tranDate".into(), json!(iso_date(po.order_date)));
    m.insert("createdDate".into(), json!(iso_seconds(po.created)));
    m.insert(
        "lastModifiedDate".into(),
        json!(iso_seconds(po.last_modified)),
    );
    m.insert(
        "entity".into(),
        reference(base, RecType::Vendor, po.vendor_id, &vendor_name),
    );
    m.insert(
        "status".into(),
        select(po.status.label(), po.status.label()),
    );
    m.insert(
        "orderStatus".into(),
        select(po.status.letter(), po.status.letter()),
    );
    m.insert("approvalStatus".into(), approval(po.status));
    m.insert("currency".into(), currency(base, &po.currency));
    m.insert("exchangeRate".into(), json!(1));
    m.insert("subtotal".into(), money(po.total_cents()));
    m.insert("total".into(), money(po.total_cents()));
    m.insert("memo".into(), json!(po.memo));
    if let Some(v) = &vendor {
        m.insert("email".into(), json!(v.email));
    }
    m.insert("subsidiary".into(), subsidiary(base));
    if let Some(l) = &location {
        m.insert(
            "location".into(),
            reference(base, RecType::Location, l.id, &l.name),
        );
        m.insert(
            "billingAddress".into(),
            json!({
                "addr1": format!("{} Receiving", l.name), "city": l.city, "state": l.state,
                "country": select(&l.country, if l.country == "DE" { "Germany" } else { "United States" }),
                "links": self_link(format!("{url}/billingAddress")),
            }),
        );
    }
    m.insert("customForm".into(), select("98", "Standard Purchase Order"));
    if let Some(x) = &po.external_id {
        m.insert("externalId".into(), json!(x));
    }
    m.insert("custbody_ib_priority".into(), json!(po.priority));
    let requestor = EMPLOYEES.iter().find(|e| e.0 == po.requestor_id);
    let req_items: Vec<Value> = requestor
        .map(|(id, name)| {
            vec![json!({ "id": id.to_string(), "refName": name,
                "links": self_link(format!("{base}/services/rest/record/v1/employee/{id}")) })]
        })
        .unwrap_or_default();
    m.insert(
        "custbody_requestor".into(),
        json!({ "count": req_items.len(), "hasMore": false, "offset": 0, "totalResults": req_items.len(),
                "items": req_items, "links": self_link(format!("{url}/custbody_requestor")) }),
    );
    if expand {
        let items: Vec<Value> = po
            .lines
            .iter()
            .map(|l| line_json(base, po, l, data))
            .collect();
        m.insert(
            "item".into(),
            json!({ "links": self_link(format!("{url}/item")), "totalResults": items.len(), "items": items }),
        );
        m.insert(
            "expense".into(),
            json!({ "items": [], "links": self_link(format!("{url}/expense")), "totalResults": 0 }),
        );
    } else {
        m.insert(
            "item".into(),
            json!({ "links": self_link(format!("{url}/item")) }),
        );
        m.insert(
            "expense".into(),
            json!({ "links": self_link(format!("{url}/expense")) }),
        );
    }
    Value::Object(m)
}

pub fn line_json(base: &str, po: &PurchaseOrder, l: &PoLine, data: &Dataset) -> Value {
    let url = record_url(base, RecType::PurchaseOrder, po.id);
    let item_name = data.items.get(l.item_id).map_or(String::new(), |i| i.name);
    let loc_name = data
        .locations
        .get(po.location_id)
        .map_or(String::new(), |l| l.name);
    json!({
        "links": self_link(format!("{url}/item/{}", l.line)),
        "line": l.line,
        "item": reference(base, RecType::InventoryItem, l.item_id, &item_name),
        "itemType": select("InvtPart", "InvtPart"),
        "description": l.description,
        "quantity": l.quantity,
        "quantityReceived": l.quantity_received,
        "quantityBilled": l.quantity_billed,
        "rate": money(l.rate_cents),
        "amount": money(l.amount_cents()),
        "units": l.unit,
        "isClosed": l.closed,
        "isOpen": !l.closed && l.quantity_received < l.quantity,
        "expectedReceiptDate": iso_date(l.expected_receipt),
        "location": reference(base, RecType::Location, po.location_id, &loc_name),
        "custcol_ib_project_code": l.project_code,
    })
}

pub fn vendor_json(base: &str, v: &Vendor) -> Value {
    json!({
        "links": self_link(record_url(base, RecType::Vendor, v.id)),
        "id": v.id.to_string(),
        "entityId": v.name,
        "companyName": v.name,
        "legalName": v.name,
        "accountNumber": v.number,
        "email": v.email,
        "phone": v.phone,
        "isInactive": v.inactive,
        "isPerson": false,
        "dateCreated": iso_seconds(v.created),
        "lastModifiedDate": iso_seconds(v.last_modified),
        "currency": currency(base, &v.currency),
        "subsidiary": subsidiary(base),
        "defaultAddress": format!("{}\n{}, {} {}\n{}", v.address, v.city, v.state, v.zip, v.country),
        "taxIdNum": v.tax_id,
        "terms": select("2", "Net 30"),
    })
}

pub fn item_json(base: &str, i: &Item) -> Value {
    json!({
        "links": self_link(record_url(base, RecType::InventoryItem, i.id)),
        "id": i.id.to_string(),
        "itemId": i.sku,
        "displayName": i.name,
        "purchaseDescription": i.description,
        "salesDescription": i.description,
        "cost": money(i.cost_cents),
        "upcCode": i.gtin,
        "stockUnit": select(&i.unit, &i.unit),
        "isInactive": i.inactive,
        "itemType": select(i.kind.netsuite(), match i.kind {
            ItemKind::Inventory => "Inventory Item",
            ItemKind::NonInventory => "Non-inventory Item",
            ItemKind::Service => "Service",
        }),
        "createdDate": iso_seconds(i.created),
        "lastModifiedDate": iso_seconds(i.last_modified),
        "subsidiary": { "items": [{"id": "1", "refName": "Ironbridge Industrial Inc."}], "totalResults": 1 },
        "custitem_ib_category": i.category,
    })
}

pub fn location_json(base: &str, l: &Location) -> Value {
    json!({
        "links": self_link(record_url(base, RecType::Location, l.id)),
        "id": l.id.to_string(),
        "name": l.name,
        "externalId": l.code,
        "isInactive": l.inactive,
        "mainAddress": { "city": l.city, "state": l.state, "country": select(&l.country, &l.country) },
        "subsidiary": subsidiary(base),
    })
}

pub fn po_field(po: &PurchaseOrder, f: &str) -> FieldValue {
    match f {
        "id" => FieldValue::Num(po.id as f64),
        "tranId" => FieldValue::Str(po.number.clone()),
        "tranDate" => FieldValue::Time(po.order_date),
        "createdDate" => FieldValue::Time(po.created),
        "lastModifiedDate" => FieldValue::Time(po.last_modified),
        "entity" => FieldValue::Num(po.vendor_id as f64),
        "location" => FieldValue::Num(po.location_id as f64),
        "currency" => FieldValue::Num(if po.currency == "EUR" { 4.0 } else { 1.0 }),
        "total" => FieldValue::Num(po.total_cents() as f64 / 100.0),
        "memo" => FieldValue::Str(po.memo.clone()),
        "externalId" => po
            .external_id
            .clone()
            .map_or(FieldValue::Null, FieldValue::Str),
        "custbody_ib_priority" => FieldValue::Str(po.priority.clone()),
        // Needs the vendor record; the list handler treats email as a residual filter.
        _ => FieldValue::Null,
    }
}

pub fn vendor_field(v: &Vendor, f: &str) -> FieldValue {
    match f {
        "id" => FieldValue::Num(v.id as f64),
        "entityId" | "companyName" => FieldValue::Str(v.name.clone()),
        "email" => FieldValue::Str(v.email.clone()),
        "isInactive" => FieldValue::Bool(v.inactive),
        "dateCreated" => FieldValue::Time(v.created),
        "lastModifiedDate" => FieldValue::Time(v.last_modified),
        _ => FieldValue::Null,
    }
}

pub fn item_field(i: &Item, f: &str) -> FieldValue {
    match f {
        "id" => FieldValue::Num(i.id as f64),
        "itemId" => FieldValue::Str(i.sku.clone()),
        "displayName" => FieldValue::Str(i.name.clone()),
        "upcCode" => FieldValue::Str(i.gtin.clone()),
        "cost" => FieldValue::Num(i.cost_cents as f64 / 100.0),
        "isInactive" => FieldValue::Bool(i.inactive),
        "createdDate" => FieldValue::Time(i.created),
        "lastModifiedDate" => FieldValue::Time(i.last_modified),
        _ => FieldValue::Null,
    }
}

pub fn location_field(l: &Location, f: &str) -> FieldValue {
    match f {
        "id" => FieldValue::Num(l.id as f64),
        "name" => FieldValue::Str(l.name.clone()),
        "isInactive" => FieldValue::Bool(l.inactive),
        _ => FieldValue::Null,
    }
}
