//! Samsara through the real engine against its emulator: vehicles and drivers read whole,
//! GPS points back-filled over the history window into the point storage (each point once,
//! de-duplicated by vehicle and instant), then the locations feed followed from its cursor,
//! also by the worker's polls between hourly syncs, and across kills; fuel levels; safety
//! events with labels the mapping does not know read as `other`, keeping the label.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use ironbridge_core::connector::{Connector, ConnectorError, RawPage, ReadWindow, Source};

use ironbridge_core::clock::RecordingSleeper;
use ironbridge_core::crypto::Keys;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::store::{NewJob, StoreError};
use ironbridge_core::system::ConnectorFactory;
use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::System;
use ironbridge_engine::worker::{POLL_JOB, Worker, WorkerConfig};
use ironbridge_model::{Entity, Timestamp};
use ironbridge_testkit::emulated::Emulated;
use serde_json::Value;

use crate::support::{
    count, drive_until_killed, env_for, events, org, report, status, stored, sync,
};

/// Every point the emulator's history answers for `[from, to]`, as (vehicle, time).
async fn emulator_points(
    source: &Emulated,
    from: Timestamp,
    to: Timestamp,
) -> BTreeSet<(String, String)> {
    let http = reqwest::Client::new();
    let token = source.credentials["api_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut out = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![
            ("startTime", from.to_rfc3339()),
            ("endTime", to.to_rfc3339()),
        ];
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let page: Value = http
            .get(format!(
                "{}/fleet/vehicles/locations/history",
                source.emulator.base_url()
            ))
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for v in page["data"].as_array().unwrap() {
            for l in v["locations"].as_array().unwrap() {
                let t = Timestamp::parse_rfc3339(l["time"].as_str().unwrap()).unwrap();
                out.insert((v["id"].as_str().unwrap().to_string(), t.to_rfc3339()));
            }
        }
        match page["pagination"]["endCursor"].as_str() {
            Some(c) if !c.is_empty() && page["pagination"]["hasNextPage"] == true => {
                after = Some(c.to_string())
            }
            _ => break,
        }
    }
    out
}

/// Every stored point, as (vehicle remote id, time).
async fn stored_points(env: &crate::support::Env) -> BTreeSet<(String, String)> {
    crate::support::stored_points(env)
        .await
        .into_keys()
        .collect()
}

/// A Samsara emulator (seed 5) with `vehicles`, our clock on its time, a connection's
/// environment and the real connector to it.
async fn samsara(
    vehicles: u64,
) -> (
    Emulated,
    ManualClock,
    crate::support::Env,
    Arc<dyn Connector>,
) {
    let source = Emulated::start(System::Samsara, 5, vehicles).await;
    let clock = ManualClock::new(source.now());
    let env = env_for("samsara", clock.clone()).await;
    let connector = source.connector(
        Arc::new(clock.clone()),
        Arc::new(RecordingSleeper::new(clock.clone())),
    );
    (source, clock, env, connector)
}

/// Moves both clocks, ours and the emulator's, by `secs`.
async fn advance(source: &Emulated, clock: &ManualClock, secs: i64) {
    clock.advance_secs(secs);
    source
        .admin(
            "POST",
            "/clock",
            Some(serde_json::json!({"advance_seconds": secs})),
        )
        .await;
}

