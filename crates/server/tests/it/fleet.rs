//! The fleet over HTTP against the Samsara emulator: vehicles, drivers and safety events
//! served like every entity; vehicle locations paged by time, filtered by vehicle and time
//! range, and the latest position per vehicle; filters checked, another connection's points
//! never shown.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_model::Timestamp;
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{TestApp, test_webhook_config};

#[tokio::test]
async fn vehicle_locations_are_paged_by_time_filtered_and_latest_per_vehicle() {
    let source = Emulated::start(System::Samsara, 9, 3).await;
    let app = TestApp::spawn_systems(
        ServerConfig {
            rate_limit_per_second: 0,
            ..ServerConfig::default()
        },
        test_webhook_config(Arc::default()),
        move |_| {
            ironbridge_engine::registry::builtin_for(
                Arc::new(ironbridge_core::SystemClock),
                ironbridge_core::netguard::Egress::local(),
            )
        },
    )
    .await;
    let (_, key) = app.org(2).await;
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "samsara", "settings": source.settings, "credentials": source.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let token = res.body["token"].as_str().unwrap().to_string();
    let worker = Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        Arc::new(app.clock.clone()) as Arc<dyn Clock>,
        WorkerConfig::default(),
    );
    assert!(worker.run_once().await.unwrap(), "the initial sync ran");

    let (vehicles, _) = app.all(&token, "/v1/vehicles").await;
    assert_eq!(vehicles.len(), 3);
    assert!(vehicles[0]["vin"].is_string());
    let (drivers, _) = app.all(&token, "/v1/drivers").await;
    assert!(!drivers.is_empty());
    let (events, _) = app.all(&token, "/v1/driver-behavior-events").await;
    assert!(events.iter().all(|e| e["remote_type"].is_string()));
    // The connection counts its points like its records.
    let conn = app.get(&token, "/v1/connection").await;
    let locations = conn.body["sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "vehicle_location")
        .unwrap()
        .clone();
    assert!(
        locations["record_count"].as_i64().unwrap() > 3 * 7 * 2000,
        "{locations}"
    );
    // Only what Samsara reads is listed: no purchase orders, receipts or items.
    let listed: Vec<&str> = conn.body["sync"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity"].as_str().unwrap())
        .collect();
    for entity in [
        "vehicle",
        "driver",
        "vehicle_location",
        "driver_behavior_event",
        "fuel_event",
        "dispatch_route",
    ] {
        assert!(listed.contains(&entity), "{entity}: {listed:?}");
    }
    assert_eq!(listed.len(), 6, "{listed:?}");
    // Fuel levels, from the vehicles' fuel statistics.
    let fuel = app.get(&token, "/v1/fuel-events?page_size=20").await;
    assert_eq!(fuel.status, 200, "{}", fuel.body);
    let fuel = fuel.body["data"].as_array().unwrap().clone();
    assert_eq!(fuel.len(), 20);
    assert!(fuel.iter().all(|f| f["event_type"] == "level"
        && f["fuel_level_percent"].is_number()
        && f["id"].as_str().unwrap().starts_with("fue_")));

    // The latest position of each vehicle, by vehicle id.
    let latest = app.get(&token, "/v1/vehicle-locations/latest").await;
    assert_eq!(latest.status, 200, "{}", latest.body);
    let latest = latest.body["data"].as_array().unwrap().clone();
    assert_eq!(latest.len(), 3);
    let ids: Vec<&str> = latest
        .iter()
        .map(|p| p["vehicle_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert!(vehicles.iter().any(|v| v["id"] == latest[0]["vehicle_id"]));

    // One vehicle over two hours: in time order, every point once across pages of 50.
    let vehicle = latest[0]["vehicle_id"].as_str().unwrap();
    let end = Timestamp::parse_rfc3339(latest[0]["recorded_at"].as_str().unwrap()).unwrap();
    let start = end.plus_secs(-7200);
    let path = format!(
        "/v1/vehicle-locations?vehicle_id={vehicle}&recorded_after={}&recorded_before={}&page_size=50",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    let (points, _) = app.all(&token, &path).await;
    assert!(points.len() > 100, "{} points", points.len());
    let times: Vec<Timestamp> = points
        .iter()
        .map(|p| Timestamp::parse_rfc3339(p["recorded_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "strictly in time order"
    );
    assert!(times[0] >= start && *times.last().unwrap() < end);
    assert!(points.iter().all(|p| p["vehicle_id"] == vehicle));
    assert!(points[0]["id"].as_str().unwrap().starts_with("vlc_"));
    assert!(points[0]["latitude"].is_f64());
    // Across vehicles: time, then vehicle.
    let all = app.get(&token, "/v1/vehicle-locations?page_size=9").await;
    assert_eq!(all.status, 200);
    let first: Vec<(String, String)> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["recorded_at"].as_str().unwrap().to_string(),
                p["vehicle_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut ordered = first.clone();
    ordered.sort();
    assert_eq!(first, ordered);

    // Filters are checked, and a cursor is bound to its filters.
    for (query, param) in [
        ("vehicle_id=itm_1", "vehicle_id"),
        (
            "recorded_after=2026-01-02T00:00:00Z&recorded_before=2026-01-01T00:00:00Z",
            "recorded_before",
        ),
        ("page_size=5001", "page_size"),
        ("recorded_after=yesterday", "recorded_after"),
    ] {
        let res = app
            .get(&token, &format!("/v1/vehicle-locations?{query}"))
            .await;
        assert_eq!(res.status, 400, "{query}: {}", res.body);
        assert_eq!(res.body["error"]["param"], param, "{query}");
    }
    // The same instant twice: an empty range, not an error.
    let empty = app
        .get(
            &token,
            "/v1/vehicle-locations?recorded_after=2026-01-01T00:00:00Z&recorded_before=2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body["data"], json!([]));
    let cursor = all.body["next_cursor"].as_str().unwrap();
    let res = app
        .get(
            &token,
            &format!("/v1/vehicle-locations?vehicle_id={vehicle}&cursor={cursor}"),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);

    // Agents read the same points through MCP tools, pages bounded for them.
    let (_, result) = crate::mcp::call(&app, &token, "latest_vehicle_locations", json!({})).await;
    let out = crate::mcp::ok(&result);
    assert_eq!(out["data"].as_array().unwrap().len(), 3, "{out}");
    let (_, result) = crate::mcp::call(
        &app,
        &token,
        "list_vehicle_locations",
        json!({"vehicle_id": vehicle, "page_size": 10}),
    )
    .await;
    let out = crate::mcp::ok(&result).clone();
    let page = out["data"].as_array().unwrap();
    assert_eq!(page.len(), 10);
    assert!(page.iter().all(|p| p["vehicle_id"] == vehicle));
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("km/h") && text.contains("\"cursor\""),
        "{text}"
    );
    let (_, result) = crate::mcp::call(
        &app,
        &token,
        "list_vehicle_locations",
        json!({"page_size": 101}),
    )
    .await;
    assert_eq!(crate::mcp::tool_error(&result)["param"], "page_size");

    // Another connection of the same organization sees none of these points.
    let other = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "settings": {}}),
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_token = other.body["token"].as_str().unwrap();
    let res = app.get(other_token, "/v1/vehicle-locations").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["data"], json!([]));
    let _: &Value = &res.body;
}
