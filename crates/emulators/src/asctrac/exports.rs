//! The export controllers: each GET selects its rows from the TRANFILE log (new `F`, and sent
//! `S` ones too with `GWAPIIncludeProcessingStatus`), marks them `S`, and answers them as one
//! JSON array streamed in chunks (so the emulator's memory stays flat whatever the outbox
//! holds); the PUT of the same controller acknowledges rows by their business keys (`T`, or
//! `E` when `SUCCESSFUL` is false), only where they are `S`, and answers 200 whatever matched.
//! `InventoryAudit` is a snapshot of stock folded from the log, with no flag and no PUT.
//! Document events (what the warehouse did with imported documents, `super::docs`) are rows
//! of the same exports with the same flags, served after the log's rows.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::{Map, Value, json};

use super::data::{Event, EventKind, World, host_site};
use super::docs::{self, doc_id, doc_index};
use super::wire::{self, date, double, now_date, unset_date};
use super::{Asc, Db, Flag, Req, Settings};
use crate::common::clock::Millis;

/// Rows per chunk of a streamed export answer.
const CHUNK_ROWS: usize = 256;

/// The outbox exports emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Export {
    /// `POLicensesExport`: one row per license plate received (`RX`), flag `POSTED`.
    PoLicenses,
    /// `TranFileExport`: adjustments, transfers and scrap (`AD`, `TZ`, `SC`), flag `POSTED`.
    TranFile,
    /// `CustOrderExport`: one header per confirm-ship (`CS`) with picks, containers and
    /// serials, flag `POSTED`.
    CustOrder,
    /// `CustOrderStatusExport`: `LC`, `LO` and `CS` status rows, flag `POSTED3`.
    CustOrderStatus,
}

impl Export {
    pub const ALL: [Export; 4] = [
        Export::PoLicenses,
        Export::TranFile,
        Export::CustOrder,
        Export::CustOrderStatus,
    ];

    /// The controller's name.
    pub fn name(self) -> &'static str {
        match self {
            Export::PoLicenses => "POLicensesExport",
            Export::TranFile => "TranFileExport",
            Export::CustOrder => "CustOrderExport",
            Export::CustOrderStatus => "CustOrderStatusExport",
        }
    }

    /// The export of a lower-case controller name.
    pub fn parse(lower: &str) -> Option<Export> {
        Export::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(lower))
    }

    /// Whether event `kind` is one of this export's rows.
    pub fn selects(self, kind: EventKind) -> bool {
        match self {
            Export::PoLicenses => kind == EventKind::Receipt,
            Export::TranFile => matches!(kind, EventKind::Movement(_)),
            Export::CustOrder => kind == EventKind::Ship,
            Export::CustOrderStatus => matches!(kind, EventKind::Status(_) | EventKind::Ship),
        }
    }

    /// The query parameters its query overload takes; without them Web API picks the
    /// body-bound overload, whose null filter throws.
    fn query_params(self) -> &'static [&'static str] {
        match self {
            Export::PoLicenses => &["aOnlySendCompletedReceipt"],
            Export::TranFile => &["aCustID", "aExcludeTrantype"],
            Export::CustOrder | Export::CustOrderStatus => &["aCustID"],
        }
    }
}

const NRE: &str = "Object reference not set to an instance of an object.";

/// `GET` or `PUT` of an export controller.
pub fn export(req: &Req<'_>, export: Export) -> Response {
    if let Some(r) = wire::refused(req.asc, req.headers) {
        return r;
    }
    let s = req.asc.settings();
    if s.db_init_failure {
        return init_failure();
    }
    match *req.method {
        Method::GET => {
            if export
                .query_params()
                .iter()
                .any(|p| req.query.get(p).is_none())
            {
                return wire::error_message(400, NRE);
            }
            get(req.asc, export, &s)
        }
        Method::PUT => put(req, export),
        _ => wire::error_message(405, "The requested resource does not support http method."),
    }
}

fn init_failure() -> Response {
    wire::error_message(
        500,
        "Initialize Connection Exception: Database Initialization Failed. (Status: Web.Config)",
    )
}

