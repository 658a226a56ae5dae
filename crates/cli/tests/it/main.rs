//! The `ironbridge` binary as a user runs it: help, bootstrap, configuration errors, serving
//! and graceful shutdown, and `kill -9` in the middle of syncs and webhook deliveries.

mod cluster;
mod webhooks;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironbridge"));
    // The developer's own environment must not leak into the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("IRONBRIDGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

#[test]
fn help_lists_every_command() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "migrate", "org", "openapi"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    let out = bin().args(["org", "create", "--help"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("--credits"));
}

#[test]
fn openapi_prints_the_document() {
    let out = bin().arg("openapi").output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/v1/purchase-orders"].is_object());
}

#[test]
fn org_create_bootstraps_a_database_and_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "org",
            "create",
            "--name",
            "Acme",
            "--credits",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let org: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(org["api_key"].as_str().unwrap().starts_with("ibk_"));
    assert_eq!(org["connection_credits"], 3);
    assert!(dir.path().join("ironbridge.db").exists());
    assert!(dir.path().join("master.key").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(org["api_key"].as_str().unwrap()),
        "the key is printed once, on stdout only"
    );
    let out = bin()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "org",
            "create",
            "--name",
            " ",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name must not be empty"));
}

#[test]
fn configuration_errors_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ironbridge.toml");
    std::fs::write(&config, "listen = \"not an address\"\n").unwrap();
    let out = bin()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: listen = \"not an address\" is not an address"),
        "{stderr}"
    );
    let out = bin()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            "mysql://x",
            "migrate",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("database_url must start with sqlite:// or postgres://")
    );
    let out = bin()
        .env("IRONBRIDGE_MASTER_KEY", "too-short")
        .args(["--data-dir", dir.path().to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master_key must be 32 random bytes") && !stderr.contains("too-short"),
        "{stderr}"
    );
    let out = bin()
        .env("IRONBRIDGE_JOB_LEASE_SECS", "1")
        .args(["--data-dir", dir.path().to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("job_lease_secs must be between 3 and 86400")
    );
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--log-format",
            "json",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(res) = reqwest::get(&url).await {
            ok = res.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the server answered /healthz");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "request"
            && l["path"] == "/healthz"
            && l["request_id"].is_string()),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
}

#[tokio::test]
async fn a_worker_serves_health_and_metrics_on_metrics_listen() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut worker = Running(
        bin()
            .env("IRONBRIDGE_METRICS_LISTEN", format!("127.0.0.1:{port}"))
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(["serve", "--role", "worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await {
            ready = res.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the worker answered /readyz");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "ironbridge_jobs_queued{kind=\"sync\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ironbridge_db_pool_max{pool=")),
        "{metrics}"
    );
    for path in ["/v1/organization", "/docs"] {
        let res = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(res.status(), 404, "a worker serves no API ({path})");
    }
    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        worker.0.wait().unwrap().success(),
        "graceful shutdown exits 0"
    );
}

