//! Sync runner tests: against the sandbox system (here) and against the real connectors and
//! the in-process emulators (`erp`), on SQLite and, with `TEST_BACKEND=postgres`, PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use ironbridge_core::connector::*;
use ironbridge_core::sandbox::{REVOKED_API_KEY, SandboxConnector, data};
use ironbridge_core::store::*;
use ironbridge_core::system::{Mappings, ReadSpec, SystemDescriptor};
use ironbridge_core::{Clock, ManualClock};
use ironbridge_engine::sync::SyncError;
use ironbridge_model::Entity;
use ironbridge_model::api::{DeletionDetection, ReadKind};
use serde_json::{Value, json};

mod asctrac;
mod changes;
mod erp;
mod fleet;
mod nextraq;
mod seams;
mod support;
mod telemetry;
mod workers;

use support::{Env, count, env_for, events, org, status, sync};

/// A sandbox connection, a day after the sample data ends (so no record is within the
/// settle delay).
async fn env() -> Env {
    env_for(
        "sandbox",
        ManualClock::new(data::anchor().plus_secs(86_400)),
    )
    .await
}

fn sandbox(clock: &ManualClock, settings: Value, creds: Option<Value>) -> SandboxConnector {
    SandboxConnector::new(
        settings.as_object().unwrap(),
        creds.as_ref().and_then(Value::as_object),
        Arc::new(clock.clone()),
    )
    .unwrap()
}

