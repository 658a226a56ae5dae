//! Shared machinery, exercised through the NetSuite emulator: seeded data, clock, admin record changes,
//! request log, and every injected fault.

use std::time::{Duration, Instant};

use ironbridge_emulators::common::faults::OfflineMode;
use ironbridge_emulators::{EmulatorConfig, System};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() {
    let a = Ns::new(50).await;
    let b = Ns::new(50).await;
    let other = start_with(EmulatorConfig::new(System::NetSuite, 7, 50)).await;
    let tok = ns_token(&other).await;
    let pa = a
        .get_json("/record/v1/purchaseOrder/17?expandSubResources=true")
        .await;
    let pb = b
        .get_json("/record/v1/purchaseOrder/17?expandSubResources=true")
        .await;
    let strip = |v: &Value| {
        v.to_string()
            .replace(&a.emu.base_url(), "")
            .replace(&b.emu.base_url(), "")
            .replace(&other.base_url(), "")
    };
    assert_eq!(strip(&pa), strip(&pb));
    let po = client()
        .get(format!(
            "{}/services/rest/record/v1/purchaseOrder/17",
            other.base_url()
        ))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_ne!(pa["lastModifiedDate"], po["lastModifiedDate"]);
    // Seeded history lies in the past three years before the clock.
    let info = admin_json(&a.emu, Method::GET, "", None).await;
    assert_eq!(info["counts"]["purchase_orders"], 50);
    assert!(info["counts"]["vendors"].as_u64().unwrap() >= 10);
    let lm = pa["lastModifiedDate"].as_str().unwrap();
    assert!(("2023".."2026-01-01").contains(&lm), "{lm}");
    for e in [a.emu, b.emu, other] {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn clock_can_be_read_set_and_advanced() {
    let emu = netsuite(10).await;
    let c = admin_json(&emu, Method::GET, "/clock", None).await;
    assert_eq!(c["now"], "2026-01-01T00:00:00.000Z");
    let c = admin_json(
        &emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 61})),
    )
    .await;
    assert_eq!(c["now"], "2026-01-01T00:01:01.000Z");
    let c = admin_json(
        &emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2027-05-06T07:08:09Z", "advance_ms": 5})),
    )
    .await;
    // NetSuite's clock keeps whole seconds: the 5 ms are not shown.
    assert_eq!(c["now"], "2027-05-06T07:08:09.000Z");
    // Every answer's Date header is the emulated clock, as a real server's is its own.
    let res = admin(&emu, Method::GET, "/clock", None).await;
    assert_eq!(res.headers()["date"], "Thu, 06 May 2027 07:08:09 GMT");
    assert_eq!(
        admin(
            &emu,
            Method::POST,
            "/clock",
            Some(json!({"set": "yesterday"}))
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        admin(&emu, Method::POST, "/clock", Some(json!({"bogus": 1})))
            .await
            .status(),
        422
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn admin_changes_records_and_bumps_last_modified() {
    let mut ns = Ns::new(10).await;
    ns.clock(json!({"set": "2026-04-01T12:00:00Z"})).await;
    let v = admin_json(
        &ns.emu,
        Method::PATCH,
        "/records/purchase_orders/4",
        Some(json!({"memo": "changed by admin"})),
    )
    .await;
    assert_eq!(v["memo"], "changed by admin");
    let po = ns.get_json("/record/v1/purchaseOrder/4").await;
    assert_eq!(
        (po["memo"].as_str(), po["lastModifiedDate"].as_str()),
        (Some("changed by admin"), Some("2026-04-01T12:00:00Z"))
    );
    let created = admin_json(
        &ns.emu,
        Method::POST,
        "/records/purchase_orders",
        Some(json!({"memo": "new one"})),
    )
    .await;
    assert_eq!(created["id"], 11);
    assert_eq!(created["number"], "PO000011");
    let po = ns.get_json("/record/v1/purchaseOrder/11").await;
    assert_eq!(po["createdDate"], "2026-04-01T12:00:00Z");
    assert_eq!(
        admin(&ns.emu, Method::DELETE, "/records/purchase_orders/11", None)
            .await
            .status(),
        204
    );
    assert_eq!(ns.get("/record/v1/purchaseOrder/11").await.status(), 404);
    assert_eq!(
        admin(&ns.emu, Method::DELETE, "/records/purchase_orders/11", None)
            .await
            .status(),
        404
    );
    assert_eq!(
        admin(
            &ns.emu,
            Method::PATCH,
            "/records/purchase_orders/4",
            Some(json!({"status": "Nope"}))
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        admin(&ns.emu, Method::GET, "/records/widgets/1", None)
            .await
            .status(),
        404
    );
    let v = admin_json(
        &ns.emu,
        Method::PATCH,
        "/records/vendors/3",
        Some(json!({"inactive": true})),
    )
    .await;
    assert_eq!(v["inactive"], true);
    assert_eq!(ns.get_json("/record/v1/vendor/3").await["isInactive"], true);
    let item = admin_json(&ns.emu, Method::GET, "/records/items/2", None).await;
    assert!(item["sku"].as_str().unwrap().starts_with("ITEM-"));
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn request_log_records_headers_and_counts() {
    let ns = Ns::new(10).await;
    admin(&ns.emu, Method::DELETE, "/requests", None).await;
    ns.http
        .patch(ns.url("/record/v1/purchaseOrder/2?replace=item"))
        .bearer_auth(&ns.token)
        .header("If-Match", "abc")
        .header("x-csrf-token", "Fetch")
        .header("Prefer", "transient")
        .json(&json!({"memo": "x"}))
        .send()
        .await
        .unwrap();
    ns.get("/record/v1/vendor").await;
    let log = admin_json(&ns.emu, Method::GET, "/requests", None).await;
    assert_eq!(log["total"], 2);
    let e = &log["entries"][0];
    assert_eq!(e["method"], "PATCH");
    assert_eq!(e["path"], "/services/rest/record/v1/purchaseOrder/2");
    assert_eq!(e["query"], "replace=item");
    assert_eq!(e["auth_scheme"], "Bearer");
    assert_eq!(e["headers"]["if-match"], "abc");
    assert_eq!(e["headers"]["x-csrf-token"], "Fetch");
    assert_eq!(e["headers"]["prefer"], "transient");
    assert_eq!(e["status"], 204);
    assert!(
        !e.to_string().contains(&ns.token),
        "credentials are never logged"
    );
    let since = admin_json(&ns.emu, Method::GET, "/requests?since=1", None).await;
    assert_eq!(since["entries"].as_array().unwrap().len(), 1);
    let counts = admin_json(&ns.emu, Method::GET, "/requests/count", None).await;
    assert_eq!(counts["by_path"]["GET /services/rest/record/v1/vendor"], 1);
    // Admin calls are not counted as upstream calls.
    assert_eq!(counts["total"], 2);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn latency_and_hang_faults() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PUT,
        "/faults",
        Some(json!({"latency_ms": 150})),
    )
    .await;
    let t = Instant::now();
    assert_eq!(ns.get("/record/v1/vendor?limit=1").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    admin_json(
        &ns.emu,
        Method::PUT,
        "/faults",
        Some(json!({"hang": {"count": 1, "duration_ms": 2000}})),
    )
    .await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = quick
        .get(ns.url("/record/v1/vendor"))
        .bearer_auth(&ns.token)
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    // Only the next call hung.
    let r = quick
        .get(ns.url("/record/v1/vendor"))
        .bearer_auth(&ns.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        admin(&ns.emu, Method::DELETE, "/faults", None)
            .await
            .status(),
        204
    );
    assert_eq!(
        admin_json(&ns.emu, Method::GET, "/faults", None).await["latency_ms"],
        0
    );
    ns.emu.shutdown().await;
}

async fn statuses(ns: &Ns, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ns.get("/record/v1/location").await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn error_rate_is_deterministic_for_a_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let ns = Ns::new(10).await;
        admin_json(
            &ns.emu,
            Method::PUT,
            "/faults",
            Some(json!({"error_rate": 0.5})),
        )
        .await;
        runs.push(statuses(&ns, 30).await);
        let r = ns.get("/record/v1/location").await;
        if r.status() == 503 {
            assert_eq!(
                ns_code(&r.json::<Value>().await.unwrap()),
                "UNEXPECTED_ERROR"
            );
        }
        ns.emu.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    let failed = runs[0].iter().filter(|s| **s == 503).count();
    assert!((5..=25).contains(&failed), "{failed} of 30");
    let ns = Ns::new(10).await;
    assert_eq!(
        admin(
            &ns.emu,
            Method::PUT,
            "/faults",
            Some(json!({"error_rate": 1.5}))
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        admin(
            &ns.emu,
            Method::PUT,
            "/faults",
            Some(json!({"error_rate": 1.0, "error_status": 500}))
        )
        .await
        .status(),
        200
    );
    assert_eq!(statuses(&ns, 3).await, vec![500, 500, 500]);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn rate_limit_with_and_without_retry_after() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/faults",
        Some(json!({"rate_limit": {"count": 2, "retry_after_secs": 7}})),
    )
    .await;
    for _ in 0..2 {
        let r = ns.get("/record/v1/location").await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(r.json::<Value>().await.unwrap()["status"], 429);
    }
    assert_eq!(ns.get("/record/v1/location").await.status(), 200);
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/faults",
        Some(json!({"rate_limit": {"count": 1}})),
    )
    .await;
    let r = ns.get("/record/v1/location").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn chosen_error_for_the_next_n_calls() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PUT,
        "/faults",
        Some(json!({"next_errors": {"count": 2, "status": 401, "body": "{\"custom\":true}", "headers": [["www-authenticate", "Bearer x"]]}})),
    )
    .await;
    for _ in 0..2 {
        let r = ns.get("/record/v1/location").await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer x");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"custom": true}));
    }
    assert_eq!(ns.get("/record/v1/location").await.status(), 200);
    assert_eq!(
        admin(
            &ns.emu,
            Method::PUT,
            "/faults",
            Some(json!({"next_errors": {"count": 1, "status": 1000, "body": ""}}))
        )
        .await
        .status(),
        400
    );
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn injected_concurrency_limit() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PUT,
        "/faults",
        Some(json!({"concurrency_limit": 1, "latency_ms": 300})),
    )
    .await;
    let codes: Vec<u16> = ns
        .concurrent_gets("/record/v1/location", 3)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 2, "{codes:?}");
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn offline_refuses_or_resets_connections() {
    let ns = Ns::new(10).await;
    assert_eq!(ns.get("/record/v1/location").await.status(), 200);
    ns.emu.set_offline(OfflineMode::Refuse);
    tokio::task::yield_now().await;
    let fresh = reqwest::Client::new();
    let mut refused = false;
    for _ in 0..50 {
        match fresh
            .get(ns.url("/record/v1/location"))
            .bearer_auth(&ns.token)
            .send()
            .await
        {
            Err(e) if e.is_connect() => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "connect is refused while offline");
    // The kept-alive connection of the earlier client is reset too.
    assert!(
        ns.http
            .get(ns.url("/record/v1/location"))
            .bearer_auth(&ns.token)
            .send()
            .await
            .is_err()
    );
    ns.emu.set_offline(OfflineMode::Online);
    let mut back = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::Client::new()
            .get(ns.url("/record/v1/location"))
            .bearer_auth(&ns.token)
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(back, "back online");

    ns.emu.set_offline(OfflineMode::Reset);
    let r = reqwest::Client::new()
        .get(ns.url("/record/v1/location"))
        .bearer_auth(&ns.token)
        .send()
        .await;
    assert!(r.is_err(), "reset while offline");
    ns.emu.set_offline(OfflineMode::Online);
    let r = reqwest::Client::new()
        .get(ns.url("/record/v1/location"))
        .bearer_auth(&ns.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Through the admin API, with a duration after which it comes back by itself.
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/faults",
        Some(json!({"offline": {"mode": "reset", "duration_ms": 300}})),
    )
    .await;
    // The outage starts just after the admin call has been answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        reqwest::Client::new()
            .get(ns.url("/record/v1/location"))
            .send()
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::Client::new()
        .get(ns.url("/record/v1/location"))
        .bearer_auth(&ns.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn credentials_can_be_revoked_restored_and_rotated() {
    let ns = Ns::new(10).await;
    admin_json(&ns.emu, Method::POST, "/credentials/revoke", None).await;
    let r = ns.get("/record/v1/location").await;
    assert_eq!(r.status(), 401);
    assert_eq!(ns_code(&r.json::<Value>().await.unwrap()), "INVALID_LOGIN");
    admin_json(&ns.emu, Method::POST, "/credentials/restore", None).await;
    assert_eq!(ns.get("/record/v1/location").await.status(), 200);
    let creds = admin_json(&ns.emu, Method::POST, "/credentials/rotate", None).await;
    assert_eq!(creds["generation"], 1);
    assert_eq!(
        creds["tba"]["token_secret"],
        "emulator-token-secret-rotated-1"
    );
    assert_eq!(
        ns.get("/record/v1/location").await.status(),
        401,
        "tokens issued before rotation are dead"
    );
    assert_eq!(
        admin(&ns.emu, Method::POST, "/credentials/explode", None)
            .await
            .status(),
        404
    );
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_settings_errors() {
    let ns = Ns::new(10).await;
    let r = ns.get("/nothing/here").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 404);
    assert_eq!(
        admin(
            &ns.emu,
            Method::PATCH,
            "/settings",
            Some(json!({"no_such_switch": 1}))
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        admin(
            &ns.emu,
            Method::PATCH,
            "/settings",
            Some(json!({"concurrency_limit": 0}))
        )
        .await
        .status(),
        400
    );
    let s = admin_json(&ns.emu, Method::GET, "/settings", None).await;
    assert_eq!(s["concurrency_limit"], 15);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn start_rejects_bad_sizes_and_parses_systems() {
    use std::str::FromStr;
    assert_eq!(System::from_str("netsuite").unwrap(), System::NetSuite);
    assert_eq!(System::from_str("sap").unwrap(), System::SapS4Hana);
    assert_eq!(
        System::from_str("business-central").unwrap(),
        System::BusinessCentral
    );
    assert!(System::from_str("oracle").is_err());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(
        ironbridge_emulators::start(EmulatorConfig::new(System::NetSuite, 1, 0), l)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn hostile_input_gets_errors_not_panics() {
    let mut ns = Ns::new(10).await;
    let r = ns
        .send(
            Method::POST,
            "/record/v1/purchaseOrder",
            json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}, "quantity": 1e30, "rate": 1e300}]}}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = ns.suiteql("SELECT 9223372036854775807 + 1 AS x, -(-9223372036854775807 - 1) AS y FROM transaction WHERE id = 1", 5, 0).await;
    assert_eq!(r.status(), 200);
    for q in [
        "é ON \"1/1/2024\"",
        "id EQUAL ((((",
        "\"",
        "id ANY_OF [",
        "lastModifiedDate AFTER \"99/99/99999\"",
    ] {
        let r = ns
            .get(&format!(
                "/record/v1/purchaseOrder?q={}",
                crate::netsuite::urlencode(q)
            ))
            .await;
        assert_eq!(r.status(), 400, "{q}");
    }
    assert_eq!(
        ns.get("/record/v1/purchaseOrder/%F0%9F%92%A5")
            .await
            .status(),
        404
    );
    // Absurd clock values are clamped, and everything keeps answering.
    admin_json(
        &ns.emu,
        Method::POST,
        "/clock",
        Some(json!({"set_ms": i64::MAX})),
    )
    .await;
    let c = admin_json(&ns.emu, Method::GET, "/clock", None).await;
    assert_eq!(c["now"], "9999-12-31T23:59:59.000Z");
    ns.clock(json!({"set_ms": 1_767_225_600_000i64})).await;
    assert_eq!(
        ns.get("/record/v1/purchaseOrder?limit=1").await.status(),
        200
    );
    // Admin edits with extreme numbers render without overflow.
    admin_json(&ns.emu, Method::PATCH, "/records/purchase_orders/3", Some(json!({"lines": [{"line": 4294967295u32, "item_id": 2, "description": "x", "quantity": i64::MAX, "quantity_received": 0, "quantity_billed": 0, "rate_cents": i64::MAX, "unit": "EA", "expected_receipt": 0, "closed": false, "project_code": ""}]}))).await;
    assert_eq!(
        ns.get("/record/v1/purchaseOrder/3?expandSubResources=true")
            .await
            .status(),
        200
    );
    let r = ns
        .send(
            Method::PATCH,
            "/record/v1/purchaseOrder/3",
            json!({"item": {"items": [{"item": {"id": "3"}}]}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    ns.emu.shutdown().await;

    let sap = start_with(EmulatorConfig::new(System::SapS4Hana, 1, 10)).await;
    let base = format!(
        "{}/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV",
        sap.base_url()
    );
    for path in [
        "/A_PurchaseOrder('%F0%9F%92%A5')",
        "/A_PurchaseOrder(PurchaseOrder='1',X='2')",
        "/A_PurchaseOrder?$filter=%F0%9F%92%A5",
        "/A_PurchaseOrder?$top=99999999999999999999999",
        "/A_PurchaseOrder('4500000001')/to_Nothing",
    ] {
        let r = client()
            .get(format!("{base}{path}"))
            .basic_auth("COMM_USER", Some("Emulator-Pa55word"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    sap.shutdown().await;

    let bc = start_with(EmulatorConfig::new(System::BusinessCentral, 1, 10)).await;
    let r = client()
        .get(format!(
            "{}/v2.0/%F0%9F%92%A5/api/v2.0/companies",
            bc.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    bc.shutdown().await;
}

#[tokio::test]
async fn lost_answers_come_after_the_write_was_applied() {
    let ns = Ns::new(10).await;
    let orders = || async {
        admin_json(&ns.emu, Method::GET, "", None).await["counts"]["purchase_orders"]
            .as_u64()
            .unwrap()
    };
    let create = || {
        ns.http
            .post(ns.url("/record/v1/purchaseOrder"))
            .bearer_auth(&ns.token)
            .json(&json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}, "quantity": 1}]}}))
            .send()
    };
    let emu = &ns.emu;
    let lose = |fault: Value| async move {
        admin_json(
            emu,
            Method::PUT,
            "/faults",
            Some(json!({"lose_answer": fault})),
        )
        .await
    };
    let before = orders().await;

    // Drop: NetSuite's create answers 204 without a body, so the connection closes before
    // the status line; the order exists all the same.
    lose(json!({"count": 1, "mode": "drop", "path_contains": "/record/v1/purchaseOrder"})).await;
    // A read does not match (by default only methods other than GET and HEAD do).
    assert_eq!(
        ns.get("/record/v1/purchaseOrder?limit=1").await.status(),
        200
    );
    assert!(create().await.is_err());
    assert_eq!(orders().await, before + 1);
    // The budget is spent: the next create is answered.
    assert_eq!(create().await.unwrap().status(), 204);
    assert_eq!(orders().await, before + 2);
    let faults = admin_json(&ns.emu, Method::GET, "/faults", None).await;
    assert!(faults["lose_answer"].is_null());

    // Drop of an answer with a body: the status line and part of the body arrive, then the
    // connection closes.
    lose(
        json!({"count": 1, "mode": "drop", "method": "POST", "path_contains": "/query/v1/suiteql"}),
    )
    .await;
    let sent = ns.suiteql("SELECT id FROM location", 5, 0).await;
    assert_eq!(sent.status(), 200);
    assert!(sent.text().await.is_err(), "the body is cut off");

    // A gateway's 504 or 502 replaces the answer of an applied create.
    lose(json!({"count": 1, "mode": "gateway_timeout"})).await;
    let r = create().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.text().await.unwrap(), "504 Gateway Time-out");
    lose(json!({"count": 1, "mode": "bad_gateway", "method": "post"})).await;
    assert_eq!(create().await.unwrap().status(), 502);
    assert_eq!(orders().await, before + 4);

    // Hang: the answer is held back; a client with a shorter timeout gives up after the
    // order was created.
    lose(json!({"count": 1, "mode": "hang", "duration_ms": 2000})).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = quick
        .post(ns.url("/record/v1/purchaseOrder"))
        .bearer_auth(&ns.token)
        .json(&json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}, "quantity": 1}]}}))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(orders().await, before + 5);
    // The log shows every create the emulator received.
    let counts = admin_json(&ns.emu, Method::GET, "/requests/count", None).await;
    assert_eq!(
        counts["by_path"]["POST /services/rest/record/v1/purchaseOrder"],
        5
    );

    // A hang needs its duration; an unknown mode is refused.
    for bad in [
        json!({"lose_answer": {"count": 1, "mode": "hang"}}),
        json!({"lose_answer": {"count": 1, "mode": "explode"}}),
    ] {
        let r = admin(&ns.emu, Method::PUT, "/faults", Some(bad)).await;
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    ns.emu.shutdown().await;
}
