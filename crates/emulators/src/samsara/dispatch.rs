//! Samsara dispatch routes (`/fleet/routes`: list, create, read, JSON-merge-patch update,
//! delete) whose stops move through `scheduled`, `en route`, `arrived` and `departed` as the
//! emulator's clock passes their scheduled times, and `POST /fuel-purchase`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{driver_n, driver_tiny, vehicle_n, vehicle_tiny};
use super::wire::{self, Checked, Refusal, bad_request, num};
use super::{Query, Sam, SamsaraState};
use crate::common::clock::{Millis, parse_rfc3339};
use crate::common::fleet::DEPOTS;

/// Depot `i`'s address (usable as a stop's `addressId`) is `ADDRESS_BASE + i`.
pub const ADDRESS_BASE: u64 = 71_000;
const ROUTE_BASE: u64 = 4_100_000_000;
const STOP_BASE: u64 = 5_200_000_000;
/// A stop with no scheduled time is reached this long after the previous one left [I].
const LEG_MS: i64 = 30 * 60_000;
/// A stop with no departure time is left this long after arrival [I].
const DWELL_MS: i64 = 10 * 60_000;

/// Where a stop is: one of the organization's addresses, or a single-use location.
#[derive(Debug, Clone)]
enum Place {
    Address(usize),
    SingleUse {
        latitude: f64,
        longitude: f64,
        address: Option<String>,
        radius_meters: Option<f64>,
    },
}

#[derive(Debug, Clone)]
struct Stop {
    id: u64,
    name: String,
    notes: Option<String>,
    place: Place,
    arrival: Option<Millis>,
    departure: Option<Millis>,
    external_ids: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Route {
    id: u64,
    name: String,
    notes: Option<String>,
    driver: Option<u64>,
    vehicle: Option<u64>,
    external_ids: Map<String, Value>,
    settings: Map<String, Value>,
    tag_ids: Vec<String>,
    stops: Vec<Stop>,
}

/// Routes created through the API.
#[derive(Debug, Default)]
pub struct Routes {
    by_id: BTreeMap<u64, Route>,
    next_route: u64,
    next_stop: u64,
}

impl Routes {
    fn route_id(&mut self) -> u64 {
        self.next_route += 1;
        ROUTE_BASE + self.next_route
    }
    fn stop_id(&mut self) -> u64 {
        self.next_stop += 1;
        STOP_BASE + self.next_stop
    }
}

type Invalid = String;

fn time_field(o: &Map<String, Value>, name: &str) -> Result<Option<Millis>, Invalid> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| format!("{name} must be an RFC 3339 time, got {s:?}")),
        Some(other) => Err(format!("{name} must be a string, got {other}")),
    }
}

fn string_field(o: &Map<String, Value>, name: &str) -> Result<Option<String>, Invalid> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{name} must be a string, got {other}")),
    }
}

fn map_field(o: &Map<String, Value>, name: &str) -> Result<Option<Map<String, Value>>, Invalid> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if m.values().all(Value::is_string) {
                Ok(Some(m.clone()))
            } else {
                Err(format!("{name} values must be strings"))
            }
        }
        Some(other) => Err(format!("{name} must be an object, got {other}")),
    }
}

fn parse_place(o: &Map<String, Value>) -> Result<Place, Invalid> {
    let address = string_field(o, "addressId")?;
    let single = o.get("singleUseLocation").filter(|v| !v.is_null());
    match (address, single) {
        (Some(_), Some(_)) | (None, None) => {
            Err("each stop needs exactly one of addressId and singleUseLocation".into())
        }
        (Some(id), None) => id
            .parse::<u64>()
            .ok()
            .and_then(|x| x.checked_sub(ADDRESS_BASE))
            .filter(|&i| (i as usize) < DEPOTS.len())
            .map(|i| Place::Address(i as usize))
            .ok_or_else(|| format!("addressId {id} does not exist")),
        (None, Some(Value::Object(s))) => {
            let coord = |k: &str| -> Result<f64, Invalid> {
                s.get(k).and_then(Value::as_f64).ok_or_else(|| {
                    format!("singleUseLocation.{k} is required and must be a number")
                })
            };
            let (latitude, longitude) = (coord("latitude")?, coord("longitude")?);
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err("singleUseLocation latitude or longitude out of range".into());
            }
            Ok(Place::SingleUse {
                latitude,
                longitude,
                address: string_field(s, "address")?,
                radius_meters: s.get("radiusMeters").and_then(Value::as_f64),
            })
        }
        (None, Some(_)) => Err("singleUseLocation must be an object".into()),
    }
}

