//! The seams every system goes through: each connector passes the conformance harness
//! against its live source (and the harness fails a connector whose descriptor lies); the
//! example system, added as one module, one registry line and one mapping file, syncs
//! through the real engine; and each read kind (whole, feed, outbox, time series) keeps its
//! promise: what is swept, where a feed continues, when an outbox is acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ironbridge_core::clock::RecordingSleeper;
use ironbridge_core::connector::{
    Connector, ConnectorError, RawPage, ReadWindow, Source, UnifiedWrite,
};
use ironbridge_core::sandbox::SandboxConnector;
use ironbridge_core::source_record::SourceRecord;
use ironbridge_core::store::WrittenRecord;
use ironbridge_core::system::{
    CustomFields, Limits, Mappings, ReadSpec, SystemDescriptor, WriteSpec,
};
use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::System;
use ironbridge_model::api::{DeletionDetection, ReadKind};
use ironbridge_model::{Entity, Timestamp};
use ironbridge_testkit::conformance;
use ironbridge_testkit::emulated::Emulated;
use ironbridge_testkit::example;
use serde_json::{Value, json};

use crate::support::{Env, count, env_for, report, stored, sync};

async fn conforms(c: &dyn Connector) {
    let problems = conformance::check(c).await;
    assert!(problems.is_empty(), "{}: {problems:#?}", c.descriptor().id);
}

async fn emulated_conforms(system: System) {
    let emulated = Emulated::start(system, 3, 300).await;
    let clock = ManualClock::new(emulated.now());
    let c = emulated.connector(
        Arc::new(clock.clone()),
        Arc::new(RecordingSleeper::new(clock)),
    );
    conforms(c.as_ref()).await;
}

#[tokio::test]
async fn netsuite_conforms_to_its_descriptor() {
    emulated_conforms(System::NetSuite).await;
}

#[tokio::test]
async fn sap_conforms_to_its_descriptor() {
    emulated_conforms(System::SapS4Hana).await;
}

#[tokio::test]
async fn business_central_conforms_to_its_descriptor() {
    emulated_conforms(System::BusinessCentral).await;
}

#[tokio::test]
async fn asctrac_conforms_to_its_descriptor() {
    emulated_conforms(System::Asctrac).await;
}

#[tokio::test]
async fn samsara_conforms_to_its_descriptor() {
    // Samsara's emulator seeds no dispatch routes: one is created through the connector's
    // own write, as a dispatcher would.
    let emulated = Emulated::start(System::Samsara, 3, 300).await;
    let clock = ManualClock::new(emulated.now());
    let c = emulated.connector(
        Arc::new(clock.clone()),
        Arc::new(RecordingSleeper::new(clock)),
    );
    let route = json!({"name": "Conformance",
        "scheduled_start_at": emulated.now().plus_secs(3600).to_rfc3339(),
        "stops": [{"latitude": 33.7, "longitude": -84.4}]});
    let write = UnifiedWrite {
        fields: route.as_object().cloned().unwrap_or_default(),
        reference: None,
    };
    let writer = c.creates().expect("Samsara creates routes");
    writer
        .create(Entity::DISPATCH_ROUTE, &write)
        .await
        .expect("the route is created");
    conforms(c.as_ref()).await;
}

#[tokio::test]
async fn nextraq_conforms_to_its_descriptor() {
    emulated_conforms(System::NexTraq).await;
}

#[tokio::test]
async fn the_sandbox_conforms_to_its_descriptor() {
    let clock = ManualClock::new(ironbridge_core::sandbox::data::anchor());
    let c = SandboxConnector::new(&serde_json::Map::new(), None, Arc::new(clock)).unwrap();
    conforms(&c).await;
}

/// A table of `n` locations, modified a day apart up to `last`.
fn seeded_table(name: &str, n: i64, last: Timestamp) -> Arc<example::Table> {
    let table = example::table_named(name);
    for i in 0..n {
        table.put(
            &format!("L{i:03}"),
            &format!("Location {i}"),
            last.plus_secs(-86_400 * (n - 1 - i)),
        );
    }
    table
}

fn example_connector(table: &str, clock: &ManualClock) -> Arc<dyn Connector> {
    let (settings, credentials) = example::connection(table);
    example::DESCRIPTOR
        .connect(
            &settings,
            Some(&credentials),
            Arc::new(clock.clone()),
            Arc::new(RecordingSleeper::new(clock.clone())),
            ironbridge_core::netguard::Egress::default(),
        )
        .unwrap()
}

