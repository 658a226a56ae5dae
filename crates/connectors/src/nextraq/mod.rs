//! NexTraq (now Michelin Connected Fleet) through its web application: NexTraq publishes no
//! API, so this reads the private JSON endpoints the web app itself uses, as the one known
//! integration does, with a browser session (a servlet form login and its `JSESSIONID`
//! cookie). Vehicles are read whole from `json/mobiles`; GPS points from
//! `json/mobiles/trail`, one vehicle and one local day per request, within the 200 days the
//! web app serves. See `docs/connectors/nextraq.md`.

mod days;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, Extent, RawPage, ReadWindow, Source};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::{
    AuthOption, FieldSpec, Limits, Mappings, Payload, ReadSpec, SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use jiff::tz::TimeZone;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use self::days::{Position, account_zone, date_param, day_range, day_start, local_date};
use crate::client::{UpstreamClient, UpstreamResponse};
use crate::common::{Fields, Secret, SourceClock, json_page, limited_client, unexpected, upstream};
use crate::sleeper::Sleeper;

/// NexTraq's id.
pub const ID: SystemId = SystemId::from_static("nextraq");

/// Days of trail the web app serves, today included ("you can only pull 200 days in the
/// past"); a day further back is refused with a 400.
pub const SOURCE_HISTORY_DAYS: i64 = 200;

/// The oldest day asked for is this many days before the account's today: one day inside
/// the source's limit, so that our clock and NexTraq's, disagreeing by a little around
/// midnight, never make a request fall outside it.
const OLDEST_DAY_BACK: i64 = SOURCE_HISTORY_DAYS - 2;

/// How long the vehicle list the trail is read for is reused: a sync reads it once, not once
/// per slice, and a vehicle the user stops seeing is noticed within this.
const VEHICLE_LIST_SECS: i64 = 600;

const fn read(entity: Entity, kind: ReadKind, deletions: DeletionDetection) -> ReadSpec {
    ReadSpec {
        entity,
        kind,
        deletions,
        payload: Payload::Whole,
        // The trail is read by day; NexTraq has no feed.
        follows_feed: false,
    }
}

/// NexTraq through its web application's JSON endpoints.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "NexTraq",
    auth: &[AuthOption {
        id: "web_login",
        name: "Web login",
        description: "The username and password of a NexTraq web user who can see the vehicles to read (NexTraq has no API; Ironbridge signs in as the web application does).",
        fields: &[
            FieldSpec::text("username", "Username", "The web login (an e-mail address)."),
            FieldSpec::text("password", "Password", "The web login's password.").secret(),
        ],
    }],
    settings: &[
        FieldSpec::text(
            "base_url",
            "Web application URL",
            "`https://go.nextraq.com`.",
        )
        .format(FieldFormat::Url),
        FieldSpec::text(
            "time_zone",
            "Account time zone",
            "The account's time zone, as NexTraq names it (`Eastern`, `Central`, `Mountain`, `Pacific`) or an IANA name (`America/Phoenix`): the trail is read by local day.",
        ),
        FieldSpec::text(
            "fleets",
            "Fleets",
            "Only vehicles of these fleets, comma-separated (`Service Dept,Sales`). Default: every vehicle the user sees.",
        )
        .optional(),
    ],
    reads: &[
        read(
            Entity::VEHICLE,
            ReadKind::Whole,
            DeletionDetection::Reconciliation,
        ),
        read(
            Entity::VEHICLE_LOCATION,
            ReadKind::TimeSeries,
            DeletionDetection::Flagged,
        ),
    ],
    writes: &[],
    limits: Limits {
        concurrency: 2,
        per_second: 4.0,
        burst: 4,
        description: "NexTraq publishes no limits: these are a web application's pages, not an API. Ironbridge keeps to 2 requests at once and 4 a second, about what a person clicking through the map makes, and signs in once for all of a connection's readers.",
    },
    // The first sync's back-fill: one request per vehicle and day.
    history_days: Some(7),
    mappings: Mappings::new(&[
        include_str!("../../mappings/nextraq/vehicle.json"),
        include_str!("../../mappings/nextraq/vehicle_location.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(NexTraqConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

const SETTINGS: &[&str] = &["base_url", "time_zone", "fleets"];
const CREDENTIALS: &[&str] = &["username", "password"];

/// A signed-in session: the `JSESSIONID` cookie and which login gave it.
struct Session {
    cookie: Secret,
    login: u64,
}

/// The vehicle list, as of when it was read (our clock).
struct VehicleList {
    read_at: Timestamp,
    /// `mobileId`s, ascending.
    mobiles: Vec<u64>,
}

/// The NexTraq connector of one connection.
pub struct NexTraqConnector {
    base: String,
    username: String,
    password: Secret,
    zone: TimeZone,
    fleets: Option<Vec<String>>,
    client: UpstreamClient,
    source_clock: SourceClock,
    /// The session every reader shares; `None` until signed in, or once refused.
    session: Mutex<Option<Arc<Session>>>,
    /// Held while signing in, so concurrent readers wait for one login, not make several.
    signing_in: tokio::sync::Mutex<()>,
    logins: AtomicU64,
    /// The vehicles the trail is read for (held while refreshed, for the same reason).
    vehicles: tokio::sync::Mutex<Option<VehicleList>>,
}

impl std::fmt::Debug for NexTraqConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexTraqConnector")
            .field("base", &self.base)
            .field("zone", &self.zone.iana_name())
            .finish_non_exhaustive()
    }
}

/// What one trail request answered.
enum Trail {
    Points(Vec<Value>),
    /// The user may not see this vehicle (403).
    Forbidden,
}

impl NexTraqConnector {
    /// A connector from a connection's settings and credentials.
    pub fn new(
        settings: &serde_json::Map<String, Value>,
        credentials: Option<&serde_json::Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        let s = Fields::new(Some(settings), "settings", SETTINGS)?;
        let c = Fields::new(credentials, "credentials", CREDENTIALS)?;
        let base = s.url("base_url", true)?.unwrap_or_default();
        let zone_name = s.req("time_zone")?;
        let zone = account_zone(&zone_name).ok_or_else(|| {
            s.invalid(
                "time_zone",
                "expected `Eastern`, `Central`, `Mountain`, `Pacific` or an IANA time zone like `America/Phoenix`",
            )
        })?;
        let fleets = s.opt("fleets")?.map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        if fleets.as_ref().is_some_and(Vec::is_empty) {
            return Err(s.invalid("fleets", "name at least one fleet, or leave `fleets` out"));
        }
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(60),
            clock,
            sleeper,
            egress,
        )?;
        Ok(NexTraqConnector {
            base,
            username: c.req("username")?,
            password: Secret(c.req("password")?),
            zone,
            fleets,
            client,
            source_clock: SourceClock::default(),
            session: Mutex::new(None),
            signing_in: tokio::sync::Mutex::new(()),
            logins: AtomicU64::new(0),
            vehicles: tokio::sync::Mutex::new(None),
        })
    }

    fn current_session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The shared session, signing in when there is none (one login at a time: readers that
    /// arrive meanwhile use the session it gives).
    async fn session(&self) -> Result<Arc<Session>, ConnectorError> {
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        let _one_at_a_time = self.signing_in.lock().await;
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        let cookie = self.log_in().await?;
        let session = Arc::new(Session {
            cookie,
            login: self.logins.fetch_add(1, Ordering::SeqCst) + 1,
        });
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
        Ok(session)
    }

    /// Forgets `stale` (answered 401), unless another reader already replaced it.
    fn forget(&self, stale: &Session) {
        let mut current = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|s| s.login == stale.login) {
            *current = None;
        }
    }

    /// The servlet form login: `POST /j_security_check`. Success redirects to the
    /// application with a `JSESSIONID` cookie; refused credentials redirect back to the
    /// login page (`?error=true`) without one.
    async fn log_in(&self) -> Result<Secret, ConnectorError> {
        let url = format!("{}/j_security_check", self.base);
        let form = [
            ("j_username", self.username.as_str()),
            ("j_password", self.password.0.as_str()),
        ];
        let response = self
            .client
            .send(|http| http.post(&url).form(&form))
            .await
            .map_err(upstream)?;
        self.source_clock
            .observe(&response.headers, self.client.now());
        let to_login_page = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.contains("login") || l.contains("error"));
        match (response.status, session_cookie(&response.headers)) {
            (200..=399, Some(cookie)) if !to_login_page => {
                tracing::debug!(system = "nextraq", "signed in to the web application");
                Ok(Secret(cookie))
            }
            (200..=399 | 401 | 403, _) => {
                tracing::warn!(system = "nextraq", "the web application refused the login");
                Err(ConnectorError::Unauthorized)
            }
            _ => Err(unexpected("NexTraq login", &response)),
        }
    }

