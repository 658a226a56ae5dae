//! Deterministic seeded data: record `n` of a kind is derived from `(seed, kind, n)` alone, so any size costs no memory until touched.

use serde::{Deserialize, Serialize};

use super::clock::Millis;

/// SplitMix64: tiny, fast, and good enough to make realistic-looking data reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn for_record(seed: u64, kind: u64, n: u64) -> Self {
        let mut r = Rng(seed ^ kind.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let _ = r.next_u64();
        r.0 ^= n.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let _ = r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next_u64() % xs.len() as u64) as usize]
    }

    pub fn chance(&mut self, per_thousand: u64) -> bool {
        self.next_u64() % 1000 < per_thousand
    }
}

/// Hash of `(seed, salt, n)`; used for fault decisions and stable ids.
pub fn mix(seed: u64, salt: u64, n: u64) -> u64 {
    Rng::for_record(seed, salt, n).next_u64()
}

const KIND_VENDOR: u64 = 1;
const KIND_ITEM: u64 = 2;
const KIND_LOCATION: u64 = 3;
const KIND_PO: u64 = 4;
const KIND_PO_TIMES: u64 = 5;

const DAY: i64 = 86_400_000;
/// History spans about three years before the clock's start.
const HISTORY: i64 = 3 * 365 * DAY;

/// Purchase-order life cycle, using NetSuite's PurchOrd status letters as the canonical set
/// (every other system maps these to its own values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PoStatus {
    /// A: Pending Supervisor Approval
    PendingApproval,
    /// B: Pending Receipt
    PendingReceipt,
    /// C: Rejected by Supervisor
    Rejected,
    /// D: Partially Received
    PartiallyReceived,
    /// E: Pending Billing/Partially Received
    PendingBillingPartiallyReceived,
    /// F: Pending Bill
    PendingBill,
    /// G: Fully Billed
    FullyBilled,
    /// H: Closed
    Closed,
}

impl PoStatus {
    pub const ALL: [PoStatus; 8] = [
        PoStatus::PendingApproval,
        PoStatus::PendingReceipt,
        PoStatus::Rejected,
        PoStatus::PartiallyReceived,
        PoStatus::PendingBillingPartiallyReceived,
        PoStatus::PendingBill,
        PoStatus::FullyBilled,
        PoStatus::Closed,
    ];

