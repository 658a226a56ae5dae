//! Secrets never reach the database in clear, nor a log line, nor a response.

use serde_json::json;

use crate::support::{TestApp, logs};

#[tokio::test]
async fn credentials_and_tokens_are_absent_from_the_database_and_logs() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let credential = "sandbox-password-7f3a9c1e";
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "credentials": {"api_key": credential}}),
        )
        .await;
    assert_eq!(res.status, 201);
    let token = res.body["token"].as_str().unwrap().to_string();
    let id = res.body["connection"]["id"].as_str().unwrap().to_string();
    assert!(
        !res.body.to_string().contains(credential),
        "credentials are never returned"
    );
    // Use every credential a few times, including failures, so they would have been logged.
    app.get(&token, "/v1/purchase-orders").await;
    app.get(&key, &format!("/v1/connections/{id}")).await;
    app.get(&format!("{token}x"), "/v1/purchase-orders").await;
    app.post(
        &key,
        &format!("/v1/connections/{id}/reconnect"),
        json!({"credentials": {"api_key": credential}}),
    )
    .await;
    let log = logs();
    assert!(log.contains(&id), "the logs do record activity");
    for secret in [credential, token.as_str(), key.as_str()] {
        assert!(!log.contains(secret), "a secret reached the logs");
    }
    if let Some(bytes) = app.database_bytes() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(&id), "the database file was read");
        for secret in [credential, token.as_str(), key.as_str()] {
            assert!(!text.contains(secret), "a secret is stored in clear");
        }
    }
    // Same through SQL on either backend: the stored credentials are ciphertext.
    let conn = app
        .store
        .get_connection(
            &ironbridge_core::store::OrgId(
                app.get(&key, "/v1/organization").await.body["id"]
                    .as_str()
                    .unwrap()
                    .into(),
            ),
            &ironbridge_core::store::ConnId(id),
        )
        .await
        .unwrap();
    let stored = conn.credentials.clone().unwrap();
    assert!(stored.starts_with("v1.") && !stored.contains(credential));
    assert!(
        !format!("{conn:?}").contains(&stored),
        "Debug output hides the ciphertext too"
    );
}

#[tokio::test]
async fn webhook_secrets_are_encrypted_at_rest_and_never_logged() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    // A receiver-less endpoint on loopback: the attempts fail, and failures are logged.
    let chosen = ironbridge_core::webhooks::Secret::generate().expose();
    let res = app
        .post(
            &key,
            "/v1/webhook-endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "secret": chosen}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["endpoint"]["id"].as_str().unwrap().to_string();
    app.post(&key, &format!("/v1/webhook-endpoints/{id}/test"), json!({}))
        .await;
    let rotated = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{id}/secret/rotate"),
            json!({}),
        )
        .await;
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    app.post(&key, &format!("/v1/webhook-endpoints/{id}/test"), json!({}))
        .await;
    let body_of = |s: &str| s.trim_start_matches("whsec_").to_string();
    let log = logs();
    assert!(
        log.contains(&id) || log.contains("webhook"),
        "activity is logged"
    );
    for secret in [&chosen, &new] {
        assert!(
            !log.contains(&body_of(secret)),
            "a webhook secret reached the logs"
        );
    }
    if let Some(bytes) = app.database_bytes() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(&id), "the database file was read");
        for secret in [&chosen, &new] {
            assert!(
                !text.contains(&body_of(secret)),
                "a webhook secret is stored in clear"
            );
        }
    }
    let stored = app
        .store
        .get_webhook_endpoint(&ironbridge_core::store::OrgId(org), &id)
        .await
        .unwrap();
    assert!(stored.secret.starts_with("v1.") && stored.previous_secret.is_some());
    assert!(!format!("{stored:?}").contains(&stored.secret));
    // The list and read answers never carry a secret.
    let one = app.get(&key, &format!("/v1/webhook-endpoints/{id}")).await;
    assert!(!one.body.to_string().contains(&body_of(&new)));
}
