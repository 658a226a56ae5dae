//! The unified warehouse model v1: stock levels, receipts, outbound orders, shipments,
//! inventory transactions and dock appointments, identical for every warehouse system. Items
//! are the ERP model's `item`, facilities its `location`.
//!
//! References are Ironbridge ids (`loc_…`, `itm_…`) with the source's code kept beside them
//! (`*_code`), because warehouse feeds name things by code and the record referred to may not
//! exist on the same connection. Quantities are decimal strings; instants are RFC 3339 UTC.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::entities::RecordCommon;
use crate::timestamp::Timestamp;

/// A quantity with its unit (a catch weight: `12.5` `KG`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quantity {
    /// The amount, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.5")]
    pub value: Option<Decimal>,
    /// Its unit of measure (`KG`, `LB`).
    pub unit: Option<String>,
}

/// Stock of one item in one facility (and lot, where the source reports lots), as of a
/// snapshot. Read whole: a level absent from the next snapshot is marked deleted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InventoryLevel {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source (`01`).
    pub location_code: Option<String>,
    /// The item (`itm_…`).
    pub item_id: Option<String>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// Lot or batch; `null` when the item is not lot-tracked or the source does not report lots.
    pub lot_number: Option<String>,
    /// Expiry of the stock in this row (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub expiration_date: Option<String>,
    /// Bin within the facility; `null` when the source aggregates over bins.
    pub bin_location: Option<String>,
    /// Owner of consigned or third-party stock (VMI customer, 3PL client).
    pub owner_code: Option<String>,
    /// Unit the quantities are in (`EA`).
    pub unit_of_measure: Option<String>,
    /// Physically present, as a decimal string.
    #[schema(value_type = Option<String>, example = "240")]
    pub quantity_on_hand: Option<Decimal>,
    /// Reserved for orders, as a decimal string.
    #[schema(value_type = Option<String>, example = "40")]
    pub quantity_allocated: Option<Decimal>,
    /// On quality or other hold, as a decimal string.
    #[schema(value_type = Option<String>, example = "0")]
    pub quantity_on_hold: Option<Decimal>,
    /// Free to promise, as the source reports it (`null` when it does not).
    #[schema(value_type = Option<String>, example = "200")]
    pub quantity_available: Option<Decimal>,
    /// Catch weight of the stock, for items sold by weight.
    pub catch_weight: Option<Quantity>,
    /// Standard cost per unit, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.50")]
    pub unit_cost: Option<Decimal>,
    /// When the source computed these figures.
    pub as_of: Option<Timestamp>,
}

/// What a receipt was received against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptType {
    /// A purchase order line.
    PurchaseOrder,
    /// An advance shipping notice.
    Asn,
    /// A customer return (RMA).
    Return,
    /// A transfer from another facility.
    Transfer,
    /// Anything else; see `remote_type`.
    Other,
}

/// One received quantity: a purchase-order line (or ASN, return or transfer line) received
/// into one license plate and lot. Records sharing `receipt_number` form one receiving
/// document; flat on purpose, so that a warehouse feed's row is one record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The receiving document (receiver) number.
    pub receipt_number: Option<String>,
    /// What was received against.
    pub receipt_type: ReceiptType,
    /// The source's own type code.
    pub remote_type: Option<String>,
    /// The receiving facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source.
    pub location_code: Option<String>,
    /// The purchase order's number.
    pub purchase_order_number: Option<String>,
    /// The purchase order's release, where the source splits orders into releases.
    pub purchase_order_release: Option<String>,
    /// The purchase-order line received against.
    pub purchase_order_line_number: Option<i64>,
    /// The vendor's code in the source.
    pub vendor_code: Option<String>,
    /// The item received (`itm_…`).
    pub item_id: Option<String>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// The vendor's code for the item.
    pub vendor_item_code: Option<String>,
    /// Quantity received (negative for an unreceive), as a decimal string.
    #[schema(value_type = Option<String>, example = "24")]
    pub quantity: Option<Decimal>,
    /// Part of the quantity put on hold at receipt, as a decimal string.
    #[schema(value_type = Option<String>, example = "0")]
    pub quantity_on_hold: Option<Decimal>,
    /// Unit of the quantity (`EA`).
    pub unit_of_measure: Option<String>,
    /// Lot or batch received.
    pub lot_number: Option<String>,
    /// Expiry of the lot (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub expiration_date: Option<String>,
    /// License plate (pallet or skid id) the goods were received on.
    pub license_plate: Option<String>,
    /// Bin the goods were put away to.
    pub bin_location: Option<String>,
    /// When the goods were received.
    pub received_at: Option<Timestamp>,
    /// Who received them.
    pub received_by: Option<String>,
    /// The source closed the purchase order with this receipt.
    pub closes_order: bool,
}