/// Requests of the emulator's log to `path`, as `path?query`.
async fn requests(source: &Emulated, path: &str) -> Vec<String> {
    let log = source.admin("GET", "/requests", None).await;
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == path)
        .map(|e| {
            format!(
                "{}?{}",
                e["path"].as_str().unwrap_or_default(),
                e["query"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn samsara_back_fills_history_then_follows_the_feed() {
    let (source, clock, env, connector) = samsara(4).await;
    let started = clock.now();
    let first = sync(&env, connector.as_ref(), false).await.unwrap();
    assert_eq!(count(&env, Entity::VEHICLE).await, 4);
    assert!(count(&env, Entity::DRIVER).await >= 4);
    // The history window, seven days back, then what was recorded up to the moment the
    // feed opened: the back-fill leaves no gap before the feed.
    let from = started.plus_secs(-7 * 86_400);
    let expected = emulator_points(&source, from, started).await;
    assert!(expected.len() > 4 * 7 * 2000, "{} points", expected.len());
    let points = stored_points(&env).await;
    assert_eq!(points, expected, "every point of the window, once");
    let r = report(&first, Entity::VEHICLE_LOCATION);
    assert_eq!(r.counts.added as usize, expected.len());
    assert!(
        !requests(&source, "/fleet/vehicles/locations/feed")
            .await
            .is_empty(),
        "the feed was opened"
    );
    // Points carry the vehicle's id and metric speed.
    let page = env
        .store
        .latest_points(&env.conn, Entity::VEHICLE_LOCATION, None, None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 4);
    assert!(page[0].series_id.starts_with("vhc_"));
    let p: Value = serde_json::from_str(&page[0].data).unwrap();
    assert!(
        p.get("vehicle_id").is_none(),
        "the key is not repeated: {p}"
    );
    assert!(p["latitude"].is_f64() && p["speed_kph"].is_number(), "{p}");

    // An hour later: the feed goes on from its cursor, so only the new points are read (no
    // lookback, no history request).
    advance(&source, &clock, 3600).await;
    let history_before = requests(&source, "/fleet/vehicles/locations/history")
        .await
        .len();
    let second = sync(&env, connector.as_ref(), false).await.unwrap();
    assert_eq!(
        requests(&source, "/fleet/vehicles/locations/history")
            .await
            .len(),
        history_before,
        "the feed alone was read"
    );
    let r = report(&second, Entity::VEHICLE_LOCATION);
    let now_expected = emulator_points(&source, from, clock.now()).await;
    let added = now_expected.len() - expected.len();
    assert!(added > 4 * 100, "{added} new points in an hour");
    assert_eq!(r.counts.added as usize, added);
    assert_eq!(r.counts.unchanged, 0, "nothing read twice");
    assert_eq!(stored_points(&env).await, now_expected);
    let feed = requests(&source, "/fleet/vehicles/locations/feed").await;
    assert!(
        feed.last().unwrap().contains("after="),
        "read after the stored cursor: {feed:?}"
    );

    // Fuel levels: one record per reading, level in percent, keyed by vehicle and time.
    let fuel = stored(&env, Entity::FUEL_EVENT).await;
    assert!(fuel.len() > 4 * 7 * 100, "{} readings", fuel.len());
    for f in fuel.iter().take(50) {
        let d: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(d["event_type"], "level", "{d}");
        let level = d["fuel_level_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&level), "{d}");
        assert!(d["vehicle_id"].as_str().unwrap().starts_with("vhc_"));
        assert!(d["occurred_at"].is_string());
    }

    // Safety events: stored with their own label, the unified type from the mapping.
    let events = stored(&env, Entity::DRIVER_BEHAVIOR_EVENT).await;
    assert!(!events.is_empty());
    let mut unknown = 0;
    for e in &events {
        let d: Value = serde_json::from_str(&e.data).unwrap();
        assert!(d["remote_type"].is_string(), "{d}");
        assert!(d["vehicle_id"].as_str().unwrap().starts_with("vhc_"));
        // Labels newer than the mapping (the emulator sends some, as Samsara adds labels)
        // are `other`, their own name kept; known ones get their unified type.
        let label = d["remote_type"].as_str().unwrap();
        if ironbridge_emulators::common::fleet::NEW_LABELS.contains(&label) {
            unknown += 1;
            assert_eq!(d["event_type"], "other", "{d}");
        } else {
            assert_ne!(d["event_type"], "other", "{d}");
        }
    }
    assert!(
        unknown > 0,
        "no unknown label among {} events",
        events.len()
    );

    // A full sync re-reads the history window (not everything since 1970), then opens the
    // feed again; every point is still stored once.
    advance(&source, &clock, 600).await;
    let full = sync(&env, connector.as_ref(), true).await.unwrap();
    let all = emulator_points(&source, from, clock.now()).await;
    assert_eq!(stored_points(&env).await, all);
    let r = report(&full, Entity::VEHICLE_LOCATION);
    assert!(r.counts.unchanged > 0 && (r.counts.added as usize) < all.len());
    let windows = requests(&source, "/fleet/vehicles/locations/history").await;
    for w in &windows {
        assert!(
            !w.contains("startTime=1970"),
            "a full sync reads the history window only: {w}"
        );
    }
}

/// A feed cursor Samsara refuses (400: not a cursor it knows) does not fail the entity until
/// a full sync: the run opens the feed again and reads the history behind the refused
/// position, so the stored points are still exactly the source's, and the next run follows
/// the new cursor.
#[tokio::test]
async fn a_refused_feed_cursor_is_opened_again_without_losing_a_point() {
    let (source, clock, env, connector) = samsara(3).await;
    let from = clock.now().plus_secs(-7 * 86_400);
    sync(&env, connector.as_ref(), false).await.unwrap();
    // An hour passes, and the stored position is one Samsara no longer takes.
    advance(&source, &clock, 3600).await;
    env.store
        .finish_sync(
            &env.conn,
            Entity::VEHICLE_LOCATION,
            clock.now(),
            None,
            Some("feed:bm90LWEtY3Vyc29yLW9mLXRoaXMtZmVlZA"),
        )
        .await
        .unwrap();
    let history_before = requests(&source, "/fleet/vehicles/locations/history")
        .await
        .len();
    let reports = sync(&env, connector.as_ref(), false)
        .await
        .expect("the run opens the feed again instead of failing");
    assert!(report(&reports, Entity::VEHICLE_LOCATION).counts.added > 0);
    let feed = requests(&source, "/fleet/vehicles/locations/feed").await;
    assert!(
        feed.iter().any(|q| q.contains("bm90LWEtY3Vyc29y")),
        "the refused cursor was sent: {feed:?}"
    );
    assert!(
        requests(&source, "/fleet/vehicles/locations/history")
            .await
            .len()
            > history_before,
        "the history behind the refused position was read"
    );
    assert_eq!(
        stored_points(&env).await,
        emulator_points(&source, from, clock.now()).await,
        "no point lost or doubled"
    );
    let state = env
        .store
        .sync_states(&env.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.entity == Entity::VEHICLE_LOCATION)
        .unwrap();
    let cursor = state.cursor.unwrap_or_default();
    assert!(
        is_feed(Some(&cursor)) && !cursor.contains("bm90LWEtY3Vyc29y"),
        "a new feed position: {cursor}"
    );
    // The next run follows the new cursor: the feed alone.
    advance(&source, &clock, 600).await;
    let history_before = requests(&source, "/fleet/vehicles/locations/history")
        .await
        .len();
    sync(&env, connector.as_ref(), false).await.unwrap();
    assert_eq!(
        requests(&source, "/fleet/vehicles/locations/history")
            .await
            .len(),
        history_before
    );
    assert_eq!(
        stored_points(&env).await,
        emulator_points(&source, from, clock.now()).await
    );
}

/// Where a run is killed: at the vehicle-location fetch for which this says yes, given the
/// fetch's number (from 1), window and cursor.
type KillAt = fn(u32, &ReadWindow, Option<&str>) -> bool;

/// The Samsara connector, killed (its future dropped at an await, as `kill -9` stops a
/// process) at the vehicle-location fetch `kill_at` picks.
struct Killed {
    inner: Arc<dyn Connector>,
    kill_at: KillAt,
    pages: AtomicU32,
    reached: Arc<AtomicBool>,
}

impl Connector for Killed {
    fn descriptor(&self) -> &'static ironbridge_core::system::SystemDescriptor {
        self.inner.descriptor()
    }
    fn read_concurrency(&self) -> usize {
        self.inner.read_concurrency()
    }
}

#[async_trait]
impl Source for Killed {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.inner.check().await
    }
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if entity == Entity::VEHICLE_LOCATION {
            let n = self.pages.fetch_add(1, Ordering::SeqCst) + 1;
            if (self.kill_at)(n, window, cursor) {
                self.reached.store(true, Ordering::SeqCst);
                return std::future::pending().await;
            }
        }
        self.inner.fetch_page(entity, window, cursor).await
    }
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        self.inner.source_time().await
    }
}

fn is_feed(cursor: Option<&str>) -> bool {
    cursor.is_some_and(|c| c.starts_with("feed:"))
}

/// A run of vehicle locations killed at every stage (in the sliced back-fill twice, as the
/// feed opens, in the history tail behind it, and while the feed is followed) loses no
/// point and counts none twice: each restart resumes from the last committed page, and the
/// points at the end are exactly the source's.
#[tokio::test]
async fn samsara_points_survive_kill_9_at_every_stage_exactly_once() {
    let source = Emulated::start(System::Samsara, 5, 3).await;
    // Small pages: many of them, so kills land between commits.
    source
        .admin(
            "PATCH",
            "/settings",
            Some(serde_json::json!({"page_points": 200})),
        )
        .await;
    let clock = ManualClock::new(source.now());
    let env = env_for("samsara", clock.clone()).await;
    let fresh = || {
        ironbridge_testkit::emulated::descriptor_of(System::Samsara)
            .connect(
                &source.settings,
                Some(&source.credentials),
                Arc::new(clock.clone()),
                Arc::new(RecordingSleeper::new(clock.clone())),
                ironbridge_core::netguard::Egress::local(),
            )
            .unwrap()
    };
    let from = clock.now().plus_secs(-86_400);
    let options = || ironbridge_engine::sync::SyncOptions {
        history_days: Some(1),
        ..Default::default()
    };
    let run_killed = |kill_at: KillAt| {
        let killable = Killed {
            inner: fresh(),
            kill_at,
            pages: AtomicU32::new(0),
            reached: Arc::new(AtomicBool::new(false)),
        };
        let env = &env;
        async move {
            let reached = killable.reached.clone();
            drive_until_killed(
                crate::support::sync_with(env, &killable, options()),
                reached,
            )
            .await
            .is_none()
        }
    };
    let stages: [(&str, KillAt); 4] = [
        ("back-fill, third page", |n, _, _| n == 3),
        ("back-fill resumed, tenth page", |n, _, _| n == 10),
        ("feed opening", |_, _, c| c == Some("feed:")),
        ("history tail", |_, w, c| {
            w.modified_since.is_some() && w.modified_until.is_none() && !is_feed(c)
        }),
    ];
    for (stage, kill_at) in stages {
        assert!(run_killed(kill_at).await, "killed in the {stage}");
        advance(&source, &clock, 30).await;
    }
    let done = crate::support::sync_with(&env, fresh().as_ref(), options())
        .await
        .unwrap();
    let expected = emulator_points(&source, from, clock.now()).await;
    assert!(expected.len() > 3 * 2000, "{} points", expected.len());
    assert_eq!(
        stored_points(&env).await,
        expected,
        "the back-fill, exactly"
    );
    assert_eq!(
        report(&done, Entity::VEHICLE_LOCATION).counts.added as usize,
        expected.len(),
        "the run's count over its five attempts: each point once"
    );

    // The feed followed, killed after its first page was committed, then run through.
    advance(&source, &clock, 3600).await;
    assert!(
        run_killed(|n, _, c| is_feed(c) && n == 2).await,
        "killed on the feed's second page"
    );
    crate::support::sync_with(&env, fresh().as_ref(), options())
        .await
        .unwrap();
    let expected = emulator_points(&source, from, clock.now()).await;
    assert_eq!(
        stored_points(&env).await,
        expected,
        "the feed, exactly, across a kill"
    );
}

/// Gives every connection the one emulated connector (the worker's runtimes build it).
struct OneConnector(Arc<dyn Connector>);

impl ConnectorFactory for OneConnector {
    fn build(
        &self,
        _: &'static ironbridge_core::system::SystemDescriptor,
        _: &serde_json::Map<String, Value>,
        _: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(self.0.clone())
    }
}

/// Between hourly syncs the worker polls the locations feed on its short interval: only
/// the followed feed is read, no `sync.completed` event is written, the polls do not put off
/// the hourly sync of everything else, and finished poll jobs are purged after an hour.
#[tokio::test]
async fn the_worker_polls_the_feed_between_hourly_syncs() {
    let (source, clock, env, connector) = samsara(3).await;
    let from = clock.now().plus_secs(-7 * 86_400);
    sync(&env, connector.as_ref(), false).await.unwrap();
    assert_eq!(status(&env).await, "online");
    let runtimes = Arc::new(Runtimes::new(
        ironbridge_engine::registry::builtin(Arc::new(clock.clone()))
            .with_factory(Arc::new(OneConnector(connector.clone()))),
        Arc::new(Keys::from_master(&[5u8; 32]).unwrap()),
    ));
    let worker = Worker::new(
        env.store.clone(),
        runtimes,
        Arc::new(clock.clone()),
        WorkerConfig {
            idle_wait: std::time::Duration::from_millis(5),
            poll_interval: Some(std::time::Duration::from_secs(30)),
            ..WorkerConfig::default()
        },
    );
    assert_eq!(worker.schedule_polls().await.unwrap(), 0, "just read");
    let completed =
        |events: &[(String, Value)]| events.iter().filter(|(t, _)| t == "sync.completed").count();
    let completed_before = completed(&events(&env).await);
    let vehicles_before = requests(&source, "/fleet/vehicles").await.len()
        + requests(&source, "/fleet/drivers").await.len();
    for round in 0..3 {
        advance(&source, &clock, 1200).await;
        if round == 0 {
            // A poll job with a known id, to see it purged later.
            let now = clock.now();
            env.store
                .enqueue_job(&NewJob {
                    id: "job_poll_1".into(),
                    kind: POLL_JOB.into(),
                    org_id: org().0,
                    connection_id: Some(env.conn.0.clone()),
                    payload: "{\"poll\":true}".into(),
                    dedupe_key: Some(ironbridge_engine::worker::sync_key(&env.conn)),
                    run_at: now,
                    max_attempts: 1,
                    created_at: now,
                })
                .await
                .unwrap()
                .unwrap();
        } else {
            assert_eq!(worker.schedule_polls().await.unwrap(), 1, "round {round}");
        }
        assert!(worker.run_once().await.unwrap(), "round {round}");
        assert_eq!(
            stored_points(&env).await,
            emulator_points(&source, from, clock.now()).await,
            "round {round}: every point up to now"
        );
    }
    let job = env.store.get_job(&org(), "job_poll_1").await.unwrap();
    assert_eq!(job.status, "succeeded");
    assert_eq!(
        completed(&events(&env).await),
        completed_before,
        "polls write no sync.completed"
    );
    assert_eq!(status(&env).await, "online");
    assert_eq!(
        requests(&source, "/fleet/vehicles").await.len()
            + requests(&source, "/fleet/drivers").await.len(),
        vehicles_before,
        "polls read the feed alone"
    );
    // An hour after the sync (the polls read since): the hourly sync is due all the same.
    advance(&source, &clock, 120).await;
    assert_eq!(worker.schedule_due().await.unwrap(), 1);
    // Finished polls older than an hour are purged.
    advance(&source, &clock, 3600).await;
    worker.schedule_polls().await.unwrap();
    assert!(matches!(
        env.store.get_job(&org(), "job_poll_1").await,
        Err(StoreError::NotFound)
    ));
}

/// Sleeps by moving both clocks, ours and the emulator's (whose rate limit refills on it),
/// and remembers each delay.
struct BothClocks {
    ours: ManualClock,
    source: Arc<ironbridge_emulators::common::Core>,
    slept: std::sync::Mutex<Vec<std::time::Duration>>,
}

impl std::fmt::Debug for BothClocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BothClocks")
    }
}

