//! SAP entity types: one property table per entity (drives `$metadata`, JSON rendering and `$filter`
//! typing alike), and the mapping from the canonical records to S/4HANA property values.

use crate::common::Dataset;
use crate::common::clock::day_start;
use crate::common::datagen::{EMPLOYEES, Item, ItemKind, PoLine, PoStatus, PurchaseOrder, Vendor};
use crate::common::odata::OVal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edm {
    Str(u32),
    /// `Edm.String` without `MaxLength` (long texts).
    Text,
    Dec(u32, u32),
    Bool,
    DateTime,
    DateTimeOffset,
    /// `Edm.Time` (`PT10H30M00S`).
    Time,
}

/// Where the unit of a quantity or amount is (`sap:unit`): SAP renders the number with the
/// decimals of that unit of measure or currency rather than the declared scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A quantity; the property holds its unit of measure.
    Unit(&'static str),
    /// An amount; the property holds its currency.
    Currency(&'static str),
}

pub struct Prop {
    pub name: &'static str,
    pub ty: Edm,
    pub nullable: bool,
    /// `sap:creatable="false"` when not: a create ignores or refuses it (`read_only_properties`).
    pub creatable: bool,
    /// `sap:updatable="false"` when not.
    pub updatable: bool,
    /// `sap:filterable="false"` when not.
    pub filterable: bool,
    /// `sap:unit`.
    pub measure: Option<Measure>,
    /// Digits only (ABAP NUMC), shown without leading zeros.
    pub numc: bool,
}

const fn p(name: &'static str, ty: Edm) -> Prop {
    Prop {
        name,
        ty,
        nullable: false,
        creatable: true,
        updatable: true,
        filterable: true,
        measure: None,
        numc: false,
    }
}

const fn n(name: &'static str, ty: Edm) -> Prop {
    Prop {
        nullable: true,
        ..p(name, ty)
    }
}

impl Prop {
    const fn read_only(self) -> Self {
        Prop {
            creatable: false,
            updatable: false,
            ..self
        }
    }
    /// A NUMC field (`sap:display-format="NonNegative"`): unset, SAP shows `"0"`, not `""`.
    const fn numc(self) -> Self {
        Prop { numc: true, ..self }
    }
    const fn not_filterable(self) -> Self {
        Prop {
            filterable: false,
            ..self
        }
    }
    const fn unit(self, unit: &'static str) -> Self {
        Prop {
            measure: Some(Measure::Unit(unit)),
            ..self
        }
    }
    const fn currency(self, currency: &'static str) -> Self {
        Prop {
            measure: Some(Measure::Currency(currency)),
            ..self
        }
    }
}

use Edm::{Bool, DateTime, DateTimeOffset, Dec, Str, Text, Time};

/// `A_PurchaseOrder`, as SAP's EDMX declares it (order, types, nullability, `sap:creatable`/`sap:updatable`, `sap:unit`).
pub const PO_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    n("CompanyCode", Str(4)),
    n("PurchaseOrderType", Str(4)),
    n("PurchasingDocumentDeletionCode", Str(1)).read_only(),
    n("PurchasingProcessingStatus", Str(2)).read_only(),
    n("CreatedByUser", Str(12)).read_only(),
    n("CreationDate", DateTime).read_only(),
    n("LastChangeDateTime", DateTimeOffset).read_only(),
    n("Supplier", Str(10)),
    n("PurchaseOrderSubtype", Str(1)).read_only(),
    n("Language", Str(2)),
    n("PaymentTerms", Str(4)),
    n("CashDiscount1Days", Dec(3, 0)),
    n("CashDiscount2Days", Dec(3, 0)),
    n("NetPaymentDays", Dec(3, 0)),
    n("CashDiscount1Percent", Dec(5, 3)),
    n("CashDiscount2Percent", Dec(5, 3)),
    n("PurchasingOrganization", Str(4)),
    n("PurchasingDocumentOrigin", Str(1)).read_only(),
    n("PurchasingGroup", Str(3)),
    n("PurchaseOrderDate", DateTime),
    n("DocumentCurrency", Str(5)),
    n("ExchangeRate", Str(12)),
    n("ExchangeRateIsFixed", Bool),
    n("ValidityStartDate", DateTime),
    n("ValidityEndDate", DateTime),
    n("SupplierQuotationExternalID", Str(10)),
    n("SupplierRespSalesPersonName", Str(30)),
    n("SupplierPhoneNumber", Str(16)),
    n("SupplyingSupplier", Str(10)),
    n("SupplyingPlant", Str(4)),
    n("IncotermsClassification", Str(3)),
    n("CorrespncExternalReference", Str(12)),
    n("CorrespncInternalReference", Str(12)),
    n("InvoicingParty", Str(10)),
    n("ReleaseIsNotCompleted", Bool).read_only(),
    n("PurchasingCompletenessStatus", Bool),
    n("IncotermsVersion", Str(4)),
    n("IncotermsLocation1", Str(70)),
    n("IncotermsLocation2", Str(70)),
    n("ManualSupplierAddressID", Str(10)).read_only(),
    n("IsEndOfPurposeBlocked", Str(1)).read_only(),
    n("AddressCityName", Str(40)),
    n("AddressFaxNumber", Str(30)),
    n("AddressHouseNumber", Str(10)),
    n("AddressName", Str(40)),
    n("AddressPostalCode", Str(10)),
    n("AddressStreetName", Str(60)),
    n("AddressPhoneNumber", Str(30)),
    n("AddressRegion", Str(3)),
    n("AddressCountry", Str(3)),
    n("AddressCorrespondenceLanguage", Str(2)),
    n("PurgAggrgdProdCmplncSuplrSts", Str(1)).read_only(),
    n("PurgAggrgdProdMarketabilitySts", Str(1)).read_only(),
    n("PurgAggrgdSftyDataSheetStatus", Str(1)).read_only(),
    n("PurgProdCmplncTotDngrsGoodsSts", Str(1)).read_only(),
    // Key user extensibility: a custom field of the header (`custom_fields`).
    n("YY1_Priority_PDH", Str(20)),
];

