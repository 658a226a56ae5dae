//! NexTraq web-app emulator (target-systems.md §4.1, sources in docs/emulators/nextraq.md):
//! NexTraq publishes no API, and the one known integration reuses the web application's
//! private JSON endpoints with a browser session. Emulated: a servlet form login giving a
//! `JSESSIONID` cookie, sessions that expire on the emulator's clock, the map page listing the
//! vehicles, `json/mobiles`, and `json/mobiles/trail` (one vehicle, one local day per request,
//! about 200 days back), over the same moving fleet as the Samsara emulator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, Month};

use crate::common::admin::{self, AdminState};
use crate::common::clock::{Millis, date_ms, ms_to_datetime};
use crate::common::datagen::mix;
use crate::common::fleet::{DEPOTS, Fleet, compass};
use crate::common::gate::{Gate, SystemErrors, Throttle, gate};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};

/// The account's fleets (groups of vehicles); vehicle `n` belongs to `FLEETS[n % 4]`.
pub const FLEETS: [&str; 4] = ["Service Dept", "Installation", "Sales", "Executive"];

/// `mobileId` of vehicle `n`.
pub const MOBILE_BASE: u64 = 100_000;

const DAY: i64 = 86_400_000;

/// Switches; `[I]` marks inferred behaviour (almost everything: nothing is documented).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The web user's login.
    pub username: String,
    pub password: String,
    /// A session ends after this many seconds without a request (servlet default: 30 min) [I].
    pub session_idle_secs: i64,
    /// Whether a request renews the session (servlet sessions do) [I].
    pub session_sliding: bool,
    /// Days of history the trail serves, today included ("you can only pull 200 days").
    pub history_days: i64,
    /// Seconds between two positions of a vehicle [I]; fixed at start.
    pub point_interval_secs: i64,
    /// Fleets the user may not see: their vehicles are not listed and their trail is 403 [I].
    pub hidden_fleets: Vec<String>,
    /// The account's time zone, US rules: `Eastern`, `Central`, `Mountain` or `Pacific`.
    pub time_zone: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            username: "dispatcher@example.com".into(),
            password: "Emulator-Pa55word".into(),
            session_idle_secs: 1800,
            session_sliding: true,
            history_days: 200,
            point_interval_secs: 60,
            hidden_fleets: vec!["Executive".into()],
            time_zone: "Eastern".into(),
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.username.is_empty() || self.password.is_empty() {
            return Err("username and password must not be empty".into());
        }
        if !(1..=31_536_000).contains(&self.session_idle_secs) {
            return Err("session_idle_secs must be between 1 and 31,536,000".into());
        }
        if !(1..=3650).contains(&self.history_days) {
            return Err("history_days must be between 1 and 3650".into());
        }
        if !(1..=3600).contains(&self.point_interval_secs) {
            return Err("point_interval_secs must be between 1 and 3600".into());
        }
        if let Some(f) = self
            .hidden_fleets
            .iter()
            .find(|f| !FLEETS.contains(&f.as_str()))
        {
            return Err(format!("hidden_fleets: {f:?} is not one of {FLEETS:?}"));
        }
        zone(&self.time_zone)?;
        Ok(())
    }
}

/// (standard offset in hours, standard abbreviation, daylight abbreviation).
fn zone(name: &str) -> Result<(i64, &'static str, &'static str), String> {
    match name {
        "Eastern" => Ok((-5, "EST", "EDT")),
        "Central" => Ok((-6, "CST", "CDT")),
        "Mountain" => Ok((-7, "MST", "MDT")),
        "Pacific" => Ok((-8, "PST", "PDT")),
        other => Err(format!(
            "time_zone {other:?}: expected Eastern, Central, Mountain or Pacific"
        )),
    }
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    Date::from_calendar_date(year, month, 1 + to_sunday + 7 * (n - 1)).ok()
}

/// The zone's offset (ms) and abbreviation at instant `utc` (US rules since 2007: daylight
/// time from the second Sunday of March, 2:00, to the first Sunday of November, 2:00).
fn offset_at(tz: (i64, &'static str, &'static str), utc: Millis) -> (i64, &'static str) {
    let std = tz.0 * 3_600_000;
    let year = ms_to_datetime(utc + std).year();
    let bounds = nth_sunday(year, Month::March, 2).zip(nth_sunday(year, Month::November, 1));
    if let Some((start, end)) = bounds {
        let at = |d: Date| crate::common::clock::datetime_to_ms(d.midnight().assume_utc());
        // 2:00 standard time in March; 2:00 daylight time (1:00 standard) in November.
        let dst_start = at(start) + 2 * 3_600_000 - std;
        let dst_end = at(end) + 3_600_000 - std;
        if (dst_start..dst_end).contains(&utc) {
            return (std + 3_600_000, tz.2);
        }
    }
    (std, tz.1)
}

