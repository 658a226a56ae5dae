//! Deterministic sample data of the sandbox ERP: vendors (one blocked), items (some out of
//! stock, one inactive), locations (one inactive) and purchase orders in every state, some
//! with custom fields. The same seed always gives the same data.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use ironbridge_model::Timestamp;

/// Every source status the sandbox uses, so every unified status appears.
pub const PO_STATUSES: [&str; 9] = [
    "DRAFT",
    "PENDING_APPROVAL",
    "APPROVED",
    "PARTIALLY_RECEIVED",
    "RECEIVED",
    "CLOSED",
    "CANCELLED",
    "REJECTED",
    "ON_HOLD",
];

/// Source statuses in which an order can no longer be changed.
pub const CLOSED_STATUSES: [&str; 4] = ["RECEIVED", "CLOSED", "CANCELLED", "REJECTED"];

/// The remote id of the blocked vendor (the "invalid vendor" error case).
pub const BLOCKED_VENDOR: &str = "V-1012";

/// The sandbox's whole dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Raw vendors.
    pub vendors: Vec<Value>,
    /// Raw items.
    pub items: Vec<Value>,
    /// Raw locations.
    pub locations: Vec<Value>,
    /// Raw purchase orders.
    pub purchase_orders: Vec<Value>,
}

/// SplitMix64: tiny, fast and good enough for sample data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const VENDORS: [(&str, &str, &str, &str, &str); 12] = [
    ("Allied Fasteners Inc.", "Cleveland", "OH", "44114", "USD"),
    ("Buckeye Steel Supply", "Columbus", "OH", "43215", "USD"),
    ("Cascade Hydraulics", "Portland", "OR", "97201", "USD"),
    ("Delta Industrial Electric", "Memphis", "TN", "38103", "USD"),
    ("Evergreen Packaging Co.", "Tacoma", "WA", "98402", "USD"),
    ("Frontier Bearings", "Denver", "CO", "80202", "USD"),
    (
        "Granite Safety Products",
        "Manchester",
        "NH",
        "03101",
        "USD",
    ),
    (
        "Harbor Industrial Logistics",
        "Long Beach",
        "CA",
        "90802",
        "USD",
    ),
    ("Ironclad Tooling GmbH", "Stuttgart", "BW", "70173", "EUR"),
    ("Junction Valve & Fitting", "Houston", "TX", "77002", "USD"),
    (
        "Keystone Lubricants Ltd.",
        "Hamilton",
        "ON",
        "L8P 4R5",
        "CAD",
    ),
    ("Defunct Supply Co.", "Gary", "IN", "46402", "USD"),
];

