//! Samsara dispatch routes (`/fleet/routes`): read by the window their schedule overlaps, and
//! written through the unified model: created with their stops (`POST /fleet/routes`) and
//! changed by a JSON merge patch (`PATCH /fleet/routes/{id}`). Samsara reports the state of
//! each stop but none for the route, so the route's is derived from its actual start and end
//! times (and its stops) and kept with the record as `_state`, which the mapping reads.

use async_trait::async_trait;
use ironbridge_core::connector::{
    ConnectorError, CreateRecords, ReadWindow, UnifiedWrite, UpdateRecords, check_reference,
};
use ironbridge_core::describe::{self, text};
use ironbridge_core::system::{CustomFields, WriteField, WriteSpec, WriteType};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Map, Value, json};

use super::SamsaraConnector;
use crate::client::UpstreamResponse;
use crate::common::{authorized_call, authorized_write, json_body, unexpected, upstream};
use ironbridge_core::connector::RawPage;

/// A window that reaches the present (its end within this of now) is read wider: from
/// [`LOOKBACK_SECS`] before now, so the routes of the last days are read again and their
/// stops' states stay current (a stop changes state long after the route was created, and
/// Samsara reports no modification time to filter on), and up to [`HORIZON_SECS`] ahead, so
/// routes planned for the coming days are read before they start. Windows of the past (the
/// older slices of a first sync) read only what lies before that lookback, which the present's
/// window reads: a first sync of the default 7 days asks Samsara once, not once a slice (its
/// route list allows 5 requests a second).
const PRESENT_SECS: i64 = 3_600;
/// How far back a sync reaching the present reads routes again: 7 days.
pub const LOOKBACK_SECS: i64 = 7 * 86_400;
/// How far ahead a sync reaching the present reads planned routes: 365 days, so a full sync
/// (which marks what it does not see as deleted) sees every route planned that far out.
pub const HORIZON_SECS: i64 = 365 * 86_400;

/// The external id key a create's reference is written under, so a create whose answer was
/// lost is found again with `GET /fleet/routes/ironbridge:<reference>`.
const REFERENCE_KEY: &str = "ironbridge";

/// Unified route statuses.
const ROUTE_STATUSES: &[&str] = &[
    "scheduled",
    "in_progress",
    "completed",
    "cancelled",
    "unknown",
];
/// Unified stop statuses.
const STOP_STATUSES: &[&str] = &[
    "scheduled",
    "en_route",
    "arrived",
    "departed",
    "skipped",
    "unknown",
];

/// Dispatch routes created and updated (a JSON merge patch).
pub static WRITES: &[WriteSpec] = &[WriteSpec {
    entity: Entity::DISPATCH_ROUTE,
    create: true,
    update: true,
    fields: ROUTE,
    custom_fields: CustomFields::NONE,
}];

static STOP: &[WriteField] = &[
    text("id", "Ironbridge's id of the stop (`dst_…`).").read_only(),
    text(
        "remote_id",
        "In an update: the stop's `id` in Samsara (its `remote_id` as read). That stop is kept, with its progress, and changed by the other fields given; a stop without one is new. Not taken on a create.",
    ),
    describe::not_written(
        "sequence",
        WriteType::Integer,
        "`sequenceNumber`: the stop's place in the list written.",
    ),
    text(
        "name",
        "`name`; Samsara names a stop after its address when it is left out.",
    ),
    text(
        "address",
        "`singleUseLocation.address`: the place's address as one line, shown to the driver. Samsara places a stop by its coordinates, so a new stop needs `latitude` and `longitude` too.",
    ),
    WriteField::new(
        "latitude",
        WriteType::Number {
            min: -90.0,
            max: 90.0,
        },
        "`singleUseLocation.latitude`, in degrees; required, with `longitude`, for a new stop.",
    ),
    WriteField::new(
        "longitude",
        WriteType::Number {
            min: -180.0,
            max: 180.0,
        },
        "`singleUseLocation.longitude`, in degrees; required, with `latitude`, for a new stop.",
    ),
    WriteField::new(
        "scheduled_arrival_at",
        WriteType::Datetime,
        "`scheduledArrivalTime`.",
    ),
    WriteField::new(
        "scheduled_departure_at",
        WriteType::Datetime,
        "`scheduledDepartureTime`; not before the arrival.",
    ),
    describe::not_written(
        "actual_arrival_at",
        WriteType::Datetime,
        "`actualArrivalTime`: reported by the vehicle.",
    ),
    describe::not_written(
        "actual_departure_at",
        WriteType::Datetime,
        "`actualDepartureTime`: reported by the vehicle.",
    ),
    describe::not_written(
        "status",
        WriteType::Enum(STOP_STATUSES),
        "From `state`, which Samsara moves as the vehicle reaches and leaves the stop.",
    ),
    describe::not_written(
        "remote_status",
        WriteType::String,
        "`state`, as Samsara names it.",
    ),
    text("notes", "`notes`: instructions for the driver."),
    describe::LINE_CUSTOM,
];