#[tokio::test]
async fn initial_sync_stores_everything_and_a_resync_changes_nothing() {
    let env = env().await;
    let c = sandbox(&env.clock, json!({"purchase_orders": 230}), None);
    let reports = sync(&env, &c, false).await.unwrap();
    let po = reports
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap();
    assert_eq!((po.counts.added, po.pages, po.unmappable), (230, 3, 0));
    assert_eq!(count(&env, Entity::PURCHASE_ORDER).await, 230);
    assert_eq!(count(&env, Entity::VENDOR).await, 12);
    assert_eq!(status(&env).await, "online");
    env.clock.advance_secs(60);
    let again = sync(&env, &c, false).await.unwrap();
    let po = again
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap();
    // Incremental: only what changed since the last run (minus the lookback) is read.
    assert_eq!(
        (
            po.counts.added,
            po.counts.updated,
            po.counts.unchanged,
            po.pages
        ),
        (0, 0, 0, 1)
    );
    let vendors = again
        .iter()
        .find(|r| r.entity == Some(Entity::VENDOR))
        .unwrap();
    assert_eq!(
        (vendors.counts.unchanged, vendors.pages),
        (0, 1),
        "after the first run, reference data is read incrementally too"
    );
    let states = env.store.sync_states(&env.conn).await.unwrap();
    let expected_high_water = env
        .clock
        .now()
        .plus_secs(-ironbridge_engine::sync::SETTLE_SECS);
    assert!(
        states
            .iter()
            .all(|s| s.status == "succeeded" && s.cursor.is_none() && s.run_id.is_none())
    );
    assert!(
        states
            .iter()
            .all(|s| s.high_water == Some(expected_high_water)),
        "the signpost stays below now"
    );
    // A full resync reads everything again; nothing changed, nothing is swept.
    let full = sync(&env, &c, true).await.unwrap();
    let po = full
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap();
    assert_eq!((po.counts.unchanged, po.counts.deleted), (230, 0));
    let events = events(&env).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["sync.completed", "sync.completed", "sync.completed"],
        "no status change: it stayed online"
    );
    assert_eq!(events[0].1["records_added"], 230 + 12 + 40 + 6);
    assert_eq!(events[1].1["records_added"], 0);
    assert_eq!(events[1].1["entities"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_full_pass_marks_records_the_source_no_longer_has_as_deleted() {
    let env = env().await;
    let big = sandbox(&env.clock, json!({"purchase_orders": 150}), None);
    sync(&env, &big, false).await.unwrap();
    // The same source now has 30 orders fewer (the sandbox generates them in order).
    let smaller = sandbox(&env.clock, json!({"purchase_orders": 120}), None);
    env.clock.advance_secs(60);
    let incremental = sync(&env, &smaller, false).await.unwrap();
    assert_eq!(
        incremental.iter().map(|r| r.counts.deleted).sum::<u64>(),
        0,
        "an incremental window cannot see deletions"
    );
    let full = sync(&env, &smaller, true).await.unwrap();
    let po = full
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap();
    assert_eq!(po.counts.deleted, 30);
    let q = RecordQuery {
        entity: Entity::PURCHASE_ORDER,
        after_id: None,
        after_modified: None,
        modified_after: None,
        modified_before: None,
        include_deleted: false,
        include_raw: false,
        limit: 1000,
    };
    assert_eq!(env.store.count_records(&env.conn, &q).await.unwrap(), 120);
    assert_eq!(
        count(&env, Entity::PURCHASE_ORDER).await,
        150,
        "deleted records stay, flagged"
    );
}

#[tokio::test]
async fn revoked_credentials_require_reauthorization_and_keep_data() {
    let env = env().await;
    sync(&env, &sandbox(&env.clock, json!({}), None), false)
        .await
        .unwrap();
    let revoked = sandbox(
        &env.clock,
        json!({}),
        Some(json!({"api_key": REVOKED_API_KEY})),
    );
    let err = sync(&env, &revoked, false).await.unwrap_err();
    assert!(matches!(
        err,
        SyncError::Connector(ConnectorError::Unauthorized)
    ));
    assert_eq!(status(&env).await, "reauthorization_required");
    assert_eq!(
        count(&env, Entity::PURCHASE_ORDER).await,
        120,
        "no data is lost"
    );
    let conn = env
        .store
        .get_connection(&OrgId("org_1".into()), &env.conn)
        .await
        .unwrap();
    assert_eq!(
        (conn.consecutive_errors, conn.last_error_code.as_deref()),
        (1, Some("AUTHENTICATION_FAILED"))
    );
}

/// Fails one page fetch once, like a process dying or the source dropping mid-sync, and
/// every fetch while `down` is set (a flaky network: the failure is not an HTTP one, so no
/// circuit opens); `refuse` fails every fetch of the entities it names, its own way.
struct FailOnce {
    inner: SandboxConnector,
    fail_at: u32,
    calls: AtomicU32,
    down: std::sync::atomic::AtomicBool,
    refuse: fn(Entity) -> Option<ConnectorError>,
}

impl FailOnce {
    /// Fails the `fail_at`-th purchase-order fetch (`u32::MAX`: none), and nothing else.
    fn new(inner: SandboxConnector, fail_at: u32) -> FailOnce {
        FailOnce {
            inner,
            fail_at,
            calls: AtomicU32::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
            refuse: |_| None,
        }
    }
}

impl Connector for FailOnce {
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
impl Source for FailOnce {
    async fn extent(
        &self,
        entity: Entity,
    ) -> Result<ironbridge_core::connector::Extent, ConnectorError> {
        self.inner.extent(entity).await
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        self.inner.check().await
    }
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if let Some(err) = (self.refuse)(entity) {
            return Err(err);
        }
        let failing = entity == Entity::PURCHASE_ORDER
            && self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at;
        if failing || self.down.load(Ordering::SeqCst) {
            return Err(ConnectorError::Upstream("connection reset".into()));
        }
        self.inner.fetch_page(entity, window, cursor).await
    }
}

/// Entities are read side by side: the sync reports the most telling of their failures
/// (refused credentials over an unreachable source), counts one failure of the connection,
/// and keeps what the other entities stored.
#[tokio::test]
async fn a_sync_whose_entities_fail_differently_reports_the_refused_credentials_once() {
    let env = env().await;
    // The health check passes; then the token is refused for purchase orders while vendors
    // are unreachable, as when a token is revoked in the middle of a sync.
    let source = FailOnce {
        refuse: |entity| {
            if entity == Entity::VENDOR {
                Some(ConnectorError::Upstream("connection reset".into()))
            } else if entity == Entity::PURCHASE_ORDER {
                Some(ConnectorError::Unauthorized)
            } else {
                None
            }
        },
        ..FailOnce::new(sandbox(&env.clock, json!({}), None), u32::MAX)
    };
    let err = sync(&env, &source, false).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Connector(ConnectorError::Unauthorized)),
        "{err:?}"
    );
    assert_eq!(status(&env).await, "reauthorization_required");
    let conn = env.store.get_connection(&org(), &env.conn).await.unwrap();
    assert_eq!(
        (conn.consecutive_errors, conn.last_error_code.as_deref()),
        (1, Some("AUTHENTICATION_FAILED")),
        "one failed sync, one failure"
    );
    let events = events(&env).await;
    let failed: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "sync.failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["entity"], "purchase_order");
    assert_eq!(failed[0]["error"]["code"], "AUTHENTICATION_FAILED");
    assert!(
        count(&env, Entity::ITEM).await > 0,
        "items were read beside the failing entities and kept"
    );
    let states = env.store.sync_states(&env.conn).await.unwrap();
    let state = |e: Entity| {
        states
            .iter()
            .find(|s| s.entity == e)
            .map(|s| s.status.clone())
    };
    assert_eq!(state(Entity::VENDOR).as_deref(), Some("failed"));
    assert_eq!(state(Entity::PURCHASE_ORDER).as_deref(), Some("failed"));
}

