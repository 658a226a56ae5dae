//! Writes against the emulators of NetSuite, SAP and Business Central: the written record is
//! readable at once, `Idempotency-Key` replays the first answer byte for byte and the source
//! receives one write, a key reused for another body or still in flight is refused, and bulk
//! batches write each operation exactly once, with per-operation results, `on_error`,
//! cancel, resumption after the worker running them stops, and `batch.completed`.

use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::clock::RecordingSleeper;
use ironbridge_core::{Clock, OffsetClock, SystemClock};
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{Res, TestApp, test_webhook_config};

/// A connection to `system`'s emulator, synced, with an active vendor and item to order.
pub(crate) struct Connected {
    pub(crate) system: System,
    pub(crate) source: Emulated,
    pub(crate) app: Arc<TestApp>,
    pub(crate) token: String,
    /// The organization's admin key.
    pub(crate) key: String,
    pub(crate) vendor: String,
    pub(crate) item: String,
}

pub(crate) fn worker(app: &TestApp) -> Worker {
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    )
    .with_sleeper(Arc::new(RecordingSleeper::new(app.clock.clone())))
}

pub(crate) async fn connect(system: System) -> Connected {
    connect_with(
        system,
        ServerConfig {
            rate_limit_per_second: 0,
            ..ServerConfig::default()
        },
    )
    .await
}

async fn connect_with(system: System, config: ServerConfig) -> Connected {
    let source = Emulated::start(system, 7, 40).await;
    // The connectors keep the emulator's time, and real time passes for them (rate budgets
    // refill).
    let source_clock = OffsetClock::new();
    source_clock.advance_secs((source.now().micros() - SystemClock.now().micros()) / 1_000_000);
    let app = TestApp::spawn_systems(config, test_webhook_config(Arc::default()), move |_| {
        ironbridge_engine::registry::builtin_for(
            Arc::new(source_clock),
            ironbridge_core::netguard::Egress::local(),
        )
    })
    .await;
    let (_, key) = app.org(3).await;
    let mut settings = source.settings.clone();
    settings.insert("history_days".into(), json!(3650));
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": source.system.id, "settings": settings, "credentials": source.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let token = res.body["token"].as_str().unwrap().to_string();
    assert!(
        worker(&app).run_once().await.unwrap(),
        "the initial sync ran"
    );
    let (vendors, _) = app.all(&token, "/v1/vendors?page_size=500").await;
    let vendor = vendors
        .iter()
        .find(|v| v["status"] == "active")
        .expect("an active vendor")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (items, _) = app.all(&token, "/v1/items?page_size=500").await;
    let item = items
        .iter()
        .find(|i| i["status"] == "active" && i["item_type"] == "inventory")
        .or_else(|| items.iter().find(|i| i["status"] == "active"))
        .expect("an active item")["id"]
        .as_str()
        .unwrap()
        .to_string();
    Connected {
        system,
        source,
        app: Arc::new(app),
        token,
        key,
        vendor,
        item,
    }
}

impl Connected {
    pub(crate) fn order(&self, quantity: u32) -> Value {
        json!({"vendor_id": self.vendor, "line_items": [{"item_id": self.item, "quantity": quantity.to_string(), "unit_price": "3.50"}]})
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Res {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.token)
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.app.send(req).await
    }

    /// Creates the source received.
    async fn creates(&self) -> usize {
        let suffix = match self.system {
            System::NetSuite => "/record/v1/purchaseOrder",
            System::SapS4Hana => "/A_PurchaseOrder",
            _ => "/purchaseOrders",
        };
        self.source
            .requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with(suffix))
            })
            .count()
    }
}

