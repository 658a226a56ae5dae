//! On-demand syncs through the API, run by a worker, and the events API that reports them.

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use serde_json::json;

use crate::support::TestApp;

fn worker(app: &TestApp) -> Worker {
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    )
}

#[tokio::test]
async fn a_requested_sync_is_queued_once_run_by_a_worker_and_reported() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 20})).await;
    let (_, other_token) = app.connection(&key, json!({})).await;

    let res = app.post(&token, "/v1/sync", json!({"full": true})).await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(
        (
            res.body["already_queued"].as_bool(),
            res.body["job"]["status"].as_str(),
            res.body["job"]["full"].as_bool()
        ),
        (Some(false), Some("queued"), Some(true))
    );
    let job = res.body["job"]["id"].as_str().unwrap().to_string();
    let again = app
        .send(app.client.post(app.url("/v1/sync")).bearer_auth(&token))
        .await;
    assert_eq!(
        (again.status, again.body["already_queued"].as_bool()),
        (202, Some(true))
    );
    assert_eq!(again.body["job"]["id"], job.as_str());
    app.get(&other_token, &format!("/v1/sync/jobs/{job}"))
        .await
        .assert_error(404, "NOT_FOUND");

    assert!(worker(&app).run_once().await.unwrap());
    let done = app.get(&token, &format!("/v1/sync/jobs/{job}")).await;
    assert_eq!(
        (
            done.status,
            done.body["status"].as_str(),
            done.body["attempts"].as_i64()
        ),
        (200, Some("succeeded"), Some(1))
    );

    let events = app
        .get(
            &key,
            &format!("/v1/events?connection_id={conn}&type=sync.completed"),
        )
        .await;
    assert_eq!(events.status, 200, "{}", events.body);
    let list = events.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 2, "the initial sync and the requested one");
    assert_eq!(
        (list[0]["type"].as_str(), list[0]["connection_id"].as_str()),
        (Some("sync.completed"), Some(conn.as_str()))
    );
    assert_eq!(list[0]["data"]["records_added"], 20 + 12 + 40 + 6);
    assert_eq!(list[1]["data"]["records_added"], 0);
    assert!(list[1]["timestamp"].is_string());

    // Polling from the last cursor returns nothing new, then what happens next.
    let cursor = events.body["next_cursor"].as_str().unwrap().to_string();
    let empty = app
        .get(
            &key,
            &format!("/v1/events?connection_id={conn}&type=sync.completed&cursor={cursor}"),
        )
        .await;
    assert_eq!(empty.body["data"].as_array().unwrap().len(), 0);
    assert_eq!(empty.body["next_cursor"], cursor.as_str());
    app.post(
        &key,
        &format!("/v1/connections/{conn}/disconnect"),
        json!({}),
    )
    .await;
    let all = app
        .get(&key, &format!("/v1/events?connection_id={conn}"))
        .await;
    let types: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.last(), Some(&"connection.disconnected"));
    app.get(
        &key,
        &format!("/v1/events?type=sync.completed&cursor={cursor}"),
    )
    .await
    .assert_error(400, "INVALID_CURSOR");

    // A disconnected connection cannot be synced; events are for admin keys only.
    let res = app
        .send(
            app.client
                .post(app.url("/v1/sync"))
                .bearer_auth(&key)
                .header("X-Connection-Id", &conn),
        )
        .await;
    res.assert_error(409, "CONFLICT");
    app.get(&other_token, "/v1/events")
        .await
        .assert_error(403, "PERMISSION_DENIED");
    app.get(&key, "/v1/events?page_size=0")
        .await
        .assert_error(400, "INVALID_REQUEST");
    let (_, key_b) = app.org(1).await;
    assert_eq!(
        app.get(&key_b, "/v1/events").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "other tenants see nothing"
    );
}