static ROUTE: &[WriteField] = &[
    text("name", "`name`.").required(),
    describe::not_written(
        "status",
        WriteType::Enum(ROUTE_STATUSES),
        "Derived from the route's actual start and end and its stops' states.",
    ),
    describe::not_written(
        "remote_status",
        WriteType::String,
        "Samsara reports no state for a route (only for its stops): always empty.",
    ),
    WriteField::new(
        "vehicle_id",
        WriteType::Reference(Entity::VEHICLE),
        "`vehicleId`: the vehicle (`vhc_…`) of this connection; `null` in an update unassigns it.",
    )
    .clearable(),
    WriteField::new(
        "driver_id",
        WriteType::Reference(Entity::DRIVER),
        "`driverId`: the driver (`drv_…`) of this connection; `null` in an update unassigns them.",
    )
    .clearable(),
    WriteField::new(
        "scheduled_start_at",
        WriteType::Datetime,
        "Samsara plans a route by its stops: written as the first stop's `scheduledDepartureTime` unless that stop gives its own. A route needs this or a time on its first stop.",
    ),
    WriteField::new(
        "scheduled_end_at",
        WriteType::Datetime,
        "Written as the last stop's `scheduledArrivalTime` unless that stop gives its own; not before `scheduled_start_at`.",
    ),
    describe::not_written(
        "actual_start_at",
        WriteType::Datetime,
        "`actualRouteStartTime`: when the vehicle left the first stop.",
    ),
    describe::not_written(
        "actual_end_at",
        WriteType::Datetime,
        "`actualRouteEndTime`: when it reached the last stop.",
    ),
    text("notes", "`notes`; `null` in an update removes them.").clearable(),
    WriteField::new(
        "stops",
        WriteType::List {
            fields: STOP,
            min: 1,
        },
        "`stops`, in visiting order; an update's list replaces the route's (stops left out are removed).",
    )
    .required(),
];

/// `startTime` and `endTime` (RFC 3339) of the read of `window` at `now`; `None` for a window
/// with nothing to read (nothing changes after the present). Samsara answers the routes whose
/// schedule overlaps the range.
pub(super) fn read_range(window: &ReadWindow, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let mut start = window.modified_since.unwrap_or(Timestamp(0));
    let mut end = window.modified_until.unwrap_or(now).min(now);
    if start > now {
        return None;
    }
    let recent = now.plus_secs(-LOOKBACK_SECS);
    if end >= now.plus_secs(-PRESENT_SECS) {
        start = start.min(recent);
        end = now.plus_secs(HORIZON_SECS);
    } else {
        end = end.min(recent);
    }
    (start < end).then_some((start, end))
}

/// A page cursor: the range the read began with (so every page of it asks the same range,
/// however the clock moves) and Samsara's own cursor.
pub(super) fn cursor(start: Timestamp, end: Timestamp, after: &str) -> String {
    format!("{}|{}|{after}", start.micros(), end.micros())
}