/// `A_PurchaseOrderItem`, as SAP's EDMX declares it (order, types, nullability, `sap:creatable`/`sap:updatable`, `sap:unit`).
pub const ITEM_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    p("PurchaseOrderItem", Str(5)),
    n("PurchasingDocumentDeletionCode", Str(1)).read_only(),
    n("PurchaseOrderItemText", Str(40)),
    n("Plant", Str(4)),
    n("StorageLocation", Str(4)),
    n("MaterialGroup", Str(9)),
    n("PurchasingInfoRecord", Str(10)),
    n("SupplierMaterialNumber", Str(35)),
    n("OrderQuantity", Dec(13, 3)).unit("PurchaseOrderQuantityUnit"),
    n("PurchaseOrderQuantityUnit", Str(3)),
    n("OrderPriceUnit", Str(3)),
    n("OrderPriceUnitToOrderUnitNmrtr", Dec(5, 0)),
    n("OrdPriceUnitToOrderUnitDnmntr", Dec(5, 0)),
    n("DocumentCurrency", Str(5)).read_only(),
    n("NetPriceAmount", Dec(12, 3)).currency("DocumentCurrency"),
    n("NetPriceQuantity", Dec(5, 0)).unit("OrderPriceUnit"),
    n("TaxCode", Str(2)),
    n("ShippingInstruction", Str(2)),
    n("TaxDeterminationDate", DateTime),
    n("TaxCountry", Str(3)),
    n("PriceIsToBePrinted", Bool),
    n("OverdelivTolrtdLmtRatioInPct", Dec(3, 1)),
    n("UnlimitedOverdeliveryIsAllowed", Bool),
    n("UnderdelivTolrtdLmtRatioInPct", Dec(3, 1)),
    n("ValuationType", Str(10)),
    n("IsCompletelyDelivered", Bool),
    n("IsFinallyInvoiced", Bool),
    n("PurchaseOrderItemCategory", Str(1)),
    n("AccountAssignmentCategory", Str(1)),
    n("MultipleAcctAssgmtDistribution", Str(1)),
    n("PartialInvoiceDistribution", Str(1)),
    n("GoodsReceiptIsExpected", Bool),
    n("GoodsReceiptIsNonValuated", Bool),
    n("InvoiceIsExpected", Bool),
    n("InvoiceIsGoodsReceiptBased", Bool),
    n("PurchaseContract", Str(10)),
    n("PurchaseContractItem", Str(5)).numc(),
    n("Customer", Str(10)),
    n("Subcontractor", Str(10)),
    n("SupplierIsSubcontractor", Bool),
    n("ItemNetWeight", Dec(13, 3)).unit("ItemWeightUnit"),
    n("ItemWeightUnit", Str(3)),
    n("TaxJurisdiction", Str(15)),
    n("PricingDateControl", Str(1)),
    n("ItemVolume", Dec(13, 3)).unit("ItemVolumeUnit"),
    n("ItemVolumeUnit", Str(3)),
    n("SupplierConfirmationControlKey", Str(4)),
    n("IncotermsClassification", Str(3)),
    n("IncotermsTransferLocation", Str(28)),
    n("EvaldRcptSettlmtIsAllowed", Bool),
    n("PurchaseRequisition", Str(10)),
    n("PurchaseRequisitionItem", Str(5)).numc(),
    n("IsReturnsItem", Bool),
    n("RequisitionerName", Str(12)),
    n("ServicePackage", Str(10)).numc(),
    n("EarmarkedFunds", Str(10)),
    n("EarmarkedFundsDocument", Str(10)),
    n("EarmarkedFundsItem", Str(3)).numc(),
    n("EarmarkedFundsDocumentItem", Str(3)).numc(),
    n("IncotermsLocation1", Str(70)),
    n("IncotermsLocation2", Str(70)),
    n("Material", Str(40)),
    n("InternationalArticleNumber", Str(18)),
    n("ManufacturerMaterial", Str(40)),
    n("ServicePerformer", Str(10)),
    n("ProductType", Str(2)),
    n("ExpectedOverallLimitAmount", Dec(14, 3)).currency("DocumentCurrency"),
    n("OverallLimitAmount", Dec(14, 3)).currency("DocumentCurrency"),
    n("PurContractForOverallLimit", Str(10)),
    n("PurchasingParentItem", Str(5)).numc(),
    n("PurgConfigurableItemNumber", Str(40)),
    n("PurgDocAggrgdSubitemCategory", Str(1)),
    n("PurgDocSubitemCategory", Str(1)),
    n("PurgExternalSortNumber", Str(5)).numc(),
    n("ReferenceDeliveryAddressID", Str(10)),
    n("DeliveryAddressID", Str(10)).read_only(),
    n("DeliveryAddressName", Str(40)),
    n("DeliveryAddressName2", Str(40)),
    n("DeliveryAddressFullName", Str(80)).read_only(),
    n("DeliveryAddressStreetName", Str(60)),
    n("DeliveryAddressHouseNumber", Str(10)),
    n("DeliveryAddressCityName", Str(40)),
    n("DeliveryAddressPostalCode", Str(10)),
    n("DeliveryAddressRegion", Str(3)),
    n("DeliveryAddressCountry", Str(3)),
    n("DeliveryAddressDistrictName", Str(40)),
    n("DownPaymentType", Str(4)),
    n("DownPaymentPercentageOfTotAmt", Dec(5, 2)),
    n("DownPaymentAmount", Dec(12, 3)).currency("DocumentCurrency"),
    n("DownPaymentDueDate", DateTime),
    n("BR_MaterialUsage", Str(1)),
    n("BR_MaterialOrigin", Str(1)),
    n("BR_CFOPCategory", Str(2)),
    n("BR_IsProducedInHouse", Bool),
    n("ConsumptionTaxCtrlCode", Str(16)),
    n("PurgProdCmplncSupplierStatus", Str(1)).read_only(),
    n("PurgProductMarketabilityStatus", Str(1)).read_only(),
    n("PurgSafetyDataSheetStatus", Str(1)).read_only(),
    n("PurgProdCmplncDngrsGoodsStatus", Str(1)).read_only(),
    // Key user extensibility: a custom field of the item (`custom_fields`).
    n("YY1_ProjectCode_PDI", Str(20)),
];

