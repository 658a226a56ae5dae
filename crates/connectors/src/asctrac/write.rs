//! ASCTrac writes: what they take (the description `GET /v1/meta/{entity}` shows), the import
//! documents they become (`ItemMasterImport`, `CustOrderImport`, `CustOrderShipImport`,
//! `POImport` for purchase orders, which ASCTrac receives against as expected receipts), and
//! how the service's answers read: `ReturnCode 412` inside an HTTP 200 is a partial acceptance,
//! refused as such with the missing items named, never a success.

use ironbridge_core::connector::{ConnectorError, UnifiedWrite};
use ironbridge_core::describe::{self, ACTIVE_STATUSES, text};
use ironbridge_core::system::{CustomFields, DecimalRange, WriteField, WriteSpec, WriteType};
use ironbridge_model::Entity;
use serde_json::{Map, Value, json};

use super::AsctracConnector;
use crate::client::UpstreamResponse;
use crate::common::{authorized_write, upstream};

/// Items, outbound orders and purchase orders (expected receipts) created; outbound orders
/// shipped or cancelled.
pub static WRITES: &[WriteSpec] = &[
    WriteSpec {
        entity: Entity::PURCHASE_ORDER,
        create: true,
        update: false,
        fields: PURCHASE_ORDER,
        custom_fields: CustomFields {
            fields: &[text(
                "VENDOR_CODE",
                "`VENDOR_CODE`: the vendor's code in ASCTrac's own vendor master.",
            )
            .max(20)],
            prefixes: &[],
            any_name: false,
        },
    },
    WriteSpec {
        entity: Entity::ITEM,
        create: true,
        update: false,
        fields: ITEM,
        custom_fields: CustomFields::NONE,
    },
    WriteSpec {
        entity: Entity::OUTBOUND_ORDER,
        create: true,
        update: true,
        fields: ORDER,
        custom_fields: CustomFields::NONE,
    },
];

static ITEM: &[WriteField] = &[
    text("code", "`PRODUCT_CODE`.")
        .max(30)
        .required()
        .create_only(),
    text("name", "`DESCRIPTION`.").max(60),
    text("description", "`DESCRIPTION` when `name` is absent.").max(60),
    describe::not_written(
        "item_type",
        WriteType::Enum(describe::ITEM_TYPES),
        "ASCTrac items are stocked goods; the type is not written.",
    ),
    WriteField::new(
        "status",
        WriteType::Enum(ACTIVE_STATUSES),
        "`STATUS_FLAG` `A` or `I`.",
    ),
    text("unit_of_measure", "`STOCK_UOM`; `EA` when absent.").max(10),
    WriteField::new(
        "unit_cost",
        WriteType::Decimal(DecimalRange::NonNegative),
        "`STD_COST`.",
    ),
    describe::ON_HAND,
    describe::AVAILABLE,
];

/// A purchase order as `POImport` takes it: the warehouse's expected receipt, received
/// against line by line (the receipts it yields name its number and lines).
static PURCHASE_ORDER: &[WriteField] = &[
    text("number", "`PONUMBER` and `HOST_PONUMBER`: the order's key in ASCTrac.")
        .max(30)
        .required()
        .create_only(),
    describe::not_written(
        "status",
        WriteType::Enum(describe::ORDER_STATUSES),
        "Written open for receiving (`STATUS_FLAG` `A`); shown `approved`.",
    ),
    describe::REMOTE_STATUS,
    describe::not_written(
        "vendor_id",
        WriteType::Reference(Entity::VENDOR),
        "ASCTrac's vendors are its own master, which Ironbridge does not read: send the vendor's ASCTrac code as `custom_fields.VENDOR_CODE`.",
    ),
    WriteField::new(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "`FACILITY`: the receiving facility; the connection's default facility when absent.",
    )
    .create_only(),
    describe::not_written("currency", WriteType::Currency, "ASCTrac keeps no currency."),
    WriteField::new("order_date", WriteType::Date, "`ENTRY_DATE`.").create_only(),
    WriteField::new(
        "expected_delivery_date",
        WriteType::Date,
        "`ARRIVAL_DATE`, and each line's `EXPECTED_RECEIPT_DATE` unless the line sets its own.",
    )
    .create_only(),
    describe::SUBTOTAL,
    describe::TAX_AMOUNT,
    describe::TOTAL_AMOUNT,
    text("memo", "A receiving note (`NotesList`, type `R`).")
        .max(500)
        .create_only(),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                describe::LINE_ID,
                describe::LINE_REMOTE_ID,
                describe::LINE_NUMBER,
                WriteField::new(
                    "item_id",
                    WriteType::Reference(Entity::ITEM),
                    "`PRODUCT_CODE`. An item ASCTrac does not know is created by ASCTrac or left out and named as a partial acceptance, as the site's `GWPOMissingItemAction` says.",
                )
                .required(),
                text("description", "`ITEM_DESCRIPTION` (for an item ASCTrac creates).").max(60),
                describe::LINE_QUANTITY,
                describe::LINE_RECEIVED,
                text("unit_of_measure", "`UOM`; the item's stock unit when absent.").max(10),
                WriteField::new(
                    "unit_price",
                    WriteType::Decimal(DecimalRange::NonNegative),
                    "`COSTEACH`.",
                ),
                describe::LINE_TOTAL,
                WriteField::new(
                    "expected_delivery_date",
                    WriteType::Date,
                    "`EXPECTED_RECEIPT_DATE`; the order's when absent.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "`PODetList`, numbered from 1; the whole order is sent, once.",
    )
    .required()
    .create_only(),
];

