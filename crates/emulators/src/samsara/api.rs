//! Samsara's read endpoints: vehicles, drivers, GPS locations and vehicle stats (snapshot,
//! history, feed) and safety events, each paged with an opaque `after` cursor. Every point is
//! computed from the shared fleet generator when asked for, never stored.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::wire::{self, Checked, Refusal, num};
use super::{Query, Sam, SamsaraState};
use crate::common::clock::Millis;
use crate::common::fleet::{DEPOTS, Fix, Loop};

/// Samsara ids are large numbers; vehicle `n` is `VEHICLE_BASE + n`.
pub const VEHICLE_BASE: u64 = 281_474_976_710_656;
/// Driver `n` is `DRIVER_BASE + n`.
pub const DRIVER_BASE: u64 = 52_000_000;
/// Depot `i`'s tag is `TAG_BASE + i`.
pub const TAG_BASE: u64 = 4_800;

/// The Samsara id of vehicle `n`.
pub fn vehicle_id(n: u64) -> String {
    (VEHICLE_BASE + n).to_string()
}

/// The Samsara id of driver `n`.
pub fn driver_id(n: u64) -> String {
    (DRIVER_BASE + n).to_string()
}

/// The vehicle number of a Samsara vehicle id, if the fleet has it.
pub fn vehicle_n(sam: &SamsaraState, id: &str) -> Option<u64> {
    let n = id.parse::<u64>().ok()?.checked_sub(VEHICLE_BASE)?;
    sam.fleet.has_vehicle(n).then_some(n)
}

/// The driver number of a Samsara driver id, if the fleet has it.
pub fn driver_n(sam: &SamsaraState, id: &str) -> Option<u64> {
    let n = id.parse::<u64>().ok()?.checked_sub(DRIVER_BASE)?;
    sam.fleet.has_driver(n).then_some(n)
}

fn tag(depot: usize) -> Value {
    json!({"id": (TAG_BASE + depot as u64).to_string(), "name": DEPOTS[depot].city})
}

/// `{id, name}` of a vehicle.
pub fn vehicle_tiny(sam: &SamsaraState, n: u64) -> Value {
    json!({"id": vehicle_id(n), "name": sam.fleet.vehicle(n).name})
}

/// `{id, name}` of a driver.
pub fn driver_tiny(sam: &SamsaraState, n: u64) -> Value {
    json!({"id": driver_id(n), "name": sam.fleet.driver(n).name()})
}

fn vehicle_json(sam: &SamsaraState, n: u64) -> Value {
    let v = sam.fleet.vehicle(n);
    let mut o = json!({
        "id": vehicle_id(n),
        "name": v.name,
        "vin": v.vin,
        "licensePlate": v.license_plate,
        "make": v.make,
        "model": v.model,
        "year": v.year.to_string(),
        "serial": v.serial,
        "gateway": {"serial": v.serial, "model": "VG54NA"},
        "externalIds": {"samsara.serial": v.serial, "samsara.vin": v.vin},
        "harshAccelerationSettingType": "automatic",
        "vehicleRegulationMode": "regulated",
        "notes": "",
        "tags": [tag(v.depot)],
        "createdAtTime": wire::time(v.created_ms),
        "updatedAtTime": wire::time(v.created_ms),
    });
    if let Some(d) = v.driver {
        o["staticAssignedDriver"] = driver_tiny(sam, d);
    }
    o
}

fn driver_json(sam: &SamsaraState, n: u64) -> Value {
    let d = sam.fleet.driver(n);
    let mut o = json!({
        "id": driver_id(n),
        "name": d.name(),
        "username": d.username,
        "phone": d.phone,
        "licenseNumber": d.license_number,
        "licenseState": d.license_state,
        "driverActivationStatus": if d.active { "active" } else { "deactivated" },
        "eldExempt": false,
        "timezone": "America/New_York",
        "locale": "us",
        "tags": [tag(d.depot)],
        "createdAtTime": wire::time(d.created_ms),
        "updatedAtTime": wire::time(d.created_ms),
    });
    if let Some(v) = d.vehicle {
        o["staticAssignedVehicle"] = vehicle_tiny(sam, v);
    }
    o
}

