//! Business Central entities: GUIDs derived from canonical ids, API v2.0 JSON for companies, purchase
//! orders, lines, vendors and items, `@odata.etag`, and property values for `$filter`/`$orderby`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::clock::{iso_date, iso_millis};
use crate::common::datagen::{Item, PoLine, PoStatus, PurchaseOrder, Vendor, mix};
use crate::common::jsontext::Members;
use crate::common::odata::OVal;
use crate::common::{Dataset, PostedInvoice};

pub const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Company = 1,
    PurchaseOrder = 2,
    Line = 3,
    Vendor = 4,
    Item = 5,
    Location = 6,
    PostedInvoice = 7,
}

/// A GUID whose last 12 hex digits carry the canonical id; the rest is fixed per seed and kind.
pub fn guid(seed: u64, kind: Kind, n: u64) -> String {
    let h = mix(seed, 0xB0C + kind as u64, 0);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        h as u16,
        0x8000 | (kind as u16),
        n
    )
}

/// Inverse of `guid`: `None` unless the prefix matches this seed and kind.
pub fn guid_id(seed: u64, kind: Kind, g: &str) -> Option<u64> {
    let g = g.to_ascii_lowercase();
    let (prefix, tail) = g.split_at_checked(24)?;
    if prefix != &guid(seed, kind, 0)[..24] || tail.len() != 12 {
        return None;
    }
    u64::from_str_radix(tail, 16).ok()
}

/// Lines: order id in the high bits, line number in the low 16.
pub fn line_key(po: u64, line: u32) -> u64 {
    (po << 16) | line as u64
}

/// An AL enum member's name as API v2.0 serves it: characters other than letters, digits
/// and `_` become `_xHHHH_` (XML name encoding), so `In Review` is `In_x0020_Review`,
/// `Non-Inventory` is `Non_x002D_Inventory` and the blank member ` ` is `_x0020_`.
pub fn member(display: &str) -> String {
    let mut out = String::with_capacity(display.len() + 8);
    for (i, c) in display.chars().enumerate() {
        if c.is_ascii_alphabetic() || c == '_' || (c.is_ascii_digit() && i > 0) {
            out.push(c);
        } else {
            out.push_str(&format!("_x{:04X}_", c as u32));
        }
    }
    out
}

/// The enums of the API's properties: entity type, property, enum type name and members (as
/// AL names them). `$metadata` declares them and the properties use them.
pub const ENUMS: &[(&str, &str, &str, &[&str])] = &[
    (
        "purchaseOrder",
        "status",
        "purchaseOrderEntityBufferStatus",
        &["Draft", "In Review", "Open"],
    ),
    (
        "purchaseOrderLine",
        "lineType",
        "purchaseLineType",
        &[
            " ",
            "G/L Account",
            "Item",
            "Resource",
            "Fixed Asset",
            "Charge (Item)",
            "Allocation Account",
        ],
    ),
    (
        "vendor",
        "blocked",
        "vendorBlocked",
        &[" ", "Payment", "All"],
    ),
    (
        "item",
        "type",
        "itemType",
        &["Inventory", "Service", "Non-Inventory"],
    ),
];

/// A purchase order's status as the API serves it (enum member names).
pub fn status(s: PoStatus) -> &'static str {
    match s {
        PoStatus::PendingApproval => "In_x0020_Review",
        // A rejected approval request sends the document back to the open (draft) state.
        PoStatus::Rejected => "Draft",
        _ => "Open",
    }
}

/// `W/"JzE5OzE1…Jw=="`: base64 of BC's `'len;value;00;'` version token; it changes on every write.
pub fn etag(lm: i64, id: u64, revision: u64) -> String {
    let v = format!("{lm}{id}{revision:04}");
    format!(
        "W/\"{}\"",
        STANDARD.encode(format!("'{};{v};00;'", v.len()))
    )
}

fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

pub fn vendor_number(v: u64) -> String {
    format!("V{v:05}")
}

pub fn po_number(id: u64) -> String {
    format!("{}", 106_000 + id)
}

/// Posted purchase invoice numbers, as CRONUS's `P-INV` series prints them (`108001`).
pub fn posted_invoice_number(id: u64) -> String {
    format!("{}", 108_000 + id)
}