/// The range and Samsara cursor of a [`cursor`]; `None` for anything else.
pub(super) fn parse_cursor(c: &str) -> Option<(Timestamp, Timestamp, String)> {
    let mut parts = c.splitn(3, '|');
    let start = parts.next()?.parse().ok()?;
    let end = parts.next()?.parse().ok()?;
    Some((Timestamp(start), Timestamp(end), parts.next()?.to_string()))
}

/// Adds `_state` to a route as Samsara answered it: `completed` once it has an actual end,
/// `inProgress` once it has an actual start or a stop is under way, else `scheduled`.
pub(super) fn with_state(mut route: Value) -> Value {
    let set = |k: &str| route.get(k).is_some_and(|v| !v.is_null());
    let moving = route["stops"].as_array().is_some_and(|stops| {
        stops.iter().any(|s| {
            matches!(
                s["state"].as_str(),
                Some("en route" | "arrived" | "departed" | "skipped")
            )
        })
    });
    let state = if set("actualRouteEndTime") {
        "completed"
    } else if set("actualRouteStartTime") || moving {
        "inProgress"
    } else {
        "scheduled"
    };
    if let Value::Object(o) = &mut route {
        o.insert("_state".into(), json!(state));
    }
    route
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidSettings {
        param: param.into(),
        message: message.into(),
    }
}

/// A coordinate of a validated write (a normalised decimal string) within `range`.
fn coordinate(
    stop: &Map<String, Value>,
    name: &str,
    param: &str,
    limit: f64,
) -> Result<Option<f64>, ConnectorError> {
    let Some(v) = stop.get(name).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let x = match v {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
    .filter(|x| x.is_finite() && x.abs() <= limit)
    .ok_or_else(|| invalid(param, format!("must be a number from -{limit} to {limit}")))?;
    Ok(Some(x))
}

fn time(fields: &Map<String, Value>, name: &str) -> Option<Timestamp> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339)
}