/// Where an outbound order stands in the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboundOrderStatus {
    /// Received by the warehouse, not yet released to the floor.
    Open,
    /// Released for picking.
    Released,
    /// Being picked.
    Picking,
    /// Picked complete.
    Picked,
    /// Loaded on a trailer.
    Loaded,
    /// Shipped (confirmed).
    Shipped,
    /// Cancelled.
    Cancelled,
    /// Held (credit, bad lines).
    OnHold,
    /// The source's status has no unified equivalent; see `remote_status`.
    Unknown,
}

/// A postal address with a name and contact, as on a shipping label.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NamedAddress {
    /// Who the goods go to.
    pub name: Option<String>,
    /// Street and number.
    pub line1: Option<String>,
    /// Suite, building, floor.
    pub line2: Option<String>,
    /// A third address line.
    pub line3: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State, province or region.
    pub state: Option<String>,
    /// Postal or ZIP code.
    pub postal_code: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// Contact phone.
    pub contact_phone: Option<String>,
}

/// A customer (outbound) order with its lines and its warehouse status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboundOrder {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The order number (`SO-10023`).
    pub number: Option<String>,
    /// Unified status.
    pub status: OutboundOrderStatus,
    /// The status exactly as the source names it.
    pub remote_status: Option<String>,
    /// The source's order type code.
    pub order_type: Option<String>,
    /// The shipping facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source.
    pub location_code: Option<String>,
    /// The customer's code in the source.
    pub customer_code: Option<String>,
    /// The customer's purchase-order number.
    pub customer_po_number: Option<String>,
    /// The sales order this fulfils, in the ERP.
    pub sales_order_number: Option<String>,
    /// Where the goods go.
    pub ship_to: Option<NamedAddress>,
    /// Carrier code.
    pub carrier: Option<String>,
    /// Carrier service level code.
    pub service_level: Option<String>,
    /// When the order should leave (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub requested_ship_date: Option<String>,
    /// When it must arrive (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub must_arrive_by: Option<String>,
    /// When the warehouse last (re)scheduled it to ship.
    pub scheduled_ship_at: Option<Timestamp>,
    /// Priority, as a decimal string (the source's scale).
    #[schema(value_type = Option<String>, example = "1")]
    pub priority: Option<Decimal>,
    /// The order's lines, in line-number order.
    #[serde(default)]
    pub line_items: Vec<OutboundOrderLine>,
}

/// One line of an outbound order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboundOrderLine {
    /// Ironbridge's id for the line (`obol_…`), stable across resyncs.
    pub id: String,
    /// The line's key in the source system.
    pub remote_id: String,
    /// Line number.
    pub line_number: Option<i64>,
    /// The item (`itm_…`).
    pub item_id: Option<String>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// Quantity ordered, as a decimal string.
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity_ordered: Option<Decimal>,
    /// Quantity shipped so far, as a decimal string.
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity_shipped: Option<Decimal>,
    /// Unit of measure (`EA`).
    pub unit_of_measure: Option<String>,
    /// The lot the customer asked for.
    pub requested_lot: Option<String>,
    /// Selling price per unit, as a decimal string.
    #[schema(value_type = Option<String>, example = "19.90")]
    pub unit_price: Option<Decimal>,
    /// Source fields of the line outside the standard model.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// How far a shipment got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    /// Picked (and packed), not yet shipped.
    Picked,
    /// Shipped (confirmed).
    Shipped,
    /// The source's state has no unified equivalent.
    Unknown,
}

