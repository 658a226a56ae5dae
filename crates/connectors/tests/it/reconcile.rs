//! Creates whose answer is lost, against each emulator: the connector reports the outcome
//! unknown without sending the create again; `core::reconcile` finds the record by the
//! reference the create wrote (NetSuite `externalId`, SAP `CorrespncExternalReference`,
//! Business Central `shipToContact`), and the emulator's request log shows one create per
//! record. A create that never reached the source is written once; one refused before
//! processing is not applied and not resent.

use std::sync::Arc;

use ironbridge_core::connector::{
    Connector, ConnectorError, PurchaseOrderLineWrite, PurchaseOrderWrite, ReadWindow, UnifiedWrite,
};
use ironbridge_core::reconcile::{Created, Outcome, create_once};
use ironbridge_core::runtime::ConnectionRuntime;
use ironbridge_core::service::ServiceError;
use ironbridge_emulators::RunningEmulator;
use ironbridge_model::Entity;
use rust_decimal::Decimal;
use serde_json::{Map, json};

use crate::sap::{admin, decode_all, read_all};

/// One system's connector and emulator, and where its orders keep what the test looks at.
struct Case {
    emu: RunningEmulator,
    connector: Arc<dyn Connector>,
    runtime: ConnectionRuntime,
    /// The end of the create's path (`/record/v1/purchaseOrder`, ...).
    create_path: &'static str,
    /// The raw record's key and reference fields.
    key: &'static str,
    reference_field: &'static str,
    /// A valid order, without a reference.
    order: UnifiedWrite,
}

fn line(item: &str, quantity: i64) -> PurchaseOrderLineWrite {
    PurchaseOrderLineWrite {
        item_remote_id: item.into(),
        quantity: Decimal::from(quantity),
        unit_price: Some(Decimal::new(1250, 2)),
        description: None,
        unit_of_measure: None,
        expected_delivery_date: None,
    }
}

fn order(vendor: &str, item: &str) -> UnifiedWrite {
    UnifiedWrite::from(&PurchaseOrderWrite {
        number: None,
        vendor_remote_id: vendor.into(),
        location_remote_id: None,
        currency: None,
        order_date: Some("2026-01-05".into()),
        expected_delivery_date: None,
        memo: None,
        custom_fields: Map::new(),
        lines: vec![line(item, 2)],
    })
}

impl Case {
    fn new(
        emu: RunningEmulator,
        connector: Arc<dyn Connector>,
        create_path: &'static str,
        key: &'static str,
        reference_field: &'static str,
        order: UnifiedWrite,
    ) -> Self {
        Case {
            runtime: ConnectionRuntime::new("conn_test", connector.clone()),
            emu,
            connector,
            create_path,
            key,
            reference_field,
            order,
        }
    }

    fn with(&self, reference: Option<&str>) -> UnifiedWrite {
        UnifiedWrite {
            reference: reference.map(str::to_string),
            ..self.order.clone()
        }
    }

    /// Creates the emulator received.
    async fn creates(&self) -> usize {
        let log = admin(&self.emu, "GET", "/requests", None).await;
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["method"] == "POST" && e["path"].as_str().unwrap().ends_with(self.create_path)
            })
            .count()
    }

    /// Orders the emulator holds.
    async fn orders(&self) -> u64 {
        admin(&self.emu, "GET", "", None).await["counts"]["purchase_orders"]
            .as_u64()
            .unwrap()
    }

    async fn lose_next_answer(&self, mode: &str) {
        admin(
            &self.emu,
            "PUT",
            "/faults",
            Some(
                json!({"lose_answer": {"count": 1, "mode": mode, "method": "POST",
                "path_contains": self.create_path}}),
            ),
        )
        .await;
    }

    fn check_found(&self, created: &Created, reference: &str) {
        assert_eq!(created.outcome, Outcome::Found, "{reference}");
        assert_eq!(created.raw[self.reference_field], json!(reference));
        decode_all(
            self.connector.descriptor(),
            Entity::PURCHASE_ORDER,
            std::slice::from_ref(&created.raw),
        );
    }
}

