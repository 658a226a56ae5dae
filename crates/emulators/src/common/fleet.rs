//! Deterministic fleet shared by the fleet-tracking emulators (Samsara, NexTraq): vehicles,
//! drivers, and where each vehicle is at any instant. A vehicle drives a closed loop of stops
//! around its depot forever; its position, speed, odometer and fuel level are pure functions of
//! `(seed, vehicle, time)`, so history of any length costs no memory and new points appear as
//! the emulator's clock advances.

use super::clock::Millis;
use super::datagen::{Rng, mix};

const KIND_VEHICLE: u64 = 0xF1EE_0001;
const KIND_LOOP: u64 = 0xF1EE_0002;
const KIND_DRIVER: u64 = 0xF1EE_0003;
const KIND_SAFETY: u64 = 0xF1EE_0004;
const KIND_JITTER: u64 = 0xF1EE_0005;

const HOUR: i64 = 3_600_000;
const KM_PER_MILE: f64 = 1.609_344;

/// A depot: the city a vehicle is based in, and its tag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Depot {
    pub city: &'static str,
    /// Two-letter US state.
    pub state: &'static str,
    pub county: &'static str,
    /// The first three digits of the area's zip codes.
    pub zip: &'static str,
    /// Where the depot is (degrees).
    pub lat: f64,
    pub lon: f64,
}

/// The depots vehicles are spread over (one tag per depot).
pub const DEPOTS: [Depot; 8] = [
    Depot {
        city: "Atlanta",
        state: "GA",
        county: "Fulton",
        zip: "303",
        lat: 33.749,
        lon: -84.388,
    },
    Depot {
        city: "Charlotte",
        state: "NC",
        county: "Mecklenburg",
        zip: "282",
        lat: 35.227,
        lon: -80.843,
    },
    Depot {
        city: "Nashville",
        state: "TN",
        county: "Davidson",
        zip: "372",
        lat: 36.162,
        lon: -86.781,
    },
    Depot {
        city: "Columbus",
        state: "OH",
        county: "Franklin",
        zip: "432",
        lat: 39.961,
        lon: -82.999,
    },
    Depot {
        city: "Dallas",
        state: "TX",
        county: "Dallas",
        zip: "752",
        lat: 32.777,
        lon: -96.797,
    },
    Depot {
        city: "Denver",
        state: "CO",
        county: "Denver",
        zip: "802",
        lat: 39.739,
        lon: -104.990,
    },
    Depot {
        city: "Phoenix",
        state: "AZ",
        county: "Maricopa",
        zip: "850",
        lat: 33.448,
        lon: -112.074,
    },
    Depot {
        city: "Sacramento",
        state: "CA",
        county: "Sacramento",
        zip: "958",
        lat: 38.581,
        lon: -121.494,
    },
];

const STREETS: [&str; 16] = [
    "Main St",
    "Oak Ave",
    "Industrial Blvd",
    "Commerce Dr",
    "Peachtree Rd",
    "Market St",
    "Airport Rd",
    "River Rd",
    "Highland Ave",
    "Park Pkwy",
    "Elm St",
    "Washington Blvd",
    "Lakeview Dr",
    "Warehouse Way",
    "Depot St",
    "Freeway Access Rd",
];
const MAKES: [(&str, &str); 6] = [
    ("Freightliner", "Cascadia"),
    ("Ford", "Transit 250"),
    ("International", "LT625"),
    ("Ram", "ProMaster 2500"),
    ("Kenworth", "T680"),
    ("Chevrolet", "Express 3500"),
];
const FIRST: [&str; 16] = [
    "Jane", "Marcus", "Priya", "Luis", "Hannah", "Andre", "Mei", "Tomás", "Grace", "Omar",
    "Keisha", "Dmitri", "Rosa", "Ethan", "Aisha", "Connor",
];
const LAST: [&str; 16] = [
    "Doe", "Reyes", "Patel", "Okafor", "Kowalski", "Nguyen", "Bianchi", "Hughes", "Silva",
    "Haddad", "Brooks", "Ivanova", "Moreno", "Walsh", "Khan", "Fischer",
];
const POSTED_MPH: [f64; 5] = [25.0, 35.0, 45.0, 55.0, 65.0];

/// The fleet's shape: how many vehicles and drivers, and how often vehicles report.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    /// Seed of everything generated.
    pub seed: u64,
    /// Vehicles are numbered `1..=vehicles`.
    pub vehicles: u64,
    /// Drivers are numbered `1..=drivers`; driver `n` is assigned vehicle `n` when it exists.
    pub drivers: u64,
    /// Milliseconds between two reported positions of a vehicle.
    pub interval_ms: i64,
    /// Vehicles and drivers were created before this instant; odometers count from it.
    pub origin_ms: Millis,
}