/// Whether row `n` is one of `export`'s rows served by a GET now.
fn selected(
    world: &World,
    flag: &Flag,
    export: Export,
    n: u64,
    prior_sent: u64,
    include_sent: bool,
) -> bool {
    let id = n + 1;
    export.selects(world.kind(n))
        && !flag.acked.contains(id)
        && !flag.errors.contains_key(&id)
        && (include_sent || id > prior_sent)
}

/// Whether document event `e` is one of `export`'s rows served by a GET now.
fn doc_selected(flag: &Flag, export: Export, e: &Event, prior_sent: u64, include: bool) -> bool {
    export.selects(e.kind)
        && !flag.acked.contains(e.id)
        && !flag.errors.contains_key(&e.id)
        && (include || e.id > prior_sent)
}

fn get(asc: &Asc, export: Export, s: &Settings) -> Response {
    let now = asc.core.clock.now_ms();
    let (start, end, prior, doc_rows, doc_prior) = {
        let mut db = asc.db_at(now);
        let db = &mut *db;
        let world = db.world;
        let visible = world.visible(now);
        let flag = db.flags.entry(export).or_default();
        let prior = flag.sent_upto;
        let start = flag.acked.low.saturating_sub(1);
        let first = (start..visible)
            .find(|&n| selected(&world, flag, export, n, prior, s.include_processing_status));
        let doc_prior = flag.doc_sent_upto;
        let mut doc_rows: Vec<usize> = (0..db.docs.len())
            .filter(|&i| {
                doc_selected(
                    flag,
                    export,
                    &db.docs[i],
                    doc_prior,
                    s.include_processing_status,
                )
            })
            .collect();
        if first.is_none() && doc_rows.is_empty() {
            return wire::no_records(s);
        }
        if export == Export::CustOrderStatus {
            // `ORDER BY ORDERNUM, ID` among the document rows too: an order's rows stay together.
            doc_rows.sort_by(|&a, &b| (&db.docs[a].order, a).cmp(&(&db.docs[b].order, b)));
        }
        // Every selected row is marked sent before the answer goes out (`ProcessUpdates`).
        if first.is_some() {
            flag.sent_upto = flag.sent_upto.max(visible);
        }
        if !db.docs.is_empty() {
            flag.doc_sent_upto = flag.doc_sent_upto.max(doc_id(db.docs.len() - 1));
        }
        (
            first.unwrap_or(visible),
            visible,
            prior,
            doc_rows,
            doc_prior,
        )
    };
    let body = ExportBody {
        asc: asc.clone(),
        export,
        settings: s.clone(),
        next: start,
        end,
        prior_sent: prior,
        doc_rows,
        doc_next: 0,
        doc_prior_sent: doc_prior,
        first: true,
        done: false,
        now,
    };
    let mut r = Response::new(Body::new(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, wire::export_content_type(s));
    r
}

/// An export's JSON array, rendered a chunk of rows at a time as the client reads it.
struct ExportBody {
    asc: Asc,
    export: Export,
    settings: Settings,
    next: u64,
    end: u64,
    prior_sent: u64,
    /// Document events selected when the GET began (indices in `Db::docs`), served after
    /// the log's rows.
    doc_rows: Vec<usize>,
    doc_next: usize,
    doc_prior_sent: u64,
    first: bool,
    done: bool,
    now: Millis,
}

impl http_body::Body for ExportBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::with_capacity(64 * 1024);
        if self.first {
            out.push(b'[');
        }
        let mut rows = 0;
        {
            let this = &mut *self;
            let db = this.asc.db();
            let world = db.world;
            let empty = Flag::default();
            let flag = db.flags.get(&this.export).unwrap_or(&empty);
            // Status rows go out `ORDER BY ORDERNUM, ID`: `next` walks order numbers, whose
            // rows are events `m - 40 ..= m` (see `World::event`); the others walk the log.
            let by_order = this.export == Export::CustOrderStatus;
            let last = if by_order { this.end + 40 } else { this.end };
            while this.next < last && rows < CHUNK_ROWS {
                let m = this.next;
                this.next += 1;
                let events: Vec<u64> = if by_order {
                    (m.saturating_sub(40)..=m.min(this.end.saturating_sub(1)))
                        .filter(|&n| match world.kind(n) {
                            EventKind::Ship => n == m,
                            EventKind::Status(_) => world.event(n).order == format!("SO{m:07}"),
                            _ => false,
                        })
                        .collect()
                } else {
                    vec![m]
                };
                for n in events {
                    if n >= this.end
                        || !selected(
                            &world,
                            flag,
                            this.export,
                            n,
                            this.prior_sent,
                            this.settings.include_processing_status,
                        )
                    {
                        continue;
                    }
                    if !this.first {
                        out.push(b',');
                    }
                    this.first = false;
                    let row = render(&this.settings, this.export, &world.event(n), this.now);
                    // Rows are maps of plain values: serialising one cannot fail.
                    let _ = serde_json::to_writer(&mut out, &row);
                    rows += 1;
                }
            }
            while this.next >= last && this.doc_next < this.doc_rows.len() && rows < CHUNK_ROWS {
                let i = this.doc_rows[this.doc_next];
                this.doc_next += 1;
                // Checked again: a PUT may have acknowledged it since the GET began.
                let Some(e) = db.docs.get(i).filter(|e| {
                    doc_selected(
                        flag,
                        this.export,
                        e,
                        this.doc_prior_sent,
                        this.settings.include_processing_status,
                    )
                }) else {
                    continue;
                };
                if !this.first {
                    out.push(b',');
                }
                this.first = false;
                let row = render(&this.settings, this.export, e, this.now);
                let _ = serde_json::to_writer(&mut out, &row);
                rows += 1;
            }
            if this.next >= last && this.doc_next >= this.doc_rows.len() {
                out.push(b']');
                this.done = true;
            }
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// One export row, with the model's fields and types.
pub fn render(st: &Settings, export: Export, e: &Event, now: Millis) -> Value {
    let mut m = Map::new();
    let facility = host_site(e.facility);
    let put = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    // Every acknowledgeable row carries the two fields the PUT sends back.
    put(&mut m, "SUCCESSFUL", Value::Bool(false));
    put(&mut m, "ERROR_MESSAGE", s(""));
    match export {
        Export::PoLicenses => {
            put(&mut m, "ID", json!(0));
            put(&mut m, "FACILITY", s(&facility));
            put(&mut m, "PRODUCT_CODE", s(&e.item));
            put(&mut m, "QUANTITY", double(st, e.qty as f64));
            put(&mut m, "UOM", s("EA"));
            put(&mut m, "DATE_TIME", date(st, e.at));
            put(&mut m, "TRANS_TYPE", s("RL"));
            put(&mut m, "CW_QTY", double(st, 0.0));
            put(&mut m, "CW_UOM", Value::Null);
            put(&mut m, "REASON_CODE", Value::Null);
            put(&mut m, "LOTID", s(&e.lot));
            put(&mut m, "ORDERNUMBER", s(&e.order));
            put(&mut m, "LINE_NUMBER", double(st, e.line as f64));
            put(&mut m, "EXPDATE", unset_date(st));
            put(&mut m, "VMI_CUSTID", s(""));
            put(&mut m, "SKIDID", s(&e.skid));
            put(&mut m, "TO_LOCATION", s(&e.to_bin));
            put(&mut m, "RECVDATETIME", date(st, e.at));
            put(&mut m, "VENDORID", s(&e.vendor));
            put(&mut m, "RECEIVER_NO", s(&e.receiver));
            put(&mut m, "STOCK_UOM", s("EA"));
            put(&mut m, "USERID", s(&e.user));
            put(&mut m, "RELEASENUM", s(""));
            put(&mut m, "COST_EACH", double(st, 0.0));
        }
        Export::TranFile => {
            put(&mut m, "CREATE_DATETIME", date(st, e.at));
            put(&mut m, "FACILITY", s(&facility));
            put(&mut m, "PRODUCT_CODE", s(&e.item));
            put(&mut m, "QUANTITY", double(st, e.qty as f64));
            put(&mut m, "DATE_TIME", date(st, e.at));
            put(&mut m, "TRANS_TYPE", s(e.kind.trantype()));
            put(&mut m, "CW_QTY", double(st, 0.0));
            put(&mut m, "REASON_CODE", s(&e.reason));
            put(&mut m, "LOTID", s(&e.lot));
            put(&mut m, "ORDERNUMBER", s(""));
            put(&mut m, "LINE_NUMBER", double(st, 0.0));
            put(&mut m, "EXPDATE", unset_date(st));
            put(&mut m, "VMI_CUSTID", s(""));
            put(&mut m, "SKIDID", s(""));
            put(&mut m, "WHSE_ID", s("MAIN"));
            put(&mut m, "FROM_LOCATION", s(&e.from_bin));
            put(&mut m, "TO_LOCATION", s(&e.to_bin));
            put(&mut m, "USERID", s(&e.user));
            put(&mut m, "STOCK_UOM", s("EA"));
            put(&mut m, "COMMENTS", Value::Null);
            put(&mut m, "COST_EACH", double(st, 0.0));
            put(&mut m, "TRANFILE_REC_ID", double(st, e.id as f64));
        }
        Export::CustOrder => {
            let bol = format!("BOL{:07}", e.id);
            put(&mut m, "CREATE_DATETIME", date(st, e.at));
            put(&mut m, "FROM_FACILITY", s(&facility));
            put(&mut m, "FACILITY", s(&facility));
            put(&mut m, "SHIPMENT_NUMBER", s(&bol));
            put(&mut m, "ORDER_TYPE", s("C"));
            put(&mut m, "ORDERNUMBER", s(&e.order));
            put(&mut m, "CUST_ID", s(&e.customer));
            put(&mut m, "INVOICE_DATE", unset_date(st));
            let (cust_po, carrier, service) = match &e.ship_ref {
                Some(r) => (r.cust_po.clone(), r.carrier.clone(), r.service.clone()),
                None => (format!("CPO{}", e.id), "UPSF".into(), "GND".into()),
            };
            put(&mut m, "CUST_PO_NUM", s(&cust_po));
            put(
                &mut m,
                "FREIGHT_COST",
                double(st, (e.id % 200) as f64 + 0.5),
            );
            put(&mut m, "PRO_NUMBER", s(&format!("PRO{:08}", e.id)));
            put(&mut m, "SALESORDERNUMBER", s(&format!("S-{}", e.order)));
            put(&mut m, "LOCKED_FLAG", s("L"));
            put(&mut m, "USERID", s(&e.user));
            put(&mut m, "CARRIER", s(&carrier));
            put(&mut m, "CARRIER_SERVICE_CODE", s(&service));
            let picks: Vec<Value> = e
                .picks
                .iter()
                .map(|p| {
                    json!({
                        "CREATE_DATETIME": date(st, e.at), "SHIPMENT_NUMBER": bol,
                        "LINE_NUMBER": p.line, "PRODUCT_CODE": p.item,
                        "EXT_PRICE": double(st, p.price_cents as f64 * p.shipped as f64 / 100.0),
                        "QTY_ORDERED": double(st, p.ordered as f64),
                        "QTY_SHIPPED": double(st, p.shipped as f64),
                        "CW_QTY": double(st, 0.0), "CW_UOM": Value::Null, "ITEM_NUMBER": p.item,
                        "LOTID": p.lot, "HOST_UOM": "EA", "PICK_OPR": e.user,
                        "SOLD_PRICE": double(st, p.price_cents as f64 / 100.0),
                    })
                })
                .collect();
            let containers: Vec<Value> = e
                .containers
                .iter()
                .map(|(id, kind, weight)| {
                    json!({"CREATE_DATETIME": date(st, e.at), "SHIPMENT_NUMBER": bol,
                        "CONTAINER_ID": id, "PALLET_TYPE": kind,
                        "TOTAL_WEIGHT": double(st, *weight as f64 / 10.0)})
                })
                .collect();
            let serials: Vec<Value> = e
                .serials
                .iter()
                .map(|(line, serial, item)| {
                    json!({"CREATE_DATETIME": date(st, e.at), "ORDER_LINENUM": line,
                        "SER_NUM": serial, "ITEMID": item, "LOTID": "", "QTY": double(st, 1.0)})
                })
                .collect();
            put(&mut m, "PicksList", Value::Array(picks));
            put(&mut m, "ContainersList", Value::Array(containers));
            put(&mut m, "SerialsList", Value::Array(serials));
        }
        Export::CustOrderStatus => {
            put(&mut m, "CREATE_DATETIME", now_date(st, now));
            put(&mut m, "FACILITY", s(&facility));
            put(&mut m, "ORDERNUMBER", s(&e.order));
            put(&mut m, "RESCHEDULED_FLAG", s("F"));
            put(&mut m, "ORDER_TYPE", s("C"));
            let status = match e.kind {
                EventKind::Status("LC") => "C",
                EventKind::Status(_) => "L",
                _ => "S",
            };
            put(&mut m, "PICKSTATUS", s(status));
            put(&mut m, "NEWDATETIME", unset_date(st));
            put(&mut m, "ORIGINALDATETIME", unset_date(st));
            put(&mut m, "CUSTOMERID", s(&e.customer));
            put(&mut m, "VENDORID", s(""));
            put(&mut m, "TRANSACTION_DATE", date(st, e.at));
        }
    }
    Value::Object(m)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether receipt `e` is the one an acknowledgement's keys name.
fn same_receipt(e: &Event, ack: &Value) -> bool {
    let line_ok = number(ack, "LINE_NUMBER").is_none_or(|l| l as i64 == e.line);
    text(ack, "ORDERNUMBER") == e.order
        && text(ack, "PRODUCT_CODE") == e.item
        && text(ack, "LOTID") == e.lot
        && text(ack, "RECEIVER_NO") == e.receiver
        && line_ok
}

/// The rows an acknowledgement's keys name (`SetPosted`'s `WHERE`), before the flag test:
/// log rows, and document events.
fn matches(world: &World, docs: &[Event], visible: u64, export: Export, ack: &Value) -> Vec<u64> {
    let own = |n: u64| n < visible && export.selects(world.kind(n));
    match export {
        Export::TranFile => number(ack, "TRANFILE_REC_ID")
            .filter(|id| *id >= 1.0 && id.fract() == 0.0)
            .map(|id| id as u64 - 1)
            .filter(|&n| own(n))
            .map(|n| vec![n + 1])
            .unwrap_or_default(),
        Export::PoLicenses => {
            let Some(id) = text(ack, "SKIDID")
                .strip_prefix("LP")
                .and_then(|d| d.parse::<u64>().ok())
            else {
                return Vec::new();
            };
            let e = if docs::is_doc(id) {
                doc_index(id)
                    .and_then(|i| docs.get(i))
                    .filter(|e| export.selects(e.kind))
                    .cloned()
            } else {
                id.checked_sub(1)
                    .filter(|&n| own(n))
                    .map(|n| world.event(n))
            };
            match e {
                Some(e) if same_receipt(&e, ack) => vec![e.id],
                _ => Vec::new(),
            }
        }
        Export::CustOrder | Export::CustOrderStatus => {
            let order = text(ack, "ORDERNUMBER");
            // One acknowledgement covers every row of the order, generated or not.
            let mut ids: Vec<u64> =
                match order.strip_prefix("SO").and_then(|d| d.parse::<u64>().ok()) {
                    // Status rows of order `m` are events `m - 40 ..= m` (see `World::event`).
                    Some(m) => (m.saturating_sub(40)..=m)
                        .filter(|&n| own(n) && world.event(n).order == order)
                        .map(|n| n + 1)
                        .collect(),
                    None => Vec::new(),
                };
            ids.extend(
                docs.iter()
                    .filter(|e| export.selects(e.kind) && e.order == order)
                    .map(|e| e.id),
            );
            ids
        }
    }
}

fn put(req: &Req<'_>, export: Export) -> Response {
    let Ok(Value::Array(acks)) = serde_json::from_slice::<Value>(req.body) else {
        return wire::json_answer(400, &wire::model_response(400, NRE));
    };
    // `SetPosted` reads `ERROR_MESSAGE.Length` before it branches: a null throws.
    if acks.iter().any(|a| {
        a.get("ERROR_MESSAGE").is_some_and(Value::is_null)
            || a.get("ErrorMessage").is_some_and(Value::is_null)
    }) {
        return wire::json_answer(400, &wire::model_response(400, NRE));
    }
    let now = req.asc.core.clock.now_ms();
    let mut db = req.asc.db_at(now);
    let db = &mut *db;
    let world = db.world;
    let visible = world.visible(now);
    for ack in &acks {
        let successful = ack
            .get("SUCCESSFUL")
            .or_else(|| ack.get("Successful"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let message = text(ack, "ERROR_MESSAGE");
        let ids = matches(&world, &db.docs, visible, export, ack);
        let flag = db.flags.entry(export).or_default();
        if ids.is_empty() {
            flag.no_ops += 1;
        }
        for id in ids {
            let sent =
                flag.served(id) && !flag.acked.contains(id) && !flag.errors.contains_key(&id);
            if !sent {
                flag.no_ops += 1;
                continue;
            }
            if successful {
                flag.acked.above.insert(id);
                flag.transitions += 1;
            } else {
                flag.errors.insert(id, message.clone());
            }
        }
        compact(&world, visible, export, flag);
    }
    wire::json_answer(200, &wire::model_response(200, ""))
}

/// Moves the low-water mark of acknowledged rows past every own row acknowledged in order,
/// so acknowledging an outbox front to back keeps the set small.
fn compact(world: &World, visible: u64, export: Export, flag: &mut Flag) {
    loop {
        let from = flag.acked.low.max(1) - 1;
        let Some(n) = (from..visible).find(|&n| export.selects(world.kind(n))) else {
            return;
        };
        if flag.acked.above.remove(&(n + 1)) {
            flag.acked.low = n + 2;
        } else {
            if flag.acked.low < n + 1 {
                flag.acked.low = n + 1;
            }
            return;
        }
    }
}

/// Row counts by flag value for the admin API.
pub fn counts(db: &Db, export: Export, now: Millis) -> Value {
    let world = db.world;
    let empty = Flag::default();
    let flag = db.flags.get(&export).unwrap_or(&empty);
    let (mut f, mut s, mut t, mut e_count) = (0u64, 0u64, 0u64, 0u64);
    for n in 0..world.visible(now) {
        if !export.selects(world.kind(n)) {
            continue;
        }
        let id = n + 1;
        if flag.acked.contains(id) {
            t += 1;
        } else if flag.errors.contains_key(&id) {
            e_count += 1;
        } else if id <= flag.sent_upto {
            s += 1;
        } else {
            f += 1;
        }
    }
    for e in db.docs.iter().filter(|e| export.selects(e.kind)) {
        if flag.acked.contains(e.id) {
            t += 1;
        } else if flag.errors.contains_key(&e.id) {
            e_count += 1;
        } else if flag.served(e.id) {
            s += 1;
        } else {
            f += 1;
        }
    }
    json!({"F": f, "S": s, "T": t, "E": e_count,
        "acknowledged": flag.transitions, "no_op_acknowledgements": flag.no_ops})
}

/// Folds the log into stock up to `visible` events.
fn fold(db: &mut Db, visible: u64) {
    let world = db.world;
    if db.stock.folded == 0 && db.stock.levels.is_empty() {
        for f in 1..=world.facilities {
            for k in 1..=world.items {
                let (a, b, c) = world.base_stock(f, k);
                db.stock
                    .levels
                    .insert((f, super::data::item_code(k), world.lot(k, 0)), [a, b, c]);
            }
        }
    }
    for n in db.stock.folded..visible {
        let kind = world.kind(n);
        if matches!(kind, EventKind::Status(_)) {
            continue;
        }
        let e = world.event(n);
        let mut apply = |item: &str, lot: &str, d: i64| {
            let level = db
                .stock
                .levels
                .entry((e.facility, item.to_string(), lot.to_string()))
                .or_insert([0; 3]);
            level[0] = (level[0] + d).max(0);
            level[1] = level[1].min(level[0]);
        };
        match kind {
            EventKind::Ship => {
                for p in &e.picks {
                    apply(&p.item, &p.lot, -p.shipped);
                }
            }
            EventKind::Movement("TZ") => {}
            _ => apply(&e.item, &e.lot, e.qty),
        }
    }
    db.stock.folded = db.stock.folded.max(visible);
    // Document events, in the order they happened (the log's fold clamps at zero too).
    for i in db.stock.docs_folded..db.docs.len() {
        let e = &db.docs[i];
        let changes: Vec<(String, String, i64)> = match e.kind {
            EventKind::Receipt => vec![(e.item.clone(), e.lot.clone(), e.qty)],
            EventKind::Ship => e
                .picks
                .iter()
                .map(|p| (p.item.clone(), p.lot.clone(), -p.shipped))
                .collect(),
            _ => Vec::new(),
        };
        let facility = e.facility;
        for (item, lot, d) in changes {
            let level = db
                .stock
                .levels
                .entry((facility, item, lot))
                .or_insert([0; 3]);
            level[0] = level[0].saturating_add(d).max(0);
            level[1] = level[1].min(level[0]);
        }
    }
    db.stock.docs_folded = db.docs.len();
}

/// `GET InventoryAudit?aVMICustID=&aSiteID=&aItemID=`: stock summed per facility, item (and
/// lot with `audit_lot`), plus imported items without stock.
pub fn inventory_audit(req: &Req<'_>) -> Response {
    if let Some(r) = wire::refused(req.asc, req.headers) {
        return r;
    }
    let st = req.asc.settings();
    if *req.method != Method::GET {
        return wire::error_message(405, "The requested resource does not support http method.");
    }
    let (Some(_vmi), Some(site), Some(item)) = (
        req.query.get("aVMICustID"),
        req.query.get("aSiteID"),
        req.query.get("aItemID"),
    ) else {
        return wire::error_message(
            404,
            "No HTTP resource was found that matches the request URI. No action was found on the controller 'InventoryAudit' that matches the request.",
        );
    };
    if st.db_init_failure {
        return init_failure();
    }
    let now = req.asc.core.clock.now_ms();
    let mut db = req.asc.db_at(now);
    let visible = db.world.visible(now);
    fold(&mut db, visible);
    // `aSiteID` is the internal SITE_ID (`S1`), not the HOST_SITE_ID.
    let site_filter: Option<u32> = if site.is_empty() {
        None
    } else {
        match site.strip_prefix('S').and_then(|d| d.parse().ok()) {
            Some(k) => Some(k),
            None => return wire::no_records(&st),
        }
    };
    let mut grouped: std::collections::BTreeMap<(u32, String, String), [i64; 3]> =
        std::collections::BTreeMap::new();
    for ((f, code, lot), q) in &db.stock.levels {
        if site_filter.is_some_and(|k| k != *f) || (!item.is_empty() && item != code) {
            continue;
        }
        let lot = if st.audit_lot {
            lot.clone()
        } else {
            String::new()
        };
        let g = grouped.entry((*f, code.clone(), lot)).or_insert([0; 3]);
        for i in 0..3 {
            g[i] += q[i];
        }
    }
    for (code, doc) in &db.items {
        let Some(f) = req.asc.facility(&db, &doc.facility) else {
            continue;
        };
        if site_filter.is_some_and(|k| k != f) || (!item.is_empty() && item != code) {
            continue;
        }
        grouped
            .entry((f, code.clone(), String::new()))
            .or_insert([0; 3]);
    }
    let world = db.world;
    let mut rows = Vec::with_capacity(grouped.len());
    for ((f, code, lot), q) in grouped {
        if st.audit_exclude_zero && q[0] == 0 {
            continue;
        }
        let (uom, cost) = match db.items.get(&code) {
            Some(doc) => (doc.uom.clone(), doc.cost),
            None => {
                let k: u64 = code
                    .strip_prefix("ITEM-")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(1);
                let it = world.item(k);
                (it.uom.to_string(), it.cost_cents as f64 / 100.0)
            }
        };
        rows.push(json!({
            "FACILITY": host_site(f), "PRODUCT_CODE": code,
            "QUANTITY": double(&st, q[0] as f64), "CW_QTY": double(&st, 0.0), "CW_UOM": Value::Null,
            "LOTID": lot, "QTY_ALLOCATED": double(&st, q[1] as f64),
            "QTY_ONHOLD": double(&st, q[2] as f64), "DATE_TIME": now_date(&st, now),
            "UOM": uom, "VMI_CUSTID": "", "EXPDATE": unset_date(&st), "ALT_LOTID": Value::Null,
            "COST_EACH": double(&st, cost), "MFG_ID": Value::Null,
        }));
    }
    drop(db);
    if rows.is_empty() {
        return wire::no_records(&st);
    }
    let mut r = (StatusCode::OK, Value::Array(rows).to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, wire::export_content_type(&st));
    r
}