/// `09/12/2018 5:43:39 AM EDT`, in the account's zone.
fn date_display(tz: (i64, &'static str, &'static str), utc: Millis) -> String {
    let (off, abbr) = offset_at(tz, utc);
    let t = ms_to_datetime(utc + off);
    let (h, ampm) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{:02}/{:02}/{:04} {}:{:02}:{:02} {} {}",
        t.month() as u8,
        t.day(),
        t.year(),
        h,
        t.minute(),
        t.second(),
        ampm,
        abbr
    )
}

/// UTC instant of local midnight starting `MM/DD/YYYY`.
fn local_midnight(tz: (i64, &'static str, &'static str), date: &str) -> Option<Millis> {
    let mut parts = date.split('/');
    let m: u8 = parts.next()?.parse().ok()?;
    let d: u8 = parts.next()?.parse().ok()?;
    let y: i32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1970..=9998).contains(&y) {
        return None;
    }
    let naive = date_ms(y, m, d)?;
    // Midnight is never in a DST switch hour (2:00), so the offset an hour later is right.
    let (off, _) = offset_at(tz, naive - tz.0 * 3_600_000);
    Some(naive - off)
}

/// A logged-in session.
#[derive(Debug, Clone)]
struct Session {
    last_used_ms: Millis,
    generation: u64,
}

/// The emulated NexTraq account.
pub struct NexTraqState {
    /// Clock, faults, request log and credential state shared with the admin API.
    pub core: Arc<Core>,
    /// The switches, changeable through `PATCH /__emulator/settings`.
    pub settings: RwLock<Settings>,
    /// The generated fleet the trail computes from.
    pub fleet: Fleet,
    sessions: Mutex<HashMap<String, Session>>,
    issued: AtomicU64,
}

/// The shared state handlers receive.
pub type Nx = Arc<NexTraqState>;

impl NexTraqState {
    /// A copy of the current switches.
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The session a request carries, if it is still alive (and renews it when sliding).
    fn session(&self, headers: &HeaderMap) -> Option<String> {
        let id = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == "JSESSIONID")
            .map(|(_, v)| v.to_string())?;
        let s = self.settings();
        let now = self.core.clock.now_ms();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.get_mut(&id)?;
        let alive = now - session.last_used_ms < s.session_idle_secs * 1000
            && self.core.auth.accepts(session.generation);
        if !alive {
            sessions.remove(&id);
            return None;
        }
        if s.session_sliding {
            session.last_used_ms = now;
        }
        Some(id)
    }

    fn visible(&self, n: u64) -> bool {
        let hidden = self.settings().hidden_fleets;
        !hidden.iter().any(|f| f == FLEETS[(n % 4) as usize])
    }

    fn mobile_json(&self, n: u64) -> Value {
        let v = self.fleet.vehicle(n);
        let mut o = json!({
            "mobileId": MOBILE_BASE + n,
            "name": v.name,
            "primaryFleet": {"name": FLEETS[(n % 4) as usize]},
        });
        if let Some(d) = v.driver {
            let d = self.fleet.driver(d);
            o["driver"] = json!({
                "firstName": d.first_name,
                "lastName": d.last_name,
                "driverId": format!("{}", 9000 + d.n),
            });
        }
        o
    }
}

struct Hooks(Nx);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut g = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*g, &patch)?;
        next.validate()?;
        if next.point_interval_secs != g.point_interval_secs {
            return Err("point_interval_secs is fixed at start".into());
        }
        *g = next;
        serde_json::to_value(&*g).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let s = self.0.settings();
        let g = self.0.core.auth.generation();
        json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "username": s.username,
            "password": rotated_secret(&s.password, g),
        })
    }
}

/// A servlet container's own error pages.
struct NexTraqErrors;

impl SystemErrors for NexTraqErrors {
    fn too_many_requests(&self, _why: Throttle, retry_after_secs: Option<u64>) -> Response {
        let mut r = html(
            StatusCode::TOO_MANY_REQUESTS,
            "<h1>HTTP Status 429 - Too Many Requests</h1>",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }

    fn server_error(&self, status: StatusCode) -> Response {
        html(status, &format!("<h1>HTTP Status {}</h1>", status.as_u16()))
    }
}

fn html(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        format!("<html><head><title>NexTraq</title></head><body>{body}</body></html>"),
    )
        .into_response()
}

/// A JSON error of the private endpoints [I: their error bodies were never captured].
fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"success": false, "message": message})),
    )
        .into_response()
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

const LOGIN_PAGE: &str = r#"<form method="post" action="/j_security_check"><input name="j_username"><input name="j_password" type="password"><button>Sign in</button></form>"#;

