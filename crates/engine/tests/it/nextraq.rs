//! NexTraq through the real engine against its emulator: a session from the web login shared
//! by the sync's readers, vehicles read whole, GPS points back-filled from the per-vehicle,
//! per-day trail over the history window (each point once), then only the new ones; an
//! expired session signed in again; refused credentials; a vehicle the user may not see
//! skipped; and never a day beyond the 200 the web app serves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ironbridge_core::clock::RecordingSleeper;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::common::requestlog::LogEntry;
use ironbridge_emulators::{EmulatorConfig, System};
use ironbridge_engine::sync::{SyncError, SyncOptions};
use ironbridge_model::{Entity, Timestamp};
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{Env, count, env_for, report, status, stored_points, sync, sync_with};

/// (vehicle `mobileId`, RFC 3339 time) → the point as the emulator's trail shows it.
type Points = BTreeMap<(String, String), Value>;

/// A NexTraq emulator with `vehicles` vehicles (one in four in the hidden `Executive` fleet),
/// a store, and a connector on a clock that starts with the emulator's.
struct Nx {
    source: Emulated,
    clock: ManualClock,
    env: Env,
    connector: Arc<dyn Connector>,
}

impl Nx {
    async fn start(vehicles: u64) -> Nx {
        Self::start_with(EmulatorConfig::new(System::NexTraq, 5, vehicles)).await
    }

    async fn start_with(config: EmulatorConfig) -> Nx {
        let source = Emulated::start_with(config).await;
        let clock = ManualClock::new(source.now());
        let env = env_for("nextraq", clock.clone()).await;
        let connector = source.connector(
            Arc::new(clock.clone()),
            Arc::new(RecordingSleeper::new(clock.clone())),
        );
        Nx {
            source,
            clock,
            env,
            connector,
        }
    }

    /// Moves both clocks, ours and the emulator's.
    async fn advance_secs(&self, secs: i64) {
        self.clock.advance_secs(secs);
        self.source
            .admin("POST", "/clock", Some(json!({"advance_seconds": secs})))
            .await;
    }

    /// Where the emulator's request log stands.
    fn log_mark(&self) -> u64 {
        self.source.emulator.core().log.total()
    }

    /// The requests the emulator answered since `mark`.
    fn log_since(&self, mark: u64) -> Vec<LogEntry> {
        self.source.emulator.core().log.entries(mark)
    }

