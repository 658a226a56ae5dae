//! One tenant can never see or change another's objects: every route with an id answers 404
//! for another organization's id, and nothing changes.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn every_route_with_an_id_hides_other_tenants() {
    let app = TestApp::spawn().await;
    let (_, key_a) = app.org(3).await;
    let (_, key_b) = app.org(3).await;
    let (conn_a, token_a) = app.connection(&key_a, json!({})).await;
    let (_, token_b) = app.connection(&key_b, json!({})).await;
    let key_id_a = app.get(&key_a, "/v1/api-keys").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let po_a = app
        .get(&token_a, "/v1/purchase-orders?page_size=1")
        .await
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vendor_a = app.get(&token_a, "/v1/vendors?page_size=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let item_a = app.get(&token_a, "/v1/items?page_size=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let loc_a = app.get(&token_a, "/v1/locations?page_size=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&app, &key_a, &token_a, &conn_a).await;

    // Organization B's admin key on A's ids.
    app.get(&key_b, &format!("/v1/connections/{conn_a}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post(
        &key_b,
        &format!("/v1/connections/{conn_a}/disconnect"),
        json!({}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.post(
        &key_b,
        &format!("/v1/connections/{conn_a}/reconnect"),
        json!({}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.delete(&key_b, &format!("/v1/connections/{conn_a}/data"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&key_b, &format!("/v1/api-keys/{key_id_a}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let res = app
        .send(
            app.client
                .get(app.url("/v1/purchase-orders"))
                .bearer_auth(&key_b)
                .header("X-Connection-Id", &conn_a),
        )
        .await;
    res.assert_error(404, "NOT_FOUND");
    // Organization B's connection token on A's records.
    for path in [
        format!("/v1/purchase-orders/{po_a}"),
        format!("/v1/vendors/{vendor_a}"),
        format!("/v1/items/{item_a}"),
        format!("/v1/locations/{loc_a}"),
    ] {
        app.get(&token_b, &path)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    app.patch(
        &token_b,
        &format!("/v1/purchase-orders/{po_a}"),
        json!({"memo": "hijack"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // Lists never show the other tenant's objects.
    let listed = app.get(&key_b, "/v1/connections").await;
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != conn_a.as_str())
    );

    assert_eq!(
        snapshot(&app, &key_a, &token_a, &conn_a).await,
        before,
        "nothing of A changed"
    );
    assert_eq!(app.get(&token_a, "/v1/connection").await.status, 200);
    assert_eq!(app.get(&key_a, "/v1/organization").await.status, 200);
}

async fn snapshot(
    app: &TestApp,
    key: &str,
    token: &str,
    conn: &str,
) -> (
    serde_json::Value,
    serde_json::Value,
    (Vec<serde_json::Value>, u64),
) {
    (
        app.get(key, &format!("/v1/connections/{conn}")).await.body,
        app.get(key, "/v1/api-keys").await.body,
        app.all(token, "/v1/purchase-orders?page_size=200").await,
    )
}
