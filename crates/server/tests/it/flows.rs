//! Flows over HTTP: documents checked with paths and kept as versions, manual runs with each
//! error policy, dry runs that write nothing, event and schedule triggers, and the shipped
//! examples end to end against the emulators (NetSuite purchase orders to ASCTrac expected
//! receipts, ASCTrac receipts back to NetSuite and to the organization, Samsara harsh braking
//! to a webhook), each change taken once.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_core::clock::RecordingSleeper;
use ironbridge_emulators::System;
use ironbridge_engine::flows::FlowTriggers;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{TestApp, test_webhook_config};

/// The app with the built-in systems reaching the emulators on loopback.
async fn app_with_systems() -> TestApp {
    TestApp::spawn_systems(
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
    .await
}

/// A worker whose waits move the app's clock, and the flow triggers.
fn worker(app: &TestApp) -> (Worker, FlowTriggers, RecordingSleeper) {
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let sleeper = RecordingSleeper::new(app.clock.clone());
    let worker = Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock.clone(),
        WorkerConfig::default(),
    )
    .with_sleeper(Arc::new(sleeper.clone()));
    let triggers = FlowTriggers::new(app.store.clone(), app.runtimes.clone(), clock);
    (worker, triggers, sleeper)
}

/// Starts due triggers and runs due jobs until neither has anything left.
async fn drain(worker: &Worker, triggers: &FlowTriggers) {
    for _ in 0..200 {
        let started = triggers.start_due().await.unwrap();
        let ran = worker.run_once().await.unwrap();
        if started == 0 && !ran {
            return;
        }
    }
    panic!("jobs kept coming");
}