/// Which vehicles a request is about: `vehicleIds` and `tagIds`, in vehicle order.
struct Selection {
    ids: Option<Vec<u64>>,
    depots: Option<Vec<usize>>,
}

impl Selection {
    fn from(sam: &SamsaraState, q: &Query) -> Checked<Self> {
        let ids = q.list("vehicleIds");
        let ids = if ids.is_empty() {
            None
        } else {
            let mut ns = Vec::with_capacity(ids.len());
            for id in &ids {
                match vehicle_n(sam, id) {
                    Some(n) => ns.push(n),
                    None => {
                        return Err(Refusal::bad(format!(
                            "Invalid value for vehicleIds: no vehicle with id {id}"
                        )));
                    }
                }
            }
            ns.sort_unstable();
            ns.dedup();
            Some(ns)
        };
        let tags = q.list("tagIds");
        let depots = if tags.is_empty() {
            None
        } else {
            let mut ds = Vec::new();
            for t in &tags {
                match t
                    .parse::<u64>()
                    .ok()
                    .and_then(|x| x.checked_sub(TAG_BASE))
                    .filter(|&i| (i as usize) < DEPOTS.len())
                {
                    Some(i) => ds.push(i as usize),
                    None => {
                        return Err(Refusal::bad(format!(
                            "Invalid value for tagIds: no tag with id {t}"
                        )));
                    }
                }
            }
            Some(ds)
        };
        Ok(Selection { ids, depots })
    }

    /// The first selected vehicle numbered `from` or more.
    fn next(&self, sam: &SamsaraState, from: u64) -> Option<u64> {
        let ok = |n: u64| {
            self.depots
                .as_ref()
                .is_none_or(|ds| ds.contains(&sam.fleet.vehicle(n).depot))
        };
        match &self.ids {
            Some(ids) => ids.iter().copied().filter(|&n| n >= from).find(|&n| ok(n)),
            None => (from.max(1)..=sam.fleet.vehicles).find(|&n| ok(n)),
        }
    }
}

/// `404` for a path Samsara does not serve.
pub async fn not_found(State(sam): State<Sam>) -> Response {
    wire::error(&sam, StatusCode::NOT_FOUND, "Resource not found")
}