impl ironbridge_core::clock::Sleeper for BothClocks {
    fn sleep(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.slept.lock().unwrap().push(d);
        self.ours.advance_micros(d.as_micros() as i64);
        self.source.clock.advance_ms(d.as_millis() as i64);
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test]
async fn samsara_429_with_a_fractional_retry_after_is_waited_out() {
    let source = Emulated::start(System::Samsara, 5, 40).await;
    // Two requests a second per token, on the emulator's clock: the sync's reads are
    // throttled, each 429 saying how long to wait in fractions of a second.
    source
        .admin(
            "PATCH",
            "/settings",
            Some(serde_json::json!({"rate_per_token": 2.0, "rate_clock": "emulator"})),
        )
        .await;
    let clock = ManualClock::new(source.now());
    let env = env_for("samsara", clock.clone()).await;
    let sleeper = Arc::new(BothClocks {
        ours: clock.clone(),
        source: source.emulator.core().clone(),
        slept: Default::default(),
    });
    let mut settings = source.settings.clone();
    settings.insert("page_size".into(), serde_json::json!(10));
    let connector = ironbridge_testkit::emulated::descriptor_of(System::Samsara)
        .connect(
            &settings,
            Some(&source.credentials),
            Arc::new(clock.clone()),
            sleeper.clone(),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    let reports = crate::support::sync_with(
        &env,
        connector.as_ref(),
        ironbridge_engine::sync::SyncOptions {
            history_days: Some(1),
            // One call at a time: each 429 is then waited out and the retry succeeds, however
            // many entities the sync reads (concurrent callers could each be refused again).
            max_concurrency: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(count(&env, Entity::VEHICLE).await, 40, "every page, once");
    assert!(report(&reports, Entity::VEHICLE_LOCATION).counts.added > 0);
    let log = source.admin("GET", "/requests", None).await;
    let throttled = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == 429)
        .count();
    assert!(throttled > 0, "the sync was throttled");
    let slept = sleeper.slept.lock().unwrap().clone();
    assert!(
        slept.iter().any(|d| d.as_millis() % 1000 != 0
            && *d >= std::time::Duration::from_millis(100)
            && *d < std::time::Duration::from_secs(1)),
        "a fractional Retry-After was honoured: {slept:?}"
    );
}
