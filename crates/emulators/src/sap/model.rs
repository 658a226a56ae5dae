//! SAP entity types: one property table per entity (drives `$metadata`, JSON rendering and `$filter`
//! typing alike), and the mapping from the canonical records to S/4HANA property values.

use crate::common::Dataset;
use crate::common::clock::day_start;
use crate::common::datagen::{EMPLOYEES, Item, ItemKind, PoStatus, PurchaseOrder, Vendor};
use crate::common::odata::OVal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edm {
    Str(u32),
    Dec(u32, u32),
    Bool,
    DateTime,
    DateTimeOffset,
}

pub struct Prop {
    pub name: &'static str,
    pub ty: Edm,
    pub nullable: bool,
}

const fn p(name: &'static str, ty: Edm) -> Prop {
    Prop {
        name,
        ty,
        nullable: false,
    }
}

const fn n(name: &'static str, ty: Edm) -> Prop {
    Prop {
        name,
        ty,
        nullable: true,
    }
}

use Edm::{Bool, DateTime, DateTimeOffset, Dec, Str};

pub const PO_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    p("CompanyCode", Str(4)),
    p("PurchaseOrderType", Str(4)),
    p("PurchasingDocumentDeletionCode", Str(1)),
    p("PurchasingProcessingStatus", Str(2)),
    p("CreatedByUser", Str(12)),
    n("CreationDate", DateTime),
    n("LastChangeDateTime", DateTimeOffset),
    p("Supplier", Str(10)),
    p("Language", Str(2)),
    p("PaymentTerms", Str(4)),
    p("CashDiscount1Days", Dec(3, 0)),
    p("NetPaymentDays", Dec(3, 0)),
    p("PurchasingOrganization", Str(4)),
    p("PurchasingGroup", Str(3)),
    n("PurchaseOrderDate", DateTime),
    p("DocumentCurrency", Str(5)),
    p("ExchangeRate", Dec(9, 5)),
    p("ExchangeRateIsFixed", Bool),
    n("ValidityStartDate", DateTime),
    n("ValidityEndDate", DateTime),
    p("SupplyingSupplier", Str(10)),
    p("SupplyingPlant", Str(4)),
    p("IncotermsClassification", Str(3)),
    p("IncotermsLocation1", Str(70)),
    p("IncotermsLocation2", Str(70)),
    p("CorrespncExternalReference", Str(12)),
    p("CorrespncInternalReference", Str(12)),
    p("InvoicingParty", Str(10)),
    p("ReleaseIsNotCompleted", Bool),
    p("PurchasingCompletenessStatus", Bool),
    p("AddressName", Str(40)),
    p("AddressCityName", Str(40)),
    p("AddressPostalCode", Str(10)),
    p("AddressCountry", Str(3)),
    p("YY1_Priority_PDH", Str(20)),
];

pub const ITEM_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    p("PurchaseOrderItem", Str(5)),
    p("PurchasingDocumentDeletionCode", Str(1)),
    p("PurchaseOrderItemText", Str(40)),
    p("Plant", Str(4)),
    p("StorageLocation", Str(4)),
    p("MaterialGroup", Str(9)),
    p("Material", Str(40)),
    p("PurchasingInfoRecord", Str(10)),
    p("SupplierMaterialNumber", Str(35)),
    p("OrderQuantity", Dec(13, 3)),
    p("PurchaseOrderQuantityUnit", Str(3)),
    p("OrderPriceUnit", Str(3)),
    p("NetPriceAmount", Dec(12, 3)),
    p("NetPriceQuantity", Dec(5, 0)),
    p("DocumentCurrency", Str(5)),
    p("TaxCode", Str(2)),
    p("IsCompletelyDelivered", Bool),
    p("IsFinallyInvoiced", Bool),
    p("PurchaseOrderItemCategory", Str(1)),
    p("AccountAssignmentCategory", Str(1)),
    p("GoodsReceiptIsExpected", Bool),
    p("InvoiceIsExpected", Bool),
    p("RequisitionerName", Str(12)),
    p("InternationalArticleNumber", Str(18)),
    p("YY1_ProjectCode_PDI", Str(20)),
];

