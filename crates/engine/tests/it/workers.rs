//! One worker runs several jobs at once: syncs of different connections overlap (each still
//! alone on its connection), and a shutdown lets running jobs commit, or, once the drain
//! time is over, stops them and gives their leases back without using up an attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::connector::{Connector, ConnectorError, RawPage, ReadWindow, Source};
use ironbridge_core::crypto::{Keys, token_hash};
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::sandbox::SandboxConnector;
use ironbridge_core::store::{ConnId, Fence, NewConnection};
use ironbridge_core::system::{ConnectorFactory, SystemDescriptor};
use ironbridge_core::{Clock, ManualClock};
use ironbridge_engine::worker::{Worker, WorkerConfig, enqueue_sync};
use ironbridge_model::Entity;
use serde_json::{Map, Value, json};
use tokio::sync::{Barrier, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::support::{Env, env_for, events, org, status};

/// What the gated connectors of one test share: how many purchase-order reads are in
/// flight (and the most seen at once), and the gate every such read waits at.
struct Gate {
    inside: AtomicU32,
    most: AtomicU32,
    /// Told each time a read comes in.
    entered: tokio::sync::watch::Sender<u32>,
    /// Both syncs must be inside before either goes on (`None`: no meeting).
    meet: Option<Barrier>,
    /// Permits to leave; closed (never granted) to hold reads until they are dropped.
    open: Semaphore,
}

impl Gate {
    fn new(meet: Option<usize>, open: usize) -> Arc<Gate> {
        Arc::new(Gate {
            inside: AtomicU32::new(0),
            most: AtomicU32::new(0),
            entered: tokio::sync::watch::channel(0).0,
            meet: meet.map(Barrier::new),
            open: Semaphore::new(open),
        })
    }
}

/// The sandbox, whose first purchase-order read of a sync waits at the gate.
struct Gated {
    inner: SandboxConnector,
    gate: Arc<Gate>,
    passed: AtomicU32,
}

impl Connector for Gated {
    fn descriptor(&self) -> &'static SystemDescriptor {
        self.inner.descriptor()
    }
}

#[async_trait]
impl Source for Gated {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.inner.check().await
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if entity == Entity::PURCHASE_ORDER && self.passed.fetch_add(1, Ordering::SeqCst) == 0 {
            let now = self.gate.inside.fetch_add(1, Ordering::SeqCst) + 1;
            self.gate.most.fetch_max(now, Ordering::SeqCst);
            self.gate.entered.send_replace(now);
            if let Some(meet) = &self.gate.meet {
                meet.wait().await;
            }
            let permit = self.gate.open.acquire().await;
            drop(permit);
            self.gate.inside.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.fetch_page(entity, window, cursor).await
    }
}

struct GatedFactory {
    clock: ManualClock,
    gate: Arc<Gate>,
}

impl ConnectorFactory for GatedFactory {
    fn build(
        &self,
        _: &'static SystemDescriptor,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(Gated {
            inner: SandboxConnector::new(settings, credentials, Arc::new(self.clock.clone()))?,
            gate: self.gate.clone(),
            passed: AtomicU32::new(0),
        }))
    }
}

