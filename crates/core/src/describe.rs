//! Building blocks of write descriptions: the unified fields every system shows the same way
//! (computed amounts, statuses, line keys), as constants a system's description picks from,
//! and the unified enum values. A system's description is still its own (one per system and
//! entity, in its connector module); these only keep the wording of shared fields identical.

use ironbridge_model::Entity;

use crate::system::{DecimalRange, WriteField, WriteType};

/// Unified purchase-order statuses.
pub const ORDER_STATUSES: &[&str] = &[
    "draft",
    "pending_approval",
    "approved",
    "partially_received",
    "completed",
    "cancelled",
    "unknown",
];
/// Unified active statuses (vendors, items, locations).
pub const ACTIVE_STATUSES: &[&str] = &["active", "inactive"];
/// Unified item types.
pub const ITEM_TYPES: &[&str] = &["inventory", "non_inventory", "service", "other"];

/// A text field.
pub const fn text(name: &'static str, description: &'static str) -> WriteField {
    WriteField::new(name, WriteType::String, description)
}

/// A field a system shows but Ironbridge cannot write to it.
pub const fn not_written(name: &'static str, ty: WriteType, why: &'static str) -> WriteField {
    WriteField::new(name, ty, why).read_only()
}

/// `status` of an order: the source's workflow sets it.
pub const ORDER_STATUS: WriteField = WriteField::new(
    "status",
    WriteType::Enum(ORDER_STATUSES),
    "Set by the source's approval and receiving workflow.",
)
.read_only();
/// `remote_status`: the source's own status.
pub const REMOTE_STATUS: WriteField = text(
    "remote_status",
    "The status as the source names it; set by its workflow.",
)
.read_only();
/// `subtotal`, computed by the source.
pub const SUBTOTAL: WriteField = WriteField::new(
    "subtotal",
    WriteType::Decimal(DecimalRange::Any),
    "Computed by the source from the lines.",
)
.read_only();
/// `tax_amount`, computed by the source.
pub const TAX_AMOUNT: WriteField = WriteField::new(
    "tax_amount",
    WriteType::Decimal(DecimalRange::Any),
    "Computed by the source.",
)
.read_only();
/// `total_amount`, computed by the source.
pub const TOTAL_AMOUNT: WriteField = WriteField::new(
    "total_amount",
    WriteType::Decimal(DecimalRange::Any),
    "Computed by the source.",
)
.read_only();
/// `vendor_id` of a new order.
pub const ORDER_VENDOR: WriteField = WriteField::new(
    "vendor_id",
    WriteType::Reference(Entity::VENDOR),
    "The vendor (`vnd_…`); fixed once the order exists.",
)
.required()
.create_only();
/// `line_items[].id`.
pub const LINE_ID: WriteField = text("id", "Ironbridge's id of the line (`pol_…`).").read_only();
/// `line_items[].remote_id`.
pub const LINE_REMOTE_ID: WriteField =
    text("remote_id", "The line's key in the source.").read_only();
/// `line_items[].line_number`.
pub const LINE_NUMBER: WriteField = WriteField::new(
    "line_number",
    WriteType::Integer,
    "Numbered by the source in the order given.",
)
.read_only();
/// `line_items[].item_id`.
pub const LINE_ITEM: WriteField = WriteField::new(
    "item_id",
    WriteType::Reference(Entity::ITEM),
    "The item ordered (`itm_…`).",
)
.required();
/// `line_items[].quantity`.
pub const LINE_QUANTITY: WriteField = WriteField::new(
    "quantity",
    WriteType::Decimal(DecimalRange::Positive),
    "Quantity ordered, greater than zero.",
)
.required();
/// `line_items[].quantity_received`.
pub const LINE_RECEIVED: WriteField = WriteField::new(
    "quantity_received",
    WriteType::Decimal(DecimalRange::NonNegative),
    "Set by the source's goods receipts.",
)
.read_only();
/// `line_items[].unit_price`.
pub const LINE_PRICE: WriteField = WriteField::new(
    "unit_price",
    WriteType::Decimal(DecimalRange::NonNegative),
    "Price per unit, not negative; the item's cost when absent.",
);
/// `line_items[].total_amount`.
pub const LINE_TOTAL: WriteField = WriteField::new(
    "total_amount",
    WriteType::Decimal(DecimalRange::Any),
    "Computed by the source (quantity × unit price).",
)
.read_only();
/// `line_items[].custom_fields`.
pub const LINE_CUSTOM: WriteField = WriteField::new(
    "custom_fields",
    WriteType::Any,
    "Line custom fields are read, not written.",
)
.read_only();
/// `quantity_on_hand` of an item: stock is moved by transactions, never set.
pub const ON_HAND: WriteField = WriteField::new(
    "quantity_on_hand",
    WriteType::Decimal(DecimalRange::Any),
    "Moved by the source's stock transactions.",
)
.read_only();
/// `quantity_available` of an item.
pub const AVAILABLE: WriteField = WriteField::new(
    "quantity_available",
    WriteType::Decimal(DecimalRange::Any),
    "Computed by the source from stock and demand.",
)
.read_only();
/// `status` of a vendor or item.
pub const fn active_status(description: &'static str) -> WriteField {
    WriteField::new("status", WriteType::Enum(ACTIVE_STATUSES), description)
}

/// The address parts, each writable (a system that takes an address).
pub const ADDRESS_PARTS: &[WriteField] = &[
    text("line1", "Street and number."),
    text("line2", "Suite, building, floor."),
    text("city", "City."),
    text("state", "State, province or region."),
    text("postal_code", "Postal or ZIP code."),
    text("country", "ISO 3166-1 alpha-2 country code."),
];
