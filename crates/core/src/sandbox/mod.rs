//! The built-in sandbox system: a deterministic ERP with realistic data and its error cases.
//! Reads page through the generated data; writes validate like a real ERP and answer with the
//! resulting record, but change nothing.

pub mod data;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::connector::{
    Connector, ConnectorError, CreateRecords, Extent, OrderWriter, PurchaseOrderLineWrite,
    PurchaseOrderUpdate, PurchaseOrderWrite, RawPage, ReadWindow, Source, SourceRecord,
    UnifiedWrite, UpdateRecords,
};
use crate::describe;
use crate::system::{
    AuthOption, CustomFields, FieldSpec, Limits, Mappings, ReadSpec, SystemDescriptor, WriteField,
    WriteSpec, WriteType,
};
use data::{CLOSED_STATUSES, Dataset};

/// The sandbox's id.
pub const ID: SystemId = SystemId::from_static("sandbox");

const fn read(entity: Entity) -> ReadSpec {
    ReadSpec {
        entity,
        // Every sample record has `updatedAt`, and pages honour the window.
        kind: ReadKind::Windowed,
        deletions: DeletionDetection::Flagged,
        payload: crate::system::Payload::Whole,
        follows_feed: false,
    }
}

/// The sandbox ERP.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "Ironbridge sandbox ERP",
    auth: &[AuthOption {
        id: "none",
        name: "none (any credentials; api_key \"revoked\" simulates revoked credentials)",
        description: "No credentials are needed. Credentials with `api_key` set to `revoked` are refused, to try reauthorization.",
        fields: &[FieldSpec::text(
            "api_key",
            "API key",
            "Any value; `revoked` makes the sandbox refuse the credentials.",
        )
        .optional()
        .secret()],
    }],
    settings: &[
        FieldSpec::text("seed", "Seed", "Seed of the generated data (default 42).")
            .optional()
            .format(FieldFormat::Integer),
        FieldSpec::text(
            "purchase_orders",
            "Purchase orders",
            "How many orders to generate, 1 to 5000 (default 120).",
        )
        .optional()
        .format(FieldFormat::Integer),
    ],
    reads: &[
        read(Entity::VENDOR),
        read(Entity::ITEM),
        read(Entity::LOCATION),
        read(Entity::PURCHASE_ORDER),
    ],
    writes: &[WriteSpec {
        entity: Entity::PURCHASE_ORDER,
        create: true,
        update: true,
        fields: ORDER_FIELDS,
        custom_fields: CustomFields {
            fields: &[],
            prefixes: &[],
            // The sample ERP keeps any custom field in `customFields`.
            any_name: true,
        },
    }],
    limits: Limits {
        concurrency: 1,
        per_second: 0.0,
        burst: 1,
        description: "In process: one read at a time.",
    },
    // Sample data: its two years of history are the point, whatever today's date is.
    history_days: None,
    mappings: Mappings::new(&[
        include_str!("../../mappings/sandbox/vendor.json"),
        include_str!("../../mappings/sandbox/item.json"),
        include_str!("../../mappings/sandbox/location.json"),
        include_str!("../../mappings/sandbox/purchase_order.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(SandboxConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
        )?))
    },
};

