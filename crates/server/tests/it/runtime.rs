//! One runtime per connection: the API's writes and the worker's syncs of a connection use
//! the same connector, so the same token, rate budget, concurrency limit and circuit
//! breaker. Against NetSuite's emulator, made to answer 429 beyond the five requests at
//! once a connection may have, a full sync and writes running together never exceed it,
//! and one token request serves the connection check, the syncs and every write.

use std::sync::Arc;

use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig, enqueue_sync};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{TestApp, test_webhook_config};

fn worker(app: &TestApp) -> Worker {
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    )
}

/// The first active record of a list (vendors, items).
async fn active(app: &TestApp, token: &str, path: &str) -> String {
    let (all, _) = app.all(token, path).await;
    all.iter()
        .find(|r| r["status"] == "active")
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no active record in {path}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_and_writes_of_a_connection_share_one_runtime() {
    let ns = Emulated::start(System::NetSuite, 11, 1200).await;
    // The connectors keep the emulator's time (NetSuite refuses assertions from another day).
    let source_clock = ManualClock::new(ns.now());
    let app = TestApp::spawn_systems(
        ServerConfig {
            rate_limit_per_second: 0,
            ..ServerConfig::default()
        },
        test_webhook_config(Arc::default()),
        move |_| {
            ironbridge_engine::registry::builtin_for(
                Arc::new(source_clock),
                ironbridge_core::netguard::Egress::local(),
            )
        },
    )
    .await;
    let (org, key) = app.org(2).await;
    // The connection's limit, enforced: a sixth request in flight is answered 429. The
    // latency keeps requests in flight long enough to overlap.
    let limit = ironbridge_connectors::netsuite::DESCRIPTOR
        .limits
        .concurrency;
    ns.admin(
        "PATCH",
        "/faults",
        Some(json!({"latency_ms": 15, "concurrency_limit": limit})),
    )
    .await;
    let mut settings = ns.settings.clone();
    settings.insert("history_days".into(), json!(3650));
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "netsuite", "settings": settings, "credentials": ns.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let conn = res.body["connection"]["id"].as_str().unwrap().to_string();
    let token = res.body["token"].as_str().unwrap().to_string();
    let w = worker(&app);
    assert!(w.run_once().await.unwrap(), "the initial sync ran");
    let vendor = active(&app, &token, "/v1/vendors?page_size=500").await;
    let item = active(&app, &token, "/v1/items?page_size=500").await;

    // A full sync and eight writes at once.
    let (job, _) = enqueue_sync(
        app.store.as_ref(),
        &app.clock,
        &ironbridge_core::store::OrgId(org),
        &ironbridge_core::store::ConnId(conn),
        true,
        5,
    )
    .await
    .unwrap();
    let sync = tokio::spawn(async move { w.run_once().await.unwrap() });
    let app = Arc::new(app);
    let writes: Vec<_> = (0..8)
        .map(|i| {
            let (app, token) = (app.clone(), token.clone());
            let body = json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": format!("{}", i + 1)}]});
            tokio::spawn(async move { app.post(&token, "/v1/purchase-orders", body).await })
        })
        .collect();
    for write in writes {
        let res = write.await.unwrap();
        assert_eq!(res.status, 201, "{}", res.body);
    }
    assert!(sync.await.unwrap(), "the full sync ran");
    let job = app
        .store
        .get_job(&ironbridge_core::store::OrgId(job.org_id.clone()), &job.id)
        .await
        .unwrap();
    assert_eq!(job.status, "succeeded", "{:?}", job.last_error);

    let requests = ns.requests().await;
    let refused: Vec<&Value> = requests.iter().filter(|r| r["status"] == 429).collect();
    assert!(
        refused.is_empty(),
        "the emulator refused {} requests: the limit was exceeded",
        refused.len()
    );
    let tokens = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/oauth2/v1/token"))
        })
        .count();
    assert_eq!(
        tokens, 1,
        "one token served the check, the syncs and the writes"
    );
    let posts = requests
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/record/v1/purchaseOrder"))
        })
        .count();
    assert_eq!(posts, 8);
}

