//! `kill -9` of the server while it is delivering webhooks, then a restart: every event
//! still reaches the receiver, and every copy of an event carries the same `webhook-id` and
//! the same body.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::{Running, bin, create_org, free_port, wait_for};

type Seen = Arc<Mutex<HashMap<String, Vec<bytes::Bytes>>>>;

/// A slow receiver, so deliveries are in flight when the process dies.
async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: bytes::Bytes) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(150)).await;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.lock().unwrap().entry(id).or_default().push(body);
    StatusCode::NO_CONTENT
}

fn serve(dir: &std::path::Path, config: &std::path::Path, port: u16) -> Running {
    Running(
        bin()
            .args([
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                dir.to_str().unwrap(),
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn deliveries_killed_with_sigkill_are_completed_after_a_restart_with_the_same_ids() {
    const CONNECTIONS: usize = 30;
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ironbridge.toml");
    // Loopback allowed for the receiver; a short lease so the restarted process takes the
    // dead one's deliveries over quickly.
    std::fs::write(
        &config,
        "[webhooks]\nallowed_networks = [\"127.0.0.1/32\"]\ntimeout_secs = 2\nlease_secs = 3\nretry_schedule_secs = [1, 1, 1, 1, 1]\n",
    )
    .unwrap();
    let key = create_org(
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        100,
    );
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(dir.path(), &config, port);
    wait_for(Duration::from_secs(30), || async {
        client
            .get(format!("{api}/readyz"))
            .send()
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await
    .expect("the server starts");
    let res = client
        .post(format!("{api}/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": receiver}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Each sandbox connection syncs before it answers: one sync.completed event each.
    for i in 0..CONNECTIONS {
        let res = client
            .post(format!("{api}/v1/connections"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"system": "sandbox", "name": format!("ERP {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // Kill -9 while deliveries are under way.
    wait_for(Duration::from_secs(60), || async {
        (seen.lock().unwrap().len() >= 3).then_some(())
    })
    .await
    .expect("deliveries start");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let before_restart = seen.lock().unwrap().len();
    assert!(
        before_restart < CONNECTIONS,
        "killed mid-way ({before_restart} delivered)"
    );

    let _server = serve(dir.path(), &config, port);
    let events: serde_json::Value = wait_for(Duration::from_secs(30), || async {
        client
            .get(format!("{api}/v1/events?type=sync.completed&page_size=500"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
    .await
    .expect("the server restarts");
    let ids: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), CONNECTIONS);
    wait_for(Duration::from_secs(90), || async {
        let seen = seen.lock().unwrap();
        ids.iter().all(|id| seen.contains_key(id)).then_some(())
    })
    .await
    .expect("every event is delivered after the restart");
    let seen = seen.lock().unwrap();
    for id in &ids {
        let copies = &seen[id];
        assert!(
            copies.iter().all(|b| b == &copies[0]),
            "{id}: the same body on every copy"
        );
        let body: serde_json::Value = serde_json::from_slice(&copies[0]).unwrap();
        assert_eq!(body["id"], id.as_str());
    }
}