/// `405` for a method a path does not take.
pub async fn method_not_allowed(State(sam): State<Sam>) -> Response {
    wire::error(&sam, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// A list paged by record number: cursor `l:<next n>`.
fn list_page(
    sam: &SamsaraState,
    q: &Query,
    count: u64,
    keep: impl Fn(u64) -> bool,
    render: impl Fn(u64) -> Value,
) -> Response {
    let limit = match wire::limit(q) {
        Ok(l) => l,
        Err(r) => return r.render(sam),
    };
    let start = match q.get("after") {
        None => 1,
        Some(a) => match wire::uncursor(a, "l").as_deref() {
            Some([n]) if *n >= 1 => *n as u64,
            _ => return wire::bad_cursor().render(sam),
        },
    };
    let mut data = Vec::new();
    let mut n = start;
    while n <= count && data.len() < limit {
        if keep(n) {
            data.push(render(n));
        }
        n += 1;
    }
    // A next page only when something is left to show.
    let more = (n..=count).any(&keep);
    wire::page(data, more.then(|| wire::cursor(&format!("l:{n}"))))
}

/// `createdAfterTime` and `updatedAfterTime` (records are never changed after creation, so
/// both compare with the creation time): the later of the two, or no bound.
fn changed_since(q: &Query) -> Checked<Millis> {
    let created = wire::optional_time(q, "createdAfterTime")?;
    let updated = wire::optional_time(q, "updatedAfterTime")?;
    Ok(created
        .into_iter()
        .chain(updated)
        .max()
        .unwrap_or(Millis::MIN))
}

/// `GET /fleet/vehicles`.
pub async fn vehicles(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let parsed = (|| {
        let sel = Selection::from(&sam, &q)?;
        Ok::<_, Refusal>((sel, changed_since(&q)?))
    })();
    let (sel, since) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(&sam),
    };
    list_page(
        &sam,
        &q,
        sam.fleet.vehicles,
        |n| sel.next(&sam, n) == Some(n) && sam.fleet.vehicle(n).created_ms >= since,
        |n| vehicle_json(&sam, n),
    )
}

/// `GET /fleet/vehicles/{id}`.
pub async fn vehicle(State(sam): State<Sam>, Path(id): Path<String>) -> Response {
    match vehicle_n(&sam, &id) {
        Some(n) => axum::Json(json!({ "data": vehicle_json(&sam, n) })).into_response(),
        None => wire::error(&sam, StatusCode::NOT_FOUND, "Vehicle not found"),
    }
}

/// `GET /fleet/drivers` (`driverActivationStatus`: `active`, the default, or `deactivated`).
pub async fn drivers(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let want_active = match q.get("driverActivationStatus") {
        None | Some("active") => true,
        Some("deactivated") => false,
        Some(other) => {
            return Refusal::bad(format!(
                "Invalid value for driverActivationStatus: {other:?} (active or deactivated)"
            ))
            .render(&sam);
        }
    };
    let since = match changed_since(&q) {
        Ok(s) => s,
        Err(r) => return r.render(&sam),
    };
    list_page(
        &sam,
        &q,
        sam.fleet.drivers,
        |n| {
            let d = sam.fleet.driver(n);
            d.active == want_active && d.created_ms >= since
        },
        |n| driver_json(&sam, n),
    )
}

/// `GET /fleet/drivers/{id}`.
pub async fn driver(State(sam): State<Sam>, Path(id): Path<String>) -> Response {
    match driver_n(&sam, &id) {
        Some(n) => axum::Json(json!({ "data": driver_json(&sam, n) })).into_response(),
        None => wire::error(&sam, StatusCode::NOT_FOUND, "Driver not found"),
    }
}

fn location_json(f: &Fix) -> Value {
    json!({
        "time": wire::time(f.time_ms),
        "latitude": num(f.latitude),
        "longitude": num(f.longitude),
        "heading": num(f.heading_degrees),
        "speed": num(f.speed_mph),
        "reverseGeo": {"formattedLocation": f.formatted_location()},
    })
}

fn gps_json(f: &Fix) -> Value {
    json!({
        "time": wire::time(f.time_ms),
        "latitude": num(f.latitude),
        "longitude": num(f.longitude),
        "headingDegrees": num(f.heading_degrees),
        "speedMilesPerHour": num(f.speed_mph),
        "reverseGeo": {"formattedLocation": f.formatted_location()},
        "isEcuSpeed": false,
    })
}

/// Every stat type Samsara documents for `types`; the emulated gateways report those in
/// [`REPORTED`], the others answer no series (the vehicle has no such sensor).
const STAT_TYPES: &[&str] = &[
    "ambientAirTemperatureMilliC",
    "auxInput1",
    "auxInput2",
    "auxInput3",
    "auxInput4",
    "auxInput5",
    "auxInput6",
    "auxInput7",
    "auxInput8",
    "auxInput9",
    "auxInput10",
    "barometricPressurePa",
    "batteryMilliVolts",
    "defLevelMilliPercent",
    "ecuSpeedMph",
    "engineCoolantTemperatureMilliC",
    "engineLoadPercent",
    "engineRpm",
    "engineStates",
    "faultCodes",
    "fuelPercents",
    "gps",
    "gpsDistanceMeters",
    "gpsOdometerMeters",
    "idlingDurationMilliseconds",
    "intakeManifoldTemperatureMilliC",
    "nfcCardScans",
    "obdEngineSeconds",
    "obdOdometerMeters",
    "syntheticEngineSeconds",
    "engineOilPressureKPa",
];

const REPORTED: [&str; 6] = [
    "gps",
    "fuelPercents",
    "obdOdometerMeters",
    "gpsOdometerMeters",
    "gpsDistanceMeters",
    "engineStates",
];

/// The `types` of a stats request: required, known, at most three.
fn stat_types(q: &Query) -> Checked<Vec<&'static str>> {
    let asked = q.list("types");
    if asked.is_empty() {
        return Err(Refusal::bad("types is required"));
    }
    let mut out: Vec<&'static str> = Vec::new();
    for t in &asked {
        match STAT_TYPES.iter().find(|k| **k == t.as_str()) {
            Some(k) if !out.contains(k) => out.push(*k),
            Some(_) => {}
            None => {
                return Err(Refusal::bad(format!("Invalid stat type(s): {t}")));
            }
        }
    }
    if out.len() > 3 {
        return Err(Refusal::bad(
            "Too many stat types: list up to 3 types per request",
        ));
    }
    Ok(out)
}

