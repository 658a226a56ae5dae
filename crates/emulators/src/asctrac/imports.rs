//! The token endpoint, the import controllers (one document per call, validated as
//! `ImportPO.cs`, `ImportCustOrder.cs` and `ImportItemMaster.cs` validate; partial acceptance
//! of unknown items as `ReturnCode 412` inside an HTTP 200; a process-wide lock per type for
//! POs and customer orders) and the dock schedule of the ASCTrac REST service.

use std::time::Duration;

use axum::http::Method;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::data::host_site;
use super::docs;
use super::wire::{self, import_failure, model_response};
use super::{Asc, IssuedToken, ItemDoc, OrderDoc, PoDoc, Req, Settings};
use crate::common::clock::datetime_to_ms;

const NRE: &str = "Object reference not set to an instance of an object.";

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `POST api/Authorize` (ASC's token service, a separate host in reality): issues a bearer
/// token for the configured client, or 401 with an empty body.
pub fn authorize(req: &Req<'_>) -> Response {
    let s = req.asc.settings();
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        return wire::unauthorized(req.headers);
    };
    let g = req.asc.core.auth.generation();
    let secret = crate::common::rotated_secret(&s.client_secret, g);
    if *req.method != Method::POST
        || req.asc.core.auth.revoked()
        || text(&body, "client_id") != s.client_id
        || text(&body, "client_secret") != secret
    {
        return wire::unauthorized(req.headers);
    }
    let now = req.asc.core.clock.now_ms();
    let token = format!(
        "asc{:016x}{:016x}",
        crate::common::datagen::mix(req.asc.core.seed, 0xA0, now as u64),
        crate::common::datagen::mix(req.asc.core.seed, 0xA1, g ^ (now as u64) ^ 0x5a5a)
    );
    let lifetime = s.token_lifetime_secs;
    req.asc
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            token.clone(),
            IssuedToken {
                start_ms: now,
                end_ms: now + lifetime * 1000,
                generation: g,
            },
        );
    let secs = now / 1000;
    wire::json_answer(
        200,
        &json!({
            "token_type": "Bearer", "expires_in": lifetime.to_string(),
            "ext_expires_in": lifetime.to_string(), "expires_on": (secs + lifetime).to_string(),
            "not_before": secs.to_string(), "resource": text(&body, "resource"),
            "access_token": token,
        }),
    )
}

/// Runs an import under its type's lock (when the switch keeps it), with the slow-import
/// fault inside the lock, and records how many ran at once.
async fn locked<T>(asc: &Asc, kind: usize, s: &Settings, work: impl FnOnce() -> T) -> T {
    let lock = if kind == 0 {
        &asc.po_lock
    } else {
        &asc.co_lock
    };
    let _guard = if s.import_lock {
        Some(lock.lock().await)
    } else {
        None
    };
    {
        let mut r = asc.running.lock().unwrap_or_else(|e| e.into_inner());
        r[kind].0 += 1;
        r[kind].1 = r[kind].1.max(r[kind].0);
    }
    if s.slow_import_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.slow_import_ms)).await;
    }
    let out = work();
    asc.running.lock().unwrap_or_else(|e| e.into_inner())[kind].0 -= 1;
    out
}

/// The controller's answer for `doImportX`'s (code, message).
fn import_answer(
    req: &Req<'_>,
    s: &Settings,
    name: &str,
    prefix: &str,
    key: &str,
    outcome: (u16, String),
) -> Response {
    let origin = req.asc.core.origin(req.headers);
    match outcome {
        (200, msg) if msg.is_empty() => wire::json_answer(200, &model_response(200, "")),
        (200, missing) => {
            let body = model_response(412, &format!("{prefix}{key}, Missing Items: {missing}"));
            wire::json_answer(if s.partial_http_200 { 200 } else { 412 }, &body)
        }
        (code, msg) => wire::json_answer(code, &import_failure(s, code, &origin, name, &msg)),
    }
}

fn parse_body(req: &Req<'_>) -> Option<Value> {
    serde_json::from_slice::<Value>(req.body)
        .ok()
        .filter(Value::is_object)
}

