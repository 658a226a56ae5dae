//! Every error code, with its status, body shape and request id.

use ironbridge_model::ErrorCode;
use ironbridge_server::ServerConfig;
use serde_json::json;

use crate::support::TestApp;

async fn app_with_connection() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, token) = app.connection(&key, json!({})).await;
    (app, key, token)
}

#[tokio::test]
async fn invalid_request_names_the_parameter() {
    let (app, key, token) = app_with_connection().await;
    let res = app.get(&token, "/v1/purchase-orders?page_size=abc").await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "page_size"
    );
    let res = app.get(&token, "/v1/purchase-orders?page_size=201").await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "page_size"
    );
    let res = app.get(&token, "/v1/vendors?colour=red").await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "colour");
    let res = app
        .get(&token, "/v1/vendors?modified_after=yesterday")
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "modified_after"
    );
    let res = app
        .get(
            &token,
            "/v1/vendors?modified_after=2026-02-01T00:00:00Z&modified_before=2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "modified_after"
    );
    let res = app
        .send(
            app.client
                .post(app.url("/v1/connections"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{\"system\": "),
        )
        .await;
    let err = res.assert_error(400, "INVALID_REQUEST");
    assert!(err["message"].as_str().unwrap().contains("not valid JSON"));
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "name": 7}),
        )
        .await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "name");
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "colour": "red"}),
        )
        .await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "colour");
    let res = app
        .post(&key, "/v1/connections", json!({"system": "oracle-ebs"}))
        .await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "system");
    let res = app.post(&token, "/v1/purchase-orders", json!({"vendor_id": "vnd_x", "line_items": [{"item_id": "itm_x", "quantity": "1", "colour": 1}]})).await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "line_items[0].colour"
    );
    let res = app
        .send(
            app.client
                .post(app.url("/v1/connections"))
                .bearer_auth(&key)
                .json(&json!([1, 2])),
        )
        .await;
    res.assert_error(400, "INVALID_REQUEST");
    let res = app
        .send(
            app.client
                .get(app.url("/v1/purchase-orders"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "X-Connection-Id"
    );
}

#[tokio::test]
async fn cursors_cannot_be_altered_or_reused_elsewhere() {
    let (app, key, token) = app_with_connection().await;
    let (_, other_token) = app.connection(&key, json!({})).await;
    let page = app.get(&token, "/v1/purchase-orders?page_size=5").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let mut tampered = cursor.clone();
    tampered.insert(3, 'x');
    let res = app
        .get(&token, &format!("/v1/purchase-orders?cursor={tampered}"))
        .await;
    assert_eq!(res.assert_error(400, "INVALID_CURSOR")["param"], "cursor");
    let res = app
        .get(
            &other_token,
            &format!("/v1/purchase-orders?cursor={cursor}"),
        )
        .await;
    res.assert_error(400, "INVALID_CURSOR");
    let res = app
        .get(&token, &format!("/v1/vendors?cursor={cursor}"))
        .await;
    res.assert_error(400, "INVALID_CURSOR");
    let res = app
        .get(
            &token,
            &format!("/v1/purchase-orders?include_deleted=true&cursor={cursor}"),
        )
        .await;
    res.assert_error(400, "INVALID_CURSOR");
    // The same cursor with another page size is fine.
    let res = app
        .get(
            &token,
            &format!("/v1/purchase-orders?page_size=7&cursor={cursor}"),
        )
        .await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn unknown_versions_are_refused_and_the_current_one_is_accepted() {
    let (app, _, token) = app_with_connection().await;
    let res = app
        .send(
            app.client
                .get(app.url("/v1/vendors"))
                .bearer_auth(&token)
                .header("Ironbridge-Version", "2019-01-01"),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "UNSUPPORTED_API_VERSION")["param"],
        "Ironbridge-Version"
    );
    let res = app
        .send(
            app.client
                .get(app.url("/v1/vendors"))
                .bearer_auth(&token)
                .header("Ironbridge-Version", "2026-11-23"),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("ironbridge-version"), Some("2026-11-23"));
}

#[tokio::test]
async fn validation_errors_name_missing_read_only_and_bad_fields() {
    let (app, key, token) = app_with_connection().await;
    let res = app
        .post(&token, "/v1/purchase-orders", json!({"line_items": []}))
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "vendor_id"
    );
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": "vnd_x", "total_amount": "5", "line_items": []}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "total_amount");
    assert!(err["message"].as_str().unwrap().contains("read-only"));
    let res = app.post(&token, "/v1/purchase-orders", json!({"vendor_id": "vnd_x", "line_items": [{"item_id": "itm_x", "quantity": "1", "quantity_received": "1"}]})).await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "line_items[0].quantity_received"
    );
    let res = app.post(&token, "/v1/purchase-orders", json!({"vendor_id": "vnd_unknown", "line_items": [{"item_id": "itm_x", "quantity": "1"}]})).await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "vendor_id"
    );
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": "itm_x", "line_items": [{"item_id": "itm_x", "quantity": "1"}]}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "vendor_id"
    );
    let vendor = app.get(&token, "/v1/vendors?page_size=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": vendor, "line_items": []}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "line_items"
    );
    let res = app.post(&token, "/v1/purchase-orders", json!({"vendor_id": vendor, "order_date": "31/12/2026", "line_items": [{"item_id": "itm_x", "quantity": "1"}]})).await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "order_date"
    );
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "settings": {"purchase_orders": 0}}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "settings.purchase_orders"
    );
    for bad in [json!(0), json!(3651), json!("90"), json!(1.5)] {
        let res = app
            .post(
                &key,
                "/v1/connections",
                json!({"system": "sandbox", "settings": {"history_days": bad}}),
            )
            .await;
        assert_eq!(
            res.assert_error(422, "VALIDATION_ERROR")["param"],
            "settings.history_days",
            "{bad}"
        );
    }
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "credentials": {"api_key": "revoked"}}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "credentials"
    );
    let res = app.post(&key, "/v1/api-keys", json!({"name": "  "})).await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "name");
}

