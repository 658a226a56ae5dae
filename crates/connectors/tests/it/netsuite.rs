//! The NetSuite connector against the NetSuite emulator: M2M auth with a generated and a
//! supplied key, token reuse, keyset reads (full, windowed, ties across pages), retries on
//! injected 429/5xx, writes and their errors, and the default mappings.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_connectors::netsuite::{self, generate_certificate};
use ironbridge_connectors::sleeper::RecordingSleeper;
use ironbridge_core::connector::{
    Connector, ConnectorError, PurchaseOrderLineWrite, PurchaseOrderUpdate, PurchaseOrderWrite,
    PurchaseOrderWrites, ReadWindow,
};
use ironbridge_core::unified::check_mapped;
use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

const CLIENT_ID: &str = "ib-client";
const START_SECS: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, the emulator's default start.

pub(crate) struct Env {
    pub(crate) emu: RunningEmulator,
    clock: ManualClock,
    sleeper: RecordingSleeper,
    http: reqwest::Client,
}

pub(crate) async fn start(orders: u64) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu =
        ironbridge_emulators::start(EmulatorConfig::new(System::NetSuite, 7, orders), listener)
            .await
            .unwrap();
    let clock = ManualClock::new(Timestamp::from_secs(START_SECS));
    Env {
        emu,
        sleeper: RecordingSleeper::new(clock.clone()),
        clock,
        http: reqwest::Client::new(),
    }
}

impl Env {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/__emulator{path}", self.emu.base_url());
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "admin {path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn register(&self, certificate_id: &str, certificate_pem: &str) {
        self.admin(
            reqwest::Method::POST,
            "/netsuite/m2m-clients",
            Some(json!({"client_id": CLIENT_ID, "certificate_id": certificate_id, "certificate_pem": certificate_pem})),
        )
        .await;
    }

    /// Option A: a generated certificate, registered like a customer's upload.
    pub(crate) async fn generated_credentials(&self) -> Map<String, Value> {
        let cert =
            generate_certificate("Ironbridge test", Timestamp::from_secs(START_SECS)).unwrap();
        self.register("cert-generated", &cert.certificate_pem).await;
        credentials("cert-generated", &cert.private_key_pem)
    }

    pub(crate) fn connector(&self, credentials: &Map<String, Value>) -> Arc<dyn Connector> {
        let settings = json!({"base_url": self.emu.base_url()});
        netsuite::DESCRIPTOR
            .connect(
                settings.as_object().unwrap(),
                Some(credentials),
                Arc::new(self.clock.clone()),
                Arc::new(self.sleeper.clone()),
                ironbridge_core::netguard::Egress::local(),
            )
            .unwrap()
    }

    async fn count(&self, key: &str) -> u64 {
        let counts = self
            .admin(reqwest::Method::GET, "/requests/count", None)
            .await;
        counts["by_path"][key].as_u64().unwrap_or(0)
    }

    async fn info(&self) -> Value {
        self.admin(reqwest::Method::GET, "", None).await
    }
}

fn credentials(certificate_id: &str, key_pem: &str) -> Map<String, Value> {
    json!({"account_id": "1234567_SB1", "client_id": CLIENT_ID, "certificate_id": certificate_id, "private_key_pem": key_pem})
        .as_object()
        .unwrap()
        .clone()
}

async fn read_all(c: &dyn Connector, entity: Entity, window: &ReadWindow) -> Vec<Value> {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = c
            .fetch_page(entity, window, cursor.as_deref())
            .await
            .unwrap();
        out.extend(page.parsed().unwrap());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("paging did not end");
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_unique(records: &[Value]) {
    let all = ids(records);
    let set: HashSet<&String> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "a record was read twice");
}

fn decode(entity: Entity, raw: &Value) {
    let def = netsuite::DESCRIPTOR
        .mapping(entity)
        .expect("a NetSuite mapping");
    let mapped = def.apply("conn_test", raw).unwrap();
    check_mapped(entity, &mapped).unwrap_or_else(|e| panic!("{entity}: {e} in {raw}"));
}

