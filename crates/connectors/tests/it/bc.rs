//! The Business Central connector against the in-process emulator: Entra client credentials
//! (token reuse, revocation), paging through `@odata.nextLink` (full, windowed, ties on one
//! timestamp), `Application_TooManyRequests` with and without `Retry-After`, 5xx, deep insert,
//! `If-Match` updates with a concurrent change, validation errors, and the default mappings.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_connectors::sleeper::RecordingSleeper;
use ironbridge_core::ManualClock;
use ironbridge_core::connector::{
    Connector, ConnectorError, PurchaseOrderLineWrite, PurchaseOrderUpdate, PurchaseOrderWrite,
    PurchaseOrderWrites, ReadWindow,
};
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::sap::{admin, calls, decode_all, read_all, start};

pub(crate) struct Setup {
    pub(crate) emu: RunningEmulator,
    sleeper: RecordingSleeper,
    pub(crate) connector: Arc<dyn Connector>,
    token_path: String,
}

pub(crate) async fn setup(orders: u64, page_size: u64) -> Setup {
    let emu = start(EmulatorConfig::new(System::BusinessCentral, 11, orders)).await;
    let creds = admin(&emu, "GET", "/credentials", None).await;
    let settings = json!({"base_url": emu.base_url(), "login_url": emu.base_url(),
        "tenant_id": creds["tenant_id"], "environment": creds["environment"], "page_size": page_size});
    let credentials =
        json!({"client_id": creds["client_id"], "client_secret": creds["client_secret"]});
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    let sleeper = RecordingSleeper::new(clock.clone());
    let connector = ironbridge_connectors::bc::DESCRIPTOR
        .connect(
            settings.as_object().unwrap(),
            credentials.as_object(),
            Arc::new(clock),
            Arc::new(sleeper.clone()),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    Setup {
        token_path: format!(
            "POST /{}/oauth2/v2.0/token",
            creds["tenant_id"].as_str().unwrap()
        ),
        emu,
        sleeper,
        connector,
    }
}

fn ms(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .micros()
        / 1000
}

fn ids(records: &[Value]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn bc_full_read_pages_to_the_end_with_one_token_and_every_record_maps() {
    let s = setup(120, 25).await;
    let counts = admin(&s.emu, "GET", "", None).await["counts"].clone();
    let c = s.connector.as_ref();
    assert_eq!(c.descriptor().id, ironbridge_connectors::bc::ID);
    c.check().await.unwrap();
    let (orders, pages) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(
        orders.len() as u64,
        counts["purchase_orders"].as_u64().unwrap()
    );
    assert_eq!(ids(&orders).len(), orders.len());
    assert!(pages >= 5);
    assert!(
        orders[0]["purchaseOrderLines"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
    decode_all(
        &ironbridge_connectors::bc::DESCRIPTOR,
        Entity::PURCHASE_ORDER,
        &orders,
    );
    let (vendors, _) = read_all(c, Entity::VENDOR, &ReadWindow::ALL).await.unwrap();
    assert_eq!(vendors.len() as u64, counts["vendors"].as_u64().unwrap());
    decode_all(
        &ironbridge_connectors::bc::DESCRIPTOR,
        Entity::VENDOR,
        &vendors,
    );
    let (items, _) = read_all(c, Entity::ITEM, &ReadWindow::ALL).await.unwrap();
    assert_eq!(items.len() as u64, counts["items"].as_u64().unwrap());
    decode_all(&ironbridge_connectors::bc::DESCRIPTOR, Entity::ITEM, &items);
    // Enum members as the API serves them map to the unified values: an order in review is
    // pending approval, a vendor blocked by the blank member `_x0020_` is active.
    let mapped = |entity: Entity, raw: &Value| {
        let def = ironbridge_connectors::bc::DESCRIPTOR
            .mapping(entity)
            .unwrap();
        def.apply("conn_test", raw).unwrap().data
    };
    let in_review: Vec<&Value> = orders
        .iter()
        .filter(|o| o["status"] == "In_x0020_Review")
        .collect();
    assert!(!in_review.is_empty());
    for o in in_review {
        assert_eq!(
            mapped(Entity::PURCHASE_ORDER, o)["status"],
            "pending_approval"
        );
    }
    let open = vendors.iter().find(|v| v["blocked"] == "_x0020_").unwrap();
    assert_eq!(mapped(Entity::VENDOR, open)["status"], "active");
    let mut blocked = open.clone();
    blocked["blocked"] = "All".into();
    assert_eq!(mapped(Entity::VENDOR, &blocked)["status"], "inactive");
    let mut non_inventory = items[0].clone();
    non_inventory["type"] = "Non_x002D_Inventory".into();
    assert_eq!(
        mapped(Entity::ITEM, &non_inventory)["item_type"],
        "non_inventory"
    );
    assert_eq!(calls(&s.emu, &s.token_path).await, 1, "the token is reused");
    let log = admin(&s.emu, "GET", "/requests", None).await;
    let reads: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("/purchaseOrders"))
        .collect();
    // The last page is the second phase: the invoices posted in the window.
    assert_eq!(reads.len(), pages - 1);
    assert!(
        reads
            .iter()
            .all(|e| e["headers"]["prefer"] == "odata.maxpagesize=25")
    );
    assert!(c.source_time().await.unwrap().is_some());
}

#[tokio::test]
async fn bc_windowed_read_returns_exactly_the_window_and_ties_across_pages_once() {
    let s = setup(150, 10).await;
    let c = s.connector.as_ref();
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let mut times: Vec<i64> = all.iter().map(|o| ms(&o["lastModifiedDateTime"])).collect();
    times.sort_unstable();
    let (lo, hi) = (times[40], times[100]);
    let window = ReadWindow {
        modified_since: Some(Timestamp(lo * 1000)),
        modified_until: Some(Timestamp(hi * 1000)),
    };
    let expected: HashSet<String> = all
        .iter()
        .filter(|o| (lo..=hi).contains(&ms(&o["lastModifiedDateTime"])))
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let (got, _) = read_all(c, Entity::PURCHASE_ORDER, &window).await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert_eq!(ids(&got), expected);

    // Resuming with the same cursor continues where the read stopped.
    let first = c
        .fetch_page(Entity::PURCHASE_ORDER, &window, None)
        .await
        .unwrap();
    let again = c
        .fetch_page(
            Entity::PURCHASE_ORDER,
            &window,
            first.next_cursor.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(again.records[0].parse().unwrap()["id"], got[10]["id"]);

    // 25 orders share one instant: paging through them reads each once.
    let shared = 1_765_000_000_000_i64;
    for id in 1..=25 {
        admin(
            &s.emu,
            "PATCH",
            &format!("/records/purchase_orders/{id}"),
            Some(json!({"last_modified": shared})),
        )
        .await;
    }
    let tie = ReadWindow {
        modified_since: Some(Timestamp(shared * 1000)),
        modified_until: Some(Timestamp(shared * 1000)),
    };
    let (tied, pages) = read_all(c, Entity::PURCHASE_ORDER, &tie).await.unwrap();
    assert_eq!(tied.len(), 25);
    assert_eq!(ids(&tied).len(), 25);
    // Three of orders, one of the invoices posted in the window.
    assert_eq!(pages, 4);
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(ids(&all).len(), 150);
}

#[tokio::test]
async fn bc_too_many_requests_with_and_without_retry_after_and_5xx_are_retried() {
    let s = setup(30, 10).await;
    let c = s.connector.as_ref();
    c.check().await.unwrap();
    admin(
        &s.emu,
        "PUT",
        "/faults",
        Some(json!({"rate_limit": {"count": 2, "retry_after_secs": 3}})),
    )
    .await;
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(
        s.sleeper
            .slept()
            .iter()
            .filter(|d| d.as_secs() == 3)
            .count(),
        2
    );
    let before = s.sleeper.slept().len();
    admin(
        &s.emu,
        "PUT",
        "/faults",
        Some(json!({"rate_limit": {"count": 2}})),
    )
    .await;
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert!(
        s.sleeper.slept().len() >= before + 2,
        "backoff without Retry-After"
    );
    let log = admin(&s.emu, "GET", "/requests", None).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == 429)
            .count()
            >= 4
    );
    admin(&s.emu, "PUT", "/faults", Some(json!({"next_errors": {"count": 2, "status": 503, "body": "unavailable", "content_type": "text/plain"}}))).await;
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert!(s.sleeper.slept().len() >= before + 4);
}

#[tokio::test]
async fn bc_revoked_credentials_are_unauthorized() {
    let s = setup(20, 10).await;
    s.connector.check().await.unwrap();
    admin(&s.emu, "POST", "/credentials/revoke", None).await;
    let err = s
        .connector
        .fetch_page(Entity::VENDOR, &ReadWindow::ALL, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized), "{err:?}");
}

fn line(item: &str, qty: i64) -> PurchaseOrderLineWrite {
    PurchaseOrderLineWrite {
        item_remote_id: item.into(),
        quantity: Decimal::from(qty),
        unit_price: Some(Decimal::new(1250, 2)),
        description: None,
        unit_of_measure: None,
        expected_delivery_date: None,
    }
}

fn order(vendor: &str, lines: Vec<PurchaseOrderLineWrite>) -> PurchaseOrderWrite {
    PurchaseOrderWrite {
        number: None,
        vendor_remote_id: vendor.into(),
        location_remote_id: None,
        currency: None,
        order_date: Some("2026-01-05".into()),
        expected_delivery_date: None,
        memo: None,
        custom_fields: Map::new(),
        lines,
    }
}

#[tokio::test]
async fn bc_create_and_update_with_if_match_and_a_concurrent_change() {
    let s = setup(30, 50).await;
    let c = s.connector.as_ref();
    let (orders, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let vendor = orders[0]["vendorId"].as_str().unwrap().to_string();
    let item = orders[0]["purchaseOrderLines"][0]["itemId"]
        .as_str()
        .unwrap()
        .to_string();
    // The requested receipt date and the currency are editable on the API page.
    let mut first = order(&vendor, vec![line(&item, 2), line(&item, 4)]);
    first.expected_delivery_date = Some("2026-02-14".into());
    first.currency = Some("EUR".into());
    let created = c.create_purchase_order(&first).await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["requestedReceiptDate"], "2026-02-14");
    assert_eq!(created["currencyCode"], "EUR");
    let mapped = ironbridge_connectors::bc::DESCRIPTOR
        .mapping(Entity::PURCHASE_ORDER)
        .unwrap()
        .apply("conn_test", &created)
        .unwrap()
        .data;
    assert_eq!(mapped["expected_delivery_date"], "2026-02-14");
    assert_eq!(mapped["currency"], "EUR");
    assert_eq!(created["vendorId"], json!(vendor));
    assert_eq!(created["status"], "Draft");
    assert_eq!(created["purchaseOrderLines"].as_array().unwrap().len(), 2);

    // The next read answers a stale ETag, as if another user had changed the order since:
    // the PATCH gets Request_EntityChanged, the connector reads again and retries once.
    let mut stale = created.clone();
    stale["@odata.etag"] = json!("W/\"JzE5OzE1OzAwOyc=\"");
    admin(
        &s.emu,
        "PUT",
        "/faults",
        Some(json!({"next_errors": {"count": 1, "status": 200, "body": stale.to_string()}})),
    )
    .await;
    let update = PurchaseOrderUpdate {
        expected_delivery_date: Some("2026-02-20".into()),
        custom_fields: json!({"orderDate": "2026-01-09"})
            .as_object()
            .cloned()
            .unwrap(),
        lines: Some(vec![line(&item, 9)]),
        ..PurchaseOrderUpdate::default()
    };
    let updated = c.update_purchase_order(&id, &update).await.unwrap();
    assert_eq!(updated["orderDate"], "2026-01-09");
    assert_eq!(updated["requestedReceiptDate"], "2026-02-20");
    let lines = updated["purchaseOrderLines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["quantity"].as_f64(), Some(9.0));
    let log = admin(&s.emu, "GET", "/requests", None).await;
    let patches: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[0]["status"], 409);
    assert_eq!(patches[1]["status"], 200);
    assert!(patches.iter().all(|p| {
        p["headers"]["if-match"]
            .as_str()
            .is_some_and(|t| t.starts_with("W/"))
    }));

    assert!(matches!(
        c.update_purchase_order("00000000-0000-0000-0000-00000000ffff", &update)
            .await,
        Err(ConnectorError::NotFound)
    ));
}

#[tokio::test]
async fn bc_invalid_vendor_and_item_are_business_rule_errors() {
    let s = setup(30, 50).await;
    let c = s.connector.as_ref();
    let (orders, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let vendor = orders[0]["vendorId"].as_str().unwrap().to_string();
    let item = orders[0]["purchaseOrderLines"][0]["itemId"]
        .as_str()
        .unwrap()
        .to_string();
    match c
        .create_purchase_order(&order(
            "00000000-0000-0000-0000-0000000fffff",
            vec![line(&item, 1)],
        ))
        .await
    {
        Err(ConnectorError::BusinessRule {
            remote_code, param, ..
        }) => {
            assert_eq!(remote_code, "Internal_InvalidTableRelation");
            assert_eq!(param.as_deref(), Some("vendor_id"));
        }
        other => panic!("{other:?}"),
    }
    match c
        .create_purchase_order(&order(
            &vendor,
            vec![
                line(&item, 1),
                line("00000000-0000-0000-0000-0000000eeeee", 1),
            ],
        ))
        .await
    {
        Err(ConnectorError::BusinessRule {
            remote_code, param, ..
        }) => {
            assert_eq!(remote_code, "Internal_InvalidTableRelation");
            assert_eq!(param.as_deref(), Some("line_items[1].item_id"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bc_certificate_client_assertion_gets_a_token() {
    let emu = start(EmulatorConfig::new(System::BusinessCentral, 11, 20)).await;
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ironbridge-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    admin(
        &emu,
        "PATCH",
        "/settings",
        Some(json!({"certificate_pem": cert.pem()})),
    )
    .await;
    let creds = admin(&emu, "GET", "/credentials", None).await;
    let settings = json!({"base_url": emu.base_url(), "login_url": emu.base_url(),
        "tenant_id": creds["tenant_id"], "environment": creds["environment"],
        "company_id": creds["company_id"]});
    let credentials = json!({"client_id": creds["client_id"], "certificate_pem": cert.pem(),
        "private_key_pem": key.serialize_pem()});
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    let connector = ironbridge_connectors::bc::DESCRIPTOR
        .connect(
            settings.as_object().unwrap(),
            credentials.as_object(),
            Arc::new(clock.clone()),
            Arc::new(RecordingSleeper::new(clock)),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    connector.check().await.unwrap();
    let (vendors, _) = read_all(connector.as_ref(), Entity::VENDOR, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(
        vendors.len() as u64,
        admin(&emu, "GET", "", None).await["counts"]["vendors"]
            .as_u64()
            .unwrap()
    );
    let token_path = format!(
        "POST /{}/oauth2/v2.0/token",
        creds["tenant_id"].as_str().unwrap()
    );
    assert_eq!(calls(&emu, &token_path).await, 1);

    // A key that does not belong to the certificate is refused.
    let other = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let credentials = json!({"client_id": creds["client_id"], "certificate_pem": cert.pem(),
        "private_key_pem": other.serialize_pem()});
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    let wrong = ironbridge_connectors::bc::DESCRIPTOR
        .connect(
            settings.as_object().unwrap(),
            credentials.as_object(),
            Arc::new(clock.clone()),
            Arc::new(RecordingSleeper::new(clock)),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    assert!(matches!(
        wrong.check().await,
        Err(ConnectorError::Unauthorized)
    ));
}

/// The emulator's number of a record from its id (the GUID's last twelve hex digits).
fn number_of(id: &str) -> u64 {
    u64::from_str_radix(&id[24..], 16).unwrap()
}

#[tokio::test]
async fn bc_next_links_are_key_bookmarks_so_deletions_between_pages_skip_nothing() {
    let s = setup(60, 10).await;
    let c = s.connector.as_ref();
    let first = c
        .fetch_page(Entity::PURCHASE_ORDER, &ReadWindow::ALL, None)
        .await
        .unwrap();
    let cursor = first.next_cursor.clone().expect("more pages");
    // The link is Business Central's: the query, `aid=FIN`, then the last record's id.
    let page1 = first.parsed().unwrap();
    let last = page1.last().unwrap()["id"].as_str().unwrap().to_string();
    assert!(
        cursor.ends_with(&format!("aid=FIN&$skiptoken={last}")),
        "{cursor}"
    );
    // Someone deletes five orders already read: an offset would now skip five unread ones.
    for r in &page1[..5] {
        let n = number_of(r["id"].as_str().unwrap());
        admin(
            &s.emu,
            "DELETE",
            &format!("/records/purchase_orders/{n}"),
            None,
        )
        .await;
    }
    let mut seen = ids(&page1);
    let mut cursor = Some(cursor);
    while let Some(c1) = cursor {
        let page = c
            .fetch_page(Entity::PURCHASE_ORDER, &ReadWindow::ALL, Some(&c1))
            .await
            .unwrap();
        seen.extend(ids(&page.parsed().unwrap()));
        cursor = page.next_cursor;
    }
    let (now, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(now.len(), 55);
    assert!(ids(&now).is_subset(&seen), "every remaining order was read");
    s.emu.shutdown().await;
}

#[tokio::test]
async fn bc_over_https_trusting_the_emulators_authority() {
    let tls = ironbridge_emulators::LocalTls::generate(&[]).unwrap();
    let mut config = EmulatorConfig::new(System::BusinessCentral, 11, 30);
    config.tls = Some(tls.clone());
    let emu = start(config).await;
    assert!(emu.base_url().starts_with("https://"));
    let ca = reqwest::Certificate::from_pem(tls.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let creds: Value = http
        .get(format!("{}/__emulator/credentials", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Discovery names https endpoints, as Entra's does (MSAL refuses any other).
    let disc: Value = http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            emu.base_url(),
            creds["tenant_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        disc["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );

    let settings = json!({"base_url": emu.base_url(), "login_url": emu.base_url(),
        "tenant_id": creds["tenant_id"], "environment": creds["environment"], "page_size": 10});
    let credentials =
        json!({"client_id": creds["client_id"], "client_secret": creds["client_secret"]});
    let connect = |egress: ironbridge_core::netguard::Egress| {
        let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
        ironbridge_connectors::bc::DESCRIPTOR
            .connect(
                settings.as_object().unwrap(),
                credentials.as_object(),
                Arc::new(clock.clone()),
                Arc::new(RecordingSleeper::new(clock)),
                egress,
            )
            .unwrap()
    };
    // Not trusted: the certificate is refused and nothing is read.
    let untrusted = connect(ironbridge_core::netguard::Egress::local());
    assert!(untrusted.check().await.is_err());
    // Trusted (`connections.ca_file`): every order is read over TLS.
    let trusted =
        connect(ironbridge_core::netguard::Egress::local().with_extra_ca_pem(tls.ca_pem()));
    trusted.check().await.unwrap();
    let (orders, pages) = read_all(trusted.as_ref(), Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!((orders.len(), pages), (30, 4));
    emu.shutdown().await;
}