/// `A_PurchaseOrderNote`, as SAP's EDMX declares it (order, types, nullability, `sap:creatable`/`sap:updatable`, `sap:unit`).
pub const NOTE_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    p("TextObjectType", Str(4)),
    p("Language", Str(2)),
    n("PlainLongText", Text).not_filterable(),
];

/// `A_PurchaseOrderScheduleLine`, as SAP's EDMX declares it (order, types, nullability, `sap:creatable`/`sap:updatable`, `sap:unit`).
pub const SCHEDULE_LINE_PROPS: &[Prop] = &[
    p("PurchasingDocument", Str(10)),
    p("PurchasingDocumentItem", Str(5)),
    p("ScheduleLine", Str(4)),
    n("DelivDateCategory", Str(1)),
    n("ScheduleLineDeliveryDate", DateTime),
    n("PurchaseOrderQuantityUnit", Str(3)).read_only(),
    n("ScheduleLineOrderQuantity", Dec(13, 3)).unit("PurchaseOrderQuantityUnit"),
    n("ScheduleLineDeliveryTime", Time),
    n("SchedLineStscDeliveryDate", DateTime),
    n("PurchaseRequisition", Str(10)),
    n("PurchaseRequisitionItem", Str(5)).numc(),
    n("ScheduleLineCommittedQuantity", Dec(13, 3)).unit("PurchaseOrderQuantityUnit"),
    n("PerformancePeriodStartDate", DateTime),
    n("PerformancePeriodEndDate", DateTime),
];