/// One vehicle's fixed attributes.
#[derive(Debug, Clone)]
pub struct Vehicle {
    /// 1-based number within the fleet.
    pub n: u64,
    pub name: String,
    pub vin: String,
    pub license_plate: String,
    pub make: &'static str,
    pub model: &'static str,
    pub year: u32,
    pub serial: String,
    pub depot: usize,
    /// The driver statically assigned to it, if any (driver number).
    pub driver: Option<u64>,
    pub created_ms: Millis,
    /// Odometer at the fleet's origin, in meters (large enough for years of history before it).
    pub base_odometer_m: i64,
}

/// One driver's fixed attributes.
#[derive(Debug, Clone)]
pub struct Driver {
    pub n: u64,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub username: String,
    pub phone: String,
    pub license_number: String,
    pub license_state: &'static str,
    pub active: bool,
    /// The vehicle this driver is statically assigned to, if any.
    pub vehicle: Option<u64>,
    pub depot: usize,
    pub created_ms: Millis,
}

impl Driver {
    /// `First Last`.
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// One stop of a vehicle's loop and the road to the next one.
#[derive(Debug, Clone)]
struct Leg {
    lat: f64,
    lon: f64,
    dwell_ms: i64,
    street: &'static str,
    number: u32,
    posted_mph: f64,
    speed_mph: f64,
    length_m: f64,
    travel_ms: i64,
}

/// A vehicle's loop: where it drives and how long one round takes.
#[derive(Debug, Clone)]
pub struct Loop {
    n: u64,
    legs: Vec<Leg>,
    period_ms: i64,
    length_m: f64,
    offset_ms: i64,
    depot: usize,
    origin_ms: Millis,
    created_ms: Millis,
    base_odometer_m: i64,
    tank_range_m: f64,
}

/// Where a vehicle is at an instant, and what its sensors read.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    pub vehicle: u64,
    pub time_ms: Millis,
    pub latitude: f64,
    pub longitude: f64,
    /// Degrees clockwise from north, 0 to 359.9.
    pub heading_degrees: f64,
    pub speed_mph: f64,
    pub moving: bool,
    pub street: &'static str,
    pub house_number: u32,
    pub posted_speed_mph: u32,
    pub depot: usize,
    /// Odometer in meters (monotonic in time).
    pub odometer_m: i64,
    /// Meters driven since the vehicle's gateway was installed (its creation).
    pub distance_m: i64,
    /// Fuel level, whole percent (refuelled to 100 when it would drop below 20).
    pub fuel_percent: i64,
}

impl Fix {
    /// `1234 Main St, Atlanta, GA`: what a reverse geocoder would say.
    pub fn formatted_location(&self) -> String {
        let d = &DEPOTS[self.depot];
        format!(
            "{} {}, {}, {}",
            self.house_number, self.street, d.city, d.state
        )
    }

    /// A five-digit zip in the depot's area.
    pub fn zip(&self) -> String {
        format!("{}{:02}", DEPOTS[self.depot].zip, self.house_number % 97)
    }
}

/// A harsh-driving event detected by a vehicle's camera or gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyEvent {
    /// Unique and stable: `hour * 1_000_000 + vehicle`.
    pub id: u64,
    pub vehicle: u64,
    pub time_ms: Millis,
    /// A Samsara behaviour label (may be one a client does not know yet).
    pub label: &'static str,
    pub max_acceleration_g: f64,
    pub coaching_state: &'static str,
}

/// Behaviour labels of `/fleet/safety-events`, spelled as the Samsara SDK's enum spells them.
pub const KNOWN_LABELS: [&str; 8] = [
    "braking",
    "acceleration",
    "harshTurn",
    "speeding",
    "rollingStop",
    "followingDistance",
    "mobileUsage",
    "crash",
];

/// Labels newer than any client's enum: clients must tolerate them.
pub const NEW_LABELS: [&str; 2] = ["severeSpeeding", "laneDepartureWarningV3"];

const COACHING: [&str; 4] = ["needsReview", "coached", "dismissed", "reviewed"];

fn km_dx(lat: f64) -> f64 {
    111.320 * lat.to_radians().cos()
}

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let mid = (a.0 + b.0) / 2.0;
    let dy = (b.0 - a.0) * 110.574;
    let dx = (b.1 - a.1) * km_dx(mid);
    (dx * dx + dy * dy).sqrt() * 1000.0
}

