//! Samsara dispatch routes over HTTP against the emulator: routes read by their schedule
//! equal the emulator's, their stops' states kept current by later syncs; routes created and
//! changed through the unified write path reach the emulator and are stored at once; bad
//! stops, read-only fields and unknown vehicles refused before Samsara is called; Samsara's
//! 429 and 5xx on a write; an idempotent create written once; another organization cannot
//! write through the connection.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_model::Timestamp;
use ironbridge_server::ServerConfig;
use ironbridge_testkit::app::Res;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{TestApp, test_webhook_config};

struct Fleet {
    app: TestApp,
    source: Emulated,
    token: String,
    conn: String,
    http: reqwest::Client,
}

fn worker(app: &TestApp) -> Worker {
    Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        Arc::new(app.clock.clone()) as Arc<dyn Clock>,
        WorkerConfig::default(),
    )
}

/// The emulator's time `secs` from its now, as RFC 3339.
fn at(source: &Emulated, secs: i64) -> String {
    source.now().plus_secs(secs).to_rfc3339()
}

impl Fleet {
    /// An app with one Samsara connection; `routes` are created at the emulator first (as
    /// its dispatchers would), then the connection is synced once.
    async fn start(routes: impl Fn(&Emulated) -> Vec<Value>) -> Fleet {
        let source = Emulated::start(System::Samsara, 9, 3).await;
        // The tests read routes back at Samsara faster than its 5-a-second tier allows.
        source
            .admin(
                "PATCH",
                "/settings",
                Some(json!({"endpoint_limits": false})),
            )
            .await;
        let routes = routes(&source);
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
        let fleet = Fleet {
            app,
            source,
            token: String::new(),
            conn: String::new(),
            http: reqwest::Client::new(),
        };
        for r in routes {
            let (status, body) = fleet.samsara("POST", "/fleet/routes", Some(r)).await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, key) = fleet.app.org(2).await;
        let res = fleet
            .app
            .post(
                &key,
                "/v1/connections",
                json!({"system": "samsara", "settings": fleet.source.settings, "credentials": fleet.source.credentials}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        let fleet = Fleet {
            token: res.body["token"].as_str().unwrap().to_string(),
            conn: res.body["connection"]["id"].as_str().unwrap().to_string(),
            ..fleet
        };
        assert!(
            worker(&fleet.app).run_once().await.unwrap(),
            "the initial sync ran"
        );
        fleet
    }

    /// Calls Samsara's own API at the emulator with the connection's token.
    async fn samsara(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.source.emulator.base_url()))
            .bearer_auth(self.source.credentials["api_token"].as_str().unwrap());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Every route the emulator has, from a year back to a year ahead.
    async fn samsara_routes(&self) -> Vec<Value> {
        let path = format!(
            "/fleet/routes?startTime={}&endTime={}",
            at(&self.source, -365 * 86_400),
            at(&self.source, 365 * 86_400)
        );
        let (status, body) = self.samsara("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Route creates the emulator received.
    async fn creates(&self) -> usize {
        self.source
            .requests()
            .await
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/fleet/routes")
            .count()
    }

    async fn sync(&self) {
        let res = self.app.post(&self.token, "/v1/sync", json!({})).await;
        assert_eq!(res.status, 202, "{}", res.body);
        assert!(worker(&self.app).run_once().await.unwrap(), "the sync ran");
    }

    async fn first_id(&self, path: &str) -> (String, String) {
        let (all, _) = self.app.all(&self.token, path).await;
        (
            all[0]["id"].as_str().unwrap().to_string(),
            all[0]["remote_id"].as_str().unwrap().to_string(),
        )
    }

    async fn post_keyed(&self, key: Option<&str>, body: &Value) -> Res {
        let mut req = self
            .app
            .client
            .post(self.app.url("/v1/dispatch-routes"))
            .bearer_auth(&self.token)
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.app.send(req).await
    }
}

/// A route as Samsara takes it: a depot, then a customer, the first stop `start` seconds
/// from the emulator's now.
fn samsara_route(source: &Emulated, name: &str, start: i64, vehicle: Option<&str>) -> Value {
    let mut r = json!({"name": name, "notes": "Samsara-side",
    "stops": [
        {"addressId": "71000", "scheduledDepartureTime": at(source, start)},
        {"name": "Customer", "singleUseLocation": {"latitude": 33.8, "longitude": -84.3, "address": "1 Peachtree St"},
         "scheduledArrivalTime": at(source, start + 3600), "notes": "Dock 2"}
    ]});
    if let Some(v) = vehicle {
        r["vehicleId"] = json!(v);
    }
    r
}

#[tokio::test]
async fn routes_are_read_by_schedule_and_their_stops_progress_with_later_syncs() {
    let vehicle = "281474976710657";
    // Under way (assigned, left its depot half an hour ago), planned for tomorrow, unassigned.
    let f = Fleet::start(|source| {
        vec![
            samsara_route(source, "Morning run", -1800, Some(vehicle)),
            samsara_route(source, "Tomorrow", 86_400, Some(vehicle)),
            samsara_route(source, "Unassigned", 1800, None),
        ]
    })
    .await;
    let theirs = f.samsara_routes().await;
    assert_eq!(theirs.len(), 3);
    let (ours, _) = f.app.all(&f.token, "/v1/dispatch-routes").await;
    let mut ours_ids: Vec<&str> = ours
        .iter()
        .map(|r| r["remote_id"].as_str().unwrap())
        .collect();
    let mut their_ids: Vec<&str> = theirs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ours_ids.sort_unstable();
    their_ids.sort_unstable();
    assert_eq!(ours_ids, their_ids, "every route of the emulator, once");
    for t in &theirs {
        let o = ours.iter().find(|o| o["remote_id"] == t["id"]).unwrap();
        assert!(o["id"].as_str().unwrap().starts_with("dsr_"), "{o}");
        assert_eq!(o["name"], t["name"]);
        assert_eq!(o["notes"], "Samsara-side");
        let (os, ts) = (
            o["stops"].as_array().unwrap(),
            t["stops"].as_array().unwrap(),
        );
        assert_eq!(os.len(), ts.len());
        for (o_stop, t_stop) in os.iter().zip(ts) {
            assert_eq!(o_stop["remote_id"], t_stop["id"]);
            assert_eq!(o_stop["remote_status"], t_stop["state"]);
            assert!(o_stop["id"].as_str().unwrap().starts_with("dst_"));
            assert_eq!(
                Timestamp::parse_rfc3339(o_stop["scheduled_arrival_at"].as_str().unwrap()),
                Timestamp::parse_rfc3339(t_stop["scheduledArrivalTime"].as_str().unwrap())
            );
        }
        assert_eq!(
            Timestamp::parse_rfc3339(o["scheduled_start_at"].as_str().unwrap()),
            Timestamp::parse_rfc3339(t["scheduledRouteStartTime"].as_str().unwrap())
        );
    }
    let by_name = |name: &str| ours.iter().find(|r| r["name"] == name).unwrap().clone();
    let morning = by_name("Morning run");
    assert_eq!(morning["status"], "in_progress", "{morning}");
    assert_eq!(morning["remote_status"], Value::Null);
    assert!(morning["vehicle_id"].as_str().unwrap().starts_with("vhc_"));
    assert_eq!(morning["stops"][0]["status"], "departed");
    assert_eq!(morning["stops"][1]["status"], "en_route");
    assert_eq!(morning["stops"][1]["address"], "1 Peachtree St");
    assert_eq!(morning["stops"][1]["latitude"], 33.8);
    assert_eq!(morning["stops"][1]["notes"], "Dock 2");
    assert_eq!(morning["stops"][0]["name"], "Atlanta Depot");
    let tomorrow = by_name("Tomorrow");
    assert_eq!(tomorrow["status"], "scheduled");
    assert_eq!(tomorrow["stops"][0]["status"], "scheduled");
    let unassigned = by_name("Unassigned");
    assert_eq!(unassigned["stops"][0]["remote_status"], "unassigned");
    assert_eq!(unassigned["stops"][0]["status"], "scheduled");

    // Two hours on, the morning run is done: the next sync reads it again (its schedule is
    // within the days re-read) and its last stop shows the arrival and departure.
    f.source
        .admin("POST", "/clock", Some(json!({"advance_seconds": 7200})))
        .await;
    f.sync().await;
    let id = morning["id"].as_str().unwrap();
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["status"], "completed", "{}", read.body);
    assert_eq!(read.body["stops"][1]["status"], "departed");
    assert!(read.body["stops"][1]["actual_arrival_at"].is_string());
    assert!(read.body["actual_end_at"].is_string());
    assert_eq!(
        read.body["stops"][1]["id"], morning["stops"][1]["id"],
        "stop ids are stable"
    );
    // Tomorrow's route is still planned; the unassigned one, assigned at Samsara, is read
    // again with its stops scheduled.
    let unassigned_remote = unassigned["remote_id"].as_str().unwrap();
    let (status, body) = f
        .samsara(
            "PATCH",
            &format!("/fleet/routes/{unassigned_remote}"),
            Some(json!({"vehicleId": vehicle})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    f.sync().await;
    let id = unassigned["id"].as_str().unwrap();
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert!(
        read.body["vehicle_id"]
            .as_str()
            .unwrap()
            .starts_with("vhc_"),
        "{}",
        read.body
    );
    let (ours, _) = f.app.all(&f.token, "/v1/dispatch-routes").await;
    assert_eq!(ours.len(), 3);

    // A route deleted at Samsara is marked deleted by the next full sync (which reads the
    // points' history window, not everything since 1970).
    let (status, body) = f
        .samsara(
            "DELETE",
            &format!("/fleet/routes/{unassigned_remote}"),
            None,
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let res = f
        .app
        .post(&f.token, "/v1/sync", json!({"full": true}))
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert!(
        worker(&f.app).run_once().await.unwrap(),
        "the full sync ran"
    );
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert_eq!(read.body["remote_was_deleted"], true, "{}", read.body);
}

#[tokio::test]
async fn routes_are_created_and_patched_through_the_unified_write_path() {
    let f = Fleet::start(|_| Vec::new()).await;
    let (vehicle, vehicle_remote) = f.first_id("/v1/vehicles").await;
    let (driver, driver_remote) = f.first_id("/v1/drivers").await;
    let meta = f.app.get(&f.token, "/v1/meta/dispatch-routes").await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(
        meta.body["operations"],
        json!({"create": true, "update": true})
    );

    let start = at(&f.source, 3600);
    let body = json!({"name": "Atlanta deliveries", "vehicle_id": vehicle, "driver_id": driver,
    "scheduled_start_at": start, "scheduled_end_at": at(&f.source, 4 * 3600), "notes": "Call ahead",
    "stops": [
        {"name": "Depot", "latitude": 33.749, "longitude": -84.388, "address": "Atlanta Depot"},
        {"name": "Acme", "latitude": 33.8, "longitude": -84.3, "address": "1 Peachtree St",
         "scheduled_arrival_at": at(&f.source, 2 * 3600), "notes": "Ring twice"},
        {"name": "Back", "latitude": 33.749, "longitude": -84.388}
    ]});
    let res = f.post_keyed(None, &body).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let route = res.body.clone();
    let id = route["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dsr_"));
    assert_eq!(route["vehicle_id"], vehicle.as_str());
    assert_eq!(route["driver_id"], driver.as_str());
    assert_eq!(route["status"], "scheduled");
    assert_eq!(route["stops"].as_array().unwrap().len(), 3);
    assert_eq!(route["stops"][1]["notes"], "Ring twice");
    assert_eq!(route["stops"][1]["sequence"], 2);
    assert_eq!(
        Timestamp::parse_rfc3339(route["scheduled_start_at"].as_str().unwrap()),
        Timestamp::parse_rfc3339(&start)
    );
    // At Samsara, with Samsara's ids for the vehicle and driver.
    let remote = route["remote_id"].as_str().unwrap();
    let (status, theirs) = f
        .samsara("GET", &format!("/fleet/routes/{remote}"), None)
        .await;
    assert_eq!(status, 200, "{theirs}");
    let theirs = &theirs["data"];
    assert_eq!(theirs["vehicle"]["id"], vehicle_remote.as_str());
    assert_eq!(theirs["driver"]["id"], driver_remote.as_str());
    assert_eq!(theirs["notes"], "Call ahead");
    assert_eq!(
        theirs["stops"][2]["singleUseLocation"]["longitude"],
        -84.388
    );
    assert_eq!(
        Timestamp::parse_rfc3339(theirs["stops"][2]["scheduledArrivalTime"].as_str().unwrap()),
        Timestamp::parse_rfc3339(&at(&f.source, 4 * 3600)),
        "the planned end is the last stop's arrival"
    );
    // Stored at once.
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["stops"], route["stops"]);

    // A merge patch: renamed, driver unassigned, note removed, the second stop kept (by its
    // key) with new instructions, the first and last replaced by a new one.
    let kept = route["stops"][1].clone();
    let patch = json!({"name": "Atlanta deliveries (short)", "driver_id": null, "notes": null,
    "stops": [
        {"remote_id": kept["remote_id"], "notes": "Use the side gate",
         "scheduled_departure_at": at(&f.source, 2 * 3600 + 900)},
        {"name": "Warehouse 9", "latitude": 33.9, "longitude": -84.2,
         "scheduled_arrival_at": at(&f.source, 3 * 3600)}
    ]});
    let res = f
        .app
        .patch(&f.token, &format!("/v1/dispatch-routes/{id}"), patch)
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let patched = res.body.clone();
    assert_eq!(patched["name"], "Atlanta deliveries (short)");
    assert_eq!(patched["driver_id"], Value::Null);
    assert_eq!(patched["vehicle_id"], vehicle.as_str());
    assert_eq!(patched["notes"], Value::Null);
    let stops = patched["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0]["id"], kept["id"], "the kept stop keeps its id");
    assert_eq!(stops[0]["name"], "Acme");
    assert_eq!(stops[0]["notes"], "Use the side gate");
    assert_eq!(stops[1]["name"], "Warehouse 9");
    let (_, theirs) = f
        .samsara("GET", &format!("/fleet/routes/{remote}"), None)
        .await;
    assert!(theirs["data"].get("driver").is_none(), "{theirs}");
    assert_eq!(theirs["data"]["stops"][0]["id"], kept["remote_id"]);
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert_eq!(read.body["name"], "Atlanta deliveries (short)");
    // Only the planned start: the first stop's departure moves, the stops stay.
    let res = f
        .app
        .patch(
            &f.token,
            &format!("/v1/dispatch-routes/{id}"),
            json!({"scheduled_start_at": at(&f.source, 2 * 3600 + 1800)}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["stops"][0]["id"], kept["id"]);
    assert_eq!(
        Timestamp::parse_rfc3339(
            res.body["stops"][0]["scheduled_departure_at"]
                .as_str()
                .unwrap()
        ),
        Timestamp::parse_rfc3339(&at(&f.source, 2 * 3600 + 1800))
    );
    // A route Samsara no longer has.
    let (status, _) = f
        .samsara("DELETE", &format!("/fleet/routes/{remote}"), None)
        .await;
    assert_eq!(status, 204);
    let res = f
        .app
        .patch(
            &f.token,
            &format!("/v1/dispatch-routes/{id}"),
            json!({"name": "x"}),
        )
        .await;
    res.assert_error(404, "NOT_FOUND");
    let res = f
        .app
        .patch(
            &f.token,
            "/v1/dispatch-routes/dsr_nope",
            json!({"name": "x"}),
        )
        .await;
    res.assert_error(404, "NOT_FOUND");

    // The batch path takes the same writes.
    let res = f
        .app
        .post(
            &f.token,
            "/v1/batches",
            json!({"operations": [{"entity": "dispatch-routes", "action": "create",
                "data": {"name": "Batched", "scheduled_start_at": at(&f.source, 7200),
                    "stops": [{"latitude": 1, "longitude": 2}]}}]}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert!(worker(&f.app).run_once().await.unwrap(), "the batch ran");
    let batch = f
        .app
        .get(
            &f.token,
            &format!("/v1/batches/{}", res.body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(batch.body["status"], "completed", "{}", batch.body);
    assert!(
        f.samsara_routes()
            .await
            .iter()
            .any(|r| r["name"] == "Batched")
    );
}

#[tokio::test]
async fn bad_routes_are_refused_before_samsara_is_called() {
    let f = Fleet::start(|_| Vec::new()).await;
    let (vehicle, _) = f.first_id("/v1/vehicles").await;
    let start = at(&f.source, 3600);
    let ok_stop = json!({"latitude": 33.8, "longitude": -84.3});
    let cases = [
        // A stop Samsara cannot place.
        (
            json!({"name": "R", "scheduled_start_at": start, "stops": [{"address": "1 Main St"}]}),
            "stops[0].latitude",
        ),
        (
            json!({"name": "R", "scheduled_start_at": start, "stops": [{"latitude": 95, "longitude": 1}]}),
            "stops[0].latitude",
        ),
        (
            json!({"name": "R", "scheduled_start_at": start, "stops": []}),
            "stops",
        ),
        (
            json!({"name": "R", "stops": [ok_stop]}),
            "scheduled_start_at",
        ),
        (
            json!({"name": "R", "scheduled_start_at": "tomorrow", "stops": [ok_stop]}),
            "scheduled_start_at",
        ),
        (
            json!({"name": "R", "scheduled_start_at": start, "stops": [ok_stop],
                "scheduled_end_at": at(&f.source, 0)}),
            "scheduled_end_at",
        ),
        // Read-only fields, of the route and of a stop.
        (
            json!({"name": "R", "status": "completed", "stops": [ok_stop]}),
            "status",
        ),
        (
            json!({"name": "R", "actual_start_at": start, "stops": [ok_stop]}),
            "actual_start_at",
        ),
        (
            json!({"name": "R", "scheduled_start_at": start,
                "stops": [{"latitude": 1, "longitude": 1, "actual_arrival_at": start}]}),
            "stops[0].actual_arrival_at",
        ),
        (
            json!({"name": "R", "scheduled_start_at": start,
                "stops": [{"latitude": 1, "longitude": 1, "status": "arrived"}]}),
            "stops[0].status",
        ),
        // A vehicle this connection does not have, or not a vehicle at all.
        (
            json!({"name": "R", "vehicle_id": "vhc_0000000000000000000000", "scheduled_start_at": start, "stops": [ok_stop]}),
            "vehicle_id",
        ),
        (
            json!({"name": "R", "vehicle_id": "itm_1", "scheduled_start_at": start, "stops": [ok_stop]}),
            "vehicle_id",
        ),
        (
            json!({"name": "R", "driver_id": vehicle, "scheduled_start_at": start, "stops": [ok_stop]}),
            "driver_id",
        ),
        (
            json!({"scheduled_start_at": start, "stops": [ok_stop]}),
            "name",
        ),
        // A stop key on a new route.
        (
            json!({"name": "R", "scheduled_start_at": start,
                "stops": [{"remote_id": "5", "latitude": 1, "longitude": 1}]}),
            "stops[0].remote_id",
        ),
    ];
    for (body, param) in cases {
        let res = f.post_keyed(None, &body).await;
        let err = res.assert_error(422, "VALIDATION_ERROR");
        assert_eq!(err["param"], param, "{body}: {err}");
    }
    // An unknown field is the request's mistake.
    let res = f
        .post_keyed(
            None,
            &json!({"name": "R", "colour": "red", "stops": [ok_stop]}),
        )
        .await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "colour");
    let res = f
        .post_keyed(
            None,
            &json!({"name": "R", "stops": [{"latitude": "north", "longitude": 1}]}),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "stops[0].latitude"
    );
    assert_eq!(f.creates().await, 0, "nothing reached Samsara");
}

#[tokio::test]
async fn samsara_limits_and_failures_on_a_write_and_an_idempotent_create() {
    let f = Fleet::start(|_| Vec::new()).await;
    let body = json!({"name": "Keyed", "scheduled_start_at": at(&f.source, 3600),
        "stops": [{"latitude": 33.8, "longitude": -84.3}]});

    // One 429: waited out and sent again (Samsara refused it before doing anything).
    f.source
        .admin(
            "PUT",
            "/faults",
            Some(json!({"rate_limit": {"count": 1, "retry_after_secs": 0}})),
        )
        .await;
    let res = f.post_keyed(None, &body).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(f.creates().await, 2, "the refused create and its retry");
    assert_eq!(f.samsara_routes().await.len(), 1);
    // A 429 past every retry: busy, retry later; nothing written.
    f.source
        .admin(
            "PUT",
            "/faults",
            Some(json!({"rate_limit": {"count": 50, "retry_after_secs": 0}})),
        )
        .await;
    let res = f.post_keyed(None, &body).await;
    let err = res.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(err["details"]["reason"], "source_rate_limited");
    f.source.admin("DELETE", "/faults", None).await;
    assert_eq!(f.samsara_routes().await.len(), 1);

    // A 500 after the create was sent: the outcome is unknown, and said so.
    f.source
        .admin(
            "PUT",
            "/faults",
            Some(json!({"next_errors": {"count": 1, "status": 500,
                "body": "{\"message\":\"Internal error\",\"requestId\":\"r1\"}"}})),
        )
        .await;
    let res = f.post_keyed(Some("route-a"), &body).await;
    res.assert_error(504, "OUTCOME_UNKNOWN");
    // The same key again: looked up at Samsara by the reference it carried (not there, the
    // 500 came first), then written once.
    let first = f.post_keyed(Some("route-a"), &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let replay = f.post_keyed(Some("route-a"), &body).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.text, first.text, "the same bytes");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let keyed: Vec<Value> = f
        .samsara_routes()
        .await
        .into_iter()
        .filter(|r| r["externalIds"]["ironbridge"].is_string())
        .collect();
    assert_eq!(keyed.len(), 1, "one route for the key: {keyed:?}");
    assert_eq!(keyed[0]["id"], first.body["remote_id"]);

    // A create whose answer is lost after Samsara applied it: found at once by the
    // reference it carried, and answered; nothing is sent again.
    f.source
        .admin(
            "PUT",
            "/faults",
            Some(json!({"lose_answer": {"count": 1, "mode": "gateway_timeout", "path_contains": "/fleet/routes"}})),
        )
        .await;
    let before = f.creates().await;
    let found = f.post_keyed(Some("route-b"), &body).await;
    assert_eq!(found.status, 201, "{}", found.body);
    assert_eq!(
        f.creates().await,
        before + 1,
        "found at Samsara, not sent again"
    );
    let again = f.post_keyed(Some("route-b"), &body).await;
    assert_eq!(again.text, found.text);
    assert_eq!(f.creates().await, before + 1);
    let id = found.body["id"].as_str().unwrap();
    let read = f
        .app
        .get(&f.token, &format!("/v1/dispatch-routes/{id}"))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
}

#[tokio::test]
async fn another_organization_cannot_write_through_the_connection() {
    let f = Fleet::start(|_| Vec::new()).await;
    let res = f
        .post_keyed(
            None,
            &json!({"name": "Ours", "scheduled_start_at": at(&f.source, 3600),
                "stops": [{"latitude": 33.8, "longitude": -84.3}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["id"].as_str().unwrap().to_string();
    let (_, other_key) = f.app.org(2).await;
    let (_, other_token) = f.app.connection(&other_key, json!({})).await;
    // Their own connection does not have the route, nor can it write routes at all.
    let res = f
        .app
        .patch(
            &other_token,
            &format!("/v1/dispatch-routes/{id}"),
            json!({"name": "Theirs"}),
        )
        .await;
    assert!(matches!(res.status, 404 | 422), "{}", res.body);
    // Naming our connection with their admin key: no such connection for them.
    for req in [
        f.app
            .client
            .patch(f.app.url(&format!("/v1/dispatch-routes/{id}")))
            .json(&json!({"name": "Theirs"})),
        f.app
            .client
            .post(f.app.url("/v1/dispatch-routes"))
            .json(&json!({"name": "Theirs", "stops": [{"latitude": 1, "longitude": 1}]})),
    ] {
        let res = f
            .app
            .send(
                req.bearer_auth(&other_key)
                    .header("X-Connection-Id", &f.conn),
            )
            .await;
        res.assert_error(404, "NOT_FOUND");
    }
    let (theirs, _) = f.app.all(&f.token, "/v1/dispatch-routes").await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["name"], "Ours");
    assert!(f.samsara_routes().await.iter().all(|r| r["name"] == "Ours"));
}
