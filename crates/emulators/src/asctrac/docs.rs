//! What the warehouse does with imported documents: an order imported through
//! `CustOrderImport` is picked complete (`LC`) and confirm-shipped (`CS`), a purchase order
//! imported through `POImport` is received (`RX`, one license plate per line), each a fixed
//! delay of emulator time after its import (`Settings::imported_*_after_secs`), and
//! `CustOrderShipImport` confirm-ships at once. These "document events" are rows of the same
//! exports as the generated log, with the same flags and acknowledgements.
//!
//! They are written lazily: every reader and writer of the tables first calls [`advance`],
//! which writes the events due by its clock with the instant they were due (not the instant
//! someone looked), ordered by that instant. A history therefore does not depend on when it
//! is read; memory grows with the documents imported, never with the log. Ids start at
//! [`DOC_BASE`], above any log id, so flags and acknowledgements tell them apart.

use serde_json::Value;

use super::data::{Event, EventKind, Pick, ShipRef, host_site};
use super::{Db, OrderDoc, PoDoc, Settings};
use crate::common::clock::Millis;

/// First id of the document events (`1 << 40`: a log never grows that long).
pub const DOC_BASE: u64 = 1 << 40;

/// Operator recorded on document events [I: the site's own users are not known].
const DOC_USER: &str = "OPER01";

/// Largest quantity or price (in cents) kept from an imported document, so an absurd value
/// cannot overflow the arithmetic of a row.
const MAX_AMOUNT: f64 = 1e12;

/// The id of document event `i`.
pub fn doc_id(i: usize) -> u64 {
    DOC_BASE + i as u64 + 1
}

/// Whether `id` names a document event.
pub fn is_doc(id: u64) -> bool {
    id > DOC_BASE
}

/// The index in `Db::docs` of document event `id`.
pub fn doc_index(id: u64) -> Option<usize> {
    id.checked_sub(DOC_BASE + 1)
        .and_then(|i| usize::try_from(i).ok())
}

/// What falls due for a document (sorted by instant, then this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Receive,
    Pick,
    Ship,
}

/// When a step `after_secs` after `imported_ms` is due, if it is enabled.
fn due(imported_ms: Millis, after_secs: i64) -> Option<Millis> {
    (after_secs > 0).then(|| imported_ms.saturating_add(after_secs.saturating_mul(1000)))
}

/// Whether an order is one the warehouse works on by itself: added (`A`), not cancelled, with
/// lines (an order of unknown items only is kept empty, and nothing can be picked).
fn order_active(o: &OrderDoc) -> bool {
    o.status_flag == "A" && !o.cancelled && !o.shipped && !o.lines.is_empty()
}

fn po_active(p: &PoDoc) -> bool {
    p.status_flag == "A" && !p.received && !lines_of(&p.body, "PODetList").is_empty()
}

/// Writes the document events due by `now`, in the order they were due.
pub fn advance(db: &mut Db, s: &Settings, now: Millis) {
    let mut steps: Vec<(Millis, Step, String)> = Vec::new();
    for (number, o) in &db.orders {
        if !order_active(o) {
            continue;
        }
        let ship = due(o.imported_ms, s.imported_ship_after_secs).filter(|&at| at <= now);
        // An order shipped by then is not reported picked on its own (`CS` covers it).
        if !o.picked
            && let Some(at) = due(o.imported_ms, s.imported_pick_after_secs)
            && at <= now
            && ship.is_none_or(|ship| at < ship)
        {
            steps.push((at, Step::Pick, number.clone()));
        }
        if let Some(at) = ship {
            steps.push((at, Step::Ship, number.clone()));
        }
    }
    for (number, p) in &db.pos {
        if po_active(p)
            && let Some(at) = due(p.imported_ms, s.imported_receive_after_secs)
            && at <= now
        {
            steps.push((at, Step::Receive, number.clone()));
        }
    }
    steps.sort();
    for (at, step, number) in steps {
        match step {
            Step::Pick => pick(db, &number, at),
            Step::Ship => {
                ship(db, &number, at);
            }
            Step::Receive => receive(db, &number, at),
        }
    }
}

/// The facility number of a HOST_SITE_ID (the imports checked it exists).
fn facility_no(db: &Db, host: &str) -> u32 {
    (1..=db.world.facilities)
        .find(|&k| host_site(k) == host)
        .unwrap_or(1)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn amount(v: &Value, key: &str) -> f64 {
    let n = match v.get(key) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    };
    if n.is_finite() {
        n.clamp(-MAX_AMOUNT, MAX_AMOUNT)
    } else {
        0.0
    }
}

fn lines_of<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    body.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A line's number: `LINE_NUMBER`, else its position (from 1).
fn line_number(line: &Value, i: usize) -> i64 {
    let n = amount(line, "LINE_NUMBER");
    if n >= 1.0 { n as i64 } else { i as i64 + 1 }
}