#[tokio::test]
async fn the_example_conforms_to_its_descriptor() {
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap());
    seeded_table("conformance", 7, clock.now().plus_secs(-3600));
    conforms(example_connector("conformance", &clock).as_ref()).await;
}

/// The example, described as read whole although its source filters by time, and as
/// creating locations it cannot create.
struct Lying(Arc<dyn Connector>);

static LYING: SystemDescriptor = SystemDescriptor {
    reads: &[ReadSpec {
        entity: Entity::LOCATION,
        kind: ReadKind::Whole,
        deletions: DeletionDetection::Reconciliation,
        payload: ironbridge_core::system::Payload::Whole,
        follows_feed: false,
    }],
    writes: &[WriteSpec {
        entity: Entity::LOCATION,
        create: true,
        update: false,
        fields: &[],
        custom_fields: CustomFields::NONE,
    }],
    id: example::ID,
    name: "lying example",
    auth: &[],
    settings: &[],
    limits: Limits {
        concurrency: 3,
        per_second: 0.0,
        burst: 3,
        description: "",
    },
    history_days: None,
    mappings: Mappings::new(&[include_str!(
        "../../../testkit/mappings/example/location.json"
    )]),
    build: |_| Err(ConnectorError::Unsupported("built directly".into())),
};

impl Connector for Lying {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &LYING
    }
    fn read_concurrency(&self) -> usize {
        self.0.read_concurrency()
    }
}

#[async_trait]
impl Source for Lying {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.0.check().await
    }
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        self.0.fetch_page(entity, window, cursor).await
    }
}

#[tokio::test]
async fn the_harness_catches_a_descriptor_that_lies() {
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap());
    seeded_table("lying", 4, clock.now().plus_secs(-3600));
    let lying = Lying(example_connector("lying", &clock));
    let problems = conformance::check(&lying).await;
    let said = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        said("described as read whole, but it filters by time"),
        "{problems:#?}"
    );
    assert!(
        said("creates are described but not implemented"),
        "{problems:#?}"
    );
    assert!(said("documents 3"), "{problems:#?}");
    assert!(
        said("written but not read") || said("location"),
        "{problems:#?}"
    );
}

#[tokio::test]
async fn the_example_system_syncs_through_the_real_engine() {
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap());
    let env = env_for(example::ID.as_str(), clock.clone()).await;
    let table = seeded_table("engine", 40, clock.now().plus_secs(-3600));
    let c = example_connector("engine", &clock);
    let first = sync(&env, c.as_ref(), false).await.unwrap();
    let locations = report(&first, Entity::LOCATION);
    assert_eq!(locations.counts.added, 40);
    assert!(
        locations.pages >= 40 / example::PAGE as u64,
        "{locations:?}"
    );
    let codes: Vec<String> = stored(&env, Entity::LOCATION)
        .await
        .into_iter()
        .map(|r| r.remote_id)
        .collect();
    let mut expected = table.codes();
    expected.sort();
    let mut got = codes.clone();
    got.sort();
    assert_eq!(got, expected);
    // A change is read by the next (incremental) sync, and only it.
    env.clock.advance_secs(3600);
    table.put("L005", "Renamed", env.clock.now().plus_secs(-600));
    let second = sync(&env, c.as_ref(), false).await.unwrap();
    let locations = report(&second, Entity::LOCATION);
    assert_eq!((locations.counts.updated, locations.counts.added), (1, 0));
    let renamed = stored(&env, Entity::LOCATION)
        .await
        .into_iter()
        .find(|r| r.remote_id == "L005")
        .unwrap();
    let data: Value = serde_json::from_str(&renamed.data).unwrap();
    assert_eq!(
        (&data["name"], &data["custom_fields"]),
        (&json!("Renamed"), &json!({"x_dock_doors": 4}))
    );
    // A location the source forgot is marked deleted by the next full sync.
    table.remove("L007");
    env.clock.advance_secs(60);
    let full = sync(&env, c.as_ref(), true).await.unwrap();
    assert_eq!(report(&full, Entity::LOCATION).counts.deleted, 1);
    assert_eq!(count(&env, Entity::LOCATION).await, 40);
}

/// A source of locations whose read kind the test chooses: an append-only log read as a
/// feed (the cursor is a sequence number), an outbox emptied by acknowledgements, a whole
/// list, or a time series.
pub(crate) struct Kinded {
    descriptor: &'static SystemDescriptor,
    pub(crate) rows: Mutex<Vec<Value>>,
    /// The outbox: rows not acknowledged yet.
    outbox: Mutex<VecDeque<Value>>,
    fetched: AtomicU32,
    acknowledged: AtomicU32,
    /// The next acknowledgement fails (as a source that is down right then).
    refuse_ack: AtomicBool,
}