/// A posted purchase invoice (API page 30042, `purchaseInvoices`), with the order it came
/// from (`orderId`, `orderNumber`: kept after posting deleted the order).
pub fn invoice_json(seed: u64, id: u64, inv: &PostedInvoice, data: &Dataset) -> Value {
    let v = data.vendors.get(inv.vendor_id);
    let vname = v.as_ref().map_or("", |v| v.name.as_str());
    let vnumber = v
        .as_ref()
        .map_or_else(|| vendor_number(inv.vendor_id), |v| v.number.clone());
    let vendor_guid = guid(seed, Kind::Vendor, inv.vendor_id);
    json!({
        "@odata.etag": etag(inv.posted_at, id, 0),
        "id": guid(seed, Kind::PostedInvoice, id),
        "number": posted_invoice_number(id),
        "postingDate": iso_date(inv.posted_at),
        "invoiceDate": iso_date(inv.posted_at),
        "dueDate": iso_date(inv.posted_at.saturating_add(30 * 86_400_000)),
        "vendorInvoiceNumber": format!("VI-{}", inv.order_number),
        "vendorId": vendor_guid,
        "vendorNumber": vnumber,
        "vendorName": vname,
        "payToName": vname,
        "payToContact": "",
        "payToVendorId": vendor_guid,
        "payToVendorNumber": vnumber,
        "currencyId": EMPTY_GUID,
        "currencyCode": inv.currency,
        "orderId": guid(seed, Kind::PurchaseOrder, inv.order_id),
        "orderNumber": inv.order_number,
        "pricesIncludeTax": false,
        "discountAmount": 0,
        "discountAppliedBeforeTax": true,
        "totalAmountExcludingTax": money(inv.total_cents),
        "totalTaxAmount": 0,
        "totalAmountIncludingTax": money(inv.total_cents),
        "status": "Open",
        "lastModifiedDateTime": iso_millis(inv.posted_at),
    })
}

