//! Certificates Ironbridge generates for NetSuite's machine-to-machine auth (option A).

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_generated_certificate_is_downloadable_and_its_key_stays_here() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let res = app
        .post(
            &key,
            "/v1/certificates",
            json!({"system": "netsuite", "common_name": "Acme integration"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["id"].as_str().unwrap().to_string();
    let pem = res.body["certificate_pem"].as_str().unwrap().to_string();
    assert!(id.starts_with("crt_") && pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        !res.body.to_string().contains("PRIVATE KEY"),
        "the private key is never returned"
    );
    let days =
        (ironbridge_model::Timestamp::parse_rfc3339(res.body["not_after"].as_str().unwrap())
            .unwrap()
            .micros()
            - ironbridge_model::Timestamp::parse_rfc3339(res.body["not_before"].as_str().unwrap())
                .unwrap()
                .micros())
            / 86_400_000_000;
    assert!(
        (700..=730).contains(&days),
        "valid for at most two years: {days} days"
    );
    let download = app
        .client
        .get(app.url(&format!("/v1/certificates/{id}/certificate.pem")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["content-type"], "application/x-pem-file");
    assert_eq!(download.text().await.unwrap(), pem);
    assert_eq!(
        app.get(&key, &format!("/v1/certificates/{id}")).await.body["certificate_pem"],
        pem.as_str()
    );
    if let Some(bytes) = app.database_bytes() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
            "the private key is stored encrypted"
        );
    }

    let (_, other) = app.org(1).await;
    app.get(&other, &format!("/v1/certificates/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&other, &format!("/v1/certificates/{id}/certificate.pem"))
        .await
        .assert_error(404, "NOT_FOUND");
    let res = app
        .post(
            &other,
            "/v1/connections",
            json!({"system": "netsuite", "credentials": {"ironbridge_certificate": id}}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "credentials.ironbridge_certificate",
        "another tenant's certificate cannot be used"
    );
    let res = app
        .post(&key, "/v1/certificates", json!({"system": "sandbox"}))
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "system");
    let res = app
        .post(
            &key,
            "/v1/certificates",
            json!({"system": "netsuite", "common_name": ""}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "common_name"
    );
    // The limit is 64 characters, as the document's `maxLength` counts them, not bytes.
    let res = app
        .post(
            &key,
            "/v1/certificates",
            json!({"system": "netsuite", "common_name": "é".repeat(65)}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "common_name"
    );
    let res = app
        .post(
            &key,
            "/v1/certificates",
            json!({"system": "netsuite", "common_name": "é".repeat(64)}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
}