pub const SUPPLIER_PROPS: &[Prop] = &[
    p("Supplier", Str(10)),
    p("SupplierName", Str(80)),
    p("SupplierFullName", Str(220)),
    p("SupplierAccountGroup", Str(4)),
    n("CreationDate", DateTime),
    p("Customer", Str(10)),
    p("PostingIsBlocked", Bool),
    p("PurchasingIsBlocked", Bool),
    p("PaymentIsBlockedForSupplier", Bool),
    p("DeletionIndicator", Bool),
    p("AuthorizationGroup", Str(4)),
    p("Industry", Str(4)),
];

pub const PRODUCT_PROPS: &[Prop] = &[
    p("Product", Str(40)),
    p("ProductType", Str(4)),
    p("BaseUnit", Str(3)),
    p("ProductGroup", Str(9)),
    n("CreationDate", DateTime),
    n("LastChangeDate", DateTime),
    n("LastChangeDateTime", DateTimeOffset),
    p("IsMarkedForDeletion", Bool),
    p("InternationalArticleNumber", Str(18)),
];

/// `A_BusinessPartner` (a subset of its properties: the organization's names, its category and
/// grouping, the supplier it carries).
pub const BP_PROPS: &[Prop] = &[
    p("BusinessPartner", Str(10)),
    p("Customer", Str(10)),
    p("Supplier", Str(10)),
    p("BusinessPartnerCategory", Str(1)),
    p("BusinessPartnerFullName", Str(81)),
    p("BusinessPartnerGrouping", Str(4)),
    p("BusinessPartnerName", Str(81)),
    p("OrganizationBPName1", Str(40)),
    p("OrganizationBPName2", Str(40)),
    n("CreationDate", DateTime),
    n("LastChangeDate", DateTime),
];

/// `A_BusinessPartnerRole`.
pub const ROLE_PROPS: &[Prop] = &[
    p("BusinessPartner", Str(10)),
    p("BusinessPartnerRole", Str(6)),
];

/// The roles every supplier's business partner has: supplier (FLVN00, financial accounting)
/// and supplier (FLVN01, purchasing).
pub const SUPPLIER_ROLES: [&str; 2] = ["FLVN00", "FLVN01"];

pub const DESC_PROPS: &[Prop] = &[
    p("Product", Str(40)),
    p("Language", Str(2)),
    p("ProductDescription", Str(40)),
];

/// Number ranges: POs 45xxxxxxxx, suppliers 1030xxxx.
pub fn po_key(id: u64) -> String {
    format!("{}", 4_500_000_000 + id)
}

pub fn po_id(key: &str) -> Option<u64> {
    key.parse::<u64>()
        .ok()?
        .checked_sub(4_500_000_000)
        .filter(|id| *id > 0)
}

pub fn supplier_key(id: u64) -> String {
    format!("{}", 10_300_000 + id)
}

pub fn supplier_id(key: &str) -> Option<u64> {
    key.parse::<u64>()
        .ok()?
        .checked_sub(10_300_000)
        .filter(|id| *id > 0)
}

/// Items are numbered 10, 20, 30 and serialized without leading zeros.
pub fn item_key(line: u32) -> String {
    (line as u64 * 10).to_string()
}

pub fn item_line(key: &str) -> Option<u32> {
    let n: u32 = key.trim_start_matches('0').parse().ok()?;
    (n.is_multiple_of(10) && n > 0).then_some(n / 10)
}

/// Plants per location: US company code 1710, German 1010.
pub fn plant(location_id: u64) -> String {
    if location_id == 6 {
        "1010".into()
    } else {
        format!("17{}0", location_id.min(9))
    }
}

fn company(currency: &str) -> &'static str {
    if currency == "EUR" { "1010" } else { "1710" }
}