/// Parses text written by a `*_members` writer back into a value (small responses, filters).
fn to_value(write: impl FnOnce(&mut Members<'_>)) -> Value {
    let mut s = String::from("{");
    write(&mut Members::new(&mut s));
    s.push('}');
    serde_json::from_str(&s).unwrap_or(Value::Null)
}

pub fn po_json(seed: u64, po: &PurchaseOrder, data: &Dataset) -> Value {
    to_value(|m| po_members(seed, po, data, m))
}

pub fn line_json(seed: u64, po: &PurchaseOrder, l: &PoLine, data: &Dataset) -> Value {
    to_value(|m| line_members(seed, po, l, data, m))
}

/// A purchase order's members as JSON text, in the order BC writes them.
pub fn po_members(seed: u64, po: &PurchaseOrder, data: &Dataset, m: &mut Members<'_>) {
    let v = data.vendors.get(po.vendor_id);
    let loc = data.locations.get(po.location_id);
    let total = po.total_cents() as f64 / 100.0;
    let vendor_guid = guid(seed, Kind::Vendor, po.vendor_id);
    let vname = v.as_ref().map_or("", |v| v.name.as_str());
    let vnumber = v
        .as_ref()
        .map_or_else(|| vendor_number(po.vendor_id), |v| v.number.clone());
    m.str(
        "@odata.etag",
        &etag(
            po.last_modified,
            po.id,
            data.purchase_orders.revision(po.id),
        ),
    );
    m.str("id", &guid(seed, Kind::PurchaseOrder, po.id));
    // What a client wrote to the header and the model does not hold.
    m.set_overrides(po.header.as_deref().cloned());
    m.str("number", &po_number(po.id));
    m.str("orderDate", &iso_date(po.order_date));
    m.str("postingDate", &iso_date(po.order_date));
    m.str(
        "dueDate",
        &iso_date(po.order_date.saturating_add(30 * 86_400_000)),
    );
    m.str("vendorId", &vendor_guid);
    m.str("vendorNumber", &vnumber);
    m.str("vendorName", vname);
    m.str("payToName", vname);
    m.str("payToVendorId", &vendor_guid);
    m.str("payToVendorNumber", &vnumber);
    m.str("shipToName", loc.as_ref().map_or("", |l| l.name.as_str()));
    m.str("shipToContact", po.external_id.as_deref().unwrap_or(""));
    for prefix in ["buyFrom", "payTo"] {
        m.str(
            &format!("{prefix}AddressLine1"),
            v.as_ref().map_or("", |v| v.address.as_str()),
        );
        m.str(&format!("{prefix}AddressLine2"), "");
        m.str(
            &format!("{prefix}City"),
            v.as_ref().map_or("", |v| v.city.as_str()),
        );
        m.str(
            &format!("{prefix}Country"),
            v.as_ref().map_or("", |v| v.country.as_str()),
        );
        m.str(
            &format!("{prefix}State"),
            v.as_ref().map_or("", |v| v.state.as_str()),
        );
        m.str(
            &format!("{prefix}PostCode"),
            v.as_ref().map_or("", |v| v.zip.as_str()),
        );
    }
    m.str(
        "shipToAddressLine1",
        &loc.as_ref()
            .map_or(String::new(), |l| format!("{} Receiving", l.name)),
    );
    m.str("shipToAddressLine2", "");
    m.str("shipToCity", loc.as_ref().map_or("", |l| l.city.as_str()));
    m.str(
        "shipToCountry",
        loc.as_ref().map_or("", |l| l.country.as_str()),
    );
    m.str("shipToState", loc.as_ref().map_or("", |l| l.state.as_str()));
    m.str("shipToPostCode", "");
    m.str("shortcutDimension1Code", "");
    m.str("shortcutDimension2Code", "");
    m.str("currencyId", EMPTY_GUID);
    m.str("currencyCode", &po.currency);
    m.bool("pricesIncludeTax", false);
    m.str("paymentTermsId", EMPTY_GUID);
    m.str("shipmentMethodId", EMPTY_GUID);
    m.str("purchaser", "");
    m.str("requestedReceiptDate", "0001-01-01");
    m.int("discountAmount", 0);
    m.bool("discountAppliedBeforeTax", true);
    m.num("totalAmountExcludingTax", total);
    m.int("totalTaxAmount", 0);
    m.num("totalAmountIncludingTax", total);
    m.bool(
        "fullyReceived",
        po.lines.iter().all(|l| l.quantity_received >= l.quantity),
    );
    m.set_overrides(None);
    m.str("status", status(po.status));
    m.str("lastModifiedDateTime", &iso_millis(po.last_modified));
}

/// A line's members as JSON text.
pub fn line_members(
    seed: u64,
    po: &PurchaseOrder,
    l: &PoLine,
    data: &Dataset,
    m: &mut Members<'_>,
) {
    let item = data.items.get(l.item_id);
    let amount = l.amount_cents() as f64 / 100.0;
    m.str(
        "@odata.etag",
        &etag(
            po.last_modified,
            line_key(po.id, l.line),
            data.purchase_orders.revision(po.id),
        ),
    );
    m.str("id", &guid(seed, Kind::Line, line_key(po.id, l.line)));
    m.str("documentId", &guid(seed, Kind::PurchaseOrder, po.id));
    m.int("sequence", l.line as i64 * 10_000);
    m.str("itemId", &guid(seed, Kind::Item, l.item_id));
    m.str("accountId", EMPTY_GUID);
    m.str("lineType", "Item");
    m.str(
        "lineObjectNumber",
        item.as_ref().map_or("", |i| i.sku.as_str()),
    );
    m.str("description", &l.description);
    m.str("unitOfMeasureId", EMPTY_GUID);
    m.str("unitOfMeasureCode", &l.unit);
    m.int("quantity", l.quantity);
    m.num("directUnitCost", l.rate_cents as f64 / 100.0);
    m.int("discountAmount", 0);
    m.int("discountPercent", 0);
    m.bool("discountAppliedBeforeTax", false);
    m.num("amountExcludingTax", amount);
    m.str("taxCode", "");
    m.int("taxPercent", 0);
    m.int("totalTaxAmount", 0);
    m.num("amountIncludingTax", amount);
    m.int("invoiceDiscountAllocation", 0);
    m.num("netAmount", amount);
    m.int("netTaxAmount", 0);
    m.num("netAmountIncludingTax", amount);
    m.str("expectedReceiptDate", &iso_date(l.expected_receipt));
    m.int("receivedQuantity", l.quantity_received);
    m.int("invoicedQuantity", l.quantity_billed);
    m.int(
        "invoiceQuantity",
        l.quantity_received.saturating_sub(l.quantity_billed),
    );
    m.int(
        "receiveQuantity",
        l.quantity.saturating_sub(l.quantity_received),
    );
    m.str("itemVariantId", EMPTY_GUID);
    m.str("locationId", &guid(seed, Kind::Location, po.location_id));
}

pub fn vendor_json(seed: u64, v: &Vendor, revision: u64) -> Value {
    json!({
        "@odata.etag": etag(v.last_modified, v.id, revision),
        "id": guid(seed, Kind::Vendor, v.id),
        "number": v.number,
        "displayName": v.name,
        "addressLine1": v.address,
        "addressLine2": "",
        "city": v.city,
        "state": v.state,
        "country": v.country,
        "postalCode": v.zip,
        "phoneNumber": v.phone,
        "email": v.email,
        "website": "",
        "taxRegistrationNumber": v.tax_id,
        "currencyId": EMPTY_GUID,
        "currencyCode": v.currency,
        "irs1099Code": "",
        "paymentTermsId": EMPTY_GUID,
        "paymentMethodId": EMPTY_GUID,
        "taxLiable": false,
        "blocked": if v.inactive { "All" } else { "_x0020_" },
        "balance": 0,
        "lastModifiedDateTime": iso_millis(v.last_modified),
    })
}

pub fn item_json(seed: u64, i: &Item, revision: u64) -> Value {
    json!({
        "@odata.etag": etag(i.last_modified, i.id, revision),
        "id": guid(seed, Kind::Item, i.id),
        "number": i.sku,
        "displayName": i.name,
        "type": member(i.kind.bc()),
        "itemCategoryId": EMPTY_GUID,
        "itemCategoryCode": i.category,
        "blocked": i.inactive,
        "gtin": i.gtin,
        "inventory": 0,
        "unitPrice": money(i.price_cents),
        "priceIncludesTax": false,
        "unitCost": money(i.cost_cents),
        "taxGroupId": EMPTY_GUID,
        "taxGroupCode": "",
        "baseUnitOfMeasureId": EMPTY_GUID,
        "baseUnitOfMeasureCode": i.unit,
        "generalProductPostingGroupId": EMPTY_GUID,
        "generalProductPostingGroupCode": "RETAIL",
        "inventoryPostingGroupId": EMPTY_GUID,
        "inventoryPostingGroupCode": "RESALE",
        "lastModifiedDateTime": iso_millis(i.last_modified),
    })
}

/// A rendered entity's field as a filter value (dates and datetimes compare as instants).
pub fn field(v: &Value, name: &str) -> OVal {
    match v.get(name) {
        None | Some(Value::Null) => OVal::Null,
        Some(Value::Bool(b)) => OVal::Bool(*b),
        Some(Value::Number(n)) => OVal::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(s)) => {
            if name.ends_with("DateTime") || name.ends_with("Date") {
                crate::common::clock::parse_rfc3339(s)
                    .or_else(|| crate::common::clock::parse_rfc3339(&format!("{s}T00:00:00Z")))
                    .map_or(OVal::Str(s.clone()), OVal::Time)
            } else {
                OVal::Str(s.clone())
            }
        }
        Some(_) => OVal::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_per_kind_and_seed() {
        let g = guid(7, Kind::PurchaseOrder, 123_456);
        assert_eq!(g.len(), 36);
        assert_eq!(guid_id(7, Kind::PurchaseOrder, &g), Some(123_456));
        assert_eq!(guid_id(7, Kind::Vendor, &g), None);
        assert_eq!(guid_id(8, Kind::PurchaseOrder, &g), None);
        assert_eq!(
            guid_id(7, Kind::PurchaseOrder, &g.to_uppercase()),
            Some(123_456)
        );
        assert_eq!(guid_id(7, Kind::PurchaseOrder, "short"), None);
        assert_ne!(etag(1, 2, 0), etag(2, 2, 0));
        assert_ne!(etag(1, 2, 0), etag(1, 2, 1));
    }
}