/// What a purchase-order write takes: every unified field the sample ERP stores.
static ORDER_FIELDS: &[WriteField] = &[
    describe::text(
        "number",
        "Order number; the sandbox assigns `PO-<n>` when absent.",
    )
    .create_only(),
    describe::ORDER_STATUS,
    describe::REMOTE_STATUS,
    describe::ORDER_VENDOR,
    WriteField::new(
        "location_id",
        WriteType::Reference(Entity::LOCATION),
        "Receiving location (`loc_…`); it must be open.",
    ),
    WriteField::new(
        "currency",
        WriteType::Currency,
        "The vendor's currency when absent.",
    )
    .create_only(),
    WriteField::new("order_date", WriteType::Date, "Today when absent.").create_only(),
    WriteField::new(
        "expected_delivery_date",
        WriteType::Date,
        "Expected delivery of the order.",
    ),
    describe::SUBTOTAL,
    describe::TAX_AMOUNT,
    describe::TOTAL_AMOUNT,
    describe::text("memo", "Free-text note."),
    WriteField::new(
        "line_items",
        WriteType::List {
            fields: &[
                describe::LINE_ID,
                describe::LINE_REMOTE_ID,
                describe::LINE_NUMBER,
                describe::LINE_ITEM,
                describe::text("description", "The item's name when absent."),
                describe::LINE_QUANTITY,
                describe::LINE_RECEIVED,
                describe::text("unit_of_measure", "The item's unit when absent."),
                describe::LINE_PRICE,
                describe::LINE_TOTAL,
                WriteField::new(
                    "expected_delivery_date",
                    WriteType::Date,
                    "Expected delivery of the line; the order's when absent.",
                ),
                describe::LINE_CUSTOM,
            ],
            min: 1,
        },
        "The lines; on an update they replace all lines (draft and pending orders only).",
    )
    .required(),
];

/// Records per page the sandbox returns.
const PAGE_SIZE: usize = 100;
/// Default number of generated purchase orders.
pub const DEFAULT_PURCHASE_ORDERS: u32 = 120;
/// Largest number of generated purchase orders.
pub const MAX_PURCHASE_ORDERS: u32 = 5_000;
/// Credentials with this `api_key` are refused, to exercise reauthorization handling.
pub const REVOKED_API_KEY: &str = "revoked";

/// Validated sandbox settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxSettings {
    /// Seed of the generated data.
    pub seed: u64,
    /// Number of purchase orders.
    pub purchase_orders: u32,
}

