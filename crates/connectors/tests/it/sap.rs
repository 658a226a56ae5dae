//! The SAP S/4HANA connector against the in-process emulator: Basic and OAuth auth, keyset
//! paging (full, windowed, ties on one timestamp across pages), retries of 429 and 5xx, the
//! CSRF handshake on create and update, validation errors, and the default mappings.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_connectors::sleeper::RecordingSleeper;
use ironbridge_core::ManualClock;
use ironbridge_core::connector::{
    Connector, ConnectorError, PurchaseOrderLineWrite, PurchaseOrderUpdate, PurchaseOrderWrite,
    PurchaseOrderWrites, ReadWindow,
};
use ironbridge_core::system::SystemDescriptor;
use ironbridge_core::unified::check_mapped;
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

pub(crate) async fn start(config: EmulatorConfig) -> RunningEmulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    ironbridge_emulators::start(config, listener)
        .await
        .expect("start")
}

pub(crate) async fn admin(
    emu: &RunningEmulator,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r =
        reqwest::Client::new().request(method, format!("{}/__emulator{path}", emu.base_url()));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().await.expect("admin call");
    assert!(
        response.status().is_success(),
        "admin {path}: {}",
        response.status()
    );
    if response.status() == 204 {
        return Value::Null;
    }
    response.json().await.unwrap_or(Value::Null)
}

/// How many calls the emulator logged for `METHOD path`.
pub(crate) async fn calls(emu: &RunningEmulator, key: &str) -> u64 {
    admin(emu, "GET", "/requests/count", None).await["by_path"][key]
        .as_u64()
        .unwrap_or(0)
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

pub(crate) struct Setup {
    pub(crate) emu: RunningEmulator,
    sleeper: RecordingSleeper,
    pub(crate) connector: Arc<dyn Connector>,
}

pub(crate) async fn setup(orders: u64, extra: Value, oauth: bool) -> Setup {
    let emu = start(EmulatorConfig::new(System::SapS4Hana, 7, orders)).await;
    let creds = admin(&emu, "GET", "/credentials", None).await;
    let mut settings = obj(json!({"base_url": emu.base_url(), "sap_client": "100"}));
    settings.extend(obj(extra));
    let credentials = if oauth {
        json!({"client_id": creds["oauth_client_id"], "client_secret": creds["oauth_client_secret"],
               "token_url": format!("{}/sap/bc/sec/oauth2/token", emu.base_url())})
    } else {
        json!({"username": creds["user"], "password": creds["password"]})
    };
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    let sleeper = RecordingSleeper::new(clock.clone());
    let connector = ironbridge_connectors::sap::DESCRIPTOR
        .connect(
            &settings,
            credentials.as_object(),
            Arc::new(clock),
            Arc::new(sleeper.clone()),
            ironbridge_core::netguard::Egress::local(),
        )
        .unwrap();
    Setup {
        emu,
        sleeper,
        connector,
    }
}

pub(crate) async fn read_all(
    c: &dyn Connector,
    entity: Entity,
    window: &ReadWindow,
) -> Result<(Vec<Value>, usize), ConnectorError> {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.fetch_page(entity, window, cursor.as_deref()).await?;
        pages += 1;
        out.extend(page.parsed().unwrap());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((out, pages)),
        }
        assert!(pages < 10_000, "paging does not end");
    }
}

fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap();
    let inner = s.trim_start_matches("/Date(").trim_end_matches(")/");
    inner.split('+').next().unwrap().parse().unwrap()
}

/// Maps every record with the default mapping and decodes it into the unified type.
pub(crate) fn decode_all(system: &SystemDescriptor, entity: Entity, records: &[Value]) {
    let def = system.mapping(entity).expect("a default mapping");
    for raw in records {
        let mapped = def.apply("conn_test", raw).unwrap();
        check_mapped(entity, &mapped).unwrap_or_else(|e| panic!("{entity:?}: {e}: {raw}"));
    }
}