/// A NetSuite account whose clock runs ten minutes behind ours: the connection's credential
/// check, the worker's sync and `GET /v1/connection` all on Ironbridge's own clock. The
/// assertion refused at first is signed again on the source's clock, the connection stays
/// online, and its health shows the offset the sync measured (null before).
#[tokio::test]
async fn a_source_clock_behind_ours_is_corrected_and_shown_in_the_health() {
    let t0 = ironbridge_model::Timestamp::parse_rfc3339(ironbridge_testkit::app::T0).unwrap();
    let mut config = ironbridge_emulators::EmulatorConfig::new(System::NetSuite, 11, 200);
    config.start_time_ms = t0.micros() / 1000;
    config.clock_offset_secs = -600;
    let ns = Emulated::start_with(config).await;
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "netsuite", "settings": ns.settings, "credentials": ns.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let health = &res.body["connection"]["health"];
    assert_eq!(health["source_clock_offset_ms"], Value::Null, "{health}");
    assert_eq!(health["source_clock_measured_at"], Value::Null);
    let token = res.body["token"].as_str().unwrap().to_string();
    assert!(
        worker(&app).run_once().await.unwrap(),
        "the initial sync ran"
    );
    let res = app.get(&token, "/v1/connection").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "online", "{}", res.body);
    let health = &res.body["health"];
    assert_eq!(
        health["source_clock_offset_ms"],
        json!(-600_000),
        "{health}"
    );
    assert_eq!(
        health["source_clock_measured_at"],
        json!(ironbridge_testkit::app::T0)
    );
    let tokens: Vec<Value> = ns
        .requests()
        .await
        .into_iter()
        .filter(|r| r["path"] == "/services/rest/auth/oauth2/v1/token")
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(
        tokens,
        [json!(400), json!(200)],
        "one refusal, then accepted"
    );
}

/// A create NetSuite applied but whose answer was lost (its gateway answered 504): the API
/// answers `OUTCOME_UNKNOWN` (504) and tells the caller not to resend blindly; the source got
/// the create once, and nothing internal is in the body.
#[tokio::test]
async fn a_write_whose_answer_is_lost_is_answered_outcome_unknown() {
    let ns = Emulated::start(System::NetSuite, 11, 60).await;
    let source_clock = ManualClock::new(ns.now());
    let app = TestApp::spawn_systems(
        ServerConfig::default(),
        test_webhook_config(Arc::default()),
        move |_| {
            ironbridge_engine::registry::builtin_for(
                Arc::new(source_clock),
                ironbridge_core::netguard::Egress::local(),
            )
        },
    )
    .await;
    let (_, key) = app.org(1).await;
    let mut settings = ns.settings.clone();
    settings.insert("history_days".into(), json!(3650));
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "netsuite", "settings": settings, "credentials": ns.credentials}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let token = res.body["token"].as_str().unwrap().to_string();
    assert!(
        worker(&app).run_once().await.unwrap(),
        "the initial sync ran"
    );
    let vendor = active(&app, &token, "/v1/vendors?page_size=500").await;
    let item = active(&app, &token, "/v1/items?page_size=500").await;

    ns.admin(
        "PUT",
        "/faults",
        Some(
            json!({"lose_answer": {"count": 1, "mode": "gateway_timeout",
            "path_contains": "/record/v1/purchaseOrder"}}),
        ),
    )
    .await;
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": 2}]}),
        )
        .await;
    let err = res.assert_error(504, "OUTCOME_UNKNOWN");
    assert_eq!(err["type"], "source_system_error");
    assert_eq!(err["details"]["reason"], "outcome_unknown");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("Idempotency-Key"), "{message}");
    assert!(!message.contains("504"), "no upstream detail: {message}");
    let posts = ns
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/record/v1/purchaseOrder"))
        })
        .count();
    assert_eq!(posts, 1, "the create was not sent again");
}