fn bearing(a: (f64, f64), b: (f64, f64)) -> f64 {
    let mid = (a.0 + b.0) / 2.0;
    let dy = (b.0 - a.0) * 110.574;
    let dx = (b.1 - a.1) * km_dx(mid);
    let deg = dx.atan2(dy).to_degrees();
    (deg + 360.0) % 360.0
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

impl Fleet {
    /// Whether `n` numbers a vehicle of the fleet.
    pub fn has_vehicle(&self, n: u64) -> bool {
        (1..=self.vehicles).contains(&n)
    }

    /// Whether `n` numbers a driver of the fleet.
    pub fn has_driver(&self, n: u64) -> bool {
        (1..=self.drivers).contains(&n)
    }

    /// Vehicle `n`'s attributes (`n` from 1 to `vehicles`).
    pub fn vehicle(&self, n: u64) -> Vehicle {
        let mut r = Rng::for_record(self.seed, KIND_VEHICLE, n);
        let (make, model) = *r.pick(&MAKES);
        let year = 2015 + r.range(0, 9) as u32;
        let depot = (r.next_u64() % DEPOTS.len() as u64) as usize;
        let vin_chars: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
        let mut vin = String::from("1FU");
        for _ in 0..14 {
            vin.push(*r.pick(vin_chars) as char);
        }
        let plate = format!(
            "{}{}{}{:04}",
            r.range(1, 9),
            (b'A' + r.range(0, 25) as u8) as char,
            (b'A' + r.range(0, 25) as u8) as char,
            r.range(0, 9999)
        );
        let created_ms = self.origin_ms - (r.range(30, 900) as i64) * 86_400_000;
        Vehicle {
            n,
            name: format!(
                "{} {:04}",
                if n.is_multiple_of(3) { "Van" } else { "Truck" },
                n
            ),
            vin,
            license_plate: plate,
            make,
            model,
            year,
            serial: format!("G{:09X}", mix(self.seed, KIND_VEHICLE, n) % 0xF_FFFF_FFFF)
                .chars()
                .take(10)
                .collect(),
            depot,
            driver: (n <= self.drivers).then_some(n),
            created_ms,
            base_odometer_m: r.range(400_000_000, 900_000_000) as i64,
        }
    }

    /// Driver `n`'s attributes; every 15th driver is deactivated.
    pub fn driver(&self, n: u64) -> Driver {
        let mut r = Rng::for_record(self.seed, KIND_DRIVER, n);
        let first = *r.pick(&FIRST);
        let last = *r.pick(&LAST);
        let vehicle = (n <= self.vehicles).then_some(n);
        let depot = match vehicle {
            Some(v) => self.vehicle(v).depot,
            None => (r.next_u64() % DEPOTS.len() as u64) as usize,
        };
        Driver {
            n,
            first_name: first,
            last_name: last,
            username: format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), n)
                .replace('á', "a"),
            phone: format!("555{:07}", r.range(0, 9_999_999)),
            license_number: format!("D{:08}", r.range(0, 99_999_999)),
            license_state: DEPOTS[depot].state,
            active: !n.is_multiple_of(15),
            vehicle,
            depot,
            created_ms: self.origin_ms - (r.range(10, 800) as i64) * 86_400_000,
        }
    }

    /// Vehicle `n`'s loop (compute once and reuse for a series of fixes).
    pub fn route_of(&self, n: u64) -> Loop {
        let v = self.vehicle(n);
        let mut r = Rng::for_record(self.seed, KIND_LOOP, n);
        let depot = DEPOTS[v.depot];
        let stops = r.range(4, 7) as usize;
        let base_angle = (r.range(0, 359) as f64).to_radians();
        let mut points = Vec::with_capacity(stops);
        // The yard first, then stops around the depot at increasing angles (a loop that
        // does not cross itself).
        let yard = (
            depot.lat + (r.range(0, 2000) as f64 - 1000.0) / 100_000.0,
            depot.lon + (r.range(0, 2000) as f64 - 1000.0) / 100_000.0,
        );
        points.push(yard);
        for i in 1..stops {
            let angle = base_angle
                + (i as f64) * std::f64::consts::TAU / (stops as f64)
                + (r.range(0, 40) as f64 - 20.0).to_radians();
            let radius_km = 3.0 + r.range(0, 2200) as f64 / 100.0;
            let dlat = radius_km * angle.cos() / 110.574;
            let dlon = radius_km * angle.sin() / km_dx(depot.lat);
            points.push((yard.0 + dlat, yard.1 + dlon));
        }
        let mut legs = Vec::with_capacity(stops);
        let mut period = 0i64;
        let mut length = 0f64;
        for i in 0..stops {
            let a = points[i];
            let b = points[(i + 1) % stops];
            let posted = *r.pick(&POSTED_MPH);
            let speed = posted * (0.8 + r.range(0, 25) as f64 / 100.0);
            let len = distance_m(a, b);
            let travel_ms = ((len / 1000.0) / (speed * KM_PER_MILE) * 3_600_000.0).round() as i64;
            let dwell_ms = if i == 0 {
                r.range(60, 180) as i64 * 60_000
            } else {
                r.range(5, 40) as i64 * 60_000
            };
            legs.push(Leg {
                lat: a.0,
                lon: a.1,
                dwell_ms,
                street: STREETS[(r.next_u64() % STREETS.len() as u64) as usize],
                number: r.range(100, 9800) as u32,
                posted_mph: posted,
                speed_mph: speed,
                length_m: len,
                travel_ms: travel_ms.max(60_000),
            });
            period += dwell_ms + travel_ms.max(60_000);
            length += len;
        }
        Loop {
            n,
            legs,
            period_ms: period.max(1),
            length_m: length,
            offset_ms: (r.next_u64() % period.max(1) as u64) as i64,
            depot: v.depot,
            origin_ms: self.origin_ms,
            created_ms: v.created_ms,
            base_odometer_m: v.base_odometer_m,
            tank_range_m: 500_000.0 + r.range(0, 300_000) as f64,
        }
    }

    /// Where vehicle `n`'s reports fall within each interval: vehicles report at different
    /// instants, as real gateways do.
    pub fn jitter_ms(&self, n: u64) -> i64 {
        (mix(self.seed, KIND_JITTER, n) % self.interval_ms.max(1) as u64) as i64
    }

    /// The report times of vehicle `n` in `(after, upto]`, oldest first.
    pub fn report_times(
        &self,
        n: u64,
        after: Millis,
        upto: Millis,
    ) -> impl Iterator<Item = Millis> {
        let step = self.interval_ms.max(1);
        let j = self.jitter_ms(n);
        // First k with k*step + j > after.
        let k0 = (after - j).div_euclid(step) + 1;
        (k0..)
            .map(move |k| k * step + j)
            .take_while(move |&t| t <= upto)
    }

    /// The last report time of vehicle `n` at or before `t`.
    pub fn last_report_at(&self, n: u64, t: Millis) -> Millis {
        let step = self.interval_ms.max(1);
        let j = self.jitter_ms(n);
        (t - j).div_euclid(step) * step + j
    }

    /// Safety events of vehicle `n` in the hour starting at `hour * 3600 s` (zero or one).
    pub fn safety_event(&self, n: u64, hour: i64, new_labels: bool) -> Option<SafetyEvent> {
        let h = mix(
            self.seed,
            KIND_SAFETY ^ n.wrapping_mul(0x100_0000_01B3),
            hour as u64,
        );
        // About one event per vehicle per day.
        if h % 1000 >= 42 {
            return None;
        }
        let mut r = Rng::for_record(self.seed, KIND_SAFETY, h);
        let time_ms = hour * HOUR + (r.next_u64() % HOUR as u64) as i64;
        let label = if new_labels && r.chance(80) {
            *r.pick(&NEW_LABELS)
        } else {
            *r.pick(&KNOWN_LABELS)
        };
        Some(SafetyEvent {
            id: (hour as u64).saturating_mul(1_000_000) + n,
            vehicle: n,
            time_ms,
            label,
            max_acceleration_g: round_to(0.2 + r.range(0, 600) as f64 / 1000.0, 3),
            coaching_state: COACHING[(r.next_u64() % COACHING.len() as u64) as usize],
        })
    }
}