const ITEMS: [(&str, &str, &str, &str); 40] = [
    ("Hex bolt M10x40, zinc", "INVENTORY", "EA", "0.42"),
    ("Hex nut M10, zinc", "INVENTORY", "EA", "0.08"),
    ("Flat washer M10", "INVENTORY", "EA", "0.03"),
    (
        "Deep groove ball bearing 6205-2RS",
        "INVENTORY",
        "EA",
        "6.90",
    ),
    ("Tapered roller bearing 30206", "INVENTORY", "EA", "14.25"),
    (
        "Hydraulic hose 1/2in, 2-wire, per m",
        "INVENTORY",
        "M",
        "9.80",
    ),
    ("Hydraulic fitting JIC 1/2in", "INVENTORY", "EA", "4.15"),
    ("Nitrile gloves, box of 100", "INVENTORY", "BX", "11.60"),
    ("Safety glasses, clear", "INVENTORY", "EA", "3.40"),
    ("Hi-vis vest, class 2", "INVENTORY", "EA", "7.95"),
    ("Wooden pallet 48x40", "INVENTORY", "EA", "12.00"),
    ("Stretch film 18in x 1500ft", "INVENTORY", "RL", "21.50"),
    ("Corrugated box 24x18x18", "INVENTORY", "EA", "1.85"),
    ("Packing tape 2in, case of 36", "INVENTORY", "CS", "48.00"),
    ("AC motor 5 HP, 1800 rpm", "INVENTORY", "EA", "612.00"),
    ("Variable frequency drive 5 HP", "INVENTORY", "EA", "845.00"),
    ("Contactor 40A, 24V coil", "INVENTORY", "EA", "58.30"),
    ("Cable THHN 12 AWG, per ft", "INVENTORY", "FT", "0.21"),
    ("LED high-bay fixture 150W", "INVENTORY", "EA", "129.00"),
    ("Gear oil ISO VG 220, 5 gal", "INVENTORY", "PL", "96.40"),
    ("Multipurpose grease, 14 oz", "INVENTORY", "EA", "5.75"),
    ("Ball valve 1in, stainless", "INVENTORY", "EA", "38.90"),
    ("Gate valve 2in, cast iron", "INVENTORY", "EA", "112.00"),
    ("Pipe nipple 1in x 4in", "INVENTORY", "EA", "3.10"),
    ("V-belt B48", "INVENTORY", "EA", "12.45"),
    ("Roller chain #40, 10 ft", "INVENTORY", "EA", "27.80"),
    ("Sprocket 40B18", "INVENTORY", "EA", "19.60"),
    ("Carbide end mill 1/2in", "INVENTORY", "EA", "34.50"),
    ("Drill bit set, cobalt, 29 pc", "INVENTORY", "ST", "89.00"),
    ("Torque wrench 3/8in drive", "INVENTORY", "EA", "142.00"),
    ("Steel sheet A36 4x8, 10 ga", "INVENTORY", "EA", "138.00"),
    (
        "Aluminum bar 6061, 1in round, 12ft",
        "INVENTORY",
        "EA",
        "64.20",
    ),
    ("Welding wire ER70S-6, 33 lb", "INVENTORY", "SP", "71.90"),
    ("Argon/CO2 cylinder refill", "NON_INVENTORY", "EA", "45.00"),
    ("Shop towels, box of 200", "NON_INVENTORY", "BX", "24.00"),
    ("Forklift preventive maintenance", "SERVICE", "HR", "95.00"),
    ("Scale calibration service", "SERVICE", "EA", "180.00"),
    ("Freight, LTL", "SERVICE", "EA", "250.00"),
    (
        "Pneumatic cylinder 2in bore x 6in",
        "INVENTORY",
        "EA",
        "76.00",
    ),
    (
        "Legacy relay module (discontinued)",
        "INVENTORY",
        "EA",
        "22.00",
    ),
];

const LOCATIONS: [(&str, &str, &str, &str, &str, &str, bool); 6] = [
    (
        "DC-EAST",
        "East Distribution Center",
        "WAREHOUSE",
        "Columbus",
        "OH",
        "43219",
        true,
    ),
    (
        "DC-WEST",
        "West Distribution Center",
        "WAREHOUSE",
        "Reno",
        "NV",
        "89502",
        true,
    ),
    (
        "PLANT-1",
        "Dayton Assembly Plant",
        "PLANT",
        "Dayton",
        "OH",
        "45402",
        true,
    ),
    (
        "STORE-12",
        "Cincinnati Branch",
        "STORE",
        "Cincinnati",
        "OH",
        "45202",
        true,
    ),
    (
        "HQ",
        "Headquarters",
        "OFFICE",
        "Columbus",
        "OH",
        "43215",
        true,
    ),
    (
        "DC-OLD",
        "Akron Warehouse (closed)",
        "WAREHOUSE",
        "Akron",
        "OH",
        "44308",
        false,
    ),
];

const TERMS: [&str; 3] = ["Net 30", "Net 45", "2/10 Net 30"];
const REQUISITIONERS: [&str; 4] = ["M. Alvarez", "J. Chen", "R. Okafor", "S. Lindqvist"];

/// The instant the sandbox's history ends: data is dated before it, whatever today is.
pub fn anchor() -> Timestamp {
    Timestamp::from_secs(time::macros::datetime!(2026-11-01 00:00 UTC).unix_timestamp())
}

fn iso(t: Timestamp) -> String {
    // Sandbox timestamps are whole seconds, like most ERPs.
    Timestamp::from_secs(t.micros().div_euclid(1_000_000)).to_rfc3339()
}

/// Whether an item is out of stock (every eighth item, and the discontinued one).
pub fn out_of_stock(index: usize) -> bool {
    index % 8 == 7 || index == ITEMS.len() - 1
}