fn unknown(result: Result<impl std::fmt::Debug, ServiceError>) -> String {
    match result {
        Err(ServiceError::Connector(ConnectorError::OutcomeUnknown(why))) => why,
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

/// The whole story on one system.
async fn lost_answers_are_reconciled_by_reference(case: Case) {
    let po = Entity::PURCHASE_ORDER;
    let rt = &case.runtime;
    // A first create warms the connection up (token, CSRF session); it carries no reference.
    let plain = create_once(rt, po, &case.with(None), false).await.unwrap();
    assert_eq!(plain.outcome, Outcome::Written);
    let (mut creates, mut orders) = (case.creates().await, case.orders().await);

    // The source applies the create and the connection drops mid-answer: the outcome is
    // unknown and the create is not sent again.
    case.lose_next_answer("drop").await;
    let lost = case.with(Some("IBLOST000001"));
    let why = unknown(rt.create(po, &lost).await);
    assert!(!why.is_empty());
    creates += 1;
    orders += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );
    // Reconciled later (the earlier attempt's outcome unknown): found, not written again.
    let found = create_once(rt, po, &lost, true).await.unwrap();
    case.check_found(&found, "IBLOST000001");
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );
    // It is the order the source holds under that reference.
    let again = rt.find_written(po, "IBLOST000001").await.unwrap().unwrap();
    assert_eq!(again[case.key], found.raw[case.key]);

    // A gateway answers 504 after the source applied the create: the same call reads it back.
    case.lose_next_answer("gateway_timeout").await;
    let gateway = case.with(Some("IBGATEWAY002"));
    let found = create_once(rt, po, &gateway, false).await.unwrap();
    case.check_found(&found, "IBGATEWAY002");
    creates += 1;
    orders += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );

    // A create that never reached the source (its attempt was recorded, never sent): nothing
    // is found, so it is written, once, and the reference round-trips.
    let never = case.with(Some("IBNEVER00003"));
    let written = create_once(rt, po, &never, true).await.unwrap();
    assert_eq!(written.outcome, Outcome::Written);
    assert_eq!(written.raw[case.reference_field], json!("IBNEVER00003"));
    creates += 1;
    orders += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );
    let read_back = rt.find_written(po, "IBNEVER00003").await.unwrap().unwrap();
    assert_eq!(read_back[case.key], written.raw[case.key]);
    assert!(rt.find_written(po, "IBNOSUCH0004").await.unwrap().is_none());

    // A 503 without Retry-After (here a refusal before processing, but the client cannot
    // know): sent once, not applied, the outcome unknown even after the read-back; the later
    // reconciliation writes it once.
    admin(
        &case.emu,
        "PUT",
        "/faults",
        Some(
            json!({"next_errors": {"count": 1, "status": 503, "body": "unavailable",
            "content_type": "text/plain"}}),
        ),
    )
    .await;
    let refused = case.with(Some("IBREFUSED005"));
    let why = unknown(create_once(rt, po, &refused, false).await);
    assert!(why.contains("503") && why.contains("IBREFUSED005"), "{why}");
    creates += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );
    let written = create_once(rt, po, &refused, true).await.unwrap();
    assert_eq!(written.outcome, Outcome::Written);
    creates += 1;
    orders += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );

    // Without a reference, an unknown outcome cannot be reconciled: nothing is written again.
    let why = unknown(create_once(rt, po, &case.with(None), true).await);
    assert!(why.contains("no reference"), "{why}");
    case.lose_next_answer("drop").await;
    unknown(create_once(rt, po, &case.with(None), false).await);
    creates += 1;
    orders += 1;
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates, orders)
    );

    // A reference that does not fit every system is refused before anything is sent.
    for bad in ["IBTHIRTEEN013", "IB-DASH", ""] {
        match create_once(rt, po, &case.with(Some(bad)), false).await {
            Err(ServiceError::Connector(ConnectorError::InvalidSettings { param, .. })) => {
                assert_eq!(param, "reference")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(case.creates().await, creates);
    case.emu.shutdown().await;
}

#[tokio::test]
async fn netsuite_lost_answers_are_found_by_external_id() {
    let env = crate::netsuite::start(20).await;
    let connector = env.connector(&env.generated_credentials().await);
    let case = Case::new(
        env.emu,
        connector,
        "/record/v1/purchaseOrder",
        "id",
        "externalId",
        order("1", "1"),
    );
    let rt = &case.runtime;
    let po = Entity::PURCHASE_ORDER;
    // NetSuite keeps external ids unique: a blind second create is refused, and reconciling
    // it answers the order the first one wrote.
    let first = create_once(rt, po, &case.with(Some("IBDUP0000001")), false)
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Written);
    let orders = case.orders().await;
    match rt.create(po, &case.with(Some("IBDUP0000001"))).await {
        Err(ServiceError::Connector(ConnectorError::BusinessRule { param, .. })) => {
            assert_eq!(param.as_deref(), Some("reference"))
        }
        other => panic!("expected the duplicate to be refused, got {other:?}"),
    }
    let again = create_once(rt, po, &case.with(Some("IBDUP0000001")), false)
        .await
        .unwrap();
    case.check_found(&again, "IBDUP0000001");
    assert_eq!(again.raw["id"], first.raw["id"]);
    assert_eq!(case.orders().await, orders);
    lost_answers_are_reconciled_by_reference(case).await;
}

#[tokio::test]
async fn sap_lost_answers_are_found_by_your_reference() {
    let s = crate::sap::setup(20, json!({}), false).await;
    let (orders, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::ALL,
    )
    .await
    .unwrap();
    let vendor = orders[0]["Supplier"].as_str().unwrap().to_string();
    let material = orders[0]["to_PurchaseOrderItem"]["results"][0]["Material"]
        .as_str()
        .unwrap()
        .to_string();
    let case = Case::new(
        s.emu,
        s.connector,
        "/A_PurchaseOrder",
        "PurchaseOrder",
        "CorrespncExternalReference",
        order(&vendor, &material),
    );
    lost_answers_are_reconciled_by_reference(case).await;
}

#[tokio::test]
async fn business_central_lost_answers_are_found_by_ship_to_contact() {
    let s = crate::bc::setup(20, 50).await;
    let (orders, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::ALL,
    )
    .await
    .unwrap();
    let vendor = orders[0]["vendorId"].as_str().unwrap().to_string();
    let item = orders[0]["purchaseOrderLines"][0]["itemId"]
        .as_str()
        .unwrap()
        .to_string();
    let case = Case::new(
        s.emu,
        s.connector,
        "/purchaseOrders",
        "id",
        "shipToContact",
        order(&vendor, &item),
    );
    lost_answers_are_reconciled_by_reference(case).await;
}

#[tokio::test]
async fn a_create_refused_before_processing_is_resent_and_written_once() {
    let s = crate::bc::setup(10, 50).await;
    let (orders, _) = read_all(
        s.connector.as_ref(),
        Entity::PURCHASE_ORDER,
        &ReadWindow::ALL,
    )
    .await
    .unwrap();
    let vendor = orders[0]["vendorId"].as_str().unwrap().to_string();
    let item = orders[0]["purchaseOrderLines"][0]["itemId"]
        .as_str()
        .unwrap()
        .to_string();
    let case = Case::new(
        s.emu,
        s.connector,
        "/purchaseOrders",
        "id",
        "shipToContact",
        order(&vendor, &item),
    );
    let (creates, orders) = (case.creates().await, case.orders().await);
    // Business Central's 429 says the request was not processed: the write is sent again.
    admin(
        &case.emu,
        "PUT",
        "/faults",
        Some(json!({"rate_limit": {"count": 1, "retry_after_secs": 1}})),
    )
    .await;
    let written = create_once(
        &case.runtime,
        Entity::PURCHASE_ORDER,
        &case.with(Some("IBTHROTTLED1")),
        false,
    )
    .await
    .unwrap();
    assert_eq!(written.outcome, Outcome::Written);
    assert_eq!(
        (case.creates().await, case.orders().await),
        (creates + 2, orders + 1)
    );
    case.emu.shutdown().await;
}
