//! ASCTrac WMS "ASCTrac Interface Service" emulator (target-systems.md §5, sources in
//! docs/emulators/asctrac.md): bearer tokens from `api/Authorize`, the export outboxes read
//! with GET and acknowledged with PUT, `InventoryAudit`, the imports with their validation,
//! partial acceptance and per-type lock, the dock schedule, and every quirk behind a switch.

pub mod data;
pub mod docs;
pub mod exports;
pub mod imports;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::admin::{self, AdminState};
use crate::common::clock::Millis;
use crate::common::gate::{Gate, SystemErrors, Throttle, gate};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};
use data::World;

/// Which bearer forms the filter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthBase64 {
    /// The token exactly as issued (the service's own comparison).
    Raw,
    /// Only base64 of the token (what ASC's test client sends).
    Base64,
    /// Either.
    Both,
}

/// Switches; each quirk is on (faithful) by default. `[I]` marks inferred behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `CFGSETTINGS.GWInterfaceUseAuthentication = 'T'`; off lets every request through.
    pub auth_enabled: bool,
    pub auth_base64: AuthBase64,
    /// The client `api/Authorize` accepts.
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued tokens (`ASCREST_AUTH.END_DATE - START_DATE`) [I].
    pub token_lifetime_secs: i64,
    /// Successful export bodies are `StringContent`: `text/plain; charset=utf-8`.
    pub export_text_plain: bool,
    /// An empty export answers the "No Records Found" `ModelResponse` instead of `[]`.
    pub no_records_object: bool,
    /// Stored `DateTime`s are written without a zone (site wall time); off: UTC with `Z`.
    pub naive_dates: bool,
    /// `DateTime.Now` fields carry the site's offset.
    pub local_offset_now: bool,
    /// Unset `DateTime`s are `0001-01-01T00:00:00`; off: `null`.
    pub min_date_unset: bool,
    /// Whole doubles are written `10.0`.
    pub double_point_zero: bool,
    /// Partial acceptance is HTTP 200 with `ReturnCode 412`; off: HTTP 412.
    pub partial_http_200: bool,
    /// `"\failed"` in import errors is a form feed and `ailed`.
    pub form_feed_in_error: bool,
    /// `GWAPIIncludeProcessingStatus = 'T'`: sent rows are served again until acknowledged.
    /// On by default (the connector requires it); the real default is off.
    pub include_processing_status: bool,
    /// `GWPOMissingItemAction`: 0 refuses the PO, 1 imports the known lines and answers 412,
    /// 2 (the real default) creates skeleton items.
    pub po_missing_item_action: u8,
    /// `InvAuditExportLotId`: audits carry lots (off: `LOTID` is `''`, one row per item).
    pub audit_lot: bool,
    /// Audits leave out rows with no stock.
    pub audit_exclude_zero: bool,
    /// PO and customer-order imports are serialised per type (`static LockObject`).
    pub import_lock: bool,
    /// Fault: every PO and customer-order import takes this long, inside the lock (real ms).
    pub slow_import_ms: u64,
    /// Fault: the database connection cannot be opened (`Database Initialization Failed.`).
    pub db_init_failure: bool,
    /// The site's IANA time zone: its naive times are wall-clock times there, daylight-saving
    /// time included (ASC's own site, Dayton OH, by default).
    pub site_time_zone: String,
    /// `DockSchd` with no appointments answers `successful:false`.
    pub dock_no_records_failure: bool,
    /// Generated facilities (HOST_SITE_ID `01`…); fixed at start.
    pub facilities: u32,
    /// Generated items (`ITEM-000001`…); fixed at start (0: one per 20 seeded events, at least 50).
    pub items: u64,
    /// One warehouse event per this many seconds of the emulator clock; fixed at start.
    pub event_interval_secs: i64,
    /// An order imported with `STATUS_FLAG` `A` and lines is picked complete (`LC`) this long
    /// after its import, on the emulator clock; 0: never [I: a warehouse's pace].
    pub imported_pick_after_secs: i64,
    /// … and confirm-shipped (`CS`) this long after its import; 0: only `CustOrderShipImport`
    /// ships it [I].
    pub imported_ship_after_secs: i64,
    /// A purchase order imported with `STATUS_FLAG` `A` is received in full, one license
    /// plate per line, this long after its import; 0: never [I].
    pub imported_receive_after_secs: i64,
}