/// Whether a stat report (fuel, odometers, engine state) happens at report time `t`.
fn is_stat_time(sam: &SamsaraState, n: u64, t: Millis) -> bool {
    let step = sam.fleet.interval_ms.max(1);
    let k = (t - sam.fleet.jitter_ms(n)).div_euclid(step);
    k.rem_euclid(sam.settings().stat_every_points.max(1)) == 0
}

fn stat_value(kind: &str, f: &Fix) -> Option<Value> {
    let time = wire::time(f.time_ms);
    Some(match kind {
        "gps" => gps_json(f),
        "fuelPercents" => json!({"time": time, "value": f.fuel_percent}),
        "obdOdometerMeters" => json!({"time": time, "value": f.odometer_m}),
        // GPS odometers drift a little from the OBD one.
        "gpsOdometerMeters" => json!({"time": time, "value": f.odometer_m + f.odometer_m / 400}),
        "gpsDistanceMeters" => json!({"time": time, "value": num(f.distance_m as f64)}),
        "engineStates" => json!({"time": time, "value": if f.moving { "On" } else { "Off" }}),
        _ => return None,
    })
}

/// The latest report of `kind` at or before `at`.
fn latest_of(sam: &SamsaraState, route: &Loop, kind: &str, at: Millis) -> Option<Value> {
    if !REPORTED.contains(&kind) {
        return None;
    }
    let n = route.vehicle();
    let mut t = sam.fleet.last_report_at(n, at);
    if kind != "gps" {
        // Walk back to the last stat report (at most `stat_every_points` steps).
        let mut steps = 0;
        while !is_stat_time(sam, n, t) && steps < 1000 {
            t -= sam.fleet.interval_ms;
            steps += 1;
        }
    }
    stat_value(kind, &route.fix_at(t))
}

/// The key a snapshot uses for a type (`fuelPercents` → `fuelPercent`).
fn snapshot_key(kind: &str) -> &str {
    match kind {
        "fuelPercents" => "fuelPercent",
        "engineStates" => "engineState",
        other => other,
    }
}

/// A page of vehicles for a snapshot, cursor `<kind>:<at>:<next n>`.
fn snapshot_page(
    sam: &SamsaraState,
    sel: &Selection,
    start: u64,
    limit: usize,
    mut render: impl FnMut(u64) -> Value,
) -> (Vec<Value>, Option<u64>) {
    let mut data = Vec::new();
    let mut n = start;
    while data.len() < limit {
        match sel.next(sam, n) {
            Some(m) => {
                data.push(render(m));
                n = m + 1;
            }
            None => return (data, None),
        }
    }
    (data, sel.next(sam, n))
}

/// Reads `after` of a snapshot (`kind:<at>:<n>`): `(at, n)`.
fn snapshot_cursor(q: &Query, kind: &str, default_at: Millis) -> Checked<(Millis, u64)> {
    match q.get("after") {
        None => Ok((default_at, 1)),
        Some(a) => match wire::uncursor(a, kind).as_deref() {
            Some([at, n]) if *n >= 1 => Ok((*at, *n as u64)),
            _ => Err(wire::bad_cursor()),
        },
    }
}

/// `GET /fleet/vehicles/locations`: each vehicle's location at `time` (default now).
pub async fn locations(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let now = sam.core.clock.now_ms();
    let parsed = (|| {
        let sel = Selection::from(&sam, &q)?;
        let limit = wire::limit(&q)?;
        let at = wire::optional_time(&q, "time")?.unwrap_or(now).min(now);
        let (at, start) = snapshot_cursor(&q, "s", at)?;
        // A cursor never shows the future, whatever it says.
        let at = at.min(now);
        Ok::<_, Refusal>((sel, limit, at, start))
    })();
    let (sel, limit, at, start) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(&sam),
    };
    let (data, next) = snapshot_page(&sam, &sel, start, limit, |n| {
        let route = sam.fleet.route_of(n);
        let fix = route.fix_at(sam.fleet.last_report_at(n, at));
        json!({"id": vehicle_id(n), "name": sam.fleet.vehicle(n).name, "location": location_json(&fix)})
    });
    wire::page(data, next.map(|n| wire::cursor(&format!("s:{at}:{n}"))))
}