impl Loop {
    /// The vehicle number.
    pub fn vehicle(&self) -> u64 {
        self.n
    }

    /// Meters driven within one round, up to `u` ms into it.
    fn within(&self, mut u: i64) -> (f64, usize, f64, bool) {
        let mut dist = 0f64;
        for (i, leg) in self.legs.iter().enumerate() {
            if u < leg.dwell_ms {
                return (dist, i, 0.0, false);
            }
            u -= leg.dwell_ms;
            if u < leg.travel_ms {
                let f = u as f64 / leg.travel_ms as f64;
                return (dist + leg.length_m * f, i, f, true);
            }
            u -= leg.travel_ms;
            dist += leg.length_m;
        }
        (self.length_m, 0, 0.0, false)
    }

    /// Meters driven from `from` to `to` (negative when `to` is earlier).
    fn travelled(&self, from: Millis, to: Millis) -> f64 {
        let shifted = |t: Millis| t + self.offset_ms;
        let p = self.period_ms;
        let rounds = shifted(to).div_euclid(p) - shifted(from).div_euclid(p);
        let (d_to, ..) = self.within(shifted(to).rem_euclid(p));
        let (d_from, ..) = self.within(shifted(from).rem_euclid(p));
        rounds as f64 * self.length_m + d_to - d_from
    }