/// A shipped example with its placeholders replaced.
fn example(name: &str, replace: &[(&str, &str)]) -> Value {
    let path = format!(
        "{}/../../examples/flows/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

async fn connect(app: &TestApp, key: &str, system: &str, source: &Emulated) -> (String, String) {
    let res = app
        .post(
            key,
            "/v1/connections",
            json!({"system": system, "settings": source.settings, "credentials": source.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    (
        res.body["connection"]["id"].as_str().unwrap().to_string(),
        res.body["token"].as_str().unwrap().to_string(),
    )
}

/// `PUT` of a flow document.
async fn put(app: &TestApp, key: &str, path: &str, doc: &Value) -> crate::support::Res {
    app.send(app.client.put(app.url(path)).bearer_auth(key).json(doc))
        .await
}

/// Queues a sync of the connection now.
async fn sync_now(app: &TestApp, key: &str, conn: &str) -> crate::support::Res {
    app.send(
        app.client
            .post(app.url("/v1/sync"))
            .bearer_auth(key)
            .header("X-Connection-Id", conn)
            .json(&json!({})),
    )
    .await
}

/// The flow's runs, newest first.
async fn runs(app: &TestApp, key: &str, flow: &str) -> Vec<Value> {
    let res = app.get(key, &format!("/v1/flows/{flow}/runs")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["data"].as_array().unwrap().clone()
}

/// The organization's events of one type (the list is a feed: its cursor never ends).
async fn events(app: &TestApp, key: &str, kind: &str) -> Vec<Value> {
    let res = app
        .get(key, &format!("/v1/events?type={kind}&page_size=500"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["data"].as_array().unwrap().clone()
}

/// Two purchase-order shapes for the sandbox: a good one, and one naming no vendor.
async fn sandbox_items(app: &TestApp, token: &str) -> (Value, Value) {
    let (vendors, _) = app.all(token, "/v1/vendors").await;
    let (items, _) = app.all(token, "/v1/items").await;
    // Inactive ones are refused by the source.
    let active = |list: &[Value]| {
        list.iter()
            .find(|r| r["status"] == "active")
            .map(|r| r["id"].clone())
            .expect("an active record")
    };
    // An item out of stock is refused too.
    let in_stock: Vec<Value> = items
        .iter()
        .filter(|i| {
            i["quantity_available"]
                .as_str()
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q > 0.0)
        })
        .cloned()
        .collect();
    let (vendor, item) = (active(&vendors), active(&in_stock));
    (
        json!({"vendor": vendor, "item": item, "qty": "2"}),
        json!({"vendor": "vnd_doesnotexist", "item": item, "qty": "1"}),
    )
}

fn sandbox_flow(conn: &str, key: &str, on_error: Value) -> Value {
    json!({
        "key": key,
        "name": "Orders from items",
        "trigger": {"type": "manual"},
        "steps": [
            {"type": "transform", "id": "shape", "jq": "{vendor_id: .vendor, line_items: [{item_id: .item, quantity: .qty}]}"},
            {"type": "write", "id": "create", "connection_id": conn, "entity": "purchase-orders", "batch_size": 2, "delay_ms": 250, "on_error": on_error}
        ]
    })
}

#[tokio::test]
async fn documents_are_checked_with_their_paths_versioned_and_kept_per_organization() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, _) = app.connection(&key, json!({})).await;
    let (_, other_key) = app.org(3).await;
    let (other_conn, _) = app.connection(&other_key, json!({})).await;

    // Every problem, each with its path.
    let res = app
        .post(
            &key,
            "/v1/flows",
            json!({"key": "Bad Key", "name": "x", "trigger": {"type": "schedule", "cron": "61 * * * *"},
                "steps": [{"type": "transform", "id": "a", "jq": ".a +"},
                    {"type": "write", "id": "b", "connection_id": conn, "entity": "nothing"}]}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    let paths: Vec<&str> = err["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec!["key", "trigger.cron", "steps[0].jq", "steps[1].entity"]
    );
    assert_eq!(err["param"], "key");
    let res = app
        .post(&key, "/v1/flows", json!({"key": "k", "name": "n", "trigger": {"type": "manual"}, "steps": [{"type": "filter", "id": "f"}]}))
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "steps[0].condition", "{err}");
    let res = app.post(&key, "/v1/flows", json!({"key": "k", "name": "n", "trigger": {"type": "manual"}, "steps": [{"type": "deliver", "id": "f"}]})).await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "steps[0].type"
    );

    // Expressions that could recurse or loop without end are refused, not run.
    let res = app
        .post(
            &key,
            "/v1/flows/dry-run",
            json!({"flow": {"key": "k", "name": "n", "trigger": {"type": "manual"},
                "steps": [{"type": "transform", "id": "t", "jq": "def f: 1 + f; f"}]}}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "flow.steps[0].jq", "{err}");
    assert!(err["message"].as_str().unwrap().contains("`def`"), "{err}");

    // Another organization's connection is not one this flow may name.
    let res = app
        .post(
            &key,
            "/v1/flows",
            sandbox_flow(&other_conn, "orders", json!({"policy": "skip"})),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "steps[1].connection_id", "{err}");
    // The sandbox writes purchase orders, not vendors.
    let mut wrong = sandbox_flow(&conn, "orders", json!({"policy": "skip"}));
    wrong["steps"][1]["entity"] = json!("vendors");
    let res = app.post(&key, "/v1/flows", wrong).await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "steps[1].entity"
    );

    // Created by PUT with its key; the same document again changes nothing.
    let doc = sandbox_flow(&conn, "orders", json!({"policy": "skip"}));
    let res = put(&app, &key, "/v1/flows/orders", &doc).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("flw_"));
    assert_eq!(res.body["version"], 1);
    let res = put(&app, &key, "/v1/flows/orders", &doc).await;
    assert_eq!((res.status, res.body["version"].as_i64()), (200, Some(1)));
    // A change is the next version; both versions are kept.
    let mut changed = doc.clone();
    changed["name"] = json!("Orders, renamed");
    let res = put(&app, &key, &format!("/v1/flows/{id}"), &changed).await;
    assert_eq!(
        (res.status, res.body["version"].as_i64()),
        (200, Some(2)),
        "{}",
        res.body
    );
    let versions = app.get(&key, "/v1/flows/orders/versions").await;
    assert_eq!(versions.body["data"][0]["version"], 2);
    assert_eq!(
        versions.body["data"][1]["document"]["name"],
        "Orders from items"
    );
    // A key names one flow; a PUT's key and its document's agree.
    let res = app.post(&key, "/v1/flows", doc.clone()).await;
    res.assert_error(409, "CONFLICT");
    let res = put(&app, &key, "/v1/flows/other-key", &doc).await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "key");

    // Another organization sees none of it.
    for path in [
        "/v1/flows/orders",
        &format!("/v1/flows/{id}"),
        "/v1/flows/orders/runs",
    ] {
        app.get(&other_key, path)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let res = app
        .post(&other_key, "/v1/flows/orders/runs", json!({}))
        .await;
    res.assert_error(404, "NOT_FOUND");
    assert_eq!(
        app.get(&other_key, "/v1/flows").await.body["data"],
        json!([])
    );
    // Connection tokens do not manage flows.
    let (_, token) = app.connection(&key, json!({})).await;
    app.get(&token, "/v1/flows")
        .await
        .assert_error(403, "PERMISSION_DENIED");

    let res = app.delete(&key, "/v1/flows/orders").await;
    assert_eq!(res.status, 204, "{}", res.body);
    app.get(&key, "/v1/flows/orders")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn manual_runs_follow_each_error_policy_and_report_every_item() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({})).await;
    let (good, bad) = sandbox_items(&app, &token).await;
    let (worker, triggers, sleeper) = worker(&app);

    // Skip: the bad item is reported, the others are written.
    let res = app
        .post(
            &key,
            "/v1/flows",
            sandbox_flow(&conn, "skip", json!({"policy": "skip"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let items = json!([good, bad, good, good, good]);
    let res = app
        .post(&key, "/v1/flows/skip/runs", json!({"items": items}))
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(res.body["status"], "queued");
    let run_id = res.body["id"].as_str().unwrap().to_string();
    drain(&worker, &triggers).await;
    let run = app.get(&key, &format!("/v1/flow-runs/{run_id}")).await;
    assert_eq!(run.body["status"], "succeeded", "{}", run.body);
    assert_eq!(run.body["input_count"], 5);
    assert_eq!(run.body["steps"][0]["output"], 5);
    let write = &run.body["steps"][1];
    let failures = app
        .get(&key, &format!("/v1/flow-runs/{run_id}/items?status=failed"))
        .await;
    assert_eq!(
        (
            write["items"].as_i64(),
            write["succeeded"].as_i64(),
            write["failed"].as_i64()
        ),
        (Some(5), Some(4), Some(1)),
        "{write} {}",
        failures.body
    );
    // Batches of two with 250 ms between them: two pauses for five items.
    assert_eq!(
        sleeper
            .slept()
            .iter()
            .filter(|d| d.as_millis() == 250)
            .count(),
        2
    );
    let failed = app
        .get(
            &key,
            &format!("/v1/flow-runs/{run_id}/items?step=create&status=failed"),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    let item = &failed.body["data"][0];
    assert_eq!(item["index"], 1);
    assert_eq!(item["error"]["code"], "VALIDATION_ERROR", "{item}");
    assert_eq!(item["error"]["param"], "vendor_id", "{item}");
    assert_eq!(item["input"]["vendor_id"], "vnd_doesnotexist");
    let written = app
        .get(
            &key,
            &format!("/v1/flow-runs/{run_id}/items?step=create&status=succeeded&page_size=2"),
        )
        .await;
    assert_eq!(written.body["data"].as_array().unwrap().len(), 2);
    assert!(
        written.body["data"][0]["output"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("po_")
    );
    let next = written.body["next_cursor"].as_str().unwrap();
    let rest = app.get(&key, &format!("/v1/flow-runs/{run_id}/items?step=create&status=succeeded&page_size=2&cursor={next}")).await;
    assert_eq!(rest.body["data"].as_array().unwrap().len(), 2);
    // A cursor of another list is refused.
    let res = app
        .get(
            &key,
            &format!("/v1/flow-runs/{run_id}/items?step=shape&cursor={next}"),
        )
        .await;
    res.assert_error(400, "INVALID_CURSOR");
    let res = app
        .get(&key, &format!("/v1/flow-runs/{run_id}/items?step=nope"))
        .await;
    assert_eq!(
        res.body["data"],
        json!([]),
        "a step the flow does not have has no items"
    );
    let res = app
        .get(&key, &format!("/v1/flow-runs/{run_id}/items?step="))
        .await;
    res.assert_error(400, "INVALID_REQUEST");
    let completed = events(&app, &key, "flow.run_completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["data"]["run_id"], run_id.as_str());

    // Stop: the run fails at the bad item, with it named.
    let res = app
        .post(
            &key,
            "/v1/flows",
            sandbox_flow(&conn, "stop", json!({"policy": "stop"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app
        .post(
            &key,
            "/v1/flows/stop/runs",
            json!({"items": [good, good, bad, good, good, good]}),
        )
        .await;
    let run_id = res.body["id"].as_str().unwrap().to_string();
    drain(&worker, &triggers).await;
    let run = app.get(&key, &format!("/v1/flow-runs/{run_id}")).await;
    assert_eq!(run.body["status"], "failed", "{}", run.body);
    assert_eq!(run.body["error"]["code"], "FLOW_ITEM_FAILED");
    assert_eq!(run.body["error"]["step"], "create");
    assert_eq!(run.body["error"]["index"], 2);
    assert_eq!(run.body["error"]["error"]["param"], "vendor_id");
    // Its batch (items 2 and 3) ended; the rest were never tried.
    let write = &run.body["steps"][1];
    assert_eq!(
        (write["succeeded"].as_i64(), write["failed"].as_i64()),
        (Some(3), Some(1)),
        "{write}"
    );
    let cancelled = app
        .get(
            &key,
            &format!("/v1/flow-runs/{run_id}/items?status=cancelled"),
        )
        .await;
    assert_eq!(cancelled.body["data"].as_array().unwrap().len(), 2);
    let failed_events = events(&app, &key, "flow.run_failed").await;
    assert_eq!(failed_events.len(), 1);
    assert_eq!(failed_events[0]["data"]["error"]["index"], 2);

    // Retry: tried three times with a doubling backoff, then the run fails.
    let res = app
        .post(
            &key,
            "/v1/flows",
            sandbox_flow(
                &conn,
                "retry",
                json!({"policy": "retry", "max_attempts": 3, "backoff_ms": 5000}),
            ),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app
        .post(&key, "/v1/flows/retry/runs", json!({"items": [bad]}))
        .await;
    let run_id = res.body["id"].as_str().unwrap().to_string();
    drain(&worker, &triggers).await;
    let run = app.get(&key, &format!("/v1/flow-runs/{run_id}")).await;
    assert_eq!(run.body["status"], "failed", "{}", run.body);
    let item = app
        .get(&key, &format!("/v1/flow-runs/{run_id}/items?step=create"))
        .await;
    assert_eq!(item.body["data"][0]["attempts"], 3, "{}", item.body);
    let waits: Vec<u128> = sleeper
        .slept()
        .iter()
        .map(|d| d.as_millis())
        .filter(|ms| *ms >= 5000)
        .collect();
    assert_eq!(waits, vec![5000, 10000]);

    // Too many items, and a run of a flow that is not there.
    let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let res = app
        .post(&key, "/v1/flows/skip/runs", json!({"items": many}))
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "items");
    app.post(&key, "/v1/flows/nope/runs", json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_cancelled_run_stops_before_its_next_batch() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({})).await;
    let (good, _) = sandbox_items(&app, &token).await;
    let (worker, triggers, _) = worker(&app);
    let res = app
        .post(
            &key,
            "/v1/flows",
            sandbox_flow(&conn, "orders", json!({"policy": "skip"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app
        .post(
            &key,
            "/v1/flows/orders/runs",
            json!({"items": [good, good, good, good]}),
        )
        .await;
    let run_id = res.body["id"].as_str().unwrap().to_string();
    let res = app
        .post(&key, &format!("/v1/flow-runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["cancel_requested"], true);
    drain(&worker, &triggers).await;
    let run = app.get(&key, &format!("/v1/flow-runs/{run_id}")).await;
    assert_eq!(run.body["status"], "cancelled", "{}", run.body);
    assert_eq!(run.body["steps"][1]["succeeded"], 0);
    let done = events(&app, &key, "flow.run_completed").await;
    assert_eq!(done[0]["data"]["status"], "cancelled");
}

#[tokio::test]
async fn event_and_schedule_triggers_start_one_run_each() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, _) = app.connection(&key, json!({})).await;
    let (worker, triggers, _) = worker(&app);
    let notify = |key: &str, trigger: Value| {
        json!({"key": key, "name": key, "trigger": trigger,
            "steps": [{"type": "webhook", "id": "tell", "name": "test.ping", "data": "{type, connection_id, scheduled_at}"}]})
    };
    let res = app
        .post(
            &key,
            "/v1/flows",
            notify(
                "on-sync",
                json!({"type": "event", "event_types": ["sync.completed"], "connection_id": conn}),
            ),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app
        .post(
            &key,
            "/v1/flows",
            notify("hourly", json!({"type": "schedule", "cron": "0 * * * *"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    // A flow's own events cannot start flows.
    let res = app
        .post(
            &key,
            "/v1/flows",
            notify(
                "loop",
                json!({"type": "event", "event_types": ["flow.run_completed"]}),
            ),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "trigger.event_types[0]"
    );

    // A sync's completion starts the event flow once.
    let sync = sync_now(&app, &key, &conn).await;
    assert_eq!(sync.status, 202, "{}", sync.body);
    drain(&worker, &triggers).await;
    let on_sync = runs(&app, &key, "on-sync").await;
    assert_eq!(on_sync.len(), 1, "{on_sync:?}");
    assert_eq!(on_sync[0]["trigger"], "event");
    assert_eq!(on_sync[0]["status"], "succeeded");
    let pings = events(&app, &key, "flow.event").await;
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0]["data"]["payload"]["type"], "sync.completed");
    assert_eq!(pings[0]["data"]["payload"]["connection_id"], conn.as_str());
    assert!(runs(&app, &key, "hourly").await.is_empty());

    // The schedule: one run when due, none again until the next hour, and one for hours
    // missed together.
    app.clock.advance_micros(3_600_000_000);
    drain(&worker, &triggers).await;
    let hourly = runs(&app, &key, "hourly").await;
    assert_eq!(hourly.len(), 1, "{hourly:?}");
    assert_eq!(hourly[0]["status"], "succeeded");
    drain(&worker, &triggers).await;
    assert_eq!(runs(&app, &key, "hourly").await.len(), 1);
    app.clock.advance_micros(5 * 3_600_000_000);
    drain(&worker, &triggers).await;
    assert_eq!(runs(&app, &key, "hourly").await.len(), 2);
    let pings = events(&app, &key, "flow.event").await;
    assert!(
        pings
            .iter()
            .any(|p| p["data"]["payload"]["scheduled_at"].is_string())
    );

    // Disabled, neither starts.
    let mut off = notify("hourly", json!({"type": "schedule", "cron": "0 * * * *"}));
    off["enabled"] = json!(false);
    let res = put(&app, &key, "/v1/flows/hourly", &off).await;
    assert_eq!(res.status, 200, "{}", res.body);
    app.clock.advance_micros(3_600_000_000);
    drain(&worker, &triggers).await;
    assert_eq!(runs(&app, &key, "hourly").await.len(), 2);
}

/// Purchase orders the warehouse received through ASCTrac's `POImport`.
async fn po_imports(asctrac: &Emulated) -> usize {
    asctrac
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["method"] == "POST" && r["path"].as_str().unwrap_or("").ends_with("/POImport")
        })
        .count()
}

/// The example `name` (an ERP's approved purchase orders to ASCTrac expected receipts) run
/// from the beginning of the ERP's feed, after a dry run that writes nothing: each approved
/// order reaches the warehouse once. Returns the approved orders.
#[allow(clippy::too_many_arguments)]
async fn erp_orders_reach_asctrac(
    app: &TestApp,
    key: &str,
    (worker, triggers): (&Worker, &FlowTriggers),
    name: &str,
    placeholder: &str,
    (erp_conn, erp_token): (&str, &str),
    (wms_conn, wms_token): (&str, &str),
    asctrac: &Emulated,
) -> Vec<Value> {
    // The approved orders, and their items made known to the warehouse by code.
    let (orders, _) = app.all(erp_token, "/v1/purchase-orders").await;
    let approved: Vec<Value> = orders
        .iter()
        .filter(|o| o["status"] == "approved")
        .cloned()
        .collect();
    assert!(!approved.is_empty(), "the emulator has approved orders");
    let (items, _) = app.all(erp_token, "/v1/items").await;
    let mut codes: Vec<String> = approved
        .iter()
        .flat_map(|o| o["line_items"].as_array().unwrap().iter())
        .filter_map(|l| items.iter().find(|i| i["id"] == l["item_id"]))
        .map(|i| i["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    codes.dedup();
    for code in &codes {
        let res = app
            .post(
                wms_token,
                "/v1/items",
                json!({"code": code, "name": format!("Item {code}")}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
    }

    let mut doc = example(name, &[(placeholder, erp_conn), ("conn_ASCTRAC", wms_conn)]);
    doc["trigger"]["from_beginning"] = json!(true);
    let res = app.post(key, "/v1/flows", doc).await;
    assert_eq!(res.status, 201, "{}", res.body);

    // A dry run shows what would be written, and writes nothing.
    let dry = app
        .post(key, &format!("/v1/flows/{name}/dry-run"), json!({}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let steps = dry.body["steps"].as_array().unwrap();
    assert_eq!(
        steps[0]["items_out"].as_u64().unwrap() as usize,
        approved.len().min(20)
    );
    let write = &steps[4];
    assert_eq!(write["failed"], 0, "{write}");
    assert!(
        write["samples"][0]["output"][0]["line_items"][0]["item_id"].is_string(),
        "{write}"
    );
    assert_eq!(po_imports(asctrac).await, 0);

    // The trigger takes every change once: each approved order becomes one expected receipt.
    drain(worker, triggers).await;
    let flow_runs = runs(app, key, name).await;
    assert_eq!(flow_runs.len(), 1, "{flow_runs:?}");
    let run = &flow_runs[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "record_changes");
    assert_eq!(run["input_count"].as_u64().unwrap() as usize, orders.len());
    assert_eq!(
        run["steps"][0]["output"].as_u64().unwrap() as usize,
        approved.len()
    );
    assert_eq!(
        run["steps"][4]["succeeded"].as_u64().unwrap() as usize,
        approved.len(),
        "{run}"
    );
    assert_eq!(po_imports(asctrac).await, approved.len());
    let (expected, _) = app.all(wms_token, "/v1/purchase-orders").await;
    for order in &approved {
        assert!(
            expected.iter().any(|e| e["number"] == order["number"]),
            "{} reached the warehouse",
            order["number"]
        );
    }
    approved
}

#[tokio::test]
async fn netsuite_purchase_orders_reach_asctrac_and_its_receipts_come_back_each_once() {
    let netsuite = Emulated::start(System::NetSuite, 11, 40).await;
    let asctrac = Emulated::start(System::Asctrac, 7, 50).await;
    let app = app_with_systems().await;
    let (_, key) = app.org(5).await;
    let (ns_conn, ns_token) = connect(&app, &key, "netsuite", &netsuite).await;
    let (wms_conn, wms_token) = connect(&app, &key, "asctrac", &asctrac).await;
    let (worker, triggers, _) = worker(&app);
    drain(&worker, &triggers).await;

    let approved = erp_orders_reach_asctrac(
        &app,
        &key,
        (&worker, &triggers),
        "netsuite-po-to-asctrac",
        "conn_NETSUITE",
        (&ns_conn, &ns_token),
        (&wms_conn, &wms_token),
        &asctrac,
    )
    .await;
    // Nothing new: no new run, nothing written again.
    let sync = sync_now(&app, &key, &ns_conn).await;
    assert_eq!(sync.status, 202, "{}", sync.body);
    drain(&worker, &triggers).await;
    assert_eq!(runs(&app, &key, "netsuite-po-to-asctrac").await.len(), 1);
    assert_eq!(po_imports(&asctrac).await, approved.len());

    // The receipts flow starts at the end of ASCTrac's feed: the warehouse then receives
    // what was imported, and each receipt tells the organization and the ERP's order.
    let doc = example(
        "asctrac-receipts-to-netsuite",
        &[("conn_NETSUITE", &ns_conn), ("conn_ASCTRAC", &wms_conn)],
    );
    let res = app.post(&key, "/v1/flows", doc).await;
    assert_eq!(res.status, 201, "{}", res.body);
    asctrac
        .admin("POST", "/clock", Some(json!({"advance_seconds": 1000})))
        .await;
    let sync = sync_now(&app, &key, &wms_conn).await;
    assert_eq!(sync.status, 202, "{}", sync.body);
    drain(&worker, &triggers).await;
    let (receipts, _) = app.all(&wms_token, "/v1/receipts").await;
    let ours: Vec<&Value> = receipts
        .iter()
        .filter(|r| {
            approved
                .iter()
                .any(|o| o["number"] == r["purchase_order_number"])
        })
        .collect();
    assert!(
        !ours.is_empty(),
        "the warehouse received the expected receipts"
    );
    let received = events(&app, &key, "flow.event").await;
    let received: Vec<&Value> = received
        .iter()
        .filter(|e| e["data"]["name"] == "warehouse.goods_received")
        .collect();
    // One event per receipt the warehouse made since the flow was created (its own stock
    // movements too); those of the orders the flow sent name the ERP's order.
    let receipt_runs = runs(&app, &key, "asctrac-receipts-to-netsuite").await;
    assert!(
        receipt_runs.iter().all(|r| r["status"] == "succeeded"),
        "{receipt_runs:?}"
    );
    let taken: u64 = receipt_runs
        .iter()
        .map(|r| r["input_count"].as_u64().unwrap())
        .sum();
    assert_eq!(received.len() as u64, taken, "one event per receipt");
    let from_erp: Vec<&&Value> = received
        .iter()
        .filter(|e| {
            approved
                .iter()
                .any(|o| o["number"] == e["data"]["payload"]["purchase_order_number"])
        })
        .collect();
    assert_eq!(from_erp.len(), ours.len());
    assert!(
        from_erp
            .iter()
            .all(|e| e["data"]["payload"]["erp_purchase_order_id"].is_string())
    );
    // Only those reached the ERP: one update each.
    let updated: u64 = receipt_runs
        .iter()
        .map(|r| r["steps"][3]["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(updated as usize, ours.len());
    let noted = app
        .get(
            &ns_token,
            &format!(
                "/v1/purchase-orders/{}",
                approved[0]["id"].as_str().unwrap()
            ),
        )
        .await;
    assert!(
        noted.body["memo"]
            .as_str()
            .unwrap_or("")
            .starts_with("Received at the warehouse"),
        "{}",
        noted.body
    );
}

#[tokio::test]
async fn sap_purchase_orders_reach_asctrac_each_once() {
    let sap = Emulated::start(System::SapS4Hana, 5, 40).await;
    let asctrac = Emulated::start(System::Asctrac, 7, 50).await;
    let app = app_with_systems().await;
    let (_, key) = app.org(5).await;
    let (sap_conn, sap_token) = connect(&app, &key, "sap_s4hana", &sap).await;
    let (wms_conn, wms_token) = connect(&app, &key, "asctrac", &asctrac).await;
    let (worker, triggers, _) = worker(&app);
    drain(&worker, &triggers).await;
    erp_orders_reach_asctrac(
        &app,
        &key,
        (&worker, &triggers),
        "sap-po-to-asctrac",
        "conn_SAP",
        (&sap_conn, &sap_token),
        (&wms_conn, &wms_token),
        &asctrac,
    )
    .await;
}

#[tokio::test]
async fn samsara_harsh_braking_becomes_a_webhook_event_per_event() {
    let samsara = Emulated::start(System::Samsara, 9, 3).await;
    let app = app_with_systems().await;
    let (_, key) = app.org(2).await;
    let (conn, token) = connect(&app, &key, "samsara", &samsara).await;
    let (worker, triggers, _) = worker(&app);
    drain(&worker, &triggers).await;
    let (behaviour, _) = app.all(&token, "/v1/driver-behavior-events").await;
    let braking: Vec<&Value> = behaviour
        .iter()
        .filter(|e| e["event_type"] == "harsh_braking")
        .collect();
    assert!(!braking.is_empty(), "the emulator reports harsh braking");

    let mut doc = example("samsara-harsh-braking", &[("conn_SAMSARA", &conn)]);
    doc["trigger"]["from_beginning"] = json!(true);
    let res = app.post(&key, "/v1/flows", doc).await;
    assert_eq!(res.status, 201, "{}", res.body);
    drain(&worker, &triggers).await;
    let sent = events(&app, &key, "flow.event").await;
    assert_eq!(sent.len(), braking.len());
    for event in &braking {
        let found = sent
            .iter()
            .find(|s| s["data"]["payload"]["event_id"] == event["id"])
            .unwrap_or_else(|| panic!("no webhook for {}", event["id"]));
        assert_eq!(found["data"]["name"], "vehicle.harsh_braking");
        assert_eq!(found["data"]["payload"]["vehicle_id"], event["vehicle_id"]);
    }
    // Runs take at most 100 changes each, one after the other, and the trigger is then idle.
    let flow_runs = runs(&app, &key, "samsara-harsh-braking").await;
    assert_eq!(
        flow_runs
            .iter()
            .map(|r| r["input_count"].as_u64().unwrap())
            .sum::<u64>() as usize,
        behaviour.len()
    );
    assert!(
        flow_runs
            .iter()
            .all(|r| r["input_count"].as_u64().unwrap() <= 100)
    );
    drain(&worker, &triggers).await;
    assert_eq!(
        runs(&app, &key, "samsara-harsh-braking").await.len(),
        flow_runs.len()
    );
}

#[tokio::test]
async fn a_dry_run_of_a_document_checks_writes_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({})).await;
    let (good, bad) = sandbox_items(&app, &token).await;
    let doc = sandbox_flow(&conn, "try", json!({"policy": "skip"}));
    let res = app
        .post(
            &key,
            "/v1/flows/dry-run",
            json!({"flow": doc, "items": [good, bad]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let write = &res.body["steps"][1];
    assert_eq!(
        (write["items_in"].as_u64(), write["failed"].as_u64()),
        (Some(2), Some(1)),
        "{write}"
    );
    assert!(write["samples"][0]["output"][0]["line_items"].is_array());
    assert_eq!(write["samples"][1]["error"]["param"], "vendor_id");
    // Nothing was stored: no flow, no run, no event.
    assert_eq!(app.get(&key, "/v1/flows").await.body["data"], json!([]));
    assert!(events(&app, &key, "flow.run_completed").await.is_empty());
    // An invalid document names its paths under `flow`.
    let res = app
        .post(&key, "/v1/flows/dry-run", json!({"flow": {"key": "k", "name": "n", "trigger": {"type": "manual"}, "steps": [{"type": "filter", "id": "f", "condition": "."}], "extra": 1}}))
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "flow.extra"
    );
    let res = app
        .post(&key, "/v1/flows/dry-run", json!({"items": []}))
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "flow");
}