const SYSTEMS: [System; 3] = [System::NetSuite, System::SapS4Hana, System::BusinessCentral];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_key_answers_the_same_bytes_and_the_source_gets_one_write() {
    for system in SYSTEMS {
        let c = connect(system).await;
        let post = reqwest::Method::POST;
        let first = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("order-1"),
                &c.order(2),
            )
            .await;
        assert_eq!(first.status, 201, "{system:?}: {}", first.body);
        assert!(first.header("idempotent-replayed").is_none());
        // Readable at once, without a sync.
        let id = first.body["id"].as_str().unwrap().to_string();
        let read = c
            .app
            .get(&c.token, &format!("/v1/purchase-orders/{id}"))
            .await;
        assert_eq!(read.status, 200, "{system:?}: {}", read.body);
        assert_eq!(read.body["remote_id"], first.body["remote_id"]);
        assert_eq!(read.body["line_items"].as_array().map(Vec::len), Some(1));
        let replay = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("order-1"),
                &c.order(2),
            )
            .await;
        assert_eq!(replay.status, 201);
        assert_eq!(replay.text, first.text, "{system:?}: the same bytes");
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(
            c.creates().await,
            1,
            "{system:?}: one write reached the source"
        );
        // The same key with another body.
        let other = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("order-1"),
                &c.order(3),
            )
            .await;
        assert_eq!(
            other.assert_error(422, "IDEMPOTENCY_KEY_REUSED")["param"],
            "Idempotency-Key"
        );
        // A refusal before the source was called keeps the key free for the corrected body.
        let mut bad = c.order(4);
        bad["currency"] = json!("dollars");
        let refused = c
            .send(post.clone(), "/v1/purchase-orders", Some("order-2"), &bad)
            .await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION_ERROR")["param"],
            "currency"
        );
        let fixed = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("order-2"),
                &c.order(4),
            )
            .await;
        assert_eq!(fixed.status, 201, "{system:?}: {}", fixed.body);
        // Updates replay too (new lines: every system updates those).
        let patch =
            json!({"line_items": [{"item_id": c.item, "quantity": "7", "unit_price": "3.50"}]});
        let path = format!("/v1/purchase-orders/{id}");
        let updated = c
            .send(reqwest::Method::PATCH, &path, Some("lines-1"), &patch)
            .await;
        assert_eq!(updated.status, 200, "{system:?}: {}", updated.body);
        // (SAP's emulator keeps the old line beside the new one: the last is the new.)
        let last = |body: &Value| {
            body["line_items"]
                .as_array()
                .and_then(|l| l.last())
                .cloned()
        };
        let quantity = last(&updated.body).unwrap()["quantity"].clone();
        assert_eq!(
            quantity.as_str().map(|q| q.trim_end_matches(".0")),
            Some("7")
        );
        let again = c
            .send(reqwest::Method::PATCH, &path, Some("lines-1"), &patch)
            .await;
        assert_eq!(again.text, updated.text);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        let read = c.app.get(&c.token, &path).await;
        assert_eq!(
            last(&read.body).unwrap()["quantity"],
            quantity,
            "{system:?}: stored at once"
        );
        // Without a key nothing is remembered.
        let plain = c
            .send(post.clone(), "/v1/purchase-orders", None, &c.order(2))
            .await;
        assert_eq!(plain.status, 201);
        assert_eq!(c.creates().await, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_flight_is_a_conflict_and_malformed_keys_are_refused() {
    let c = connect(System::BusinessCentral).await;
    c.source
        .admin("PATCH", "/faults", Some(json!({"latency_ms": 400})))
        .await;
    let order = c.order(5);
    let (a, b) = tokio::join!(
        c.send(
            reqwest::Method::POST,
            "/v1/purchase-orders",
            Some("slow"),
            &order
        ),
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.send(
                reqwest::Method::POST,
                "/v1/purchase-orders",
                Some("slow"),
                &order,
            )
            .await
        }
    );
    assert_eq!(a.status, 201, "{}", a.body);
    b.assert_error(409, "IDEMPOTENCY_KEY_IN_USE");
    assert_eq!(b.header("retry-after"), Some("1"));
    c.source
        .admin("PATCH", "/faults", Some(json!({"latency_ms": 0})))
        .await;
    assert_eq!(c.creates().await, 1);
    for bad in ["", &"k".repeat(256), "has space"] {
        let res = c
            .send(
                reqwest::Method::POST,
                "/v1/purchase-orders",
                Some(bad),
                &order,
            )
            .await;
        assert_eq!(
            res.assert_error(400, "INVALID_REQUEST")["param"],
            "Idempotency-Key",
            "{bad:?}"
        );
    }
}

pub(crate) async fn run_batch(c: &Connected, body: Value) -> (String, Value) {
    let res = c
        .send(reqwest::Method::POST, "/v1/batches", None, &body)
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(res.body["status"], "queued");
    let id = res.body["id"].as_str().unwrap().to_string();
    assert!(
        worker(&c.app).run_once().await.unwrap(),
        "the batch job ran"
    );
    let done = c.app.get(&c.token, &format!("/v1/batches/{id}")).await;
    assert_eq!(done.status, 200);
    (id, done.body)
}