fn parse_stop(routes: &mut Routes, v: &Value, existing: Option<&Stop>) -> Result<Stop, Invalid> {
    let o = v.as_object().ok_or("each stop must be an object")?;
    if o.get("orders")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err("orders on stops are not supported by this emulator".into());
    }
    let place = match existing {
        Some(e) if !o.contains_key("addressId") && !o.contains_key("singleUseLocation") => {
            e.place.clone()
        }
        _ => parse_place(o)?,
    };
    let name = match (string_field(o, "name")?, existing) {
        (Some(n), _) => n,
        (None, Some(e)) => e.name.clone(),
        (None, None) => match &place {
            Place::Address(i) => format!("{} Depot", DEPOTS[*i].city),
            Place::SingleUse { address, .. } => address
                .clone()
                .unwrap_or_else(|| "Single-use location".into()),
        },
    };
    let keep = |field: &str, old: Option<Millis>| -> Result<Option<Millis>, Invalid> {
        if o.contains_key(field) {
            time_field(o, field)
        } else {
            Ok(old)
        }
    };
    Ok(Stop {
        id: match existing {
            Some(e) => e.id,
            None => routes.stop_id(),
        },
        name,
        notes: if o.contains_key("notes") {
            string_field(o, "notes")?
        } else {
            existing.and_then(|e| e.notes.clone())
        },
        place,
        arrival: keep("scheduledArrivalTime", existing.and_then(|e| e.arrival))?,
        departure: keep("scheduledDepartureTime", existing.and_then(|e| e.departure))?,
        external_ids: match map_field(o, "externalIds")? {
            Some(m) => m,
            None => existing.map(|e| e.external_ids.clone()).unwrap_or_default(),
        },
    })
}

/// Applies the members of `o` to `route` (creation starts from an empty route).
fn apply(
    sam: &SamsaraState,
    routes: &mut Routes,
    route: &mut Route,
    o: &Map<String, Value>,
) -> Result<(), Invalid> {
    if o.contains_key("name") {
        match string_field(o, "name")? {
            Some(n) if !n.trim().is_empty() => route.name = n,
            _ => return Err("name must not be empty".into()),
        }
    }
    if o.contains_key("notes") {
        route.notes = string_field(o, "notes")?;
    }
    if o.contains_key("driverId") {
        route.driver = match string_field(o, "driverId")? {
            None => None,
            Some(id) => {
                Some(driver_n(sam, &id).ok_or_else(|| format!("driver {id} does not exist"))?)
            }
        };
    }
    if o.contains_key("vehicleId") {
        route.vehicle = match string_field(o, "vehicleId")? {
            None => None,
            Some(id) => {
                Some(vehicle_n(sam, &id).ok_or_else(|| format!("vehicle {id} does not exist"))?)
            }
        };
    }
    if let Some(m) = map_field(o, "externalIds")? {
        route.external_ids = m;
    }
    if let Some(s) = o.get("settings").filter(|v| !v.is_null()) {
        let s = s.as_object().ok_or("settings must be an object")?;
        const ALLOWED: [(&str, &[&str]); 3] = [
            (
                "routeStartingCondition",
                &["departFirstStop", "arriveFirstStop"],
            ),
            (
                "routeCompletionCondition",
                &["arriveLastStop", "departLastStop"],
            ),
            (
                "sequencingMethod",
                &["unknown", "scheduledArrivalTime", "manual"],
            ),
        ];
        for (k, v) in s {
            let Some((_, values)) = ALLOWED.iter().find(|(name, _)| name == k) else {
                return Err(format!("settings.{k} is not a route setting"));
            };
            if !v.as_str().is_some_and(|x| values.contains(&x)) {
                return Err(format!("settings.{k} must be one of {}", values.join(", ")));
            }
            route.settings.insert(k.clone(), v.clone());
        }
    }
    if let Some(tags) = o.get("tagIds").filter(|v| !v.is_null()) {
        route.tag_ids = tags
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or("tagIds must be an array of strings")?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
    }
    if let Some(stops) = o.get("stops") {
        let stops = stops.as_array().ok_or("stops must be an array")?;
        let mut next = Vec::with_capacity(stops.len());
        for s in stops {
            // A stop with an `id` of this route is updated; one without is created; stops
            // left out are deleted (the documented PATCH semantics).
            let existing = match s.get("id").filter(|v| !v.is_null()) {
                None => None,
                Some(id) => {
                    let id = id.as_str().and_then(|x| x.parse::<u64>().ok());
                    Some(
                        route
                            .stops
                            .iter()
                            .find(|st| Some(st.id) == id)
                            .ok_or_else(|| {
                                format!("stop {} is not a stop of this route", s["id"])
                            })?,
                    )
                }
            };
            next.push(parse_stop(routes, s, existing)?);
        }
        route.stops = next;
    }
    if route.stops.is_empty() {
        return Err("a route needs at least one stop".into());
    }
    let first = &route.stops[0];
    if first.arrival.is_none() && first.departure.is_none() {
        return Err(
            "the first stop needs a scheduledArrivalTime or a scheduledDepartureTime".into(),
        );
    }
    Ok(())
}