async fn login_page(RawQuery(q): RawQuery) -> Response {
    let error = q.as_deref().is_some_and(|q| q.contains("error"));
    html(
        StatusCode::OK,
        &format!(
            "{}{LOGIN_PAGE}",
            if error {
                "<p class=\"error\">Invalid username or password.</p>"
            } else {
                ""
            }
        ),
    )
}

/// `POST /j_security_check` (form `j_username`, `j_password`): a session cookie and a
/// redirect to the map, or back to the login page with `error=true` [I].
async fn login(State(nx): State<Nx>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let s = nx.settings();
    let generation = nx.core.auth.generation();
    let ok = !nx.core.auth.revoked()
        && form.get("j_username") == Some(&s.username)
        && form.get("j_password") == Some(&rotated_secret(&s.password, generation));
    if !ok {
        return redirect("/login.html?error=true");
    }
    let n = nx.issued.fetch_add(1, Ordering::SeqCst) + 1;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(32);
    for i in 0..24 {
        let h = mix(nx.core.seed, 0x5E55_1010 + i, n);
        id.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
    }
    id.push_str(".web-1");
    nx.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id.clone(),
            Session {
                last_used_ms: nx.core.clock.now_ms(),
                generation,
            },
        );
    let secure = if nx.core.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    let mut r = redirect("/instaview/map.html");
    if let Ok(v) = HeaderValue::from_str(&format!("JSESSIONID={id}; Path=/; HttpOnly{secure}")) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `GET /instaview/map.html`: the map page, whose vehicle checkboxes carry the `mobileId`s
/// (where the known integration read them from).
async fn map_page(State(nx): State<Nx>, headers: HeaderMap) -> Response {
    if nx.session(&headers).is_none() {
        return redirect("/login.html");
    }
    let mut body = String::from("<div id=\"vehicles\">");
    for n in (1..=nx.fleet.vehicles).filter(|&n| nx.visible(n)) {
        let v = nx.fleet.vehicle(n);
        body.push_str(&format!(
            "<div class=\"checkboxIndent\"><input type=\"checkbox\" id=\"mobile-{}\"><label>{}</label></div>",
            MOBILE_BASE + n,
            v.name
        ));
    }
    body.push_str("</div>");
    html(StatusCode::OK, &body)
}

/// `GET /json/mobiles`: the vehicles the user may see [I: shape from the trail's `mobile`].
async fn mobiles(State(nx): State<Nx>, headers: HeaderMap) -> Response {
    if nx.session(&headers).is_none() {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "Your session has expired. Please log in again.",
        );
    }
    let list: Vec<Value> = (1..=nx.fleet.vehicles)
        .filter(|&n| nx.visible(n))
        .map(|n| nx.mobile_json(n))
        .collect();
    axum::Json(json!({"data": {"mobiles": list}})).into_response()
}

/// `GET /json/mobiles/trail?date=MM/DD/YYYY&startTime=&endTime=&mobileId=&calcDistance=`:
/// one vehicle's positions over (part of) one local day.
async fn trail(State(nx): State<Nx>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if nx.session(&headers).is_none() {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "Your session has expired. Please log in again.",
        );
    }
    let q: HashMap<String, String> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let s = nx.settings();
    let Ok(tz) = zone(&s.time_zone) else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "time zone");
    };
    let Some(mobile) = q.get("mobileId").and_then(|m| m.parse::<u64>().ok()) else {
        return json_error(StatusCode::BAD_REQUEST, "mobileId is required");
    };
    let n = mobile.wrapping_sub(MOBILE_BASE);
    // Unknown and hidden vehicles alike: the user may not see them.
    if !nx.fleet.has_vehicle(n) || !nx.visible(n) {
        return json_error(
            StatusCode::FORBIDDEN,
            "You do not have access to this vehicle.",
        );
    }
    let now = nx.core.clock.now_ms();
    let last_thirty = q.get("lastThirty").is_some_and(|v| v == "true");
    let (from, to) = if last_thirty {
        (now - 30 * 60_000, now)
    } else {
        let Some(midnight) = q.get("date").and_then(|d| local_midnight(tz, d)) else {
            return json_error(StatusCode::BAD_REQUEST, "date must be MM/DD/YYYY");
        };
        let ms = |name: &str, default: i64| -> Option<i64> {
            match q.get(name) {
                None => Some(default),
                Some(v) => v.parse::<i64>().ok().filter(|x| (0..=DAY).contains(x)),
            }
        };
        let (Some(start), Some(end)) = (ms("startTime", 0), ms("endTime", DAY - 1)) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "startTime and endTime are milliseconds within the day",
            );
        };
        if end < start {
            return json_error(StatusCode::BAD_REQUEST, "endTime is before startTime");
        }
        // Days back from the account's today (today is day 0).
        let (off, _) = offset_at(tz, now);
        let today = (now + off).div_euclid(DAY);
        let day = (midnight + offset_at(tz, midnight).0).div_euclid(DAY);
        if today - day >= s.history_days {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "History is only available for the last {} days.",
                    s.history_days
                ),
            );
        }
        (midnight + start, midnight + end)
    };
    let calc = q.get("calcDistance").is_none_or(|v| v != "false");
    let route = nx.fleet.route_of(n);
    let mobile_json = nx.mobile_json(n);
    let depot = &DEPOTS[nx.fleet.vehicle(n).depot];
    let mut first_distance: Option<i64> = None;
    let tracks: Vec<Value> = nx
        .fleet
        .report_times(n, from - 1, to.min(now))
        .map(|t| {
            let f = route.fix_at(t);
            let base = *first_distance.get_or_insert(f.distance_m);
            let miles = (f.distance_m - base) as f64 / 1609.344;
            let mut o = json!({
                "dateDisplay": date_display(tz, t),
                "address": {
                    "street": format!("{} {}", f.house_number, f.street),
                    "city": depot.city,
                    "state": depot.state,
                    "zip": f.zip(),
                    "county": depot.county,
                    "postedSpeedMph": f.posted_speed_mph,
                },
                "mobile": mobile_json,
                "speedDisplay": format!("{} mph", f.speed_mph.round() as i64),
                "lat": f.latitude,
                "lon": f.longitude,
                "heading": compass(f.heading_degrees),
            });
            if calc {
                o["calculatedMileage"] = json!((miles * 10.0).round() / 10.0);
            }
            o
        })
        .collect();
    axum::Json(json!({"data": {"tracks": tracks}})).into_response()
}

