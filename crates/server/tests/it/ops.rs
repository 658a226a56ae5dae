//! Operations: health, readiness, metrics, headers on every response, graceful shutdown.

use std::collections::HashSet;

use crate::support::TestApp;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let res = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!((res.status, res.body["status"].as_str()), (200, Some("ok")));
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        200
    );
    let (_, key) = app.org(1).await;
    app.get(&key, "/v1/organization").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ironbridge_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/v1/organization""#));
}

#[tokio::test]
async fn every_response_carries_a_unique_request_id_and_the_version() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    let mut ids = HashSet::new();
    for path in [
        "/healthz",
        "/v1/organization",
        "/v1/missing",
        "/openapi.json",
    ] {
        let res = app.get(&key, path).await;
        assert_eq!(
            res.header("ironbridge-version"),
            Some("2026-11-23"),
            "{path}"
        );
        assert!(
            ids.insert(res.header("x-request-id").unwrap().to_string()),
            "request ids repeat"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_the_server_and_readiness_reports_it() {
    let mut app = TestApp::spawn().await;
    app.shutdown.cancel();
    let server = app.server.take().unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "the server stops cleanly");
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn the_capability_matrix_lists_every_system() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    let res = app.get(&key, "/v1/systems").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let systems = res.body["data"].as_array().unwrap();
    let sandbox = systems.iter().find(|s| s["system"] == "sandbox").unwrap();
    let po = sandbox["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "purchase_order")
        .unwrap();
    assert_eq!(
        (
            po["read"].as_bool(),
            po["create"].as_bool(),
            po["incremental"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(systems.len(), ironbridge_engine::registry::BUILTIN.len());
}
