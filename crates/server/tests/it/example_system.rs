//! A system added as one module, one mapping file and one registry line (the test kit's
//! example) is served like any other: `GET /v1/systems` lists it from its descriptor, a
//! connection to it is made through the API, a worker syncs it through the real engine, and
//! its records are read through the generic routes.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::example;
use serde_json::json;

use crate::support::{TestApp, test_webhook_config};

#[tokio::test]
async fn the_example_system_is_connected_synced_and_served() {
    let app = TestApp::spawn_systems(
        ServerConfig {
            rate_limit_per_second: 0,
            ..ServerConfig::default()
        },
        test_webhook_config(Arc::default()),
        ironbridge_testkit::registry,
    )
    .await;
    let (_, key) = app.org(2).await;
    let table = example::table_named("served");
    let at = app.clock.now().plus_secs(-3600);
    for (code, name) in [
        ("DC-1", "North"),
        ("DC-2", "South"),
        ("DC-3", "East"),
        ("DC-4", "West"),
    ] {
        table.put(code, name, at);
    }

    let systems = app.get(&key, "/v1/systems").await;
    let listed = systems.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "example")
        .expect("the example is listed from its descriptor")
        .clone();
    assert_eq!(listed["entities"][0]["entity"], "location");
    assert_eq!(listed["credentials"][0]["fields"][0]["secret"], true);

    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "example", "settings": {"table": "served"}, "credentials": {"token": "x"}}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let token = res.body["token"].as_str().unwrap().to_string();
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let worker = Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    );
    assert!(worker.run_once().await.unwrap());

    let (locations, total) = app
        .all(&token, "/v1/locations?page_size=2&include_total=true")
        .await;
    assert_eq!(total, 4);
    let names: Vec<&str> = locations
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["East", "North", "South", "West"]);
    assert_eq!(locations[0]["custom_fields"], json!({"x_dock_doors": 4}));
    // It reads nothing else, and writes nothing.
    let (orders, _) = app.all(&token, "/v1/purchase-orders").await;
    assert!(orders.is_empty());
    let refused = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": "vnd_x", "line_items": [{"item_id": "itm_x", "quantity": "1"}]}),
        )
        .await;
    let err = refused.assert_error(422, "UNSUPPORTED_OPERATION");
    assert_eq!(
        err["details"],
        json!({"operation": "create", "entity": "purchase_order"})
    );
}