static SHIP_TO: &[WriteField] = &[
    text("name", "`SHIP_TO_NAME`.").max(60),
    text("line1", "`SHIP_TO_ADDR_LINE1`.").max(60),
    text("line2", "`SHIP_TO_ADDR_LINE2`.").max(60),
    text("line3", "`SHIP_TO_ADDR_LINE3`.").max(60),
    text("city", "`SHIP_TO_CITY`.").max(40),
    text("state", "`SHIP_TO_STATE`.").max(20),
    text("postal_code", "`SHIP_TO_ZIP`.").max(20),
    text("country", "`SHIP_TO_COUNTRY`.").max(30),
    text("contact_name", "`SHIP_TO_CONTACT_NAME`.").max(60),
    text("contact_phone", "`SHIP_TO_CONTACT_TEL`.").max(30),
];

static ORDER: &[WriteField] = &[
    text("number", "`ORDERNUMBER`: the order's key in ASCTrac.")
        .max(20)
        .required()
        .create_only(),
    WriteField::new(
        "status",
        WriteType::Enum(&["open", "shipped", "cancelled"]),
        "Created `open`. An update to `shipped` confirms it shipped (`PUT CustOrderShipImport`); to `cancelled` cancels it (`CustOrderImport` with `STATUS_FLAG` `C`, in the connection's default facility).",
    ),
    describe::REMOTE_STATUS,
    describe::not_written("order_type", WriteType::String, "Written as `C` (customer order)."),
    WriteField::new(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "`FACILITY`: the facility (its HOST_SITE_ID); the connection's default facility when absent.",
    )
    .create_only(),
    describe::not_written("location_code", WriteType::String, "From `location_id`."),
    text("customer_code", "`SHIP_TO_CUST_ID` and `BILL_TO_CUST_ID`.")
        .max(20)
        .create_only(),
    text("customer_po_number", "`CUST_PO_NUM`.").max(30).create_only(),
    text("sales_order_number", "`SALESORDERNUMBER`.").max(30).create_only(),
    WriteField::new("ship_to", WriteType::Object(SHIP_TO), "The `SHIP_TO_*` fields.").create_only(),
    text("carrier", "`CARRIER`.").max(20).create_only(),
    text("service_level", "`CARRIER_SERVICE_CODE`.").max(20).create_only(),
    WriteField::new("requested_ship_date", WriteType::Date, "`LEAVES_DATE`.").create_only(),
    WriteField::new("must_arrive_by", WriteType::Date, "`MUST_ARRIVE_BY_DATE`.").create_only(),
    describe::not_written(
        "scheduled_ship_at",
        WriteType::Datetime,
        "Set by the warehouse (a reschedule status row).",
    ),
    WriteField::new(
        "priority",
        WriteType::Decimal(DecimalRange::NonNegative),
        "`PRIORITY_ID`.",
    )
    .create_only(),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                text("id", "Ironbridge's id of the line (`obol_…`).").read_only(),
                text("remote_id", "The line's key in ASCTrac (its line number).").read_only(),
                WriteField::new(
                    "line_number",
                    WriteType::Integer,
                    "`LINE_NUMBER`: the line's position, from 1.",
                )
                .read_only(),
                WriteField::new(
                    "item_id",
                    WriteType::Reference(Entity::ITEM),
                    "`PRODUCT_CODE`. An item ASCTrac does not know is left out by ASCTrac, and the write is refused as a partial acceptance naming it.",
                )
                .required(),
                describe::not_written("item_code", WriteType::String, "From `item_id`."),
                WriteField::new(
                    "quantity_ordered",
                    WriteType::Decimal(DecimalRange::Positive),
                    "`QUANTITY`.",
                )
                .required(),
                describe::not_written(
                    "quantity_shipped",
                    WriteType::Decimal(DecimalRange::Any),
                    "Reported by shipments.",
                ),
                text("unit_of_measure", "`HOST_UOM`.").max(10),
                text("requested_lot", "`REQUESTED_LOT`.").max(30),
                WriteField::new(
                    "unit_price",
                    WriteType::Decimal(DecimalRange::NonNegative),
                    "`SOLD_PRICE`.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "`DetailList`; the whole order is sent, once.",
    )
    .create_only(),
];