impl SandboxSettings {
    /// Reads settings, refusing unknown keys and out-of-range values.
    pub fn parse(settings: &Map<String, Value>) -> Result<Self, ConnectorError> {
        let mut out = SandboxSettings {
            seed: 42,
            purchase_orders: DEFAULT_PURCHASE_ORDERS,
        };
        for (key, value) in settings {
            let invalid = |message: &str| ConnectorError::InvalidSettings {
                param: format!("settings.{key}"),
                message: message.to_string(),
            };
            match key.as_str() {
                "seed" => {
                    out.seed = value
                        .as_u64()
                        .ok_or_else(|| invalid("must be a non-negative integer"))?
                }
                "purchase_orders" => {
                    out.purchase_orders = value
                        .as_u64()
                        .filter(|n| (1..=u64::from(MAX_PURCHASE_ORDERS)).contains(n))
                        .ok_or_else(|| invalid("must be an integer from 1 to 5000"))?
                        as u32
                }
                _ => {
                    return Err(invalid(
                        "is not a sandbox setting (known: seed, purchase_orders)",
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Datasets kept in memory at most. A dataset of 5,000 orders takes about 55 MB; the cache
/// is what bounds the sandbox's memory, whatever number of connections and seeds.
pub const DATASETS_KEPT: usize = 4;
/// Purchase orders kept in memory at most, across the cached datasets (the same bound in
/// bytes: an order is most of a dataset's size, about 11 kB).
pub const ORDERS_KEPT: u64 = 10_000;

/// What the sandbox's dataset cache holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUse {
    /// Datasets held.
    pub datasets: usize,
    /// Purchase orders across them.
    pub purchase_orders: u64,
}

/// A cached dataset by its (seed, purchase orders).
type CacheEntry = ((u64, u32), Arc<Dataset>);

/// Recently used datasets, most recent first. Connections do not hold their dataset: they
/// take it from here for each call, so connections (and runtimes kept for disconnected
/// ones) never pin data, and a dataset evicted while in use lives only until its call ends.
/// Before, every seed ever used stayed in memory for the life of the process.
static CACHE: Mutex<Vec<CacheEntry>> = Mutex::new(Vec::new());

/// The cache's current use (entries and their orders), for tests and metrics.
pub fn cache_use() -> CacheUse {
    let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    CacheUse {
        datasets: cache.len(),
        purchase_orders: cache
            .iter()
            .map(|((_, orders), _)| u64::from(*orders))
            .sum(),
    }
}

fn dataset(settings: SandboxSettings) -> Arc<Dataset> {
    let key = (settings.seed, settings.purchase_orders);
    {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = cache.iter().position(|(k, _)| *k == key) {
            let entry = cache.remove(at);
            let data = entry.1.clone();
            cache.insert(0, entry);
            return data;
        }
    }
    // Generated outside the lock: a large dataset takes a while, and other connections'
    // calls must not wait for it. Two callers may both generate it; the data is the same.
    let data = Arc::new(data::generate(settings.seed, settings.purchase_orders));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(at) = cache.iter().position(|(k, _)| *k == key) {
        cache.remove(at);
    }
    cache.insert(0, (key, data.clone()));
    let mut orders = 0u64;
    let mut keep = 0;
    for ((_, n), _) in cache.iter() {
        // The newest entry always stays (a single dataset is within the bound).
        if keep > 0 && (keep == DATASETS_KEPT || orders + u64::from(*n) > ORDERS_KEPT) {
            break;
        }
        orders += u64::from(*n);
        keep += 1;
    }
    cache.truncate(keep);
    data
}

/// A connection to the sandbox ERP.
pub struct SandboxConnector {
    settings: SandboxSettings,
    revoked: bool,
    clock: Arc<dyn Clock>,
}

impl SandboxConnector {
    /// Builds the connector for a connection's settings and credentials.
    pub fn new(
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectorError> {
        let settings = SandboxSettings::parse(settings)?;
        let revoked = credentials
            .and_then(|c| c.get("api_key"))
            .and_then(Value::as_str)
            .is_some_and(|k| k == REVOKED_API_KEY);
        Ok(SandboxConnector {
            settings,
            revoked,
            clock,
        })
    }

    fn authorize(&self) -> Result<(), ConnectorError> {
        if self.revoked {
            Err(ConnectorError::Unauthorized)
        } else {
            Ok(())
        }
    }

    /// The connection's data, for the length of one call.
    fn data(&self) -> Arc<Dataset> {
        dataset(self.settings)
    }

    fn now_iso(&self) -> String {
        ironbridge_model::Timestamp::from_secs(self.clock.now().micros().div_euclid(1_000_000))
            .to_rfc3339()
    }

    fn check_location(&self, data: &Dataset, key: &str) -> Result<(), ConnectorError> {
        match find(data, Entity::LOCATION, "code", key) {
            Some(l) if l["active"] == true => Ok(()),
            Some(_) => Err(rule(
                "INACTIVE_LOCATION",
                format!("Location {key} is closed and cannot receive goods."),
                "location_id",
            )),
            None => Err(rule(
                "INVALID_LOCATION",
                format!("Location {key} does not exist."),
                "location_id",
            )),
        }
    }

    fn build_lines(
        &self,
        data: &Dataset,
        lines: &[PurchaseOrderLineWrite],
        expected: Option<&str>,
    ) -> Result<(Vec<Value>, Decimal), ConnectorError> {
        if lines.is_empty() {
            return Err(rule(
                "NO_LINES",
                "A purchase order needs at least one line.".into(),
                "line_items",
            ));
        }
        let mut subtotal = Decimal::ZERO;
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let param = |f: &str| format!("line_items[{i}].{f}");
            let item =
                find(data, Entity::ITEM, "itemNo", &line.item_remote_id).ok_or_else(|| {
                    rule(
                        "INVALID_ITEM",
                        format!("Item {} does not exist.", line.item_remote_id),
                        &param("item_id"),
                    )
                })?;
            if item["active"] != true {
                return Err(rule(
                    "INACTIVE_ITEM",
                    format!(
                        "Item {} is inactive and cannot be ordered.",
                        line.item_remote_id
                    ),
                    &param("item_id"),
                ));
            }
            let available = item
                .get("available")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<Decimal>().ok());
            if available == Some(Decimal::ZERO) {
                return Err(rule(
                    "ITEM_OUT_OF_STOCK",
                    format!("Item {} is out of stock.", line.item_remote_id),
                    &param("item_id"),
                ));
            }
            let price = match line.unit_price {
                Some(p) => p,
                None => item["standardCost"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(Decimal::ZERO),
            };
            // Amounts past what a decimal holds are refused as an ERP refuses an amount too
            // large for its field, never a panic.
            let too_large = || {
                rule(
                    "AMOUNT_TOO_LARGE",
                    format!(
                        "The amount of line {} exceeds the largest amount the system stores.",
                        i + 1
                    ),
                    &param("quantity"),
                )
            };
            let amount = line
                .quantity
                .checked_mul(price)
                .ok_or_else(too_large)?
                .round_dp(2);
            subtotal = subtotal.checked_add(amount).ok_or_else(too_large)?;
            out.push(json!({
                "lineNo": i + 1,
                "itemNo": line.item_remote_id,
                "description": line.description.clone().unwrap_or_else(|| item["name"].as_str().unwrap_or_default().to_string()),
                "quantity": line.quantity.normalize().to_string(),
                "quantityReceived": "0",
                "uom": line.unit_of_measure.clone().unwrap_or_else(|| item["uom"].as_str().unwrap_or("EA").to_string()),
                "unitPrice": price.normalize().to_string(),
                "lineAmount": amount.to_string(),
                "expectedDate": line.expected_delivery_date.as_deref().or(expected),
            }));
        }
        Ok((out, subtotal))
    }
}

fn records(data: &Dataset, entity: Entity) -> &[Value] {
    if entity == Entity::PURCHASE_ORDER {
        &data.purchase_orders
    } else if entity == Entity::VENDOR {
        &data.vendors
    } else if entity == Entity::ITEM {
        &data.items
    } else if entity == Entity::LOCATION {
        &data.locations
    } else {
        &[]
    }
}

fn find<'a>(data: &'a Dataset, entity: Entity, key_field: &str, key: &str) -> Option<&'a Value> {
    records(data, entity).iter().find(|r| r[key_field] == key)
}

fn rule(code: &str, message: String, param: &str) -> ConnectorError {
    ConnectorError::BusinessRule {
        remote_code: code.to_string(),
        message,
        param: Some(param.to_string()),
    }
}

fn set_totals(order: &mut Value, subtotal: Decimal) {
    let tax = (subtotal * Decimal::new(725, 4)).round_dp(2);
    order["subtotal"] = json!(subtotal.to_string());
    order["taxAmount"] = json!(tax.to_string());
    order["totalAmount"] = json!((subtotal + tax).to_string());
}

impl Connector for SandboxConnector {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }

    fn creates(&self) -> Option<&dyn CreateRecords> {
        Some(self)
    }

    fn updates(&self) -> Option<&dyn UpdateRecords> {
        Some(self)
    }
}

#[async_trait]
impl OrderWriter for SandboxConnector {
    async fn create_order(
        &self,
        order: &PurchaseOrderWrite,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        self.validate_and_create(order, write)
    }

    async fn update_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        self.validate_and_update(remote_id, update)
    }
}

#[async_trait]
impl Source for SandboxConnector {
    async fn extent(&self, entity: Entity) -> Result<Extent, ConnectorError> {
        self.authorize()?;
        let data = self.data();
        let all = records(&data, entity);
        Ok(Extent {
            oldest: all
                .iter()
                .filter_map(|r| r["updatedAt"].as_str().and_then(Timestamp::parse_rfc3339))
                .min(),
            pages: Some((all.len() as u64).div_ceil(PAGE_SIZE as u64)),
        })
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.authorize()
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        self.authorize()?;
        if DESCRIPTOR.read(entity).is_none() {
            return Err(ConnectorError::Unsupported(format!(
                "the sandbox has no {} records",
                entity.spec().label
            )));
        }
        let offset = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                ConnectorError::Upstream(format!("sandbox cannot resume from cursor {c:?}"))
            })?,
        };
        // The data never changes, so offsets into the filtered list are stable pages.
        let data = self.data();
        let all: Vec<&Value> = records(&data, entity)
            .iter()
            .filter(|r| {
                r["updatedAt"]
                    .as_str()
                    .and_then(ironbridge_model::Timestamp::parse_rfc3339)
                    .is_none_or(|t| window.contains(t))
            })
            .collect();
        let end = (offset + PAGE_SIZE).min(all.len());
        let records = all
            .get(offset..end)
            .unwrap_or_default()
            .iter()
            .map(|r| SourceRecord::from_value(r))
            .collect();
        let next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(RawPage::new(records, next_cursor))
    }
}