/// `A_PurOrdAccountAssignment`, as SAP's EDMX declares it (order, types, nullability, `sap:creatable`/`sap:updatable`, `sap:unit`).
pub const ACCOUNT_ASSIGNMENT_PROPS: &[Prop] = &[
    p("PurchaseOrder", Str(10)),
    p("PurchaseOrderItem", Str(5)),
    p("AccountAssignmentNumber", Str(2)),
    n("IsDeleted", Bool).read_only(),
    n("PurchaseOrderQuantityUnit", Str(3)).read_only(),
    n("Quantity", Dec(13, 3)).unit("PurchaseOrderQuantityUnit"),
    n("MultipleAcctAssgmtDistrPercent", Dec(3, 1)),
    n("DocumentCurrency", Str(5)).read_only(),
    n("PurgDocNetAmount", Dec(14, 3)).currency("DocumentCurrency"),
    n("GLAccount", Str(10)),
    n("BusinessArea", Str(4)),
    n("CostCenter", Str(10)),
    n("SalesOrder", Str(10)),
    n("SalesOrderItem", Str(6)).numc(),
    n("SalesOrderScheduleLine", Str(4)).numc(),
    n("MasterFixedAsset", Str(12)),
    n("FixedAsset", Str(4)),
    n("GoodsRecipientName", Str(12)),
    n("UnloadingPointName", Str(25)),
    n("ControllingArea", Str(4)),
    n("CostObject", Str(12)),
    n("OrderID", Str(12)),
    n("ProfitCenter", Str(10)),
    n("WBSElementInternalID", Str(24)).numc(),
    n("WBSElement", Str(24)),
    n("WBSElementExternalID", Str(24)),
    n("ProjectNetwork", Str(12)),
    n("RealEstateObject", Str(40)),
    n("PartnerAccountNumber", Str(10)),
    n("CommitmentItem", Str(24)),
    n("JointVentureRecoveryCode", Str(2)),
    n("FundsCenter", Str(16)),
    n("Fund", Str(10)),
    n("FunctionalArea", Str(16)),
    n("SettlementReferenceDate", DateTime),
    n("TaxCode", Str(2)),
    n("TaxJurisdiction", Str(15)),
    n("CostCtrActivityType", Str(6)),
    n("BusinessProcess", Str(12)),
    n("EarmarkedFundsDocument", Str(10)),
    n("GrantID", Str(20)),
    n("BudgetPeriod", Str(10)),
];

