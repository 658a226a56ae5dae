//! The metrics the worker and the sync runner record: queue waits and job durations on the
//! injected clock, records committed per system and entity (equal to what the syncs
//! report), entity runs by mode. A recorder local to the test's thread captures them: the
//! process-wide one would also see the tests running beside this one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ironbridge_core::connector::{Connector, ConnectorError, RawPage, ReadWindow, Source};
use ironbridge_core::crypto::Keys;
use ironbridge_core::runtime::Runtimes;
use ironbridge_core::sandbox::SandboxConnector;
use ironbridge_core::system::{ConnectorFactory, SystemDescriptor};
use ironbridge_core::{Clock, ManualClock};
use ironbridge_engine::telemetry::{JOB_DURATION, JOB_QUEUE_WAIT, SYNC_RECORDS, SYNC_RUN};
use ironbridge_engine::worker::{Worker, WorkerConfig, enqueue_sync};
use ironbridge_model::Entity;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{Map, Value, json};

use crate::support::{Env, env_for, events, org, sync};

/// Every counter and histogram recorded, by name and sorted labels
/// (`name{a=1,b=2}`).
#[derive(Default)]
struct Capture {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Capture {
    fn counter(&self, series: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(series)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn samples(&self, series: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .get(series)
            .map_or_else(Vec::new, |h| h.0.lock().unwrap().clone())
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(series(key)).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(series(key)).or_default().clone())
    }
}

/// The sandbox, whose opening health check takes `CHECK_SECS` on the test's clock, and
/// whose reads fail while `down` is set.
struct Slow {
    inner: SandboxConnector,
    clock: ManualClock,
    down: Arc<AtomicBool>,
}

const CHECK_SECS: i64 = 7;

impl Connector for Slow {
    fn descriptor(&self) -> &'static SystemDescriptor {
        self.inner.descriptor()
    }
}

#[async_trait]
impl Source for Slow {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.clock.advance_secs(CHECK_SECS);
        self.inner.check().await
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ConnectorError::Upstream("the source is down".into()));
        }
        self.inner.fetch_page(entity, window, cursor).await
    }
}

struct SlowFactory {
    clock: ManualClock,
    down: Arc<AtomicBool>,
}

impl ConnectorFactory for SlowFactory {
    fn build(
        &self,
        _: &'static SystemDescriptor,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(Slow {
            inner: SandboxConnector::new(settings, credentials, Arc::new(self.clock.clone()))?,
            clock: self.clock.clone(),
            down: self.down.clone(),
        }))
    }
}

fn worker(env: &Env, down: Arc<AtomicBool>) -> Worker {
    let clock: Arc<dyn Clock> = Arc::new(env.clock.clone());
    let factory = SlowFactory {
        clock: env.clock.clone(),
        down,
    };
    let runtimes = Arc::new(Runtimes::new(
        ironbridge_engine::registry::builtin(clock.clone()).with_factory(Arc::new(factory)),
        Arc::new(Keys::from_master(&[5u8; 32]).unwrap()),
    ));
    Worker::new(env.store.clone(), runtimes, clock, WorkerConfig::default())
}

/// Queues a sync of the connection, lets `wait_secs` pass, and has the worker run it.
async fn queue_and_run(env: &Env, worker: &Worker, wait_secs: i64) {
    enqueue_sync(env.store.as_ref(), &env.clock, &org(), &env.conn, false, 5)
        .await
        .unwrap();
    env.clock.advance_secs(wait_secs);
    assert!(worker.run_once().await.unwrap(), "a job was due");
}

/// Per entity, what the syncs reported in their `sync.completed` events (added, updated,
/// deleted or unchanged).
async fn reported(env: &Env) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for (kind, data) in events(env).await {
        if kind != "sync.completed" {
            continue;
        }
        for e in data["entities"].as_array().unwrap() {
            let n: u64 = ["added", "updated", "deleted", "unchanged"]
                .iter()
                .map(|k| e[*k].as_u64().unwrap())
                .sum();
            *out.entry(e["entity"].as_str().unwrap().to_string())
                .or_default() += n;
        }
    }
    out
}

#[test]
fn the_worker_records_queue_waits_job_durations_and_the_records_syncs_commit() {
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Everything runs on this thread (one-threaded runtime), so the local recorder sees it.
    let reported = metrics::with_local_recorder(&capture, || {
        runtime.block_on(async {
            let env = env_for(
                "sandbox",
                ManualClock::new(ironbridge_core::sandbox::data::anchor().plus_secs(86_400)),
            )
            .await;
            let down = Arc::new(AtomicBool::new(false));
            let worker = worker(&env, down.clone());
            queue_and_run(&env, &worker, 90).await;
            queue_and_run(&env, &worker, 30).await;
            // A third fails at its first read and is queued again.
            down.store(true, Ordering::SeqCst);
            queue_and_run(&env, &worker, 10).await;
            // A full sync of a source that lost 20 orders marks them deleted.
            env.clock.advance_secs(60);
            let smaller = SandboxConnector::new(
                json!({"purchase_orders": 100}).as_object().unwrap(),
                None,
                Arc::new(env.clock.clone()),
            )
            .unwrap();
            sync(&env, &smaller, true).await.unwrap();
            reported(&env).await
        })
    });

    assert_eq!(
        capture.samples(&format!("{JOB_QUEUE_WAIT}{{kind=sync}}")),
        [90.0, 30.0, 10.0],
        "claim time minus due time, on the injected clock"
    );
    assert_eq!(
        capture.samples(&format!("{JOB_DURATION}{{kind=sync,outcome=succeeded}}")),
        [CHECK_SECS as f64; 2],
        "from the claim to the end, on the injected clock"
    );
    assert_eq!(
        capture.samples(&format!("{JOB_DURATION}{{kind=sync,outcome=retried}}")),
        [CHECK_SECS as f64],
        "a failed attempt with attempts left is retried"
    );
    // The default sandbox: 120 orders, 12 vendors, 40 items, 6 locations, all read by the
    // first sync; the second reads what changed within its lookback; the full one reads the
    // 100 orders left and marks 20 deleted.
    assert_eq!(reported["purchase_order"], 120 + 100 + 20, "{reported:?}");
    for entity in Entity::ALL
        .iter()
        .filter(|e| reported.contains_key(e.as_str()))
    {
        assert_eq!(
            capture.counter(&format!(
                "{SYNC_RECORDS}{{entity={},system=sandbox}}",
                entity.as_str()
            )),
            reported[entity.as_str()],
            "records of {entity} committed, as the syncs reported them"
        );
        for (mode, runs) in [("initial", 1), ("incremental", 1), ("full", 1)] {
            assert_eq!(
                capture
                    .samples(&format!(
                        "{SYNC_RUN}{{entity={},mode={mode},system=sandbox}}",
                        entity.as_str()
                    ))
                    .len(),
                runs,
                "{mode} runs of {entity}"
            );
        }
    }
    assert_eq!(reported.len(), 4, "{reported:?}");
}