/// `POST api/POImport`.
pub async fn po_import(req: &Req<'_>) -> Response {
    if let Some(r) = wire::refused(req.asc, req.headers) {
        return r;
    }
    let s = req.asc.settings();
    let origin = req.asc.core.origin(req.headers);
    if s.db_init_failure {
        let body = import_failure(
            &s,
            500,
            &origin,
            "POImport",
            "Database Initialization Failed.",
        );
        return wire::json_answer(500, &body);
    }
    let Some(body) = parse_body(req) else {
        return wire::json_answer(400, &import_failure(&s, 400, &origin, "POImport", NRE));
    };
    let number = text(&body, "PONUMBER");
    let outcome = locked(req.asc, 0, &s, || import_po(req.asc, &s, &body)).await;
    import_answer(req, &s, "POImport", "Purchase Order: ", &number, outcome)
}

fn import_po(asc: &Asc, s: &Settings, body: &Value) -> (u16, String) {
    // The warehouse's history up to now first: a PO received by now is `R` and refused.
    let now = asc.core.clock.now_ms();
    let mut db = asc.db_at(now);
    let facility = text(body, "FACILITY");
    if asc.facility(&db, &facility).is_none() {
        return (400, "No Facility or Site defined for record.".into());
    }
    let number = text(body, "PONUMBER");
    if number.is_empty() {
        return (400, "PO Number value is required.".into());
    }
    let flag = text(body, "STATUS_FLAG");
    if flag.is_empty() {
        return (400, "STATUS_FLAG value is required.".into());
    }
    if text(body, "ORDER_TYPE") == "A" {
        return (
            400,
            "ASNs no longer supported through the Receipts Import. Please use the ASN Import."
                .into(),
        );
    }
    if let Some(existing) = db.pos.get(&number) {
        for (f, word) in [("C", "Completed"), ("X", "Cancelled"), ("R", "Received")] {
            if existing.status_flag == f && !matches!(flag.as_str(), "D" | "V" | "Q") {
                return (
                    400,
                    format!("Cannot update PO# {number}: PO is already {word}."),
                );
            }
        }
    }
    if matches!(flag.as_str(), "D" | "V") {
        db.pos.remove(&number);
        return (200, String::new());
    }
    let empty = Vec::new();
    let lines = body
        .get("PODetList")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut missing = Vec::new();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let item = text(line, "PRODUCT_CODE");
        if item.is_empty() {
            return (400, format!("Item ID is required.  Line:  {}", i + 1));
        }
        if asc.item_exists(&db, &item) {
            kept.push(line.clone());
            continue;
        }
        match s.po_missing_item_action {
            0 => return (400, format!("Item {item} does not exist in ITEMMSTR")),
            1 => missing.push(item),
            _ => {
                db.items.insert(
                    item.clone(),
                    ItemDoc {
                        facility: facility.clone(),
                        description: text(line, "ITEM_DESCRIPTION"),
                        uom: Some(text(line, "UOM"))
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| "EA".into()),
                        cost: line.get("COSTEACH").and_then(Value::as_f64).unwrap_or(0.0),
                        status_flag: "A".into(),
                    },
                );
                kept.push(line.clone());
            }
        }
    }
    let mut stored = body.clone();
    stored["PODetList"] = Value::Array(kept);
    // An update keeps the first import's instant: the receipt it is waiting for stays due
    // when it was.
    let imported_ms = db
        .pos
        .get(&number)
        .filter(|p| !p.received)
        .map_or(now, |p| p.imported_ms);
    db.pos.insert(
        number,
        PoDoc {
            facility,
            status_flag: flag,
            imported_ms,
            received: false,
            body: stored,
        },
    );
    (200, missing.join(", "))
}

/// `POST api/CustOrderImport`.
pub async fn cust_order_import(req: &Req<'_>) -> Response {
    if let Some(r) = wire::refused(req.asc, req.headers) {
        return r;
    }
    let s = req.asc.settings();
    let origin = req.asc.core.origin(req.headers);
    if s.db_init_failure {
        let body = import_failure(
            &s,
            500,
            &origin,
            "CustOrderImport",
            "Database Initialization Failed.",
        );
        return wire::json_answer(500, &body);
    }
    let Some(body) = parse_body(req) else {
        return wire::json_answer(
            400,
            &import_failure(&s, 400, &origin, "CustOrderImport", NRE),
        );
    };
    let number = text(&body, "ORDERNUMBER");
    let outcome = locked(req.asc, 1, &s, || import_order(req.asc, &body)).await;
    import_answer(
        req,
        &s,
        "CustOrderImport",
        "Customer Order: ",
        &number,
        outcome,
    )
}