/// One stop of a write as Samsara takes it. `existing`: the stop names one of the route's
/// (an update), so only what is given is sent.
fn stop_body(i: usize, stop: &Map<String, Value>, create: bool) -> Result<Value, ConnectorError> {
    let p = |f: &str| format!("stops[{i}].{f}");
    let mut out = Map::new();
    let remote = stop.get("remote_id").and_then(Value::as_str);
    match remote {
        Some(_) if create => {
            return Err(invalid(
                p("remote_id"),
                "names a stop of an existing route: every stop of a new route is new",
            ));
        }
        Some(id) => {
            out.insert("id".into(), json!(id));
        }
        None => {}
    }
    let latitude = coordinate(stop, "latitude", &p("latitude"), 90.0)?;
    let longitude = coordinate(stop, "longitude", &p("longitude"), 180.0)?;
    match (latitude, longitude) {
        (Some(lat), Some(lng)) => {
            let mut place = json!({"latitude": lat, "longitude": lng});
            if let Some(a) = stop.get("address").filter(|v| !v.is_null()) {
                place["address"] = a.clone();
            }
            out.insert("singleUseLocation".into(), place);
        }
        (None, None) if remote.is_some() => {
            if stop.contains_key("address") {
                return Err(invalid(
                    p("latitude"),
                    "is required with `address`: Samsara places a stop by its coordinates, so a new address takes new `latitude` and `longitude`",
                ));
            }
        }
        (None, Some(_)) | (None, None) => {
            return Err(invalid(
                p("latitude"),
                "is required, with `longitude`: Samsara places a new stop by its coordinates (`address` is the label the driver sees)",
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                p("longitude"),
                "is required with `latitude`: Samsara places a stop by its coordinates",
            ));
        }
    }
    for (from, to) in [
        ("name", "name"),
        ("notes", "notes"),
        ("scheduled_arrival_at", "scheduledArrivalTime"),
        ("scheduled_departure_at", "scheduledDepartureTime"),
    ] {
        if let Some(v) = stop.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if let (Some(a), Some(d)) = (
        time(stop, "scheduled_arrival_at"),
        time(stop, "scheduled_departure_at"),
    ) && d < a
    {
        return Err(invalid(
            p("scheduled_departure_at"),
            "is before the stop's `scheduled_arrival_at`",
        ));
    }
    Ok(Value::Object(out))
}

/// Lays the route's planned start and end on its first and last stops, where those stops
/// give no time of their own (Samsara plans a route by its stops).
fn lay_schedule(
    fields: &Map<String, Value>,
    stops: &mut [Value],
    kept: &[bool],
) -> Result<(), ConnectorError> {
    let start = time(fields, "scheduled_start_at");
    let end = time(fields, "scheduled_end_at");
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(invalid(
            "scheduled_end_at",
            "is before `scheduled_start_at`",
        ));
    }
    let given = |stop: &Value, k: &str| stop.get(k).is_some_and(|v| !v.is_null());
    if let Some(s) = start
        && let Some(first) = stops.first_mut()
        && !given(first, "scheduledDepartureTime")
    {
        first["scheduledDepartureTime"] = json!(s.to_rfc3339());
    }
    if let Some(e) = end
        && let Some(last) = stops.last_mut()
        && !given(last, "scheduledArrivalTime")
    {
        last["scheduledArrivalTime"] = json!(e.to_rfc3339());
    }
    // A new route (or a first stop that is new) needs a time on its first stop.
    if let Some(first) = stops.first()
        && !kept.first().copied().unwrap_or(false)
        && !given(first, "scheduledArrivalTime")
        && !given(first, "scheduledDepartureTime")
    {
        return Err(invalid(
            "scheduled_start_at",
            "is required unless the first stop has a `scheduled_arrival_at` or `scheduled_departure_at`: Samsara plans a route from its first stop's time",
        ));
    }
    Ok(())
}

/// Stops as Samsara takes them, and for each whether it names one of the route's.
type Stops = (Vec<Value>, Vec<bool>);

/// The stops of a write, as Samsara takes them, and which name existing stops.
fn stops_body(fields: &Map<String, Value>, create: bool) -> Result<Option<Stops>, ConnectorError> {
    let Some(list) = fields.get("stops").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut stops = Vec::with_capacity(list.len());
    let mut kept = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let s = s
            .as_object()
            .ok_or_else(|| invalid(format!("stops[{i}]"), "must be an object"))?;
        kept.push(s.get("remote_id").is_some_and(Value::is_string));
        stops.push(stop_body(i, s, create)?);
    }
    Ok(Some((stops, kept)))
}

/// Samsara's message of an error answer (`{"message", "requestId"}`).
fn message(r: &UpstreamResponse) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The unified field a refusal's message names, as far as it tells.
fn refused_field(message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    [
        ("vehicle", "vehicle_id"),
        ("driver", "driver_id"),
        ("stop", "stops"),
        ("scheduled", "stops"),
        ("name", "name"),
    ]
    .iter()
    .find(|(word, _)| m.contains(word))
    .map(|(_, field)| field.to_string())
}

/// Reads a write's answer: the route (`{"data": route}`) with its `_state`.
fn route_answer(what: &str, r: &UpstreamResponse) -> Result<Value, ConnectorError> {
    match r.status {
        200 | 201 => {
            let mut body = json_body(what, r)?;
            match body.get_mut("data").map(Value::take) {
                Some(route @ Value::Object(_)) => Ok(with_state(route)),
                _ => Err(ConnectorError::Upstream(format!(
                    "{what}: no route in the answer"
                ))),
            }
        }
        400 | 422 => {
            let message = message(r);
            Err(ConnectorError::BusinessRule {
                remote_code: format!("HTTP_{}", r.status),
                param: refused_field(&message),
                message: format!("Samsara refused the route: {message}"),
            })
        }
        403 => Err(ConnectorError::Forbidden {
            remote_code: "HTTP_403".into(),
            message:
                "the connection's API token may not write routes: give it write access to routes"
                    .into(),
        }),
        404 => Err(ConnectorError::NotFound),
        _ => Err(unexpected(what, r)),
    }
}