    /// The vehicle's fix at `t`.
    pub fn fix_at(&self, t: Millis) -> Fix {
        let u = (t + self.offset_ms).rem_euclid(self.period_ms);
        let (_, i, f, moving) = self.within(u);
        let leg = &self.legs[i];
        let next = &self.legs[(i + 1) % self.legs.len()];
        let a = (leg.lat, leg.lon);
        let b = (next.lat, next.lon);
        let (lat, lon) = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
        // Speed wobbles a little from one report to the next.
        let wobble = ((mix(self.n, t as u64, 7) % 61) as f64 - 30.0) / 10.0;
        let speed = if moving {
            round_to((leg.speed_mph + wobble).max(3.0), 1)
        } else {
            0.0
        };
        // Signed: history before the origin has a smaller odometer.
        let since = self.travelled(self.origin_ms, t);
        let fuel_used = since.rem_euclid(self.tank_range_m) / self.tank_range_m;
        Fix {
            vehicle: self.n,
            time_ms: t,
            latitude: round_to(lat, 6),
            longitude: round_to(lon, 6),
            heading_degrees: round_to(bearing(a, b), 1),
            speed_mph: speed,
            moving,
            street: leg.street,
            house_number: leg.number + (f * 400.0) as u32 / 2 * 2,
            posted_speed_mph: leg.posted_mph as u32,
            depot: self.depot,
            odometer_m: self.base_odometer_m + since.round() as i64,
            distance_m: self.travelled(self.created_ms, t).max(0.0).round() as i64,
            fuel_percent: (100.0 - fuel_used * 80.0).round() as i64,
        }
    }
}

/// A compass point for a heading (`N`, `NE`, …), as web trackers show it.
pub fn compass(heading_degrees: f64) -> &'static str {
    const POINTS: [&str; 8] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
    POINTS[(((heading_degrees + 22.5).rem_euclid(360.0)) / 45.0) as usize % 8]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            seed: 7,
            vehicles: 20,
            drivers: 22,
            interval_ms: 30_000,
            origin_ms: 1_767_225_600_000,
        }
    }

    #[test]
    fn a_fix_is_a_pure_function_of_vehicle_and_time() {
        let f = fleet();
        let t = f.origin_ms + 12_345_678;
        assert_eq!(f.route_of(3).fix_at(t), f.route_of(3).fix_at(t));
        assert_ne!(f.route_of(3).fix_at(t), f.route_of(4).fix_at(t));
    }

    #[test]
    fn odometers_never_go_back_and_vehicles_stay_near_their_depot() {
        let f = fleet();
        for n in 1..=f.vehicles {
            let l = f.route_of(n);
            let mut last = 0;
            let mut moved = false;
            for k in 0..2_000 {
                let fix = l.fix_at(f.origin_ms - 86_400_000 + k * 60_000);
                assert!(fix.odometer_m >= last, "vehicle {n} at {k}");
                last = fix.odometer_m;
                moved |= fix.moving;
                let d = DEPOTS[fix.depot];
                assert!((fix.latitude - d.lat).abs() < 0.5 && (fix.longitude - d.lon).abs() < 0.5);
                assert!((20..=100).contains(&fix.fuel_percent));
            }
            assert!(moved, "vehicle {n} never moved");
        }
    }

    #[test]
    fn report_times_tile_the_timeline() {
        let f = fleet();
        let a: Vec<_> = f.report_times(5, 0, 600_000).collect();
        let b: Vec<_> = f
            .report_times(5, 0, 300_000)
            .chain(f.report_times(5, 300_000, 600_000))
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        assert_eq!(f.last_report_at(5, a[3] + 1), a[3]);
        assert_eq!(f.last_report_at(5, a[3]), a[3]);
    }

    #[test]
    fn compass_points() {
        assert_eq!(compass(0.0), "N");
        assert_eq!(compass(44.0), "NE");
        assert_eq!(compass(359.0), "N");
        assert_eq!(compass(180.0), "S");
    }
}
