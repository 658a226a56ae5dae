//! The newcomer's path from the README: connect a sandbox, read, write, disconnect, reconnect.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn connect_read_write_disconnect_reconnect() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    let res = app.post(&key, "/v1/connections", json!({"system": "sandbox", "name": "Acme ERP", "end_user": {"id": "cust-1", "name": "Acme"}, "credentials": {"api_key": "sandbox-secret"}})).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let conn = res.body["connection"].clone();
    let token = res.body["token"].as_str().unwrap().to_string();
    let id = conn["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("ibc_") && token.len() > 40);
    assert_eq!(conn["token_prefix"].as_str().unwrap(), &token[..8]);
    assert_eq!(conn["status"], "online");
    assert_eq!(conn["end_user"]["id"], "cust-1");
    assert!(conn.get("credentials").is_none());
    let po_sync = conn["sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["entity"] == "purchase_order")
        .unwrap();
    assert_eq!(
        (po_sync["status"].as_str(), po_sync["record_count"].as_i64()),
        (Some("succeeded"), Some(120))
    );
    assert!(conn["health"]["last_successful_call_at"].is_string());
    assert_eq!(
        app.get(&token, "/v1/connection").await.body["id"],
        id.as_str()
    );
    assert_eq!(
        app.get(&key, &format!("/v1/connections/{id}")).await.body["id"],
        id.as_str()
    );
    let listed = app.get(&key, "/v1/connections").await;
    assert_eq!(listed.body["total_count"], 1);
    assert_eq!(
        app.get(&key, "/v1/organization").await.body["id"],
        org.as_str()
    );

    // Read: every order once, count equal to total_count; every status present.
    let (orders, total) = app
        .all(
            &token,
            "/v1/purchase-orders?page_size=25&include_total=true",
        )
        .await;
    assert_eq!((orders.len() as u64, total), (120, 120));
    for status in [
        "draft",
        "pending_approval",
        "approved",
        "partially_received",
        "completed",
        "cancelled",
        "unknown",
    ] {
        assert!(orders.iter().any(|o| o["status"] == status), "{status}");
    }
    assert!(orders.iter().any(|o| {
        o["custom_fields"]
            .as_object()
            .is_some_and(|c| !c.is_empty())
    }));
    let one = &orders[0];
    assert!(one.get("remote_data").is_none());
    let po_id = one["id"].as_str().unwrap().to_string();
    let full = app
        .get(
            &token,
            &format!("/v1/purchase-orders/{po_id}?include_remote_data=true"),
        )
        .await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body["remote_data"]["poId"], one["remote_id"]);
    assert_eq!(full.body["line_items"], one["line_items"]);
    let vendor = app
        .get(
            &token,
            &format!("/v1/vendors/{}", one["vendor_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(vendor.status, 200, "references resolve to records");
    for path in [
        "/v1/vendors?include_total=true",
        "/v1/items?include_total=true",
        "/v1/locations?include_total=true",
    ] {
        let (rows, total) = app.all(&token, path).await;
        assert_eq!(rows.len() as u64, total);
        assert!(total > 0);
    }

    // Write: the sandbox answers like a real ERP and changes nothing.
    let vendor_id = app
        .all(&token, "/v1/vendors")
        .await
        .0
        .iter()
        .find(|v| v["status"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let item = app
        .all(&token, "/v1/items")
        .await
        .0
        .into_iter()
        .find(|i| i["item_type"] == "inventory" && i["quantity_available"] != "0")
        .unwrap();
    let before = app.all(&token, "/v1/purchase-orders?page_size=200").await.0;
    let res = app.post(&token, "/v1/purchase-orders", json!({"vendor_id": vendor_id, "memo": "Rush", "custom_fields": {"projectCode": "PRJ-9"},
        "line_items": [{"item_id": item["id"], "quantity": "4", "unit_price": "10.25"}]})).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["status"], "draft");
    assert_eq!(res.body["vendor_id"], vendor_id.as_str());
    assert_eq!(res.body["line_items"][0]["total_amount"], "41");
    assert_eq!(res.body["custom_fields"]["projectCode"], "PRJ-9");
    assert!(res.body["id"].as_str().unwrap().starts_with("po_"));
    let draft = before.iter().find(|o| o["status"] == "draft").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .patch(
            &token,
            &format!("/v1/purchase-orders/{draft}"),
            json!({"memo": "Updated"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.body["memo"].as_str(), res.body["id"].as_str()),
        (Some("Updated"), Some(draft.as_str()))
    );
    let after = app.all(&token, "/v1/purchase-orders?page_size=200").await.0;
    assert_eq!(before, after, "writes to a sandbox change nothing");

    // Disconnect: the token is refused at once; the data stays for the organization.
    let res = app
        .post(&key, &format!("/v1/connections/{id}/disconnect"), json!({}))
        .await;
    assert_eq!(
        (res.status, res.body["status"].as_str()),
        (200, Some("disconnected"))
    );
    let res = app.get(&token, "/v1/purchase-orders").await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
    let via_admin = app
        .send(
            app.client
                .get(app.url("/v1/purchase-orders?page_size=1&include_total=true"))
                .bearer_auth(&key)
                .header("X-Connection-Id", &id),
        )
        .await;
    assert_eq!(
        (via_admin.status, via_admin.body["total_count"].as_u64()),
        (200, Some(120))
    );
    let write = app.send(app.client.post(app.url("/v1/purchase-orders")).bearer_auth(&key).header("X-Connection-Id", &id).json(&json!({"vendor_id": vendor_id, "line_items": [{"item_id": item["id"], "quantity": 1}]}))).await;
    write.assert_error(409, "CONFLICT");

    // Reconnect: a new connection and token; the old one points to it.
    let res = app
        .post(&key, &format!("/v1/connections/{id}/reconnect"), json!({}))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let new_token = res.body["token"].as_str().unwrap().to_string();
    let new_id = res.body["connection"]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(res.body["connection"]["replaces"], id.as_str());
    assert_eq!(
        app.get(&key, &format!("/v1/connections/{id}")).await.body["replaced_by"],
        new_id.as_str()
    );
    assert_eq!(
        app.get(
            &new_token,
            "/v1/purchase-orders?page_size=1&include_total=true"
        )
        .await
        .body["total_count"],
        120
    );
    app.get(&token, "/v1/connection")
        .await
        .assert_error(401, "AUTHENTICATION_FAILED");
    app.post(&key, &format!("/v1/connections/{id}/reconnect"), json!({}))
        .await
        .assert_error(409, "CONFLICT");

    // Delete the old connection's history.
    let res = app
        .delete(&key, &format!("/v1/connections/{id}/data"))
        .await;
    assert_eq!(
        (res.status, res.body["deleted_records"].as_u64()),
        (200, Some(178))
    );
    let via_admin = app
        .send(
            app.client
                .get(app.url("/v1/purchase-orders?include_total=true"))
                .bearer_auth(&key)
                .header("X-Connection-Id", &id),
        )
        .await;
    assert_eq!(via_admin.body["total_count"], 0);
}

#[tokio::test]
async fn filters_by_modification_and_deletion() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (_, token) = app.connection(&key, json!({"purchase_orders": 30})).await;
    let (all, _) = app.all(&token, "/v1/purchase-orders").await;
    let first = all[0]["modified_at"].as_str().unwrap().to_string();
    let res = app
        .get(
            &token,
            &format!("/v1/purchase-orders?modified_after={first}&include_total=true"),
        )
        .await;
    assert_eq!(
        res.body["total_count"], 0,
        "everything was stored at the same instant"
    );
    let res = app.get(&token, "/v1/purchase-orders?modified_after=2020-01-01T00:00:00Z&modified_before=2100-01-01T00:00:00Z&include_total=true").await;
    assert_eq!(res.body["total_count"], 30);
    app.raw_sql("UPDATE records SET remote_was_deleted = TRUE WHERE entity = 'purchase_order' AND remote_id = '100001'").await;
    assert_eq!(
        app.get(&token, "/v1/purchase-orders?include_total=true")
            .await
            .body["total_count"],
        29
    );
    let res = app
        .get(
            &token,
            "/v1/purchase-orders?include_deleted=true&page_size=200&include_total=true",
        )
        .await;
    assert_eq!(res.body["total_count"], 30);
    assert!(
        res.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["remote_was_deleted"] == true)
    );
}

#[tokio::test]
async fn lists_count_only_when_asked_and_change_filters_page_in_change_order() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (_, token) = app.connection(&key, json!({"purchase_orders": 30})).await;
    let page = app.get(&token, "/v1/purchase-orders?page_size=5").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body["total_count"].is_null(), "no count unless asked");
    let counted = app
        .get(&token, "/v1/purchase-orders?page_size=5&include_total=true")
        .await;
    assert_eq!(counted.body["total_count"], 30);
    // An id-order cursor is not a change-order position.
    let id_cursor = page.body["next_cursor"].as_str().unwrap();
    app.get(
        &token,
        &format!("/v1/purchase-orders?modified_after=2020-01-01T00:00:00Z&cursor={id_cursor}"),
    )
    .await
    .assert_error(400, "INVALID_CURSOR");
    // Change order: (modified_at, id), every record once, walking with the cursors.
    let (rows, _) = app
        .all(
            &token,
            "/v1/purchase-orders?modified_after=2020-01-01T00:00:00Z&page_size=7",
        )
        .await;
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["modified_at"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "ordered by modified_at then id, no repeats");
    assert_eq!(keys.len(), 30);
}