fn double(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => s.parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null),
        Some(Value::Number(n)) => json!(n.as_f64()),
        _ => Value::Null,
    }
}

/// The service's message after its `HTTP Post on resource "…"\failed: ` prefix.
fn service_message(answer: &Value) -> String {
    let m = answer["Message"].as_str().unwrap_or("");
    match m.find("ailed: ") {
        Some(i) => m[i + "ailed: ".len()..].to_string(),
        None => m.to_string(),
    }
}

/// Reads an import's answer: `Ok` only for `ReturnCode 200`.
pub(super) fn import_outcome(controller: &str, r: &UpstreamResponse) -> Result<(), ConnectorError> {
    let answer: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let code = answer["ReturnCode"].as_i64();
    match (r.status, code) {
        (200, Some(200)) => Ok(()),
        (200 | 412, Some(412)) => {
            let message = answer["Message"].as_str().unwrap_or("").to_string();
            // `HHDELIM`-joined codes the controller turned into ", ".
            let missing: Vec<String> = message
                .split_once("Missing Items: ")
                .map(|(_, m)| {
                    m.split(", ")
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Err(ConnectorError::PartialAcceptance {
                message: format!(
                    "ASCTrac accepted the document without the items it does not know: {} (its answer: {message}). Create the items, then write the document again.",
                    missing.join(", ")
                ),
                param: "line_items".into(),
                missing,
            })
        }
        (400, _) => {
            let message = service_message(&answer);
            let state = [
                "already Shipped",
                "already Cancelled",
                "already Completed",
                "already Received",
                "Cancel Order failed",
                "has external Picks",
                "Error confirm shipping",
            ];
            if state.iter().any(|s| message.contains(s)) {
                return Err(ConnectorError::State {
                    remote_code: controller.to_string(),
                    message,
                });
            }
            let param = if message.contains("Facility") {
                Some("location_id".to_string())
            } else if message.contains("Item") || message.contains("PRODUCT_CODE") {
                Some("line_items".to_string())
            } else {
                None
            };
            Err(ConnectorError::BusinessRule {
                remote_code: controller.to_string(),
                message,
                param,
            })
        }
        (status, _) => Err(ConnectorError::Upstream(format!(
            "{controller}: HTTP {status} {}",
            service_message(&answer)
        ))),
    }
}

impl AsctracConnector {
    async fn import(
        &self,
        method: reqwest::Method,
        controller: &str,
        query: &str,
        body: Option<&Value>,
    ) -> Result<(), ConnectorError> {
        let url = self.url(controller, query);
        let response = authorized_write(
            &self.client,
            self,
            &self.source_clock,
            |http| {
                let r = http.request(method.clone(), &url);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            },
            upstream,
        )
        .await?;
        import_outcome(controller, &response)
    }

    pub(super) async fn create_item(&self, w: &UnifiedWrite) -> Result<Value, ConnectorError> {
        let code = w
            .text("code")
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "code".into(),
                message: "`code` is required".into(),
            })?;
        let facility = self.facility_for(None)?;
        let description = w.text("name").or_else(|| w.text("description"));
        let uom = w.text("unit_of_measure").unwrap_or_else(|| "EA".into());
        let status = match w.text("status").as_deref() {
            Some("inactive") => "I",
            _ => "A",
        };
        let cost = double(w.fields.get("unit_cost"));
        let body = json!({"FACILITY": facility, "PRODUCT_CODE": code, "DESCRIPTION": description,
            "STOCK_UOM": uom, "STD_COST": cost, "STATUS_FLAG": status});
        self.import(reqwest::Method::POST, "ItemMasterImport", "", Some(&body))
            .await?;
        Ok(
            json!({"_key": code, "PRODUCT_CODE": code, "DESCRIPTION": description, "UOM": uom,
            "COST_EACH": cost, "STATUS_FLAG": status, "QUANTITY": 0.0}),
        )
    }

    pub(super) async fn create_purchase_order(
        &self,
        w: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let f = &w.fields;
        let number = w
            .text("number")
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "number".into(),
                message: "`number` is required".into(),
            })?;
        let facility = self.facility_for(w.text("location_id"))?;
        let t = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
        let mut order = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                order.insert(k.to_string(), v);
            }
        };
        put("FACILITY", json!(facility));
        put("ORDER_TYPE", json!("P"));
        put("PONUMBER", json!(number));
        put("HOST_PONUMBER", json!(number));
        put("STATUS_FLAG", json!("A"));
        put(
            "VENDOR_CODE",
            f.get("custom_fields")
                .and_then(|c| c.get("VENDOR_CODE"))
                .cloned()
                .unwrap_or(Value::Null),
        );
        put("ENTRY_DATE", t("order_date"));
        let arrival = t("expected_delivery_date");
        put("ARRIVAL_DATE", arrival.clone());
        if let Some(memo) = w.text("memo") {
            put(
                "NotesList",
                json!([{"SEQNUM": 1, "TYPE": "R", "NOTE": memo}]),
            );
        }
        let lines: Vec<Value> = f
            .get("line_items")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let mut d = Map::new();
                        d.insert("LINE_NUMBER".into(), json!(i + 1));
                        d.insert("HOST_LINENUMBER".into(), json!(i + 1));
                        d.insert(
                            "PRODUCT_CODE".into(),
                            l.get("item_id").cloned().unwrap_or(Value::Null),
                        );
                        d.insert("QUANTITY".into(), double(l.get("quantity")));
                        d.insert("STATUS_FLAG".into(), json!("A"));
                        for (from, to) in [
                            ("unit_of_measure", "UOM"),
                            ("description", "ITEM_DESCRIPTION"),
                        ] {
                            if let Some(v) = l.get(from).filter(|v| !v.is_null()) {
                                d.insert(to.into(), v.clone());
                            }
                        }
                        if l.get("unit_price").is_some_and(|v| !v.is_null()) {
                            d.insert("COSTEACH".into(), double(l.get("unit_price")));
                        }
                        let expected = l
                            .get("expected_delivery_date")
                            .filter(|v| !v.is_null())
                            .unwrap_or(&arrival);
                        if !expected.is_null() {
                            d.insert("EXPECTED_RECEIPT_DATE".into(), expected.clone());
                        }
                        Value::Object(d)
                    })
                    .collect()
            })
            .unwrap_or_default();
        order.insert("PODetList".into(), Value::Array(lines));
        let body = Value::Object(order);
        self.import(reqwest::Method::POST, "POImport", "", Some(&body))
            .await?;
        // The stored record: the document ASCTrac accepted whole.
        let mut raw = body;
        raw["_key"] = json!(number);
        Ok(raw)
    }

    pub(super) async fn create_outbound_order(
        &self,
        w: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let f = &w.fields;
        let number = w
            .text("number")
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "number".into(),
                message: "`number` is required".into(),
            })?;
        if let Some(s) = w.text("status")
            && s != "open"
        {
            return Err(ConnectorError::BusinessRule {
                remote_code: "STATUS".into(),
                message: "an order is created `open`; ship or cancel it with an update".into(),
                param: Some("status".into()),
            });
        }
        let facility = self.facility_for(w.text("location_id"))?;
        let mut order = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                order.insert(k.to_string(), v);
            }
        };
        put("FACILITY", json!(facility));
        put("ORDERNUMBER", json!(number));
        put("ORDER_TYPE", json!("C"));
        put("STATUS_FLAG", json!("A"));
        let t = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
        put("SHIP_TO_CUST_ID", t("customer_code"));
        put("BILL_TO_CUST_ID", t("customer_code"));
        put("CUST_PO_NUM", t("customer_po_number"));
        put("SALESORDERNUMBER", t("sales_order_number"));
        put("CARRIER", t("carrier"));
        put("CARRIER_SERVICE_CODE", t("service_level"));
        put("LEAVES_DATE", t("requested_ship_date"));
        put("MUST_ARRIVE_BY_DATE", t("must_arrive_by"));
        put("PRIORITY_ID", double(f.get("priority")));
        if let Some(Value::Object(a)) = f.get("ship_to") {
            for (from, to) in [
                ("name", "SHIP_TO_NAME"),
                ("line1", "SHIP_TO_ADDR_LINE1"),
                ("line2", "SHIP_TO_ADDR_LINE2"),
                ("line3", "SHIP_TO_ADDR_LINE3"),
                ("city", "SHIP_TO_CITY"),
                ("state", "SHIP_TO_STATE"),
                ("postal_code", "SHIP_TO_ZIP"),
                ("country", "SHIP_TO_COUNTRY"),
                ("contact_name", "SHIP_TO_CONTACT_NAME"),
                ("contact_phone", "SHIP_TO_CONTACT_TEL"),
            ] {
                put(to, a.get(from).cloned().unwrap_or(Value::Null));
            }
        }
        let lines: Vec<Value> = f
            .get("line_items")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let mut d = Map::new();
                        d.insert("LINE_NUMBER".into(), json!(i + 1));
                        d.insert(
                            "PRODUCT_CODE".into(),
                            l.get("item_id").cloned().unwrap_or(Value::Null),
                        );
                        d.insert("QUANTITY".into(), double(l.get("quantity_ordered")));
                        for (from, to) in [
                            ("unit_of_measure", "HOST_UOM"),
                            ("requested_lot", "REQUESTED_LOT"),
                        ] {
                            if let Some(v) = l.get(from).filter(|v| !v.is_null()) {
                                d.insert(to.into(), v.clone());
                            }
                        }
                        if l.get("unit_price").is_some_and(|v| !v.is_null()) {
                            d.insert("SOLD_PRICE".into(), double(l.get("unit_price")));
                        }
                        Value::Object(d)
                    })
                    .collect()
            })
            .unwrap_or_default();
        order.insert("DetailList".into(), Value::Array(lines));
        let body = Value::Object(order);
        self.import(reqwest::Method::POST, "CustOrderImport", "", Some(&body))
            .await?;
        // The stored record: the document sent, in the status rows' terms.
        let mut raw = body;
        raw["_key"] = json!(number);
        raw["PICKSTATUS"] = json!("N");
        if let Some(c) = f.get("customer_code").filter(|v| !v.is_null()) {
            raw["CUSTOMERID"] = c.clone();
        }
        Ok(raw)
    }

    pub(super) async fn update_outbound_order(
        &self,
        number: &str,
        w: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let status = w.text("status");
        match status.as_deref() {
            Some("shipped") => {
                let query: String = form_query("aOrderNumber", number);
                self.import(reqwest::Method::PUT, "CustOrderShipImport", &query, None)
                    .await?;
                Ok(json!({"_key": number, "ORDERNUMBER": number, "PICKSTATUS": "S"}))
            }
            Some("cancelled") => {
                let facility = self.facility_for(None)?;
                let body = json!({"FACILITY": facility, "ORDERNUMBER": number, "STATUS_FLAG": "C",
                    "DetailList": []});
                self.import(reqwest::Method::POST, "CustOrderImport", "", Some(&body))
                    .await?;
                Ok(
                    json!({"_key": number, "ORDERNUMBER": number, "FACILITY": facility,
                    "PICKSTATUS": "X"}),
                )
            }
            _ => Err(ConnectorError::BusinessRule {
                remote_code: "STATUS".into(),
                message: "an ASCTrac order is updated only to `shipped` or `cancelled`".into(),
                param: Some("status".into()),
            }),
        }
    }
}

fn form_query(key: &str, value: &str) -> String {
    format!("{key}={}", super::encode(value))
}
