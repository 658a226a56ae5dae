//! The Samsara API v2 emulator over HTTP: bearer tokens, cursor walks that equal the generated
//! set, feeds catching up across a clock advance, rate limits with a fractional `Retry-After`,
//! safety events, dispatch routes and their stop states, fuel purchases, error bodies.

use std::collections::{BTreeSet, HashSet};

use ironbridge_emulators::samsara::{DEFAULT_TOKEN, Settings};
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{admin_json, client, start_with};

struct Sam {
    emu: RunningEmulator,
}

impl Sam {
    async fn start(vehicles: u64) -> Sam {
        Self::with(vehicles, Settings::default()).await
    }

    async fn with(vehicles: u64, settings: Settings) -> Sam {
        let mut config = EmulatorConfig::new(System::Samsara, 42, vehicles);
        config.samsara = settings;
        Sam {
            emu: start_with(config).await,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = client()
            .request(method, format!("{}{path}", self.emu.base_url()))
            .bearer_auth(DEFAULT_TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.call(Method::GET, path, None).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn settings(&self, patch: Value) {
        admin_json(&self.emu, Method::PATCH, "/settings", Some(patch)).await;
    }

    async fn advance_ms(&self, ms: i64) {
        admin_json(
            &self.emu,
            Method::POST,
            "/clock",
            Some(json!({"advance_ms": ms})),
        )
        .await;
    }

    async fn now(&self) -> String {
        admin_json(&self.emu, Method::GET, "/clock", None).await["now"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every page of a list, following `endCursor` until `hasNextPage` is false.
    async fn walk(&self, path: &str) -> (Vec<Value>, usize) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &after {
                Some(a) => format!("{path}{sep}after={a}"),
                None => path.to_string(),
            };
            let page = self.ok(&url).await;
            pages += 1;
            all.extend(page["data"].as_array().unwrap().iter().cloned());
            if !page["pagination"]["hasNextPage"].as_bool().unwrap() {
                assert_eq!(
                    page["pagination"]["endCursor"], "",
                    "a list ends with an empty cursor"
                );
                return (all, pages);
            }
            after = Some(
                page["pagination"]["endCursor"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            assert!(pages < 1000);
        }
    }
}

fn is_error_body(v: &Value) -> bool {
    v["message"].as_str().is_some_and(|m| !m.is_empty())
        && v["requestId"].as_str().is_some_and(|r| !r.is_empty())
        && v.as_object().unwrap().len() == 2
}

/// (vehicle id, time) of every point of a `locations` answer.
fn points(data: &[Value], key: &str) -> Vec<(String, String)> {
    data.iter()
        .flat_map(|v| {
            let id = v["id"].as_str().unwrap().to_string();
            v[key]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |p| (id.clone(), p["time"].as_str().unwrap().to_string()))
        })
        .collect()
}

#[tokio::test]
async fn a_bearer_token_is_required_and_refusals_use_samsaras_error_body() {
    let sam = Sam::start(5).await;
    let url = format!("{}/fleet/vehicles", sam.emu.base_url());
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(is_error_body(&none.json().await.unwrap()));
    let wrong = client().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let basic = client()
        .get(&url)
        .basic_auth(DEFAULT_TOKEN, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(sam.get("/fleet/vehicles").await.0, 200);
    // An unknown path is a 404 in the same shape.
    let (status, body) = sam.get("/fleet/nothing-here").await;
    assert_eq!(status, 404);
    assert!(is_error_body(&body));
    // So is a method a path does not take.
    let r = sam
        .call(Method::POST, "/fleet/vehicles", Some(json!({})))
        .await;
    assert_eq!(r.status(), 405);
    assert!(is_error_body(&r.json().await.unwrap()));
    // Two errors never share a request id.
    let a: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(a["requestId"], b["requestId"]);
    // A revoked token stops working at once; rotation issues a new one.
    admin_json(&sam.emu, Method::POST, "/credentials/revoke", None).await;
    assert_eq!(sam.get("/fleet/vehicles").await.0, 401);
    admin_json(&sam.emu, Method::POST, "/credentials/restore", None).await;
    let creds = admin_json(&sam.emu, Method::POST, "/credentials/rotate", None).await;
    assert_eq!(sam.get("/fleet/vehicles").await.0, 401);
    let rotated = creds["tokens"][0].as_str().unwrap();
    let r = client()
        .get(&url)
        .bearer_auth(rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn walking_vehicles_and_drivers_pages_sees_each_once() {
    let sam = Sam::start(25).await;
    let (all, pages) = sam.walk("/fleet/vehicles?limit=7").await;
    assert_eq!(pages, 4);
    let ids: HashSet<_> = all.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 25);
    let one = &all[0];
    for key in [
        "name",
        "vin",
        "licensePlate",
        "make",
        "model",
        "serial",
        "createdAtTime",
    ] {
        assert!(one[key].is_string(), "{key}: {one}");
    }
    assert!(one["year"].is_string(), "year is a string in Samsara");
    assert_eq!(one["gateway"]["serial"], one["serial"]);
    let driver = one["staticAssignedDriver"]["id"].as_str().unwrap();
    let (status, d) = sam.get(&format!("/fleet/drivers/{driver}")).await;
    assert_eq!(status, 200);
    assert_eq!(d["data"]["staticAssignedVehicle"]["id"], one["id"]);
    // A single page of everything equals the walk.
    let (whole, pages) = sam.walk("/fleet/vehicles").await;
    assert_eq!((&whole, pages), (&all, 1));
    // 25 vehicles → 27 drivers: active and deactivated ones partition them.
    let (active, _) = sam.walk("/fleet/drivers?limit=4").await;
    let (off, _) = sam
        .walk("/fleet/drivers?driverActivationStatus=deactivated&limit=4")
        .await;
    assert_eq!(active.len() + off.len(), 27);
    assert!(
        off.iter()
            .all(|d| d["driverActivationStatus"] == "deactivated")
    );
    assert!(
        active
            .iter()
            .all(|d| d["driverActivationStatus"] == "active")
    );
    // Filters by tag keep only the depot's vehicles.
    let tag = one["tags"][0]["id"].as_str().unwrap();
    let (tagged, _) = sam
        .walk(&format!("/fleet/vehicles?tagIds={tag}&limit=2"))
        .await;
    assert!(!tagged.is_empty() && tagged.len() < 25);
    assert!(tagged.iter().all(|v| v["tags"][0]["id"] == tag));
}

#[tokio::test]
async fn bad_parameters_are_400s_in_samsaras_shape() {
    let sam = Sam::start(5).await;
    for path in [
        "/fleet/vehicles?limit=0",
        "/fleet/vehicles?limit=513",
        "/fleet/vehicles?limit=ten",
        "/fleet/vehicles?after=garbage",
        "/fleet/drivers?driverActivationStatus=sleeping",
        "/fleet/vehicles/locations/history?startTime=2026-01-01T00:00:00Z",
        "/fleet/vehicles/locations/history?startTime=yesterday&endTime=2026-01-01T00:00:00Z",
        "/fleet/vehicles/locations/history?startTime=2026-01-02T00:00:00Z&endTime=2026-01-01T00:00:00Z",
        "/fleet/vehicles/stats/feed",
        "/fleet/vehicles/stats/feed?types=gps,warpDrive",
        "/fleet/vehicles/stats/feed?types=gps,fuelPercents,obdOdometerMeters,engineStates",
        "/fleet/vehicles/stats?types=gps&vehicleIds=12",
        "/fleet/vehicles/locations/feed?after=bm90LWEtY3Vyc29y",
        "/fleet/safety-events?startTime=2026-01-01T00:00:00Z",
        "/fleet/routes",
    ] {
        let (status, body) = sam.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(is_error_body(&body), "{path}: {body}");
    }
    // A cursor of one endpoint is refused by another.
    let page = sam.ok("/fleet/vehicles?limit=1").await;
    let cursor = page["pagination"]["endCursor"].as_str().unwrap();
    let (status, _) = sam
        .get(&format!("/fleet/vehicles/locations/feed?after={cursor}"))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_history_walk_equals_one_big_page_with_no_gap_or_repeat() {
    let sam = Sam::start(4).await;
    sam.advance_ms(2 * 3_600_000).await;
    let path = "/fleet/vehicles/locations/history?startTime=2026-01-01T00:30:00Z&endTime=2026-01-01T01:30:00Z";
    let (whole, pages) = sam.walk(path).await;
    assert_eq!(pages, 1);
    let expected = points(&whole, "locations");
    // Every 30 s for an hour, per vehicle (the window's two ends included).
    assert!(
        (4 * 120..=4 * 121).contains(&expected.len()),
        "{}",
        expected.len()
    );
    sam.settings(json!({"page_points": 37})).await;
    let (paged, pages) = sam.walk(path).await;
    assert!(pages >= expected.len() / 37);
    let got = points(&paged, "locations");
    assert_eq!(got, expected);
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len());
    for (_, t) in &got {
        assert!(t.as_str() >= "2026-01-01T00:30:00" && t.as_str() <= "2026-01-01T01:30:00.000Z");
    }
    let first = &whole[0]["locations"][0];
    for key in ["latitude", "longitude", "heading", "speed"] {
        assert!(first[key].is_number(), "{key}: {first}");
    }
    assert!(first["reverseGeo"]["formattedLocation"].is_string());
    // The same points again: positions are a function of vehicle and time.
    assert_eq!(sam.walk(path).await.0, paged);
    // Nothing is served from the future.
    let (future, _) = sam
        .walk("/fleet/vehicles/locations/history?startTime=2026-01-01T01:59:00Z&endTime=2026-01-02T00:00:00Z")
        .await;
    let now = sam.now().await;
    assert!(points(&future, "locations").iter().all(|(_, t)| *t <= now));
}

#[tokio::test]
async fn the_stats_feed_starts_with_the_latest_values_then_catches_up_across_a_clock_advance() {
    let sam = Sam::start(3).await;
    let path = "/fleet/vehicles/stats/feed?types=gps,fuelPercents,obdOdometerMeters";
    let first = sam.ok(path).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    assert_eq!(first["pagination"]["hasNextPage"], false);
    for v in first["data"].as_array().unwrap() {
        assert_eq!(v["gps"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["fuelPercents"].as_array().unwrap().len(), 1);
        assert!(v["obdOdometerMeters"][0]["value"].as_i64().unwrap() > 0);
        assert!(v["gps"][0]["speedMilesPerHour"].is_number());
    }
    let cursor = first["pagination"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !cursor.is_empty(),
        "a feed's cursor is kept even when caught up"
    );
    // Caught up: nothing new until the clock moves, and the cursor stays.
    let again = sam.ok(&format!("{path}&after={cursor}")).await;
    assert_eq!(again["data"], json!([]));
    assert_eq!(again["pagination"]["hasNextPage"], false);
    assert_eq!(again["pagination"]["endCursor"], cursor.as_str());
    sam.advance_ms(10 * 60_000).await;
    let next = sam.ok(&format!("{path}&after={cursor}")).await;
    assert_eq!(next["pagination"]["hasNextPage"], false);
    let data = next["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let before: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["gps"][0]["time"].as_str().unwrap())
        .collect();
    for (v, last) in data.iter().zip(before) {
        let gps = v["gps"].as_array().unwrap();
        // Ten minutes of 30-second points, all after what the first call showed.
        assert_eq!(gps.len(), 20, "{v}");
        assert!(gps.iter().all(|p| p["time"].as_str().unwrap() > last));
        assert_eq!(v["fuelPercents"].as_array().unwrap().len(), 2);
        let odo: Vec<i64> = v["obdOdometerMeters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_i64().unwrap())
            .collect();
        assert!(odo.windows(2).all(|w| w[0] <= w[1]));
    }
    let cursor2 = next["pagination"]["endCursor"].as_str().unwrap();
    assert_ne!(cursor2, cursor);
    let caught_up = sam.ok(&format!("{path}&after={cursor2}")).await;
    assert_eq!(caught_up["data"], json!([]));
}

#[tokio::test]
async fn a_feed_paged_while_the_clock_moves_loses_and_repeats_nothing() {
    let sam = Sam::start(4).await;
    sam.settings(json!({"page_points": 25})).await;
    let start = sam.ok("/fleet/vehicles/locations/feed").await;
    let t0 = sam.now().await;
    let mut cursor = start["pagination"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string();
    sam.advance_ms(30 * 60_000).await;
    let t1 = sam.now().await;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = sam
            .ok(&format!("/fleet/vehicles/locations/feed?after={cursor}"))
            .await;
        pages += 1;
        seen.extend(points(page["data"].as_array().unwrap(), "locations"));
        cursor = page["pagination"]["endCursor"]
            .as_str()
            .unwrap()
            .to_string();
        if !page["pagination"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        // Time passing mid-walk does not change the window being paged.
        if pages == 2 {
            sam.advance_ms(5 * 60_000).await;
        }
    }
    assert!(pages > 3);
    let history = format!("/fleet/vehicles/locations/history?startTime={t0}&endTime={t1}");
    let (whole, _) = sam.walk(&history).await;
    let mut expected = points(&whole, "locations");
    expected.retain(|(_, t)| *t > t0);
    assert_eq!(seen, expected);
    // The next reads pick up the five minutes that passed while paging.
    let mut rest = Vec::new();
    loop {
        let page = sam
            .ok(&format!("/fleet/vehicles/locations/feed?after={cursor}"))
            .await;
        rest.extend(points(page["data"].as_array().unwrap(), "locations"));
        cursor = page["pagination"]["endCursor"]
            .as_str()
            .unwrap()
            .to_string();
        if !page["pagination"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(rest.len(), 4 * 10);
    assert!(rest.iter().all(|(_, t)| t.as_str() > t1.as_str()));
}

#[tokio::test]
async fn snapshots_answer_each_vehicles_latest_location_and_stats() {
    let sam = Sam::start(6).await;
    let locs = sam.ok("/fleet/vehicles/locations?limit=4").await;
    assert_eq!(locs["data"].as_array().unwrap().len(), 4);
    assert_eq!(locs["pagination"]["hasNextPage"], true);
    let loc = &locs["data"][0]["location"];
    assert!(loc["latitude"].is_number() && loc["time"].is_string());
    let stats = sam.ok("/fleet/vehicles/stats?types=gps,fuelPercents").await;
    let v = &stats["data"][0];
    assert!(v["gps"]["latitude"].is_number(), "{v}");
    assert!(
        v["fuelPercent"]["value"].is_i64(),
        "fuelPercents answers `fuelPercent`: {v}"
    );
    assert_eq!(v["gps"]["latitude"], loc["latitude"]);
    // Moving the clock moves the vehicles (at least one of six is driving).
    sam.advance_ms(15 * 60_000).await;
    let later = sam.ok("/fleet/vehicles/locations").await;
    let moved =
        (0..6).any(|i| later["data"][i]["location"]["latitude"] != sam_lat(&locs, &later, i));
    assert!(moved);
}

fn sam_lat(before: &Value, after: &Value, i: usize) -> Value {
    // Look the vehicle up by id: pages may differ in size.
    let id = &after["data"][i]["id"];
    before["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| &v["id"] == id)
        .map(|v| v["location"]["latitude"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_per_token_budget_answers_429_with_a_fractional_retry_after() {
    let sam = Sam::with(
        3,
        Settings {
            rate_per_token: 5.0,
            rate_clock: ironbridge_emulators::samsara::RateClock::Emulator,
            tokens: vec![DEFAULT_TOKEN.into(), "second-token".into()],
            ..Settings::default()
        },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(sam.get("/fleet/vehicles").await.0, 200);
    }
    let r = sam.call(Method::GET, "/fleet/vehicles", None).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "0.2");
    assert!(is_error_body(&r.json().await.unwrap()));
    // Another token has its own budget.
    let other = client()
        .get(format!("{}/fleet/vehicles", sam.emu.base_url()))
        .bearer_auth("second-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // Refused requests use no budget; a fifth of a second refills one request.
    sam.advance_ms(100).await;
    let r = sam.call(Method::GET, "/fleet/vehicles", None).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "0.1");
    sam.advance_ms(100).await;
    assert_eq!(sam.get("/fleet/vehicles").await.0, 200);
    assert_eq!(sam.get("/fleet/vehicles").await.0, 429);
    // The list-routes endpoint has its own 5/s tier, whatever the token's budget.
    sam.settings(json!({"rate_per_token": 1000.0, "rate_per_org": 1000.0}))
        .await;
    sam.advance_ms(1000).await;
    let routes = "/fleet/routes?startTime=2026-01-01T00:00:00Z&endTime=2026-01-02T00:00:00Z";
    for _ in 0..5 {
        assert_eq!(sam.get(routes).await.0, 200);
    }
    assert_eq!(sam.get(routes).await.0, 429);
    assert_eq!(sam.get("/fleet/vehicles").await.0, 200);
}

#[tokio::test]
async fn injected_faults_answer_in_samsaras_shape() {
    let sam = Sam::start(3).await;
    admin_json(
        &sam.emu,
        Method::PUT,
        "/faults",
        Some(json!({"rate_limit": {"count": 1, "retry_after_secs": 2}})),
    )
    .await;
    let r = sam.call(Method::GET, "/fleet/vehicles", None).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(is_error_body(&r.json().await.unwrap()));
    admin_json(
        &sam.emu,
        Method::PUT,
        "/faults",
        Some(json!({"error_rate": 1.0})),
    )
    .await;
    let (status, body) = sam.get("/fleet/vehicles").await;
    assert_eq!(status, 503);
    assert!(is_error_body(&body));
}

#[tokio::test]
async fn safety_events_page_by_time_and_carry_labels_a_client_may_not_know() {
    let sam = Sam::start(30).await;
    sam.advance_ms(3 * 86_400_000).await;
    let path = "/fleet/safety-events?startTime=2026-01-01T00:00:00Z&endTime=2026-01-04T00:00:00Z";
    let (whole, _) = sam.walk(path).await;
    // About one event per vehicle per day.
    assert!((30..=200).contains(&whole.len()), "{}", whole.len());
    let (paged, pages) = sam.walk(&format!("{path}&limit=7")).await;
    assert!(pages >= whole.len() / 7);
    assert_eq!(paged, whole);
    let times: Vec<&str> = whole.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let ids: HashSet<&str> = whole.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), whole.len());
    let e = &whole[0];
    assert!(e["vehicle"]["id"].is_string() && e["location"]["latitude"].is_number());
    assert_eq!(e["behaviorLabels"][0]["source"], "automated");
    let known = BTreeSet::from([
        "braking",
        "acceleration",
        "harshTurn",
        "speeding",
        "rollingStop",
        "followingDistance",
        "mobileUsage",
        "crash",
    ]);
    let labels: BTreeSet<&str> = whole
        .iter()
        .map(|e| e["behaviorLabels"][0]["label"].as_str().unwrap())
        .collect();
    assert!(labels.iter().any(|l| !known.contains(l)), "{labels:?}");
    sam.settings(json!({"new_behavior_labels": false})).await;
    let (plain, _) = sam.walk(path).await;
    assert!(
        plain
            .iter()
            .all(|e| known.contains(e["behaviorLabels"][0]["label"].as_str().unwrap()))
    );
    // Filtered by vehicle: only that vehicle's events.
    let vid = e["vehicle"]["id"].as_str().unwrap();
    let (mine, _) = sam.walk(&format!("{path}&vehicleIds={vid}")).await;
    assert!(!mine.is_empty() && mine.iter().all(|x| x["vehicle"]["id"] == vid));
}

#[tokio::test]
async fn routes_are_created_patched_and_their_stops_follow_the_clock() {
    let sam = Sam::start(5).await;
    let vehicles = sam.ok("/fleet/vehicles").await;
    let vehicle = vehicles["data"][0]["id"].as_str().unwrap().to_string();
    let body = json!({
        "name": "Morning deliveries",
        "vehicleId": vehicle,
        "externalIds": {"erp": "R-1"},
        "stops": [
            {"addressId": "71000", "scheduledDepartureTime": "2026-01-01T01:00:00Z"},
            {"name": "Customer A", "singleUseLocation": {"latitude": 33.8, "longitude": -84.4, "address": "1 Peachtree St"},
             "scheduledArrivalTime": "2026-01-01T02:00:00Z", "scheduledDepartureTime": "2026-01-01T02:20:00Z"}
        ]
    });
    let r = sam
        .call(Method::POST, "/fleet/routes", Some(body.clone()))
        .await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let route = &created["data"];
    let id = route["id"].as_str().unwrap().to_string();
    assert_eq!(route["vehicle"]["id"], vehicle.as_str());
    let states = |r: &Value| -> Vec<String> {
        r["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(states(route), ["scheduled", "scheduled"]);
    assert_eq!(route["stops"][0]["address"]["name"], "Atlanta Depot");
    assert_eq!(
        route["stops"][0]["orders"],
        json!([]),
        "required by the SDK's stop type"
    );
    sam.advance_ms(3_600_000 + 1000).await;
    let now = sam.ok(&format!("/fleet/routes/{id}")).await;
    assert_eq!(states(&now["data"]), ["departed", "en route"]);
    assert!(now["data"]["actualRouteStartTime"].is_string());
    sam.advance_ms(3_600_000).await;
    let later = sam.ok("/fleet/routes/erp:R-1").await;
    assert_eq!(states(&later["data"]), ["departed", "arrived"]);
    // JSON merge patch: the first stop kept by id, the second replaced by a new one.
    let first_stop = route["stops"][0]["id"].as_str().unwrap();
    let patch = json!({
        "name": "Morning deliveries (changed)",
        "vehicleId": null,
        "stops": [
            {"id": first_stop},
            {"singleUseLocation": {"latitude": 33.9, "longitude": -84.3}, "scheduledArrivalTime": "2026-01-01T05:00:00Z"}
        ]
    });
    let r = sam
        .call(Method::PATCH, &format!("/fleet/routes/{id}"), Some(patch))
        .await;
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    let p = &patched["data"];
    assert_eq!(p["name"], "Morning deliveries (changed)");
    assert!(p.get("vehicle").is_none());
    assert_eq!(p["stops"][0]["id"], first_stop);
    assert_ne!(p["stops"][1]["id"], route["stops"][1]["id"]);
    assert_eq!(states(p), ["unassigned", "unassigned"]);
    let listed = sam
        .ok("/fleet/routes?startTime=2026-01-01T00:00:00Z&endTime=2026-01-02T00:00:00Z")
        .await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let empty = sam
        .ok("/fleet/routes?startTime=2026-02-01T00:00:00Z&endTime=2026-02-02T00:00:00Z")
        .await;
    assert_eq!(empty["data"], json!([]));
    // Refusals.
    for bad in [
        json!({"name": "x"}),
        json!({"name": "x", "stops": []}),
        json!({"name": "x", "stops": [{"addressId": "71000", "singleUseLocation": {"latitude": 1, "longitude": 1}, "scheduledArrivalTime": "2026-01-01T00:00:00Z"}]}),
        json!({"name": "x", "stops": [{"addressId": "71000"}]}),
        json!({"name": "x", "stops": [{"addressId": "99"}], "scheduledArrivalTime": "2026-01-01T00:00:00Z"}),
        json!({"name": "x", "vehicleId": "1", "stops": [{"addressId": "71000", "scheduledArrivalTime": "2026-01-01T00:00:00Z"}]}),
        json!({"name": "x", "settings": {"sequencingMethod": "random"}, "stops": [{"addressId": "71000", "scheduledArrivalTime": "2026-01-01T00:00:00Z"}]}),
        json!(["not", "an", "object"]),
    ] {
        let r = sam
            .call(Method::POST, "/fleet/routes", Some(bad.clone()))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(is_error_body(&r.json().await.unwrap()));
    }
    let r = sam
        .call(Method::PATCH, "/fleet/routes/1", Some(json!({"name": "y"})))
        .await;
    assert_eq!(r.status(), 404);
    let r = sam
        .call(Method::DELETE, &format!("/fleet/routes/{id}"), None)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(sam.get(&format!("/fleet/routes/{id}")).await.0, 404);
}

#[tokio::test]
async fn fuel_purchases_are_validated_and_recorded() {
    let sam = Sam::start(3).await;
    let vehicles = sam.ok("/fleet/vehicles").await;
    let purchase = json!({
        "fuelQuantityLiters": "120.5",
        "transactionLocation": "350 Rhode Island St, San Francisco, CA 94103",
        "transactionPrice": {"amount": "210.40", "currency": "usd"},
        "transactionReference": "5454534",
        "transactionTime": "2026-01-01T00:00:00Z",
        "vehicleId": vehicles["data"][0]["id"],
    });
    let r = sam
        .call(Method::POST, "/fuel-purchase", Some(purchase.clone()))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["uuid"].as_str().unwrap().len(), 36);
    let mut bad = purchase.clone();
    bad["transactionPrice"]["currency"] = json!("btc");
    let r = sam.call(Method::POST, "/fuel-purchase", Some(bad)).await;
    assert_eq!(r.status(), 400);
    let mut bad = purchase;
    bad.as_object_mut().unwrap().remove("transactionTime");
    assert_eq!(
        sam.call(Method::POST, "/fuel-purchase", Some(bad))
            .await
            .status(),
        400
    );
    let recorded = admin_json(&sam.emu, Method::GET, "/samsara/fuel-purchases", None).await;
    assert_eq!(recorded["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn windows_reaching_back_centuries_answer_at_once() {
    let sam = Sam::start(50).await;
    let started = std::time::Instant::now();
    let far = "startTime=0001-01-01T00:00:00Z&endTime=2026-01-01T00:00:00Z";
    // No gateway reports engine RPM: an empty answer, not a scan of two thousand years.
    let rpm = sam
        .ok(&format!(
            "/fleet/vehicles/stats/history?types=engineRpm&{far}"
        ))
        .await;
    assert_eq!(rpm["data"], json!([]));
    assert_eq!(rpm["pagination"]["hasNextPage"], false);
    // A page of the oldest points, cut at the page budget.
    let old = sam
        .ok(&format!("/fleet/vehicles/locations/history?{far}"))
        .await;
    assert_eq!(
        points(old["data"].as_array().unwrap(), "locations").len(),
        2000
    );
    assert_eq!(old["pagination"]["hasNextPage"], true);
    let events = sam.ok(&format!("/fleet/safety-events?{far}&limit=3")).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 3);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // A cursor claiming a future instant shows nothing past the clock.
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s:99999999999999:1");
    let snap = sam
        .ok(&format!("/fleet/vehicles/locations?after={forged}"))
        .await;
    let now = sam.now().await;
    assert!(
        snap["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["location"]["time"].as_str().unwrap() <= now.as_str())
    );
}