fn import_order(asc: &Asc, body: &Value) -> (u16, String) {
    // The warehouse's history up to now first: an order picked or shipped by now is so.
    let now = asc.core.clock.now_ms();
    let mut db = asc.db_at(now);
    let facility = text(body, "FACILITY");
    if asc.facility(&db, &facility).is_none() {
        return (400, "No Facility or Site defined for record.".into());
    }
    let number = text(body, "ORDERNUMBER");
    if number.is_empty() {
        // [I] the service's message for a missing order number is not in the source read.
        return (400, "Order Number value is required.".into());
    }
    let flag = text(body, "STATUS_FLAG");
    if flag.is_empty() || flag.len() > 1 {
        return (400, "Invalid Status Flag".into());
    }
    if let Some(existing) = db.orders.get(&number) {
        if matches!(flag.as_str(), "C" | "X") {
            // `CancelOrder` refuses a shipped order and one with picks (`CheckIfPicked`).
            if existing.shipped || existing.picked {
                return (
                    400,
                    "Cancel Order failed.  Order either shipped or picked.".into(),
                );
            }
        } else if existing.shipped {
            return (400, format!("Order {number} already Shipped."));
        } else if existing.cancelled && !matches!(flag.as_str(), "D" | "V") {
            return (400, format!("Order {number} already Cancelled."));
        }
    }
    match flag.as_str() {
        "D" | "V" => {
            db.orders.remove(&number);
            return (200, String::new());
        }
        "C" | "X" => {
            let Some(o) = db.orders.get_mut(&number) else {
                return (400, format!("Order {number} does not exist."));
            };
            o.cancelled = true;
            o.status_flag = flag;
            return (200, String::new());
        }
        _ => {}
    }
    let empty = Vec::new();
    let lines = body
        .get("DetailList")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut missing = Vec::new();
    let mut kept = Vec::new();
    for line in lines {
        let item = text(line, "PRODUCT_CODE");
        // Unknown or inactive items are skipped and reported, whatever the setting.
        if item.is_empty() || !asc.item_exists(&db, &item) {
            missing.push(item);
        } else {
            kept.push(line.clone());
        }
    }
    let mut stored = body.clone();
    stored["DetailList"] = Value::Array(kept.clone());
    // An update keeps the first import's instant and its pick: the warehouse goes on with
    // the order as it now reads.
    let (imported_ms, picked) = db
        .orders
        .get(&number)
        .map_or((now, false), |o| (o.imported_ms, o.picked));
    db.orders.insert(
        number,
        OrderDoc {
            facility,
            status_flag: flag,
            imported_ms,
            picked,
            shipped: false,
            cancelled: false,
            lines: kept,
            body: stored,
        },
    );
    (200, missing.join(", "))
}

/// `POST api/ItemMasterImport` (no lock; a warning never makes it partial).
pub fn item_master_import(req: &Req<'_>) -> Response {
    if let Some(r) = wire::refused(req.asc, req.headers) {
        return r;
    }
    let s = req.asc.settings();
    let origin = req.asc.core.origin(req.headers);
    if s.db_init_failure {
        let body = import_failure(
            &s,
            500,
            &origin,
            "ItemMasterImport",
            "Database Initialization Failed.",
        );
        return wire::json_answer(500, &body);
    }
    let Some(body) = parse_body(req) else {
        return wire::json_answer(
            400,
            &import_failure(&s, 400, &origin, "ItemMasterImport", NRE),
        );
    };
    let mut db = req.asc.db();
    let facility = text(&body, "FACILITY");
    let fail = |msg: &str| {
        wire::json_answer(
            400,
            &import_failure(&s, 400, &origin, "ItemMasterImport", msg),
        )
    };
    if req.asc.facility(&db, &facility).is_none() {
        return fail("No Facility or Site defined for record.");
    }
    let code = text(&body, "PRODUCT_CODE");
    if code.is_empty() {
        return fail("Itemid (PRODUCT_CODE) value is required.");
    }
    let flag = text(&body, "STATUS_FLAG");
    if !matches!(flag.as_str(), "A" | "I" | "D" | "U" | "") {
        return fail("Invalid status flag");
    }
    if flag == "D" {
        db.items.remove(&code);
    } else {
        db.items.insert(
            code,
            ItemDoc {
                facility,
                description: text(&body, "DESCRIPTION"),
                uom: Some(text(&body, "STOCK_UOM"))
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "EA".into()),
                cost: body.get("STD_COST").and_then(Value::as_f64).unwrap_or(0.0),
                status_flag: if flag.is_empty() { "A".into() } else { flag },
            },
        );
    }
    wire::json_answer(200, &model_response(200, ""))
}