#[tokio::test]
async fn sap_full_read_pages_to_the_end_and_every_record_maps() {
    let s = setup(120, json!({"page_size": 25}), false).await;
    let counts = admin(&s.emu, "GET", "", None).await["counts"].clone();
    let c = s.connector.as_ref();
    assert_eq!(c.descriptor().id, ironbridge_connectors::sap::ID);
    c.check().await.unwrap();
    let (orders, pages) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    assert_eq!(
        orders.len() as u64,
        counts["purchase_orders"].as_u64().unwrap()
    );
    assert!(pages >= 5);
    let keys: HashSet<&str> = orders
        .iter()
        .map(|o| o["PurchaseOrder"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), orders.len());
    assert!(
        orders[0]["to_PurchaseOrderItem"]["results"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    decode_all(
        &ironbridge_connectors::sap::DESCRIPTOR,
        Entity::PURCHASE_ORDER,
        &orders,
    );
    let (vendors, _) = read_all(c, Entity::VENDOR, &ReadWindow::ALL).await.unwrap();
    assert_eq!(vendors.len() as u64, counts["vendors"].as_u64().unwrap());
    decode_all(
        &ironbridge_connectors::sap::DESCRIPTOR,
        Entity::VENDOR,
        &vendors,
    );
    let (items, _) = read_all(c, Entity::ITEM, &ReadWindow::ALL).await.unwrap();
    assert_eq!(items.len() as u64, counts["items"].as_u64().unwrap());
    decode_all(
        &ironbridge_connectors::sap::DESCRIPTOR,
        Entity::ITEM,
        &items,
    );
    let mapped = ironbridge_connectors::sap::DESCRIPTOR
        .mapping(Entity::PURCHASE_ORDER)
        .unwrap()
        .apply("conn_test", &orders[0])
        .unwrap();
    assert!(mapped.remote_updated_at.is_some());
    assert!(matches!(
        c.fetch_page(Entity::LOCATION, &ReadWindow::ALL, None).await,
        Err(ConnectorError::Unsupported(_))
    ));
    assert!(c.source_time().await.unwrap().is_some());
    // Basic auth: one header per call, never a token call.
    assert_eq!(calls(&s.emu, "POST /sap/bc/sec/oauth2/token").await, 0);
}

#[tokio::test]
async fn sap_windowed_read_returns_exactly_the_window_including_boundaries() {
    let s = setup(150, json!({"page_size": 10}), false).await;
    let c = s.connector.as_ref();
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    // Every tenth order has no change time, as in recorded sandbox payloads.
    let unset = |o: &Value| o["LastChangeDateTime"].is_null();
    assert_eq!(all.iter().filter(|o| unset(o)).count(), 15);
    let mut times: Vec<i64> = all
        .iter()
        .filter(|o| !unset(o))
        .map(|o| ms(&o["LastChangeDateTime"]))
        .collect();
    times.sort_unstable();
    let (lo, hi) = (times[30], times[90]);
    let window = ReadWindow {
        modified_since: Some(Timestamp(lo * 1000)),
        modified_until: Some(Timestamp(hi * 1000)),
    };
    // The window's changes, and the orders without a change time created two days before
    // it (they count as changed two days after their creation date).
    const DAY: i64 = 86_400_000;
    let days = lo - 2 * DAY..=hi - 2 * DAY;
    let expected: HashSet<String> = all
        .iter()
        .filter(|o| {
            if unset(o) {
                days.contains(&ms(&o["CreationDate"]))
            } else {
                (lo..=hi).contains(&ms(&o["LastChangeDateTime"]))
            }
        })
        .map(|o| o["PurchaseOrder"].as_str().unwrap().to_string())
        .collect();
    let (got, _) = read_all(c, Entity::PURCHASE_ORDER, &window).await.unwrap();
    let got_keys: HashSet<String> = got
        .iter()
        .map(|o| o["PurchaseOrder"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), got_keys.len(), "no record twice");
    assert_eq!(got_keys, expected);
    assert!(
        got.iter()
            .any(|o| !unset(o) && ms(&o["LastChangeDateTime"]) == lo)
    );
    assert!(
        got.iter()
            .any(|o| !unset(o) && ms(&o["LastChangeDateTime"]) == hi)
    );

    // An order without a change time is read by the window of two days after its creation
    // date, and by no window of the day itself or a week later.
    let quiet = all.iter().find(|o| unset(o)).unwrap();
    let created = ms(&quiet["CreationDate"]);
    for (offset, read) in [(48, true), (0, false), (24 * 7, false)] {
        let at = created + offset * 3_600_000;
        let day = ReadWindow {
            modified_since: Some(Timestamp(at * 1000)),
            modified_until: Some(Timestamp((at + 3_600_000) * 1000)),
        };
        let (got, _) = read_all(c, Entity::PURCHASE_ORDER, &day).await.unwrap();
        assert_eq!(
            got.iter()
                .any(|o| o["PurchaseOrder"] == quiet["PurchaseOrder"]),
            read,
            "{offset} h after"
        );
    }

    // A resumed read with the same window and cursor continues where it stopped.
    let first = c
        .fetch_page(Entity::PURCHASE_ORDER, &window, None)
        .await
        .unwrap();
    let cursor = first.next_cursor.unwrap();
    let again = c
        .fetch_page(Entity::PURCHASE_ORDER, &window, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(
        again.records[0].parse().unwrap()["PurchaseOrder"],
        got[10]["PurchaseOrder"]
    );
}

#[tokio::test]
async fn sap_records_sharing_one_timestamp_across_pages_are_read_once() {
    let s = setup(60, json!({"page_size": 7}), false).await;
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
    let c = s.connector.as_ref();
    let (all, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let keys: HashSet<&str> = all
        .iter()
        .map(|o| o["PurchaseOrder"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 60);
    assert_eq!(keys.len(), 60);
    let window = ReadWindow {
        modified_since: Some(Timestamp(shared * 1000)),
        modified_until: Some(Timestamp(shared * 1000)),
    };
    let (tied, pages) = read_all(c, Entity::PURCHASE_ORDER, &window).await.unwrap();
    assert_eq!(tied.len(), 25);
    assert!(pages >= 4);
    let keys: HashSet<&str> = tied
        .iter()
        .map(|o| o["PurchaseOrder"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 25);
}

#[tokio::test]
async fn sap_oauth_token_is_reused_and_revoked_credentials_are_unauthorized() {
    let s = setup(20, json!({}), true).await;
    let c = s.connector.as_ref();
    c.check().await.unwrap();
    read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    read_all(c, Entity::VENDOR, &ReadWindow::ALL).await.unwrap();
    assert_eq!(calls(&s.emu, "POST /sap/bc/sec/oauth2/token").await, 1);
    admin(&s.emu, "POST", "/credentials/revoke", None).await;
    assert!(matches!(c.check().await, Err(ConnectorError::Unauthorized)));

    let basic = setup(20, json!({}), false).await;
    admin(&basic.emu, "POST", "/credentials/revoke", None).await;
    assert!(matches!(
        basic.connector.check().await,
        Err(ConnectorError::Unauthorized)
    ));
    let err = basic
        .connector
        .fetch_page(Entity::PURCHASE_ORDER, &ReadWindow::ALL, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Unauthorized));
}

#[tokio::test]
async fn sap_429_and_5xx_are_retried_and_the_read_completes() {
    let s = setup(40, json!({"page_size": 15}), false).await;
    admin(
        &s.emu,
        "PUT",
        "/faults",
        Some(json!({"rate_limit": {"count": 2, "retry_after_secs": 7}})),
    )
    .await;
    let (all, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::ALL,
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 40);
    let slept = s.sleeper.slept();
    assert_eq!(
        slept.iter().filter(|d| d.as_secs() == 7).count(),
        2,
        "{slept:?}"
    );
    admin(&s.emu, "PUT", "/faults", Some(json!({"next_errors": {"count": 2, "status": 503, "body": "unavailable", "content_type": "text/plain"}}))).await;
    let (all, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::ALL,
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 40);
    assert!(s.sleeper.slept().len() >= 4);
    // Retries that never succeed end as an upstream failure without secrets.
    admin(&s.emu, "PUT", "/faults", Some(json!({"next_errors": {"count": 50, "status": 503, "body": "unavailable", "content_type": "text/plain"}}))).await;
    let err = s.connector.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Upstream(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("Pa55"));
    admin(&s.emu, "DELETE", "/faults", None).await;
}

fn line(item: &str, qty: i64) -> PurchaseOrderLineWrite {
    PurchaseOrderLineWrite {
        item_remote_id: item.into(),
        quantity: Decimal::from(qty),
        unit_price: Some(Decimal::new(1250, 2)),
        description: Some("Widgets".into()),
        unit_of_measure: None,
        expected_delivery_date: None,
    }
}

fn order(vendor: &str, lines: Vec<PurchaseOrderLineWrite>) -> PurchaseOrderWrite {
    PurchaseOrderWrite {
        number: None,
        vendor_remote_id: vendor.into(),
        location_remote_id: None,
        currency: Some("USD".into()),
        order_date: Some("2026-01-05".into()),
        expected_delivery_date: None,
        memo: None,
        custom_fields: obj(json!({"YY1_Priority_PDH": "High"})),
        lines,
    }
}

#[tokio::test]
async fn sap_create_and_update_with_the_csrf_handshake() {
    let s = setup(30, json!({}), false).await;
    let c = s.connector.as_ref();
    let (orders, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let vendor = orders[0]["Supplier"].as_str().unwrap().to_string();
    let items = orders[0]["to_PurchaseOrderItem"]["results"]
        .as_array()
        .unwrap();
    let material = items[0]["Material"].as_str().unwrap().to_string();

    let created = c
        .create_purchase_order(&order(
            &vendor,
            vec![line(&material, 3), line(&material, 5)],
        ))
        .await
        .unwrap();
    let key = created["PurchaseOrder"].as_str().unwrap().to_string();
    assert_eq!(created["Supplier"], json!(vendor));
    assert_eq!(
        created["to_PurchaseOrderItem"]["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(created["YY1_Priority_PDH"], "High");
    let log = admin(&s.emu, "GET", "/requests", None).await;
    let entries = log["entries"].as_array().unwrap();
    let fetch = entries
        .iter()
        .position(|e| e["headers"]["x-csrf-token"] == "Fetch")
        .expect("a CSRF fetch");
    let post = entries
        .iter()
        .position(|e| {
            e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("A_PurchaseOrder")
        })
        .unwrap();
    assert!(fetch < post);
    assert_eq!(entries[post]["has_cookie"], true);
    assert_eq!(entries[post]["status"], 201);

    // The session's token is refused once: a new one is fetched and the write goes through.
    admin(
        &s.emu,
        "PUT",
        "/faults",
        Some(json!({"next_errors": {"count": 1, "status": 403, "body": "CSRF token validation failed",
            "content_type": "text/plain", "headers": [["x-csrf-token", "Required"]]}})),
    )
    .await;
    let fetches_before = entries
        .iter()
        .filter(|e| e["headers"]["x-csrf-token"] == "Fetch")
        .count();
    let again = c
        .create_purchase_order(&order(&vendor, vec![line(&material, 1)]))
        .await
        .unwrap();
    assert_ne!(again["PurchaseOrder"], created["PurchaseOrder"]);
    let log = admin(&s.emu, "GET", "/requests", None).await;
    let fetches = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["headers"]["x-csrf-token"] == "Fetch")
        .count();
    assert_eq!(fetches, fetches_before + 1, "one refetch after the 403");

    let update = PurchaseOrderUpdate {
        custom_fields: obj(json!({"YY1_Priority_PDH": "Low"})),
        lines: Some(vec![line(&material, 7)]),
        ..PurchaseOrderUpdate::default()
    };
    let updated = c.update_purchase_order(&key, &update).await.unwrap();
    assert_eq!(updated["YY1_Priority_PDH"], "Low");
    let open: Vec<&Value> = updated["to_PurchaseOrderItem"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["PurchasingDocumentDeletionCode"] == "")
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0]["OrderQuantity"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        7.0
    );

    assert!(matches!(
        c.update_purchase_order("4599999999", &update).await,
        Err(ConnectorError::NotFound)
    ));
}

#[tokio::test]
async fn sap_invalid_vendor_and_material_are_business_rule_errors() {
    let s = setup(30, json!({}), false).await;
    let c = s.connector.as_ref();
    let (orders, _) = read_all(c, Entity::PURCHASE_ORDER, &ReadWindow::ALL)
        .await
        .unwrap();
    let vendor = orders[0]["Supplier"].as_str().unwrap().to_string();
    let material = orders[0]["to_PurchaseOrderItem"]["results"][0]["Material"]
        .as_str()
        .unwrap()
        .to_string();
    match c
        .create_purchase_order(&order("99999999", vec![line(&material, 1)]))
        .await
    {
        Err(ConnectorError::BusinessRule {
            remote_code, param, ..
        }) => {
            assert_eq!(remote_code, "ME/045");
            assert_eq!(param.as_deref(), Some("vendor_id"));
        }
        other => panic!("{other:?}"),
    }
    match c
        .create_purchase_order(&order(
            &vendor,
            vec![line(&material, 1), line("NO-SUCH-ITEM", 1)],
        ))
        .await
    {
        Err(ConnectorError::BusinessRule {
            remote_code, param, ..
        }) => {
            assert_eq!(remote_code, "ME/062");
            assert_eq!(param.as_deref(), Some("line_items[1].item_id"));
        }
        other => panic!("{other:?}"),
    }
}

/// A quantity as SAP writes it: the decimals of its unit (the emulator's units: EA and BOX
/// none, KG and M three).
fn sap_quantity(n: i64, unit: &str) -> String {
    match unit {
        "KG" | "M" => format!("{n}.000"),
        _ => n.to_string(),
    }
}

#[tokio::test]
async fn sap_syncs_sap_rendered_numbers_while_the_emulator_defaults_to_atom() {
    let s = setup(12, json!({}), false).await;
    // SAP answers Atom to a client that does not ask for JSON...
    let creds = admin(&s.emu, "GET", "/credentials", None).await;
    let bare = reqwest::Client::new()
        .get(format!(
            "{}/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder?$top=1",
            s.emu.base_url()
        ))
        .basic_auth(creds["user"].as_str().unwrap(), creds["password"].as_str())
        .send()
        .await
        .unwrap();
    assert!(
        bare.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml")
    );
    // ...and the connector, which asks for JSON, still reads every order.
    let (records, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::default(),
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 12);
    decode_all(
        &ironbridge_connectors::sap::DESCRIPTOR,
        Entity::PURCHASE_ORDER,
        &records,
    );
    let def = ironbridge_connectors::sap::DESCRIPTOR
        .mapping(Entity::PURCHASE_ORDER)
        .unwrap();
    for raw in &records {
        let mapped = def.apply("conn_test", raw).unwrap();
        let items = raw["to_PurchaseOrderItem"]["results"].as_array().unwrap();
        let lines = mapped.data["line_items"].as_array().unwrap();
        assert_eq!(items.len(), lines.len());
        for (item, line) in items.iter().zip(lines) {
            // The payload as SAP writes it: quantities by unit, amounts by currency...
            let qty = item["OrderQuantity"].as_str().unwrap();
            let unit = item["PurchaseOrderQuantityUnit"].as_str().unwrap();
            let n: f64 = qty.parse().unwrap();
            assert_eq!(qty, sap_quantity(n as i64, unit));
            let price = item["NetPriceAmount"].as_str().unwrap();
            assert_eq!(price.split_once('.').unwrap().1.len(), 2, "{price}");
            // ...mapped to the same numbers.
            let q: Decimal = line["quantity"].as_str().unwrap().parse().unwrap();
            assert_eq!(q, qty.parse::<Decimal>().unwrap());
            let p: Decimal = line["unit_price"].as_str().unwrap().parse().unwrap();
            assert_eq!(p, price.parse::<Decimal>().unwrap());
        }
    }
}

#[test]
fn sap_recorded_sandbox_item_maps_to_its_numbers() {
    let text = std::fs::read_to_string(format!(
        "{}/../emulators/tests/it/fixtures/sap_po_item_sandbox.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let items: Value = serde_json::from_str(&text).unwrap();
    let order = json!({
        "PurchaseOrder": "4500000028",
        "PurchasingProcessingStatus": "02",
        "Supplier": "17300001",
        "DocumentCurrency": "USD",
        "CreationDate": "/Date(1473638400000)/",
        "PurchaseOrderDate": "/Date(1473638400000)/",
        "LastChangeDateTime": null,
        "to_PurchaseOrderItem": items["d"],
    });
    let def = ironbridge_connectors::sap::DESCRIPTOR
        .mapping(Entity::PURCHASE_ORDER)
        .unwrap();
    let mapped = def.apply("conn_test", &order).unwrap();
    let line = &mapped.data["line_items"][0];
    assert_eq!(
        line["quantity"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        Decimal::ONE
    );
    assert_eq!(
        line["unit_price"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        Decimal::new(4000, 2)
    );
    assert_eq!(line["unit_of_measure"], "PC");
    decode_all(
        &ironbridge_connectors::sap::DESCRIPTOR,
        Entity::PURCHASE_ORDER,
        &[order],
    );
}