/// Each stop's scheduled arrival and departure, filling gaps [I].
fn schedule(route: &Route) -> Vec<(Millis, Millis)> {
    let mut out: Vec<(Millis, Millis)> = Vec::with_capacity(route.stops.len());
    for s in &route.stops {
        let prev_departure = out.last().map(|p| p.1);
        let arrival = s
            .arrival
            .or(s.departure.map(|d| d - DWELL_MS))
            .or(prev_departure.map(|d| d + LEG_MS))
            .unwrap_or(0);
        let departure = s.departure.unwrap_or(arrival + DWELL_MS).max(arrival);
        out.push((arrival, departure));
    }
    out
}

fn route_json(sam: &SamsaraState, r: &Route, now: Millis) -> Value {
    let times = schedule(r);
    let assigned = r.driver.is_some() || r.vehicle.is_some();
    let mut stops = Vec::with_capacity(r.stops.len());
    for (i, (s, &(arrival, departure))) in r.stops.iter().zip(&times).enumerate() {
        let prev_left = i == 0 || times[i - 1].1 <= now;
        let state = if !assigned {
            "unassigned"
        } else if departure <= now {
            "departed"
        } else if arrival <= now {
            "arrived"
        } else if i > 0 && prev_left {
            "en route"
        } else {
            "scheduled"
        };
        let mut o = json!({
            "id": s.id.to_string(),
            "name": s.name,
            "state": state,
            "sequenceNumber": i + 1,
            // Required by the response type; orders on stops are not emulated.
            "orders": [],
            "scheduledArrivalTime": wire::time(arrival),
            "scheduledDepartureTime": wire::time(departure),
            "externalIds": s.external_ids,
        });
        if let Some(n) = &s.notes {
            o["notes"] = json!(n);
        }
        match &s.place {
            Place::Address(d) => {
                o["address"] = json!({"id": (ADDRESS_BASE + *d as u64).to_string(), "name": format!("{} Depot", DEPOTS[*d].city)});
            }
            Place::SingleUse {
                latitude,
                longitude,
                address,
                radius_meters,
            } => {
                let mut l = json!({"latitude": num(*latitude), "longitude": num(*longitude)});
                if let Some(a) = address {
                    l["address"] = json!(a);
                }
                if let Some(m) = radius_meters {
                    l["radiusMeters"] = num(*m);
                }
                o["singleUseLocation"] = l;
            }
        }
        if state == "en route" {
            o["enRouteTime"] = json!(wire::time(times[i - 1].1));
            o["eta"] = json!(wire::time(arrival));
        }
        if matches!(state, "arrived" | "departed") {
            o["actualArrivalTime"] = json!(wire::time(arrival));
        }
        if state == "departed" {
            o["actualDepartureTime"] = json!(wire::time(departure));
        }
        stops.push(o);
    }
    let mut settings = json!({
        "routeStartingCondition": "departFirstStop",
        "routeCompletionCondition": "arriveLastStop",
        "sequencingMethod": "scheduledArrivalTime",
    });
    for (k, v) in &r.settings {
        settings[k] = v.clone();
    }
    let start = times.first().map_or(0, |t| t.1);
    let end = times.last().map_or(0, |t| t.0);
    let mut o = json!({
        "id": r.id.to_string(),
        "name": r.name,
        "externalIds": r.external_ids,
        "settings": settings,
        "tagIds": r.tag_ids,
        "scheduledRouteStartTime": wire::time(start),
        "scheduledRouteEndTime": wire::time(end),
        "orgLocalTimezone": "America/New_York",
        "stops": stops,
    });
    if let Some(n) = &r.notes {
        o["notes"] = json!(n);
    }
    if let Some(d) = r.driver {
        o["driver"] = driver_tiny(sam, d);
    }
    if let Some(v) = r.vehicle {
        o["vehicle"] = vehicle_tiny(sam, v);
    }
    if assigned && start <= now {
        o["actualRouteStartTime"] = json!(wire::time(start));
    }
    if assigned && end <= now {
        o["actualRouteEndTime"] = json!(wire::time(end));
    }
    o
}

