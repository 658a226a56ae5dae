//! Several processes on one PostgreSQL database, as a cluster runs them: an API and workers
//! during full syncs, the workers killed with SIGKILL or frozen with SIGSTOP. These run in the
//! suite's PostgreSQL pass (`TEST_BACKEND=postgres`), each on a database of its own.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Running, bin, free_port, wait_for};

/// Orders at the source: enough pages that kills land in the middle of a pass.
const ORDERS: u64 = 2000;
/// Orders deleted at the source before the full sync (their internal numbers).
const DELETED: [u64; 4] = [7, 400, 1200, 1999];
/// A short lease, so takeovers happen within the test.
const LEASE_SECS: u64 = 3;

/// The suite's PostgreSQL URL, when this is its PostgreSQL pass.
fn postgres_url() -> Option<String> {
    if std::env::var("TEST_BACKEND").ok().as_deref() != Some("postgres") {
        return None;
    }
    std::env::var("DATABASE_URL").ok()
}

/// A database of its own, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str, tag: &str) -> Database {
        let name = format!("ib_cluster_{tag}_{}", std::process::id());
        let psql = |sql: &str| {
            Command::new("psql")
                .args([admin, "-qtc", sql])
                .output()
                .expect("psql runs")
        };
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (base, _) = admin.rsplit_once('/').expect("a database URL");
        Database {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// An SAP emulator, an API process and worker processes sharing one database.
struct Cluster {
    db: Database,
    dir: tempfile::TempDir,
    client: reqwest::Client,
    emulator: String,
    api: String,
    token: String,
    key: String,
    workers: Vec<Option<Running>>,
    _api: Running,
    _emulator: Running,
}

impl Cluster {
    async fn start(admin: &str, tag: &str, workers: usize) -> Cluster {
        let db = Database::create(admin, tag);
        let dir = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();
        let emu_port = free_port();
        let emulator_process = Running(
            bin()
                .args(["emulate", "sap", "--port", &emu_port.to_string()])
                .args(["--records", &ORDERS.to_string(), "--real-time"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let emulator = format!("http://127.0.0.1:{emu_port}");
        let creds: Value = wait_for(Duration::from_secs(30), || async {
            client
                .get(format!("{emulator}/__emulator/credentials"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        })
        .await
        .expect("the emulator starts");
        let data_dir = dir.path().to_str().unwrap().to_string();
        let key = create_org_on(&db.url, &data_dir);
        let port = free_port();
        let api = format!("http://127.0.0.1:{port}");
        let api_process = Running(
            process(&db.url, &data_dir, "api")
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(Duration::from_secs(30), || async {
            client.get(format!("{api}/healthz")).send().await.ok()
        })
        .await
        .expect("the API starts");
        let mut cluster = Cluster {
            db,
            dir,
            client,
            emulator,
            api,
            token: String::new(),
            key,
            workers: Vec::new(),
            _api: api_process,
            _emulator: emulator_process,
        };
        for _ in 0..workers {
            cluster.start_worker();
        }
        let created: Value = cluster
            .client
            .post(format!("{}/v1/connections", cluster.api))
            .bearer_auth(&cluster.key)
            .json(&json!({
                "system": "sap_s4hana",
                "settings": {"base_url": cluster.emulator, "page_size": 50, "history_days": 3650},
                "credentials": {"username": creds["user"], "password": creds["password"]},
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cluster.token = created["token"].as_str().expect("a token").to_string();
        cluster
    }

    /// Starts a worker process; its log goes to `worker-<pid>.log` in the data directory.
    fn start_worker(&mut self) -> usize {
        let n = self.workers.len();
        let log = std::fs::File::create(self.dir.path().join(format!("worker-{n}.log"))).unwrap();
        let data_dir = self.dir.path().to_str().unwrap().to_string();
        let child = process(&self.db.url, &data_dir, "worker")
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.push(Some(Running(child)));
        n
    }

    fn pid(&self, n: usize) -> String {
        self.workers[n].as_ref().unwrap().0.id().to_string()
    }

    fn signal(&self, n: usize, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid(n)])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// `kill -9` of worker `n`.
    fn kill(&mut self, n: usize) {
        if let Some(mut running) = self.workers[n].take() {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
        }
    }

    fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("worker-{n}.log"))).unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.get_as(&self.token, path).await
    }

    async fn get_as(&self, token: &str, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.api))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn order_state(&self) -> Value {
        let conn = self.get("/v1/connection").await;
        conn["sync"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entity"] == "purchase_order")
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Once the first sync completed: an active vendor and item to order.
    async fn orderable(&self) -> (String, String) {
        wait_for(Duration::from_secs(240), || async {
            let s = self.order_state().await;
            (s["status"] == "succeeded").then_some(())
        })
        .await
        .expect("the first sync completes");
        (
            self.first_active("/v1/vendors").await,
            self.first_active("/v1/items").await,
        )
    }

    /// The id of the first active record of a list (an inactive one cannot be ordered).
    async fn first_active(&self, path: &str) -> String {
        let page = self.get(&format!("{path}?page_size=200")).await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "active")
            .and_then(|r| r["id"].as_str())
            .expect("an active record")
            .to_string()
    }

    /// Kills every worker with SIGKILL and starts as many fresh ones, as a process manager
    /// would.
    fn kill_all(&mut self) {
        let n = self.workers.len();
        for i in 0..n {
            self.kill(i);
        }
        for i in 0..n {
            let fresh = self.start_worker();
            self.workers.swap(i, fresh);
            self.workers.pop();
        }
    }

    /// Kills every worker twice while the work `path` shows progresses (`done` reads how
    /// many of its parts ended), each time once 40 more ended and some are in flight; returns
    /// `path` once it has finished.
    async fn kill_twice_during(
        &mut self,
        token: &str,
        path: &str,
        done: fn(&Value) -> Option<i64>,
    ) -> Value {
        let mut seen = 0;
        for round in 0..2 {
            let progressed = wait_for(Duration::from_secs(120), || async {
                let n = done(&self.get_as(token, path).await)?;
                (n > seen + 40).then_some(n)
            })
            .await;
            let Some(n) = progressed else {
                panic!(
                    "round {round}: no progress: {}",
                    self.get_as(token, path).await
                )
            };
            seen = n;
            // Mid-way: writes are in flight.
            tokio::time::sleep(Duration::from_millis(700)).await;
            self.kill_all();
        }
        wait_for(Duration::from_secs(300), || async {
            let v = self.get_as(token, path).await;
            v["finished_at"].is_string().then_some(v)
        })
        .await
        .expect("the work ends")
    }

    async fn job(&self, id: &str) -> Value {
        self.get(&format!("/v1/sync/jobs/{id}")).await
    }

    async fn faults(&self, faults: Value) {
        let r = self
            .client
            .patch(format!("{}/__emulator/faults", self.emulator))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Waits for the first sync, deletes `DELETED` at the source, slows the pages down and
    /// queues a full sync; returns its job id.
    async fn start_full_sync(&self) -> String {
        wait_for(Duration::from_secs(240), || async {
            let s = self.order_state().await;
            (s["status"] == "succeeded" && s["record_count"] == ORDERS).then_some(())
        })
        .await
        .expect("the first sync stores every order");
        for n in DELETED {
            let r = self
                .client
                .delete(format!(
                    "{}/__emulator/records/purchase_orders/{n}",
                    self.emulator
                ))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "deleting order {n}");
        }
        self.faults(json!({"latency_ms": 250})).await;
        let queued: Value = self
            .client
            .post(format!("{}/v1/sync", self.api))
            .bearer_auth(&self.token)
            .json(&json!({"full": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(queued["already_queued"], false, "{queued}");
        queued["job"]["id"].as_str().unwrap().to_string()
    }

    /// Waits for the job to succeed, then checks the store against the source through the
    /// API: every live order once, exactly the deleted ones flagged, and one `sync.completed`
    /// (a full one) for the job.
    async fn assert_exact_after(&self, job: &str) -> Value {
        self.faults(json!({"latency_ms": 0})).await;
        let done = wait_for(Duration::from_secs(300), || async {
            let j = self.job(job).await;
            (j["status"] == "succeeded" || j["status"] == "failed").then_some(j)
        })
        .await
        .expect("the job ends");
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["failed_attempts"], 0, "{done}");
        let mut live = std::collections::HashSet::new();
        let mut flagged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/v1/purchase-orders?page_size=200&include_deleted=true".to_string();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path).await;
            for po in page["data"].as_array().unwrap() {
                let key = po["remote_id"].as_str().unwrap().to_string();
                if po["remote_was_deleted"] == true {
                    flagged.push(key);
                } else {
                    assert!(live.insert(key.clone()), "{key} stored twice");
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        flagged.sort();
        let mut expected: Vec<String> = DELETED.iter().map(|n| format!("45{n:08}")).collect();
        expected.sort();
        assert_eq!(flagged, expected, "exactly the deleted orders are flagged");
        assert_eq!(live.len() as u64, ORDERS - DELETED.len() as u64);
        let events = self
            .get_as(&self.key, "/v1/events?type=sync.completed&page_size=100")
            .await;
        let full: Vec<&Value> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["full"] == true)
            .collect();
        assert_eq!(
            full.len(),
            1,
            "one sync.completed for the full sync: {events}"
        );
        assert_eq!(full[0]["data"]["records_deleted"], DELETED.len());
        done
    }
}

/// A process of the cluster: `serve` in `role`, on the test's database and data directory.
fn process(db: &str, data_dir: &str, role: &str) -> Command {
    let mut cmd = bin();
    cmd.env("IRONBRIDGE_DATABASE_URL", db)
        .env("IRONBRIDGE_JOB_LEASE_SECS", LEASE_SECS.to_string())
        .env(crate::ALLOW_LOOPBACK.0, crate::ALLOW_LOOPBACK.1)
        .args(["--data-dir", data_dir, "serve", "--role", role])
        .stdout(Stdio::null());
    cmd
}

fn create_org_on(db: &str, data_dir: &str) -> String {
    let out = bin()
        .env("IRONBRIDGE_DATABASE_URL", db)
        .args(["--data-dir", data_dir, "org", "create", "--name", "Acme"])
        .args(["--json", "--credits", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Three workers, all killed with SIGKILL (and restarted, as a process manager would) each
/// time a new one has taken the full sync over and worked on it a little: the sync goes on
/// from where each holder stopped, completes without a failed attempt, flags exactly what
/// the source deleted and announces itself once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_syncs_complete_exactly_while_workers_are_killed() {
    let Some(admin) = postgres_url() else { return };
    let mut cluster = Cluster::start(&admin, "kill", 3).await;
    let job = cluster.start_full_sync().await;
    let mut holder_attempt = 0;
    for round in 0..3 {
        let running = wait_for(Duration::from_secs(60), || async {
            let j = cluster.job(&job).await;
            let attempt = j["attempts"].as_i64()?;
            (j["status"] == "running" && attempt > holder_attempt).then_some(j)
        })
        .await;
        let Some(running) = running else {
            panic!(
                "round {round}: no worker took the job over: {}",
                cluster.job(&job).await
            )
        };
        holder_attempt = running["attempts"].as_i64().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.kill_all();
    }
    let done = cluster.assert_exact_after(&job).await;
    assert!(done["attempts"].as_i64().unwrap() >= 4, "{done}");
}

/// The worker holding a full sync is frozen (SIGSTOP) until another takes the job over, then
/// resumed: the successor is not held back much longer than the lease, the frozen worker's
/// late writes are refused and it stops saying it lost the job, and the data stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_loses_its_job_and_writes_nothing_after_its_successor_began() {
    let Some(admin) = postgres_url() else { return };
    let mut cluster = Cluster::start(&admin, "freeze", 1).await;
    let job = cluster.start_full_sync().await;
    wait_for(Duration::from_secs(60), || async {
        let j = cluster.job(&job).await;
        (j["status"] == "running").then_some(())
    })
    .await
    .expect("the full sync runs");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    cluster.signal(0, "-STOP");
    let frozen_at = Instant::now();
    let successor = cluster.start_worker();
    let taken = wait_for(Duration::from_secs(60), || async {
        let j = cluster.job(&job).await;
        (j["attempts"].as_i64()? >= 2 && j["status"] == "running").then_some(j)
    })
    .await
    .expect("the successor takes the job over");
    let waited = frozen_at.elapsed();
    assert!(
        waited < Duration::from_secs(LEASE_SECS * 4 + 5),
        "the successor waited {waited:?} for a frozen worker ({taken})"
    );
    // The successor makes progress while the frozen worker still holds whatever it held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.signal(0, "-CONT");
    cluster.assert_exact_after(&job).await;
    let frozen_log = cluster.log(0);
    assert!(
        frozen_log.contains("lost the job"),
        "the resumed worker stops and says why: {frozen_log}"
    );
    let successor_log = cluster.log(successor);
    assert!(!successor_log.contains("lost the job"), "{successor_log}");
}

/// Creates in the bulk batch of the kill test.
const BATCH_CREATES: usize = 1000;

/// A bulk batch of 1,000 purchase-order creates while every worker is killed with SIGKILL
/// (and restarted) twice mid-way: the batch completes with every operation succeeded
/// and the source received exactly one create for each, because an operation caught in
/// flight by a kill is looked for at the source (by its reference) before it is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_each_operation_exactly_once_while_workers_are_killed() {
    let Some(admin) = postgres_url() else { return };
    let mut cluster = Cluster::start(&admin, "batch", 2).await;
    let (vendor, item) = cluster.orderable().await;
    let creates_before = sap_creates(&cluster).await;
    cluster.faults(json!({"latency_ms": 20})).await;
    let operations: Vec<Value> = (0..BATCH_CREATES)
        .map(|i| json!({"action": "create", "entity": "purchase-orders", "data": {"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": format!("{}", i % 7 + 1)}]}}))
        .collect();
    let queued: Value = cluster
        .client
        .post(format!("{}/v1/batches", cluster.api))
        .bearer_auth(&cluster.token)
        .json(&json!({"operations": operations, "batch_size": 20}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["id"].as_str().expect("a batch").to_string();
    let batch_path = format!("/v1/batches/{id}");
    let token = cluster.token.clone();
    let done = cluster
        .kill_twice_during(&token, &batch_path, |b| {
            Some(b["succeeded"].as_i64()? + b["failed"].as_i64()?)
        })
        .await;
    cluster.faults(json!({"latency_ms": 0})).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["succeeded"], BATCH_CREATES as i64, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(
        sap_creates(&cluster).await - creates_before,
        BATCH_CREATES,
        "one create per operation reached the source"
    );
}

/// Purchase-order creates the SAP emulator received.
async fn sap_creates(cluster: &Cluster) -> usize {
    let log: Value = cluster
        .client
        .get(format!("{}/__emulator/requests", cluster.emulator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["status"].as_u64().is_some_and(|s| s < 300)
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/A_PurchaseOrder"))
        })
        .count()
}

/// Items of the flow run in the kill test.
const FLOW_ITEMS: usize = 1000;

/// A flow run of 1,000 items, each shaped by jq into a purchase order written to SAP, while
/// every worker is killed with SIGKILL (and restarted) twice mid-way: the run succeeds with
/// every item written, and SAP received exactly one create per item, because an item caught
/// in flight by a kill is looked for at the source (by the reference derived from the run,
/// the step and the item) before it is written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_run_writes_each_item_exactly_once_while_workers_are_killed() {
    let Some(admin) = postgres_url() else { return };
    let mut cluster = Cluster::start(&admin, "flow", 2).await;
    let (vendor, item) = cluster.orderable().await;
    let conn = cluster.get("/v1/connection").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let creates_before = sap_creates(&cluster).await;
    cluster.faults(json!({"latency_ms": 20})).await;
    let flow = json!({
        "key": "orders-to-sap",
        "name": "Orders to SAP",
        "trigger": {"type": "manual"},
        "steps": [
            {"type": "transform", "id": "shape", "jq": "{vendor_id: .vendor, line_items: [{item_id: .item, quantity: .quantity}]}"},
            {"type": "write", "id": "create", "connection_id": conn, "entity": "purchase-orders", "batch_size": 20}
        ]
    });
    let created = cluster
        .client
        .post(format!("{}/v1/flows", cluster.api))
        .bearer_auth(&cluster.key)
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let items: Vec<Value> = (0..FLOW_ITEMS)
        .map(|i| json!({"vendor": vendor, "item": item, "quantity": format!("{}", i % 7 + 1)}))
        .collect();
    let queued: Value = cluster
        .client
        .post(format!("{}/v1/flows/orders-to-sap/runs", cluster.api))
        .bearer_auth(&cluster.key)
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["id"].as_str().expect("a run").to_string();
    let run_path = format!("/v1/flow-runs/{id}");
    let key = cluster.key.clone();
    let done = cluster
        .kill_twice_during(&key, &run_path, |r| {
            let write = &r["steps"][1];
            Some(write["succeeded"].as_i64()? + write["failed"].as_i64()?)
        })
        .await;
    cluster.faults(json!({"latency_ms": 0})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][1]["succeeded"], FLOW_ITEMS as i64, "{done}");
    assert_eq!(done["steps"][1]["failed"], 0, "{done}");
    assert_eq!(
        sap_creates(&cluster).await - creates_before,
        FLOW_ITEMS,
        "one create per item reached the source"
    );
}
