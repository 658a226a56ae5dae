//! The warehouse model over HTTP against the ASCTrac emulator: stock levels, receipts,
//! shipments, outbound orders and inventory transactions served like every entity once
//! synced; outbound orders written and shipped through the API; a partial acceptance answered
//! 422 naming the items ASCTrac left out.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{TestApp, test_webhook_config};

/// An app with one ASCTrac connection, synced once; the source, the token and the admin key.
async fn warehouse() -> (TestApp, Emulated, String) {
    let source = Emulated::start(System::Asctrac, 7, 300).await;
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
            json!({"system": "asctrac", "settings": source.settings, "credentials": source.credentials}),
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
    assert!(worker.run_once().await.unwrap(), "the initial sync ran");
    (app, source, token)
}

/// Deletes an item at ASCTrac, behind Ironbridge's back (`ItemMasterImport` flag `D`).
async fn delete_item(source: &Emulated, code: &str) {
    let http = reqwest::Client::new();
    let base = source.emulator.base_url();
    let t: Value = http
        .post(format!("{base}/api/Authorize"))
        .json(&json!({"client_id": source.credentials["client_id"],
            "client_secret": source.credentials["client_secret"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deleted = http
        .post(format!("{base}/api/ItemMasterImport"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&json!({"FACILITY": "01", "PRODUCT_CODE": code, "STATUS_FLAG": "D"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
}

/// The id of the first record of `path` whose `field` is `value`.
async fn id_of(app: &TestApp, token: &str, path: &str, field: &str, value: &str) -> String {
    let (all, _) = app.all(token, path).await;
    all.iter()
        .find(|r| r[field] == value)
        .unwrap_or_else(|| panic!("no {path} with {field} {value}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn warehouse_records_are_served_and_orders_written_shipped_or_refused_in_part() {
    let (app, source, token) = warehouse().await;
    for path in [
        "/v1/inventory-levels",
        "/v1/receipts",
        "/v1/shipments",
        "/v1/outbound-orders",
        "/v1/inventory-transactions",
        "/v1/dock-appointments",
        "/v1/items",
        "/v1/locations",
    ] {
        let (all, _) = app.all(&token, path).await;
        assert!(!all.is_empty(), "{path}");
    }
    let (shipments, _) = app.all(&token, "/v1/shipments").await;
    let s = &shipments[0];
    assert_eq!(s["status"], "shipped");
    assert!(s["picks"].as_array().is_some_and(|p| !p.is_empty()), "{s}");
    assert!(s["outbound_order_id"].as_str().unwrap().starts_with("obo_"));
    let (levels, _) = app.all(&token, "/v1/inventory-levels").await;
    assert!(levels[0]["item_id"].as_str().unwrap().starts_with("itm_"));
    assert!(levels[0]["quantity_on_hand"].is_string());
    let (receipts, _) = app.all(&token, "/v1/receipts").await;
    let received = receipts[0]["received_at"].as_str().unwrap();
    assert!(received.ends_with('Z'), "{received}");

    let meta = app.get(&token, "/v1/meta/outbound-orders").await;
    assert_eq!(meta.status, 200, "{}", meta.body);

    let facility = id_of(&app, &token, "/v1/locations", "code", "01").await;
    let item = id_of(&app, &token, "/v1/items", "code", "ITEM-000001").await;
    let res = app
        .post(
            &token,
            "/v1/outbound-orders",
            json!({"number": "SO-API-1", "location_id": facility, "customer_code": "C00042",
                "ship_to": {"name": "Acme", "city": "Dayton", "state": "OH"},
                "line_items": [{"item_id": item, "quantity_ordered": "4", "unit_price": "12.50"}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["status"], "open");
    assert_eq!(res.body["location_code"], "01");
    assert_eq!(res.body["line_items"][0]["item_id"], item);
    let id = res.body["id"].as_str().unwrap().to_string();
    let res = app
        .patch(
            &token,
            &format!("/v1/outbound-orders/{id}"),
            json!({"status": "shipped"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "shipped");
    // ASCTrac answers a ship with the status alone: the lines and address Ironbridge wrote
    // are kept, in the answer and in the store.
    let read = app.get(&token, &format!("/v1/outbound-orders/{id}")).await;
    for body in [&res.body, &read.body] {
        assert_eq!(body["line_items"][0]["item_id"], item, "{body}");
        assert_eq!(body["ship_to"]["city"], "Dayton");
        assert_eq!(body["status"], "shipped");
    }
    let again = app
        .patch(
            &token,
            &format!("/v1/outbound-orders/{id}"),
            json!({"status": "shipped"}),
        )
        .await;
    again.assert_error(409, "STATE_CONFLICT");

    // An item Ironbridge knows and ASCTrac no longer does: the order is kept without it
    // there, and refused here, naming it.
    let res = app
        .post(
            &token,
            "/v1/items",
            json!({"code": "GONE-1", "name": "Discontinued"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let gone = res.body["id"].as_str().unwrap().to_string();
    delete_item(&source, "GONE-1").await;
    let res = app
        .post(
            &token,
            "/v1/outbound-orders",
            json!({"number": "SO-API-2", "location_id": facility,
                "line_items": [{"item_id": item, "quantity_ordered": "1"},
                               {"item_id": gone, "quantity_ordered": "2"}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(err["param"], "line_items");
    assert_eq!(
        err["details"],
        json!({"remote_code": "PARTIAL_ACCEPTANCE", "missing_items": ["GONE-1"]})
    );
    // A facility ASCTrac does not have is the source's refusal, on that field.
    let (orders, _) = app.all(&token, "/v1/outbound-orders").await;
    assert!(
        orders.iter().all(|o| o["number"] != "SO-API-2"),
        "nothing stored"
    );
}

#[tokio::test]
async fn purchase_orders_become_expected_receipts_and_a_partial_acceptance_is_refused() {
    let (app, source, token) = warehouse().await;
    // Written, not read: the capability matrix says so.
    let systems = app.get(&token, "/v1/systems").await;
    let asctrac = systems.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "asctrac")
        .unwrap()
        .clone();
    let po = asctrac["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "purchase_order")
        .unwrap();
    assert_eq!(
        (&po["read"], &po["create"], &po["read_kind"]),
        (&json!(false), &json!(true), &Value::Null),
        "{po}"
    );
    let facility = id_of(&app, &token, "/v1/locations", "code", "01").await;
    let item = id_of(&app, &token, "/v1/items", "code", "ITEM-000002").await;
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"number": "PO-API-1", "location_id": facility,
                "expected_delivery_date": "2026-12-20", "memo": "Dock 3",
                "custom_fields": {"VENDOR_CODE": "V100"},
                "line_items": [{"item_id": item, "quantity": "10", "unit_price": "4.25"},
                    {"item_id": item, "quantity": "2", "expected_delivery_date": "2026-12-22"}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["status"], "approved");
    assert_eq!(res.body["custom_fields"]["VENDOR_CODE"], "V100");
    assert_eq!(res.body["memo"], "Dock 3");
    assert_eq!(
        res.body["line_items"][1]["expected_delivery_date"],
        "2026-12-22"
    );
    assert_eq!(
        res.body["line_items"][0]["expected_delivery_date"],
        "2026-12-20"
    );
    let id = res.body["id"].as_str().unwrap().to_string();
    let read = app.get(&token, &format!("/v1/purchase-orders/{id}")).await;
    assert_eq!(
        read.body["line_items"][0]["quantity"], "10",
        "{}",
        read.body
    );
    // ASCTrac has the document, its lines numbered from 1.
    let records = source.admin("GET", "/asctrac/records", None).await;
    let doc = &records["purchase_orders"]["PO-API-1"]["body"];
    assert_eq!(doc["FACILITY"], "01");
    assert_eq!(doc["VENDOR_CODE"], "V100");
    assert_eq!(doc["PODetList"][1]["LINE_NUMBER"], 2);
    assert_eq!(doc["PODetList"][1]["EXPECTED_RECEIPT_DATE"], "2026-12-22");
    assert_eq!(doc["NotesList"][0]["NOTE"], "Dock 3");
    // A site that reports unknown items instead of creating them: a partial acceptance,
    // refused naming the item, and nothing stored.
    source
        .admin(
            "PATCH",
            "/settings",
            Some(json!({"po_missing_item_action": 1})),
        )
        .await;
    let res = app
        .post(&token, "/v1/items", json!({"code": "NEW-9", "name": "New"}))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let new_item = res.body["id"].as_str().unwrap().to_string();
    delete_item(&source, "NEW-9").await;
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"number": "PO-API-2", "line_items": [{"item_id": item, "quantity": "1"},
                {"item_id": new_item, "quantity": "1"}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(err["details"]["missing_items"], json!(["NEW-9"]));
    let (all, _) = app.all(&token, "/v1/purchase-orders").await;
    assert_eq!(all.len(), 1, "only the accepted order");
    // A vendor reference is not something ASCTrac takes.
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"number": "PO-API-3", "vendor_id": "vnd_x",
                "line_items": [{"item_id": item, "quantity": "1"}]}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "vendor_id");
}

#[tokio::test]
async fn orders_and_purchase_orders_written_are_shipped_and_received_at_the_warehouse() {
    let (app, source, token) = warehouse().await;
    let facility = id_of(&app, &token, "/v1/locations", "code", "01").await;
    let item = id_of(&app, &token, "/v1/items", "code", "ITEM-000001").await;
    let res = app
        .post(
            &token,
            "/v1/outbound-orders",
            json!({"number": "SO-FLOW-1", "location_id": facility, "customer_code": "C00042",
                "ship_to": {"name": "Acme", "city": "Dayton", "state": "OH"},
                "line_items": [{"item_id": item, "quantity_ordered": "4", "unit_price": "12.50"},
                    {"item_id": item, "quantity_ordered": "1"}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let order_id = res.body["id"].as_str().unwrap().to_string();
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"number": "PO-FLOW-1", "location_id": facility,
                "custom_fields": {"VENDOR_CODE": "V100"},
                "line_items": [{"item_id": item, "quantity": "10"},
                    {"item_id": item, "quantity": "2"}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);

    // The warehouse works on them as its clock passes the pick, receive and ship delays
    // (600, 900 and 1800 seconds by default); a sync reads what it did.
    source
        .admin("POST", "/clock", Some(json!({"advance_seconds": 1801})))
        .await;
    let res = app.post(&token, "/v1/sync", json!({})).await;
    assert_eq!(res.status, 202, "{}", res.body);
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let worker = Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    );
    assert!(worker.run_once().await.unwrap(), "the sync ran");

    // Shipped, with the lines and address only the order written has (the status rows are
    // laid over it).
    let read = app
        .get(&token, &format!("/v1/outbound-orders/{order_id}"))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["status"], "shipped", "{}", read.body);
    assert_eq!(read.body["line_items"].as_array().unwrap().len(), 2);
    assert_eq!(read.body["line_items"][0]["item_id"], item);
    assert_eq!(read.body["ship_to"]["city"], "Dayton");
    let (shipments, _) = app.all(&token, "/v1/shipments").await;
    let ship = shipments
        .iter()
        .find(|s| s["outbound_order_number"] == "SO-FLOW-1")
        .unwrap_or_else(|| panic!("no shipment of SO-FLOW-1"));
    assert_eq!(ship["outbound_order_id"], order_id.as_str());
    assert_eq!(ship["status"], "shipped");
    let picks = ship["picks"].as_array().unwrap();
    assert_eq!(picks.len(), 2, "{ship}");
    assert_eq!(picks[0]["item_code"], "ITEM-000001");

    // Received: a license plate per line, under the PO's number.
    let (receipts, _) = app.all(&token, "/v1/receipts").await;
    let mut received: Vec<&Value> = receipts
        .iter()
        .filter(|r| r["purchase_order_number"] == "PO-FLOW-1")
        .collect();
    received.sort_by_key(|r| r["purchase_order_line_number"].as_i64());
    assert_eq!(received.len(), 2, "{receipts:?}");
    assert_eq!(received[0]["purchase_order_line_number"], 1);
    assert_eq!(received[0]["item_id"], item);
    assert_eq!(received[0]["vendor_code"], "V100");
    let quantity: f64 = received[0]["quantity"].as_str().unwrap().parse().unwrap();
    assert_eq!(quantity, 10.0);
    // Every row was acknowledged: the outboxes hold nothing the sync read.
    let outbox = source.admin("GET", "/asctrac/outbox", None).await;
    for export in [
        "CustOrderExport",
        "CustOrderStatusExport",
        "POLicensesExport",
    ] {
        assert_eq!(outbox[export]["S"], 0, "{export}: {}", outbox[export]);
    }
}
