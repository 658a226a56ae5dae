//! Cursor pagination: complete, without repeats, while records change underneath.

use ironbridge_core::crypto::sha256_hex;
use ironbridge_core::ids::record_id;
use ironbridge_core::store::{ConnId, PageWrite, RecordUpsert};
use ironbridge_model::Entity;
use serde_json::json;
use std::collections::HashSet;

use crate::support::TestApp;

fn record(conn: &str, remote_id: &str, version: u32, deleted: bool) -> RecordUpsert {
    let data = json!({"number": format!("PO-{remote_id}"), "status": "approved", "custom_fields": {}, "line_items": [], "v": version}).to_string();
    RecordUpsert {
        id: record_id(conn, Entity::PURCHASE_ORDER, remote_id),
        remote_id: remote_id.to_string(),
        raw: json!({"poId": remote_id, "v": version}).to_string().into(),
        content_hash: sha256_hex(format!("{remote_id}:{version}:{deleted}").as_bytes()),
        data,
        remote_created_at: None,
        remote_updated_at: None,
        remote_was_deleted: deleted,
    }
}

#[tokio::test]
async fn pages_never_repeat_or_miss_while_records_change() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 300})).await;
    let initial: HashSet<String> = app
        .all(&token, "/v1/purchase-orders?page_size=200")
        .await
        .0
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(initial.len(), 300);
    let cid = ConnId(conn.clone());
    let mut seen = Vec::new();
    let mut deleted = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut round = 0u32;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/purchase-orders?page_size=23&cursor={c}"),
            None => "/v1/purchase-orders?page_size=23".into(),
        };
        let res = app.get(&token, &path).await;
        assert_eq!(res.status, 200, "{}", res.body);
        seen.extend(
            res.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_string()),
        );
        // Between pages another sync inserts, updates and deletes records.
        round += 1;
        app.clock.advance_secs(1);
        let victim = format!("{}", 100_001 + (round * 37) % 300);
        deleted.insert(record_id(&conn, Entity::PURCHASE_ORDER, &victim));
        let page = PageWrite {
            entity: Entity::PURCHASE_ORDER,
            records: vec![
                record(&conn, &format!("new-{round}"), 1, false),
                record(
                    &conn,
                    &format!("{}", 100_001 + (round * 11) % 300),
                    round,
                    false,
                ),
                record(&conn, &victim, round, true),
            ],
            checkpoint: None,
            seen_run: None,
            deleted: Vec::new(),
            closed: Vec::new(),
            skipped: 0,
            bases: Vec::new(),
            points: Vec::new(),
            now: ironbridge_core::Clock::now(&app.clock),
        };
        app.store
            .start_sync(&cid, Entity::PURCHASE_ORDER, page.now)
            .await
            .unwrap();
        app.store.write_page(&cid, &page).await.unwrap();
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record was returned twice");
    for id in initial.iter().filter(|id| !deleted.contains(*id)) {
        assert!(
            unique.contains(id),
            "{id} existed throughout and was missed"
        );
    }
}