/// `GET /fleet/vehicles/stats`: each vehicle's latest value of each type at `time`.
pub async fn stats(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let now = sam.core.clock.now_ms();
    let parsed = (|| {
        let types = stat_types(&q)?;
        let sel = Selection::from(&sam, &q)?;
        let limit = wire::limit(&q)?;
        let at = wire::optional_time(&q, "time")?.unwrap_or(now).min(now);
        let (at, start) = snapshot_cursor(&q, "s", at)?;
        // A cursor never shows the future, whatever it says.
        let at = at.min(now);
        Ok::<_, Refusal>((types, sel, limit, at, start))
    })();
    let (types, sel, limit, at, start) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(&sam),
    };
    let (data, next) = snapshot_page(&sam, &sel, start, limit, |n| {
        let route = sam.fleet.route_of(n);
        let mut o = Map::new();
        o.insert("id".into(), json!(vehicle_id(n)));
        o.insert("name".into(), json!(sam.fleet.vehicle(n).name));
        for kind in &types {
            if let Some(v) = latest_of(&sam, &route, kind, at) {
                o.insert(snapshot_key(kind).into(), v);
            }
        }
        Value::Object(o)
    });
    wire::page(data, next.map(|n| wire::cursor(&format!("s:{at}:{n}"))))
}

/// What a series answer holds per vehicle.
#[derive(Clone, Copy)]
enum SeriesKind<'a> {
    /// `locations: [...]`
    Locations,
    /// one array per stat type
    Stats(&'a [&'static str]),
}

impl SeriesKind<'_> {
    /// Whether report time `t` of vehicle `n` carries anything for this answer.
    fn keeps(&self, sam: &SamsaraState, n: u64, t: Millis) -> bool {
        match self {
            SeriesKind::Locations => true,
            SeriesKind::Stats(types) => types.iter().any(|k| match *k {
                "gps" => true,
                k if REPORTED.contains(&k) => is_stat_time(sam, n, t),
                _ => false,
            }),
        }
    }

    fn render(&self, sam: &SamsaraState, n: u64, fixes: &[Fix]) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(vehicle_id(n)));
        o.insert("name".into(), json!(sam.fleet.vehicle(n).name));
        match self {
            SeriesKind::Locations => {
                o.insert(
                    "locations".into(),
                    Value::Array(fixes.iter().map(location_json).collect()),
                );
            }
            SeriesKind::Stats(types) => {
                for kind in types.iter() {
                    let values: Vec<Value> = fixes
                        .iter()
                        .filter(|f| *kind == "gps" || is_stat_time(sam, n, f.time_ms))
                        .filter_map(|f| stat_value(kind, f))
                        .collect();
                    if !values.is_empty() {
                        o.insert((*kind).into(), Value::Array(values));
                    }
                }
            }
        }
        Value::Object(o)
    }
}

/// Where a series page stops: the vehicle to resume with and the last time it showed.
type Resume = Option<(u64, Millis)>;

/// One page of a time series over `(from, to]`, vehicle by vehicle, starting with vehicle
/// `start.0` after `start.1`; at most `page_points` points and 512 vehicles.
fn series_page(
    sam: &SamsaraState,
    sel: &Selection,
    kind: SeriesKind<'_>,
    from: Millis,
    to: Millis,
    start: (u64, Millis),
) -> (Vec<Value>, Resume) {
    let mut budget = sam.settings().page_points;
    let mut data = Vec::new();
    if let SeriesKind::Stats(types) = kind
        && !types.iter().any(|t| REPORTED.contains(t))
    {
        // The gateways report none of these types: no vehicle has a point to show.
        return (data, None);
    }
    let (mut n, mut after) = start;
    while let Some(m) = sel.next(sam, n) {
        if m != n {
            after = from;
        }
        n = m;
        if data.len() == 512 {
            return (data, Some((n, after)));
        }
        let route = sam.fleet.route_of(n);
        let mut fixes = Vec::new();
        let mut full = false;
        for t in sam.fleet.report_times(n, after.max(from), to) {
            if !kind.keeps(sam, n, t) {
                continue;
            }
            if fixes.len() == budget {
                full = true;
                break;
            }
            fixes.push(route.fix_at(t));
        }
        if !fixes.is_empty() {
            budget -= fixes.len();
            let last = fixes[fixes.len() - 1].time_ms;
            data.push(kind.render(sam, n, &fixes));
            if full || budget == 0 {
                return (data, Some((n, last)));
            }
        }
        n += 1;
        after = from;
    }
    (data, None)
}