/// A whole number of stock units [I: the log counts whole units; a fraction is rounded].
fn units(line: &Value) -> i64 {
    amount(line, "QUANTITY").round().max(0.0) as i64
}

/// An event of a document, with the fields every kind shares.
fn event(db: &Db, kind: EventKind, at: Millis, facility: &str, order: &str) -> Event {
    Event {
        id: doc_id(db.docs.len()),
        kind,
        at,
        facility: facility_no(db, facility),
        item: String::new(),
        lot: String::new(),
        qty: 0,
        order: order.to_string(),
        line: 0,
        receiver: String::new(),
        skid: String::new(),
        vendor: String::new(),
        user: DOC_USER.into(),
        from_bin: String::new(),
        to_bin: String::new(),
        reason: String::new(),
        customer: String::new(),
        picks: Vec::new(),
        containers: Vec::new(),
        serials: Vec::new(),
        ship_ref: None,
    }
}

/// The order's sold-to customer, from the first of the header's customer fields it has.
fn customer(o: &OrderDoc) -> String {
    [
        "CUST_ID",
        "SOLDTOCUSTID",
        "BILL_TO_CUST_ID",
        "SHIP_TO_CUST_ID",
    ]
    .iter()
    .map(|k| text(&o.body, k))
    .find(|c| !c.is_empty())
    .unwrap_or_default()
}

/// `LC`: the order picked complete (a status row, `PICKSTATUS` `C`).
fn pick(db: &mut Db, number: &str, at: Millis) {
    let Some(o) = db.orders.get(number) else {
        return;
    };
    let mut e = event(db, EventKind::Status("LC"), at, &o.facility, number);
    e.customer = customer(o);
    db.docs.push(e);
    if let Some(o) = db.orders.get_mut(number) {
        o.picked = true;
    }
}

/// `CS`: the order confirm-shipped at `at`, every line shipped in full into one carton (a
/// shipment row and a status row `PICKSTATUS` `S`). False when there is no such order or it
/// is already shipped or cancelled.
pub fn ship(db: &mut Db, number: &str, at: Millis) -> bool {
    let Some(o) = db.orders.get(number).filter(|o| !o.shipped && !o.cancelled) else {
        return false;
    };
    let mut e = event(db, EventKind::Ship, at, &o.facility, number);
    e.customer = customer(o);
    e.picks = o
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let qty = units(line);
            Pick {
                line: line_number(line, i),
                item: text(line, "PRODUCT_CODE"),
                lot: text(line, "REQUESTED_LOT"),
                ordered: qty,
                shipped: qty,
                price_cents: (amount(line, "SOLD_PRICE") * 100.0).round() as i64,
            }
        })
        .collect();
    // [I] one carton per shipment, a tenth of a weight unit per unit shipped.
    let weight = e
        .picks
        .iter()
        .fold(0i64, |w, p| w.saturating_add(p.shipped));
    e.containers
        .push((format!("CT{}", e.id), "CARTON".into(), weight.max(1)));
    e.ship_ref = Some(ShipRef {
        cust_po: text(&o.body, "CUST_PO_NUM"),
        carrier: text(&o.body, "CARRIER"),
        service: text(&o.body, "CARRIER_SERVICE_CODE"),
    });
    db.docs.push(e);
    if let Some(o) = db.orders.get_mut(number) {
        o.shipped = true;
    }
    true
}

/// `RX`: the purchase order received in full at `at`: one license plate per line with a
/// positive quantity, all under one receiver number; the PO is then `R` (received).
fn receive(db: &mut Db, number: &str, at: Millis) {
    let Some(p) = db.pos.get(number) else {
        return;
    };
    let vendor = text(&p.body, "VENDOR_CODE");
    let receiver = format!("RCV{}", doc_id(db.docs.len()));
    let mut events = Vec::new();
    for (i, line) in lines_of(&p.body, "PODetList").iter().enumerate() {
        let qty = units(line);
        if qty == 0 {
            continue;
        }
        let mut e = event(db, EventKind::Receipt, at, &p.facility, number);
        e.id = doc_id(db.docs.len() + events.len());
        e.item = text(line, "PRODUCT_CODE");
        e.lot = text(line, "LOTID");
        e.qty = qty;
        e.line = line_number(line, i);
        e.receiver = receiver.clone();
        // The skid names the row: the acknowledgement finds it by this key.
        e.skid = format!("LP{:09}", e.id);
        e.vendor = vendor.clone();
        e.to_bin = "DOCK-01".into();
        events.push(e);
    }
    db.docs.extend(events);
    if let Some(p) = db.pos.get_mut(number) {
        p.received = true;
        p.status_flag = "R".into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_apart_from_the_log() {
        assert!(!is_doc(1) && !is_doc(DOC_BASE) && is_doc(doc_id(0)));
        assert_eq!(doc_index(doc_id(7)), Some(7));
        assert_eq!(doc_index(5), None);
        assert_eq!(due(1_000, 0), None);
        assert_eq!(due(1_000, 2), Some(3_000));
    }
}
