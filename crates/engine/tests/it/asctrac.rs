//! ASCTrac through the real connector and the sync runner against its emulator, in-process:
//! every outbox read and acknowledged exactly once (a run killed between a page's commit and
//! its acknowledgement included), the store equal to what the emulator exported, the audit as
//! a whole read whose vanished levels are marked deleted, each quirk parsed, the imports'
//! answers, the import lock, and refused credentials.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;

use async_trait::async_trait;
use ironbridge_connectors::asctrac::rows;
use ironbridge_connectors::sleeper::RecordingSleeper;
use ironbridge_core::ManualClock;
use ironbridge_core::connector::{
    Connector, ConnectorError, CreateRecords, RawPage, ReadWindow, Source, UnifiedWrite,
    UpdateRecords,
};
use ironbridge_emulators::{EmulatorConfig, System};
use ironbridge_engine::sync::SyncError;
use ironbridge_model::Entity;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Map, Value, json};

use crate::support::{Env, drive_until_killed, env_for, report, status, stored, sync};

const SEED: u64 = 11;
/// Warehouse events in the log at the start: a few hundred rows over the four outboxes.
const EVENTS: u64 = 600;

/// The outbox entities, with their export controllers and query overloads.
const OUTBOXES: [(Entity, &str, &str); 4] = [
    (
        Entity::RECEIPT,
        "POLicensesExport",
        "aOnlySendCompletedReceipt=true",
    ),
    (
        Entity::INVENTORY_TRANSACTION,
        "TranFileExport",
        "aCustID=&aExcludeTrantype=",
    ),
    (Entity::SHIPMENT, "CustOrderExport", "aCustID="),
    (Entity::OUTBOUND_ORDER, "CustOrderStatusExport", "aCustID="),
];

struct Wh {
    emu: Emulated,
    env: Env,
}

impl Wh {
    async fn start(settings: Value) -> Wh {
        let mut config = EmulatorConfig::new(System::Asctrac, SEED, EVENTS);
        config.asctrac = serde_json::from_value(settings).unwrap();
        let mut emu = Emulated::start_with(config).await;
        // Small pages: every outbox takes several.
        emu.settings.insert("page_size".into(), json!(40));
        let env = env_for("asctrac", ManualClock::new(emu.now())).await;
        Wh { emu, env }
    }

    fn connector(&self) -> Arc<dyn Connector> {
        self.emu.connector(
            Arc::new(self.env.clock.clone()),
            Arc::new(RecordingSleeper::new(self.env.clock.clone())),
        )
    }

    async fn outbox(&self) -> Value {
        self.emu.admin("GET", "/asctrac/outbox", None).await
    }
}

