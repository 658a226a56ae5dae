//! What NetSuite writes take, entity by entity: the description `GET /v1/meta/{entity}`
//! shows and every write is validated against. Field names in backquotes are the REST record
//! API's (`purchaseOrder`, `vendor`, `inventoryItem`).

use ironbridge_core::describe::{self, ACTIVE_STATUSES, ADDRESS_PARTS, text};
use ironbridge_core::system::{CustomFields, DecimalRange, WriteField, WriteSpec, WriteType};
use ironbridge_model::Entity;

/// The currencies the connector can write: a new account's currency list (internal ids 1–4).
pub const CURRENCY_CODES: &[&str] = &["USD", "GBP", "CAD", "EUR"];

/// Purchase orders, vendors and inventory items, created and updated.
pub static WRITES: &[WriteSpec] = &[
    WriteSpec {
        entity: Entity::PURCHASE_ORDER,
        create: true,
        update: true,
        fields: ORDER,
        custom_fields: CustomFields {
            fields: &[text(
                "custbody_ib_priority",
                "The order's priority (a custom body field of the account).",
            )],
            prefixes: &["custbody"],
            any_name: false,
        },
    },
    WriteSpec {
        entity: Entity::VENDOR,
        create: true,
        update: true,
        fields: VENDOR,
        custom_fields: CustomFields {
            fields: &[],
            prefixes: &["custentity"],
            any_name: false,
        },
    },
    WriteSpec {
        entity: Entity::ITEM,
        create: true,
        update: true,
        fields: ITEM,
        custom_fields: CustomFields {
            fields: &[],
            prefixes: &["custitem"],
            any_name: false,
        },
    },
];

static ORDER: &[WriteField] = &[
    text(
        "number",
        "`tranId`; NetSuite numbers the order when absent.",
    )
    .create_only(),
    describe::ORDER_STATUS,
    describe::REMOTE_STATUS,
    describe::ORDER_VENDOR,
    WriteField::new(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "`location`: the receiving location (`loc_…`).",
    ),
    WriteField::new(
        "currency",
        WriteType::Enum(CURRENCY_CODES),
        "`currency`; the vendor's currency when absent.",
    )
    .create_only(),
    WriteField::new(
        "order_date",
        WriteType::Date,
        "`tranDate`; today when absent.",
    )
    .create_only(),
    WriteField::new(
        "expected_delivery_date",
        WriteType::Date,
        "Set on every line's `expectedReceiptDate` (NetSuite keeps it per line); an update takes it only together with `line_items`.",
    ),
    describe::SUBTOTAL,
    describe::TAX_AMOUNT,
    describe::TOTAL_AMOUNT,
    text("memo", "`memo`."),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                describe::LINE_ID,
                describe::LINE_REMOTE_ID,
                describe::LINE_NUMBER,
                describe::LINE_ITEM,
                text("description", "`description`; the item's when absent."),
                describe::LINE_QUANTITY,
                describe::LINE_RECEIVED,
                describe::not_written(
                    "unit_of_measure",
                    WriteType::String,
                    "NetSuite orders in the item's purchase unit; it is not written.",
                ),
                WriteField::new(
                    "unit_price",
                    WriteType::Decimal(DecimalRange::NonNegative),
                    "`rate`; the item's cost when absent.",
                ),
                describe::LINE_TOTAL,
                WriteField::new(
                    "expected_delivery_date",
                    WriteType::Date,
                    "`expectedReceiptDate`; the order's when absent.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "The `item` sublist; on an update it replaces every line (`replace=item`).",
    )
    .required(),
];

static VENDOR: &[WriteField] = &[
    describe::not_written(
        "code",
        WriteType::String,
        "NetSuite sets the vendor ID (`entityId`) from its auto-numbering or the company name.",
    ),
    text("name", "`companyName`.").required().max(83),
    describe::active_status("`isInactive`."),
    WriteField::new("email", WriteType::Email, "`email`.").max(254),
    text("phone", "`phone`.").max(32),
    describe::not_written(
        "tax_id",
        WriteType::String,
        "NetSuite's tax number (`taxIdNum`) is not mapped; it is not written.",
    ),
    WriteField::new(
        "currency",
        WriteType::Enum(CURRENCY_CODES),
        "`currency`, the primary currency; fixed once the vendor exists.",
    )
    .create_only(),
    describe::not_written(
        "payment_terms",
        WriteType::String,
        "NetSuite's `terms` are not mapped; they are not written.",
    ),
    describe::not_written(
        "address",
        WriteType::Object(ADDRESS_PARTS),
        "NetSuite keeps addresses in the `addressBook` sublist, which is not mapped.",
    ),
];

static ITEM: &[WriteField] = &[
    text("code", "`itemId` (Item Name/Number), unique in the account.")
        .required()
        .max(60),
    text("name", "`displayName`.").max(60),
    text(
        "description",
        "`salesDescription` (SuiteQL reads it as `description`).",
    ),
    WriteField::new(
        "item_type",
        WriteType::Enum(&["inventory"]),
        "Ironbridge creates inventory items (record `inventoryItem`); the record type cannot change.",
    )
    .create_only(),
    WriteField::new(
        "status",
        WriteType::Enum(ACTIVE_STATUSES),
        "`isInactive`.",
    ),
    describe::not_written(
        "unit_of_measure",
        WriteType::String,
        "NetSuite keeps units in unit types, which are not mapped; it is not written.",
    ),
    WriteField::new(
        "unit_cost",
        WriteType::Decimal(DecimalRange::NonNegative),
        "`cost`, the purchase price.",
    ),
    describe::ON_HAND,
    describe::AVAILABLE,
];