#[tokio::test]
async fn generated_certificate_authenticates_reuses_the_token_and_reads_everything() {
    let env = start(250).await;
    let creds = env.generated_credentials().await;
    let c = env.connector(&creds);
    assert_eq!(c.descriptor().id, netsuite::ID);
    c.check().await.unwrap();
    let info = env.info().await;
    for entity in netsuite::DESCRIPTOR.readable() {
        let records = read_all(c.as_ref(), entity, &ReadWindow::ALL).await;
        assert_unique(&records);
        // The emulator counts records by the entity's plural.
        let key = entity.spec().plural;
        let expected = info["counts"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no count for {key} in {info}"));
        assert_eq!(records.len() as u64, expected, "{entity}");
        for raw in &records {
            decode(entity, raw);
        }
        if entity == Entity::PURCHASE_ORDER {
            assert!(
                records
                    .iter()
                    .all(|r| !r["lines"].as_array().unwrap().is_empty())
            );
            let statuses: HashSet<&str> = records
                .iter()
                .filter_map(|r| r["orderStatus"].as_str())
                .collect();
            assert_eq!(
                statuses.len(),
                8,
                "every PurchOrd status appears: {statuses:?}"
            );
        }
    }
    // Every SuiteQL call asks for a transient result set, with a bearer token.
    let log = env.admin(reqwest::Method::GET, "/requests", None).await;
    let suiteql: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/services/rest/query/v1/suiteql")
        .collect();
    assert!(!suiteql.is_empty());
    for e in suiteql {
        assert_eq!(e["headers"]["prefer"], "transient", "{e}");
        assert_eq!(
            e["auth_scheme"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("bearer"),
            "{e}"
        );
    }
    // One token for the whole run: the cache is reused.
    assert_eq!(
        env.count("POST /services/rest/auth/oauth2/v1/token").await,
        1
    );
    assert!(c.source_time().await.unwrap().is_some());
}

#[tokio::test]
async fn a_supplied_pkcs1_key_authenticates() {
    let env = start(20).await;
    env.register(
        "cert-customer",
        include_str!("fixtures/netsuite_customer_cert.pem"),
    )
    .await;
    let creds = credentials(
        "cert-customer",
        include_str!("fixtures/netsuite_customer_key_pkcs1.pem"),
    );
    let c = env.connector(&creds);
    c.check().await.unwrap();
    let vendors = read_all(c.as_ref(), Entity::LOCATION, &ReadWindow::ALL).await;
    assert!(!vendors.is_empty());
}

/// A customer's own EC key, on each curve NetSuite takes: the connector signs with the
/// curve's algorithm (ES512 for P-521, which jsonwebtoken cannot sign) and reads.
#[tokio::test]
async fn supplied_ec_keys_sign_es256_es384_and_es512_assertions() {
    let env = start(20).await;
    for (i, alg) in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ECDSA_P521_SHA512,
    ]
    .into_iter()
    .enumerate()
    {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["customer".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let id = format!("cert-ec-{i}");
        env.register(&id, &cert.pem()).await;
        let c = env.connector(&credentials(&id, &key.serialize_pem()));
        c.check().await.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let locations = read_all(c.as_ref(), Entity::LOCATION, &ReadWindow::ALL).await;
        assert!(!locations.is_empty());
    }
}

#[tokio::test]
async fn revoked_credentials_and_unknown_certificates_are_unauthorized() {
    let env = start(20).await;
    let creds = env.generated_credentials().await;
    let wrong_kid = {
        let mut c = creds.clone();
        c.insert("certificate_id".into(), json!("not-registered"));
        c
    };
    assert!(matches!(
        env.connector(&wrong_kid).check().await,
        Err(ConnectorError::Unauthorized)
    ));
    env.admin(reqwest::Method::POST, "/credentials/revoke", None)
        .await;
    let err = env.connector(&creds).check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let env = start(20).await;
    let creds = env.generated_credentials().await;
    let c = env.connector(&creds);
    c.check().await.unwrap();
    // Rotation kills every issued token: the next call gets 401, renews, and succeeds.
    env.admin(reqwest::Method::POST, "/credentials/rotate", None)
        .await;
    c.check().await.unwrap();
    assert_eq!(
        env.count("POST /services/rest/auth/oauth2/v1/token").await,
        2
    );
    // A 401 that persists after renewing the token is Unauthorized, not retried forever.
    env.admin(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({"next_errors": {"count": 3, "status": 401,
            "body": "{\"title\":\"Unauthorized\",\"status\":401,\"o:errorDetails\":[{\"detail\":\"Invalid login attempt.\",\"o:errorCode\":\"INVALID_LOGIN\"}]}"}})),
    )
    .await;
    let err = c.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
    env.admin(reqwest::Method::DELETE, "/faults", None).await;
    c.check().await.unwrap();
}

#[tokio::test]
async fn settings_and_credentials_are_validated_without_leaking_secrets() {
    let env = start(10).await;
    let cert = generate_certificate("x", Timestamp::from_secs(START_SECS)).unwrap();
    assert!(format!("{cert:?}").contains("<redacted>"));
    assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
    let creds = credentials("c", &cert.private_key_pem);
    let make = |settings: Value, creds: Option<&Map<String, Value>>| {
        netsuite::DESCRIPTOR
            .connect(
                settings.as_object().unwrap(),
                creds,
                Arc::new(env.clock.clone()),
                Arc::new(env.sleeper.clone()),
                ironbridge_core::netguard::Egress::local(),
            )
            .err()
    };
    let param = |e: Option<ConnectorError>| match e {
        Some(ConnectorError::InvalidSettings { param, .. }) => param,
        other => panic!("expected InvalidSettings, got {other:?}"),
    };
    assert_eq!(param(make(json!({"x": 1}), Some(&creds))), "settings.x");
    assert_eq!(
        param(make(json!({"date_format": "DD-MON-YY"}), Some(&creds))),
        "settings.date_format"
    );
    assert_eq!(param(make(json!({}), None)), "credentials.account_id");
    let mut no_key = creds.clone();
    no_key.remove("private_key_pem");
    assert_eq!(
        param(make(json!({}), Some(&no_key))),
        "credentials.private_key_pem"
    );
    let mut bad_key = creds.clone();
    bad_key.insert(
        "private_key_pem".into(),
        json!("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"),
    );
    assert_eq!(
        param(make(json!({}), Some(&bad_key))),
        "credentials.private_key_pem"
    );
    assert!(make(json!({"date_format": "D/M/YYYY"}), Some(&creds)).is_none());
    let validity = cert.not_after.micros() - cert.not_before.micros();
    assert!(validity <= 730 * 86_400 * 1_000_000);
    assert!(
        cert.certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
}

fn modified(r: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(r["lastModifiedDate"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn windowed_reads_include_the_boundary_and_ties_cross_pages_exactly_once() {
    let env = start(400).await;
    let c = env.connector(&env.generated_credentials().await);
    let all = read_all(c.as_ref(), Entity::PURCHASE_ORDER, &ReadWindow::ALL).await;
    // Stable order: (lastModifiedDate, id).
    let keys: Vec<(Timestamp, u64)> = all
        .iter()
        .map(|r| (modified(r), r["id"].as_str().unwrap().parse().unwrap()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));

    // A window whose bounds are records' own timestamps: both ends included.
    let since = keys[100].0;
    let until = keys[300].0;
    let window = ReadWindow {
        modified_since: Some(since),
        modified_until: Some(until),
    };
    let expected: Vec<String> = all
        .iter()
        .filter(|r| window.contains(modified(r)))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let got = read_all(c.as_ref(), Entity::PURCHASE_ORDER, &window).await;
    assert_eq!(ids(&got), expected);
    assert!(got.iter().any(|r| modified(r) == since));
    assert!(got.iter().any(|r| modified(r) == until));

    // 250 orders share one timestamp: pages of 100 split the tie, yet each is read once.
    let tie_ms = (START_SECS - 3600) * 1000;
    for r in all.iter().take(250) {
        let id = r["id"].as_str().unwrap();
        env.admin(
            reqwest::Method::PATCH,
            &format!("/records/purchase_orders/{id}"),
            Some(json!({"last_modified": tie_ms})),
        )
        .await;
    }
    let tie = Timestamp::from_secs(START_SECS - 3600);
    let window = ReadWindow {
        modified_since: Some(tie),
        modified_until: None,
    };
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    let mut got = Vec::new();
    loop {
        let page = c
            .fetch_page(Entity::PURCHASE_ORDER, &window, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        got.extend(page.parsed().unwrap());
        match page.next_cursor {
            Some(n) => {
                // A resumed read with the same cursor continues at the same place.
                let again = c
                    .fetch_page(Entity::PURCHASE_ORDER, &window, Some(&n))
                    .await
                    .unwrap();
                let next = c
                    .fetch_page(Entity::PURCHASE_ORDER, &window, Some(&n))
                    .await
                    .unwrap();
                assert_eq!(ids(&again.parsed().unwrap()), ids(&next.parsed().unwrap()));
                cursor = Some(n);
            }
            None => break,
        }
    }
    assert!(pages >= 3);
    assert_unique(&got);
    let tied = got.iter().filter(|r| modified(r) == tie).count();
    assert_eq!(tied, 250);
    let expected = all.iter().skip(250).filter(|r| modified(r) >= tie).count() + 250;
    assert_eq!(got.len(), expected);
}

#[tokio::test]
async fn injected_429_and_5xx_are_retried_and_the_read_completes() {
    let env = start(150).await;
    let c = env.connector(&env.generated_credentials().await);
    c.check().await.unwrap();
    env.admin(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({"rate_limit": {"count": 2, "retry_after_secs": 3}})),
    )
    .await;
    let first = read_all(c.as_ref(), Entity::PURCHASE_ORDER, &ReadWindow::ALL).await;
    assert_eq!(first.len(), 150);
    env.admin(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({"next_errors": {"count": 2, "status": 503,
            "body": "{\"title\":\"Service Unavailable\",\"status\":503}"}})),
    )
    .await;
    let second = read_all(c.as_ref(), Entity::PURCHASE_ORDER, &ReadWindow::ALL).await;
    assert_eq!(ids(&second), ids(&first));
    let slept = env.sleeper.slept();
    assert!(slept.len() >= 4, "retries waited: {slept:?}");
    assert!(slept.contains(&std::time::Duration::from_secs(3)));
}

fn line(item: &str, quantity: i64, price: Option<i64>) -> PurchaseOrderLineWrite {
    PurchaseOrderLineWrite {
        item_remote_id: item.into(),
        quantity: Decimal::from(quantity),
        unit_price: price.map(Decimal::from),
        description: Some("Bolts".into()),
        unit_of_measure: None,
        expected_delivery_date: Some("2026-02-01".into()),
    }
}

#[tokio::test]
async fn creates_and_updates_orders_and_reports_business_errors() {
    let env = start(40).await;
    let c = env.connector(&env.generated_credentials().await);
    let order = PurchaseOrderWrite {
        number: None,
        vendor_remote_id: "1".into(),
        location_remote_id: Some("1".into()),
        currency: Some("USD".into()),
        order_date: Some("2026-01-02".into()),
        expected_delivery_date: None,
        memo: Some("From Ironbridge".into()),
        custom_fields: json!({"custbody_ib_priority": "High"})
            .as_object()
            .unwrap()
            .clone(),
        lines: vec![line("1", 3, Some(12)), line("2", 1, None)],
    };
    let raw = c.create_purchase_order(&order).await.unwrap();
    assert_eq!(raw["memo"], "From Ironbridge");
    assert_eq!(raw["entity"]["id"], "1");
    assert_eq!(raw["lines"].as_array().unwrap().len(), 2);
    assert_eq!(raw["custbody_ib_priority"], "High");
    decode(Entity::PURCHASE_ORDER, &raw);
    let id = raw["id"].as_str().unwrap().to_string();

    // The written record reads back in the same shape through SuiteQL.
    let all = read_all(c.as_ref(), Entity::PURCHASE_ORDER, &ReadWindow::ALL).await;
    let read = all.iter().find(|r| r["id"] == id.as_str()).unwrap();
    let def = netsuite::DESCRIPTOR
        .mapping(Entity::PURCHASE_ORDER)
        .unwrap();
    assert_eq!(
        def.apply("c", read).unwrap().data,
        def.apply("c", &raw).unwrap().data
    );

    let update = PurchaseOrderUpdate {
        memo: Some("Changed".into()),
        lines: Some(vec![line("3", 5, Some(7))]),
        ..PurchaseOrderUpdate::default()
    };
    let raw = c.update_purchase_order(&id, &update).await.unwrap();
    assert_eq!(raw["memo"], "Changed");
    let lines = raw["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "lines replaced, not appended");
    assert_eq!(lines[0]["item"]["id"], "3");
    let log = env.admin(reqwest::Method::GET, "/requests", None).await;
    let text = log.to_string();
    assert!(text.contains("replace=item"), "PATCH used ?replace=item");

    // Every 17th vendor is inactive.
    let bad_vendor = PurchaseOrderWrite {
        vendor_remote_id: "17".into(),
        ..order.clone()
    };
    match c.create_purchase_order(&bad_vendor).await {
        Err(ConnectorError::BusinessRule {
            param, remote_code, ..
        }) => {
            assert_eq!(param.as_deref(), Some("vendor_id"));
            assert_eq!(remote_code, "INVALID_CONTENT");
        }
        other => panic!("expected a business-rule error, got {other:?}"),
    }
    let bad_item = PurchaseOrderWrite {
        lines: vec![line("1", 1, None), line("999999", 1, None)],
        ..order.clone()
    };
    match c.create_purchase_order(&bad_item).await {
        Err(ConnectorError::BusinessRule { param, .. }) => {
            assert_eq!(param.as_deref(), Some("line_items[1].item_id"));
        }
        other => panic!("expected a business-rule error, got {other:?}"),
    }
    assert!(matches!(
        c.update_purchase_order("99999999", &update).await,
        Err(ConnectorError::NotFound)
    ));

    // A closed order (status H) cannot be edited.
    let closed = all
        .iter()
        .find(|r| r["orderStatus"] == "H")
        .expect("a closed order");
    let err = c
        .update_purchase_order(
            closed["id"].as_str().unwrap(),
            &PurchaseOrderUpdate {
                memo: Some("x".into()),
                ..PurchaseOrderUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::State { .. }), "{err:?}");
}

/// Token requests and their statuses, oldest first.
async fn token_statuses(env: &Env) -> Vec<u64> {
    let log = env.admin(reqwest::Method::GET, "/requests", None).await;
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/services/rest/auth/oauth2/v1/token")
        .map(|e| e["status"].as_u64().unwrap())
        .collect()
}

async fn set_offset(env: &Env, secs: i64) {
    env.admin(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"offset_seconds": secs})),
    )
    .await;
}

#[tokio::test]
async fn assertions_are_accepted_by_a_source_ten_minutes_ahead_or_behind() {
    for (offset, tokens) in [(600, vec![200]), (-600, vec![400, 200])] {
        let env = start(20).await;
        let creds = env.generated_credentials().await;
        set_offset(&env, offset).await;
        let c = env.connector(&creds);
        c.check().await.unwrap();
        // Ahead, the hour-long assertion is accepted at once; behind, the first refusal's Date
        // corrects the clock and the assertion signed again is accepted.
        assert_eq!(token_statuses(&env).await, tokens, "offset {offset}");
        let ours = env.clock.now();
        assert_eq!(
            c.source_time().await.unwrap(),
            Some(ours.plus_secs(offset)),
            "the source's clock is ours corrected"
        );
        // Later, on our clock, the source's time follows at the same offset.
        env.clock.advance_secs(90);
        assert_eq!(
            c.source_time().await.unwrap(),
            Some(ours.plus_secs(90 + offset))
        );
    }
}

#[tokio::test]
async fn a_clock_hours_off_is_corrected_from_the_refusal_and_the_token_reused() {
    let env = start(20).await;
    let creds = env.generated_credentials().await;
    set_offset(&env, -7200).await;
    let c = env.connector(&creds);
    c.check().await.unwrap();
    c.check().await.unwrap();
    assert_eq!(token_statuses(&env).await, vec![400, 200]);
    // The token expires on our clock; its successor is signed on the corrected clock at once.
    env.clock.advance_secs(3600);
    env.admin(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    c.check().await.unwrap();
    assert_eq!(token_statuses(&env).await, vec![400, 200, 200]);
}

#[tokio::test]
async fn a_refusal_with_the_corrected_clock_is_unauthorized() {
    // Revoked while the clock is hours off: the refusal is tried once more with the
    // corrected clock, then is refused credentials.
    let env = start(20).await;
    let creds = env.generated_credentials().await;
    set_offset(&env, -7200).await;
    env.admin(reqwest::Method::POST, "/credentials/revoke", None)
        .await;
    let c = env.connector(&creds);
    let err = c.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
    assert_eq!(token_statuses(&env).await, vec![400, 400]);
    // With a clock that was already right, the refusal is not about time: no second request.
    let err = c.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
    assert_eq!(token_statuses(&env).await, vec![400, 400, 400]);
    // Nor for a source on our time.
    let env = start(20).await;
    let creds = env.generated_credentials().await;
    env.admin(reqwest::Method::POST, "/credentials/revoke", None)
        .await;
    let err = env.connector(&creds).check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
    assert_eq!(token_statuses(&env).await, vec![400]);
}

#[tokio::test]
async fn the_last_page_of_a_window_carries_the_deletions_logged_in_it() {
    let env = start(250).await;
    let c = env.connector(&env.generated_credentials().await);
    // Orders 3 and 4 deleted an hour apart, a vendor in between (another entity's log).
    env.admin(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    env.admin(reqwest::Method::DELETE, "/records/purchase_orders/3", None)
        .await;
    env.admin(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 1800})),
    )
    .await;
    env.admin(reqwest::Method::DELETE, "/records/vendors/2", None)
        .await;
    env.admin(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 1800})),
    )
    .await;
    env.admin(reqwest::Method::DELETE, "/records/purchase_orders/4", None)
        .await;
    let first = Timestamp::from_secs(START_SECS + 3600);
    let second = Timestamp::from_secs(START_SECS + 7200);
    // Our clock follows the source's, or the token's assertion would be expired there.
    env.clock.set(second);

    // A whole read: pages before the last carry no deletions, the last carries both.
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = c
            .fetch_page(Entity::PURCHASE_ORDER, &ReadWindow::ALL, cursor.as_deref())
            .await
            .unwrap();
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages.len(), 3, "248 orders in pages of 100");
    assert!(pages[..2].iter().all(|p| p.deleted.is_empty()));
    assert_eq!(pages[2].deleted, ["3", "4"]);

    // Windows on the deletion time with the records' bounds: both ends included, and no
    // upper bound when the window has none.
    let deleted = |since: Option<Timestamp>, until: Option<Timestamp>| {
        let c = c.clone();
        async move {
            let window = ReadWindow {
                modified_since: since,
                modified_until: until,
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = c
                    .fetch_page(Entity::PURCHASE_ORDER, &window, cursor.as_deref())
                    .await
                    .unwrap();
                if page.next_cursor.is_none() {
                    return page.deleted;
                }
                assert!(page.deleted.is_empty());
                cursor = page.next_cursor;
            }
        }
    };
    assert_eq!(deleted(Some(first), Some(first)).await, ["3"]);
    assert_eq!(deleted(Some(first.plus_secs(1)), None).await, ["4"]);
    assert_eq!(deleted(Some(second), Some(second)).await, ["4"]);
    assert!(
        deleted(Some(first.plus_secs(1)), Some(second.plus_secs(-1)))
            .await
            .is_empty()
    );
    // The vendor's deletion is read with vendors, never with orders, at the cost of one
    // query: the vendors fit one page.
    let before = env.count("POST /services/rest/query/v1/suiteql").await;
    let vendors = c
        .fetch_page(Entity::VENDOR, &ReadWindow::ALL, None)
        .await
        .unwrap();
    assert!(vendors.next_cursor.is_none());
    assert_eq!(vendors.deleted, ["2"]);
    assert_eq!(
        env.count("POST /services/rest/query/v1/suiteql").await - before,
        2
    );
    // Locations are read whole: no log query.
    let before = env.count("POST /services/rest/query/v1/suiteql").await;
    let locations = c
        .fetch_page(Entity::LOCATION, &ReadWindow::ALL, None)
        .await
        .unwrap();
    assert!(locations.deleted.is_empty());
    assert_eq!(
        env.count("POST /services/rest/query/v1/suiteql").await - before,
        1
    );
}