/// Goods that left a facility for an outbound order: what was picked, packed and shipped.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The shipment (bill of lading) number.
    pub number: Option<String>,
    /// How far it got.
    pub status: ShipmentStatus,
    /// The outbound order shipped (`obo_…`).
    pub outbound_order_id: Option<String>,
    /// The outbound order's number.
    pub outbound_order_number: Option<String>,
    /// The shipping facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source.
    pub location_code: Option<String>,
    /// The customer's code in the source.
    pub customer_code: Option<String>,
    /// The customer's purchase-order number.
    pub customer_po_number: Option<String>,
    /// The sales order shipped, in the ERP.
    pub sales_order_number: Option<String>,
    /// Carrier code.
    pub carrier: Option<String>,
    /// Carrier service level code.
    pub service_level: Option<String>,
    /// The carrier's PRO (freight bill) number.
    pub pro_number: Option<String>,
    /// Freight cost, as a decimal string.
    #[schema(value_type = Option<String>, example = "84.00")]
    pub freight_cost: Option<Decimal>,
    /// When it shipped (or was picked complete).
    pub shipped_at: Option<Timestamp>,
    /// Who confirmed it.
    pub shipped_by: Option<String>,
    /// What was picked, per order line and lot.
    #[serde(default)]
    pub picks: Vec<ShipmentPick>,
    /// Pallets and cartons.
    #[serde(default)]
    pub containers: Vec<ShipmentContainer>,
    /// Serial numbers shipped.
    #[serde(default)]
    pub serials: Vec<ShipmentSerial>,
    /// Parcels with their tracking numbers.
    #[serde(default)]
    pub packages: Vec<ShipmentPackage>,
}

/// One picked quantity of a shipment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentPick {
    /// Ironbridge's id for the pick (`shpk_…`).
    pub id: String,
    /// The pick's key in the source (order line and lot).
    pub remote_id: String,
    /// The order line picked.
    pub line_number: Option<i64>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// Lot picked.
    pub lot_number: Option<String>,
    /// Quantity ordered on the line, as a decimal string.
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity_ordered: Option<Decimal>,
    /// Quantity shipped, as a decimal string.
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity_shipped: Option<Decimal>,
    /// Unit of the quantities.
    pub unit_of_measure: Option<String>,
    /// Who picked it.
    pub picked_by: Option<String>,
    /// Extended price of the pick, as a decimal string.
    #[schema(value_type = Option<String>, example = "199.00")]
    pub extended_price: Option<Decimal>,
    /// Source fields of the pick outside the standard model.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// A pallet or carton of a shipment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentContainer {
    /// Ironbridge's id for the container (`shpc_…`).
    pub id: String,
    /// The container's key in the source.
    pub remote_id: String,
    /// The container's label (SSCC or the source's id).
    pub container_id: Option<String>,
    /// Kind of container (pallet type).
    pub container_type: Option<String>,
    /// Gross weight, as a decimal string.
    #[schema(value_type = Option<String>, example = "412.5")]
    pub weight: Option<Decimal>,
    /// Source fields of the container outside the standard model.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// A serial number shipped.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentSerial {
    /// Ironbridge's id for the serial (`shps_…`).
    pub id: String,
    /// The serial's key in the source.
    pub remote_id: String,
    /// The order line it shipped on.
    pub line_number: Option<i64>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// Its lot.
    pub lot_number: Option<String>,
    /// The serial number.
    pub serial_number: Option<String>,
    /// Quantity under the serial, as a decimal string (usually 1).
    #[schema(value_type = Option<String>, example = "1")]
    pub quantity: Option<Decimal>,
    /// Source fields of the serial outside the standard model.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// A parcel of a shipment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentPackage {
    /// Ironbridge's id for the package (`shpp_…`).
    pub id: String,
    /// The package's key in the source.
    pub remote_id: String,
    /// The source's package number.
    pub package_id: Option<String>,
    /// The carrier's tracking number.
    pub tracking_number: Option<String>,
    /// Carrier code.
    pub carrier: Option<String>,
    /// Carrier service level code.
    pub service_level: Option<String>,
    /// Weight, as a decimal string.
    #[schema(value_type = Option<String>, example = "4.2")]
    pub weight: Option<Decimal>,
    /// Freight cost, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.40")]
    pub freight_cost: Option<Decimal>,
    /// When it shipped.
    pub shipped_at: Option<Timestamp>,
    /// Source fields of the package outside the standard model.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Kinds of stock movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InventoryTransactionType {
    /// A quantity adjustment (count, correction).
    Adjustment,
    /// A move between bins, zones or facilities.
    Transfer,
    /// Scrapped or destroyed.
    Scrap,
    /// Produced into stock.
    Production,
    /// Consumed from stock (production issue).
    Consumption,
    /// A return into stock.
    Return,
    /// Anything else; see `remote_type`.
    Other,
}

