//! Deterministic warehouse activity: facilities, items, lots, base stock, and one TRANFILE
//! event log on a timeline. Event `n` happens at a fixed instant of the emulator clock and its
//! content comes from `(seed, n)` alone, so an outbox of any size costs no memory until it is
//! acknowledged, and advancing the clock makes receipts and shipments flow in.

use crate::common::clock::Millis;
use crate::common::datagen::{Rng, mix};

const KIND_EVENT: u64 = 0xA5C7_0001;
const KIND_CONTENT: u64 = 0xA5C7_0002;
const KIND_STOCK: u64 = 0xA5C7_0003;
const KIND_ITEM: u64 = 0xA5C7_0004;
const KIND_DOCK: u64 = 0xA5C7_0005;

/// What a TRANFILE event is (its TRANTYPE family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `RX`: goods received into one license plate against a PO line.
    Receipt,
    /// `AD` (adjustment), `TZ` (zone transfer) or `SC` (scrap).
    Movement(&'static str),
    /// `CS`: an order confirmed shipped, with its picks, containers and serials.
    Ship,
    /// `LC` or `LO`: an order's status changed (picked complete, loaded).
    Status(&'static str),
}

impl EventKind {
    /// The TRANTYPE.
    pub fn trantype(self) -> &'static str {
        match self {
            EventKind::Receipt => "RX",
            EventKind::Movement(t) | EventKind::Status(t) => t,
            EventKind::Ship => "CS",
        }
    }
}

/// One picked line of a shipment.
#[derive(Debug, Clone)]
pub struct Pick {
    pub line: i64,
    pub item: String,
    pub lot: String,
    pub ordered: i64,
    pub shipped: i64,
    pub price_cents: i64,
}

/// One event of the log, fully derived.
#[derive(Debug, Clone)]
pub struct Event {
    /// TRANFILE.ID (`n + 1`).
    pub id: u64,
    pub kind: EventKind,
    pub at: Millis,
    /// Facility number (1-based); its HOST_SITE_ID is [`host_site`].
    pub facility: u32,
    pub item: String,
    pub lot: String,
    /// Signed quantity in stock units, as the event moved it.
    pub qty: i64,
    pub order: String,
    pub line: i64,
    pub receiver: String,
    pub skid: String,
    pub vendor: String,
    pub user: String,
    pub from_bin: String,
    pub to_bin: String,
    pub reason: String,
    pub customer: String,
    pub picks: Vec<Pick>,
    pub containers: Vec<(String, String, i64)>,
    pub serials: Vec<(i64, String, String)>,
    /// A shipment's header fields taken from the order imported (none for generated ones,
    /// whose references derive from the id).
    pub ship_ref: Option<ShipRef>,
}

/// Header fields a shipment of an imported order copies from it (`ORDRHDR`).
#[derive(Debug, Clone, Default)]
pub struct ShipRef {
    pub cust_po: String,
    pub carrier: String,
    pub service: String,
}

/// The HOST_SITE_ID of facility `k` (`01`).
pub fn host_site(k: u32) -> String {
    format!("{k:02}")
}

/// The code of item `k` (`ITEM-000042`).
pub fn item_code(k: u64) -> String {
    format!("ITEM-{k:06}")
}

/// Static data of a generated item.
#[derive(Debug, Clone)]
pub struct ItemData {
    pub code: String,
    pub description: String,
    pub uom: &'static str,
    pub cost_cents: i64,
    pub lot_tracked: bool,
}

/// The generated warehouse: sizes and the timeline.
#[derive(Debug, Clone, Copy)]
pub struct World {
    pub seed: u64,
    /// The clock's start: events `0..initial` happened before it.
    pub start_ms: Millis,
    /// Events already in the log at the start (the outbox's size then).
    pub initial: u64,
    /// One event per this many milliseconds of emulator time.
    pub interval_ms: i64,
    pub facilities: u32,
    pub items: u64,
}

impl World {
    /// When event `n` happens.
    pub fn at(&self, n: u64) -> Millis {
        self.start_ms + (n as i64 - self.initial as i64) * self.interval_ms
    }

    /// Events that have happened by `now`: `0..visible(now)`.
    pub fn visible(&self, now: Millis) -> u64 {
        let after = (now - self.start_ms).div_euclid(self.interval_ms.max(1));
        (self.initial as i64 + after + 1).max(0) as u64
    }