pub const SUPPLIER_PROPS: &[Prop] = &[
    p("Supplier", Str(10)),
    p("SupplierName", Str(80)).read_only(),
    p("SupplierFullName", Str(220)).read_only(),
    p("SupplierAccountGroup", Str(4)),
    n("CreationDate", DateTime).read_only(),
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
        "NetPaymentDays" => OVal::Num(30.0),
        // `9`: created through the API (EKKO-STATU), as the recorded Atom entry shows.
        "PurchasingDocumentOrigin" => s("9"),
        "PurchasingGroup" => s("001"),
        "PurchaseOrderDate" => OVal::Time(po.order_date),
        "DocumentCurrency" => s(po.currency.clone()),
        // Edm.String in the EDMX: the rate as SAP writes it, five decimals.
        "ExchangeRate" => s("1.00000"),
        "ExchangeRateIsFixed" | "PurchasingCompletenessStatus" => OVal::Bool(false),
        "ValidityStartDate" | "ValidityEndDate" => OVal::Null,
        "IncotermsClassification" => s("EXW"),
        "IncotermsVersion" => s("2010"),
        "ReleaseIsNotCompleted" => OVal::Bool(po.status == PoStatus::PendingApproval),
        "AddressName" => s(vendor.map_or(String::new(), |v| v.name.chars().take(40).collect())),
        "AddressCityName" => s(vendor.map_or(String::new(), |v| v.city.clone())),
        "AddressPostalCode" => s(vendor.map_or(String::new(), |v| v.zip.clone())),
        "AddressCountry" => s(vendor.map_or(String::new(), |v| v.country.clone())),
        "AddressCorrespondenceLanguage" => s("EN"),
        "YY1_Priority_PDH" => s(po.priority.clone()),
        // "Your Reference": free text a client sets; the canonical order's external reference.
        "CorrespncExternalReference" => s(po.external_id.clone().unwrap_or_default()),
        // Everything else is unset on these orders: `unset` gives SAP's empty value per type.
        _ => OVal::Null,
    }
}

/// The value SAP shows for a property nothing set: `""` for text, `"0"` for NUMC, zero for
/// numbers, `false` for flags, midnight for times, null for dates (recorded payloads).
pub fn unset(p: &Prop) -> OVal {
    match p.ty {
        Edm::Str(_) | Edm::Text if p.numc => s("0"),
        Edm::Str(_) | Edm::Text => s(""),
        Edm::Dec(..) => OVal::Num(0.0),
        Edm::Bool => OVal::Bool(false),
        Edm::Time => s("PT00H00M00S"),
        Edm::DateTime | Edm::DateTimeOffset => OVal::Null,
    }
}