impl SandboxConnector {
    /// Validates an order like an ERP and answers with the record it would create.
    fn validate_and_create(
        &self,
        order: &PurchaseOrderWrite,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        self.authorize()?;
        let data = self.data();
        let vendor =
            find(&data, Entity::VENDOR, "vendorId", &order.vendor_remote_id).ok_or_else(|| {
                rule(
                    "INVALID_VENDOR",
                    format!("Vendor {} does not exist.", order.vendor_remote_id),
                    "vendor_id",
                )
            })?;
        if vendor["status"] != "ACTIVE" {
            return Err(rule(
                "INVALID_VENDOR",
                format!(
                    "Vendor {} is blocked for purchasing.",
                    order.vendor_remote_id
                ),
                "vendor_id",
            ));
        }
        if let Some(location) = &order.location_remote_id {
            self.check_location(&data, location)?;
        }
        let now = self.now_iso();
        let (lines, subtotal) =
            self.build_lines(&data, &order.lines, order.expected_delivery_date.as_deref())?;
        // A fresh number each time: the sandbox keeps nothing, so it cannot count.
        let serial = 900_000
            + crate::crypto::random_bytes::<4>()
                .iter()
                .fold(0u32, |a, b| a * 7 + u32::from(*b))
                % 99_999;
        // What the caller gave, in the sandbox's shape: its read mapping run backwards (every
        // field of an order write can be placed); then what the ERP fills in itself.
        let placed = DESCRIPTOR
            .mapping(Entity::PURCHASE_ORDER)
            .map(|m| m.reverse(&write.fields).source)
            .unwrap_or_default();
        let mut raw = Value::Object(placed);
        raw["poId"] = json!(serial.to_string());
        raw["status"] = json!("DRAFT");
        if order.number.is_none() {
            raw["poNumber"] = json!(format!("PO-{serial}"));
        }
        if order.currency.is_none() {
            raw["currency"] = json!(vendor["currency"].as_str().unwrap_or("USD"));
        }
        if order.order_date.is_none() {
            raw["orderDate"] = json!(now[..10]);
        }
        raw["lines"] = Value::Array(lines);
        raw["createdAt"] = json!(now);
        raw["updatedAt"] = json!(now);
        raw["deleted"] = json!(false);
        set_totals(&mut raw, subtotal);
        Ok(raw)
    }