/// `startTime`/`endTime` of a history request, end capped at now.
fn history_window(sam: &SamsaraState, q: &Query) -> Checked<(Millis, Millis)> {
    let start = wire::required_time(q, "startTime")?;
    let end = wire::required_time(q, "endTime")?;
    if end < start {
        return Err(Refusal::bad("endTime must not be before startTime"));
    }
    Ok((start, end.min(sam.core.clock.now_ms())))
}

fn history(sam: &SamsaraState, q: &Query, kind: SeriesKind<'_>) -> Response {
    let parsed = (|| {
        let sel = Selection::from(sam, q)?;
        let (start, end) = history_window(sam, q)?;
        let resume = match q.get("after") {
            None => (1, start - 1),
            Some(a) => match wire::uncursor(a, "h").as_deref() {
                Some([n, t]) if *n >= 1 => (*n as u64, *t),
                _ => return Err(wire::bad_cursor()),
            },
        };
        Ok::<_, Refusal>((sel, start, end, resume))
    })();
    let (sel, start, end, resume) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(sam),
    };
    // Points at `startTime` itself are in the window (inclusive start and end).
    let (data, next) = series_page(sam, &sel, kind, start - 1, end, resume);
    wire::page(data, next.map(|(n, t)| wire::cursor(&format!("h:{n}:{t}"))))
}

/// `GET /fleet/vehicles/locations/history`.
pub async fn locations_history(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    history(&sam, &q, SeriesKind::Locations)
}

/// `GET /fleet/vehicles/stats/history`.
pub async fn stats_history(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let types = match stat_types(&q) {
        Ok(t) => t,
        Err(r) => return r.render(&sam),
    };
    history(&sam, &q, SeriesKind::Stats(&types))
}

/// A feed: the first call answers each vehicle's latest values (paged by vehicle, cursor
/// `s:<at>:<n>`); from then on `f:<from>:<to>:<n>:<after>` reads what was reported in
/// `(from, to]`, `to` pinned while a window takes several pages and `0` once caught up.
fn feed(sam: &SamsaraState, q: &Query, kind: SeriesKind<'_>) -> Response {
    let sel = match Selection::from(sam, q) {
        Ok(s) => s,
        Err(r) => return r.render(sam),
    };
    let now = sam.core.clock.now_ms();
    let after = q.get("after");
    let snapshot = match after {
        None => Some((now, 1)),
        Some(a) => match wire::uncursor(a, "s").as_deref() {
            Some([at, n]) if *n >= 1 => Some(((*at).min(now), *n as u64)),
            _ => None,
        },
    };
    if let Some((at, start)) = snapshot {
        let (data, next) = snapshot_page(sam, &sel, start, 512, |n| {
            let fix = sam
                .fleet
                .route_of(n)
                .fix_at(sam.fleet.last_report_at(n, at));
            let fixes = match kind {
                SeriesKind::Locations => vec![fix],
                SeriesKind::Stats(types) => {
                    // The latest value of each type, each at its own time.
                    let route = sam.fleet.route_of(n);
                    let mut o = Map::new();
                    o.insert("id".into(), json!(vehicle_id(n)));
                    o.insert("name".into(), json!(sam.fleet.vehicle(n).name));
                    for k in types {
                        if let Some(v) = latest_of(sam, &route, k, at) {
                            o.insert((*k).into(), json!([v]));
                        }
                    }
                    return Value::Object(o);
                }
            };
            kind.render(sam, n, &fixes)
        });
        return match next {
            Some(n) => wire::feed_page(data, wire::cursor(&format!("s:{at}:{n}")), true),
            None => wire::feed_page(data, wire::cursor(&format!("f:{at}:0:0:0")), false),
        };
    }
    let Some(a) = after else {
        return wire::bad_cursor().render(sam);
    };
    let Some([from, to, n, t]) = wire::uncursor(a, "f").and_then(|v| <[i64; 4]>::try_from(v).ok())
    else {
        return wire::bad_cursor().render(sam);
    };
    let to = to.min(now);
    let (to, start) = if to == 0 {
        (now, (1, from))
    } else {
        (to, (n.max(1) as u64, t))
    };
    if to <= from {
        return wire::feed_page(Vec::new(), a.to_string(), false);
    }
    let (data, next) = series_page(sam, &sel, kind, from, to, start);
    match next {
        Some((n, t)) => {
            wire::feed_page(data, wire::cursor(&format!("f:{from}:{to}:{n}:{t}")), true)
        }
        None => wire::feed_page(data, wire::cursor(&format!("f:{to}:0:0:0")), false),
    }
}