    /// What event `n` is.
    pub fn kind(&self, n: u64) -> EventKind {
        match mix(self.seed, KIND_EVENT, n) % 100 {
            0..=34 => EventKind::Receipt,
            35..=44 => EventKind::Movement("AD"),
            45..=51 => EventKind::Movement("TZ"),
            52..=54 => EventKind::Movement("SC"),
            55..=74 => EventKind::Ship,
            75..=87 => EventKind::Status("LC"),
            _ => EventKind::Status("LO"),
        }
    }

    /// Item `k`'s static data.
    pub fn item(&self, k: u64) -> ItemData {
        let mut r = Rng::for_record(self.seed, KIND_ITEM, k);
        const NOUNS: [&str; 8] = [
            "Bearing",
            "Bracket",
            "Gasket",
            "Valve",
            "Fitting",
            "Hose",
            "Pallet wrap",
            "Fastener",
        ];
        let uom = *r.pick(&["EA", "EA", "EA", "CS", "KG"]);
        ItemData {
            code: item_code(k),
            description: format!("{} {}", r.pick(&NOUNS), k),
            uom,
            cost_cents: r.range(50, 25_000) as i64,
            lot_tracked: r.chance(400),
        }
    }

    /// The lot of item `k` numbered `l` (`''` for an item without lots).
    pub fn lot(&self, k: u64, l: u64) -> String {
        if self.item(k).lot_tracked {
            format!("L{k}{}", (b'A' + (l % 3) as u8) as char)
        } else {
            String::new()
        }
    }

    /// Stock of item `k` in facility `f` before the timeline: (on hand, allocated, on hold).
    pub fn base_stock(&self, f: u32, k: u64) -> (i64, i64, i64) {
        let mut r = Rng::for_record(self.seed, KIND_STOCK, (u64::from(f) << 40) | k);
        let on_hand = r.range(20, 600) as i64;
        let allocated = r.range(0, (on_hand / 4) as u64) as i64;
        let hold = if r.chance(100) {
            r.range(1, 10) as i64
        } else {
            0
        };
        (on_hand, allocated, hold)
    }

    /// Event `n`, fully derived.
    pub fn event(&self, n: u64) -> Event {
        let kind = self.kind(n);
        let mut r = Rng::for_record(self.seed, KIND_CONTENT, n);
        let facility = r.range(1, u64::from(self.facilities.max(1))) as u32;
        let item_k = r.range(1, self.items.max(1));
        let item = item_code(item_k);
        let lot = self.lot(item_k, r.next_u64());
        let mut e = Event {
            id: n + 1,
            kind,
            at: self.at(n),
            facility,
            item,
            lot,
            qty: 0,
            order: String::new(),
            line: 0,
            receiver: String::new(),
            skid: String::new(),
            vendor: String::new(),
            user: format!("OPER{:02}", r.range(1, 12)),
            from_bin: String::new(),
            to_bin: String::new(),
            reason: String::new(),
            customer: String::new(),
            picks: Vec::new(),
            containers: Vec::new(),
            serials: Vec::new(),
            ship_ref: None,
        };
        match kind {
            EventKind::Receipt => {
                e.qty = r.range(1, 120) as i64;
                e.order = format!("PO{:06}", 100_000 + n / 6);
                e.line = r.range(1, 5) as i64;
                e.receiver = format!("RCV{:07}", n / 4);
                e.skid = format!("LP{:09}", n + 1);
                e.vendor = format!("V{:05}", r.range(1, 400));
                e.to_bin = bin(&mut r);
            }
            EventKind::Movement(t) => {
                let q = r.range(1, 25) as i64;
                e.qty = match t {
                    "AD" if r.chance(500) => -q,
                    "SC" => -q,
                    _ => q,
                };
                e.reason = (*r.pick(&["CC", "DMG", "QA", "REPL"])).to_string();
                e.from_bin = bin(&mut r);
                e.to_bin = if t == "TZ" {
                    bin(&mut r)
                } else {
                    String::new()
                };
            }
            EventKind::Ship => {
                e.order = format!("SO{n:07}");
                e.customer = format!("C{:05}", r.range(1, 900));
                let lines = r.range(1, 3);
                for line in 1..=lines {
                    let k = r.range(1, self.items.max(1));
                    let ordered = r.range(1, 40) as i64;
                    let shipped = if r.chance(900) {
                        ordered
                    } else {
                        r.range(0, ordered as u64) as i64
                    };
                    e.picks.push(Pick {
                        line: line as i64,
                        item: item_code(k),
                        lot: self.lot(k, r.next_u64()),
                        ordered,
                        shipped,
                        price_cents: r.range(100, 50_000) as i64,
                    });
                }
                for c in 0..r.range(1, 2) {
                    e.containers.push((
                        format!("CT{n:08}{c}"),
                        (*r.pick(&["GMA", "EUR", "CARTON"])).to_string(),
                        r.range(50, 9_000) as i64,
                    ));
                }
                if r.chance(300) {
                    let p = &e.picks[0];
                    for s in 0..p.shipped.min(3) {
                        e.serials
                            .push((p.line, format!("SN{n:08}{s}"), p.item.clone()));
                    }
                }
            }
            EventKind::Status(_) => {
                // A status change of an order shipped later in the log.
                e.order = format!("SO{:07}", n + r.range(1, 40));
                e.customer = format!("C{:05}", r.range(1, 900));
            }
        }
        e
    }