#[tokio::test]
async fn a_sync_that_dies_mid_way_resumes_from_its_checkpoint() {
    let env = env().await;
    let flaky = FailOnce::new(
        sandbox(&env.clock, json!({"purchase_orders": 450}), None),
        2,
    );
    let err = sync(&env, &flaky, false).await.unwrap_err();
    assert!(matches!(
        err,
        SyncError::Connector(ConnectorError::Upstream(_))
    ));
    assert_eq!(
        status(&env).await,
        "online",
        "one failed call is a blip, not an outage"
    );
    assert_eq!(
        count(&env, Entity::PURCHASE_ORDER).await,
        200,
        "two pages were committed"
    );
    let states = env.store.sync_states(&env.conn).await.unwrap();
    let po = states
        .iter()
        .find(|s| s.entity == Entity::PURCHASE_ORDER)
        .unwrap();
    assert_eq!(
        (po.status.as_str(), po.cursor.as_deref()),
        ("failed", Some("200"))
    );
    let reports = sync(&env, &flaky, false).await.unwrap();
    let po = reports
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap();
    assert_eq!(
        (po.counts.added, po.pages),
        (450, 3),
        "the rerun starts at the checkpoint, and reports the whole run (both attempts)"
    );
    assert_eq!(count(&env, Entity::PURCHASE_ORDER).await, 450);
    assert_eq!(status(&env).await, "online");
    let events = events(&env).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["sync.failed", "sync.completed"]);
    assert_eq!(
        events[0].1["error"],
        json!({"code": "UPSTREAM_UNAVAILABLE", "message": "The source system could not be reached."})
    );
}