fn json_object(body: &Bytes) -> Checked<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Refusal::bad("The request body must be a JSON object")),
        Err(e) => Err(Refusal::bad(format!("Invalid JSON in request body: {e}"))),
    }
}

fn route_ref(routes: &Routes, id: &str) -> Option<u64> {
    // `key:value` names a route by one of its external ids.
    if let Some((k, v)) = id.split_once(':') {
        return routes
            .by_id
            .values()
            .find(|r| r.external_ids.get(k).and_then(Value::as_str) == Some(v))
            .map(|r| r.id);
    }
    id.parse::<u64>()
        .ok()
        .filter(|n| routes.by_id.contains_key(n))
}

/// `POST /fleet/routes`.
pub async fn create_route(State(sam): State<Sam>, body: Bytes) -> Response {
    let o = match json_object(&body) {
        Ok(o) => o,
        Err(r) => return r.render(&sam),
    };
    if !o.get("name").is_some_and(Value::is_string) {
        return bad_request(&sam, "name is required");
    }
    if !o.get("stops").is_some_and(Value::is_array) {
        return bad_request(&sam, "stops is required");
    }
    let mut routes = sam.routes.lock().unwrap_or_else(|e| e.into_inner());
    let mut route = Route {
        id: 0,
        name: String::new(),
        notes: None,
        driver: None,
        vehicle: None,
        external_ids: Map::new(),
        settings: Map::new(),
        tag_ids: Vec::new(),
        stops: Vec::new(),
    };
    if let Err(m) = apply(&sam, &mut routes, &mut route, &o) {
        return bad_request(&sam, m);
    }
    route.id = routes.route_id();
    let v = route_json(&sam, &route, sam.core.clock.now_ms());
    routes.by_id.insert(route.id, route);
    axum::Json(json!({ "data": v })).into_response()
}

/// `PATCH /fleet/routes/{id}` (JSON merge patch; `stops` replaces the list by stop id).
pub async fn patch_route(State(sam): State<Sam>, Path(id): Path<String>, body: Bytes) -> Response {
    let o = match json_object(&body) {
        Ok(o) => o,
        Err(r) => return r.render(&sam),
    };
    let mut routes = sam.routes.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rid) = route_ref(&routes, &id) else {
        return wire::error(&sam, StatusCode::NOT_FOUND, "Route not found");
    };
    let Some(mut route) = routes.by_id.get(&rid).cloned() else {
        return wire::error(&sam, StatusCode::NOT_FOUND, "Route not found");
    };
    if let Err(m) = apply(&sam, &mut routes, &mut route, &o) {
        return bad_request(&sam, m);
    }
    let v = route_json(&sam, &route, sam.core.clock.now_ms());
    routes.by_id.insert(rid, route);
    axum::Json(json!({ "data": v })).into_response()
}

/// `GET /fleet/routes/{id}`.
pub async fn get_route(State(sam): State<Sam>, Path(id): Path<String>) -> Response {
    let routes = sam.routes.lock().unwrap_or_else(|e| e.into_inner());
    match route_ref(&routes, &id).and_then(|r| routes.by_id.get(&r)) {
        Some(r) => axum::Json(json!({"data": route_json(&sam, r, sam.core.clock.now_ms())}))
            .into_response(),
        None => wire::error(&sam, StatusCode::NOT_FOUND, "Route not found"),
    }
}

/// `DELETE /fleet/routes/{id}`: `204` with no body.
pub async fn delete_route(State(sam): State<Sam>, Path(id): Path<String>) -> Response {
    let mut routes = sam.routes.lock().unwrap_or_else(|e| e.into_inner());
    match route_ref(&routes, &id) {
        Some(r) => {
            routes.by_id.remove(&r);
            StatusCode::NO_CONTENT.into_response()
        }
        None => wire::error(&sam, StatusCode::NOT_FOUND, "Route not found"),
    }
}