/// Builds the dataset for a seed and a number of purchase orders.
pub fn generate(seed: u64, purchase_orders: u32) -> Dataset {
    let mut rng = Rng(seed ^ 0x1B1D_6E5A_11CE_0001);
    let day: i64 = 86_400;
    let anchor = anchor();
    let old = |rng: &mut Rng, max_days: u64| {
        anchor.plus_secs(-(day * 365 * 3) + (rng.below(max_days) as i64) * day)
    };

    let vendors: Vec<Value> = VENDORS
        .iter()
        .enumerate()
        .map(|(i, (name, city, region, zip, currency))| {
            let created = old(&mut rng, 300);
            let id = format!("V-{}", 1001 + i);
            let blocked = id == BLOCKED_VENDOR;
            json!({
                "vendorId": id,
                "name": name,
                "status": if blocked { "BLOCKED" } else { "ACTIVE" },
                "email": format!("orders@{}.example", name.split_whitespace().next().unwrap_or("vendor").to_lowercase()),
                "phone": format!("+1-555-01{:02}", i),
                "taxId": format!("{:02}-{:07}", 10 + i, rng.below(9_999_999)),
                "currency": currency,
                "paymentTerms": TERMS[i % 3],
                "address": {"street": format!("{} Industrial Pkwy", 100 + rng.below(8900)), "city": city, "region": region, "postalCode": zip, "country": if *currency == "EUR" { "DE" } else if *currency == "CAD" { "CA" } else { "US" }},
                "createdAt": iso(created),
                "updatedAt": iso(if blocked { anchor.plus_secs(-40 * day) } else { created.plus_secs(day * rng.below(200) as i64) }),
                "deleted": false
            })
        })
        .collect();

    let items: Vec<Value> = ITEMS
        .iter()
        .enumerate()
        .map(|(i, (name, kind, uom, cost))| {
            let created = old(&mut rng, 400);
            let stocked = *kind == "INVENTORY";
            let on_hand = if !stocked || out_of_stock(i) { 0 } else { 20 + rng.below(480) };
            let reserved = if on_hand > 0 { rng.below(on_hand / 2 + 1) } else { 0 };
            let mut item = json!({
                "itemNo": format!("ITM-{}", 1001 + i),
                "name": name,
                "description": format!("{name}. Standard industrial grade."),
                "type": kind,
                "uom": uom,
                "standardCost": cost,
                "active": i != ITEMS.len() - 1,
                "createdAt": iso(created),
                "updatedAt": iso(created.plus_secs(day * rng.below(300) as i64)),
                "deleted": false
            });
            if stocked {
                item["onHand"] = json!(on_hand.to_string());
                item["available"] = json!((on_hand - reserved).to_string());
            }
            if i % 5 == 0 {
                item["customFields"] = json!({"hazmatClass": if i % 10 == 0 { "none" } else { "3" }, "binLocation": format!("A-{:02}-{}", i, 1 + i % 4)});
            }
            item
        })
        .collect();

    let locations: Vec<Value> = LOCATIONS
        .iter()
        .map(|(code, name, kind, city, region, zip, active)| {
            let created = old(&mut rng, 100);
            json!({
                "code": code, "name": name, "kind": kind, "active": active,
                "address": {"street": format!("{} Commerce Dr", 10 + rng.below(990)), "city": city, "region": region, "postalCode": zip, "country": "US"},
                "createdAt": iso(created),
                "updatedAt": iso(created.plus_secs(day * rng.below(500) as i64)),
                "deleted": false
            })
        })
        .collect();

    let active_vendors: Vec<usize> = (0..VENDORS.len())
        .filter(|i| format!("V-{}", 1001 + i) != BLOCKED_VENDOR)
        .collect();
    let mut orders = Vec::with_capacity(purchase_orders as usize);
    for n in 0..purchase_orders as usize {
        let status = PO_STATUSES[n % PO_STATUSES.len()];
        // Spread creation over the last two years, newer orders later.
        let age_days =
            (730 * (purchase_orders as usize - n) / purchase_orders.max(1) as usize) as i64;
        let created = anchor.plus_secs(-age_days * day + rng.below(day as u64) as i64 - day);
        let updated = created
            .plus_secs(rng.below(20 * day as u64) as i64)
            .min(anchor.plus_secs(-60));
        let vendor = &VENDORS[active_vendors[rng.below(active_vendors.len() as u64) as usize]];
        let vendor_index = VENDORS.iter().position(|v| v.0 == vendor.0).unwrap_or(0);
        let location = LOCATIONS[rng.below(5) as usize].0;
        let line_count = 1 + rng.below(6) as usize;
        let order_date = &iso(created)[..10];
        let expected = &iso(created.plus_secs(day * (7 + rng.below(38) as i64)))[..10];
        let mut subtotal = Decimal::ZERO;
        let lines: Vec<Value> = (0..line_count)
            .map(|l| {
                let item_index = rng.below(ITEMS.len() as u64 - 1) as usize;
                let (name, _, uom, cost) = ITEMS[item_index];
                let qty = Decimal::from(1 + rng.below(99));
                let price: Decimal = cost.parse().unwrap_or(Decimal::ONE);
                let amount = (qty * price).round_dp(2);
                subtotal += amount;
                let received = match status {
                    "RECEIVED" | "CLOSED" => qty,
                    "PARTIALLY_RECEIVED" if l == 0 => {
                        (qty / Decimal::TWO).floor().max(Decimal::ONE)
                    }
                    _ => Decimal::ZERO,
                };
                let mut line = json!({
                    "lineNo": l + 1,
                    "itemNo": format!("ITM-{}", 1001 + item_index),
                    "description": name,
                    "quantity": qty.to_string(),
                    "quantityReceived": received.to_string(),
                    "uom": uom,
                    "unitPrice": price.to_string(),
                    "lineAmount": amount.to_string(),
                    "expectedDate": expected,
                });
                if n % 3 == 0 && l == 0 {
                    line["customFields"] =
                        json!({"glAccount": format!("5{:03}", 100 + item_index)});
                }
                line
            })
            .collect();
        let tax = (subtotal * Decimal::new(725, 4)).round_dp(2);
        let mut order = json!({
            "poId": format!("{}", 100_001 + n),
            "poNumber": format!("PO-{}", 100_001 + n),
            "status": status,
            "vendorId": format!("V-{}", 1001 + vendor_index),
            "shipToLocation": location,
            "currency": vendor.4,
            "orderDate": order_date,
            "expectedDate": expected,
            "memo": if n % 4 == 0 { Value::from(format!("Replenishment for {location}")) } else { Value::Null },
            "subtotal": subtotal.to_string(),
            "taxAmount": tax.to_string(),
            "totalAmount": (subtotal + tax).to_string(),
            "lines": lines,
            "createdAt": iso(created),
            "updatedAt": iso(updated),
            "deleted": false
        });
        if n % 3 == 0 {
            order["customFields"] = json!({
                "projectCode": format!("PRJ-{}", 2000 + rng.below(80)),
                "costCenter": format!("CC-{}", 100 + 10 * rng.below(40)),
                "requisitioner": REQUISITIONERS[n % 4],
            });
        }
        orders.push(order);
    }
    Dataset {
        vendors,
        items,
        locations,
        purchase_orders: orders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_every_case_is_present() {
        let a = generate(7, 120);
        assert_eq!(a.purchase_orders, generate(7, 120).purchase_orders);
        assert_ne!(a.purchase_orders, generate(8, 120).purchase_orders);
        for status in PO_STATUSES {
            assert!(
                a.purchase_orders.iter().any(|o| o["status"] == status),
                "{status} missing"
            );
        }
        assert!(
            a.purchase_orders
                .iter()
                .any(|o| o.get("customFields").is_some())
        );
        assert!(a.vendors.iter().any(|v| v["status"] == "BLOCKED"));
        assert!(a.items.iter().any(|i| i["onHand"] == "0"));
        assert!(
            a.purchase_orders
                .iter()
                .all(|o| o["vendorId"] != BLOCKED_VENDOR)
        );
        let anchor = anchor().to_rfc3339();
        assert!(
            a.purchase_orders
                .iter()
                .all(|o| o["updatedAt"].as_str().unwrap() < anchor.as_str())
        );
    }
}