#[tokio::test]
async fn an_outage_is_reported_offline_only_after_repeated_failures() {
    let env = env().await;
    let source = FailOnce::new(sandbox(&env.clock, json!({}), None), u32::MAX);
    sync(&env, &source, false).await.unwrap();
    source.down.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for _ in 0..ironbridge_engine::sync::OFFLINE_AFTER_FAILURES {
        env.clock.advance_secs(60);
        assert!(sync(&env, &source, false).await.is_err());
        seen.push(status(&env).await);
    }
    let mut expected =
        vec!["online".to_string(); ironbridge_engine::sync::OFFLINE_AFTER_FAILURES as usize - 1];
    expected.push("offline".into());
    assert_eq!(
        seen, expected,
        "blips stay online; a run of failures is an outage"
    );
    source.down.store(false, Ordering::SeqCst);
    env.clock.advance_secs(60);
    sync(&env, &source, false).await.unwrap();
    assert_eq!(status(&env).await, "online");
    let changes: Vec<Value> = events(&env)
        .await
        .into_iter()
        .filter(|e| e.0 == "connection.status_changed")
        .map(|e| e.1)
        .collect();
    assert_eq!(
        changes,
        [
            json!({"previous_status": "online", "status": "offline"}),
            json!({"previous_status": "offline", "status": "online"}),
        ]
    );
}

/// Reading a long window in slices side by side stores exactly what one pass stores, and a
/// sliced run that dies resumes every slice from its own checkpoint.
#[tokio::test]
async fn sliced_reads_store_what_one_pass_stores_and_resume_per_slice() {
    use ironbridge_engine::sync::{SyncOptions, sync_connection_with};
    let one = env().await;
    let source = sandbox(&one.clock, json!({"purchase_orders": 900}), None);
    sync(&one, &source, false).await.unwrap();
    let expected: Vec<(String, String)> = support::stored(&one, Entity::PURCHASE_ORDER)
        .await
        .into_iter()
        .map(|r| (r.remote_id, r.data))
        .collect();
    assert_eq!(expected.len(), 900);

    let sliced = env().await;
    let flaky = FailOnce::new(
        sandbox(&sliced.clock, json!({"purchase_orders": 900}), None),
        5,
    );
    let options = SyncOptions {
        max_concurrency: Some(3),
        ..SyncOptions::default()
    };
    let owner = org();
    let run = || {
        sync_connection_with(
            sliced.store.as_ref(),
            &flaky,
            &owner,
            &sliced.conn,
            &options,
            &sliced.clock,
        )
    };
    assert!(run().await.is_err(), "the sixth page read fails");
    let states = sliced.store.sync_states(&sliced.conn).await.unwrap();
    let po = states
        .iter()
        .find(|s| s.entity == Entity::PURCHASE_ORDER)
        .unwrap();
    assert!(
        po.cursor
            .as_deref()
            .is_some_and(|c| c.starts_with("slices1:")),
        "the checkpoint is the slice plan: {:?}",
        po.cursor
    );
    let first = count(&sliced, Entity::PURCHASE_ORDER).await;
    assert!(
        first > 0 && first < 900,
        "{first} stored before the failure"
    );
    let reports = run().await.unwrap();
    let added = reports
        .iter()
        .find(|r| r.entity == Some(Entity::PURCHASE_ORDER))
        .unwrap()
        .counts
        .added;
    assert_eq!(
        added, 900,
        "the rerun adds exactly what was missing, and reports the whole run"
    );
    let got: Vec<(String, String)> = support::stored(&sliced, Entity::PURCHASE_ORDER)
        .await
        .into_iter()
        .map(|r| (r.remote_id, r.data))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn unmappable_records_are_skipped_and_counted() {
    struct Broken(SandboxConnector);
    /// The sandbox, reading vendors only.
    static VENDORS_ONLY: SystemDescriptor = SystemDescriptor {
        reads: &[ReadSpec {
            entity: Entity::VENDOR,
            kind: ReadKind::Windowed,
            deletions: DeletionDetection::Flagged,
            payload: ironbridge_core::system::Payload::Whole,
            follows_feed: false,
        }],
        writes: &[],
        mappings: Mappings::new(&[include_str!("../../../core/mappings/sandbox/vendor.json")]),
        id: ironbridge_core::sandbox::ID,
        name: "sandbox, vendors only",
        auth: &[],
        settings: &[],
        limits: ironbridge_core::sandbox::DESCRIPTOR.limits,
        history_days: None,
        build: |_| Err(ConnectorError::Unsupported("built directly".into())),
    };
    impl Connector for Broken {
        fn descriptor(&self) -> &'static ironbridge_core::system::SystemDescriptor {
            &VENDORS_ONLY
        }
    }
    #[async_trait]
    impl Source for Broken {
        async fn check(&self) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn fetch_page(
            &self,
            e: Entity,
            w: &ReadWindow,
            c: Option<&str>,
        ) -> Result<RawPage, ConnectorError> {
            let mut page = self.0.fetch_page(e, w, c).await?;
            page.records.push(json!({"name": "no key"}).into());
            Ok(page)
        }
    }
    let env = env().await;
    let reports = sync(&env, &Broken(sandbox(&env.clock, json!({}), None)), false)
        .await
        .unwrap();
    assert_eq!((reports[0].counts.added, reports[0].unmappable), (12, 1));
}