    /// Appointments on `dock` of facility `f` on day `day` (days since the epoch):
    /// (id, type flag, reference, status, start ms, duration minutes, carrier, partner).
    pub fn dock_day(&self, f: u32, dock: &str, day: i64) -> Vec<DockSlot> {
        let key = (u64::from(f) << 48) ^ (day as u64) ^ mix(0, 0, dock.len() as u64);
        let mut r = Rng::for_record(self.seed, KIND_DOCK, key ^ dock_hash(dock));
        let count = r.range(0, 4);
        (0..count)
            .map(|i| {
                let flag = *r.pick(&["C", "P", "R", "V", "L", "B"]);
                let start = day * 86_400_000 + (7 + 2 * i as i64) * 3_600_000;
                DockSlot {
                    // SCHED_ID is unique per site: day, facility, door, slot.
                    id: ((day as u64) << 24)
                        | ((u64::from(f) & 0xFF) << 16)
                        | ((dock_hash(dock) & 0xFF) << 8)
                        | i,
                    type_flag: flag,
                    reference: match flag {
                        "C" | "L" => format!("SO{:07}", r.range(1, 99_999)),
                        "P" | "V" => format!("PO{:06}", r.range(100_000, 120_000)),
                        _ => format!("RCV{:07}", r.range(1, 99_999)),
                    },
                    status: (*r.pick(&["S", "A", "I", "C"])).to_string(),
                    start_ms: start,
                    duration: *r.pick(&[30i64, 60, 60, 90, 120]),
                    carrier: (*r.pick(&["UPSF", "ODFL", "FEDX", "XPOL"])).to_string(),
                    partner: format!("C{:05}", r.range(1, 900)),
                }
            })
            .collect()
    }
}

/// One generated dock appointment.
#[derive(Debug, Clone)]
pub struct DockSlot {
    pub id: u64,
    pub type_flag: &'static str,
    pub reference: String,
    pub status: String,
    pub start_ms: Millis,
    pub duration: i64,
    pub carrier: String,
    pub partner: String,
}

fn dock_hash(dock: &str) -> u64 {
    dock.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn bin(r: &mut Rng) -> String {
    format!(
        "{}-{:02}-{:02}",
        (b'A' + r.range(0, 5) as u8) as char,
        r.range(1, 30),
        r.range(1, 6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World {
            seed: 7,
            start_ms: 1_000_000_000,
            initial: 100,
            interval_ms: 60_000,
            facilities: 3,
            items: 50,
        }
    }

    #[test]
    fn events_are_deterministic_and_flow_in_as_time_passes() {
        let w = world();
        assert_eq!(w.visible(w.start_ms), 101);
        assert_eq!(w.visible(w.start_ms + 59_999), 101);
        assert_eq!(w.visible(w.start_ms + 60_000), 102);
        assert!(w.at(99) < w.start_ms && w.at(100) == w.start_ms);
        let a = w.event(17);
        let b = w.event(17);
        assert_eq!((a.kind, a.qty, a.item.clone()), (b.kind, b.qty, b.item));
        let kinds: std::collections::HashSet<&str> =
            (0..500).map(|n| w.kind(n).trantype()).collect();
        for t in ["RX", "AD", "TZ", "SC", "CS", "LC", "LO"] {
            assert!(kinds.contains(t), "{t}");
        }
    }
}
