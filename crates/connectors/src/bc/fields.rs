//! What Business Central writes take, entity by entity: the description `GET /v1/meta/{entity}`
//! shows and every write is validated against. Names in backquotes are API v2.0 properties
//! (`purchaseOrder`, `vendor`, `item`); lengths are the base application's table fields.

use ironbridge_core::describe::{self, ACTIVE_STATUSES, text};
use ironbridge_core::system::{CustomFields, DecimalRange, WriteField, WriteSpec, WriteType};
use ironbridge_model::Entity;

/// Purchase orders, vendors and items, created and updated (no custom fields: API v2.0 has
/// none; extensions publish their own APIs).
pub static WRITES: &[WriteSpec] = &[
    WriteSpec {
        entity: Entity::PURCHASE_ORDER,
        create: true,
        update: true,
        fields: ORDER,
        custom_fields: CustomFields::NONE,
    },
    WriteSpec {
        entity: Entity::VENDOR,
        create: true,
        update: true,
        fields: VENDOR,
        custom_fields: CustomFields::NONE,
    },
    WriteSpec {
        entity: Entity::ITEM,
        create: true,
        update: true,
        fields: ITEM,
        custom_fields: CustomFields::NONE,
    },
];

static ORDER: &[WriteField] = &[
    describe::not_written(
        "number",
        WriteType::String,
        "Business Central numbers orders from its number series.",
    ),
    describe::ORDER_STATUS,
    describe::REMOTE_STATUS,
    describe::ORDER_VENDOR,
    describe::not_written(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "Business Central sets the location per line (`locationId`); it is not written.",
    ),
    WriteField::new(
        "currency",
        WriteType::Currency,
        "`currencyCode`: a currency of the company's Currency table; the vendor's when absent.",
    )
    .create_only(),
    WriteField::new("order_date", WriteType::Date, "`orderDate`; today when absent.").create_only(),
    WriteField::new(
        "expected_delivery_date",
        WriteType::Date,
        "`requestedReceiptDate` (Requested Receipt Date).",
    ),
    describe::SUBTOTAL,
    describe::TAX_AMOUNT,
    describe::TOTAL_AMOUNT,
    describe::not_written(
        "memo",
        WriteType::String,
        "Business Central's purchase-order API has no note.",
    ),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                describe::LINE_ID,
                describe::LINE_REMOTE_ID,
                describe::LINE_NUMBER,
                describe::LINE_ITEM,
                text("description", "`description`; the item's when absent.").max(100),
                describe::LINE_QUANTITY,
                describe::LINE_RECEIVED,
                text("unit_of_measure", "`unitOfMeasureCode`; the item's when absent.").max(10),
                WriteField::new(
                    "unit_price",
                    WriteType::Decimal(DecimalRange::NonNegative),
                    "`directUnitCost`; the item's cost when absent.",
                ),
                describe::LINE_TOTAL,
                describe::not_written(
                    "expected_delivery_date",
                    WriteType::Date,
                    "`expectedReceiptDate` is set by Business Central from the lead time; it is not written.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "`purchaseOrderLines` (deep insert); on an update the new lines are added before the old ones are deleted.",
    )
    .required(),
];

/// A vendor's address, in the `vendor` resource's flat properties.
static ADDRESS: &[WriteField] = &[
    text("line1", "`addressLine1`.").max(100),
    text("line2", "`addressLine2`.").max(50),
    text("city", "`city`.").max(30),
    text("state", "`state`.").max(30),
    text("postal_code", "`postalCode`.").max(20),
    text("country", "`country` (country/region code).").max(10),
];

static VENDOR: &[WriteField] = &[
    text(
        "code",
        "`number`; from the vendor number series when absent.",
    )
    .max(20)
    .create_only(),
    text("name", "`displayName`.").max(100),
    WriteField::new(
        "status",
        WriteType::Enum(ACTIVE_STATUSES),
        "`blocked`: `All` when inactive, `_x0020_` (blank) when active.",
    ),
    WriteField::new("email", WriteType::Email, "`email`.").max(80),
    text("phone", "`phoneNumber`.").max(30),
    text("tax_id", "`taxRegistrationNumber`.").max(20),
    WriteField::new("currency", WriteType::Currency, "`currencyCode`."),
    describe::not_written(
        "payment_terms",
        WriteType::String,
        "Business Central takes a payment-terms id (`paymentTermsId`), which is not mapped; it is not written.",
    ),
    WriteField::new(
        "address",
        WriteType::Object(ADDRESS),
        "The vendor's address; the parts given are set.",
    ),
];

static ITEM: &[WriteField] = &[
    text("code", "`number`; from the item number series when absent.")
        .max(20)
        .create_only(),
    text("name", "`displayName`.").max(100),
    describe::not_written(
        "description",
        WriteType::String,
        "The item API has no description besides `displayName`.",
    ),
    WriteField::new(
        "item_type",
        WriteType::Enum(&["inventory", "non_inventory", "service"]),
        "`type`: `Inventory`, `Non_x002D_Inventory` or `Service`.",
    ),
    WriteField::new("status", WriteType::Enum(ACTIVE_STATUSES), "`blocked`."),
    text("unit_of_measure", "`baseUnitOfMeasureCode`.").max(10),
    WriteField::new(
        "unit_cost",
        WriteType::Decimal(DecimalRange::NonNegative),
        "`unitCost`.",
    ),
    describe::ON_HAND,
    describe::AVAILABLE,
];
