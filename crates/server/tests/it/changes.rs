//! `GET /v1/changes`: the connection's change feed over HTTP: every record once, rendered as
//! the record routes render it, updates moved to the end, deletions as tombstones, a cursor
//! that can be polled forever, structured refusals, and tenancy.

use ironbridge_core::Clock;
use ironbridge_core::store::{ConnId, PageWrite, RecordUpsert};
use ironbridge_model::Entity;
use serde_json::{Value, json};

use crate::support::TestApp;

/// Follows the feed from `cursor` to its end; the items and the cursor to poll from.
pub(crate) async fn walk(
    app: &TestApp,
    token: &str,
    query: &str,
    cursor: Option<String>,
) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut cursor = cursor;
    loop {
        let mut path = format!("/v1/changes?page_size=7{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let res = app.get(token, &path).await;
        assert_eq!(res.status, 200, "{}", res.body);
        let page = res.body["data"].as_array().unwrap().clone();
        let next = res.body["next_cursor"]
            .as_str()
            .expect("next_cursor on every page")
            .to_string();
        cursor = Some(next.clone());
        if page.is_empty() {
            return (items, next);
        }
        items.extend(page);
    }
}

#[tokio::test]
async fn the_change_feed_serves_every_change_once_from_a_cursor_kept_forever() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 12})).await;
    let (all, end) = walk(&app, &token, "", None).await;
    let (pos, _) = app.all(&token, "/v1/purchase-orders").await;
    let (vendors, _) = app.all(&token, "/v1/vendors").await;
    assert!(all.len() >= pos.len() + vendors.len(), "{}", all.len());
    let mut ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no repeat");
    for c in &all {
        assert_eq!(c["change"], "created", "{c}");
        assert_eq!(c["tombstone"], Value::Null);
    }
    // Items are the records as their own route renders them.
    let po = pos[0]["id"].as_str().unwrap();
    let item = all.iter().find(|c| c["id"] == po).unwrap();
    assert_eq!(item["entity"], "purchase_order");
    let one = app.get(&token, &format!("/v1/purchase-orders/{po}")).await;
    assert_eq!(item["record"], one.body);
    // The end is a place to wait: polling it again answers an empty page and a cursor.
    let (none, again) = walk(&app, &token, "", Some(end.clone())).await;
    assert!(none.is_empty());
    assert!(!again.is_empty());

    // An update (written as a sync page would) and a deletion reported by the source.
    let c = ConnId(conn.clone());
    let stored = app
        .store
        .get_record(&c, Entity::PURCHASE_ORDER, po, true)
        .await
        .unwrap()
        .unwrap();
    let mut data: Value = serde_json::from_str(&stored.data).unwrap();
    data["memo"] = json!("changed at the source");
    let gone = pos[1]["id"].as_str().unwrap().to_string();
    app.store
        .write_page(
            &c,
            &PageWrite {
                entity: Entity::PURCHASE_ORDER,
                records: vec![RecordUpsert {
                    id: stored.id.clone(),
                    remote_id: stored.remote_id.clone(),
                    data: data.to_string(),
                    raw: stored.raw.clone().unwrap().into(),
                    content_hash: "changed".into(),
                    remote_created_at: stored.remote_created_at,
                    remote_updated_at: stored.remote_updated_at,
                    remote_was_deleted: false,
                }],
                checkpoint: None,
                now: app.clock.now(),
                seen_run: None,
                deleted: vec![gone.clone()],
                closed: Vec::new(),
                skipped: 0,
                bases: Vec::new(),
                points: Vec::new(),
            },
        )
        .await
        .unwrap();
    let (news, _) = walk(&app, &token, "", Some(end.clone())).await;
    assert_eq!(news.len(), 2, "{news:?}");
    let updated = news.iter().find(|c| c["id"] == po).unwrap();
    assert_eq!(updated["change"], "updated");
    assert_eq!(updated["record"]["memo"], "changed at the source");
    let deleted = news.iter().find(|c| c["id"] == gone.as_str()).unwrap();
    assert_eq!(deleted["change"], "deleted");
    assert_eq!(deleted["record"], Value::Null);
    assert_eq!(deleted["tombstone"]["remote_id"], pos[1]["remote_id"]);
    assert!(updated["seq"].as_i64().unwrap() > item["seq"].as_i64().unwrap());
    // From the start, the updated order is found once, at its new place.
    let (again, _) = walk(&app, &token, "", None).await;
    assert_eq!(again.len(), all.len());
    assert_eq!(again.iter().filter(|c| c["id"] == po).count(), 1);
    assert_eq!(again.last().unwrap()["seq"], updated["seq"]);

    // One entity's feed, by name or path; its cursors are its own.
    let (orders, order_end) = walk(&app, &token, "&entity=purchase-orders", None).await;
    assert_eq!(orders.len(), pos.len());
    assert!(orders.iter().all(|c| c["entity"] == "purchase_order"));
    let (same, _) = walk(&app, &token, "&entity=purchase_order", None).await;
    assert_eq!(same.len(), orders.len());
    let res = app
        .get(&token, &format!("/v1/changes?cursor={order_end}"))
        .await;
    assert_eq!(res.assert_error(400, "INVALID_CURSOR")["param"], "cursor");
    let res = app.get(&token, "/v1/changes?cursor=garbage").await;
    assert_eq!(res.assert_error(400, "INVALID_CURSOR")["param"], "cursor");
    let res = app.get(&token, "/v1/changes?entity=orders").await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "entity");
    let res = app.get(&token, "/v1/changes?entity=vehicle_location").await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "entity");
    let res = app.get(&token, "/v1/changes?page_size=1001").await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "page_size"
    );

    // Tenancy: another organization's connection reads its own feed only; its admin key
    // cannot name this connection, nor can its cursors be used here.
    let (_, key_b) = app.org(3).await;
    let (_, token_b) = app.connection(&key_b, json!({"purchase_orders": 2})).await;
    let (theirs, their_end) = walk(&app, &token_b, "", None).await;
    assert!(
        theirs
            .iter()
            .all(|c| !ids.contains(&c["id"].as_str().unwrap()))
    );
    let res = app
        .send(
            app.client
                .get(app.url("/v1/changes"))
                .bearer_auth(&key_b)
                .header("X-Connection-Id", &conn),
        )
        .await;
    res.assert_error(404, "NOT_FOUND");
    let res = app
        .get(&token, &format!("/v1/changes?cursor={their_end}"))
        .await;
    res.assert_error(400, "INVALID_CURSOR");
}