/// A sandbox environment with a second connection, and a worker of up to `max_jobs` jobs
/// whose connectors wait at `gate`.
async fn setup(gate: Arc<Gate>, max_jobs: usize, drain: Duration) -> (Env, Worker, ConnId) {
    let env = env_for(
        "sandbox",
        ManualClock::new(ironbridge_core::sandbox::data::anchor().plus_secs(86_400)),
    )
    .await;
    let second = NewConnection {
        id: "conn_2".into(),
        system: "sandbox".into(),
        name: None,
        status: "syncing".into(),
        settings: "{}".into(),
        end_user: None,
        credentials: None,
        token_hash: token_hash("t2"),
        token_prefix: "ibc_".into(),
        created_at: env.clock.now(),
        replaces: None,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    env.store.create_connection(&org(), &second).await.unwrap();
    let runtimes = Arc::new(Runtimes::new(
        ironbridge_engine::registry::builtin(Arc::new(env.clock.clone())).with_factory(Arc::new(
            GatedFactory {
                clock: env.clock.clone(),
                gate,
            },
        )),
        Arc::new(Keys::from_master(&[5u8; 32]).unwrap()),
    ));
    let worker = Worker::new(
        env.store.clone(),
        runtimes,
        Arc::new(env.clock.clone()),
        WorkerConfig {
            max_jobs,
            drain,
            idle_wait: Duration::from_millis(5),
            ..WorkerConfig::default()
        },
    );
    (env, worker, ConnId("conn_2".into()))
}

async fn job_status(env: &Env, id: &str) -> (String, i64, Option<String>) {
    let job = env.store.get_job(&org(), id).await.unwrap();
    (job.status, job.failures, job.lease_owner)
}

async fn enqueue(env: &Env, conn: &ConnId) -> String {
    enqueue_sync(env.store.as_ref(), &env.clock, &org(), conn, false, 5)
        .await
        .unwrap()
        .0
        .id
}

/// Waits until `n` reads are inside the gate (a bound keeps a broken worker from hanging
/// the test).
async fn inside(gate: &Gate, n: u32) {
    let mut entered = gate.entered.subscribe();
    tokio::time::timeout(
        Duration::from_secs(60),
        entered.wait_for(|_| gate.inside.load(Ordering::SeqCst) >= n),
    )
    .await
    .expect("the reads came in")
    .expect("the gate is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_runs_syncs_of_different_connections_at_once() {
    // Each sync's first order read waits until the other sync is inside too: run one after
    // the other, neither would ever finish.
    let gate = Gate::new(Some(2), 2);
    let (env, worker, second) = setup(gate.clone(), 4, Duration::from_secs(30)).await;
    let first = enqueue(&env, &env.conn).await;
    let other = enqueue(&env, &second).await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let store = env.store.clone();
    let (a, b) = (first.clone(), other.clone());
    tokio::time::timeout(Duration::from_secs(60), async move {
        loop {
            let sa = store.get_job(&org(), &a).await.unwrap().status;
            let sb = store.get_job(&org(), &b).await.unwrap().status;
            if sa == "succeeded" && sb == "succeeded" {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both syncs finish: they ran side by side");
    assert_eq!(
        gate.most.load(Ordering::SeqCst),
        2,
        "the two syncs overlapped"
    );
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(
        crate::support::count(&env, Entity::PURCHASE_ORDER).await,
        120
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_running_syncs_to_commit() {
    // The reads wait until the test opens the gate.
    let gate = Gate::new(None, 0);
    let (env, worker, second) = setup(gate.clone(), 4, Duration::from_secs(600)).await;
    let first = enqueue(&env, &env.conn).await;
    let other = enqueue(&env, &second).await;
    let shutdown = CancellationToken::new();
    let mut running = tokio::spawn(worker.run(shutdown.clone()));
    inside(&gate, 2).await;
    shutdown.cancel();
    // A worker that did not wait would have returned long before this bound.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut running)
            .await
            .is_err(),
        "the worker stopped while its jobs were running"
    );
    gate.open.add_permits(2);
    running.await.unwrap();
    for id in [&first, &other] {
        assert_eq!(job_status(&env, id).await.0, "succeeded", "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_still_running_when_the_drain_ends_give_their_leases_back() {
    // The reads never end.
    let gate = Gate::new(None, 0);
    let (env, worker, second) = setup(gate.clone(), 4, Duration::ZERO).await;
    let first = enqueue(&env, &env.conn).await;
    let other = enqueue(&env, &second).await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    inside(&gate, 2).await;
    shutdown.cancel();
    running.await.unwrap();
    for id in [&first, &other] {
        assert_eq!(
            job_status(&env, id).await,
            ("queued".to_string(), 0, None),
            "{id}: back in the queue, no failed attempt counted"
        );
    }
}

/// Claims the job as a worker that then dies: the connection shows `syncing` (as a sync's
/// start leaves it) and the lease runs out.
async fn crash(env: &Env, n: u32) {
    let now = env.clock.now();
    let owner = format!("dead_{n}");
    let job = env
        .store
        .claim_job("sync", &owner, now, now.plus_secs(300))
        .await
        .unwrap()
        .expect("the job is claimable");
    env.store
        .fenced(Fence::of(&job, &owner))
        .set_connection_status(&env.conn, "syncing", now, None)
        .await
        .unwrap();
    env.clock.advance_secs(301);
}

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

#[tokio::test]
async fn five_crashes_in_a_row_leave_a_job_that_still_completes_and_a_truthful_connection() {
    let (env, worker, _) = setup(Gate::new(None, 1_000), 1, Duration::ZERO).await;
    let id = enqueue(&env, &env.conn).await;
    for n in 0..5 {
        crash(&env, n).await;
    }
    assert!(worker.run_once().await.unwrap());
    let job = env.store.get_job(&org(), &id).await.unwrap();
    assert_eq!(
        (job.status.as_str(), job.attempts, job.failures),
        ("succeeded", 6, 0),
        "takeovers are attempts, not failures"
    );
    let events = events(&env).await;
    let types = types(&events);
    assert_eq!(
        types.iter().filter(|t| **t == "sync.completed").count(),
        1,
        "{types:?}"
    );
    assert!(
        !types.contains(&"system.error") && !types.contains(&"sync.failed"),
        "no sync failed: {types:?}"
    );
    assert_eq!(status(&env).await, "online");
}

#[tokio::test]
async fn a_sync_interrupted_more_often_than_it_may_be_is_given_up_and_says_so() {
    let (env, worker, _) = setup(Gate::new(None, 1_000), 1, Duration::ZERO).await;
    let id = enqueue(&env, &env.conn).await;
    for n in 0..20 {
        crash(&env, n).await;
    }
    assert_eq!(status(&env).await, "syncing");
    assert!(worker.run_once().await.unwrap());
    let job = env.store.get_job(&org(), &id).await.unwrap();
    assert_eq!(job.status, "failed");
    let events = events(&env).await;
    let failed = events.iter().find(|e| e.0 == "sync.failed").unwrap();
    assert_eq!(failed.1["error"]["code"], "SYNC_INTERRUPTED", "{failed:?}");
    let error = events.iter().find(|e| e.0 == "system.error").unwrap();
    assert!(
        error.1["message"]
            .as_str()
            .unwrap()
            .contains("interrupted 20 times"),
        "{error:?}"
    );
    assert_eq!(
        status(&env).await,
        "online",
        "an interruption says nothing about the source: the connection leaves `syncing`"
    );
}

#[tokio::test]
async fn an_incremental_sync_while_reconciliation_is_overdue_becomes_a_full_one_and_says_so() {
    let (env, worker, _) = setup(Gate::new(None, 1_000), 1, Duration::ZERO).await;
    // The connection's first reconciliation is due a week after its creation.
    env.clock.advance_secs(8 * 86_400);
    let id = enqueue(&env, &env.conn).await;
    assert!(worker.run_once().await.unwrap());
    let job = env.store.get_job(&org(), &id).await.unwrap();
    let payload: Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!(job.status, "succeeded");
    assert_eq!(
        (payload["full"].as_bool(), payload["reason"].as_str()),
        (Some(true), Some("reconciliation_overdue"))
    );
    let completed = events(&env).await.pop().unwrap();
    assert_eq!(completed.0, "sync.completed");
    assert_eq!(completed.1["full"], true);
    let connection = env.store.get_connection(&org(), &env.conn).await.unwrap();
    assert_eq!(connection.last_full_sync_at, Some(env.clock.now()));
    // The next one is not overdue: it stays incremental.
    env.clock.advance_secs(3_600);
    let id = enqueue(&env, &env.conn).await;
    assert!(worker.run_once().await.unwrap());
    let job = env.store.get_job(&org(), &id).await.unwrap();
    let payload: Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!(payload["full"], false);
    let completed = events(&env).await.pop().unwrap();
    assert_eq!(
        (completed.0.as_str(), &completed.1["full"]),
        ("sync.completed", &json!(false))
    );
}
