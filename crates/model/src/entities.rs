//! The unified data model v1: one standard shape per entity, identical for every source system.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

/// Fields every unified record carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordCommon {
    /// Ironbridge's id for the record: stable across resyncs, prefixed by entity (`po_…`).
    #[schema(example = "po_5kq2n7d3x9v1b8m4c6z0h2j7wa")]
    pub id: String,
    /// The record's id in the source system.
    #[schema(example = "100023")]
    pub remote_id: String,
    /// When Ironbridge first stored this record.
    pub created_at: Timestamp,
    /// When Ironbridge last stored a change to this record (what `modified_after` filters on).
    pub modified_at: Timestamp,
    /// When the source system says the record was created, if it says.
    pub remote_created_at: Option<Timestamp>,
    /// When the source system says the record last changed, if it says.
    pub remote_updated_at: Option<Timestamp>,
    /// True once the record was deleted in the source system. Deleted records are only listed
    /// with `include_deleted=true`.
    pub remote_was_deleted: bool,
    /// Source fields outside the standard model, by name (per-connection mappings add more).
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// The source system's own payload, only with `include_remote_data=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<serde_json::Value>,
}

/// Unified lifecycle of a purchase order. The source's own value is kept in `remote_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderStatus {
    /// Being prepared; not yet submitted.
    Draft,
    /// Submitted and waiting for approval.
    PendingApproval,
    /// Approved and sent; nothing received yet.
    Approved,
    /// Some goods received.
    PartiallyReceived,
    /// Fully received (and possibly billed or closed).
    Completed,
    /// Cancelled or rejected.
    Cancelled,
    /// The source's status has no unified equivalent; see `remote_status`.
    Unknown,
}

/// A purchase order with its lines.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PurchaseOrder {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The order number people use (`PO-100023`).
    pub number: Option<String>,
    /// Unified status.
    pub status: PurchaseOrderStatus,
    /// The status exactly as the source system names it.
    pub remote_status: Option<String>,
    /// The vendor (`vnd_…`).
    pub vendor_id: Option<String>,
    /// Where the goods are to be received (`loc_…`).
    pub location_id: Option<String>,
    /// ISO 4217 currency code.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Order date (`YYYY-MM-DD`).
    #[schema(format = Date, example = "2026-11-02")]
    pub order_date: Option<String>,
    /// When delivery is expected (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub expected_delivery_date: Option<String>,
    /// Sum of the lines before tax, as a decimal string.
    #[schema(value_type = Option<String>, example = "1250.00")]
    pub subtotal: Option<Decimal>,
    /// Tax, as a decimal string.
    #[schema(value_type = Option<String>, example = "100.00")]
    pub tax_amount: Option<Decimal>,
    /// Total including tax, as a decimal string.
    #[schema(value_type = Option<String>, example = "1350.00")]
    pub total_amount: Option<Decimal>,
    /// Free-text note on the order.
    pub memo: Option<String>,
    /// The order's lines, in line-number order.
    pub line_items: Vec<PurchaseOrderLine>,
}

/// One line of a purchase order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PurchaseOrderLine {
    /// Ironbridge's id for the line (`pol_…`), stable across resyncs.
    pub id: String,
    /// The line's key in the source system.
    pub remote_id: String,
    /// Line number as shown in the source system.
    pub line_number: Option<i64>,
    /// The item ordered (`itm_…`).
    pub item_id: Option<String>,
    /// Line description.
    pub description: Option<String>,
    /// Quantity ordered, as a decimal string.
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity: Option<Decimal>,
    /// Quantity received so far, as a decimal string.
    #[schema(value_type = Option<String>, example = "4")]
    pub quantity_received: Option<Decimal>,
    /// Unit of measure code (`EA`, `KG`, ...).
    pub unit_of_measure: Option<String>,
    /// Price per unit, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.50")]
    pub unit_price: Option<Decimal>,
    /// Line total, as a decimal string.
    #[schema(value_type = Option<String>, example = "125.00")]
    pub total_amount: Option<Decimal>,
    /// When this line's delivery is expected (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub expected_delivery_date: Option<String>,
    /// Source fields of the line outside the standard model.
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Whether a vendor, item or location may be used in new transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActiveStatus {
    /// Usable.
    Active,
    /// Blocked or retired in the source system.
    Inactive,
}

/// A postal address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Address {
    /// Street and number.
    pub line1: Option<String>,
    /// Suite, building, floor.
    pub line2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State, province or region.
    pub state: Option<String>,
    /// Postal or ZIP code.
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

/// A supplier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Vendor {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The vendor's code or number in the source system (`V-1004`).
    pub code: Option<String>,
    /// Legal or trading name.
    pub name: Option<String>,
    /// Whether purchase orders may be placed with this vendor.
    pub status: ActiveStatus,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Contact phone.
    pub phone: Option<String>,
    /// Tax registration number.
    pub tax_id: Option<String>,
    /// Default ISO 4217 currency.
    pub currency: Option<String>,
    /// Payment terms as the source names them (`Net 30`).
    pub payment_terms: Option<String>,
    /// Main address.
    pub address: Option<Address>,
}

/// Kinds of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// Stocked goods with on-hand quantities.
    Inventory,
    /// Goods bought but not stocked.
    NonInventory,
    /// Services.
    Service,
    /// Anything else; see `custom_fields` and `remote_data`.
    Other,
}

/// An item that can be purchased or stocked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// SKU or item number (`ITM-1003`).
    pub code: Option<String>,
    /// Short name.
    pub name: Option<String>,
    /// Longer description.
    pub description: Option<String>,
    /// Kind of item.
    pub item_type: ItemType,
    /// Whether the item may be ordered.
    pub status: ActiveStatus,
    /// Base unit of measure (`EA`).
    pub unit_of_measure: Option<String>,
    /// Standard purchase cost per unit, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.50")]
    pub unit_cost: Option<Decimal>,
    /// Quantity on hand across locations, as a decimal string.
    #[schema(value_type = Option<String>, example = "240")]
    pub quantity_on_hand: Option<Decimal>,
    /// Quantity available to promise, as a decimal string.
    #[schema(value_type = Option<String>, example = "200")]
    pub quantity_available: Option<Decimal>,
}

/// Kinds of location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocationType {
    /// A warehouse or distribution centre.
    Warehouse,
    /// A plant or factory.
    Plant,
    /// A shop or branch.
    Store,
    /// An office.
    Office,
    /// Anything else.
    Other,
}

/// A place where goods are received or stocked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Location {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// Code in the source system (`DC-EAST`).
    pub code: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Kind of location.
    pub location_type: LocationType,
    /// Whether goods may be received here.
    pub status: ActiveStatus,
    /// Address.
    pub address: Option<Address>,
}
