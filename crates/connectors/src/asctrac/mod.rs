//! ASCTrac WMS over its Interface Service: bearer tokens from `api/Authorize`; the export
//! controllers read as outboxes (each page one GET whose answer is cut as it streams, committed,
//! then acknowledged with a PUT of its rows' keys); `InventoryAudit` read whole as the
//! snapshot of stock levels and the items and facilities they name; items and outbound orders
//! written through `ItemMasterImport`, `CustOrderImport` and `CustOrderShipImport`, with
//! partial acceptance answered as a refusal naming the missing items.

pub mod rows;
mod write;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{
    Connector, ConnectorError, CreateRecords, RawPage, ReadWindow, Source, SourceRecord,
    UnifiedWrite, UpdateRecords,
};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::{
    AuthOption, FieldSpec, Limits, Mappings, Payload, ReadSpec, SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use reqwest::header::AUTHORIZATION;
use serde_json::{Map, Value, json};
use time::UtcOffset;

use crate::client::UpstreamClient;
use crate::common::{
    Authorize, Fields, Secret, SourceClock, authorized_call, json_body, limited_client, unexpected,
    upstream,
};
use crate::sleeper::Sleeper;
use crate::token::{AccessToken, TokenCache};

/// ASCTrac's id.
pub const ID: SystemId = SystemId::from_static("asctrac");

const fn read(entity: Entity, kind: ReadKind) -> ReadSpec {
    ReadSpec {
        entity,
        kind,
        // Outboxes never show deletions; whole reads (the audit) mark what vanished.
        deletions: DeletionDetection::Reconciliation,
        payload: Payload::Whole,
        follows_feed: false,
    }
}

/// A read whose rows carry only some of a record's members: an order's status rows have no
/// lines, which only the order Ironbridge wrote has.
const fn partial(entity: Entity, kind: ReadKind) -> ReadSpec {
    ReadSpec {
        payload: Payload::Partial,
        ..read(entity, kind)
    }
}

/// ASCTrac WMS through the ASCTrac Interface Service.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "ASCTrac WMS",
    auth: &[AuthOption {
        id: "client_credentials",
        name: "ASCTrac token service (client id and secret)",
        description: "The client registered with the site's token service (`api/Authorize`); the Interface Service checks the bearer token against ASCREST_AUTH.",
        fields: &[
            FieldSpec::text(
                "client_id",
                "Client ID",
                "The client registered with the ASCTrac token service.",
            ),
            FieldSpec::text("client_secret", "Client secret", "Its secret.").secret(),
        ],
    }],
    settings: &[
        FieldSpec::text(
            "base_url",
            "Interface Service URL",
            "The ASCTrac Interface Service's root (the URL before `/api/`).",
        )
        .format(FieldFormat::Url),
        FieldSpec::text(
            "token_url",
            "Token service URL",
            "The root of the service answering `api/Authorize` (default: the Interface Service's).",
        )
        .optional()
        .format(FieldFormat::Url),
        FieldSpec::text(
            "time_zone",
            "Site time zone",
            "The site's IANA time zone (`America/New_York`): ASCTrac writes its times without a zone, in the site's wall-clock time, daylight-saving time included. Default: `utc_offset`, else UTC.",
        )
        .optional(),
        FieldSpec::text(
            "utc_offset",
            "Site UTC offset",
            "A fixed offset from UTC (`-05:00`) for a site whose clocks never change; use `time_zone` otherwise. Not with `time_zone`.",
        )
        .optional(),
        FieldSpec::text(
            "facilities",
            "Facilities",
            "HOST_SITE_IDs of the site's facilities, comma-separated (ASCTrac lists none; those named by stock rows are added).",
        )
        .optional(),
        FieldSpec::text(
            "default_facility",
            "Default facility",
            "HOST_SITE_ID items are written to (default: the first of `facilities`).",
        )
        .optional(),
        FieldSpec::text(
            "page_size",
            "Page size",
            "Rows per outbox page, 1 to 5000 (default 500).",
        )
        .optional()
        .format(FieldFormat::Integer),
        FieldSpec::text(
            "docks",
            "Dock doors",
            "Dock doors whose schedule is read, comma-separated (`D1,D2`, or `01:D1` for one facility's); ASCTrac lists none. Without them, dock appointments are not read.",
        )
        .optional(),
        FieldSpec::text(
            "dock_user",
            "Dock schedule user",
            "The ASCTrac user the dock schedule is read as (default `IRONBRIDGE`).",
        )
        .optional(),
        FieldSpec::text(
            "dock_days",
            "Dock schedule horizon",
            "Days of dock schedule read: yesterday and this many days ahead, 0 to 60 (default 7).",
        )
        .optional()
        .format(FieldFormat::Integer),
    ],
    reads: &[
        read(Entity::ITEM, ReadKind::Whole),
        read(Entity::LOCATION, ReadKind::Whole),
        read(Entity::INVENTORY_LEVEL, ReadKind::Whole),
        read(Entity::RECEIPT, ReadKind::Outbox),
        partial(Entity::OUTBOUND_ORDER, ReadKind::Outbox),
        read(Entity::SHIPMENT, ReadKind::Outbox),
        read(Entity::INVENTORY_TRANSACTION, ReadKind::Outbox),
        read(Entity::DOCK_APPOINTMENT, ReadKind::Whole),
    ],
    writes: write::WRITES,
    limits: Limits {
        concurrency: 2,
        per_second: 5.0,
        burst: 5,
        description: "The Interface Service documents no limits; it runs in one IIS worker against the site's SQL Server, and PO and customer-order imports are serialised by a process-wide lock. Ironbridge keeps to 2 calls at once and 5 a second.",
    },
    history_days: None,
    mappings: Mappings::new(&[
        include_str!("../../mappings/asctrac/item.json"),
        include_str!("../../mappings/asctrac/location.json"),
        include_str!("../../mappings/asctrac/inventory_level.json"),
        include_str!("../../mappings/asctrac/receipt.json"),
        include_str!("../../mappings/asctrac/outbound_order.json"),
        include_str!("../../mappings/asctrac/shipment.json"),
        include_str!("../../mappings/asctrac/inventory_transaction.json"),
        include_str!("../../mappings/asctrac/dock_appointment.json"),
        include_str!("../../mappings/asctrac/purchase_order.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(AsctracConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

const SETTINGS: &[&str] = &[
    "base_url",
    "token_url",
    "time_zone",
    "utc_offset",
    "facilities",
    "default_facility",
    "page_size",
    "docks",
    "dock_user",
    "dock_days",
];
const CREDENTIALS: &[&str] = &["client_id", "client_secret"];
const DEFAULT_PAGE_SIZE: u64 = 500;

/// The export controller an outbox entity is read from, with its query overload's parameters.
fn outbox_of(entity: Entity) -> Option<(&'static str, &'static str)> {
    if entity == Entity::RECEIPT {
        Some(("POLicensesExport", "aOnlySendCompletedReceipt=true"))
    } else if entity == Entity::INVENTORY_TRANSACTION {
        Some(("TranFileExport", "aCustID=&aExcludeTrantype="))
    } else if entity == Entity::SHIPMENT {
        Some(("CustOrderExport", "aCustID="))
    } else if entity == Entity::OUTBOUND_ORDER {
        Some(("CustOrderStatusExport", "aCustID="))
    } else {
        None
    }
}

/// Members that hold the service's own clock at the call (`DateTime.Now`), not a fact of the
/// row: dropped, so a row read again is the same record, not a change.
const CALL_TIME: &[(&str, &str)] = &[
    ("CustOrderStatusExport", "CREATE_DATETIME"),
    ("InventoryAudit", "DATE_TIME"),
];

/// The ASCTrac connector of one connection.
pub struct AsctracConnector {
    base: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    site: rows::SiteZone,
    facilities: Vec<String>,
    default_facility: Option<String>,
    page_size: usize,
    /// (facility or all, dock) pairs whose schedule is read.
    docks: Vec<(Option<String>, String)>,
    dock_user: String,
    dock_days: i64,
    tokens: TokenCache,
    client: UpstreamClient,
    clock: Arc<dyn Clock>,
    source_clock: SourceClock,
    /// Per outbox, hashes of the rows acknowledged since it was last seen empty: a GET that
    /// serves only such rows means acknowledgements have no effect (keys that match nothing,
    /// rows the service keeps re-sending), and the read stops instead of looping.
    acknowledged: Mutex<BTreeMap<&'static str, HashSet<u64>>>,
    /// Row hashes of pages read and not yet acknowledged, by their receipt's hash.
    pending: Mutex<BTreeMap<u64, Vec<u64>>>,
}

impl std::fmt::Debug for AsctracConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsctracConnector")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl AsctracConnector {
    /// A connector from a connection's settings and credentials.
    pub fn new(
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        let s = Fields::new(Some(settings), "settings", SETTINGS)?;
        let c = Fields::new(credentials, "credentials", CREDENTIALS)?;
        let base = s.url("base_url", true)?.unwrap_or_default();
        let token_url = s.url("token_url", false)?.unwrap_or_else(|| base.clone());
        let site = match (s.opt("time_zone")?, s.opt("utc_offset")?) {
            (Some(_), Some(_)) => {
                return Err(s.invalid("utc_offset", "give `time_zone` or `utc_offset`, not both"));
            }
            (Some(name), None) => rows::SiteZone::named(&name).ok_or_else(|| {
                s.invalid(
                    "time_zone",
                    "expected an IANA time zone like `America/New_York`",
                )
            })?,
            (None, Some(text)) => rows::SiteZone::Fixed(
                rows::parse_offset(&text)
                    .ok_or_else(|| s.invalid("utc_offset", "expected an offset like `-05:00`"))?,
            ),
            (None, None) => rows::SiteZone::Fixed(UtcOffset::UTC),
        };
        let facilities: Vec<String> = s
            .opt("facilities")?
            .map(|f| {
                f.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let default_facility = s
            .opt("default_facility")?
            .or_else(|| facilities.first().cloned());
        let page_size = s.num("page_size", 1..=5000)?.unwrap_or(DEFAULT_PAGE_SIZE) as usize;
        let docks = s
            .opt("docks")?
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| match x.split_once(':') {
                        Some((f, dock)) => (Some(f.trim().to_string()), dock.trim().to_string()),
                        None => (None, x.to_string()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let dock_user = s.opt("dock_user")?.unwrap_or_else(|| "IRONBRIDGE".into());
        let dock_days = s.num("dock_days", 0..=60)?.unwrap_or(7) as i64;
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(120),
            clock.clone(),
            sleeper,
            egress,
        )?;
        Ok(AsctracConnector {
            base,
            token_url,
            client_id: c.req("client_id")?,
            client_secret: Secret(c.req("client_secret")?),
            site,
            facilities,
            default_facility,
            page_size,
            docks,
            dock_user,
            dock_days,
            tokens: TokenCache::default(),
            client,
            clock,
            source_clock: SourceClock::default(),
            acknowledged: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    fn url(&self, controller: &str, query: &str) -> String {
        if query.is_empty() {
            format!("{}/api/{controller}", self.base)
        } else {
            format!("{}/api/{controller}?{query}", self.base)
        }
    }

    /// `POST api/Authorize`: a refused client is [`ConnectorError::Unauthorized`], which marks
    /// the connection `reauthorization_required`.
    async fn fetch_token(&self) -> Result<AccessToken, ConnectorError> {
        let url = format!("{}/api/Authorize", self.token_url);
        let body = json!({"client_id": self.client_id, "client_secret": self.client_secret.0,
            "resource": self.base});
        let response = self
            .client
            .send(|http| http.post(&url).json(&body))
            .await
            .map_err(upstream)?;
        self.source_clock
            .observe(&response.headers, self.client.now());
        match response.status {
            200 => {}
            400 | 401 | 403 => return Err(ConnectorError::Unauthorized),
            _ => return Err(unexpected("the token service", &response)),
        }
        let v = json_body("the token service", &response)?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::Upstream("the token service sent no token".into()))?;
        // `ModelTokenResponse` sends every member as a string.
        let lifetime = match &v["expires_in"] {
            Value::String(s) => s.parse::<i64>().unwrap_or(3600),
            Value::Number(n) => n.as_i64().unwrap_or(3600),
            _ => 3600,
        };
        Ok(AccessToken {
            value: token.to_string(),
            expires_at: self.clock.now().plus_secs(lifetime.max(60)),
        })
    }

    /// A GET answered whole (the audit, an acknowledgement's PUT).
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<crate::client::UpstreamResponse, ConnectorError> {
        authorized_call(
            &self.client,
            self,
            &self.source_clock,
            |http| {
                let r = http.request(method.clone(), url);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            },
            upstream,
        )
        .await
    }

    /// The inventory audit's rows (the whole site, zero-stock items included), normalised.
    async fn audit(&self) -> Result<Vec<Map<String, Value>>, ConnectorError> {
        let url = self.url("InventoryAudit", "aVMICustID=&aSiteID=&aItemID=");
        let response = self.call(reqwest::Method::GET, &url, None).await?;
        if response.status != 200 {
            return Err(unexpected("InventoryAudit", &response));
        }
        let value = crate::common::json_page("InventoryAudit", &response).await?;
        let rows = match value {
            Value::Array(rows) => rows,
            // The "No Records Found" `ModelResponse`.
            Value::Object(_) => Vec::new(),
            _ => {
                return Err(ConnectorError::Upstream(
                    "InventoryAudit: not an array".into(),
                ));
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|mut row| {
                rows::normalize(&mut row, &self.site);
                match row {
                    Value::Object(mut m) => {
                        m.remove("DATE_TIME");
                        Some(m)
                    }
                    _ => None,
                }
            })
            .collect())
    }

    /// Records of a whole read derived from the audit.
    async fn whole(&self, entity: Entity) -> Result<Vec<Value>, ConnectorError> {
        let audit = self.audit().await?;
        let mut out = Vec::new();
        if entity == Entity::INVENTORY_LEVEL {
            for mut m in audit {
                let key = rows::key(entity, &m);
                m.insert(rows::KEY.into(), Value::String(key));
                out.push(Value::Object(m));
            }
        } else if entity == Entity::ITEM {
            // One item per PRODUCT_CODE, its quantities summed over facilities and lots.
            let mut items: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            for m in audit {
                let code = rows::text(&m, "PRODUCT_CODE");
                if code.is_empty() {
                    continue;
                }
                let num = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                let (on_hand, free) = (
                    num("QUANTITY"),
                    num("QUANTITY") - num("QTY_ALLOCATED") - num("QTY_ONHOLD"),
                );
                let item = items.entry(code.clone()).or_insert_with(|| {
                    let mut i = Map::new();
                    i.insert(rows::KEY.into(), Value::String(code.clone()));
                    i.insert("PRODUCT_CODE".into(), Value::String(code.clone()));
                    for k in ["UOM", "COST_EACH"] {
                        i.insert(k.into(), m.get(k).cloned().unwrap_or(Value::Null));
                    }
                    i.insert("QUANTITY".into(), json!(0.0));
                    i.insert("QTY_AVAILABLE".into(), json!(0.0));
                    i
                });
                let add = |i: &mut Map<String, Value>, k: &str, d: f64| {
                    let v = i.get(k).and_then(Value::as_f64).unwrap_or(0.0) + d;
                    i.insert(k.into(), json!(v));
                };
                add(item, "QUANTITY", on_hand);
                add(item, "QTY_AVAILABLE", free);
            }
            out.extend(items.into_values().map(Value::Object));
        } else {
            // Facilities: the configured ones and every one the audit names.
            let mut seen: std::collections::BTreeSet<String> =
                self.facilities.iter().cloned().collect();
            for m in &audit {
                let f = rows::text(m, "FACILITY");
                if !f.is_empty() {
                    seen.insert(f);
                }
            }
            out.extend(seen.into_iter().map(|f| json!({"_key": f, "FACILITY": f})));
        }
        Ok(out)
    }

    /// One page of an outbox: a fresh GET whose answer is cut as it arrives, the first
    /// `page_size` rows kept (and the rest of an order's rows, which one acknowledgement
    /// covers), the stream then dropped: the rows not kept stay sent (`S`) and are served again
    /// by the next GET.
    async fn outbox_page(
        &self,
        entity: Entity,
        controller: &'static str,
        query: &str,
    ) -> Result<RawPage, ConnectorError> {
        let url = self.url(controller, query);
        let mut response = None;
        for attempt in 0..2 {
            let authorization = self.authorization().await?;
            let r = self
                .client
                .open(
                    self.client
                        .http()
                        .get(&url)
                        .header(AUTHORIZATION, &authorization),
                )
                .await
                .map_err(upstream)?;
            self.source_clock.observe(r.headers(), self.client.now());
            if r.status().as_u16() == 401 {
                if attempt == 1 || !self.refused().await {
                    return Err(ConnectorError::Unauthorized);
                }
                continue;
            }
            response = Some(r);
            break;
        }
        let Some(mut response) = response else {
            return Err(ConnectorError::Unauthorized);
        };
        let status = response.status().as_u16();
        if status != 200 {
            let body = self.client.read_capped(response).await.map_err(upstream)?;
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["Message"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(ConnectorError::Upstream(format!(
                "{controller}: HTTP {status} {message}"
            )));
        }
        let grouped = entity == Entity::OUTBOUND_ORDER || entity == Entity::SHIPMENT;
        let mut cutter = rows::Cutter::default();
        let mut elements: Vec<Vec<u8>> = Vec::new();
        let mut kept: Vec<Vec<u8>> = Vec::new();
        let mut last_order: Option<String> = None;
        let mut more = false;
        let mut object = Vec::new();
        'read: loop {
            let chunk = match response.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(_) => {
                    return Err(ConnectorError::Upstream(format!(
                        "{controller}: the answer was cut off"
                    )));
                }
            };
            if cutter.shape() == rows::Shape::Object {
                object.extend_from_slice(&chunk);
                if object.len() > 1 << 20 {
                    return Err(ConnectorError::Upstream(format!(
                        "{controller}: an oversized answer"
                    )));
                }
                continue;
            }
            let used = cutter
                .feed(&chunk, &mut elements)
                .map_err(|e| ConnectorError::Upstream(format!("{controller}: {e}")))?;
            if cutter.shape() == rows::Shape::Object {
                object.extend_from_slice(&chunk[used..]);
                continue;
            }
            for element in elements.drain(..) {
                if kept.len() >= self.page_size {
                    // Past the page: keep only the rest of the last order's rows.
                    let order = grouped.then(|| order_of(&element)).flatten();
                    if !grouped || order.is_none() || order != last_order {
                        more = true;
                        break 'read;
                    }
                }
                if grouped {
                    last_order = order_of(&element);
                }
                kept.push(element);
            }
            if cutter.done {
                break;
            }
        }
        drop(response);
        if cutter.shape() == rows::Shape::Object {
            let v: Value = serde_json::from_slice(&object)
                .map_err(|_| ConnectorError::Upstream(format!("{controller}: not JSON")))?;
            if v["Message"].as_str() == Some("No Records Found") {
                self.forget(controller);
                return Ok(RawPage::new(Vec::new(), None));
            }
            return Err(ConnectorError::Upstream(format!(
                "{controller}: {}",
                v["Message"].as_str().unwrap_or("an unexpected answer")
            )));
        }
        if !cutter.done && !more {
            return Err(ConnectorError::Upstream(format!(
                "{controller}: the answer ended inside its array"
            )));
        }
        if kept.is_empty() {
            self.forget(controller);
            return Ok(RawPage::new(Vec::new(), None));
        }
        self.records(entity, controller, kept)
    }

    /// The page's records and its receipt, from the rows kept.
    fn records(
        &self,
        entity: Entity,
        controller: &'static str,
        kept: Vec<Vec<u8>>,
    ) -> Result<RawPage, ConnectorError> {
        let mut acks = Vec::with_capacity(kept.len());
        let mut hashes = Vec::with_capacity(kept.len());
        // One record per source key: an order's status rows come one after another and the
        // last is its latest.
        let mut by_key: Vec<(String, Value)> = Vec::with_capacity(kept.len());
        for bytes in &kept {
            hashes.push(hash(bytes));
            let Value::Object(original) = serde_json::from_slice::<Value>(bytes).map_err(|_| {
                ConnectorError::Upstream(format!("{controller}: a row is not JSON"))
            })?
            else {
                continue;
            };
            // One acknowledgement per key: an order's status rows share theirs.
            let ack = rows::acknowledgement(entity, &original);
            if !acks.contains(&ack) {
                acks.push(ack);
            }
            let mut row = Value::Object(original);
            rows::normalize(&mut row, &self.site);
            let Value::Object(mut m) = row else { continue };
            for (c, field) in CALL_TIME {
                if *c == controller {
                    m.remove(*field);
                }
            }
            if entity == Entity::SHIPMENT {
                nested_keys(&mut m);
            }
            let key = rows::key(entity, &m);
            m.insert(rows::KEY.into(), Value::String(key.clone()));
            match by_key.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = Value::Object(m),
                None => by_key.push((key, Value::Object(m))),
            }
        }
        {
            let mut seen = self.acknowledged.lock().unwrap_or_else(|e| e.into_inner());
            let set = seen.entry(controller).or_default();
            if hashes.iter().all(|h| set.contains(h)) {
                return Err(ConnectorError::Upstream(format!(
                    "acknowledgement had no effect: {controller} served again rows already acknowledged (check GWAPIIncludeProcessingStatus and the rows' keys)"
                )));
            }
        }
        let records: Vec<SourceRecord> = by_key
            .into_iter()
            .map(|(_, v)| SourceRecord::from(v))
            .collect();
        let mut page = RawPage::new(records, Some("more".into()));
        let receipt = Value::Array(acks).to_string();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: pages whose acknowledgement never came (a failed run) are forgotten.
            if pending.len() > 64 {
                pending.clear();
            }
            pending.insert(hash(receipt.as_bytes()), hashes);
        }
        page.receipt = Some(receipt);
        Ok(page)
    }

    fn forget(&self, controller: &'static str) {
        self.acknowledged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(controller);
    }

    /// The dock schedule, one page per (facility, dock, day) of the horizon (yesterday to
    /// `dock_days` ahead, in the site's calendar): `GET DockSchd?aID=USER|SITE|DOCK|M/d/yyyy`,
    /// whose `DataMessage` is a JSON string of appointments. Read whole: an appointment the
    /// horizon no longer shows is marked deleted.
    async fn dock_page(&self, cursor: Option<&str>) -> Result<RawPage, ConnectorError> {
        let bad_cursor = || ConnectorError::InvalidSettings {
            param: "cursor".into(),
            message: "the cursor is not one this connector issued".into(),
        };
        let mut index: usize = match cursor {
            None => 0,
            Some(c) => c.parse().map_err(|_| bad_cursor())?,
        };
        let mut combos: Vec<(String, String)> = Vec::new();
        for (facility, dock) in &self.docks {
            match facility {
                Some(f) => combos.push((f.clone(), dock.clone())),
                None => combos.extend(self.facilities.iter().map(|f| (f.clone(), dock.clone()))),
            }
        }
        let days = (self.dock_days + 2) as usize;
        let total = combos.len() * days;
        let now = self.source_clock.corrected(self.clock.now());
        let today = self
            .site
            .date_at(now.micros().div_euclid(1_000_000))
            .ok_or_else(|| ConnectorError::Upstream("the clock is out of range".into()))?;
        while index < total {
            let (facility, dock) = &combos[index / days];
            let day = today + time::Duration::days((index % days) as i64 - 1);
            index += 1;
            let id = format!(
                "{}|{facility}|{dock}|{}/{}/{}",
                self.dock_user,
                day.month() as u8,
                day.day(),
                day.year()
            );
            let query = format!("aID={}", encode(&id));
            let response = self
                .call(reqwest::Method::GET, &self.url("DockSchd", &query), None)
                .await?;
            if response.status != 200 {
                return Err(unexpected("DockSchd", &response));
            }
            let answer = json_body("DockSchd", &response)?;
            if answer["successful"] != true {
                let message = answer["ErrorMessage"].as_str().unwrap_or("");
                if message == "No scheduled records found." {
                    continue;
                }
                return Err(ConnectorError::InvalidSettings {
                    param: "settings.docks".into(),
                    message: format!(
                        "ASCTrac refused the dock schedule of {facility} {dock}: {message}"
                    ),
                });
            }
            let list: Vec<Value> = answer["DataMessage"]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .ok_or_else(|| {
                    ConnectorError::Upstream("DockSchd: DataMessage is not a list".into())
                })?;
            let records: Vec<Value> = list
                .into_iter()
                .filter_map(|mut row| {
                    rows::normalize(&mut row, &self.site);
                    let Value::Object(mut m) = row else {
                        return None;
                    };
                    let key = format!("{facility}|{}", rows::text(&m, "SchedID"));
                    m.insert("_site".into(), Value::String(facility.clone()));
                    m.insert(rows::KEY.into(), Value::String(key));
                    Some(Value::Object(m))
                })
                .collect();
            if !records.is_empty() {
                let next = (index < total).then(|| index.to_string());
                return Ok(RawPage::from_values(records, next));
            }
        }
        Ok(RawPage::new(Vec::new(), None))
    }

    /// Facilities written to when a write names none.
    fn facility_for(&self, given: Option<String>) -> Result<String, ConnectorError> {
        given
            .or_else(|| self.default_facility.clone())
            .ok_or_else(|| ConnectorError::BusinessRule {
                remote_code: "NO_FACILITY".into(),
                message:
                    "name the facility (`location_id`), or set the connection's `default_facility`"
                        .into(),
                param: Some("location_id".into()),
            })
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ORDERNUMBER of a raw row, without parsing the rest of it into a tree.
fn order_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Order {
        #[serde(rename = "ORDERNUMBER")]
        order: Option<String>,
    }
    serde_json::from_slice::<Order>(bytes).ok()?.order
}

/// Keys of a shipment's nested rows (picks by line and lot, containers and serials by id).
fn nested_keys(m: &mut Map<String, Value>) {
    for (list, fields) in [
        ("PicksList", &["LINE_NUMBER", "LOTID"][..]),
        ("ContainersList", &["CONTAINER_ID"][..]),
        ("SerialsList", &["ORDER_LINENUM", "SER_NUM"][..]),
    ] {
        if let Some(Value::Array(items)) = m.get_mut(list) {
            for item in items.iter_mut() {
                if let Value::Object(e) = item {
                    let key = fields
                        .iter()
                        .map(|f| rows::text(e, f))
                        .collect::<Vec<_>>()
                        .join("|");
                    e.insert(rows::KEY.into(), Value::String(key));
                }
            }
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[async_trait]
impl Authorize for AsctracConnector {
    async fn authorization(&self) -> Result<String, ConnectorError> {
        let token = self
            .tokens
            .get(self.clock.as_ref(), || self.fetch_token())
            .await?;
        Ok(format!("Bearer {}", token.value))
    }

    async fn refused(&self) -> bool {
        self.tokens.invalidate().await;
        true
    }
}

impl Connector for AsctracConnector {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }

    fn circuit_state(&self) -> ironbridge_model::api::CircuitState {
        self.client.breaker().state()
    }

    fn creates(&self) -> Option<&dyn CreateRecords> {
        Some(self)
    }

    fn updates(&self) -> Option<&dyn UpdateRecords> {
        Some(self)
    }
}

#[async_trait]
impl Source for AsctracConnector {
    async fn check(&self) -> Result<(), ConnectorError> {
        // The audit has no side effects, unlike the outbox GETs (which mark rows sent).
        let url = self.url("InventoryAudit", "aVMICustID=&aSiteID=S0&aItemID=~");
        let response = self.call(reqwest::Method::GET, &url, None).await?;
        match response.status {
            200 => Ok(()),
            _ => Err(unexpected("InventoryAudit", &response)),
        }
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        _window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if let Some((controller, query)) = outbox_of(entity) {
            return self.outbox_page(entity, controller, query).await;
        }
        if entity == Entity::DOCK_APPOINTMENT {
            return self.dock_page(cursor).await;
        }
        if entity != Entity::ITEM && entity != Entity::LOCATION && entity != Entity::INVENTORY_LEVEL
        {
            return Err(ConnectorError::Unsupported(format!(
                "ASCTrac has no {} records",
                entity.spec().label
            )));
        }
        let offset: usize = match cursor {
            None => 0,
            Some(c) => c.parse().map_err(|_| ConnectorError::InvalidSettings {
                param: "cursor".into(),
                message: "the cursor is not one this connector issued".into(),
            })?,
        };
        let all = self.whole(entity).await?;
        let end = (offset + self.page_size * 4).min(all.len());
        let next = (end < all.len()).then(|| end.to_string());
        let page: Vec<Value> = all
            .into_iter()
            .skip(offset)
            .take(end.saturating_sub(offset))
            .collect();
        Ok(RawPage::from_values(page, next))
    }

    async fn acknowledge(&self, entity: Entity, receipt: &str) -> Result<(), ConnectorError> {
        let Some((controller, _)) = outbox_of(entity) else {
            return Err(ConnectorError::Unsupported(format!(
                "{entity} is not read from an outbox"
            )));
        };
        let body: Value =
            serde_json::from_str(receipt).map_err(|_| ConnectorError::InvalidSettings {
                param: "receipt".into(),
                message: "the receipt is not one this connector issued".into(),
            })?;
        let response = self
            .call(reqwest::Method::PUT, &self.url(controller, ""), Some(&body))
            .await?;
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status == 200 && answer["ReturnCode"].as_i64() == Some(200) {
            let rows = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hash(receipt.as_bytes()));
            if let Some(rows) = rows {
                let mut seen = self.acknowledged.lock().unwrap_or_else(|e| e.into_inner());
                let set = seen.entry(controller).or_default();
                // Bounded: the guard needs recent rows only.
                if set.len() > 200_000 {
                    set.clear();
                }
                set.extend(rows);
            }
            Ok(())
        } else {
            Err(ConnectorError::Upstream(format!(
                "{controller} acknowledgement: HTTP {} {}",
                response.status,
                answer["Message"].as_str().unwrap_or("")
            )))
        }
    }

    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.clock.now()))
    }
}

#[async_trait]
impl CreateRecords for AsctracConnector {
    async fn create(&self, entity: Entity, w: &UnifiedWrite) -> Result<Value, ConnectorError> {
        if entity == Entity::ITEM {
            self.create_item(w).await
        } else if entity == Entity::OUTBOUND_ORDER {
            self.create_outbound_order(w).await
        } else if entity == Entity::PURCHASE_ORDER {
            self.create_purchase_order(w).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "ASCTrac cannot create {} records through Ironbridge",
                entity.spec().label
            )))
        }
    }
}

#[async_trait]
impl UpdateRecords for AsctracConnector {
    async fn update(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if entity == Entity::OUTBOUND_ORDER {
            self.update_outbound_order(remote_id, changes).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "ASCTrac cannot update {} records through Ironbridge",
                entity.spec().label
            )))
        }
    }
}
