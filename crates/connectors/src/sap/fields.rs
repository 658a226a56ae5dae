//! What SAP S/4HANA writes take, entity by entity: the description `GET /v1/meta/{entity}`
//! shows and every write is validated against. Names in backquotes are OData V2 properties of
//! `API_PURCHASEORDER_PROCESS_SRV`, `API_BUSINESS_PARTNER` and `API_PRODUCT_SRV`, with the
//! lengths of their `$metadata`.

use ironbridge_core::describe::{self, ACTIVE_STATUSES, ADDRESS_PARTS, text};
use ironbridge_core::system::{CustomFields, DecimalRange, WriteField, WriteSpec, WriteType};
use ironbridge_model::Entity;

/// Purchase orders, suppliers and products, created and updated.
pub static WRITES: &[WriteSpec] = &[
    WriteSpec {
        entity: Entity::PURCHASE_ORDER,
        create: true,
        update: true,
        fields: ORDER,
        custom_fields: CustomFields {
            fields: &[text(
                "YY1_Priority_PDH",
                "The order's priority (a custom field of the header, key user extensibility).",
            )
            .max(20)],
            prefixes: &["YY1_"],
            any_name: false,
        },
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
    text(
        "number",
        "`PurchaseOrder` (an external number); SAP numbers the order when absent.",
    )
    .max(10)
    .create_only(),
    describe::ORDER_STATUS,
    describe::REMOTE_STATUS,
    describe::ORDER_VENDOR,
    describe::not_written(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "SAP connections read no plants as locations; items take the plant SAP derives.",
    ),
    WriteField::new(
        "currency",
        WriteType::Currency,
        "`DocumentCurrency`; the supplier's when absent.",
    )
    .create_only(),
    WriteField::new(
        "order_date",
        WriteType::Date,
        "`PurchaseOrderDate`; today when absent.",
    )
    .create_only(),
    describe::not_written(
        "expected_delivery_date",
        WriteType::Date,
        "Delivery dates live in schedule lines, which the API's order and item entities do not carry.",
    ),
    describe::SUBTOTAL,
    describe::TAX_AMOUNT,
    describe::TOTAL_AMOUNT,
    describe::not_written(
        "memo",
        WriteType::String,
        "The purchase-order API has no header note.",
    ),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                describe::LINE_ID,
                describe::LINE_REMOTE_ID,
                describe::LINE_NUMBER,
                describe::LINE_ITEM,
                text("description", "`PurchaseOrderItemText`; the material's when absent.")
                    .max(40),
                describe::LINE_QUANTITY,
                describe::LINE_RECEIVED,
                text(
                    "unit_of_measure",
                    "`PurchaseOrderQuantityUnit`; the material's when absent.",
                )
                .max(3),
                WriteField::new(
                    "unit_price",
                    WriteType::Decimal(DecimalRange::NonNegative),
                    "`NetPriceAmount`; from the info record or material when absent.",
                ),
                describe::LINE_TOTAL,
                describe::not_written(
                    "expected_delivery_date",
                    WriteType::Date,
                    "Delivery dates live in schedule lines, which are not written.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "`to_PurchaseOrderItem` (deep insert); on an update new items are added before the old ones get their deletion code.",
    )
    .required(),
];

static VENDOR: &[WriteField] = &[
    describe::not_written(
        "code",
        WriteType::String,
        "SAP numbers the business partner and its supplier (`Supplier`) from the grouping's number range.",
    ),
    text(
        "name",
        "`OrganizationBPName1` of the business partner (`A_Supplier`'s `SupplierName` follows it).",
    )
    .required()
    .max(40),
    WriteField::new(
        "status",
        WriteType::Enum(ACTIVE_STATUSES),
        "`PurchasingIsBlocked` of `A_Supplier`.",
    ),
    describe::not_written(
        "email",
        WriteType::Email,
        "Kept in the business partner's address data, which is not mapped.",
    ),
    describe::not_written(
        "phone",
        WriteType::String,
        "Kept in the business partner's address data, which is not mapped.",
    ),
    describe::not_written(
        "tax_id",
        WriteType::String,
        "`TaxNumber1` is not creatable or updatable through `A_Supplier`.",
    ),
    describe::not_written(
        "currency",
        WriteType::Currency,
        "The order currency lives in the supplier's purchasing-organization data, which is not mapped.",
    ),
    describe::not_written(
        "payment_terms",
        WriteType::String,
        "Payment terms live in the supplier's company and purchasing-organization data, which is not mapped.",
    ),
    describe::not_written(
        "address",
        WriteType::Object(ADDRESS_PARTS),
        "Kept in the business partner's address data, which is not mapped.",
    ),
];

static ITEM: &[WriteField] = &[
    text("code", "`Product`, the product number (external numbering).")
        .required()
        .max(40)
        .create_only(),
    text(
        "name",
        "`ProductDescription` in English (`to_Description`).",
    )
    .max(40),
    describe::not_written(
        "description",
        WriteType::String,
        "SAP's product description is the name (`ProductDescription`).",
    ),
    WriteField::new(
        "item_type",
        WriteType::Enum(&["inventory", "non_inventory", "service"]),
        "`ProductType`: `HAWA` (trading goods), `NLAG` (non-stock) or `DIEN` (service); fixed once the product exists.",
    )
    .required()
    .create_only(),
    WriteField::new(
        "status",
        WriteType::Enum(ACTIVE_STATUSES),
        "`IsMarkedForDeletion`.",
    ),
    text("unit_of_measure", "`BaseUnit`; fixed once the product exists.")
        .required()
        .max(3)
        .create_only(),
    describe::not_written(
        "unit_cost",
        WriteType::Decimal(DecimalRange::NonNegative),
        "Prices live in the product's valuation data (`A_ProductValuation`), which is not mapped.",
    ),
    describe::ON_HAND,
    describe::AVAILABLE,
];