pub(crate) const KIND_PAGE: usize = 4;

macro_rules! kinded_descriptor {
    ($name:ident, $kind:expr) => {
        kinded_descriptor!($name, $kind, Whole);
    };
    ($name:ident, $kind:expr, $payload:ident) => {
        pub(crate) static $name: SystemDescriptor = SystemDescriptor {
            reads: &[ReadSpec {
                entity: Entity::LOCATION,
                kind: $kind,
                deletions: DeletionDetection::Flagged,
                payload: ironbridge_core::system::Payload::$payload,
                follows_feed: false,
            }],
            writes: &[],
            id: example::ID,
            name: "kinded example",
            auth: &[],
            settings: &[],
            limits: Limits {
                concurrency: 2,
                per_second: 0.0,
                burst: 2,
                description: "",
            },
            history_days: Some(30),
            mappings: Mappings::new(&[include_str!(
                "../../../testkit/mappings/example/location.json"
            )]),
            build: |_| Err(ConnectorError::Unsupported("built directly".into())),
        };
    };
}

kinded_descriptor!(FEED, ReadKind::Feed);
// An outbox whose rows carry some of a record's members.
kinded_descriptor!(PARTIAL, ReadKind::Outbox, Partial);
kinded_descriptor!(OUTBOX, ReadKind::Outbox);
kinded_descriptor!(WHOLE, ReadKind::Whole);
kinded_descriptor!(SERIES, ReadKind::TimeSeries);

fn row(code: &str, name: &str, at: Timestamp) -> Value {
    json!({"code": code, "name": name, "type": "DC", "open": true, "updatedAt": at.to_rfc3339()})
}

impl Kinded {
    pub(crate) fn new(descriptor: &'static SystemDescriptor) -> Kinded {
        Kinded {
            descriptor,
            rows: Mutex::default(),
            outbox: Mutex::default(),
            fetched: AtomicU32::new(0),
            acknowledged: AtomicU32::new(0),
            refuse_ack: AtomicBool::new(false),
        }
    }

    /// Appends a row (to the log, the list and the outbox alike).
    pub(crate) fn push(&self, code: &str, name: &str, at: Timestamp) {
        let r = row(code, name, at);
        self.rows.lock().unwrap().push(r.clone());
        self.outbox.lock().unwrap().push_back(r);
    }
}

impl Connector for Kinded {
    fn descriptor(&self) -> &'static SystemDescriptor {
        self.descriptor
    }
}