pub(crate) async fn operations(c: &Connected, id: &str, query: &str) -> Vec<Value> {
    let res = c
        .app
        .get(&c.token, &format!("/v1/batches/{id}/operations{query}"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_each_operation_once_with_its_result() {
    for system in SYSTEMS {
        let c = connect(system).await;
        let mut ops: Vec<Value> = (1..=12)
            .map(|q| json!({"action": "create", "entity": "purchase-orders", "data": c.order(q)}))
            .collect();
        // One that the validation refuses, reported like the single write.
        ops.insert(
            5,
            json!({"action": "create", "entity": "purchase-orders", "data": {"vendor_id": "vnd_nope", "line_items": [{"item_id": c.item, "quantity": "1"}]}}),
        );
        let (id, batch) = run_batch(&c, json!({"operations": ops, "batch_size": 4})).await;
        assert_eq!(batch["status"], "completed", "{system:?}: {batch}");
        let failed = operations(&c, &id, "?status=failed").await;
        assert_eq!(batch["succeeded"], 12, "{failed:?}");
        assert_eq!(batch["succeeded"], 12);
        assert_eq!(batch["failed"], 1);
        assert_eq!(batch["pending"], 0);
        assert_eq!(c.creates().await, 12, "{system:?}");
        let failed = operations(&c, &id, "?status=failed").await;
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["index"], 5);
        assert_eq!(failed[0]["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(failed[0]["error"]["param"], "vendor_id");
        let done = operations(&c, &id, "?status=succeeded&page_size=5").await;
        assert_eq!(done.len(), 5);
        // Each written record is stored at once.
        let record_id = done[0]["record_id"].as_str().unwrap();
        assert_eq!(done[0]["record"]["id"], record_id);
        let read = c
            .app
            .get(&c.token, &format!("/v1/purchase-orders/{record_id}"))
            .await;
        assert_eq!(read.status, 200, "{}", read.body);
        let events = c.app.get(&c.key, "/v1/events?type=batch.completed").await;
        assert_eq!(events.status, 200, "{}", events.body);
        let event = &events.body["data"][0];
        assert_eq!(event["data"]["batch_id"], id.as_str());
        assert_eq!(event["data"]["succeeded"], 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stops_at_a_failure_or_a_cancel() {
    let c = connect(System::BusinessCentral).await;
    let bad = json!({"action": "update", "entity": "purchase-orders", "id": "po_missing", "data": {"memo": "x"}});
    let good = json!({"action": "create", "entity": "purchase-orders", "data": c.order(1)});
    let (id, batch) = run_batch(
        &c,
        json!({"operations": [good, bad, good, good], "batch_size": 1, "delay_ms": 250, "on_error": "stop"}),
    )
    .await;
    assert_eq!(batch["status"], "failed", "{batch}");
    assert_eq!(
        (
            batch["succeeded"].as_i64(),
            batch["failed"].as_i64(),
            batch["cancelled"].as_i64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(
        operations(&c, &id, "?status=failed").await[0]["error"]["code"],
        "NOT_FOUND"
    );
    assert_eq!(c.creates().await, 1);

    // Cancelled before it runs: nothing is written.
    let res = c
        .send(
            reqwest::Method::POST,
            "/v1/batches",
            None,
            &json!({"operations": [good, good]}),
        )
        .await;
    let id = res.body["id"].as_str().unwrap().to_string();
    let cancel = c
        .app
        .post(&c.token, &format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    assert_eq!(cancel.body["cancel_requested"], true);
    assert!(worker(&c.app).run_once().await.unwrap());
    let done = c.app.get(&c.token, &format!("/v1/batches/{id}")).await;
    assert_eq!(done.body["status"], "cancelled");
    assert_eq!(done.body["cancelled"], 2);
    assert_eq!(c.creates().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_validated_and_kept_to_their_connection() {
    let c = connect(System::BusinessCentral).await;
    let good = json!({"action": "create", "entity": "purchase-orders", "data": c.order(1)});
    let cases = [
        (json!({"operations": []}), "operations"),
        (json!({"operations": [good], "batch_size": 0}), "batch_size"),
        (
            json!({"operations": [good], "batch_size": 101}),
            "batch_size",
        ),
        (
            json!({"operations": [good], "delay_ms": 600_001}),
            "delay_ms",
        ),
        (
            json!({"operations": [good, {"action": "create", "entity": "widgets", "data": {}}]}),
            "operations[1].entity",
        ),
        (
            json!({"operations": [{"action": "create", "entity": "locations", "data": {}}]}),
            "operations[0].action",
        ),
        (
            json!({"operations": [{"action": "update", "entity": "purchase-orders", "data": {}}]}),
            "operations[0].id",
        ),
    ];
    for (body, param) in cases {
        let res = c
            .send(reqwest::Method::POST, "/v1/batches", None, &body)
            .await;
        assert_eq!(
            res.assert_error(422, "VALIDATION_ERROR")["param"],
            param,
            "{body}"
        );
    }
    let too_many: Vec<Value> = (0..10_001).map(|_| good.clone()).collect();
    let res = c
        .send(
            reqwest::Method::POST,
            "/v1/batches",
            None,
            &json!({"operations": too_many}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "operations"
    );
    // An idempotent batch is queued once.
    let body = json!({"operations": [good]});
    let a = c
        .send(reqwest::Method::POST, "/v1/batches", Some("batch-1"), &body)
        .await;
    let b = c
        .send(reqwest::Method::POST, "/v1/batches", Some("batch-1"), &body)
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(a.text, b.text);
    let listed = c.app.get(&c.token, "/v1/batches").await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    // Another connection of the same organization sees nothing of it.
    let id = a.body["id"].as_str().unwrap();
    let (_, key) = c.app.org(1).await;
    let res = c
        .app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "name": "other"}),
        )
        .await;
    let other = res.body["token"].as_str().unwrap().to_string();
    c.app
        .get(&other, &format!("/v1/batches/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let res = c
        .app
        .get(&c.token, &format!("/v1/batches/{id}/operations?cursor=x"))
        .await;
    res.assert_error(400, "INVALID_CURSOR");
}

/// A create whose answer never came (the source applied it, then held its answer past the
/// API's request timeout, which dropped the request and its process's hold on the key): once
/// the key's lock has run out, the retry with the same key finds the order at the source by
/// the reference the key gave it, answers with it, and writes nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_an_interrupted_write_finds_it_at_the_source() {
    for system in SYSTEMS {
        let c = connect_with(
            system,
            ServerConfig {
                rate_limit_per_second: 0,
                request_timeout: Duration::from_secs(2),
                ..ServerConfig::default()
            },
        )
        .await;
        let path = match system {
            System::NetSuite => "/record/v1/purchaseOrder",
            System::SapS4Hana => "/A_PurchaseOrder",
            _ => "/purchaseOrders",
        };
        c.source
            .admin(
                "PUT",
                "/faults",
                Some(json!({"lose_answer": {"count": 1, "mode": "hang", "duration_ms": 4000, "path_contains": path}})),
            )
            .await;
        let post = reqwest::Method::POST;
        let cut = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("cut-1"),
                &c.order(3),
            )
            .await;
        cut.assert_error(503, "SERVICE_UNAVAILABLE");
        assert_eq!(c.creates().await, 1, "{system:?}");
        // Still held: the same key waits.
        let held = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("cut-1"),
                &c.order(3),
            )
            .await;
        held.assert_error(409, "IDEMPOTENCY_KEY_IN_USE");
        c.app.clock.advance_secs(5);
        let retry = c
            .send(
                post.clone(),
                "/v1/purchase-orders",
                Some("cut-1"),
                &c.order(3),
            )
            .await;
        assert_eq!(retry.status, 201, "{system:?}: {}", retry.body);
        assert_eq!(c.creates().await, 1, "{system:?}: found, not written again");
        let again = c
            .send(post, "/v1/purchase-orders", Some("cut-1"), &c.order(3))
            .await;
        assert_eq!(again.text, retry.text);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        let id = retry.body["id"].as_str().unwrap();
        let read = c
            .app
            .get(&c.token, &format!("/v1/purchase-orders/{id}"))
            .await;
        assert_eq!(read.status, 200, "{system:?}: {}", read.body);
    }
}

/// The path a vendor create is posted to on `system`.
fn vendor_creates(system: System) -> &'static str {
    match system {
        System::NetSuite => "/record/v1/vendor",
        System::SapS4Hana => "/A_BusinessPartner",
        _ => "/vendors",
    }
}

impl Connected {
    async fn vendor_creates(&self) -> usize {
        let suffix = vendor_creates(self.system);
        self.source
            .requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with(suffix))
            })
            .count()
    }
}

/// Vendors and items take the same keys and batches as orders: a replay answers the first
/// vendor byte for byte without a second create, a batch mixes entities, and a vendor create
/// whose answer the source keeps losing (it cannot be looked up by reference) is sent once and
/// its operation fails `OUTCOME_UNKNOWN` after three attempts instead of holding the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_and_items_write_under_keys_and_in_batches() {
    for system in SYSTEMS {
        let c = connect(system).await;
        let post = reqwest::Method::POST;
        let vendor = json!({"name": "Keyed Supplier"});
        let first = c
            .send(post.clone(), "/v1/vendors", Some("vendor-1"), &vendor)
            .await;
        assert_eq!(first.status, 201, "{system:?}: {}", first.body);
        let again = c
            .send(post.clone(), "/v1/vendors", Some("vendor-1"), &vendor)
            .await;
        assert_eq!(again.text, first.text, "{system:?}");
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(c.vendor_creates().await, 1, "{system:?}");
        let id = first.body["id"].as_str().unwrap();
        let read = c.app.get(&c.token, &format!("/v1/vendors/{id}")).await;
        assert_eq!(read.status, 200, "{system:?}: readable at once");
        // Another body under the same key is refused.
        let other = c
            .send(
                post.clone(),
                "/v1/vendors",
                Some("vendor-1"),
                &json!({"name": "Other"}),
            )
            .await;
        other.assert_error(422, "IDEMPOTENCY_KEY_REUSED");

        // A batch of vendors and an order.
        let ops = json!([
            {"action": "create", "entity": "vendors", "data": {"name": "Batch Supplier"}},
            {"action": "update", "entity": "vendors", "id": id, "data": {"name": "Keyed Supplier II"}},
            {"action": "create", "entity": "purchase-orders", "data": c.order(2)},
        ]);
        let (batch_id, batch) = run_batch(&c, json!({"operations": ops})).await;
        let failed = operations(&c, &batch_id, "?status=failed").await;
        assert_eq!(batch["succeeded"], 3, "{system:?}: {failed:?}");
        let done = operations(&c, &batch_id, "").await;
        assert_eq!(done[1]["record"]["name"], "Keyed Supplier II", "{system:?}");
        assert_eq!(c.vendor_creates().await, 2, "{system:?}");

        // Every answer to a vendor create lost at a gateway.
        c.source
            .admin(
                "PUT",
                "/faults",
                Some(json!({"lose_answer": {"count": 10, "mode": "gateway_timeout", "path_contains": vendor_creates(system)}})),
            )
            .await;
        let ops =
            json!([{"action": "create", "entity": "vendors", "data": {"name": "Lost Supplier"}}]);
        let res = c
            .send(
                post.clone(),
                "/v1/batches",
                None,
                &json!({"operations": ops}),
            )
            .await;
        assert_eq!(res.status, 202, "{}", res.body);
        let batch_id = res.body["id"].as_str().unwrap().to_string();
        let mut runs = 0;
        let batch = loop {
            assert!(
                worker(&c.app).run_once().await.unwrap(),
                "{system:?}: the job ran"
            );
            runs += 1;
            let b = c
                .app
                .get(&c.token, &format!("/v1/batches/{batch_id}"))
                .await;
            if b.body["status"] != "running" && b.body["status"] != "queued" {
                break b.body;
            }
            assert!(runs < 5, "{system:?}: the batch never ended: {}", b.body);
            // Past the job's retry delay.
            c.app.clock.advance_secs(3600);
        };
        assert_eq!(runs, 3, "{system:?}");
        assert_eq!(batch["failed"], 1, "{system:?}: {batch}");
        let op = &operations(&c, &batch_id, "").await[0];
        assert_eq!(op["status"], "failed");
        assert_eq!(op["error"]["code"], "OUTCOME_UNKNOWN", "{system:?}: {op}");
        assert_eq!(
            c.vendor_creates().await,
            3,
            "{system:?}: the lost create was sent once, never again"
        );
    }
}