/// `GET /__emulator/nextraq/sessions`: live sessions and when each was last used.
async fn sessions(State(nx): State<Nx>) -> Response {
    let s = nx.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Value> = s
        .iter()
        .map(|(id, x)| json!({"id": id, "last_used_ms": x.last_used_ms}))
        .collect();
    axum::Json(json!({"sessions": list})).into_response()
}

/// Builds the emulator for an account with `vehicles` vehicles.
pub fn app(core: Arc<Core>, settings: Settings, vehicles: u64) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    if !(1..=100_000).contains(&vehicles) {
        anyhow::bail!("a NexTraq account has between 1 and 100,000 vehicles");
    }
    let fleet = Fleet {
        seed: core.seed,
        vehicles,
        drivers: vehicles,
        interval_ms: settings.point_interval_secs * 1000,
        origin_ms: core.clock.now_ms(),
    };
    let nx: Nx = Arc::new(NexTraqState {
        core: core.clone(),
        settings: RwLock::new(settings),
        fleet,
        sessions: Mutex::new(HashMap::new()),
        issued: AtomicU64::new(0),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(NexTraqErrors));
    let api = Router::new()
        .route("/login.html", get(login_page))
        .route("/j_security_check", post(login))
        .route("/instaview/map.html", get(map_page))
        .route("/json/mobiles", get(mobiles))
        .route("/json/mobiles/trail", get(trail))
        .with_state(nx.clone())
        .layer(from_fn_with_state(gate_state, gate));
    let extra = Router::new()
        .route("/__emulator/nextraq/sessions", get(sessions))
        .with_state(nx.clone());
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(nx)),
        system: "nextraq",
    };
    Ok(admin::router(admin_state).merge(extra).merge(api))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_daylight_time_follows_the_2007_rules() {
        let tz = zone("Eastern").unwrap();
        // 2024-03-10 06:59Z is 01:59 EST; 07:00Z is 03:00 EDT.
        let switch = date_ms(2024, 3, 10).unwrap() + 7 * 3_600_000;
        assert_eq!(offset_at(tz, switch - 60_000), (-5 * 3_600_000, "EST"));
        assert_eq!(offset_at(tz, switch), (-4 * 3_600_000, "EDT"));
        // 2024-11-03 06:00Z is 01:00 EST again.
        let back = date_ms(2024, 11, 3).unwrap() + 6 * 3_600_000;
        assert_eq!(offset_at(tz, back - 1).1, "EDT");
        assert_eq!(offset_at(tz, back).1, "EST");
        let t = date_ms(2018, 9, 12).unwrap() + 9 * 3_600_000 + 43 * 60_000 + 39_000;
        assert_eq!(date_display(tz, t), "09/12/2018 5:43:39 AM EDT");
        assert_eq!(
            local_midnight(tz, "01/15/2026"),
            Some(date_ms(2026, 1, 15).unwrap() + 5 * 3_600_000)
        );
        assert_eq!(local_midnight(tz, "13/01/2026"), None);
        assert_eq!(local_midnight(tz, "1/2"), None);
    }
}
