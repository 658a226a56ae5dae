//! Guards on what anonymous and untrusted input can make the server do: connections whose
//! hosts are internal addresses (SSRF), refused when made and at every call; anonymous and
//! bad-credential traffic limited per client address; the sandbox's memory bounded.

use std::sync::Arc;

use ironbridge_core::netguard::{Egress, NetworkPolicy};
use ironbridge_emulators::System;
use ironbridge_server::ServerConfig;
use ironbridge_testkit::app::{FakeDns, TestApp, test_webhook_config};
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

/// An app whose connections reach what `policy` allows, resolving names through `dns`.
async fn app_with(policy: NetworkPolicy, dns: Arc<FakeDns>) -> TestApp {
    TestApp::spawn_systems(
        ServerConfig {
            rate_limit_per_second: 0,
            ..ServerConfig::default()
        },
        test_webhook_config(dns.clone()),
        move |clock| {
            ironbridge_engine::registry::builtin_for(clock, Egress::new(policy).with_resolver(dns))
        },
    )
    .await
}

fn sap(base_url: &str, credentials: Value) -> Value {
    json!({"system": "sap_s4hana", "name": "SAP", "settings": {"base_url": base_url},
        "credentials": credentials})
}

#[tokio::test]
async fn connections_to_internal_addresses_are_refused_when_made() {
    let dns = Arc::new(FakeDns::default());
    dns.script("erp.internal.example", &[&["10.0.0.7"]]);
    dns.script("mixed.example.com", &[&["93.184.216.34", "127.0.0.1"]]);
    let app = app_with(NetworkPolicy::default(), dns).await;
    let (_, key) = app.org(10).await;
    let basic = json!({"username": "u", "password": "p"});
    for base_url in [
        "http://127.0.0.1:8080",
        "http://10.1.2.3",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]",
        "http://2130706433",
        "http://0177.0.0.1",
        "http://0x7f.1",
        "https://erp.internal.example",
        "https://mixed.example.com",
    ] {
        let res = app
            .post(&key, "/v1/connections", sap(base_url, basic.clone()))
            .await;
        let err = res.assert_error(422, "VALIDATION_ERROR");
        assert_eq!(err["param"], "settings.base_url", "{base_url}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("connections.allowed_private_networks"),
            "{err}"
        );
    }
    // A URL in the credentials (SAP's token endpoint) is checked the same way.
    let oauth = json!({"client_id": "c", "client_secret": "s",
        "token_url": "http://169.254.169.254/token"});
    let res = app
        .post(&key, "/v1/connections", sap("https://93.184.216.34", oauth))
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "credentials.token_url"
    );
    // Business Central's login endpoint too.
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "business_central", "settings": {"tenant_id": "t",
                "environment": "Production", "login_url": "http://192.168.1.1"},
                "credentials": {"client_id": "c", "client_secret": "s"}}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "settings.login_url"
    );
    // A name that does not resolve is refused clearly too.
    let res = app
        .post(
            &key,
            "/v1/connections",
            sap("https://nowhere.example", basic),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "settings.base_url"
    );
    // No credit was taken by any of them.
    let org = app.get(&key, "/v1/organization").await;
    assert_eq!(org.body["connection_credits"]["used"], 0, "{}", org.body);
}

#[tokio::test]
async fn allow_listed_networks_and_hosts_are_reached_and_rebinding_is_refused() {
    let sap_emulator = Emulated::start(System::SapS4Hana, 5, 10).await;
    let port = sap_emulator
        .emulator
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let credentials = Value::Object(sap_emulator.credentials.clone());
    let dns = Arc::new(FakeDns::default());
    dns.script("sap.internal.example", &[&["127.0.0.1"]]);
    dns.script("other.internal.example", &[&["127.0.0.1"]]);
    // Public when the connection is made, loopback when the connector connects.
    dns.script("rebind.example.com", &[&["93.184.216.34"], &["127.0.0.1"]]);
    let app = app_with(NetworkPolicy::parse(["sap.internal.example"]).unwrap(), dns).await;
    let (_, key) = app.org(10).await;
    let connect = |host: &str| {
        let mut body = sap(&format!("http://{host}:{port}"), credentials.clone());
        body["settings"]["sap_client"] = json!("100");
        body
    };
    // The operator vouched for this name: it is reached although it resolves to loopback.
    let res = app
        .post(&key, "/v1/connections", connect("sap.internal.example"))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    // Another name on the same address, and the address itself, are not.
    for host in ["other.internal.example", "127.0.0.1"] {
        let res = app.post(&key, "/v1/connections", connect(host)).await;
        assert_eq!(
            res.assert_error(422, "VALIDATION_ERROR")["param"],
            "settings.base_url",
            "{host}"
        );
    }
    // DNS rebinding: the check when the connection is made sees a public address, the
    // connector's own resolution at connect time sees loopback and refuses to connect.
    let res = app
        .post(&key, "/v1/connections", connect("rebind.example.com"))
        .await;
    res.assert_error(503, "SERVICE_UNAVAILABLE");

    // An allow-listed network.
    let dns = Arc::new(FakeDns::default());
    let app = app_with(NetworkPolicy::parse(["127.0.0.0/8"]).unwrap(), dns).await;
    let (_, key) = app.org(10).await;
    let res = app
        .post(&key, "/v1/connections", connect("127.0.0.1"))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
}