/// `GET /fleet/vehicles/locations/feed`.
pub async fn locations_feed(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    feed(&sam, &q, SeriesKind::Locations)
}

/// `GET /fleet/vehicles/stats/feed`.
pub async fn stats_feed(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let types = match stat_types(&q) {
        Ok(t) => t,
        Err(r) => return r.render(&sam),
    };
    feed(&sam, &q, SeriesKind::Stats(&types))
}

/// `GET /fleet/safety-events?startTime&endTime`: events ordered by time, cursor
/// `e:<time>:<vehicle>` of the last one shown.
pub async fn safety_events(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let parsed = (|| {
        let sel = Selection::from(&sam, &q)?;
        let (start, end) = history_window(&sam, &q)?;
        let limit = wire::limit(&q)?;
        let resume = match q.get("after") {
            None => None,
            Some(a) => match wire::uncursor(a, "e").as_deref() {
                Some([t, n]) => Some((*t, *n as u64)),
                _ => return Err(wire::bad_cursor()),
            },
        };
        Ok::<_, Refusal>((sel, start, end, limit, resume))
    })();
    let (sel, start, end, limit, resume) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(&sam),
    };
    // No vehicle existed before the fleet's oldest creation time (900 days before its origin):
    // a window reaching further back starts there instead of scanning empty centuries.
    let start = start.max(sam.fleet.origin_ms - 900 * 86_400_000);
    let labels = sam.settings().new_behavior_labels;
    let first_hour = resume.map_or(start, |(t, _)| t).div_euclid(3_600_000);
    let last_hour = end.div_euclid(3_600_000);
    let mut data = Vec::new();
    let mut last: Option<(Millis, u64)> = None;
    let mut more = false;
    'hours: for hour in first_hour..=last_hour {
        let mut events = Vec::new();
        let mut n = 1;
        while let Some(m) = sel.next(&sam, n) {
            if let Some(e) = sam.fleet.safety_event(m, hour, labels)
                && (start..=end).contains(&e.time_ms)
                && resume.is_none_or(|r| (e.time_ms, e.vehicle) > r)
            {
                events.push(e);
            }
            n = m + 1;
        }
        events.sort_by_key(|e| (e.time_ms, e.vehicle));
        for e in events {
            if data.len() == limit {
                more = true;
                break 'hours;
            }
            let fix = sam.fleet.route_of(e.vehicle).fix_at(e.time_ms);
            let mut o = json!({
                "id": e.id.to_string(),
                "time": wire::time(e.time_ms),
                "vehicle": vehicle_tiny(&sam, e.vehicle),
                "location": {"latitude": num(fix.latitude), "longitude": num(fix.longitude)},
                "maxAccelerationGForce": num(e.max_acceleration_g),
                "behaviorLabels": [{"label": e.label, "source": "automated", "name": e.label}],
                "coachingState": e.coaching_state,
            });
            if let Some(d) = sam.fleet.vehicle(e.vehicle).driver {
                o["driver"] = driver_tiny(&sam, d);
            }
            last = Some((e.time_ms, e.vehicle));
            data.push(o);
        }
    }
    let next = match (more, last) {
        (true, Some((t, n))) => Some(wire::cursor(&format!("e:{t}:{n}"))),
        _ => None,
    };
    wire::page(data, next)
}