    /// `GET {base}{path}` with `query` in the shared session. A 401 (the session expired or
    /// was ended) signs in again once and repeats the call; a second 401 is `Unauthorized`.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<UpstreamResponse, ConnectorError> {
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let session = self.session().await?;
            let cookie = format!("JSESSIONID={}", session.cookie.0);
            let response = self
                .client
                .send(|http| http.get(&url).query(query).header(COOKIE, &cookie))
                .await
                .map_err(upstream)?;
            self.source_clock
                .observe(&response.headers, self.client.now());
            if response.status != 401 {
                return Ok(response);
            }
            self.forget(&session);
            if attempt == 0 {
                tracing::debug!(system = "nextraq", "session ended; signing in again");
            }
        }
        Err(ConnectorError::Unauthorized)
    }

    /// `GET /json/mobiles`: the vehicles the user sees, those of the chosen fleets.
    async fn mobiles(&self) -> Result<Vec<Value>, ConnectorError> {
        let path = "/json/mobiles";
        let response = self.get(path, &[]).await?;
        if response.status != 200 {
            return Err(unexpected(path, &response));
        }
        let mut answer = json_page(path, &response).await?;
        let Some(Value::Array(list)) = answer.pointer_mut("/data/mobiles").map(Value::take) else {
            return Err(ConnectorError::Upstream(format!(
                "{path}: no `data.mobiles` list"
            )));
        };
        Ok(match &self.fleets {
            None => list,
            Some(fleets) => list
                .into_iter()
                .filter(|m| {
                    m.pointer("/primaryFleet/name")
                        .and_then(Value::as_str)
                        .is_some_and(|f| fleets.iter().any(|x| x == f))
                })
                .collect(),
        })
    }

    /// The vehicles the trail is read for, in `mobileId` order: the list read within the last
    /// [`VEHICLE_LIST_SECS`], or a fresh one.
    async fn trail_vehicles(&self) -> Result<Vec<u64>, ConnectorError> {
        let now = self.client.now();
        let mut held = self.vehicles.lock().await;
        if let Some(list) = held.as_ref()
            && now.micros() - list.read_at.micros() < VEHICLE_LIST_SECS * 1_000_000
            && now >= list.read_at
        {
            return Ok(list.mobiles.clone());
        }
        let mut mobiles: Vec<u64> = self
            .mobiles()
            .await?
            .iter()
            .filter_map(|m| mobile_id(&m["mobileId"]))
            .collect();
        mobiles.sort_unstable();
        mobiles.dedup();
        *held = Some(VehicleList {
            read_at: now,
            mobiles: mobiles.clone(),
        });
        Ok(mobiles)
    }

    /// Leaves a vehicle the user may not see out of the held list until it is read again, so
    /// the other slices of the sync do not ask for it; says so once.
    async fn forbidden(&self, mobile: u64) {
        let mut held = self.vehicles.lock().await;
        if let Some(list) = held.as_mut() {
            let before = list.mobiles.len();
            list.mobiles.retain(|&m| m != mobile);
            if list.mobiles.len() < before {
                tracing::warn!(
                    system = "nextraq",
                    mobile_id = mobile,
                    "NexTraq refused this vehicle's trail (403: the user may not see it); its points are skipped"
                );
            }
        }
    }

    /// The source's "now" (its clock, as its answers' `Date` headers show it).
    fn source_now(&self) -> Timestamp {
        self.source_clock.corrected(self.client.now())
    }

    /// The oldest instant the trail serves: the start of the oldest day asked for.
    fn oldest(&self, now: Timestamp) -> Result<Timestamp, ConnectorError> {
        let today = local_date(&self.zone, now)
            .ok_or_else(|| ConnectorError::Upstream("the clock is out of range".into()))?;
        today
            .checked_sub(jiff::Span::new().days(OLDEST_DAY_BACK))
            .ok()
            .and_then(|d| day_start(&self.zone, d))
            .ok_or_else(|| ConnectorError::Upstream("the clock is out of range".into()))
    }

    /// The part of `window` the trail can serve: from the oldest day asked for, to now.
    fn span(&self, window: &ReadWindow) -> Result<Option<(Timestamp, Timestamp)>, ConnectorError> {
        let now = self.source_now();
        let oldest = self.oldest(now)?;
        let since = window.modified_since.map_or(oldest, |s| s.max(oldest));
        let until = window.modified_until.map_or(now, |u| u.min(now));
        Ok((since <= until).then_some((since, until)))
    }

    /// One vehicle's points over the part of local day `day` within `[since, until]`.
    async fn trail(
        &self,
        mobile: u64,
        day: jiff::civil::Date,
        (from_ms, to_ms): (i64, i64),
    ) -> Result<Trail, ConnectorError> {
        let path = "/json/mobiles/trail";
        let query = [
            ("lastThirty", "false".to_string()),
            ("date", date_param(day)),
            ("startTime", from_ms.to_string()),
            ("endTime", to_ms.to_string()),
            ("mobileId", mobile.to_string()),
            // The mileage since the request's first point is not an odometer: not read.
            ("calcDistance", "false".to_string()),
            ("includeEvents", "false".to_string()),
        ];
        let response = self.get(path, &query).await?;
        match response.status {
            200 => {}
            403 => return Ok(Trail::Forbidden),
            400 => {
                return Err(ConnectorError::Upstream(format!(
                    "{path}: NexTraq refused the request for {} (HTTP 400: {})",
                    date_param(day),
                    error_message(&response.body)
                )));
            }
            _ => return Err(unexpected(path, &response)),
        }
        let mut answer = json_page(path, &response).await?;
        let Some(Value::Array(tracks)) = answer.pointer_mut("/data/tracks").map(Value::take) else {
            return Err(ConnectorError::Upstream(format!(
                "{path}: no `data.tracks` list"
            )));
        };
        let mut points = Vec::with_capacity(tracks.len());
        let mut undated = 0usize;
        for mut track in tracks {
            let time = track["dateDisplay"]
                .as_str()
                .and_then(|t| days::parse_date_display(t, &self.zone));
            let Some(time) = time else {
                undated += 1;
                continue;
            };
            if let Value::Object(o) = &mut track {
                // What the mapping needs in one place: the instant, the vehicle asked for
                // (the point's own `mobile` may be left out), and the address as one line.
                o.insert("time".into(), Value::String(time.to_rfc3339()));
                o.insert("mobileId".into(), json!(mobile));
                if let Some(line) = address_line(o.get("address")) {
                    o.insert("addressLine".into(), Value::String(line));
                }
                points.push(track);
            }
        }
        if undated > 0 {
            tracing::warn!(
                system = "nextraq",
                mobile_id = mobile,
                points = undated,
                "trail points without a readable `dateDisplay` were skipped"
            );
        }
        Ok(Trail::Points(points))
    }

    /// One page of points: the trail of one vehicle over one local day of the window (the
    /// cursor says which), skipping vehicles the user may not see.
    async fn locations(
        &self,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let Some((since, until)) = self.span(window)? else {
            return Ok(RawPage::default());
        };
        let out_of_range = || ConnectorError::Upstream("the window is out of range".into());
        let first_day = local_date(&self.zone, since).ok_or_else(out_of_range)?;
        let last_day = local_date(&self.zone, until).ok_or_else(out_of_range)?;
        let vehicles = self.trail_vehicles().await?;
        let mut at = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => Position::decode(c).ok_or_else(|| {
                ConnectorError::Upstream(format!("not a NexTraq trail cursor: {c:?}"))
            })?,
            None => match vehicles.first() {
                Some(&mobile) => Position {
                    mobile,
                    day: first_day,
                },
                None => return Ok(RawPage::default()),
            },
        };
        loop {
            // The vehicle named, or the next one listed (the named one may have left).
            let Some(index) = vehicles.iter().position(|&m| m >= at.mobile) else {
                return Ok(RawPage::default());
            };
            let mobile = vehicles[index];
            let day = if mobile == at.mobile {
                at.day.max(first_day)
            } else {
                first_day
            };
            let next_vehicle = vehicles.get(index + 1).map(|&m| Position {
                mobile: m,
                day: first_day,
            });
            if day > last_day {
                match next_vehicle {
                    Some(p) => {
                        at = p;
                        continue;
                    }
                    None => return Ok(RawPage::default()),
                }
            }
            let next = if day < last_day {
                day.tomorrow().ok().map(|d| Position { mobile, day: d })
            } else {
                next_vehicle
            };
            let Some(range) = day_range(&self.zone, day, since, until) else {
                match next {
                    Some(p) => {
                        at = p;
                        continue;
                    }
                    None => return Ok(RawPage::default()),
                }
            };
            match self.trail(mobile, day, range).await? {
                Trail::Points(points) => {
                    return Ok(RawPage::from_values(points, next.map(|p| p.encode())));
                }
                Trail::Forbidden => {
                    // Not an error: the user's fleets are what the connection may read.
                    self.forbidden(mobile).await;
                    match next_vehicle {
                        Some(p) => at = p,
                        None => return Ok(RawPage::default()),
                    }
                }
            }
        }
    }
}