/// `GET /fleet/routes?startTime&endTime`: routes whose schedule overlaps the window [I],
/// by id, cursor `r:<last id>`.
pub async fn list_routes(State(sam): State<Sam>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let parsed = (|| {
        let start = wire::required_time(&q, "startTime")?;
        let end = wire::required_time(&q, "endTime")?;
        let limit = wire::limit(&q)?;
        let after = match q.get("after") {
            None => 0,
            Some(a) => match wire::uncursor(a, "r").as_deref() {
                Some([id]) => *id as u64,
                _ => return Err(wire::bad_cursor()),
            },
        };
        Ok::<_, Refusal>((start, end, limit, after))
    })();
    let (start, end, limit, after) = match parsed {
        Ok(p) => p,
        Err(r) => return r.render(&sam),
    };
    let now = sam.core.clock.now_ms();
    let routes = sam.routes.lock().unwrap_or_else(|e| e.into_inner());
    let mut matching = routes.by_id.range(after + 1..).map(|(_, r)| r).filter(|r| {
        let t = schedule(r);
        let (s, e) = (t.first().map_or(0, |x| x.0), t.last().map_or(0, |x| x.1));
        s <= end && e >= start
    });
    let mut data = Vec::new();
    let mut last = 0;
    for r in matching.by_ref().take(limit) {
        data.push(route_json(&sam, r, now));
        last = r.id;
    }
    let more = matching.next().is_some();
    wire::page(data, more.then(|| wire::cursor(&format!("r:{last}"))))
}

/// `POST /fuel-purchase`: validates and records a fuel purchase, answers its `uuid`.
pub async fn fuel_purchase(State(sam): State<Sam>, body: Bytes) -> Response {
    let o = match json_object(&body) {
        Ok(o) => o,
        Err(r) => return r.render(&sam),
    };
    let check = || -> Result<(), Invalid> {
        for f in [
            "fuelQuantityLiters",
            "transactionLocation",
            "transactionReference",
            "transactionTime",
        ] {
            if string_field(&o, f)?.is_none() {
                return Err(format!("{f} is required"));
            }
        }
        let liters = string_field(&o, "fuelQuantityLiters")?.unwrap_or_default();
        if !liters
            .parse::<f64>()
            .is_ok_and(|l| l > 0.0 && l.is_finite())
        {
            return Err(format!(
                "fuelQuantityLiters must be a positive decimal, got {liters:?}"
            ));
        }
        time_field(&o, "transactionTime")?;
        let price = o
            .get("transactionPrice")
            .and_then(Value::as_object)
            .ok_or("transactionPrice is required")?;
        let amount = string_field(price, "amount")?.ok_or("transactionPrice.amount is required")?;
        if !amount
            .parse::<f64>()
            .is_ok_and(|a| a >= 0.0 && a.is_finite())
        {
            return Err(format!(
                "transactionPrice.amount must be a decimal, got {amount:?}"
            ));
        }
        let currency =
            string_field(price, "currency")?.ok_or("transactionPrice.currency is required")?;
        if !["usd", "gbp", "cad", "eur", "chf", "mxn"].contains(&currency.as_str()) {
            return Err(format!(
                "transactionPrice.currency {currency:?} is not supported"
            ));
        }
        if let Some(v) = string_field(&o, "vehicleId")?
            && vehicle_n(&sam, &v).is_none()
        {
            return Err(format!("vehicle {v} does not exist"));
        }
        if let Some(d) = string_field(&o, "driverId")?
            && driver_n(&sam, &d).is_none()
        {
            return Err(format!("driver {d} does not exist"));
        }
        Ok(())
    };
    if let Err(m) = check() {
        return bad_request(&sam, m);
    }
    let mut purchases = sam.fuel_purchases.lock().unwrap_or_else(|e| e.into_inner());
    let n = purchases.len() as u64 + 1;
    let h = crate::common::datagen::mix(sam.core.seed, 0xF0E1, n);
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        n & 0xfff,
        n
    );
    let mut stored = o.clone();
    stored.insert("uuid".into(), json!(uuid));
    purchases.push(Value::Object(stored));
    axum::Json(json!({"data": {"uuid": uuid}})).into_response()
}