/// Whether an item carries an account assignment: lines booked on a project (their project
/// code) are assigned to its WBS element (category `P`); stock lines have none.
pub fn item_account_assigned(l: &PoLine) -> bool {
    !l.project_code.is_empty()
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
        "NetPriceQuantity" | "OrderPriceUnitToOrderUnitNmrtr" | "OrdPriceUnitToOrderUnitDnmntr" => {
            OVal::Num(1.0)
        }
        "DocumentCurrency" => s(po.currency.clone()),
        "TaxCountry" => s(if po.currency == "EUR" { "DE" } else { "US" }),
        "PriceIsToBePrinted" | "GoodsReceiptIsExpected" | "InvoiceIsExpected" => OVal::Bool(true),
        "IsCompletelyDelivered" => OVal::Bool(l.quantity_received >= l.quantity),
        "IsFinallyInvoiced" => OVal::Bool(l.quantity_billed >= l.quantity),
        "PurchaseOrderItemCategory" => s("0"),
        "AccountAssignmentCategory" => s(if item_account_assigned(l) { "P" } else { "" }),
        // `1` material, `2` service (the item's product type group).
        "ProductType" => s(match item.map(|i| i.kind) {
            Some(ItemKind::Service) => "2",
            _ => "1",
        }),
        "IncotermsClassification" => s("EXW"),
        "RequisitionerName" => s(EMPLOYEES
            .iter()
            .find(|e| e.0 == po.requestor_id)
            .map_or(String::new(), |e| e.1.chars().take(12).collect())),
        "InternationalArticleNumber" => s(item.map_or(String::new(), |i| i.gtin.clone())),
        "YY1_ProjectCode_PDI" => s(l.project_code.clone()),
        _ => OVal::Null,
    }
}

/// `A_PurchaseOrderNote`: the header text (`F01`, in English) holds the order's memo.
pub fn note_prop(po: &PurchaseOrder, name: &str) -> OVal {
    match name {
        "PurchaseOrder" => s(po_key(po.id)),
        "TextObjectType" => s(NOTE_TEXT_TYPE),
        "Language" => s("EN"),
        "PlainLongText" => s(po.memo.clone()),
        _ => OVal::Null,
    }
}

/// The text id of the header note the emulator keeps (`F01`, "Header text").
pub const NOTE_TEXT_TYPE: &str = "F01";

/// `A_PurchaseOrderScheduleLine`: one schedule line per item, delivering the whole quantity
/// on the line's expected receipt date.
pub fn schedule_line_prop(po: &PurchaseOrder, idx: usize, name: &str) -> OVal {
    let Some(l) = po.lines.get(idx) else {
        return OVal::Null;
    };
    match name {
        "PurchasingDocument" => s(po_key(po.id)),
        "PurchasingDocumentItem" => s(item_key(l.line)),
        "ScheduleLine" => s("1"),
        // `1`: a day date (not a week or month).
        "DelivDateCategory" => s("1"),
        "ScheduleLineDeliveryDate" | "SchedLineStscDeliveryDate" => {
            OVal::Time(day_start(l.expected_receipt))
        }
        "PurchaseOrderQuantityUnit" => s(l.unit.clone()),
        "ScheduleLineOrderQuantity" => OVal::Num(l.quantity as f64),
        _ => OVal::Null,
    }
}

/// `A_PurOrdAccountAssignment`: items on a project carry one assignment to its WBS element.
pub fn account_assignment_prop(po: &PurchaseOrder, idx: usize, name: &str) -> OVal {
    let Some(l) = po.lines.get(idx) else {
        return OVal::Null;
    };
    match name {
        "PurchaseOrder" => s(po_key(po.id)),
        "PurchaseOrderItem" => s(item_key(l.line)),
        "AccountAssignmentNumber" => s("1"),
        "IsDeleted" => OVal::Bool(l.closed),
        "PurchaseOrderQuantityUnit" => s(l.unit.clone()),
        "Quantity" => OVal::Num(l.quantity as f64),
        "MultipleAcctAssgmtDistrPercent" => OVal::Num(100.0),
        "DocumentCurrency" => s(po.currency.clone()),
        "PurgDocNetAmount" => OVal::Num(l.amount_cents() as f64 / 100.0),
        "GLAccount" => s("51600000"),
        "ControllingArea" => s("A000"),
        "WBSElement" | "WBSElementExternalID" => {
            s(l.project_code.chars().take(24).collect::<String>())
        }
        _ => OVal::Null,
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