/// A `mobileId` as a number (the web app sends numbers; text holding one is read too).
fn mobile_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The value of the `JSESSIONID` cookie an answer sets.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == "JSESSIONID" && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// `street, city, state zip`, from the parts the trail gives.
fn address_line(address: Option<&Value>) -> Option<String> {
    let a = address?;
    let part = |k: &str| a[k].as_str().map(str::trim).filter(|s| !s.is_empty());
    let state_zip = [part("state"), part("zip")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let parts: Vec<&str> = [part("street"), part("city")]
        .into_iter()
        .flatten()
        .chain((!state_zip.is_empty()).then_some(state_zip.as_str()))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The `message` of a JSON error body, or nothing (an HTML error page is not shown).
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Connector for NexTraqConnector {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }

    fn circuit_state(&self) -> ironbridge_model::api::CircuitState {
        self.client.breaker().state()
    }
}

#[async_trait]
impl Source for NexTraqConnector {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.mobiles().await.map(|_| ())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if entity == Entity::VEHICLE {
            Ok(RawPage::from_values(self.mobiles().await?, None))
        } else if entity == Entity::VEHICLE_LOCATION {
            self.locations(window, cursor).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "NexTraq does not serve {} records",
                entity.spec().label
            )))
        }
    }

    /// Vehicle locations start at the oldest day the trail serves, and take one request per
    /// vehicle and day: a read of all history is sliced from there.
    async fn extent(&self, entity: Entity) -> Result<Extent, ConnectorError> {
        if entity != Entity::VEHICLE_LOCATION {
            return Ok(Extent::default());
        }
        let oldest = self.oldest(self.source_now())?;
        let vehicles = self.trail_vehicles().await?.len() as u64;
        Ok(Extent {
            oldest: Some(oldest),
            pages: Some(vehicles * (OLDEST_DAY_BACK as u64 + 1)),
        })
    }

    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.client.now()))
    }

    /// The trail is read by local day: a slice ends just before the local midnight that
    /// starts `t`'s day, so no day is read in two requests.
    fn slice_boundary(&self, entity: Entity, t: Timestamp) -> Timestamp {
        if entity != Entity::VEHICLE_LOCATION {
            return t;
        }
        local_date(&self.zone, t)
            .and_then(|date| day_start(&self.zone, date))
            .map_or(t, |start| Timestamp(start.micros() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, "AWSALB=x; Path=/".parse().unwrap());
        h.append(
            SET_COOKIE,
            "JSESSIONID=AbC123.web-1; Path=/; HttpOnly".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("AbC123.web-1"));
        let mut empty = HeaderMap::new();
        empty.append(SET_COOKIE, "JSESSIONID=; Path=/".parse().unwrap());
        assert_eq!(session_cookie(&empty), None);
    }

    #[test]
    fn addresses_join_what_is_there() {
        let a = json!({"street": "12 Main St", "city": "Atlanta", "state": "GA", "zip": "30301"});
        assert_eq!(
            address_line(Some(&a)).as_deref(),
            Some("12 Main St, Atlanta, GA 30301")
        );
        assert_eq!(
            address_line(Some(&json!({"city": "Atlanta"}))).as_deref(),
            Some("Atlanta")
        );
        assert_eq!(address_line(Some(&json!({}))), None);
        assert_eq!(address_line(None), None);
    }

    #[test]
    fn settings_are_checked() {
        let build = |settings: Value| {
            let clock = Arc::new(ironbridge_core::ManualClock::new(Timestamp(0)));
            NexTraqConnector::new(
                settings.as_object().unwrap(),
                json!({"username": "u", "password": "p"}).as_object(),
                clock,
                Arc::new(crate::sleeper::TokioSleeper),
                Egress::default(),
            )
        };
        assert!(
            build(json!({"base_url": "https://go.nextraq.com", "time_zone": "Eastern"})).is_ok()
        );
        assert!(
            build(json!({"base_url": "https://go.nextraq.com", "time_zone": "America/Phoenix", "fleets": "Sales, Service Dept"}))
                .is_ok()
        );
        for bad in [
            json!({"base_url": "https://go.nextraq.com"}),
            json!({"base_url": "https://go.nextraq.com", "time_zone": "Atlantis"}),
            json!({"base_url": "https://go.nextraq.com", "time_zone": "Eastern", "fleets": " , "}),
            json!({"base_url": "go.nextraq.com", "time_zone": "Eastern"}),
            json!({"base_url": "https://go.nextraq.com", "time_zone": "Eastern", "other": 1}),
        ] {
            assert!(
                matches!(
                    build(bad.clone()),
                    Err(ConnectorError::InvalidSettings { .. })
                ),
                "{bad}"
            );
        }
    }
}