    pub fn letter(self) -> &'static str {
        match self {
            PoStatus::PendingApproval => "A",
            PoStatus::PendingReceipt => "B",
            PoStatus::Rejected => "C",
            PoStatus::PartiallyReceived => "D",
            PoStatus::PendingBillingPartiallyReceived => "E",
            PoStatus::PendingBill => "F",
            PoStatus::FullyBilled => "G",
            PoStatus::Closed => "H",
        }
    }

    pub fn from_letter(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.letter() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            PoStatus::PendingApproval => "Pending Supervisor Approval",
            PoStatus::PendingReceipt => "Pending Receipt",
            PoStatus::Rejected => "Rejected by Supervisor",
            PoStatus::PartiallyReceived => "Partially Received",
            PoStatus::PendingBillingPartiallyReceived => "Pending Billing/Partially Received",
            PoStatus::PendingBill => "Pending Bill",
            PoStatus::FullyBilled => "Fully Billed",
            PoStatus::Closed => "Closed",
        }
    }

    /// Fraction (per thousand) of each line received and billed, so line quantities agree with the status.
    fn progress(self, rng: &mut Rng) -> (u64, u64) {
        match self {
            PoStatus::PendingApproval | PoStatus::PendingReceipt | PoStatus::Rejected => (0, 0),
            PoStatus::PartiallyReceived => (rng.range(100, 900), 0),
            PoStatus::PendingBillingPartiallyReceived => {
                let r = rng.range(100, 900);
                (r, rng.range(0, r))
            }
            PoStatus::PendingBill => (1000, 0),
            PoStatus::FullyBilled | PoStatus::Closed => (1000, 1000),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vendor {
    pub id: u64,
    pub number: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
    pub currency: String,
    pub tax_id: String,
    pub inactive: bool,
    pub created: Millis,
    pub last_modified: Millis,
}

/// Kinds of item, which each system names its own way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// Stocked goods (every seeded item).
    #[default]
    Inventory,
    /// Goods bought but not stocked.
    NonInventory,
    /// Services.
    Service,
}

impl ItemKind {
    /// NetSuite's `itemtype`.
    pub fn netsuite(self) -> &'static str {
        match self {
            ItemKind::Inventory => "InvtPart",
            ItemKind::NonInventory => "NonInvtPart",
            ItemKind::Service => "Service",
        }
    }

    /// SAP's `ProductType`.
    pub fn sap(self) -> &'static str {
        match self {
            ItemKind::Inventory => "HAWA",
            ItemKind::NonInventory => "NLAG",
            ItemKind::Service => "DIEN",
        }
    }

    /// Business Central's item `type`.
    pub fn bc(self) -> &'static str {
        match self {
            ItemKind::Inventory => "Inventory",
            ItemKind::NonInventory => "Non-Inventory",
            ItemKind::Service => "Service",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub unit: String,
    pub cost_cents: i64,
    pub price_cents: i64,
    pub gtin: String,
    pub category: String,
    pub inactive: bool,
    pub created: Millis,
    pub last_modified: Millis,
    /// Seeded items are all inventory items.
    #[serde(default)]
    pub kind: ItemKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: u64,
    pub code: String,
    pub name: String,
    pub city: String,
    pub state: String,
    pub country: String,
    pub inactive: bool,
    pub created: Millis,
    pub last_modified: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoLine {
    /// 1-based line number; systems render it their own way (NetSuite `line`, SAP item 10/20, BC sequence 10000).
    pub line: u32,
    pub item_id: u64,
    pub description: String,
    pub quantity: i64,
    pub quantity_received: i64,
    pub quantity_billed: i64,
    pub rate_cents: i64,
    pub unit: String,
    pub expected_receipt: Millis,
    pub closed: bool,
    /// Line-level custom field (NetSuite `custcol_ib_project_code`).
    pub project_code: String,
}

impl PoLine {
    /// Saturating: admin edits can set absurd values and rendering must not overflow.
    pub fn amount_cents(&self) -> i64 {
        self.quantity.saturating_mul(self.rate_cents)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    pub id: u64,
    pub number: String,
    pub vendor_id: u64,
    pub location_id: u64,
    pub status: PoStatus,
    pub order_date: Millis,
    pub created: Millis,
    pub last_modified: Millis,
    /// The source shows no change time (SAP: `LastChangeDateTime` null) until the order is
    /// first changed; `last_modified` still orders it internally.
    pub change_time_unset: bool,
    pub currency: String,
    pub memo: String,
    /// The reference a client wrote to find the order again: NetSuite's `externalId`, SAP's
    /// `CorrespncExternalReference` ("Your Reference"), Business Central's `shipToContact`.
    pub external_id: Option<String>,
    /// Header properties a client wrote that the generated model does not hold (Business
    /// Central's `requestedReceiptDate`, `purchaser`, ship-to address...), by the name the
    /// API shows them under; `None` for every seeded order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Header custom fields (NetSuite `custbody_ib_priority`, `custbody_requestor`; SAP `YY1_*`).
    pub priority: String,
    pub requestor_id: u64,
    pub lines: Vec<PoLine>,
}

impl PurchaseOrder {
    pub fn total_cents(&self) -> i64 {
        self.lines
            .iter()
            .map(PoLine::amount_cents)
            .fold(0i64, i64::saturating_add)
    }
}

/// Employees that appear as requestors (a multi-select custom field in NetSuite).
pub const EMPLOYEES: [(u64, &str); 6] = [
    (159, "Seun Sodimu"),
    (160, "Maria Keller"),
    (161, "Tomás Oliveira"),
    (162, "Aiko Tanaka"),
    (163, "James Whitfield"),
    (164, "Priya Raman"),
];

const COMPANY_A: [&str; 16] = [
    "Apex",
    "Northwind",
    "Bluestone",
    "Keystone",
    "Ironwood",
    "Summit",
    "Redline",
    "Granite",
    "Pioneer",
    "Harbor",
    "Vector",
    "Falcon",
    "Cobalt",
    "Meridian",
    "Atlas",
    "Sterling",
];
const COMPANY_B: [&str; 12] = [
    "Industrial",
    "Machining",
    "Fasteners",
    "Bearings",
    "Hydraulics",
    "Electric",
    "Metals",
    "Plastics",
    "Tooling",
    "Packaging",
    "Components",
    "Logistics",
];
const COMPANY_C: [&str; 5] = ["Inc.", "LLC", "Corp.", "GmbH", "Ltd."];
const CITIES: [(&str, &str, &str, &str); 10] = [
    ("Grand Prairie", "TX", "75050", "US"),
    ("Dayton", "OH", "45402", "US"),
    ("Fresno", "CA", "93721", "US"),
    ("Milwaukee", "WI", "53202", "US"),
    ("Charlotte", "NC", "28202", "US"),
    ("Reno", "NV", "89501", "US"),
    ("Toledo", "OH", "43604", "US"),
    ("Tacoma", "WA", "98402", "US"),
    ("Stuttgart", "BW", "70173", "DE"),
    ("Walldorf", "BW", "69190", "DE"),
];
const ITEM_NOUN: [&str; 14] = [
    "Hex Bolt",
    "Ball Bearing",
    "Hydraulic Hose",
    "Drive Belt",
    "Steel Plate",
    "Copper Wire",
    "Gear Motor",
    "Pressure Valve",
    "Air Filter",
    "Torque Wrench",
    "Cutting Insert",
    "Pallet Jack",
    "Safety Gloves",
    "Coolant",
];
const ITEM_SPEC: [&str; 10] = [
    "M8x40",
    "6204-2RS",
    "1/2in 3000psi",
    "A-42",
    "10mm",
    "12 AWG",
    "0.5kW",
    "DN25",
    "HEPA",
    "50-250Nm",
];
const UNITS: [&str; 4] = ["EA", "BOX", "KG", "M"];
const CATEGORIES: [&str; 5] = ["MRO", "RAW", "PACK", "TOOLS", "SAFETY"];
const PRIORITIES: [&str; 3] = ["Low", "Normal", "Urgent"];
const MEMOS: [&str; 6] = [
    "Restock for Q-end",
    "Deliver to dock 3",
    "Blanket order release",
    "Expedite: line down",
    "Annual maintenance parts",
    "",
];
const LOCATIONS: [(&str, &str, usize); 6] = [
    ("TX-MAIN", "Texas Main Warehouse", 0),
    ("OH-DC", "Dayton Distribution Center", 1),
    ("CA-WEST", "Fresno West Plant", 2),
    ("WI-PLANT", "Milwaukee Assembly Plant", 3),
    ("NC-EAST", "Charlotte East Depot", 4),
    ("DE-WDF", "Walldorf Plant", 9),
];

/// Sizes of the related tables for a given number of purchase orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub purchase_orders: u64,
    pub vendors: u64,
    pub items: u64,
    pub locations: u64,
}

impl Sizes {
    pub fn for_orders(purchase_orders: u64) -> Self {
        Self {
            purchase_orders,
            vendors: (purchase_orders / 20).clamp(10, 5_000),
            items: (purchase_orders / 10).clamp(25, 20_000),
            locations: LOCATIONS.len() as u64,
        }
    }
}

/// Everything generation needs besides `n`.
#[derive(Debug, Clone, Copy)]
pub struct GenCtx {
    pub seed: u64,
    pub sizes: Sizes,
    /// The clock's start: all seeded history lies before it.
    pub epoch: Millis,
    /// Every how many seeded purchase orders one has no change time (SAP's
    /// `LastChangeDateTime` is null on orders no API or Fiori app has changed since they were
    /// created); 0: none. Such an order gets its change time on its first change.
    pub unset_change_every: u64,
}

/// Whether seeded order `n` has no change time: one in `unset_change_every` of the orders
/// created more than a week before the clock's start (legacy documents; a new order gets its
/// change time when it is created).
pub fn po_change_time_unset(ctx: &GenCtx, n: u64) -> bool {
    ctx.unset_change_every > 0
        && n.is_multiple_of(ctx.unset_change_every)
        && created_and_modified(ctx, KIND_PO, n).0 < ctx.epoch - 7 * DAY
}

fn created_and_modified(ctx: &GenCtx, kind: u64, n: u64) -> (Millis, Millis) {
    let mut r = Rng::for_record(ctx.seed, kind ^ (KIND_PO_TIMES << 8), n);
    // Whole seconds: NetSuite and SAP show seconds, and a shared index must match every rendering.
    let created = ctx.epoch - HISTORY + (r.range(0, (HISTORY / 1000) as u64 - 3600) as i64) * 1000;
    let room = (ctx.epoch - created) / 1000;
    // Most records are touched within a few weeks of creation, some much later.
    let span = if r.chance(150) {
        room
    } else {
        room.min(45 * 86_400)
    };
    let modified = created + r.range(0, span.max(0) as u64) as i64 * 1000;
    (created, modified)
}

pub fn vendor(ctx: &GenCtx, n: u64) -> Vendor {
    let mut r = Rng::for_record(ctx.seed, KIND_VENDOR, n);
    let name = format!(
        "{} {} {}",
        r.pick(&COMPANY_A),
        r.pick(&COMPANY_B),
        r.pick(&COMPANY_C)
    );
    let (city, state, zip, country) = *r.pick(&CITIES);
    let (created, last_modified) = created_and_modified(ctx, KIND_VENDOR, n);
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_lowercase();
    Vendor {
        id: n,
        number: format!("V{n:05}"),
        email: format!("orders@{slug}.example.com"),
        phone: format!("+1 555 {:03} {:04}", r.range(100, 999), r.range(0, 9999)),
        address: format!("{} {} Way", r.range(10, 9999), r.pick(&COMPANY_A)),
        city: city.to_string(),
        state: state.to_string(),
        zip: zip.to_string(),
        country: country.to_string(),
        currency: if country == "DE" { "EUR" } else { "USD" }.to_string(),
        tax_id: format!("{:02}-{:07}", r.range(10, 99), r.range(0, 9_999_999)),
        // A few vendors are inactive: writes naming them are the "invalid vendor" case.
        inactive: n.is_multiple_of(17),
        name,
        created,
        last_modified,
    }
}

pub fn item(ctx: &GenCtx, n: u64) -> Item {
    let mut r = Rng::for_record(ctx.seed, KIND_ITEM, n);
    let noun = r.pick(&ITEM_NOUN);
    let spec = r.pick(&ITEM_SPEC);
    let cost = r.range(50, 250_000) as i64;
    let (created, last_modified) = created_and_modified(ctx, KIND_ITEM, n);
    Item {
        id: n,
        sku: format!("ITEM-{n:05}"),
        name: format!("{noun} {spec}"),
        description: format!("{noun}, {spec}, industrial grade"),
        unit: r.pick(&UNITS).to_string(),
        cost_cents: cost,
        price_cents: cost * 13 / 10,
        gtin: format!("0{:012}", r.range(0, 999_999_999_999)),
        category: r.pick(&CATEGORIES).to_string(),
        inactive: n.is_multiple_of(23),
        created,
        last_modified,
        kind: ItemKind::Inventory,
    }
}

pub fn location(ctx: &GenCtx, n: u64) -> Location {
    let idx = ((n - 1) as usize) % LOCATIONS.len();
    let (code, name, city) = LOCATIONS[idx];
    let (cname, state, _, country) = CITIES[city];
    let (created, last_modified) = created_and_modified(ctx, KIND_LOCATION, n);
    Location {
        id: n,
        code: code.to_string(),
        name: name.to_string(),
        city: cname.to_string(),
        state: state.to_string(),
        country: country.to_string(),
        inactive: false,
        created,
        last_modified,
    }
}

/// Last-modified of seeded PO `n`, computed without building the whole order (used to build the index).
pub fn po_last_modified(ctx: &GenCtx, n: u64) -> Millis {
    created_and_modified(ctx, KIND_PO, n).1
}

pub fn purchase_order(ctx: &GenCtx, n: u64) -> PurchaseOrder {
    let mut r = Rng::for_record(ctx.seed, KIND_PO, n);
    let (created, last_modified) = created_and_modified(ctx, KIND_PO, n);
    // Statuses cycle through every value so even 10 orders cover all of them.
    let status = PoStatus::ALL[((n - 1) % 8) as usize];
    // Vendor ids avoid the inactive ones so seeded orders stay valid.
    let mut vendor_id = r.range(1, ctx.sizes.vendors);
    if vendor_id.is_multiple_of(17) {
        vendor_id -= 1;
    }
    let location_id = r.range(1, ctx.sizes.locations);
    let line_count = 1 + (r.next_u64() % 20) as u32;
    let currency = if location_id == 6 { "EUR" } else { "USD" };
    let mut lines = Vec::with_capacity(line_count as usize);
    for line in 1..=line_count {
        let mut item_id = r.range(1, ctx.sizes.items);
        if item_id.is_multiple_of(23) {
            item_id -= 1;
        }
        let it = item(ctx, item_id);
        let quantity = r.range(1, 500) as i64;
        let (recv, bill) = status.progress(&mut r);
        let received = quantity * recv as i64 / 1000;
        let billed = quantity.min(received.max(quantity * bill as i64 / 1000));
        lines.push(PoLine {
            line,
            item_id,
            description: it.description,
            quantity,
            quantity_received: received,
            quantity_billed: billed,
            rate_cents: it.cost_cents,
            unit: it.unit,
            expected_receipt: created + r.range(3, 60) as i64 * DAY,
            closed: status == PoStatus::Closed,
            project_code: format!("PRJ-{:03}", r.range(1, 40)),
        });
    }
    PurchaseOrder {
        id: n,
        number: format!("PO{n:06}"),
        vendor_id,
        location_id,
        status,
        order_date: super::clock::day_start(created),
        created,
        last_modified,
        change_time_unset: po_change_time_unset(ctx, n),
        currency: currency.to_string(),
        memo: r.pick(&MEMOS).to_string(),
        external_id: None,
        header: None,
        priority: r.pick(&PRIORITIES).to_string(),
        requestor_id: r.pick(&EMPLOYEES).0,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> GenCtx {
        GenCtx {
            seed: 7,
            sizes: Sizes::for_orders(1000),
            epoch: 1_767_225_600_000,
            unset_change_every: 0,
        }
    }

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let c = ctx();
        for n in 1..200 {
            let a = purchase_order(&c, n);
            assert_eq!(a, purchase_order(&c, n));
            assert_eq!(a.last_modified, po_last_modified(&c, n));
            assert!(a.created <= a.last_modified && a.last_modified <= c.epoch);
            assert!((1..=20).contains(&a.lines.len()));
            assert!(a.vendor_id >= 1 && a.vendor_id <= c.sizes.vendors);
            assert!(!vendor(&c, a.vendor_id).inactive);
            for l in &a.lines {
                assert!(l.quantity_billed <= l.quantity && l.quantity_received <= l.quantity);
            }
        }
        let other = GenCtx { seed: 8, ..c };
        assert_ne!(purchase_order(&c, 5), purchase_order(&other, 5));
    }

    #[test]
    fn every_status_appears() {
        let c = ctx();
        let seen: std::collections::HashSet<_> =
            (1..=8).map(|n| purchase_order(&c, n).status).collect();
        assert_eq!(seen.len(), 8);
    }
}