    /// Every point the emulator's trail holds for the visible vehicles, over the local days
    /// from `from` to `to` (whole days: the caller cuts them), read as the web app would.
    async fn trail_points(&self, from: Timestamp, to: Timestamp) -> Points {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = self.source.emulator.base_url();
        let login = http
            .post(format!("{base}/j_security_check"))
            .form(&[
                (
                    "j_username",
                    self.source.credentials["username"].as_str().unwrap(),
                ),
                (
                    "j_password",
                    self.source.credentials["password"].as_str().unwrap(),
                ),
            ])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mobiles: Value = http
            .get(format!("{base}/json/mobiles"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Eastern time, the emulator's default: a day or so either side covers the window.
        let day_secs = 86_400;
        let mut out = Points::new();
        for m in mobiles["data"]["mobiles"].as_array().unwrap() {
            let id = m["mobileId"].as_u64().unwrap();
            let mut t = from.plus_secs(-day_secs);
            while t <= to.plus_secs(day_secs) {
                let local =
                    time::OffsetDateTime::from_unix_timestamp(t.micros() / 1_000_000 - 5 * 3600)
                        .unwrap();
                let date = format!(
                    "{:02}/{:02}/{:04}",
                    local.month() as u8,
                    local.day(),
                    local.year()
                );
                let answer: Value = http
                    .get(format!("{base}/json/mobiles/trail"))
                    .header("cookie", &cookie)
                    .query(&[("date", date.as_str()), ("mobileId", &id.to_string())])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for p in answer["data"]["tracks"].as_array().unwrap() {
                    let at = display_time(p["dateDisplay"].as_str().unwrap());
                    out.insert((id.to_string(), at.to_rfc3339()), p.clone());
                }
                t = t.plus_secs(day_secs);
            }
        }
        out
    }
}

/// `01/01/2026 5:43:39 AM EST` (the emulator's clock is in winter: EST) as an instant.
fn display_time(text: &str) -> Timestamp {
    let format = time::macros::format_description!(
        "[month]/[day]/[year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    let (local, zone) = text.rsplit_once(' ').unwrap();
    assert_eq!(zone, "EST", "{text}");
    let t = time::PrimitiveDateTime::parse(local, &format)
        .unwrap()
        .assume_offset(time::macros::offset!(-5));
    Timestamp::from_secs(t.unix_timestamp())
}

/// The points of `all` shown at an instant in `[from, to]`.
fn within(all: &Points, from: Timestamp, to: Timestamp) -> BTreeSet<(String, String)> {
    all.keys()
        .filter(|(_, t)| {
            let t = Timestamp::parse_rfc3339(t).unwrap();
            t >= from && t <= to
        })
        .cloned()
        .collect()
}

fn is_login(e: &LogEntry) -> bool {
    e.method == "POST" && e.path == "/j_security_check"
}

fn is_trail(e: &LogEntry) -> bool {
    e.path == "/json/mobiles/trail"
}

/// Checks that the stored points are those of the window: every point the trail shows inside
/// it, and nothing outside it. The trail shows whole seconds of instants it keeps to the
/// millisecond, so a point shown at the window's last second may fall either side.
fn assert_window(
    stored: &BTreeMap<(String, String), Value>,
    trail: &Points,
    from: Timestamp,
    until: Timestamp,
) {
    let keys: BTreeSet<_> = stored.keys().cloned().collect();
    let inside = within(trail, from, until.plus_secs(-1));
    let at_most = within(trail, from, until);
    let lost: Vec<_> = inside.difference(&keys).take(5).collect();
    assert!(lost.is_empty(), "points of the window not stored: {lost:?}");
    let extra: Vec<_> = keys.difference(&at_most).take(5).collect();
    assert!(
        extra.is_empty(),
        "points stored from outside the window: {extra:?}"
    );
}

#[tokio::test]
async fn nextraq_back_fills_the_trail_then_reads_only_new_points() {
    let nx = Nx::start(8).await;
    let started = nx.clock.now();
    let mark = nx.log_mark();
    let first = sync(&nx.env, nx.connector.as_ref(), false).await.unwrap();
    let log = nx.log_since(mark);
    // Vehicles 3 and 7 are in the hidden `Executive` fleet: not listed, not read.
    assert_eq!(count(&nx.env, Entity::VEHICLE).await, 6);
    // One login for every reader of the sync.
    assert_eq!(log.iter().filter(|e| is_login(e)).count(), 1, "one login");
    // One request per vehicle and local day of the window (seven days touch eight): the
    // sync's slices end at local midnight, so no day is asked for twice.
    let trail_requests = log.iter().filter(|e| is_trail(e)).count();
    assert!(
        (6 * 7..=6 * 8).contains(&trail_requests),
        "{trail_requests} trail requests"
    );
    assert!(
        log.iter()
            .all(|e| e.status != Some(400) && e.status != Some(403)),
        "no refused request"
    );
    let vehicles = crate::support::stored(&nx.env, Entity::VEHICLE).await;
    let v: Value = serde_json::from_str(&vehicles[0].data).unwrap();
    assert!(v["group_name"].is_string() && v["name"].is_string(), "{v}");

    // The history window: seven days back, to two minutes before the sync began.
    let from = started.plus_secs(-7 * 86_400);
    let until = started.plus_secs(-120);
    let trail = nx.trail_points(from, until).await;
    let stored = stored_points(&nx.env).await;
    assert!(stored.len() > 6 * 7 * 1400, "{} points", stored.len());
    assert_window(&stored, &trail, from, until);
    let r = report(&first, Entity::VEHICLE_LOCATION);
    assert_eq!(r.counts.added as usize, stored.len(), "each point once");

    // A sample, field by field: metric speed, heading in degrees, one address line.
    let (key, raw) = trail
        .iter()
        .filter(|(k, _)| stored.contains_key(*k))
        .nth(777)
        .unwrap();
    let p = &stored[key];
    assert!(p["vehicle_id"].as_str().unwrap().starts_with("vhc_"), "{p}");
    for (ours, theirs) in [("latitude", "lat"), ("longitude", "lon")] {
        let d = p[ours].as_f64().unwrap() - raw[theirs].as_f64().unwrap();
        assert!(d.abs() < 1e-8, "{ours}: {p} {raw}");
    }
    let mph: f64 = raw["speedDisplay"]
        .as_str()
        .unwrap()
        .trim_end_matches(" mph")
        .parse()
        .unwrap();
    assert!(
        (p["speed_kph"].as_f64().unwrap() - mph * 1.609344).abs() < 1e-6,
        "{p}"
    );
    let compass = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
    let k = compass.iter().position(|c| raw["heading"] == *c).unwrap();
    assert_eq!(p["heading_degrees"].as_f64(), Some(k as f64 * 45.0));
    let street = raw["address"]["street"].as_str().unwrap();
    assert!(p["address"].as_str().unwrap().starts_with(street), "{p}");

    // An hour later: only the new points (the lookback re-reads ten minutes, stored once).
    nx.advance_secs(3600).await;
    // (The sync's waits for its rate limit move our clock, not the emulator's: the window
    // ends two minutes before the emulator's time.)
    let until = nx.source.now().plus_secs(-120);
    let second = sync(&nx.env, nx.connector.as_ref(), false).await.unwrap();
    let r = report(&second, Entity::VEHICLE_LOCATION);
    let now_stored = stored_points(&nx.env).await;
    assert_eq!(
        r.counts.added as usize,
        now_stored.len() - stored.len(),
        "none doubled"
    );
    assert!(
        r.counts.added > 6 * 55 && r.counts.added < 6 * 65,
        "an hour of points: {}",
        r.counts.added
    );
    assert!(
        r.counts.unchanged > 0,
        "the lookback's points are stored already"
    );
    let trail = nx.trail_points(from, until).await;
    assert_window(&now_stored, &trail, from, until);
}

#[tokio::test]
async fn nextraq_signs_in_again_when_the_session_ends() {
    let nx = Nx::start(4).await;
    let options = SyncOptions {
        history_days: Some(1),
        ..Default::default()
    };
    sync_with(&nx.env, nx.connector.as_ref(), options.clone())
        .await
        .unwrap();
    // Past the session's idle lifetime (30 minutes) on the emulator's clock.
    nx.advance_secs(1801).await;
    let mark = nx.log_mark();
    let reports = sync_with(&nx.env, nx.connector.as_ref(), options.clone())
        .await
        .unwrap();
    let log = nx.log_since(mark);
    assert_eq!(
        log.iter().filter(|e| is_login(e)).count(),
        1,
        "signed in again"
    );
    assert_eq!(
        log.iter().filter(|e| e.status == Some(401)).count(),
        1,
        "the expired session was refused once"
    );
    assert!(report(&reports, Entity::VEHICLE_LOCATION).counts.added > 0);

    // The source ends sessions sooner (a minute idle), and a minute passes: the same.
    let live = nx.source.admin("GET", "/nextraq/sessions", None).await;
    assert_eq!(live["sessions"].as_array().unwrap().len(), 1, "{live}");
    nx.source
        .admin("PATCH", "/settings", Some(json!({"session_idle_secs": 60})))
        .await;
    nx.advance_secs(61).await;
    let mark = nx.log_mark();
    sync_with(&nx.env, nx.connector.as_ref(), options)
        .await
        .unwrap();
    let log = nx.log_since(mark);
    assert_eq!(log.iter().filter(|e| is_login(e)).count(), 1);
    assert_eq!(status(&nx.env).await, "online");
}

#[tokio::test]
async fn nextraq_refused_login_requires_reauthorization() {
    let nx = Nx::start(2).await;
    let mut credentials = nx.source.credentials.clone();
    credentials.insert("password".into(), json!("not-the-password"));
    let connector = nx
        .source
        .system
        .connect(
            &nx.source.settings,
            Some(&credentials),
            Arc::new(nx.clock.clone()),
            Arc::new(RecordingSleeper::new(nx.clock.clone())),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    let err = sync(&nx.env, connector.as_ref(), false).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Connector(ConnectorError::Unauthorized)),
        "{err:?}"
    );
    assert_eq!(status(&nx.env).await, "reauthorization_required");
    // The login was tried once, and nothing else was asked for.
    let log = nx.log_since(0);
    assert_eq!(log.iter().filter(|e| is_login(e)).count(), 1);
    assert!(log.iter().all(is_login), "{log:?}");
}

#[tokio::test]
async fn nextraq_skips_a_vehicle_the_user_may_not_see() {
    let nx = Nx::start(8).await;
    let options = SyncOptions {
        history_days: Some(1),
        ..Default::default()
    };
    sync_with(&nx.env, nx.connector.as_ref(), options.clone())
        .await
        .unwrap();
    let before = stored_points(&nx.env).await;
    // The `Sales` fleet (vehicles 2 and 6) is hidden from the user while the connector still
    // holds the vehicle list it read a minute ago.
    nx.source
        .admin(
            "PATCH",
            "/settings",
            Some(json!({"hidden_fleets": ["Executive", "Sales"]})),
        )
        .await;
    nx.advance_secs(60).await;
    let mark = nx.log_mark();
    let reports = sync_with(&nx.env, nx.connector.as_ref(), options)
        .await
        .unwrap();
    let log = nx.log_since(mark);
    let refused: Vec<_> = log
        .iter()
        .filter(|e| is_trail(e) && e.status == Some(403))
        .collect();
    assert_eq!(
        refused.len(),
        2,
        "each hidden vehicle asked for once: {refused:?}"
    );
    let after = stored_points(&nx.env).await;
    let added: BTreeSet<&str> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .map(|(v, _)| v.as_str())
        .collect();
    assert_eq!(
        added,
        BTreeSet::from(["100001", "100004", "100005", "100008"]),
        "the visible vehicles' new points"
    );
    assert!(report(&reports, Entity::VEHICLE_LOCATION).counts.added > 0);
}

#[tokio::test]
async fn nextraq_never_asks_beyond_the_200_days_the_trail_serves() {
    // One vehicle reporting hourly, so two hundred days are a few thousand points.
    let mut config = EmulatorConfig::new(System::NexTraq, 5, 1);
    config.nextraq.point_interval_secs = 3600;
    let nx = Nx::start_with(config).await;
    let today =
        time::OffsetDateTime::from_unix_timestamp(nx.clock.now().micros() / 1_000_000 - 5 * 3600)
            .unwrap()
            .date();
    let oldest = today - time::Duration::days(198);
    let oldest_param = format!(
        "{:02}%2F{:02}%2F{:04}",
        oldest.month() as u8,
        oldest.day(),
        oldest.year()
    );
    for options in [
        // A back-fill longer than the source keeps.
        SyncOptions {
            history_days: Some(400),
            ..Default::default()
        },
        // A full sync re-reads the history window: the same bound.
        SyncOptions {
            full: true,
            history_days: Some(400),
            ..Default::default()
        },
    ] {
        let mark = nx.log_mark();
        sync_with(&nx.env, nx.connector.as_ref(), options.clone())
            .await
            .unwrap();
        let trail: Vec<_> = nx.log_since(mark).into_iter().filter(is_trail).collect();
        assert!(
            trail.iter().all(|e| e.status == Some(200)),
            "{options:?}: {:?}",
            trail.iter().find(|e| e.status != Some(200))
        );
        assert!(
            trail
                .iter()
                .any(|e| e.query.as_deref().unwrap_or("").contains(&oldest_param)),
            "{options:?}: the oldest day served is read"
        );
        // 199 days, a few cut in two by the sync's slices.
        assert!(
            (199..=230).contains(&trail.len()),
            "{options:?}: {} trail requests",
            trail.len()
        );
    }
    let stored = stored_points(&nx.env).await;
    let first = stored.keys().map(|(_, t)| t.clone()).min().unwrap();
    let first = Timestamp::parse_rfc3339(&first).unwrap();
    // 198 days before 31 December is in June: daylight time (EDT).
    let oldest_start = time::PrimitiveDateTime::new(oldest, time::Time::MIDNIGHT)
        .assume_offset(time::macros::offset!(-4));
    assert!(
        first.micros() / 1_000_000 >= oldest_start.unix_timestamp(),
        "{first:?} {oldest_start}"
    );
    assert!(first.micros() / 1_000_000 < oldest_start.unix_timestamp() + 3600);
}