/// A route id as one path segment (Samsara's are digits, or `key:value` external ids).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl SamsaraConnector {
    /// One page of the routes whose schedule overlaps the range of `window`
    /// ([`read_range`]), each with its `_state`.
    pub(super) async fn fetch_routes(
        &self,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let (start, end, after) = match cursor {
            Some(c) => parse_cursor(c).ok_or_else(|| {
                ConnectorError::Upstream(format!("not a dispatch route cursor: {c}"))
            })?,
            // The window is in the source's time (Samsara's clock as its `Date` headers show).
            None => match read_range(window, self.source_clock.corrected(self.client.now())) {
                Some((start, end)) => (start, end, String::new()),
                None => return Ok(RawPage::default()),
            },
        };
        let query = vec![
            ("startTime", start.to_rfc3339()),
            ("endTime", end.to_rfc3339()),
            ("limit", self.page_size.to_string()),
        ];
        let (rows, next) = self.page("/fleet/routes", query, Some(&after)).await?;
        Ok(RawPage::from_values(
            rows.into_iter().map(with_state).collect(),
            next.map(|n| self::cursor(start, end, &n)),
        ))
    }

    /// Sends a route write (`POST` or `PATCH`) once; a lost answer is an unknown outcome.
    async fn send_route(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ConnectorError> {
        let url = format!("{}{path}", self.base);
        let response = authorized_write(
            &self.client,
            self,
            &self.source_clock,
            |http| http.request(method.clone(), &url).json(body),
            upstream,
        )
        .await?;
        route_answer(path, &response)
    }

    /// `GET /fleet/routes/{id}`: the route, or `None` when Samsara has none.
    async fn route(&self, id: &str) -> Result<Option<Value>, ConnectorError> {
        let path = format!("/fleet/routes/{}", segment(id));
        let url = format!("{}{path}", self.base);
        let response = authorized_call(
            &self.client,
            self,
            &self.source_clock,
            |http| http.get(&url),
            upstream,
        )
        .await?;
        match route_answer(&path, &response) {
            Ok(route) => Ok(Some(route)),
            Err(ConnectorError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_route(&self, w: &UnifiedWrite) -> Result<Value, ConnectorError> {
        let f = &w.fields;
        let mut body = Map::new();
        for (from, to) in [
            ("name", "name"),
            ("notes", "notes"),
            ("vehicle_id", "vehicleId"),
            ("driver_id", "driverId"),
        ] {
            if let Some(v) = f.get(from).filter(|v| !v.is_null()) {
                body.insert(to.into(), v.clone());
            }
        }
        let (mut stops, kept) =
            stops_body(f, true)?.ok_or_else(|| invalid("stops", "is required"))?;
        lay_schedule(f, &mut stops, &kept)?;
        body.insert("stops".into(), Value::Array(stops));
        if let Some(reference) = &w.reference {
            check_reference(reference)?;
            body.insert("externalIds".into(), json!({ REFERENCE_KEY: reference }));
        }
        self.send_route(reqwest::Method::POST, "/fleet/routes", &Value::Object(body))
            .await
    }

    async fn update_route(&self, id: &str, w: &UnifiedWrite) -> Result<Value, ConnectorError> {
        let f = &w.fields;
        let mut body = Map::new();
        for (from, to) in [
            ("name", "name"),
            ("notes", "notes"),
            ("vehicle_id", "vehicleId"),
            ("driver_id", "driverId"),
        ] {
            // `null`: cleared (a merge patch removes the member).
            if let Some(v) = f.get(from) {
                body.insert(to.into(), v.clone());
            }
        }
        let schedule = f.contains_key("scheduled_start_at") || f.contains_key("scheduled_end_at");
        let stops = match stops_body(f, false)? {
            Some(s) => Some(s),
            // A new planned start or end moves the first or last stop: the route's stops are
            // sent back as they are (by id, so they keep their progress), with the time laid on.
            None if schedule => {
                let route = self.route(id).await?.ok_or(ConnectorError::NotFound)?;
                let ids: Vec<Value> = route["stops"]
                    .as_array()
                    .map(|stops| {
                        stops
                            .iter()
                            .filter_map(|s| s["id"].as_str())
                            .map(|id| json!({ "id": id }))
                            .collect()
                    })
                    .unwrap_or_default();
                let kept = vec![true; ids.len()];
                Some((ids, kept))
            }
            None => None,
        };
        if let Some((mut stops, kept)) = stops {
            lay_schedule(f, &mut stops, &kept)?;
            body.insert("stops".into(), Value::Array(stops));
        }
        let path = format!("/fleet/routes/{}", segment(id));
        self.send_route(reqwest::Method::PATCH, &path, &Value::Object(body))
            .await
    }
}

fn routes_only(entity: Entity, verb: &str) -> Result<(), ConnectorError> {
    if entity == Entity::DISPATCH_ROUTE {
        Ok(())
    } else {
        Err(ConnectorError::Unsupported(format!(
            "Samsara cannot {verb} {} records through Ironbridge",
            entity.spec().label
        )))
    }
}

#[async_trait]
impl CreateRecords for SamsaraConnector {
    async fn create(&self, entity: Entity, record: &UnifiedWrite) -> Result<Value, ConnectorError> {
        routes_only(entity, "create")?;
        self.create_route(record).await
    }

    async fn find_written(
        &self,
        entity: Entity,
        reference: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        routes_only(entity, "look up")?;
        check_reference(reference)?;
        self.route(&format!("{REFERENCE_KEY}:{reference}")).await
    }
}

#[async_trait]
impl UpdateRecords for SamsaraConnector {
    async fn update(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        routes_only(entity, "update")?;
        self.update_route(remote_id, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn a_window_reaching_the_present_reads_recent_and_planned_routes() {
        let now = t(100 * 86_400);
        // An incremental window: widened both ways.
        let w = ReadWindow {
            modified_since: Some(now.plus_secs(-700)),
            modified_until: Some(now.plus_secs(-120)),
        };
        assert_eq!(
            read_range(&w, now),
            Some((now.plus_secs(-LOOKBACK_SECS), now.plus_secs(HORIZON_SECS)))
        );
        // A slice of the past: as it is, up to where the present's read begins.
        let w = ReadWindow {
            modified_since: Some(t(10)),
            modified_until: Some(t(20)),
        };
        assert_eq!(read_range(&w, now), Some((t(10), t(20))));
        let w = ReadWindow {
            modified_since: Some(now.plus_secs(-10 * 86_400)),
            modified_until: Some(now.plus_secs(-2 * 86_400)),
        };
        assert_eq!(
            read_range(&w, now),
            Some((now.plus_secs(-10 * 86_400), now.plus_secs(-LOOKBACK_SECS)))
        );
        let w = ReadWindow {
            modified_since: Some(now.plus_secs(-5 * 86_400)),
            modified_until: Some(now.plus_secs(-2 * 86_400)),
        };
        assert_eq!(read_range(&w, now), None, "the present's read covers it");
        // After the present: nothing.
        let w = ReadWindow {
            modified_since: Some(now.plus_secs(86_400)),
            modified_until: None,
        };
        assert_eq!(read_range(&w, now), None);
        // Everything (a full sync): from the start to the horizon.
        assert_eq!(
            read_range(&ReadWindow::ALL, now),
            Some((Timestamp(0), now.plus_secs(HORIZON_SECS)))
        );
        let c = cursor(t(1), t(2), "abc|d");
        assert_eq!(parse_cursor(&c), Some((t(1), t(2), "abc|d".into())));
        assert_eq!(parse_cursor("abc"), None);
    }

    #[test]
    fn the_state_of_a_route_follows_its_times_and_stops() {
        let state = |v: Value| with_state(v)["_state"].clone();
        assert_eq!(
            state(json!({"stops": [{"state": "scheduled"}]})),
            "scheduled"
        );
        assert_eq!(
            state(json!({"stops": [{"state": "en route"}]})),
            "inProgress"
        );
        assert_eq!(
            state(json!({"actualRouteStartTime": "2026-01-01T00:00:00Z"})),
            "inProgress"
        );
        assert_eq!(
            state(json!({"actualRouteStartTime": "x", "actualRouteEndTime": "y"})),
            "completed"
        );
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn stops_are_checked_and_the_schedule_laid_on_them() {
        let f = fields(json!({"scheduled_start_at": "2026-03-02T08:00:00Z",
            "scheduled_end_at": "2026-03-02T17:00:00Z",
            "stops": [{"name": "A", "latitude": 33.7, "longitude": -84.4},
                      {"name": "B", "latitude": 34, "longitude": -84, "address": "1 Main St",
                       "scheduled_arrival_at": "2026-03-02T12:00:00Z"}]}));
        let (mut stops, kept) = stops_body(&f, true).unwrap().unwrap();
        lay_schedule(&f, &mut stops, &kept).unwrap();
        assert_eq!(stops[0]["scheduledDepartureTime"], "2026-03-02T08:00:00Z");
        assert_eq!(stops[0]["singleUseLocation"]["latitude"], 33.7);
        // The last stop keeps its own arrival.
        assert_eq!(stops[1]["scheduledArrivalTime"], "2026-03-02T12:00:00Z");
        assert_eq!(stops[1]["singleUseLocation"]["address"], "1 Main St");

        let param = |v: Value, create: bool| {
            let f = fields(v);
            let r = stops_body(&f, create).and_then(|s| {
                let (mut stops, kept) = s.unwrap();
                lay_schedule(&f, &mut stops, &kept)
            });
            match r {
                Err(ConnectorError::InvalidSettings { param, .. }) => param,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            param(json!({"stops": [{"address": "1 Main St"}]}), true),
            "stops[0].latitude"
        );
        assert_eq!(
            param(json!({"stops": [{"latitude": 91, "longitude": 0}]}), true),
            "stops[0].latitude"
        );
        assert_eq!(
            param(json!({"stops": [{"latitude": 1}]}), true),
            "stops[0].longitude"
        );
        assert_eq!(
            param(json!({"stops": [{"latitude": 1, "longitude": 1}]}), true),
            "scheduled_start_at"
        );
        assert_eq!(
            param(
                json!({"stops": [{"remote_id": "5", "latitude": 1, "longitude": 1}]}),
                true
            ),
            "stops[0].remote_id"
        );
        assert_eq!(
            param(
                json!({"scheduled_start_at": "2026-03-02T08:00:00Z", "scheduled_end_at": "2026-03-01T08:00:00Z",
                    "stops": [{"latitude": 1, "longitude": 1}]}),
                true
            ),
            "scheduled_end_at"
        );
        assert_eq!(
            param(
                json!({"stops": [{"latitude": 1, "longitude": 1,
                    "scheduled_arrival_at": "2026-03-02T08:00:00Z", "scheduled_departure_at": "2026-03-02T07:00:00Z"}]}),
                true
            ),
            "stops[0].scheduled_departure_at"
        );
        // An existing stop is sent by id with what changes only.
        let f = fields(json!({"stops": [{"remote_id": "77", "notes": "Gate 4"}]}));
        let (stops, kept) = stops_body(&f, false).unwrap().unwrap();
        assert_eq!(stops[0], json!({"id": "77", "notes": "Gate 4"}));
        assert_eq!(kept, vec![true]);
    }
}