impl Settings {
    /// The site's offset from UTC at `ms`, in minutes (UTC for a zone not known, which
    /// `validate` refuses).
    pub fn site_offset_minutes(&self, ms: Millis) -> i32 {
        let Ok(tz) = jiff::tz::TimeZone::get(&self.site_time_zone) else {
            return 0;
        };
        let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
            return 0;
        };
        tz.to_offset(at).seconds() / 60
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auth_enabled: true,
            auth_base64: AuthBase64::Both,
            client_id: "ironbridge".into(),
            client_secret: "asctrac~client~secret".into(),
            token_lifetime_secs: 3600,
            export_text_plain: true,
            no_records_object: true,
            naive_dates: true,
            local_offset_now: true,
            min_date_unset: true,
            double_point_zero: true,
            partial_http_200: true,
            form_feed_in_error: true,
            include_processing_status: true,
            po_missing_item_action: 2,
            audit_lot: false,
            audit_exclude_zero: false,
            import_lock: true,
            slow_import_ms: 0,
            db_init_failure: false,
            site_time_zone: "America/New_York".into(),
            dock_no_records_failure: true,
            facilities: 3,
            items: 0,
            event_interval_secs: 60,
            imported_pick_after_secs: 600,
            imported_ship_after_secs: 1800,
            imported_receive_after_secs: 900,
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.po_missing_item_action > 2 {
            return Err("po_missing_item_action must be 0, 1 or 2".into());
        }
        if !(1..=99).contains(&self.facilities) {
            return Err("facilities must be between 1 and 99".into());
        }
        if self.items > 1_000_000 {
            return Err("items must be at most 1,000,000".into());
        }
        if !(1..=86_400).contains(&self.event_interval_secs) {
            return Err("event_interval_secs must be between 1 and 86,400".into());
        }
        if !(1..=315_360_000).contains(&self.token_lifetime_secs) {
            return Err("token_lifetime_secs must be between 1 and 315,360,000".into());
        }
        if jiff::tz::TimeZone::get(&self.site_time_zone).is_err() {
            return Err("site_time_zone must be an IANA time zone (`America/New_York`)".into());
        }
        for (name, secs) in [
            ("imported_pick_after_secs", self.imported_pick_after_secs),
            ("imported_ship_after_secs", self.imported_ship_after_secs),
            (
                "imported_receive_after_secs",
                self.imported_receive_after_secs,
            ),
        ] {
            if !(0..=31_536_000).contains(&secs) {
                return Err(format!("{name} must be between 0 and 31,536,000"));
            }
        }
        if self.slow_import_ms > 60_000 {
            return Err("slow_import_ms must be at most 60,000".into());
        }
        Ok(())
    }
}

/// A row of `ASCREST_AUTH`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub generation: u64,
}

/// Rows acknowledged (`T`) of one export: every own row below `low`, plus `above`.
#[derive(Debug, Default, Clone)]
pub struct Acked {
    pub low: u64,
    pub above: BTreeSet<u64>,
}

impl Acked {
    pub fn contains(&self, id: u64) -> bool {
        id < self.low || self.above.contains(&id)
    }
}

/// The posted flag of one export's rows: `S` up to a watermark, `T` and `E` recorded.
#[derive(Debug, Default, Clone)]
pub struct Flag {
    /// Log rows with an id at or below this were served (`S`) unless acknowledged or rejected.
    pub sent_upto: u64,
    /// The same watermark for document events (ids from [`docs::DOC_BASE`]), which are
    /// numbered apart from the log and served after it.
    pub doc_sent_upto: u64,
    pub acked: Acked,
    /// Rows rejected (`E`) with their `ERR_MESSAGE`.
    pub errors: BTreeMap<u64, String>,
    /// `S → T` transitions (each row's acknowledgement, counted once).
    pub transitions: u64,
    /// Acknowledgements that matched no `S` row (already `T`, never served, unknown keys).
    pub no_ops: u64,
}

impl Flag {
    /// Whether row `id` (a log row or a document event) was served.
    pub fn served(&self, id: u64) -> bool {
        if docs::is_doc(id) {
            id <= self.doc_sent_upto
        } else {
            id <= self.sent_upto
        }
    }
}

/// A customer order written through `CustOrderImport`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderDoc {
    pub facility: String,
    pub status_flag: String,
    /// When it was first imported (emulator clock): its pick and ship are due from here.
    pub imported_ms: Millis,
    /// Picked complete (an `LC` row was written); a picked order cannot be cancelled.
    pub picked: bool,
    pub shipped: bool,
    pub cancelled: bool,
    pub lines: Vec<Value>,
    pub body: Value,
}