#[async_trait]
impl Source for Kinded {
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn fetch_page(
        &self,
        _entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let kind = self.descriptor.reads[0].kind;
        let from: usize = cursor.map_or(0, |c| c.parse().unwrap());
        let candidates: Vec<Value> = match kind {
            ReadKind::Outbox => self.outbox.lock().unwrap().iter().cloned().collect(),
            ReadKind::Feed | ReadKind::Whole => self.rows.lock().unwrap().clone(),
            _ => self
                .rows
                .lock()
                .unwrap()
                .iter()
                .filter(|r| {
                    window.contains(
                        Timestamp::parse_rfc3339(r["updatedAt"].as_str().unwrap()).unwrap(),
                    )
                })
                .cloned()
                .collect(),
        };
        let (start, page_rows) = match kind {
            // The outbox serves its head; acknowledged rows are gone from it.
            ReadKind::Outbox => (
                0,
                candidates
                    .iter()
                    .take(KIND_PAGE)
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            _ => (
                from,
                candidates
                    .iter()
                    .skip(from)
                    .take(KIND_PAGE)
                    .cloned()
                    .collect(),
            ),
        };
        self.fetched
            .fetch_add(page_rows.len() as u32, Ordering::SeqCst);
        let end = start + page_rows.len();
        let more = end < candidates.len();
        let mut page = RawPage::from_values(page_rows.clone(), more.then(|| end.to_string()));
        match kind {
            ReadKind::Feed => page.resume = Some(end.to_string()),
            ReadKind::Outbox if !page_rows.is_empty() => {
                page.receipt = Some(page_rows.len().to_string());
                // Its next page is the head again, once this one is acknowledged.
                page.next_cursor = more.then(|| "0".to_string());
            }
            _ => {}
        }
        Ok(page)
    }

    async fn acknowledge(&self, _entity: Entity, receipt: &str) -> Result<(), ConnectorError> {
        if self.refuse_ack.swap(false, Ordering::SeqCst) {
            return Err(ConnectorError::Upstream("acknowledgement refused".into()));
        }
        let n: usize = receipt.parse().unwrap();
        let mut outbox = self.outbox.lock().unwrap();
        for _ in 0..n {
            outbox.pop_front();
        }
        self.acknowledged.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

pub(crate) async fn kind_env() -> Env {
    env_for(
        example::ID.as_str(),
        ManualClock::new(Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap()),
    )
    .await
}

#[tokio::test]
async fn a_feed_continues_where_the_last_sync_stopped_and_sweeps_nothing() {
    let env = kind_env().await;
    let source = Kinded::new(&FEED);
    let at = env.clock.now().plus_secs(-3600);
    for i in 0..10 {
        source.push(&format!("F{i}"), "first", at);
    }
    let first = sync(&env, &source, false).await.unwrap();
    assert_eq!(report(&first, Entity::LOCATION).counts.added, 10);
    let state = &env.store.sync_states(&env.conn).await.unwrap()[0];
    assert_eq!(
        state.cursor.as_deref(),
        Some("10"),
        "the feed's position is kept"
    );
    // Two new entries, one of them a new version of F3: the next sync reads only those.
    source.push("F10", "new", at);
    source.push("F3", "changed", at);
    env.clock.advance_secs(60);
    let fetched = source.fetched.load(Ordering::SeqCst);
    let second = sync(&env, &source, false).await.unwrap();
    let r = report(&second, Entity::LOCATION);
    assert_eq!(
        (r.counts.added, r.counts.updated, r.counts.deleted),
        (1, 1, 0)
    );
    assert_eq!(source.fetched.load(Ordering::SeqCst) - fetched, 2);
    // Nothing new: one empty page, and the position stays.
    let third = sync(&env, &source, false).await.unwrap();
    assert_eq!(report(&third, Entity::LOCATION).counts.added, 0);
    let state = &env.store.sync_states(&env.conn).await.unwrap()[0];
    assert_eq!(state.cursor.as_deref(), Some("12"));
    // A full sync reads the feed anew, and still marks nothing deleted: a feed does not
    // list what it no longer has.
    let full = sync(&env, &source, true).await.unwrap();
    assert_eq!(report(&full, Entity::LOCATION).counts.deleted, 0);
    let f3 = stored(&env, Entity::LOCATION)
        .await
        .into_iter()
        .find(|r| r.remote_id == "F3")
        .unwrap();
    assert!(f3.data.contains("changed"), "the feed's last version wins");
}

#[tokio::test]
async fn an_outbox_is_acknowledged_only_after_its_pages_are_committed() {
    let env = kind_env().await;
    let source = Kinded::new(&OUTBOX);
    let at = env.clock.now().plus_secs(-3600);
    for i in 0..10 {
        source.push(&format!("O{i}"), "queued", at);
    }
    let first = sync(&env, &source, false).await;
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(
        source.outbox.lock().unwrap().len(),
        0,
        "emptied page by page"
    );
    assert_eq!(source.acknowledged.load(Ordering::SeqCst), 3);
    assert_eq!(count(&env, Entity::LOCATION).await, 10);
    // An acknowledgement refused after the commit: the records stay stored, the outbox keeps
    // them, and the next sync reads them again without doubling them.
    for i in 10..13 {
        source.push(&format!("O{i}"), "queued", at);
    }
    source.refuse_ack.store(true, Ordering::SeqCst);
    env.clock.advance_secs(60);
    let failed = sync(&env, &source, false).await;
    assert!(failed.is_err());
    assert_eq!(
        count(&env, Entity::LOCATION).await,
        13,
        "committed before the acknowledgement"
    );
    assert_eq!(source.outbox.lock().unwrap().len(), 3);
    env.clock.advance_secs(60);
    let again = sync(&env, &source, false).await.unwrap();
    let r = report(&again, Entity::LOCATION);
    // The failed attempt's run is resumed: its three additions count in the whole run's
    // report, and reading them again changes nothing.
    assert_eq!(
        (r.counts.added, r.counts.unchanged, r.acknowledged),
        (3, 3, 1)
    );
    assert_eq!(source.outbox.lock().unwrap().len(), 0);
    assert_eq!(count(&env, Entity::LOCATION).await, 13);
    // A full sync of an outbox sweeps nothing: what was acknowledged is not deleted.
    let full = sync(&env, &source, true).await.unwrap();
    assert_eq!(report(&full, Entity::LOCATION).counts.deleted, 0);
}

#[tokio::test]
async fn a_whole_read_is_a_complete_pass_at_every_sync() {
    let env = kind_env().await;
    let source = Kinded::new(&WHOLE);
    let at = env.clock.now().plus_secs(-3600);
    for i in 0..6 {
        source.push(&format!("W{i}"), "listed", at);
    }
    sync(&env, &source, false).await.unwrap();
    source.rows.lock().unwrap().retain(|r| r["code"] != "W2");
    env.clock.advance_secs(60);
    // Not a full sync: a source read whole shows what it no longer has every time.
    let second = sync(&env, &source, false).await.unwrap();
    assert_eq!(report(&second, Entity::LOCATION).counts.deleted, 1);
}

#[tokio::test]
async fn a_time_series_reads_its_window_and_is_never_swept() {
    let env = kind_env().await;
    let source = Kinded::new(&SERIES);
    let now = env.clock.now();
    // One observation older than the 30-day history, five within it.
    source.push("T-old", "old", now.plus_secs(-40 * 86_400));
    for i in 0..5 {
        source.push(&format!("T{i}"), "recent", now.plus_secs(-86_400 * (i + 1)));
    }
    let first = sync(&env, &source, false).await.unwrap();
    assert_eq!(report(&first, Entity::LOCATION).counts.added, 5);
    source.rows.lock().unwrap().clear();
    env.clock.advance_secs(60);
    let full = sync(&env, &source, true).await.unwrap();
    assert_eq!(
        report(&full, Entity::LOCATION).counts.deleted,
        0,
        "observations are never swept"
    );
}

#[tokio::test]
async fn a_partial_record_keeps_what_only_the_stored_record_has() {
    let env = kind_env().await;
    let source = Kinded::new(&PARTIAL);
    let at = env.clock.now().plus_secs(-3600);
    // What a write through the API stored: the whole record, with members (a name, a city)
    // that the source's outbox rows never carry.
    let def = PARTIAL.mapping(Entity::LOCATION).unwrap();
    let whole = json!({"code": "P1", "name": "Written", "type": "DC", "open": true,
        "city": "Dayton", "updatedAt": at.to_rfc3339()});
    let record = ironbridge_core::written::record_upsert(
        &env.conn.0,
        Entity::LOCATION,
        SourceRecord::from_value(&whole),
        def,
    )
    .unwrap();
    env.store
        .store_written(
            &env.conn,
            &WrittenRecord {
                entity: Entity::LOCATION,
                record,
                now: env.clock.now(),
                partial: true,
            },
            None,
        )
        .await
        .unwrap();
    // The outbox then says it closed: a row of its own shape, without the name or city.
    source.outbox.lock().unwrap().push_back(
        json!({"code": "P1", "open": false, "updatedAt": at.plus_secs(60).to_rfc3339()}),
    );
    // And a record the store never had stands as it came.
    source
        .outbox
        .lock()
        .unwrap()
        .push_back(json!({"code": "P2", "open": true, "updatedAt": at.to_rfc3339()}));
    let r = sync(&env, &source, false).await.unwrap();
    let counts = report(&r, Entity::LOCATION).counts;
    assert_eq!((counts.added, counts.updated), (1, 1));
    let all = stored(&env, Entity::LOCATION).await;
    let p1: Value =
        serde_json::from_str(&all.iter().find(|r| r.remote_id == "P1").unwrap().data).unwrap();
    assert_eq!(p1["status"], "inactive", "the row's member wins");
    assert_eq!(p1["name"], "Written", "what the row lacks is kept: {p1}");
    assert_eq!(p1["address"]["city"], "Dayton");
    let p2: Value =
        serde_json::from_str(&all.iter().find(|r| r.remote_id == "P2").unwrap().data).unwrap();
    assert!(p2["name"].is_null());
    // The raw payload is the merge too, so field mappings read the kept members.
    let raw = env
        .store
        .get_record(
            &env.conn,
            Entity::LOCATION,
            &all.iter().find(|r| r.remote_id == "P1").unwrap().id,
            true,
        )
        .await
        .unwrap()
        .unwrap()
        .raw
        .unwrap();
    let raw: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        (raw["city"].as_str(), raw["open"].as_bool()),
        (Some("Dayton"), Some(false))
    );
    // The same row again changes nothing: the merge is stable.
    source.outbox.lock().unwrap().push_back(
        json!({"code": "P1", "open": false, "updatedAt": at.plus_secs(60).to_rfc3339()}),
    );
    env.clock.advance_secs(60);
    let again = sync(&env, &source, false).await.unwrap();
    assert_eq!(report(&again, Entity::LOCATION).counts.unchanged, 1);
}