/// An app limiting anonymous traffic to 60 a minute, 5 at once, behind `trusted` proxies.
async fn limited_app(trusted: &[&str]) -> TestApp {
    TestApp::spawn_with(ServerConfig {
        rate_limit_per_second: 0,
        anonymous_per_minute: 60,
        anonymous_burst: 5,
        trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        ..ServerConfig::default()
    })
    .await
}

/// A request as the client at `addr`, by way of the test's loopback "proxy".
fn from(app: &TestApp, addr: &str, token: &str, path: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .header("x-forwarded-for", addr)
}

#[tokio::test]
async fn bad_credentials_are_limited_per_client_address() {
    let app = limited_app(&["127.0.0.1/32"]).await;
    let (_, key) = app.org(1).await;
    let bad = "ibk_not-a-real-key";
    for _ in 0..5 {
        let res = app
            .send(from(&app, "203.0.113.9", bad, "/v1/organization"))
            .await;
        res.assert_error(401, "AUTHENTICATION_FAILED");
    }
    let res = app
        .send(from(&app, "203.0.113.9", bad, "/v1/organization"))
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(res.header("retry-after"), Some("1"));
    // No credential at all counts the same, and so do unauthenticated routes.
    let res = app
        .send(
            app.client
                .get(app.url("/v1/organization"))
                .header("x-forwarded-for", "203.0.113.9"),
        )
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
    let res = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-forwarded-for", "203.0.113.9"),
        )
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
    // Another address is not affected.
    let res = app
        .send(from(&app, "198.51.100.7", bad, "/v1/organization"))
        .await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
    // A valid key is never slowed by failures, its own address's included.
    for addr in ["203.0.113.9", "198.51.100.7", "192.0.2.44"] {
        let res = app.send(from(&app, addr, &key, "/v1/organization")).await;
        assert_eq!(res.status, 200, "{addr}: {}", res.body);
    }
    // The limit refills with time (the injected clock): one a second.
    app.clock.advance_secs(1);
    let res = app
        .send(from(&app, "203.0.113.9", bad, "/v1/organization"))
        .await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
    let res = app
        .send(from(&app, "203.0.113.9", bad, "/v1/organization"))
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn forwarded_addresses_are_honoured_only_from_a_trusted_proxy() {
    // No trusted proxy: the peer (loopback) is the client, whatever the headers say.
    let app = limited_app(&[]).await;
    for i in 0..5 {
        let res = app
            .send(from(
                &app,
                &format!("198.51.100.{i}"),
                "bad",
                "/v1/organization",
            ))
            .await;
        res.assert_error(401, "AUTHENTICATION_FAILED");
    }
    let res = app
        .send(from(&app, "198.51.100.99", "bad", "/v1/organization"))
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");

    // Behind a trusted proxy: the right-most address it did not add itself. What the client
    // writes to the left cannot give it a fresh budget.
    let app = limited_app(&["127.0.0.1/32"]).await;
    for i in 0..5 {
        let chain = format!("10.9.9.{i}, 203.0.113.50");
        let res = app
            .send(from(&app, &chain, "bad", "/v1/organization"))
            .await;
        res.assert_error(401, "AUTHENTICATION_FAILED");
    }
    let res = app
        .send(from(
            &app,
            "10.9.9.200, 203.0.113.50",
            "bad",
            "/v1/organization",
        ))
        .await;
    res.assert_error(429, "RATE_LIMIT_EXCEEDED");
    // The standard `Forwarded` header is read too.
    let res = app
        .send(
            app.client
                .get(app.url("/v1/organization"))
                .bearer_auth("bad")
                .header("forwarded", r#"for="[2001:db8:cafe::17]:4711""#),
        )
        .await;
    res.assert_error(401, "AUTHENTICATION_FAILED");
}

#[tokio::test]
async fn the_sandbox_cache_stays_bounded_across_create_and_disconnect() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(40).await;
    for seed in 7_000..7_012u64 {
        let (id, _) = app
            .connection(&key, json!({"seed": seed, "purchase_orders": 2_000}))
            .await;
        let res = app
            .post(&key, &format!("/v1/connections/{id}/disconnect"), json!({}))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let held = ironbridge_core::sandbox::cache_use();
        assert!(
            held.datasets <= ironbridge_core::sandbox::DATASETS_KEPT
                && held.purchase_orders <= ironbridge_core::sandbox::ORDERS_KEPT,
            "{held:?}"
        );
    }
}