/// `PUT api/CustOrderShipImport?aOrderNumber=` (no auth filter): confirms an order shipped.
pub fn cust_order_ship_import(req: &Req<'_>) -> Response {
    let s = req.asc.settings();
    let origin = req.asc.core.origin(req.headers);
    let name = "CustOrderShipImport";
    if *req.method != Method::PUT {
        return wire::error_message(
            405,
            "The requested resource does not support http method 'POST'.",
        );
    }
    if s.db_init_failure {
        let body = import_failure(&s, 500, &origin, name, "Database Initialization Failed.");
        return wire::json_answer(500, &body);
    }
    let number = req
        .query
        .get("aOrderNumber")
        .unwrap_or("")
        .trim()
        .to_string();
    let now = req.asc.core.clock.now_ms();
    let mut db = req.asc.db_at(now);
    let problem = match db.orders.get(&number) {
        None => Some("Order not found.".to_string()),
        Some(o) if o.shipped => Some("Order already shipped.".into()),
        Some(o) if o.cancelled => Some("Order is cancelled.".into()),
        Some(_) => {
            // Confirm-ship writes its `CS` row now: the shipment and status rows are due at once.
            docs::ship(&mut db, &number, now);
            None
        }
    };
    match problem {
        None => wire::json_answer(200, &model_response(200, "")),
        Some(msg) => wire::json_answer(
            400,
            &import_failure(
                &s,
                400,
                &origin,
                name,
                &format!("Error confirm shipping order {number}: {msg}"),
            ),
        ),
    }
}

/// `GET api/DockSchd?aID=USER|SITE|DOCK|DATE`: one dock's appointments of one day, in the
/// REST service's `{successful, ErrorMessage, DataMessage}` with `DataMessage` a JSON string.
pub fn dock_schedule(req: &Req<'_>) -> Response {
    let s = req.asc.settings();
    let Some(id) = req.query.get("aID") else {
        return wire::json_answer(
            200,
            &json!({"successful": false, "ErrorMessage": "Invalid request.", "DataMessage": ""}),
        );
    };
    let parts: Vec<&str> = id.split('|').collect();
    let fail = |msg: &str| {
        wire::json_answer(
            200,
            &json!({"successful": false, "ErrorMessage": msg, "DataMessage": ""}),
        )
    };
    let [_user, site, dock, day] = parts.as_slice() else {
        return fail("Invalid ID.");
    };
    let db = req.asc.db();
    let Some(f) = req.asc.facility(&db, site) else {
        return fail("Invalid Site.");
    };
    // `ascStrToDate` with the site's short date format [I: `M/d/yyyy`], or ISO.
    let day_ms = parse_day(day);
    let Some(day_ms) = day_ms else {
        return fail("Invalid Date.");
    };
    let slots = db.world.dock_day(f, dock, day_ms.div_euclid(86_400_000));
    let visible: Vec<Value> = slots
        .into_iter()
        // Completed, cancelled and closed appointments are not listed (`DockSched.cs` l.14-19).
        .filter(|sl| !matches!(sl.status.as_str(), "C" | "X" | "Q"))
        .map(|sl| {
            json!({
                "SchedID": sl.id, "Dock": dock, "OrderType": sl.type_flag,
                "OrderNumber": sl.reference, "PickStatus": sl.status,
                "Sched_Datetime": wire::date(&s, sl.start_ms), "Duration": sl.duration,
                "CarrierID": sl.carrier, "CustID": sl.partner, "CustName": format!("Partner {}", sl.partner),
                "Percent_Complete": if sl.status == "I" { 50 } else { 0 },
                "requiredShipDate": wire::date(&s, sl.start_ms),
                "SiteID": host_site(f),
            })
        })
        .collect();
    if visible.is_empty() && s.dock_no_records_failure {
        return fail("No scheduled records found.");
    }
    wire::json_answer(
        200,
        &json!({"successful": true, "ErrorMessage": "",
            "DataMessage": Value::Array(visible).to_string()}),
    )
}

fn parse_day(day: &str) -> Option<i64> {
    let d = if let Some((m, rest)) = day.split_once('/') {
        let (dd, y) = rest.split_once('/')?;
        let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
        time::Date::from_calendar_date(y.parse().ok()?, month, dd.parse().ok()?).ok()?
    } else {
        let f = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(day.get(..10)?, &f).ok()?
    };
    Some(datetime_to_ms(d.midnight().assume_utc()))
}

/// base64 of a token, as ASC's client sends it.
pub fn base64_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(token)
}