/// The source keys an identical emulator's exports hold, per outbox entity: what a complete
/// read must store. Read with the connector's own row functions from a twin emulator, so the
/// one under test is not touched.
async fn exported(settings: Value) -> Vec<(Entity, BTreeSet<String>)> {
    let mut config = EmulatorConfig::new(System::Asctrac, SEED, EVENTS);
    config.asctrac = serde_json::from_value(settings).unwrap();
    let twin = Emulated::start_with(config).await;
    let base = twin.emulator.base_url();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/api/Authorize"))
        .json(&json!({"client_id": twin.credentials["client_id"],
            "client_secret": twin.credentials["client_secret"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let mut out = Vec::new();
    for (entity, controller, query) in OUTBOXES {
        let text = http
            .get(format!("{base}/api/{controller}?{query}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let rows: Vec<Map<String, Value>> = serde_json::from_str(&text).unwrap();
        let keys = rows
            .into_iter()
            .map(|m| {
                let mut v = Value::Object(m);
                rows::normalize(&mut v, &rows::SiteZone::named("America/New_York").unwrap());
                rows::key(entity, v.as_object().unwrap())
            })
            .collect();
        out.push((entity, keys));
    }
    out
}

/// Asserts the store holds exactly the exported rows' keys, and the emulator's outboxes are
/// empty with every row acknowledged exactly once.
async fn assert_complete(wh: &Wh, expected: &[(Entity, BTreeSet<String>)], ctx: &str) {
    for (entity, keys) in expected {
        let got: BTreeSet<String> = stored(&wh.env, *entity)
            .await
            .into_iter()
            .map(|r| r.remote_id)
            .collect();
        let all = stored(&wh.env, *entity).await.len();
        assert_eq!(all, got.len(), "{ctx} {entity}: no key stored twice");
        assert_eq!(
            &got, keys,
            "{ctx} {entity}: the store holds what was exported"
        );
        assert!(!keys.is_empty(), "{ctx} {entity}");
    }
    let outbox = wh.outbox().await;
    for (_, controller, _) in OUTBOXES {
        let c = &outbox[controller];
        assert_eq!(
            (c["F"].as_u64(), c["S"].as_u64(), c["E"].as_u64()),
            (Some(0), Some(0), Some(0)),
            "{ctx} {controller}: the outbox ends empty: {c}"
        );
        assert_eq!(
            c["acknowledged"], c["T"],
            "{ctx} {controller}: each row acknowledged once: {c}"
        );
        assert_eq!(
            c["no_op_acknowledgements"], 0,
            "{ctx} {controller}: no acknowledgement of a row not served: {c}"
        );
    }
}

#[tokio::test]
async fn every_outbox_row_is_stored_and_acknowledged_exactly_once() {
    let wh = Wh::start(json!({})).await;
    let expected = exported(json!({})).await;
    let reports = sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();
    for (entity, keys) in &expected {
        let r = report(&reports, *entity);
        assert!(r.pages >= 2, "{entity}: several pages: {r:?}");
        assert_eq!(r.counts.added, keys.len() as u64, "{entity}: {r:?}");
        assert!(r.acknowledged >= 2, "{entity}: {r:?}");
    }
    assert_complete(&wh, &expected, "first sync").await;
    // Levels, items and facilities from the audit.
    assert!(report(&reports, Entity::INVENTORY_LEVEL).counts.added > 0);
    assert_eq!(report(&reports, Entity::LOCATION).counts.added, 3);
    // The dock schedule of the two configured doors, in each facility, over the horizon.
    let docks = stored(&wh.env, Entity::DOCK_APPOINTMENT).await;
    assert!(!docks.is_empty());
    for d in &docks {
        let v: Value = serde_json::from_str(&d.data).unwrap();
        assert!(["D1", "D2"].contains(&v["dock"].as_str().unwrap()), "{v}");
        assert!(v["location_id"].as_str().unwrap().starts_with("loc_"));
        assert!(v["scheduled_start"].as_str().unwrap().ends_with('Z'));
        assert_ne!(
            v["status"], "completed",
            "completed appointments are not listed"
        );
    }
    // An empty outbox answers the "No Records Found" object: the next sync reads nothing.
    wh.env.clock.advance_secs(60);
    let again = sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();
    for (entity, _) in &expected {
        assert_eq!(report(&again, *entity).counts.added, 0, "{entity}");
    }
    // Time passes at the warehouse: new rows flow in and are read once.
    wh.emu
        .admin("POST", "/clock", Some(json!({"advance_seconds": 3600})))
        .await;
    wh.env.clock.advance_secs(3600);
    let later = sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();
    let added: u64 = expected
        .iter()
        .map(|(e, _)| report(&later, *e).counts.added)
        .sum();
    assert!(added > 0, "{later:?}");
    let outbox = wh.outbox().await;
    for (_, controller, _) in OUTBOXES {
        assert_eq!(outbox[controller]["S"], 0, "{controller}");
        assert_eq!(outbox[controller]["acknowledged"], outbox[controller]["T"]);
    }
}

/// A connector whose `kill_at`-th acknowledgement never returns: the process dies after the
/// page was committed and before the source heard of it.
struct KilledBeforeAck {
    inner: Arc<dyn Connector>,
    kill_at: u32,
    acks: AtomicU32,
    reached: Arc<AtomicBool>,
}

impl Connector for KilledBeforeAck {
    fn descriptor(&self) -> &'static ironbridge_core::system::SystemDescriptor {
        self.inner.descriptor()
    }
    fn creates(&self) -> Option<&dyn CreateRecords> {
        self.inner.creates()
    }
    fn updates(&self) -> Option<&dyn UpdateRecords> {
        self.inner.updates()
    }
}

#[async_trait]
impl Source for KilledBeforeAck {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.inner.check().await
    }
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        self.inner.fetch_page(entity, window, cursor).await
    }
    async fn acknowledge(&self, entity: Entity, receipt: &str) -> Result<(), ConnectorError> {
        if self.acks.fetch_add(1, Ordering::SeqCst) == self.kill_at {
            self.reached.store(true, Ordering::SeqCst);
            return std::future::pending().await;
        }
        self.inner.acknowledge(entity, receipt).await
    }
}

#[tokio::test]
async fn a_run_killed_between_commit_and_acknowledgement_loses_and_doubles_nothing() {
    let expected = exported(json!({})).await;
    let mut kills = 0;
    for round in 0..3u32 {
        let wh = Wh::start(json!({})).await;
        // A pseudo-random acknowledgement among the run's (about twenty).
        let kill_at = (round * 7 + SEED as u32) % 17;
        let killable = KilledBeforeAck {
            inner: wh.connector(),
            kill_at,
            acks: AtomicU32::new(0),
            reached: Arc::new(AtomicBool::new(false)),
        };
        let reached = killable.reached.clone();
        let outcome = drive_until_killed(sync(&wh.env, &killable, false), reached).await;
        assert!(outcome.is_none(), "round {round}: the run was killed");
        kills += 1;
        drop(killable);
        let sent: u64 = {
            let outbox = wh.outbox().await;
            OUTBOXES
                .iter()
                .map(|(_, c, _)| outbox[c]["S"].as_u64().unwrap())
                .sum()
        };
        assert!(
            sent > 0,
            "round {round}: rows were committed, not acknowledged"
        );
        // The process restarts: a new connector, the same store.
        wh.env.clock.advance_secs(60);
        sync(&wh.env, wh.connector().as_ref(), false)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_complete(
            &wh,
            &expected,
            &format!("round {round} (kill at {kill_at})"),
        )
        .await;
    }
    assert_eq!(kills, 3);
}

#[tokio::test]
async fn quirks_switched_off_read_the_same_and_a_vanished_level_is_marked_deleted() {
    // The same site with every quirk off: JSON content type, `[]`, dates with `Z`, no
    // MinValue, whole numbers without `.0`.
    let plain = json!({"export_text_plain": false, "no_records_object": false,
        "naive_dates": false, "local_offset_now": false, "min_date_unset": false,
        "double_point_zero": false});
    let wh = Wh::start(plain.clone()).await;
    let expected = exported(plain).await;
    sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();
    assert_complete(&wh, &expected, "quirks off").await;
    wh.env.clock.advance_secs(60);
    sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();

    // With the quirks on, a zone-less time is the site's wall clock (-05:00 in the tests'
    // connection settings): the same transaction reads the same instant.
    let quirky = Wh::start(json!({})).await;
    sync(&quirky.env, quirky.connector().as_ref(), false)
        .await
        .unwrap();
    let times = |records: Vec<ironbridge_core::store::StoredRecord>| {
        records
            .into_iter()
            .map(|r| {
                let v: Value = serde_json::from_str(&r.data).unwrap();
                (
                    r.remote_id,
                    v["occurred_at"].clone(),
                    v["expiration_date"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = times(stored(&wh.env, Entity::INVENTORY_TRANSACTION).await);
    let b = times(stored(&quirky.env, Entity::INVENTORY_TRANSACTION).await);
    assert_eq!(
        a, b,
        "naive dates are read in the site's offset; MinValue is no date"
    );
    assert!(a.iter().all(|(_, t, e)| t.is_string() && e.is_null()));

    // The audit with lots: every lot-less level vanishes and is marked deleted.
    let levels = stored(&wh.env, Entity::INVENTORY_LEVEL).await.len();
    wh.emu
        .admin("PATCH", "/settings", Some(json!({"audit_lot": true})))
        .await;
    wh.env.clock.advance_secs(60);
    let reports = sync(&wh.env, wh.connector().as_ref(), false).await.unwrap();
    let r = report(&reports, Entity::INVENTORY_LEVEL);
    assert!(r.counts.deleted > 0, "{r:?}");
    let deleted = stored(&wh.env, Entity::INVENTORY_LEVEL)
        .await
        .into_iter()
        .filter(|r| r.remote_was_deleted)
        .count();
    assert!(deleted > 0 && deleted <= levels, "{deleted} of {levels}");
}

#[tokio::test]
async fn refused_credentials_require_reauthorization() {
    let wh = Wh::start(json!({})).await;
    wh.emu.admin("POST", "/credentials/revoke", None).await;
    let err = sync(&wh.env, wh.connector().as_ref(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Connector(ConnectorError::Unauthorized)),
        "{err:?}"
    );
    assert_eq!(status(&wh.env).await, "reauthorization_required");
    // Nothing was acknowledged: the outboxes are untouched.
    let outbox = wh.outbox().await;
    for (_, controller, _) in OUTBOXES {
        assert_eq!(outbox[controller]["T"], 0, "{controller}");
    }
}

fn write(fields: Value) -> UnifiedWrite {
    UnifiedWrite {
        fields: fields.as_object().unwrap().clone(),
        reference: None,
    }
}

fn order(number: &str, items: &[&str]) -> UnifiedWrite {
    let lines: Vec<Value> = items
        .iter()
        .map(|i| json!({"item_id": i, "quantity_ordered": "3", "unit_price": "9.5"}))
        .collect();
    write(
        json!({"number": number, "location_id": "01", "customer_code": "C00001",
        "ship_to": {"name": "Acme", "city": "Dayton"}, "line_items": lines}),
    )
}

#[tokio::test]
async fn imports_succeed_fail_and_refuse_partial_acceptance_with_the_missing_items() {
    let wh = Wh::start(json!({})).await;
    let c = wh.connector();
    let creates = c.creates().unwrap();
    let item = creates
        .create(
            Entity::ITEM,
            &write(json!({"code": "WIDGET-1", "name": "Widget", "unit_cost": "2.50"})),
        )
        .await
        .unwrap();
    assert_eq!(item["PRODUCT_CODE"], "WIDGET-1");
    let def = c.descriptor().mapping(Entity::ITEM).unwrap();
    assert_eq!(def.apply("conn_1", &item).unwrap().data["name"], "Widget");
    let created = creates
        .create(
            Entity::OUTBOUND_ORDER,
            &order("SO-T1", &["ITEM-000001", "WIDGET-1"]),
        )
        .await
        .unwrap();
    let mapped = c
        .descriptor()
        .mapping(Entity::OUTBOUND_ORDER)
        .unwrap()
        .apply("conn_1", &created)
        .unwrap();
    assert_eq!(mapped.data["status"], "open");
    assert_eq!(mapped.data["line_items"].as_array().unwrap().len(), 2);
    // Unknown items: ASCTrac keeps the rest and says so in a 200; Ironbridge refuses.
    let err = creates
        .create(
            Entity::OUTBOUND_ORDER,
            &order("SO-T2", &["ITEM-000002", "GHOST-1", "GHOST-2"]),
        )
        .await
        .unwrap_err();
    match &err {
        ConnectorError::PartialAcceptance {
            message,
            param,
            missing,
        } => {
            assert_eq!(missing, &["GHOST-1", "GHOST-2"]);
            assert!(message.contains("GHOST-1, GHOST-2"), "{message}");
            assert_eq!(param, "line_items");
        }
        other => panic!("{other:?}"),
    }
    // The API's answer: a 422 naming what was left out.
    let refusal = ironbridge_core::refusal::of_connector(&err)
        .unwrap()
        .to_json();
    assert_eq!(refusal["code"], "BUSINESS_RULE_VIOLATION");
    assert_eq!(refusal["param"], "line_items");
    assert_eq!(
        refusal["details"],
        json!({"remote_code": "PARTIAL_ACCEPTANCE", "missing_items": ["GHOST-1", "GHOST-2"]})
    );
    // Failures, classified.
    let mut bad = order("SO-T3", &["ITEM-000001"]);
    bad.fields.insert("location_id".into(), json!("99"));
    let err = creates
        .create(Entity::OUTBOUND_ORDER, &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::BusinessRule { param: Some(p), .. } if p == "location_id"),
        "{err:?}"
    );
    // Ship it; shipping again, or changing it, is refused by its state.
    let updates = c.updates().unwrap();
    let shipped = updates
        .update(
            Entity::OUTBOUND_ORDER,
            "SO-T1",
            &write(json!({"status": "shipped"})),
        )
        .await
        .unwrap();
    assert_eq!(shipped["PICKSTATUS"], "S");
    let err = updates
        .update(
            Entity::OUTBOUND_ORDER,
            "SO-T1",
            &write(json!({"status": "shipped"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::State { .. }), "{err:?}");
    let err = creates
        .create(Entity::OUTBOUND_ORDER, &order("SO-T1", &["ITEM-000001"]))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::State { .. }), "{err:?}");
    // The database fault is the source's failure, not the caller's.
    wh.emu
        .admin("PATCH", "/settings", Some(json!({"db_init_failure": true})))
        .await;
    let err = creates
        .create(Entity::OUTBOUND_ORDER, &order("SO-T4", &["ITEM-000001"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Upstream(_) | ConnectorError::OutcomeUnknown(_)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn concurrent_order_imports_serialize_without_errors() {
    let wh = Wh::start(json!({"slow_import_ms": 40})).await;
    let c = wh.connector();
    let creates = c.creates().unwrap();
    let writes: Vec<UnifiedWrite> = (0..6)
        .map(|i| order(&format!("SO-C{i}"), &["ITEM-000001"]))
        .collect();
    let calls: Vec<_> = writes
        .iter()
        .map(|w| creates.create(Entity::OUTBOUND_ORDER, w))
        .collect();
    let mut pending: Vec<_> = calls.into_iter().map(Box::pin).map(Some).collect();
    let mut results = Vec::new();
    std::future::poll_fn(|cx| {
        for slot in pending.iter_mut() {
            if let Some(f) = slot
                && let Poll::Ready(r) = f.as_mut().poll(cx)
            {
                results.push(r);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let records = wh.emu.admin("GET", "/asctrac/records", None).await;
    assert_eq!(records["max_concurrent_imports"]["customer_order"], 1);
    assert_eq!(records["customer_orders"].as_object().unwrap().len(), 6);
}