/// A stock movement or adjustment the warehouse recorded (receipts and picks have their own
/// entities).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InventoryTransaction {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// Kind of movement.
    pub transaction_type: InventoryTransactionType,
    /// The source's own transaction code (`AD`, `TZ`).
    pub remote_type: Option<String>,
    /// Why, as the source codes it.
    pub reason_code: Option<String>,
    /// The facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source.
    pub location_code: Option<String>,
    /// The zone or warehouse within the facility.
    pub warehouse_zone: Option<String>,
    /// The item (`itm_…`).
    pub item_id: Option<String>,
    /// The item's code (SKU) in the source.
    pub item_code: Option<String>,
    /// Lot moved.
    pub lot_number: Option<String>,
    /// Expiry of the lot (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub expiration_date: Option<String>,
    /// License plate moved.
    pub license_plate: Option<String>,
    /// Quantity, signed as the source reports it (negative removes stock), as a decimal string.
    #[schema(value_type = Option<String>, example = "-3")]
    pub quantity: Option<Decimal>,
    /// Unit of the quantity.
    pub unit_of_measure: Option<String>,
    /// Bin the stock left.
    pub from_bin: Option<String>,
    /// Bin the stock went to.
    pub to_bin: Option<String>,
    /// The order it concerns, if any.
    pub order_number: Option<String>,
    /// The order line it concerns, if any.
    pub order_line_number: Option<i64>,
    /// A reference (account, document) the source attaches.
    pub reference: Option<String>,
    /// Owner of consigned or third-party stock.
    pub owner_code: Option<String>,
    /// Cost per unit, as a decimal string.
    #[schema(value_type = Option<String>, example = "12.50")]
    pub unit_cost: Option<Decimal>,
    /// When it happened.
    pub occurred_at: Option<Timestamp>,
    /// Who did it.
    pub performed_by: Option<String>,
    /// Free-text comment.
    pub memo: Option<String>,
}

/// Which way goods move through a dock appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DockDirection {
    /// Goods arrive (purchase orders, ASNs, returns).
    Inbound,
    /// Goods leave (customer orders, loads).
    Outbound,
    /// The door is blocked or holds an empty trailer.
    None,
}

/// What a dock appointment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DockAppointmentType {
    /// A customer order.
    CustomerOrder,
    /// A load plan.
    LoadPlan,
    /// A shipment.
    Shipment,
    /// An advance shipping notice.
    Asn,
    /// Containerised freight.
    ContainerizedFreight,
    /// A customer return.
    Rma,
    /// A purchase order.
    PurchaseOrder,
    /// A receiver.
    Receiver,
    /// A customer pickup.
    Customer,
    /// A vendor delivery.
    Vendor,
    /// A trailer to unload.
    UnloadTrailer,
    /// An available trailer.
    AvailableTrailer,
    /// The door is unavailable.
    DockUnavailable,
    /// Anything else; see `remote_type`.
    Other,
}

/// Where a dock appointment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DockAppointmentStatus {
    /// Booked.
    Scheduled,
    /// The carrier confirmed the appointment.
    Appointment,
    /// Being loaded or unloaded.
    InProgress,
    /// Done.
    Completed,
    /// Cancelled.
    Cancelled,
    /// The source's status has no unified equivalent; see `remote_status`.
    Unknown,
}

