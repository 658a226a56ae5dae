//! Operations: health, readiness, metrics, headers on every response, graceful shutdown.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use serde_json::json;

use crate::support::TestApp;

/// The `/metrics` text.
async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include `labels`; `None` when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name
            || !labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
    }
    found
}

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

#[tokio::test]
async fn metrics_show_pools_the_job_queue_jobs_and_sync_throughput() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    // The recorder is the process's, shared with the tests running beside this one: its
    // series are compared before and after, and can only have grown more. The store's
    // gauges are this app's own.
    let orders = [("system", "sandbox"), ("entity", "purchase_order")];
    let records =
        |text: &str| sample(text, "ironbridge_sync_records_total", &orders).unwrap_or(0.0);
    let runs = |text: &str, mode: &str| {
        let labels = [orders[0], orders[1], ("mode", mode)];
        sample(text, "ironbridge_sync_run_seconds_count", &labels).unwrap_or(0.0)
    };
    let jobs = |text: &str, outcome: &str| {
        let labels = [("kind", "sync"), ("outcome", outcome)];
        sample(text, "ironbridge_job_duration_seconds_count", &labels).unwrap_or(0.0)
    };
    let waits = |text: &str| {
        sample(
            text,
            "ironbridge_job_queue_wait_seconds_count",
            &[("kind", "sync")],
        )
        .unwrap_or(0.0)
    };
    let queue = |text: &str| {
        ["queued", "due", "running"]
            .map(|g| sample(text, &format!("ironbridge_jobs_{g}"), &[("kind", "sync")]))
    };

    let before = scrape(&app).await;
    assert_eq!(queue(&before), [Some(0.0); 3], "an idle kind reads zero");
    let pools = app.store.pool_stats();
    assert!(!pools.is_empty(), "both stores report their pools");
    for pool in &pools {
        let labels = [("pool", pool.name)];
        assert_eq!(
            sample(&before, "ironbridge_db_pool_max", &labels),
            Some(f64::from(pool.max))
        );
        let open = ["idle", "in_use"].map(|state| {
            let labels = [("pool", pool.name), ("state", state)];
            sample(&before, "ironbridge_db_pool_connections", &labels).unwrap()
        });
        assert!(open[0] + open[1] <= f64::from(pool.max), "{open:?}");
    }

    // The connection's first sync runs before it is answered.
    let (_, token) = app.connection(&key, json!({"purchase_orders": 25})).await;
    let synced = scrape(&app).await;
    assert!(records(&synced) - records(&before) >= 25.0, "{synced}");
    assert!(runs(&synced, "initial") - runs(&before, "initial") >= 1.0);

    let res = app.post(&token, "/v1/sync", json!({})).await;
    assert_eq!(res.status, 202, "{}", res.body);
    app.clock.advance_secs(5);
    let queued = scrape(&app).await;
    assert_eq!(
        queue(&queued),
        [Some(1.0), Some(1.0), Some(0.0)],
        "one sync waits"
    );

    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let worker = Worker::new(
        app.store.clone(),
        app.runtimes.clone(),
        clock,
        WorkerConfig::default(),
    );
    assert!(worker.run_once().await.unwrap());
    let done = scrape(&app).await;
    assert_eq!(queue(&done), [Some(0.0); 3], "the queue is empty again");
    assert!(jobs(&done, "succeeded") - jobs(&queued, "succeeded") >= 1.0);
    assert!(waits(&done) - waits(&queued) >= 1.0);
    assert!(runs(&done, "incremental") - runs(&queued, "incremental") >= 1.0);
    for histogram in [
        "ironbridge_job_duration_seconds",
        "ironbridge_job_queue_wait_seconds",
        "ironbridge_sync_run_seconds",
        "ironbridge_http_request_duration_seconds",
    ] {
        assert!(
            done.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} has buckets:\n{done}"
        );
    }
    assert!(done.contains("# HELP ironbridge_sync_records_total "));
}
