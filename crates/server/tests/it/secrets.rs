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