#[tokio::test]
async fn emulate_starts_a_large_emulator_quickly_and_serves() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "emulate",
            "netsuite",
            "--port",
            &port.to_string(),
            "--records",
            "100000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut status = None;
    for _ in 0..300 {
        if let Ok(res) = reqwest::get(format!(
            "{base}/services/rest/record/v1/purchaseOrder?limit=1"
        ))
        .await
        {
            status = Some(res.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        Some(401),
        "NetSuite answers an unauthenticated call with 401"
    );
    let bad = bin().args(["emulate", "oracle-ebs"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("expected netsuite, sap, business-central, asctrac, samsara or nextraq")
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("netsuite emulator listening on") && out.contains("100000 purchase orders"),
        "{out}"
    );
}

#[tokio::test]
async fn demo_connects_every_system_and_syncs_them() {
    // Port 0: the demo picks a free port and prints it, so no other test can take it first.
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut child = bin()
        .args(["demo", "--listen", "127.0.0.1:0", "--records", "300"])
        .stdout(Stdio::piped())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    // The demo prints its tokens once every initial sync has settled.
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let mut all = String::new();
        while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) > 0 {
            all.push_str(&line);
            if line.starts_with("Press Ctrl-C") {
                break;
            }
            line.clear();
        }
        all
    });
    out.push_str(
        &tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap(),
    );
    let tokens: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export TOKEN="))
        .collect();
    assert_eq!(
        tokens.len(),
        7,
        "{out}\n--- stderr ---\n{}",
        std::fs::read_to_string(logs.path()).unwrap_or_default()
    );
    let base = out
        .lines()
        .find_map(|l| l.strip_prefix("Ironbridge is running at "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the demo prints its address")
        .to_string();
    // Each initial sync's sync.completed reached the demo's receiver, signed and verified.
    let webhooks = out
        .lines()
        .find(|l| l.starts_with("Webhooks:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        webhooks.contains("(7 sync.completed), refused 0"),
        "{webhooks}"
    );
    assert!(
        out.contains("/deliveries?event_type=sync.completed"),
        "{out}"
    );
    assert_eq!(
        out.matches(" vehicles reporting, newest point 20").count(),
        2,
        "both fleets' points: {out}"
    );
    let client = reqwest::Client::new();
    for token in tokens {
        let conn: serde_json::Value = client
            .get(format!("{base}/v1/connection"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(conn["status"], "online", "{conn}");
        // The ERPs' purchase orders; the warehouse's receipts; the fleets' vehicles, and
        // their points.
        let entity = match conn["system"].as_str().unwrap() {
            "asctrac" => "receipt",
            "samsara" | "nextraq" => "vehicle",
            _ => "purchase_order",
        };
        if entity == "vehicle" {
            let latest: serde_json::Value = client
                .get(format!("{base}/v1/vehicle-locations/latest"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(latest["data"].as_array().unwrap().len() >= 2, "{latest}");
        }
        let orders = conn["sync"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entity"] == entity)
            .unwrap();
        assert_eq!(orders["status"], "succeeded", "{conn}");
        assert!(orders["record_count"].as_i64().unwrap() > 0, "{conn}");
    }
    // While it runs, the screen is the demo's own: the service's logs (the worker's syncs, each request)
    // went to the file it named, in plain text, and none to the terminal.
    let log_path = out
        .lines()
        .find_map(|l| l.strip_prefix("The service's logs go to "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the demo names its log: {out}"))
        .to_string();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("INFO"), "{log_path}: {log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in the file");
    let stderr = std::fs::read_to_string(logs.path()).unwrap_or_default();
    assert!(
        !stderr.contains("INFO"),
        "service logs on the screen: {stderr}"
    );
    assert!(!out.contains("INFO"), "service logs on the screen: {out}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
pub(crate) async fn wait_for<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Creates an organization with `ironbridge <global args> org create`; returns its admin key.
pub(crate) fn create_org(global: &[&str], credits: u32) -> String {
    let out = bin()
        .args(global)
        .args(["org", "create", "--name", "Acme", "--json", "--credits"])
        .arg(credits.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The setting that lets connections reach the emulators on loopback (refused by default).
pub(crate) const ALLOW_LOOPBACK: (&str, &str) = (
    "IRONBRIDGE_CONNECTIONS__ALLOWED_PRIVATE_NETWORKS",
    "[\"127.0.0.1\"]",
);

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child process on drop, so a failed assertion leaves nothing running.
pub(crate) struct Running(pub(crate) std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path, port: u16) -> Running {
    Running(
        bin()
            .env("IRONBRIDGE_JOB_LEASE_SECS", "3")
            // The emulator is on loopback, which connections may reach only when allowed.
            .env(ALLOW_LOOPBACK.0, ALLOW_LOOPBACK.1)
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The purchase-order sync state of the connection, once the API answers.
async fn order_sync(client: &reqwest::Client, api: &str, token: &str) -> Option<serde_json::Value> {
    let conn: serde_json::Value = client
        .get(format!("{api}/v1/connection"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    conn["sync"]
        .as_array()?
        .iter()
        .find(|e| e["entity"] == "purchase_order")
        .cloned()
}

/// `kill -9` of the whole process in the middle of a sync, then a restart on the same
/// database: the sync resumes and the store ends with every source order exactly once.
#[tokio::test]
async fn a_sync_killed_with_sigkill_resumes_after_a_restart_with_nothing_lost_or_doubled() {
    const ORDERS: u64 = 3000;
    let emu_port = free_port();
    let _emulator = Running(
        bin()
            .args([
                "emulate",
                "sap",
                "--port",
                &emu_port.to_string(),
                "--records",
                &ORDERS.to_string(),
                "--real-time",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{emu_port}");
    let client = reqwest::Client::new();
    let creds: serde_json::Value = wait_for(Duration::from_secs(30), || async {
        client
            .get(format!("{base}/__emulator/credentials"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
    .await
    .expect("the emulator starts");
    // Slow pages, so the kill lands in the middle of the purchase orders.
    let patched = client
        .patch(format!("{base}/__emulator/faults"))
        .json(&serde_json::json!({"latency_ms": 150}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());

    let dir = tempfile::tempdir().unwrap();
    let key = create_org(&["--data-dir", dir.path().to_str().unwrap()], 10);
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let mut server = serve(dir.path(), port);
    wait_for(Duration::from_secs(30), || async {
        client.get(format!("{api}/healthz")).send().await.ok()
    })
    .await
    .expect("the server starts");
    let created: serde_json::Value = client
        .post(format!("{api}/v1/connections"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "system": "sap_s4hana",
            "settings": {"base_url": base, "page_size": 50, "history_days": 3650},
            "credentials": {"username": creds["user"], "password": creds["password"]},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"]
        .as_str()
        .expect("a connection token")
        .to_string();

    // Kill -9 once part of the orders is stored.
    let partial = wait_for(Duration::from_secs(120), || async {
        let s = order_sync(&client, &api, &token).await?;
        let n = s["record_count"].as_u64()?;
        (n >= 300).then_some(n)
    })
    .await
    .expect("the sync stores orders");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert!(partial < ORDERS, "killed mid-way ({partial} stored)");

    client
        .patch(format!("{base}/__emulator/faults"))
        .json(&serde_json::json!({"latency_ms": 0}))
        .send()
        .await
        .unwrap();
    let _server = serve(dir.path(), port);
    let done = wait_for(Duration::from_secs(180), || async {
        let s = order_sync(&client, &api, &token).await?;
        (s["status"] == "succeeded").then_some(s)
    })
    .await
    .expect("the restarted worker takes the job over and finishes it");
    assert_eq!(done["record_count"], ORDERS, "{done}");

    // Every order once: page through the API and count distinct source keys.
    let mut keys = std::collections::HashSet::new();
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{api}/v1/purchase-orders?page_size=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for po in page["data"].as_array().unwrap() {
            total += 1;
            keys.insert(po["remote_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((total, keys.len() as u64), (ORDERS, ORDERS));
}

/// `flows apply` puts the documents of a directory by their keys, with placeholders
/// replaced; applying them again changes nothing, and a refused document names its problems
/// by path and fails the command.
#[tokio::test]
async fn flows_apply_puts_documents_from_files_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_org(&["--data-dir", dir.path().to_str().unwrap()], 3);
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let _server = serve(dir.path(), port);
    let client = reqwest::Client::new();
    wait_for(Duration::from_secs(30), || async {
        client.get(format!("{api}/healthz")).send().await.ok()
    })
    .await
    .expect("the server starts");
    let created: serde_json::Value = client
        .post(format!("{api}/v1/connections"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"system": "sandbox"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conn = created["connection"]["id"].as_str().unwrap().to_string();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("orders.json"),
        r#"{"key": "orders", "name": "Orders", "trigger": {"type": "manual"},
            "steps": [{"type": "write", "id": "create", "connection_id": "conn_SANDBOX", "entity": "purchase-orders"}]}"#,
    )
    .unwrap();
    let apply = |path: &std::path::Path| {
        bin()
            .env("IRONBRIDGE_API_KEY", &key)
            .args(["flows", "apply", "--url", &api, "--set"])
            .arg(format!("conn_SANDBOX={conn}"))
            .arg(path)
            .output()
            .unwrap()
    };
    let out = apply(&flows);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("orders: created (version 1)"), "{stdout}");
    let out = apply(&flows);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("orders: version 1"));
    std::fs::write(
        flows.join("broken.json"),
        r#"{"key": "broken", "name": "Broken", "trigger": {"type": "manual"},
            "steps": [{"type": "transform", "id": "t", "jq": ".a +"}]}"#,
    )
    .unwrap();
    let out = apply(&flows);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("broken.json: refused (422)"), "{stderr}");
    assert!(
        stderr.contains("steps[0].jq: not a jq expression"),
        "{stderr}"
    );
    let flow: serde_json::Value = client
        .get(format!("{api}/v1/flows/orders"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flow["version"], 1);
    assert_eq!(flow["steps"][0]["connection_id"], conn.as_str());
}