/// A purchase order written through `POImport`.
#[derive(Debug, Clone, Serialize)]
pub struct PoDoc {
    pub facility: String,
    pub status_flag: String,
    /// When it was first imported (emulator clock): its receipt is due from here.
    pub imported_ms: Millis,
    /// Received in full (its license plates were written).
    pub received: bool,
    pub body: Value,
}

/// An item written through `ItemMasterImport` (or created as a skeleton by `POImport`).
#[derive(Debug, Clone, Serialize)]
pub struct ItemDoc {
    pub facility: String,
    pub description: String,
    pub uom: String,
    pub cost: f64,
    pub status_flag: String,
}

/// Stock per (facility, item, lot): on hand, allocated, on hold, folded from the event log
/// and the document events.
#[derive(Debug, Default)]
pub struct Stock {
    pub folded: u64,
    /// Document events folded so far (`Db::docs[..docs_folded]`).
    pub docs_folded: usize,
    pub levels: BTreeMap<(u32, String, String), [i64; 3]>,
}

/// The emulated site's tables.
#[derive(Debug)]
pub struct Db {
    pub world: World,
    pub flags: HashMap<exports::Export, Flag>,
    pub items: BTreeMap<String, ItemDoc>,
    pub pos: BTreeMap<String, PoDoc>,
    pub orders: BTreeMap<String, OrderDoc>,
    pub stock: Stock,
    /// What the warehouse did with imported documents (picks, ships, receipts), in the order
    /// it happened; event `i` has id [`docs::doc_id`]`(i)`. See [`docs`].
    pub docs: Vec<data::Event>,
}

pub struct AscState {
    pub core: Arc<Core>,
    pub settings: RwLock<Settings>,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    pub db: Mutex<Db>,
    /// `POImportController.LockObject` and `CustOrderImportController.LockObject`.
    pub po_lock: tokio::sync::Mutex<()>,
    pub co_lock: tokio::sync::Mutex<()>,
    /// Imports running now, and the most that ever ran at once, per type (PO, CO).
    pub running: Mutex<[(u32, u32); 2]>,
}

impl AscState {
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tables as they are at `now`: what the warehouse did with imported documents by
    /// then is written first, so every reader and writer sees the same history whenever it
    /// looks (see [`docs::advance`]).
    pub fn db_at(&self, now: Millis) -> std::sync::MutexGuard<'_, Db> {
        let settings = self.settings();
        let mut db = self.db();
        docs::advance(&mut db, &settings, now);
        db
    }

    /// Whether `code` is an item of the site (generated or imported).
    pub fn item_exists(&self, db: &Db, code: &str) -> bool {
        if db.items.contains_key(code) {
            return true;
        }
        code.strip_prefix("ITEM-")
            .filter(|d| d.len() == 6)
            .and_then(|d| d.parse::<u64>().ok())
            .is_some_and(|k| k >= 1 && k <= db.world.items)
    }

    /// The facility number of a HOST_SITE_ID.
    pub fn facility(&self, db: &Db, host_site_id: &str) -> Option<u32> {
        (1..=db.world.facilities).find(|&k| data::host_site(k) == host_site_id)
    }
}

pub type Asc = Arc<AscState>;

struct Hooks(Asc);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut g = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*g, &patch)?;
        next.validate()?;
        if (next.facilities, next.items, next.event_interval_secs)
            != (g.facilities, g.items, g.event_interval_secs)
        {
            return Err("facilities, items and event_interval_secs are fixed at start".into());
        }
        *g = next;
        serde_json::to_value(&*g).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let s = self.0.settings();
        let g = self.0.core.auth.generation();
        json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "client_id": s.client_id,
            "client_secret": rotated_secret(&s.client_secret, g),
        })
    }
}

/// Throttling and server errors as IIS and Web API answer them.
struct AscErrors;