pub fn processing_status(s: PoStatus) -> &'static str {
    match s {
        PoStatus::PendingApproval => "03",
        PoStatus::Rejected => "08",
        _ => "05",
    }
}

fn s(x: impl Into<String>) -> OVal {
    OVal::Str(x.into())
}

pub fn po_prop(po: &PurchaseOrder, vendor: Option<&Vendor>, name: &str) -> OVal {
    let sup = supplier_key(po.vendor_id);
    match name {
        "PurchaseOrder" => s(po_key(po.id)),
        "CompanyCode" | "PurchasingOrganization" => s(company(&po.currency)),
        "PurchaseOrderType" => s("NB"),
        "PurchasingDocumentDeletionCode" => s(if po.status == PoStatus::Closed {
            "L"
        } else {
            ""
        }),
        "PurchasingProcessingStatus" => s(processing_status(po.status)),
        "CreatedByUser" => s("CB9980000012"),
        "CreationDate" => OVal::Time(day_start(po.created)),
        // Null until the order is first changed (`null_change_time_every`).
        "LastChangeDateTime" if po.change_time_unset => OVal::Null,
        "LastChangeDateTime" => OVal::Time(po.last_modified),
        "Supplier" | "InvoicingParty" => s(sup),
        "Language" => s("EN"),
        "PaymentTerms" => s("0001"),
        "CashDiscount1Days" => OVal::Num(0.0),
        "NetPaymentDays" => OVal::Num(30.0),
        "PurchasingGroup" => s("001"),
        "PurchaseOrderDate" => OVal::Time(po.order_date),
        "DocumentCurrency" => s(po.currency.clone()),
        "ExchangeRate" => OVal::Num(1.0),
        "ExchangeRateIsFixed" | "PurchasingCompletenessStatus" => OVal::Bool(false),
        "ValidityStartDate" | "ValidityEndDate" => OVal::Null,
        "IncotermsClassification" => s("EXW"),
        "ReleaseIsNotCompleted" => OVal::Bool(po.status == PoStatus::PendingApproval),
        "AddressName" => s(vendor.map_or(String::new(), |v| v.name.chars().take(40).collect())),
        "AddressCityName" => s(vendor.map_or(String::new(), |v| v.city.clone())),
        "AddressPostalCode" => s(vendor.map_or(String::new(), |v| v.zip.clone())),
        "AddressCountry" => s(vendor.map_or(String::new(), |v| v.country.clone())),
        "YY1_Priority_PDH" => s(po.priority.clone()),
        // "Your Reference": free text a client sets; the canonical order's external reference.
        "CorrespncExternalReference" => s(po.external_id.clone().unwrap_or_default()),
        _ => s(""),
    }
}

pub fn item_prop(po: &PurchaseOrder, idx: usize, item: Option<&Item>, name: &str) -> OVal {
    let Some(l) = po.lines.get(idx) else {
        return OVal::Null;
    };
    match name {
        "PurchaseOrder" => s(po_key(po.id)),
        "PurchaseOrderItem" => s(item_key(l.line)),
        "PurchasingDocumentDeletionCode" => s(if l.closed { "L" } else { "" }),
        "PurchaseOrderItemText" => s(l.description.chars().take(40).collect::<String>()),
        "Plant" => s(plant(po.location_id)),
        "StorageLocation" => s("0001"),
        "MaterialGroup" => s(item.map_or(String::new(), |i| i.category.clone())),
        "Material" => s(item.map_or(String::new(), |i| i.sku.clone())),
        "OrderQuantity" => OVal::Num(l.quantity as f64),
        "PurchaseOrderQuantityUnit" | "OrderPriceUnit" => s(l.unit.clone()),
        "NetPriceAmount" => OVal::Num(l.rate_cents as f64 / 100.0),
        "NetPriceQuantity" => OVal::Num(1.0),
        "DocumentCurrency" => s(po.currency.clone()),
        "IsCompletelyDelivered" => OVal::Bool(l.quantity_received >= l.quantity),
        "IsFinallyInvoiced" => OVal::Bool(l.quantity_billed >= l.quantity),
        "PurchaseOrderItemCategory" => s("0"),
        "GoodsReceiptIsExpected" | "InvoiceIsExpected" => OVal::Bool(true),
        "RequisitionerName" => s(EMPLOYEES
            .iter()
            .find(|e| e.0 == po.requestor_id)
            .map_or(String::new(), |e| e.1.chars().take(12).collect())),
        "InternationalArticleNumber" => s(item.map_or(String::new(), |i| i.gtin.clone())),
        "YY1_ProjectCode_PDI" => s(l.project_code.clone()),
        _ => s(""),
    }
}