#[tokio::test]
async fn authentication_failures_explain_and_challenge() {
    let (app, key, token) = app_with_connection().await;
    let res = app.send(app.client.get(app.url("/v1/vendors"))).await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="ironbridge""#)
    );
    let res = app
        .send(
            app.client
                .get(app.url("/v1/vendors"))
                .header("Authorization", format!("Basic {token}")),
        )
        .await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
    assert!(
        res.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    for bad in [
        "ibc_not-a-real-token",
        "ibk_not-a-real-key",
        "sk_live_something",
    ] {
        app.get(bad, "/v1/vendors")
            .await
            .assert_error(401, "AUTHENTICATION_FAILED");
    }
    let created = app
        .post(&key, "/v1/api-keys", json!({"name": "temp"}))
        .await;
    let temp = created.body["key"].as_str().unwrap().to_string();
    assert_eq!(app.get(&temp, "/v1/organization").await.status, 200);
    let id = created.body["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&key, &format!("/v1/api-keys/{id}")).await.status,
        200
    );
    let res = app.get(&temp, "/v1/organization").await;
    assert!(
        res.assert_error(401, "AUTHENTICATION_FAILED")["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn connection_tokens_may_not_manage() {
    let (app, _, token) = app_with_connection().await;
    for path in ["/v1/connections", "/v1/organization", "/v1/api-keys"] {
        app.get(&token, path)
            .await
            .assert_error(403, "PERMISSION_DENIED");
    }
    app.post(&token, "/v1/connections", json!({"system": "sandbox"}))
        .await
        .assert_error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn unknown_routes_records_and_methods() {
    let (app, _, token) = app_with_connection().await;
    app.get(&token, "/v1/nothing-here")
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&token, "/v1/purchase-orders/po_doesnotexist")
        .await
        .assert_error(404, "NOT_FOUND");
    app.patch(
        &token,
        "/v1/purchase-orders/po_doesnotexist",
        json!({"memo": "x"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.delete(&token, "/v1/vendors")
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn conflicts_and_credits() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    let (id, _) = app.connection(&key, json!({})).await;
    let res = app
        .post(&key, "/v1/connections", json!({"system": "sandbox"}))
        .await;
    res.assert_error(409, "CONNECTION_CREDITS_EXHAUSTED");
    app.delete(&key, &format!("/v1/connections/{id}/data"))
        .await
        .assert_error(409, "CONFLICT");
    assert_eq!(
        app.post(&key, &format!("/v1/connections/{id}/disconnect"), json!({}))
            .await
            .status,
        200
    );
    app.post(&key, &format!("/v1/connections/{id}/disconnect"), json!({}))
        .await
        .assert_error(409, "CONFLICT");
    let res = app.get(&key, "/v1/organization").await;
    assert_eq!(
        res.body["connection_credits"],
        json!({"total": 1, "used": 0, "available": 1})
    );
    // The returned credit can be used again.
    app.connection(&key, json!({})).await;
}

#[tokio::test]
async fn source_system_rules_and_states() {
    let (app, _, token) = app_with_connection().await;
    let vendors = app.all(&token, "/v1/vendors?page_size=100").await.0;
    let blocked = vendors.iter().find(|v| v["status"] == "inactive").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let active = vendors.iter().find(|v| v["status"] == "active").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = app.all(&token, "/v1/items?page_size=100").await.0;
    let in_stock = items
        .iter()
        .find(|i| i["item_type"] == "inventory" && i["quantity_available"] != "0")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out_of_stock = items
        .iter()
        .find(|i| i["quantity_available"] == "0" && i["status"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": blocked, "line_items": [{"item_id": in_stock, "quantity": 2}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("vendor_id"), Some("INVALID_VENDOR"))
    );
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": active, "line_items": [{"item_id": out_of_stock, "quantity": 2}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(err["details"]["remote_code"], "ITEM_OUT_OF_STOCK");
    assert_eq!(err["param"], "line_items[0].item_id");
    let orders = app.all(&token, "/v1/purchase-orders?page_size=200").await.0;
    let completed = orders.iter().find(|o| o["status"] == "completed").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .patch(
            &token,
            &format!("/v1/purchase-orders/{completed}"),
            json!({"memo": "late change"}),
        )
        .await;
    assert_eq!(
        res.assert_error(409, "STATE_CONFLICT")["details"]["remote_code"],
        "PO_CLOSED"
    );
    let res = app
        .patch(
            &token,
            &format!("/v1/purchase-orders/{completed}"),
            json!({"vendor_id": active}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "vendor_id");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot be changed after creation")
    );
}

#[tokio::test]
async fn bodies_must_be_small_json() {
    let app = TestApp::spawn_with(ServerConfig {
        rate_limit_per_second: 0,
        max_body_bytes: 2048,
        ..ServerConfig::default()
    })
    .await;
    let (_, key) = app.org(5).await;
    let big = json!({"system": "sandbox", "name": "x".repeat(4096)});
    app.post(&key, "/v1/connections", big)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    let res = app
        .send(
            app.client
                .post(app.url("/v1/connections"))
                .bearer_auth(&key)
                .header("content-type", "text/plain")
                .body("system=sandbox"),
        )
        .await;
    assert_eq!(
        res.assert_error(415, "UNSUPPORTED_MEDIA_TYPE")["param"],
        "Content-Type"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = TestApp::spawn_with(ServerConfig {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        ..ServerConfig::default()
    })
    .await;
    let (_, key) = app.org(5).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let res = app.get(&key, "/v1/organization").await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("ratelimit-limit"), Some("3"));
        remaining.push(res.header("ratelimit-remaining").unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let res = app.get(&key, "/v1/organization").await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(res.header("retry-after"), Some("1"));
    // Another credential has its own budget.
    let (_, other) = app.org(5).await;
    assert_eq!(app.get(&other, "/v1/organization").await.status, 200);
    // Time passes (injected clock), the budget refills.
    app.clock.advance_secs(1);
    assert_eq!(app.get(&key, "/v1/organization").await.status, 200);
}

#[tokio::test]
async fn internal_errors_show_nothing_internal() {
    let (app, _, token) = app_with_connection().await;
    app.raw_sql("UPDATE records SET data = 'not json at all' WHERE entity = 'vendor'")
        .await;
    let res = app.get(&token, "/v1/vendors").await;
    let err = res.assert_error(500, "INTERNAL_ERROR");
    let text = res.body.to_string();
    assert!(
        !text.contains("json") && !text.contains("stored") && !text.contains("records"),
        "{text}"
    );
    assert!(err["message"].as_str().unwrap().contains("request_id"));
}

#[tokio::test]
async fn an_unreachable_database_answers_503() {
    let (app, _, token) = app_with_connection().await;
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        200
    );
    app.close_database().await;
    let res = app.get(&token, "/v1/vendors").await;
    res.assert_error(503, "SERVICE_UNAVAILABLE");
    assert!(res.header("retry-after").is_some());
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        503
    );
    assert_eq!(
        app.send(app.client.get(app.url("/healthz"))).await.status,
        200
    );
}

#[test]
fn every_code_is_documented_in_errors_md() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"))
        .expect("docs/errors.md");
    for code in ErrorCode::ALL {
        let row = doc
            .lines()
            .find(|l| l.contains(&format!("`{}`", code.as_str())))
            .unwrap_or_else(|| panic!("{code} missing from docs/errors.md"));
        assert!(
            row.contains(&code.status().to_string()),
            "{code}: status missing in {row}"
        );
    }
}

/// No response carries the database's own text: a uniqueness rule the schema does not name
/// for callers, and a failing statement, are answered 500 with the generic message, while
/// the log keeps the cause.
#[tokio::test]
async fn database_failures_never_reach_a_response_body() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    // An index only the database knows about: the second key of the same name breaks it.
    app.raw_sql("CREATE UNIQUE INDEX ib_test_key_names ON api_keys (name)")
        .await;
    let first = app
        .post(&key, "/v1/api-keys", json!({"name": "billing"}))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let res = app
        .post(&key, "/v1/api-keys", json!({"name": "billing"}))
        .await;
    let err = res.assert_error(500, "INTERNAL_ERROR").clone();
    let request_id = err["request_id"].as_str().unwrap().to_string();
    // A statement that fails outright: its table is gone.
    app.raw_sql("DROP TABLE certificates").await;
    let res = app.get(&key, "/v1/certificates/crt_missing").await;
    res.assert_error(500, "INTERNAL_ERROR");
    for body in [err.to_string(), res.body.to_string()] {
        for leak in [
            "ib_test_key_names",
            "UNIQUE",
            "unique",
            "duplicate",
            "certificates",
            "no such table",
            "does not exist",
            "api_keys",
            "sqlx",
        ] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
    // The log line of the request names the cause.
    let logs = crate::support::logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&request_id))
        .expect("the failure is logged with its request id");
    assert!(
        line.contains("ib_test_key_names") || line.contains("UNIQUE constraint failed"),
        "{line}"
    );
}