    /// Validates changes like an ERP and answers with the order as it would become.
    fn validate_and_update(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        self.authorize()?;
        let data = self.data();
        let mut order = find(&data, Entity::PURCHASE_ORDER, "poId", remote_id)
            .cloned()
            .ok_or(ConnectorError::NotFound)?;
        let status = order["status"].as_str().unwrap_or_default().to_string();
        if CLOSED_STATUSES.contains(&status.as_str()) {
            return Err(ConnectorError::State {
                remote_code: "PO_CLOSED".into(),
                message: format!(
                    "Purchase order {} is {} and can no longer be changed.",
                    order["poNumber"].as_str().unwrap_or(remote_id),
                    status.to_lowercase()
                ),
            });
        }
        if let Some(location) = &update.location_remote_id {
            self.check_location(&data, location)?;
            order["shipToLocation"] = json!(location);
        }
        if let Some(date) = &update.expected_delivery_date {
            order["expectedDate"] = json!(date);
        }
        if let Some(memo) = &update.memo {
            order["memo"] = json!(memo);
        }
        if !update.custom_fields.is_empty() {
            let mut fields = order
                .get("customFields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            fields.extend(update.custom_fields.clone());
            order["customFields"] = Value::Object(fields);
        }
        if let Some(lines) = &update.lines {
            if status != "DRAFT" && status != "PENDING_APPROVAL" {
                return Err(ConnectorError::State {
                    remote_code: "PO_APPROVED".into(),
                    message: "Lines of an approved purchase order cannot be replaced; cancel and reorder instead.".into(),
                });
            }
            let expected = order["expectedDate"].as_str().map(str::to_string);
            let (lines, subtotal) = self.build_lines(&data, lines, expected.as_deref())?;
            order["lines"] = Value::Array(lines);
            set_totals(&mut order, subtotal);
        }
        order["updatedAt"] = json!(self.now_iso());
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn connector(settings: Value) -> SandboxConnector {
        SandboxConnector::new(
            settings.as_object().unwrap(),
            None,
            Arc::new(ManualClock::new(data::anchor())),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn pages_through_everything_and_maps_into_the_unified_model() {
        let c = connector(json!({"purchase_orders": 250}));
        for entity in DESCRIPTOR.readable() {
            let mut cursor = None;
            let mut seen = Vec::new();
            loop {
                let page = c
                    .fetch_page(entity, &ReadWindow::ALL, cursor.as_deref())
                    .await
                    .unwrap();
                seen.extend(page.records.iter().map(|r| r.parse().unwrap()));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen.len(), records(&c.data(), entity).len());
            let def = DESCRIPTOR.mapping(entity).unwrap();
            for raw in &seen {
                let mapped = def.apply("conn_test", raw).unwrap();
                // The unified body plus the envelope must decode into the documented types.
                crate::unified::check_mapped(entity, &mapped)
                    .unwrap_or_else(|e| panic!("{entity}: {e}"));
            }
        }
    }

    fn line(item: &str) -> PurchaseOrderLineWrite {
        PurchaseOrderLineWrite {
            item_remote_id: item.into(),
            quantity: Decimal::from(3),
            unit_price: None,
            description: None,
            unit_of_measure: None,
            expected_delivery_date: None,
        }
    }

    fn order(vendor: &str, item: &str) -> PurchaseOrderWrite {
        PurchaseOrderWrite {
            number: None,
            vendor_remote_id: vendor.into(),
            location_remote_id: Some("DC-EAST".into()),
            currency: None,
            order_date: None,
            expected_delivery_date: None,
            memo: None,
            custom_fields: Map::new(),
            lines: vec![line(item)],
        }
    }

    fn create(c: &SandboxConnector, order: &PurchaseOrderWrite) -> Result<Value, ConnectorError> {
        c.validate_and_create(order, &order.into())
    }

    fn remote_code(err: ConnectorError) -> String {
        match err {
            ConnectorError::BusinessRule { remote_code, .. }
            | ConnectorError::State { remote_code, .. } => remote_code,
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn writes_validate_like_an_erp_and_change_nothing() {
        let c = connector(json!({}));
        let before = records(&c.data(), Entity::PURCHASE_ORDER).to_vec();
        let created = create(&c, &order("V-1001", "ITM-1001")).unwrap();
        assert_eq!(created["status"], "DRAFT");
        assert_eq!(created["lines"][0]["lineAmount"], "1.26");
        assert_eq!(created["totalAmount"], "1.35");
        assert_eq!(
            remote_code(create(&c, &order(data::BLOCKED_VENDOR, "ITM-1001")).unwrap_err()),
            "INVALID_VENDOR"
        );
        assert_eq!(
            remote_code(create(&c, &order("V-9999", "ITM-1001")).unwrap_err()),
            "INVALID_VENDOR"
        );
        assert_eq!(
            remote_code(create(&c, &order("V-1001", "ITM-1008")).unwrap_err()),
            "ITEM_OUT_OF_STOCK"
        );
        assert_eq!(
            remote_code(create(&c, &order("V-1001", "ITM-1040")).unwrap_err()),
            "INACTIVE_ITEM"
        );
        let closed = before.iter().find(|o| o["status"] == "CLOSED").unwrap()["poId"]
            .as_str()
            .unwrap()
            .to_string();
        let update = PurchaseOrderUpdate {
            memo: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            remote_code(c.validate_and_update(&closed, &update).unwrap_err()),
            "PO_CLOSED"
        );
        let draft = before.iter().find(|o| o["status"] == "DRAFT").unwrap()["poId"]
            .as_str()
            .unwrap()
            .to_string();
        let updated = c.validate_and_update(&draft, &update).unwrap();
        assert_eq!(updated["memo"], "x");
        assert_eq!(
            records(&c.data(), Entity::PURCHASE_ORDER),
            before.as_slice()
        );
    }

    #[tokio::test]
    async fn revoked_credentials_and_bad_settings_are_refused() {
        let creds = json!({"api_key": REVOKED_API_KEY});
        let c = SandboxConnector::new(
            &Map::new(),
            creds.as_object(),
            Arc::new(ManualClock::new(data::anchor())),
        )
        .unwrap();
        assert!(matches!(c.check().await, Err(ConnectorError::Unauthorized)));
        assert!(matches!(
            c.fetch_page(Entity::VENDOR, &ReadWindow::ALL, None).await,
            Err(ConnectorError::Unauthorized)
        ));
        let bad = |v: Value| SandboxSettings::parse(v.as_object().unwrap()).unwrap_err();
        assert!(
            matches!(bad(json!({"purchase_orders": 0})), ConnectorError::InvalidSettings { param, .. } if param == "settings.purchase_orders")
        );
        assert!(
            matches!(bad(json!({"colour": "red"})), ConnectorError::InvalidSettings { param, .. } if param == "settings.colour")
        );
    }

    #[tokio::test]
    async fn the_dataset_cache_is_bounded_whatever_the_seeds() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(data::anchor()));
        // Many connections, each with its own seed, each read once and dropped (a disconnect),
        // and some still held (live connections) while others come.
        let mut live = Vec::new();
        for seed in 1_000..1_030u64 {
            let settings = json!({"seed": seed, "purchase_orders": 2_000});
            let c =
                SandboxConnector::new(settings.as_object().unwrap(), None, clock.clone()).unwrap();
            let page = c
                .fetch_page(Entity::PURCHASE_ORDER, &ReadWindow::ALL, None)
                .await
                .unwrap();
            assert!(!page.records.is_empty());
            if seed % 5 == 0 {
                live.push(c);
            }
            let held = cache_use();
            assert!(held.datasets <= DATASETS_KEPT, "{held:?}");
            assert!(held.purchase_orders <= ORDERS_KEPT, "{held:?}");
        }
        // A held connection whose data was evicted still reads the same data (it is
        // generated again from its seed).
        let first = &live[0];
        let again = first
            .fetch_page(Entity::VENDOR, &ReadWindow::ALL, None)
            .await
            .unwrap();
        let parsed: Vec<Value> = again.records.iter().map(|r| r.parse().unwrap()).collect();
        assert_eq!(
            parsed,
            data::generate(1_000, 2_000).vendors[..again.records.len()]
        );
        assert!(cache_use().datasets <= DATASETS_KEPT);
    }
}