impl SystemErrors for AscErrors {
    fn too_many_requests(&self, _why: Throttle, retry_after_secs: Option<u64>) -> Response {
        let mut r = wire::error_message(429, "Too many requests.");
        if let Some(s) = retry_after_secs
            && let Ok(v) = s.to_string().parse()
        {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    }

    fn server_error(&self, status: StatusCode) -> Response {
        wire::error_message(status.as_u16(), "An error has occurred.")
    }
}

/// `GET /__emulator/asctrac/outbox`: per export, rows new (`F`), sent (`S`), acknowledged
/// (`T`) and rejected (`E`), with the acknowledgement transitions and no-op acknowledgements.
async fn outbox(State(asc): State<Asc>) -> Response {
    let now = asc.core.clock.now_ms();
    let db = asc.db_at(now);
    let mut out = serde_json::Map::new();
    for export in exports::Export::ALL {
        out.insert(export.name().into(), exports::counts(&db, export, now));
    }
    axum::Json(Value::Object(out)).into_response()
}

/// `GET /__emulator/asctrac/records`: what imports wrote (items, purchase orders, customer
/// orders) and the imports' concurrency.
async fn records(State(asc): State<Asc>) -> Response {
    let running = *asc.running.lock().unwrap_or_else(|e| e.into_inner());
    let now = asc.core.clock.now_ms();
    let db = asc.db_at(now);
    axum::Json(json!({
        "items": db.items,
        "purchase_orders": db.pos,
        "customer_orders": db.orders,
        "max_concurrent_imports": {"po": running[0].1, "customer_order": running[1].1},
        "events": db.world.visible(now),
        "document_events": db.docs.len(),
    }))
    .into_response()
}

pub fn app(core: Arc<Core>, settings: Settings, initial_events: u64) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let items = if settings.items == 0 {
        (initial_events / 20).clamp(50, 100_000)
    } else {
        settings.items
    };
    let world = World {
        seed: core.seed,
        start_ms: core.clock.now_ms(),
        initial: initial_events,
        interval_ms: settings.event_interval_secs * 1000,
        facilities: settings.facilities,
        items,
    };
    let mut settings = settings;
    settings.items = items;
    let asc: Asc = Arc::new(AscState {
        core: core.clone(),
        settings: RwLock::new(settings),
        tokens: Mutex::new(HashMap::new()),
        db: Mutex::new(Db {
            world,
            flags: HashMap::new(),
            items: BTreeMap::new(),
            pos: BTreeMap::new(),
            orders: BTreeMap::new(),
            stock: Stock::default(),
            docs: Vec::new(),
        }),
        po_lock: tokio::sync::Mutex::new(()),
        co_lock: tokio::sync::Mutex::new(()),
        running: Mutex::new([(0, 0); 2]),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(AscErrors));
    let api = Router::new()
        .route("/api/{controller}", any(dispatch))
        .route("/api/{controller}/", any(dispatch))
        .route("/api/{controller}/{id}", any(dispatch))
        .with_state(asc.clone())
        .layer(from_fn_with_state(gate_state, gate));
    let extra = Router::new()
        .route("/__emulator/asctrac/outbox", get(outbox))
        .route("/__emulator/asctrac/records", get(records))
        .with_state(asc.clone());
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(asc)),
        system: "asctrac",
    };
    Ok(admin::router(admin_state).merge(extra).merge(api))
}

/// Routes `api/{controller}` case-insensitively, as Web API does.
async fn dispatch(
    State(asc): State<Asc>,
    axum::extract::Path(params): axum::extract::Path<HashMap<String, String>>,
    method: axum::http::Method,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let controller = params
        .get("controller")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let query = Query::parse(query.as_deref().unwrap_or(""));
    let req = Req {
        asc: &asc,
        method: &method,
        query: &query,
        headers: &headers,
        body: &body,
    };
    match controller.as_str() {
        "authorize" => imports::authorize(&req),
        "poimport" => imports::po_import(&req).await,
        "custorderimport" => imports::cust_order_import(&req).await,
        "itemmasterimport" => imports::item_master_import(&req),
        "custordershipimport" => imports::cust_order_ship_import(&req),
        "dockschd" => imports::dock_schedule(&req),
        "inventoryaudit" => exports::inventory_audit(&req),
        other => match exports::Export::parse(other) {
            Some(export) => exports::export(&req, export),
            None => wire::error_message(
                404,
                &format!(
                    "No HTTP resource was found that matches the request URI '{}'.",
                    asc.core.origin(&headers)
                ),
            ),
        },
    }
}

/// A request's parts the handlers read.
pub struct Req<'a> {
    pub asc: &'a Asc,
    pub method: &'a axum::http::Method,
    pub query: &'a Query,
    pub headers: &'a axum::http::HeaderMap,
    pub body: &'a axum::body::Bytes,
}

/// Query parameters, names compared case-insensitively as Web API binds them.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name`, if given (an empty value is given).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}
