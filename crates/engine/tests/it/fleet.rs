//! Samsara through the real engine against its emulator: vehicles and drivers read whole,
//! GPS points back-filled over the history window into the point storage (each point once,
//! de-duplicated by vehicle and instant), then only the new ones as the clock moves; safety
//! events with labels the mapping does not know read as `other`, keeping the label.

use std::collections::BTreeSet;
use std::sync::Arc;

use ironbridge_core::clock::RecordingSleeper;
use ironbridge_core::store::PointQuery;
use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::System;
use ironbridge_model::{Entity, Timestamp};
use ironbridge_testkit::emulated::Emulated;
use serde_json::Value;

use crate::support::{count, env_for, report, stored, sync};

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
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = env
            .store
            .list_points(
                &env.conn,
                &PointQuery {
                    entity: Entity::VEHICLE_LOCATION,
                    series_id: None,
                    from: None,
                    until: None,
                    after: after.clone(),
                    limit: 5000,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.recorded_at, last.series_id.clone()));
        for p in &page {
            let data: Value = serde_json::from_str(&p.data).unwrap();
            out.insert((
                data["vehicle_remote_id"].as_str().unwrap().to_string(),
                p.recorded_at.to_rfc3339(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn samsara_back_fills_history_then_reads_only_new_points() {
    let source = Emulated::start(System::Samsara, 5, 4).await;
    let clock = ManualClock::new(source.now());
    let env = env_for("samsara", clock.clone()).await;
    let connector = source.connector(
        Arc::new(clock.clone()),
        Arc::new(RecordingSleeper::new(clock.clone())),
    );
    let started = clock.now();
    let first = sync(&env, connector.as_ref(), false).await.unwrap();
    assert_eq!(count(&env, Entity::VEHICLE).await, 4);
    assert!(count(&env, Entity::DRIVER).await >= 4);
    // The history window: seven days back, to two minutes before the sync began.
    let from = started.plus_secs(-7 * 86_400);
    let until = started.plus_secs(-120);
    let expected = emulator_points(&source, from, until).await;
    assert!(expected.len() > 4 * 7 * 2000, "{} points", expected.len());
    let points = stored_points(&env).await;
    assert_eq!(points, expected, "every point of the window, once");
    let r = report(&first, Entity::VEHICLE_LOCATION);
    assert_eq!(r.counts.added as usize, expected.len());
    // Points carry the vehicle's id and metric speed.
    let page = env
        .store
        .latest_points(&env.conn, Entity::VEHICLE_LOCATION, None, None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 4);
    let p: Value = serde_json::from_str(&page[0].data).unwrap();
    assert!(p["vehicle_id"].as_str().unwrap().starts_with("vhc_"));
    assert!(p["latitude"].is_f64() && p["speed_kph"].is_number(), "{p}");

    // An hour later: only the new points (the lookback re-reads ten minutes, stored once).
    clock.advance_secs(3600);
    source
        .admin(
            "POST",
            "/clock",
            Some(serde_json::json!({"advance_seconds": 3600})),
        )
        .await;
    let second = sync(&env, connector.as_ref(), false).await.unwrap();
    let r = report(&second, Entity::VEHICLE_LOCATION);
    let now_expected = emulator_points(&source, from, clock.now().plus_secs(-120)).await;
    let added = now_expected.len() - expected.len();
    assert_eq!(r.counts.added as usize, added);
    assert!(
        r.counts.unchanged > 0,
        "the lookback's points are already stored"
    );
    assert_eq!(stored_points(&env).await, now_expected);

    // Safety events: stored with their own label, the unified type from the mapping.
    let events = stored(&env, Entity::DRIVER_BEHAVIOR_EVENT).await;
    assert!(!events.is_empty());
    for e in &events {
        let d: Value = serde_json::from_str(&e.data).unwrap();
        assert!(d["remote_type"].is_string(), "{d}");
        assert!(d["event_type"].is_string());
        assert!(d["vehicle_id"].as_str().unwrap().starts_with("vhc_"));
    }
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