/// A slot booked at a dock door.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DockAppointment {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The facility (`loc_…`).
    pub location_id: Option<String>,
    /// The facility's code in the source.
    pub location_code: Option<String>,
    /// The dock door.
    pub dock: Option<String>,
    /// Which way goods move.
    pub direction: DockDirection,
    /// What it is for.
    pub appointment_type: DockAppointmentType,
    /// The source's own type code.
    pub remote_type: Option<String>,
    /// The order, receiver or load it is for.
    pub reference_number: Option<String>,
    /// Where it stands.
    pub status: DockAppointmentStatus,
    /// The status exactly as the source names it.
    pub remote_status: Option<String>,
    /// When the slot starts.
    pub scheduled_start: Option<Timestamp>,
    /// How long the slot is, in minutes.
    pub duration_minutes: Option<i64>,
    /// Carrier code.
    pub carrier: Option<String>,
    /// The customer or vendor's code.
    pub partner_code: Option<String>,
    /// The customer or vendor's name.
    pub partner_name: Option<String>,
    /// How much of the work is done, in percent, as a decimal string.
    #[schema(value_type = Option<String>, example = "50")]
    pub percent_complete: Option<Decimal>,
    /// When the goods are required (ship or arrival date).
    pub required_date: Option<Timestamp>,
}

/// Body of `POST /v1/outbound-orders`. Which fields a connection's system takes, requires or
/// sets itself differs by system: `GET /v1/meta/outbound-orders` says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundOrderIn {
    /// The order number (the order's key in the warehouse).
    #[serde(default)]
    #[schema(example = "SO-10023")]
    pub number: Option<String>,
    /// `open` (the only status an order is created with).
    #[serde(default)]
    #[schema(value_type = Option<OutboundOrderStatus>)]
    pub status: Option<String>,
    /// The shipping facility (`loc_…`).
    #[serde(default)]
    pub location_id: Option<String>,
    /// The customer's code.
    #[serde(default)]
    pub customer_code: Option<String>,
    /// The customer's purchase-order number.
    #[serde(default)]
    pub customer_po_number: Option<String>,
    /// The ERP's sales order number.
    #[serde(default)]
    pub sales_order_number: Option<String>,
    /// Where the goods go.
    #[serde(default)]
    pub ship_to: Option<NamedAddress>,
    /// Carrier code.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Carrier service level code.
    #[serde(default)]
    pub service_level: Option<String>,
    /// When the order should leave (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date)]
    pub requested_ship_date: Option<String>,
    /// When it must arrive (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date)]
    pub must_arrive_by: Option<String>,
    /// Priority, as a decimal string.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(value_type = Option<String>, example = "1")]
    pub priority: Option<Decimal>,
    /// The order's lines.
    #[serde(default)]
    pub line_items: Option<Vec<OutboundOrderLineIn>>,
    /// Custom fields to set, by name (`GET /v1/meta/outbound-orders` lists those the
    /// connection can write).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One line of an outbound order to write.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundOrderLineIn {
    /// The item (`itm_…`).
    #[serde(default)]
    pub item_id: Option<String>,
    /// Quantity ordered, more than zero.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(value_type = Option<String>, example = "10")]
    pub quantity_ordered: Option<Decimal>,
    /// Unit of measure (`EA`).
    #[serde(default)]
    pub unit_of_measure: Option<String>,
    /// The lot the customer asks for.
    #[serde(default)]
    pub requested_lot: Option<String>,
    /// Selling price per unit.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(value_type = Option<String>, example = "19.90")]
    pub unit_price: Option<Decimal>,
}

/// Body of `PATCH /v1/outbound-orders/{id}`: fields left out stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundOrderPatch {
    /// `shipped` (confirm it shipped) or `cancelled`, where the system takes them.
    #[serde(default)]
    #[schema(value_type = Option<OutboundOrderStatus>)]
    pub status: Option<String>,
}