mod worker {
    use super::*;
    use ironbridge_core::crypto::Keys;
    use ironbridge_core::runtime::Runtimes;
    use ironbridge_core::system::ConnectorFactory;
    use ironbridge_engine::worker::{Worker, WorkerConfig, enqueue_sync};
    use std::time::Duration;

    /// Builds sandbox connectors whose first purchase-order page fetches fail `failures` times,
    /// or whose every fetch fails (`down`).
    struct Flaky {
        clock: ManualClock,
        failures: u32,
        down: bool,
        calls: Arc<AtomicU32>,
    }

    impl ConnectorFactory for Flaky {
        fn build(
            &self,
            _: &'static SystemDescriptor,
            settings: &serde_json::Map<String, Value>,
            creds: Option<&serde_json::Map<String, Value>>,
        ) -> Result<Arc<dyn Connector>, ConnectorError> {
            let inner = SandboxConnector::new(settings, creds, Arc::new(self.clock.clone()))?;
            // Shares the call counter across builds, so failures span attempts.
            let calls = self.calls.load(Ordering::SeqCst);
            let fail_at = if calls < self.failures { 0 } else { u32::MAX };
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(FailOnce {
                down: std::sync::atomic::AtomicBool::new(self.down),
                ..FailOnce::new(inner, fail_at)
            }))
        }
    }

    /// The runtimes of a worker whose connectors `factory` builds.
    fn runtimes(env: &Env, factory: Arc<dyn ConnectorFactory>) -> Arc<Runtimes> {
        Arc::new(Runtimes::new(
            ironbridge_engine::registry::builtin(Arc::new(env.clock.clone())).with_factory(factory),
            Arc::new(Keys::from_master(&[3u8; 32]).unwrap()),
        ))
    }

    fn worker(env: &Env, failures: u32) -> Worker {
        worker_for(env, failures, false)
    }

    fn worker_for(env: &Env, failures: u32, down: bool) -> Worker {
        let factory = Flaky {
            clock: env.clock.clone(),
            failures,
            down,
            calls: Arc::default(),
        };
        let config = WorkerConfig {
            sync_interval: Duration::from_secs(3600),
            ..WorkerConfig::default()
        };
        Worker::new(
            env.store.clone(),
            runtimes(env, Arc::new(factory)),
            Arc::new(env.clock.clone()),
            config,
        )
    }

    async fn job_status(env: &Env, id: &str) -> String {
        env.store.get_job(&org(), id).await.unwrap().status
    }

    /// The payload of the connection's queued sync.
    async fn queued_full(env: &Env) -> bool {
        let job = env
            .store
            .active_job(&ironbridge_engine::worker::sync_key(&env.conn))
            .await
            .unwrap()
            .expect("a sync is queued");
        serde_json::from_str::<Value>(&job.payload).unwrap()["full"] == true
    }

    #[tokio::test]
    async fn the_scheduler_reconciles_with_a_full_sync_once_an_interval() {
        let env = env().await;
        let w = worker(&env, 0);
        let week = 7 * 86_400;
        assert_eq!(w.schedule_due().await.unwrap(), 1);
        assert!(
            !queued_full(&env).await,
            "the first sync reads the history window"
        );
        assert!(w.run_once().await.unwrap());
        // Hourly syncs for most of a week are incremental.
        env.clock.advance_secs(week - 7200);
        assert_eq!(w.schedule_due().await.unwrap(), 1);
        assert!(
            !queued_full(&env).await,
            "less than a week since the connection"
        );
        assert!(w.run_once().await.unwrap());
        // A week after the connection was made, the due sync is a full one.
        env.clock.advance_secs(7200);
        assert_eq!(w.schedule_due().await.unwrap(), 1);
        assert!(queued_full(&env).await, "a week without a full sync");
        assert!(w.run_once().await.unwrap());
        assert_eq!(
            env.store.last_full_sync(&env.conn).await.unwrap(),
            env.clock.now(),
            "the full sync is recorded"
        );
        // The next week starts from that one.
        env.clock.advance_secs(3601);
        assert_eq!(w.schedule_due().await.unwrap(), 1);
        assert!(!queued_full(&env).await, "an hour after the full sync");
        assert!(w.run_once().await.unwrap());

        // Turned off: never.
        let config = WorkerConfig {
            sync_interval: Duration::from_secs(3600),
            reconcile_interval: None,
            ..WorkerConfig::default()
        };
        let off = Worker::new(
            env.store.clone(),
            Arc::new(Runtimes::new(
                ironbridge_engine::registry::builtin(Arc::new(env.clock.clone())),
                Arc::new(Keys::from_master(&[3u8; 32]).unwrap()),
            )),
            Arc::new(env.clock.clone()),
            config,
        );
        env.clock.advance_secs(30 * 86_400);
        assert_eq!(off.schedule_due().await.unwrap(), 1);
        assert!(!queued_full(&env).await, "reconciliation is off");
    }

    #[tokio::test]
    async fn the_scheduler_queues_due_connections_and_the_worker_syncs_them() {
        let env = env().await;
        let w = worker(&env, 0);
        assert_eq!(
            w.schedule_due().await.unwrap(),
            1,
            "a connection that never synced is due"
        );
        assert_eq!(
            w.schedule_due().await.unwrap(),
            0,
            "one queued sync per connection"
        );
        assert!(w.run_once().await.unwrap());
        assert!(!w.run_once().await.unwrap(), "nothing else is due");
        assert_eq!(count(&env, Entity::PURCHASE_ORDER).await, 120);
        assert_eq!(w.schedule_due().await.unwrap(), 0, "synced just now");
        env.clock.advance_secs(3601);
        assert_eq!(
            w.schedule_due().await.unwrap(),
            1,
            "due again after the interval"
        );
        let (job, created) =
            enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, true, 5)
                .await
                .unwrap();
        assert!(!created, "an on-demand sync joins the queued one");
        assert!(w.run_once().await.unwrap());
        assert_eq!(job_status(&env, &job.id).await, "succeeded");
    }

    #[tokio::test]
    async fn failed_syncs_are_retried_later_and_credentials_failures_are_not() {
        let env = env().await;
        let w = worker(&env, 1);
        let (job, created) =
            enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, false, 5)
                .await
                .unwrap();
        assert!(created);
        assert!(w.run_once().await.unwrap());
        let after = env.store.get_job(&org(), &job.id).await.unwrap();
        assert_eq!(
            (
                after.status.as_str(),
                after.run_at.micros() - env.clock.now().micros()
            ),
            ("queued", 30_000_000)
        );
        assert!(!w.run_once().await.unwrap(), "not before its retry time");
        env.clock.advance_secs(30);
        assert!(w.run_once().await.unwrap());
        assert_eq!(job_status(&env, &job.id).await, "succeeded");
        assert_eq!(status(&env).await, "online");

        // Revoked credentials: the job fails for good and the connection waits for a reconnect.
        env.store
            .set_connection_status(&env.conn, "online", env.clock.now(), None)
            .await
            .unwrap();
        let keys = Keys::from_master(&[3u8; 32]).unwrap();
        struct Revoked(ManualClock);
        impl ConnectorFactory for Revoked {
            fn build(
                &self,
                _: &'static SystemDescriptor,
                s: &serde_json::Map<String, Value>,
                _: Option<&serde_json::Map<String, Value>>,
            ) -> Result<Arc<dyn Connector>, ConnectorError> {
                let creds = json!({"api_key": REVOKED_API_KEY});
                Ok(Arc::new(SandboxConnector::new(
                    s,
                    creds.as_object(),
                    Arc::new(self.0.clone()),
                )?))
            }
        }
        let w = Worker::new(
            env.store.clone(),
            Arc::new(Runtimes::new(
                ironbridge_engine::registry::builtin(Arc::new(env.clock.clone()))
                    .with_factory(Arc::new(Revoked(env.clock.clone()))),
                Arc::new(keys),
            )),
            Arc::new(env.clock.clone()),
            WorkerConfig::default(),
        );
        let (job, _) = enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, false, 5)
            .await
            .unwrap();
        assert!(w.run_once().await.unwrap());
        let failed = env.store.get_job(&org(), &job.id).await.unwrap();
        assert_eq!(
            (failed.status.as_str(), failed.last_error.as_deref()),
            ("failed", Some("the source system refused the credentials"))
        );
        assert_eq!(status(&env).await, "reauthorization_required");
        assert_eq!(
            w.schedule_due().await.unwrap(),
            0,
            "syncs pause until the customer reconnects"
        );
        let system_errors = env
            .store
            .list_events(&org(), None, None, Some("system.error"), 10)
            .await
            .unwrap();
        assert!(
            system_errors.is_empty(),
            "a refusal is reported as reauthorization_required, not as a system error"
        );
    }

    #[tokio::test]
    async fn a_sync_that_keeps_failing_reports_a_system_error_when_it_gives_up() {
        let env = env().await;
        // A source that never answers.
        let w = worker_for(&env, 0, true);
        let (job, _) = enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, false, 2)
            .await
            .unwrap();
        let system_errors = || async {
            env.store
                .list_events(&org(), None, None, Some("system.error"), 10)
                .await
                .unwrap()
        };
        assert!(w.run_once().await.unwrap());
        assert!(
            system_errors().await.is_empty(),
            "one failure is retried, not reported"
        );
        env.clock.advance_secs(30);
        assert!(w.run_once().await.unwrap());
        assert_eq!(job_status(&env, &job.id).await, "failed");
        let reported = system_errors().await;
        assert_eq!(reported.len(), 1);
        let data: Value = serde_json::from_str(&reported[0].data).unwrap();
        assert_eq!(
            (
                data["code"].as_str(),
                data["job_id"].as_str(),
                data["attempts"].as_i64()
            ),
            (Some("SYNC_FAILING"), Some(job.id.as_str()), Some(2))
        );
        assert_eq!(
            reported[0].connection_id.as_deref(),
            Some(env.conn.0.as_str())
        );
    }

    #[tokio::test]
    async fn disconnected_connections_are_not_synced() {
        let env = env().await;
        let w = worker(&env, 0);
        let (job, _) = enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, false, 5)
            .await
            .unwrap();
        env.store
            .disconnect_connection(&org(), &env.conn, env.clock.now())
            .await
            .unwrap();
        assert!(w.run_once().await.unwrap());
        assert_eq!(job_status(&env, &job.id).await, "succeeded");
        assert_eq!(count(&env, Entity::PURCHASE_ORDER).await, 0);
        assert_eq!(w.schedule_due().await.unwrap(), 0);
    }
}