pub fn supplier_prop(v: &Vendor, name: &str) -> OVal {
    match name {
        "Supplier" => s(supplier_key(v.id)),
        "SupplierName" => s(v.name.clone()),
        "SupplierFullName" => s(v.name.clone()),
        "SupplierAccountGroup" => s("SUPL"),
        "CreationDate" => OVal::Time(day_start(v.created)),
        "PurchasingIsBlocked" => OVal::Bool(v.inactive),
        "PostingIsBlocked" | "PaymentIsBlockedForSupplier" | "DeletionIndicator" => {
            OVal::Bool(false)
        }
        _ => s(""),
    }
}

/// A supplier's business partner: the same number as its supplier (harmonized number ranges).
pub fn partner_prop(v: &Vendor, name: &str) -> OVal {
    match name {
        "BusinessPartner" | "Supplier" => s(supplier_key(v.id)),
        "Customer" | "OrganizationBPName2" => s(""),
        "BusinessPartnerCategory" => s("2"),
        "BusinessPartnerFullName" | "BusinessPartnerName" => s(v.name.clone()),
        "BusinessPartnerGrouping" => s("BP02"),
        "OrganizationBPName1" => s(v.name.chars().take(40).collect::<String>()),
        "CreationDate" => OVal::Time(day_start(v.created)),
        "LastChangeDate" => OVal::Time(day_start(v.last_modified)),
        _ => s(""),
    }
}

pub fn role_prop(v: &Vendor, role: &str, name: &str) -> OVal {
    match name {
        "BusinessPartner" => s(supplier_key(v.id)),
        "BusinessPartnerRole" => s(role),
        _ => s(""),
    }
}

/// The item kind of a `ProductType` (`None`: not a type the emulated system has).
pub fn product_kind(product_type: &str) -> Option<ItemKind> {
    match product_type {
        "HAWA" | "FERT" | "HALB" | "ROH" => Some(ItemKind::Inventory),
        "NLAG" => Some(ItemKind::NonInventory),
        "DIEN" | "SERV" => Some(ItemKind::Service),
        _ => None,
    }
}

pub fn product_prop(i: &Item, name: &str) -> OVal {
    match name {
        "Product" => s(i.sku.clone()),
        "ProductType" => s(i.kind.sap()),
        "BaseUnit" => s(i.unit.clone()),
        "ProductGroup" => s(i.category.clone()),
        "CreationDate" => OVal::Time(day_start(i.created)),
        "LastChangeDate" => OVal::Time(day_start(i.last_modified)),
        "LastChangeDateTime" => OVal::Time(i.last_modified),
        "IsMarkedForDeletion" => OVal::Bool(i.inactive),
        "InternationalArticleNumber" => s(i.gtin.clone()),
        "Language" => s("EN"),
        "ProductDescription" => s(i.name.chars().take(40).collect::<String>()),
        _ => s(""),
    }
}

/// Finds the product whose `Product` key is `sku` (`ITEM-00042` → item 42; a created one by
/// its key).
pub fn product_id(sku: &str, data: &Dataset) -> Option<u64> {
    data.item_by_sku(sku).map(|i| i.id)
}
