//! Webhooks end to end: endpoints through the API, deliveries from real events to a real
//! local receiver, signatures, the retry schedule on the injected clock, Retry-After,
//! redirects, 410, auto-disable and recovery, replay, rotation, SSRF refusals (at creation
//! and, after DNS rebinding, at delivery), isolation from a hanging endpoint, tenancy, and
//! recoveries delivered one at a time in event order (across dispatchers too).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use ironbridge_core::Clock;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::Event;
use ironbridge_core::webhooks::{Secret, verify};
use ironbridge_engine::webhooks::{AddressPolicy, WebhookConfig};
use serde_json::{Value, json};

use crate::support::{FakeDns, TestApp, test_webhook_config};

/// One request the receiver got.
#[derive(Clone)]
struct Got {
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
    hang: bool,
    /// A slow receiver: how long it takes before answering.
    delay: Duration,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: "",
        hang: false,
        delay: Duration::ZERO,
    }
}

/// A webhook receiver on loopback: answers from a script (then a default), records every
/// request in arrival order and the most requests it held at once; a hanging reply waits
/// until `release`.
#[derive(Clone)]
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    gate: Arc<tokio::sync::Semaphore>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Hook {
    async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hook = Hook {
            url: format!("http://127.0.0.1:{port}/hook"),
            got: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(reply(204))),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            in_flight: Arc::default(),
            peak: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hook
    }

    fn port(&self) -> u16 {
        self.url
            .split(':')
            .nth(2)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn answer(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().cloned());
    }

    fn always(&self, r: Reply) {
        *self.default.lock().unwrap() = r;
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn of_type(&self, t: &str) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.json()["type"] == t)
            .collect()
    }

    fn release(&self) {
        self.gate.add_permits(10_000);
    }

    /// The most requests it has held at once since the last call, which resets it.
    fn take_peak(&self) -> usize {
        self.peak.swap(0, Ordering::SeqCst)
    }

    /// The `webhook-id`s it got, in arrival order.
    fn ids(&self) -> Vec<String> {
        self.got()
            .iter()
            .map(|g| g.header("webhook-id").to_string())
            .collect()
    }

    /// Waits (boundedly: a loaded machine is slow) until it has got `n` requests.
    async fn wait_for(&self, n: usize) {
        for _ in 0..2000 {
            if self.got().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(
    State(hook): State<Hook>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> impl IntoResponse {
    hook.got.lock().unwrap().push(Got { headers, body });
    let held = hook.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    hook.peak.fetch_max(held, Ordering::SeqCst);
    let r = {
        let next = hook.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| hook.default.lock().unwrap().clone())
    };
    if r.hang {
        let _ = hook.gate.acquire().await;
    }
    tokio::time::sleep(r.delay).await;
    hook.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut out = HeaderMap::new();
    for (k, v) in &r.headers {
        out.insert(*k, v.parse().unwrap());
    }
    (StatusCode::from_u16(r.status).unwrap(), out, r.body)
}

/// Creates an endpoint; returns its id and secret.
async fn endpoint(app: &TestApp, key: &str, url: &str, extra: Value) -> (String, Secret) {
    let mut body = json!({"url": url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let res = app.post(key, "/v1/webhook-endpoints", body).await;
    assert_eq!(res.status, 201, "{}", res.body);
    (
        res.body["endpoint"]["id"].as_str().unwrap().to_string(),
        Secret::parse(res.body["secret"].as_str().unwrap()).unwrap(),
    )
}

/// Writes an organization-wide event (as the engine would) and returns its id.
async fn emit(app: &TestApp, org: &str, event_type: &str) -> String {
    let now = app.clock.now();
    let event = Event {
        id: new_id("evt", now.micros()),
        org_id: org.to_string(),
        connection_id: None,
        event_type: event_type.into(),
        data: json!({"code": "SYNC_FAILING"}).to_string(),
        created_at: now,
    };
    app.store.insert_event(&event).await.unwrap();
    event.id
}

/// Attempts everything due now, until nothing is.
async fn drain(app: &TestApp) -> usize {
    let mut n = 0;
    loop {
        let k = app.webhooks.run_due().await.unwrap();
        if k == 0 {
            return n;
        }
        n += k;
    }
}

async fn deliveries(app: &TestApp, key: &str, ep: &str) -> Vec<Value> {
    let res = app
        .get(key, &format!("/v1/webhook-endpoints/{ep}/deliveries"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["data"].as_array().unwrap().clone()
}

fn verifies(secret: &Secret, got: &Got, now_secs: i64) -> bool {
    verify(
        secret,
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
        &got.body,
        now_secs,
    )
    .is_ok()
}

fn secs(app: &TestApp) -> i64 {
    app.clock.now().micros() / 1_000_000
}

#[tokio::test]
async fn endpoints_are_created_read_changed_and_deleted_with_clear_errors() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (conn, _) = app.connection(&key, json!({})).await;
    let hook = Hook::start().await;
    let res = app
        .post(
            &key,
            "/v1/webhook-endpoints",
            json!({"url": hook.url, "description": "ERP events", "event_types": ["sync.completed", "sync.failed"], "connection_ids": [conn]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let ep = &res.body["endpoint"];
    let id = ep["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("whk_"));
    assert_eq!(
        (
            ep["status"].as_str(),
            ep["event_types"].clone(),
            ep["connection_ids"].clone()
        ),
        (
            Some("enabled"),
            json!(["sync.completed", "sync.failed"]),
            json!([conn])
        )
    );
    let secret = res.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 32);
    assert_eq!(
        app.get(&key, &format!("/v1/webhook-endpoints/{id}/secret"))
            .await
            .body["secret"],
        secret.as_str()
    );
    let list = app.get(&key, "/v1/webhook-endpoints").await;
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    assert!(
        list.body["data"][0].get("secret").is_none(),
        "secrets are not listed"
    );

    let patched = app
        .patch(
            &key,
            &format!("/v1/webhook-endpoints/{id}"),
            json!({"description": null, "event_types": null, "disabled": true}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        (
            patched.body["description"].clone(),
            patched.body["event_types"].clone(),
            patched.body["status"].clone(),
            patched.body["disabled_reason"].clone()
        ),
        (Value::Null, Value::Null, json!("disabled"), json!("manual"))
    );
    app.post(&key, &format!("/v1/webhook-endpoints/{id}/test"), json!({}))
        .await
        .assert_error(409, "CONFLICT");
    let enabled = app
        .patch(
            &key,
            &format!("/v1/webhook-endpoints/{id}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(
        (
            enabled.body["status"].as_str(),
            enabled.body["disabled_reason"].clone()
        ),
        (Some("enabled"), Value::Null)
    );

    // Bad input: a structured error naming the field, and nothing stored.
    for (body, status, code, param) in [
        (
            json!({"url": hook.url, "event_types": ["sync.exploded"]}),
            422,
            "VALIDATION_ERROR",
            "event_types[0]",
        ),
        (
            json!({"url": hook.url, "event_types": []}),
            422,
            "VALIDATION_ERROR",
            "event_types",
        ),
        (
            json!({"url": hook.url, "connection_ids": ["conn_nope"]}),
            422,
            "VALIDATION_ERROR",
            "connection_ids[0]",
        ),
        (
            json!({"url": hook.url, "secret": "whsec_short"}),
            422,
            "VALIDATION_ERROR",
            "secret",
        ),
        (
            json!({"url": hook.url, "secret": "sk_live_x"}),
            422,
            "VALIDATION_ERROR",
            "secret",
        ),
        (
            json!({"url": "ftp://example.com/in"}),
            422,
            "VALIDATION_ERROR",
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/in"}),
            422,
            "VALIDATION_ERROR",
            "url",
        ),
        (json!({"url": "not a url"}), 422, "VALIDATION_ERROR", "url"),
        (
            json!({"url": "https://nowhere.invalid/in"}),
            422,
            "VALIDATION_ERROR",
            "url",
        ),
        (
            json!({"url": hook.url, "description": "x".repeat(501)}),
            422,
            "VALIDATION_ERROR",
            "description",
        ),
        (
            json!({"url": hook.url, "colour": "red"}),
            400,
            "INVALID_REQUEST",
            "colour",
        ),
        (
            json!({"description": "no url"}),
            422,
            "VALIDATION_ERROR",
            "url",
        ),
    ] {
        let res = app.post(&key, "/v1/webhook-endpoints", body.clone()).await;
        let err = res.assert_error(status, code);
        assert_eq!(err["param"], param, "{body}: {}", res.body);
    }
    let res = app
        .patch(
            &key,
            &format!("/v1/webhook-endpoints/{id}"),
            json!({"secret": "whsec_x"}),
        )
        .await;
    assert!(res.status == 400 || res.status == 422, "{}", res.body);
    assert_eq!(
        app.get(&key, "/v1/webhook-endpoints").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let types = app.get(&key, "/v1/webhook-event-types").await;
    let names: Vec<&str> = types.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "sync.completed",
        "sync.failed",
        "connection.reauthorization_required",
        "connection.status_changed",
        "connection.disconnected",
        "system.error",
    ] {
        assert!(names.contains(&t), "{t} missing from the catalogue");
    }

    assert_eq!(
        app.delete(&key, &format!("/v1/webhook-endpoints/{id}"))
            .await
            .status,
        204
    );
    app.get(&key, &format!("/v1/webhook-endpoints/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_sync_is_delivered_signed_with_its_event_id_and_logged() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, secret) = endpoint(&app, &key, &hook.url, json!({})).await;
    let (conn, _) = app.connection(&key, json!({})).await;
    assert!(drain(&app).await >= 1);
    let got = hook.of_type("sync.completed");
    assert_eq!(got.len(), 1);
    let g = &got[0];
    let body = g.json();
    let events = app.get(&key, "/v1/events?type=sync.completed").await;
    let event = &events.body["data"][0];
    assert_eq!(g.header("webhook-id"), event["id"].as_str().unwrap());
    assert_eq!(body["id"], event["id"]);
    assert_eq!(body["connection_id"], conn.as_str());
    assert_eq!(body["data"], event["data"]);
    assert!(body["data"]["records_added"].as_u64().unwrap() > 0);
    assert_eq!(g.header("content-type"), "application/json");
    assert_eq!(g.header("webhook-timestamp"), secs(&app).to_string());
    assert!(verifies(&secret, g, secs(&app)), "the signature verifies");
    assert!(!verifies(&Secret::generate(), g, secs(&app)));

    let log = deliveries(&app, &key, &ep).await;
    let d = log
        .iter()
        .find(|d| d["event_type"] == "sync.completed")
        .unwrap();
    assert_eq!(
        (
            d["status"].as_str(),
            d["attempts"].as_i64(),
            d["last_status_code"].as_i64()
        ),
        (Some("succeeded"), Some(1), Some(204))
    );
    assert_eq!(d["message_id"], event["id"]);
    let one = app
        .get(
            &key,
            &format!("/v1/webhook-deliveries/{}", d["id"].as_str().unwrap()),
        )
        .await;
    let attempt = &one.body["attempt_log"][0];
    assert_eq!(
        (
            attempt["attempt"].as_i64(),
            attempt["outcome"].as_str(),
            attempt["status_code"].as_i64()
        ),
        (Some(1), Some("succeeded"), Some(204))
    );
    assert!(attempt["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(one.body["payload"], body, "the log shows the exact payload");
    let attempts = app
        .get(&key, &format!("/v1/webhook-endpoints/{ep}/attempts"))
        .await;
    assert!(!attempts.body["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn failed_attempts_follow_the_schedule_with_one_webhook_id() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, secret) = endpoint(&app, &key, &hook.url, json!({})).await;
    hook.answer(&[
        reply(500),
        Reply {
            body: "busy",
            ..reply(502)
        },
        reply(301),
        reply(500),
    ]);
    let evt = emit(&app, &org, "system.error").await;
    // Immediately, then 5 s, 5 min, 30 min, 2 h later (±10 % jitter).
    let mut timestamps = Vec::new();
    for (i, delay) in [0i64, 5, 300, 1800, 7200].into_iter().enumerate() {
        if i > 0 {
            let d = &deliveries(&app, &key, &ep).await[0];
            let next =
                ironbridge_model::Timestamp::parse_rfc3339(d["next_attempt_at"].as_str().unwrap())
                    .unwrap();
            let wait = (next.micros() - app.clock.now().micros()) as f64 / 1e6;
            assert!(
                wait >= delay as f64 * 0.9 - 0.001 && wait <= delay as f64 * 1.1 + 0.001,
                "attempt {} due after {wait} s, expected {delay} s ± 10 %",
                i + 1
            );
            // Not a moment early.
            app.clock.advance_micros((wait * 1e6) as i64 - 1_000);
            assert_eq!(drain(&app).await, 0, "attempt {} ran early", i + 1);
            app.clock.advance_micros(1_000);
        }
        assert_eq!(drain(&app).await, 1, "attempt {}", i + 1);
        timestamps.push(secs(&app).to_string());
    }
    let got = hook.got();
    assert_eq!(got.len(), 5);
    assert!(
        got.iter().all(|g| g.header("webhook-id") == evt),
        "one id across retries"
    );
    let sent: Vec<&str> = got.iter().map(|g| g.header("webhook-timestamp")).collect();
    assert_eq!(sent, timestamps, "each attempt carries its own timestamp");
    assert!(
        got.iter().all(|g| g.body == got[0].body),
        "the same bytes every time"
    );
    assert!(got.iter().all(|g| verifies(
        &secret,
        g,
        g.header("webhook-timestamp").parse().unwrap()
    )));
    let d = &deliveries(&app, &key, &ep).await[0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("succeeded"), Some(5))
    );
    let one = app
        .get(
            &key,
            &format!("/v1/webhook-deliveries/{}", d["id"].as_str().unwrap()),
        )
        .await;
    let log: Vec<(Option<i64>, Option<&str>)> = one.body["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["status_code"].as_i64(), a["error"].as_str()))
        .collect();
    assert_eq!(
        log,
        [
            (Some(204), None),
            (Some(500), Some("http_status")),
            (Some(301), Some("redirect")),
            (Some(502), Some("http_status")),
            (Some(500), Some("http_status"))
        ],
        "newest first; a redirect is a failure and is not followed"
    );
    assert_eq!(one.body["attempt_log"][3]["response_excerpt"], "busy");
    let e = app.get(&key, &format!("/v1/webhook-endpoints/{ep}")).await;
    assert_eq!(
        e.body["failing_since"],
        Value::Null,
        "a success ends the streak"
    );
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured_and_the_schedule_ends() {
    let dns = Arc::new(FakeDns::default());
    let config = WebhookConfig {
        retry_schedule: vec![Duration::from_secs(5), Duration::from_secs(10)],
        ..test_webhook_config(dns.clone())
    };
    let app = TestApp::spawn_webhooks(config).await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({})).await;
    hook.always(Reply {
        headers: vec![("retry-after", "120")],
        ..reply(429)
    });
    emit(&app, &org, "system.error").await;
    let started = app.clock.now();
    drain(&app).await;
    let next = |d: &Value| {
        ironbridge_model::Timestamp::parse_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap()
    };
    let d = deliveries(&app, &key, &ep).await[0].clone();
    assert_eq!(
        next(&d).micros() - started.micros(),
        120_000_000,
        "Retry-After beats the 5 s step"
    );
    hook.always(Reply {
        headers: vec![("retry-after", "3")],
        ..reply(503)
    });
    app.clock.advance_secs(120);
    drain(&app).await;
    let d = deliveries(&app, &key, &ep).await[0].clone();
    let wait = next(&d).micros() - app.clock.now().micros();
    assert!(
        (9_000_000..=11_000_000).contains(&wait),
        "a short Retry-After does not shorten the schedule: {wait}"
    );
    app.clock.advance_secs(11);
    drain(&app).await;
    let d = deliveries(&app, &key, &ep).await[0].clone();
    assert_eq!(
        (
            d["status"].as_str(),
            d["attempts"].as_i64(),
            d["next_attempt_at"].clone()
        ),
        (Some("failed"), Some(3), Value::Null),
        "schedule used up"
    );
    assert_eq!(hook.got().len(), 3);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_with_its_original_id() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({})).await;
    hook.always(reply(503));
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(emit(&app, &org, "system.error").await);
        app.clock.advance_secs(1);
    }
    drain(&app).await;
    app.clock.advance_secs(6);
    drain(&app).await;
    assert_eq!(hook.got().len(), 40, "two failed attempts each");
    hook.always(reply(200));
    app.clock.advance_secs(331);
    drain(&app).await;
    let ok: Vec<String> = hook.got()[40..]
        .iter()
        .map(|g| g.header("webhook-id").to_string())
        .collect();
    let mut sorted_ok = ok.clone();
    sorted_ok.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        sorted_ok, expected,
        "everything arrives once the receiver is back"
    );
    assert!(
        deliveries(&app, &key, &ep)
            .await
            .iter()
            .all(|d| d["status"] == "succeeded")
    );
    // Every copy of an event carried the same id.
    for id in &ids {
        let copies = hook
            .got()
            .iter()
            .filter(|g| g.header("webhook-id") == id)
            .count();
        assert_eq!(copies, 3, "{id}");
    }
}

#[tokio::test]
async fn endpoints_failing_for_days_are_disabled_then_recovered_in_order() {
    let dns = Arc::new(FakeDns::default());
    let app = TestApp::spawn_webhooks(test_webhook_config(dns.clone())).await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let watcher = Hook::start().await;
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({})).await;
    let (_, _) = endpoint(
        &app,
        &key,
        &watcher.url,
        json!({"event_types": ["webhook_endpoint.disabled"]}),
    )
    .await;
    hook.always(reply(500));
    let since = app.clock.now();
    let mut ids = Vec::new();
    // An event a day; every attempt fails. After five days of failures it is disabled.
    for day in 0..7 {
        ids.push(emit(&app, &org, "system.error").await);
        for _ in 0..24 {
            drain(&app).await;
            app.clock.advance_secs(3600);
        }
        let status = app
            .get(&key, &format!("/v1/webhook-endpoints/{ep}"))
            .await
            .body["status"]
            .clone();
        if day < 4 {
            assert_eq!(status, "enabled", "day {day}");
        }
    }
    let e = app
        .get(&key, &format!("/v1/webhook-endpoints/{ep}"))
        .await
        .body;
    assert_eq!(
        (e["status"].as_str(), e["disabled_reason"].as_str()),
        (Some("disabled"), Some("failing"))
    );
    assert!(e["failing_since"].is_string());
    let disabled = app
        .get(&key, "/v1/events?type=webhook_endpoint.disabled")
        .await;
    assert_eq!(disabled.body["data"][0]["data"]["endpoint_id"], ep.as_str());
    drain(&app).await;
    assert_eq!(
        watcher.of_type("webhook_endpoint.disabled").len(),
        1,
        "other endpoints are told"
    );
    let tries_while_disabled = hook.got().len();
    let late = emit(&app, &org, "system.error").await;
    ids.push(late);
    drain(&app).await;
    assert_eq!(
        hook.got().len(),
        tries_while_disabled,
        "nothing is sent to a disabled endpoint"
    );
    app.post(
        &key,
        &format!("/v1/webhook-endpoints/{ep}/recover"),
        json!({"since": since.to_rfc3339()}),
    )
    .await
    .assert_error(409, "CONFLICT");

    hook.always(reply(204));
    let e = app
        .patch(
            &key,
            &format!("/v1/webhook-endpoints/{ep}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(
        (e.body["status"].as_str(), e.body["failing_since"].clone()),
        (Some("enabled"), Value::Null)
    );
    let failed: Vec<String> = deliveries(&app, &key, &ep)
        .await
        .iter()
        .filter(|d| d["status"] == "failed" && d["event_type"] == "system.error")
        .map(|d| d["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        failed.len(),
        ids.len(),
        "every event is in the log as failed"
    );
    let res = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{ep}/recover"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    let recovered = res.body["replayed"].as_u64().unwrap();
    assert!(recovered >= ids.len() as u64, "{recovered}");
    hook.got.lock().unwrap().clear();
    drain(&app).await;
    let order: Vec<String> = hook
        .of_type("system.error")
        .iter()
        .map(|g| g.header("webhook-id").to_string())
        .collect();
    assert_eq!(
        order, ids,
        "exactly the failed messages, in the order they happened"
    );
    app.post(
        &key,
        &format!("/v1/webhook-endpoints/{ep}/recover"),
        json!({"since": app.clock.now().to_rfc3339(), "until": since.to_rfc3339()}),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn gone_disables_at_once_and_replay_resends_with_the_same_id() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({})).await;
    let evt = emit(&app, &org, "system.error").await;
    drain(&app).await;
    let d = deliveries(&app, &key, &ep).await[0].clone();
    let dlv = d["id"].as_str().unwrap().to_string();
    app.post(
        &key,
        &format!("/v1/webhook-deliveries/{dlv}/replay"),
        json!({}),
    )
    .await
    .status
    .eq(&202)
    .then_some(())
    .expect("replay accepted");
    app.post(
        &key,
        &format!("/v1/webhook-deliveries/{dlv}/replay"),
        json!({}),
    )
    .await
    .assert_error(409, "CONFLICT");
    drain(&app).await;
    let got = hook.got();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| g.header("webhook-id") == evt));

    hook.always(reply(410));
    emit(&app, &org, "system.error").await;
    drain(&app).await;
    let e = app
        .get(&key, &format!("/v1/webhook-endpoints/{ep}"))
        .await
        .body;
    assert_eq!(
        (e["status"].as_str(), e["disabled_reason"].as_str()),
        (Some("disabled"), Some("gone"))
    );
    let newest = deliveries(&app, &key, &ep)
        .await
        .into_iter()
        .find(|d| d["event_type"] == "system.error")
        .unwrap();
    assert_eq!(
        (newest["status"].as_str(), newest["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "no retries after 410"
    );
    app.post(
        &key,
        &format!("/v1/webhook-deliveries/{dlv}/replay"),
        json!({}),
    )
    .await
    .assert_error(409, "CONFLICT");
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_overlap() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, old) = endpoint(&app, &key, &hook.url, json!({})).await;
    let res = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{ep}/secret/rotate"),
            json!({"overlap_secs": 3600}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let new = Secret::parse(res.body["secret"].as_str().unwrap()).unwrap();
    assert_ne!(new, old);
    let ping = app
        .post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(ping.body["status"], "succeeded", "{}", ping.body);
    let g = hook.got().pop().unwrap();
    assert_eq!(g.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&new, &g, secs(&app)) && verifies(&old, &g, secs(&app)));
    app.clock.advance_secs(3601);
    app.post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    let g = hook.got().pop().unwrap();
    assert_eq!(g.header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(&new, &g, secs(&app)) && !verifies(&old, &g, secs(&app)));
    let chosen = Secret::generate().expose();
    let res = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{ep}/secret/rotate"),
            json!({"secret": chosen, "overlap_secs": 0}),
        )
        .await;
    assert_eq!(
        (
            res.body["secret"].as_str(),
            res.body["previous_secret_expires_at"].clone()
        ),
        (Some(chosen.as_str()), Value::Null)
    );
    app.post(
        &key,
        &format!("/v1/webhook-endpoints/{ep}/secret/rotate"),
        json!({"overlap_secs": 9_000_000}),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
    app.post(
        &key,
        &format!("/v1/webhook-endpoints/{ep}/secret/rotate"),
        json!({"secret": chosen}),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_test_ping_reports_its_attempt_and_is_not_retried() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, secret) = endpoint(&app, &key, &hook.url, json!({})).await;
    hook.answer(&[Reply {
        body: "nope",
        ..reply(500)
    }]);
    let res = app
        .post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (
            res.body["status"].as_str(),
            res.body["event_type"].as_str(),
            res.body["next_attempt_at"].clone()
        ),
        (Some("failed"), Some("webhook.test"), Value::Null)
    );
    let a = &res.body["attempt_log"][0];
    assert_eq!(
        (a["status_code"].as_i64(), a["response_excerpt"].as_str()),
        (Some(500), Some("nope"))
    );
    let g = hook.got().pop().unwrap();
    assert!(g.header("webhook-id").starts_with("msg_"));
    assert!(verifies(&secret, &g, secs(&app)));
    assert_eq!(g.json()["data"]["endpoint_id"], ep.as_str());
    app.clock.advance_secs(3600);
    assert_eq!(drain(&app).await, 0, "pings are not retried");
    let e = app
        .get(&key, &format!("/v1/webhook-endpoints/{ep}"))
        .await
        .body;
    assert_eq!(
        e["failing_since"],
        Value::Null,
        "a ping does not start a failure streak"
    );
    let ok = app
        .post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(ok.body["status"], "succeeded");
}

#[tokio::test]
async fn internal_destinations_are_refused_at_creation() {
    let dns = Arc::new(FakeDns::default());
    let config = WebhookConfig {
        policy: Arc::new(AddressPolicy::default()),
        ..test_webhook_config(dns.clone())
    };
    let app = TestApp::spawn_webhooks(config).await;
    let (_, key) = app.org(3).await;
    dns.script("localhost", &[&["127.0.0.1", "::1"]]);
    dns.script("internal.example", &[&["10.1.2.3"]]);
    dns.script("metadata.example", &[&["169.254.169.254"]]);
    dns.script("mixed.example", &[&["93.184.216.34", "192.168.0.10"]]);
    dns.script("public.example", &[&["93.184.216.34"]]);
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://2130706433/hook",
        "http://0x7f.0.0.1/hook",
        "http://0/hook",
        "http://localhost:8080/hook",
        "http://internal.example/hook",
        "http://metadata.example/hook",
        "http://mixed.example/hook",
    ] {
        let res = app
            .post(&key, "/v1/webhook-endpoints", json!({"url": url}))
            .await;
        let err = res.assert_error(422, "VALIDATION_ERROR");
        assert_eq!(err["param"], "url", "{url}");
        assert!(
            !err["message"].as_str().unwrap().contains("10.1.2.3"),
            "no internal address is echoed"
        );
    }
    // A public name is accepted (nothing is sent to it here).
    let res = app
        .post(
            &key,
            "/v1/webhook-endpoints",
            json!({"url": "https://public.example/hook"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["endpoint"]["id"].as_str().unwrap();
    // Changing it to an internal URL is refused the same way.
    app.patch(
        &key,
        &format!("/v1/webhook-endpoints/{id}"),
        json!({"url": "http://169.254.169.254/"}),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
    app.delete(&key, &format!("/v1/webhook-endpoints/{id}"))
        .await;
    assert!(
        app.get(&key, "/v1/webhook-endpoints").await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn dns_rebinding_is_refused_at_delivery_and_allow_lists_work() {
    let dns = Arc::new(FakeDns::default());
    let config = WebhookConfig {
        policy: Arc::new(AddressPolicy::default()),
        ..test_webhook_config(dns.clone())
    };
    let app = TestApp::spawn_webhooks(config).await;
    let (_, key) = app.org(3).await;
    let hook = Hook::start().await;
    // Public when the endpoint is saved, loopback when it is called.
    dns.script("rebind.example", &[&["93.184.216.34"], &["127.0.0.1"]]);
    let url = format!("http://rebind.example:{}/hook", hook.port());
    let (ep, _) = endpoint(&app, &key, &url, json!({})).await;
    let res = app
        .post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(res.body["status"], "failed", "{}", res.body);
    assert_eq!(res.body["attempt_log"][0]["error"], "blocked_address");
    assert_eq!(res.body["attempt_log"][0]["status_code"], Value::Null);
    assert!(
        hook.got().is_empty(),
        "nothing reached the internal address"
    );

    // The operator's allow-list admits a network (the default test apps allow loopback).
    let allowed = TestApp::spawn().await;
    let (_, key) = allowed.org(3).await;
    let (ep, _) = endpoint(&allowed, &key, &hook.url, json!({})).await;
    let res = allowed
        .post(&key, &format!("/v1/webhook-endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(res.body["status"], "succeeded", "{}", res.body);
    assert_eq!(hook.got().len(), 1);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_up_another() {
    let dns = Arc::new(FakeDns::default());
    // The slow endpoint hangs for the whole test (well within the attempt timeout).
    let config = WebhookConfig {
        timeout: Duration::from_secs(60),
        lease: Duration::from_secs(120),
        ..test_webhook_config(dns.clone())
    };
    let app = TestApp::spawn_webhooks(config).await;
    let (org, key) = app.org(3).await;
    let slow = Hook::start().await;
    let fast = Hook::start().await;
    slow.always(Reply {
        hang: true,
        ..reply(200)
    });
    endpoint(&app, &key, &slow.url, json!({})).await;
    endpoint(&app, &key, &fast.url, json!({})).await;
    for _ in 0..12 {
        emit(&app, &org, "system.error").await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.webhooks.clone().run(shutdown.clone()));
    // Every delivery to the fast endpoint arrives while the slow one holds its slots (the
    // bound only matters on a loaded machine).
    for _ in 0..2000 {
        if fast.got().len() >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fast.got().len(), 12, "the fast endpoint got everything");
    assert_eq!(
        slow.got().len(),
        4,
        "the slow endpoint holds only its own slots"
    );
    slow.release();
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn every_webhook_route_hides_other_tenants() {
    let app = TestApp::spawn().await;
    let (org_a, key_a) = app.org(3).await;
    let (_, key_b) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, _) = endpoint(&app, &key_a, &hook.url, json!({})).await;
    emit(&app, &org_a, "system.error").await;
    drain(&app).await;
    let dlv = deliveries(&app, &key_a, &ep).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = hook.got().len();
    let since = json!({"since": "2020-01-01T00:00:00Z"});
    let gets = [
        format!("/v1/webhook-endpoints/{ep}"),
        format!("/v1/webhook-endpoints/{ep}/secret"),
        format!("/v1/webhook-endpoints/{ep}/deliveries"),
        format!("/v1/webhook-endpoints/{ep}/attempts"),
        format!("/v1/webhook-deliveries/{dlv}"),
    ];
    for path in &gets {
        app.get(&key_b, path).await.assert_error(404, "NOT_FOUND");
    }
    for (path, body) in [
        (
            format!("/v1/webhook-endpoints/{ep}/secret/rotate"),
            json!({}),
        ),
        (format!("/v1/webhook-endpoints/{ep}/test"), json!({})),
        (format!("/v1/webhook-endpoints/{ep}/recover"), since),
        (format!("/v1/webhook-deliveries/{dlv}/replay"), json!({})),
    ] {
        app.post(&key_b, &path, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    app.patch(
        &key_b,
        &format!("/v1/webhook-endpoints/{ep}"),
        json!({"disabled": true}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.delete(&key_b, &format!("/v1/webhook-endpoints/{ep}"))
        .await
        .assert_error(404, "NOT_FOUND");
    // Nothing changed for A, and nothing was sent.
    let e = app
        .get(&key_a, &format!("/v1/webhook-endpoints/{ep}"))
        .await;
    assert_eq!(e.body["status"], "enabled");
    assert_eq!(hook.got().len(), before);
    assert!(
        app.get(&key_b, "/v1/webhook-endpoints").await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A connection token is not an admin credential.
    let (_, token) = app.connection(&key_a, json!({})).await;
    app.get(&token, "/v1/webhook-endpoints")
        .await
        .assert_error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn the_dispatcher_wakes_when_an_event_is_committed() {
    // Polling once an hour: only the store's signal can bring the delivery in time.
    let app = TestApp::spawn_webhooks(WebhookConfig {
        poll_interval: Duration::from_secs(3600),
        ..test_webhook_config(Arc::new(FakeDns::default()))
    })
    .await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    endpoint(&app, &key, &hook.url, json!({})).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.webhooks.clone().run(shutdown.clone()));
    // Let the dispatcher settle into its wait first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let evt = emit(&app, &org, "system.error").await;
    for _ in 0..200 {
        if !hook.got().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        hook.got().len(),
        1,
        "delivered without waiting for the next poll"
    );
    assert_eq!(hook.got()[0].header("webhook-id"), evt);
    shutdown.cancel();
    running.await.unwrap();
}

/// A receiver slow enough that concurrent attempts would overlap (and could overtake).
fn slow(status: u16) -> Reply {
    Reply {
        delay: Duration::from_millis(50),
        ..reply(status)
    }
}

#[tokio::test]
async fn a_recovery_arrives_in_event_order_one_at_a_time_while_live_traffic_stays_concurrent() {
    let dns = Arc::new(FakeDns::default());
    let app = TestApp::spawn_webhooks(test_webhook_config(dns)).await;
    assert_eq!(
        app.webhooks.config().max_in_flight_per_endpoint,
        4,
        "the default settings"
    );
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({})).await;
    // Ten events, each failing every attempt of its schedule (about 28 hours, well short of
    // the five days that would disable the endpoint).
    hook.always(reply(500));
    let since = app.clock.now();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(emit(&app, &org, "system.error").await);
        app.clock.advance_secs(1);
    }
    for _ in 0..9 {
        drain(&app).await;
        app.clock.advance_secs(12 * 3600);
    }
    let log = deliveries(&app, &key, &ep).await;
    assert_eq!(log.len(), 10);
    assert!(
        log.iter()
            .all(|d| d["status"] == "failed" && d["attempts"] == 8),
        "{log:?}"
    );

    // The receiver is back, and slow: attempts in flight together would overlap.
    hook.always(slow(204));
    hook.got.lock().unwrap().clear();
    hook.take_peak();
    let res = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{ep}/recover"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(res.body["replayed"], 10);
    drain(&app).await;
    assert_eq!(hook.ids(), ids, "exactly the ten, in event order");
    assert_eq!(hook.take_peak(), 1, "one at a time");
    assert!(
        deliveries(&app, &key, &ep)
            .await
            .iter()
            .all(|d| d["status"] == "succeeded")
    );

    // Live traffic keeps its concurrency: four events are all in flight at once.
    hook.always(Reply {
        hang: true,
        ..reply(204)
    });
    for _ in 0..4 {
        emit(&app, &org, "system.error").await;
    }
    let webhooks = app.webhooks.clone();
    let live = tokio::spawn(async move { webhooks.run_due().await });
    hook.wait_for(14).await;
    assert_eq!(hook.take_peak(), 4, "live deliveries are sent side by side");
    hook.release();
    assert_eq!(live.await.unwrap().unwrap(), 4);
}

#[tokio::test]
async fn a_recovery_stays_in_order_across_dispatchers_and_a_delivery_failing_again_steps_aside() {
    let dns = Arc::new(FakeDns::default());
    let app = TestApp::spawn_webhooks(test_webhook_config(dns.clone())).await;
    let (org, key) = app.org(3).await;
    let hook = Hook::start().await;
    // Disabled while ten events happen: each is logged as failed.
    let (ep, _) = endpoint(&app, &key, &hook.url, json!({"disabled": true})).await;
    let since = app.clock.now();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(emit(&app, &org, "system.error").await);
        app.clock.advance_secs(1);
    }
    let res = app
        .patch(
            &key,
            &format!("/v1/webhook-endpoints/{ep}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // The third replayed message fails again; the receiver is slow throughout.
    hook.answer(&[slow(204), slow(204), slow(500)]);
    hook.always(slow(204));

    // Two dispatchers share the database, as two worker processes would.
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let other = ironbridge_engine::webhooks::Dispatcher::new(
        app.store.clone(),
        app.keys.clone(),
        clock,
        test_webhook_config(dns),
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = [
        tokio::spawn(app.webhooks.clone().run(shutdown.clone())),
        tokio::spawn(other.run(shutdown.clone())),
    ];
    let res = app
        .post(
            &key,
            &format!("/v1/webhook-endpoints/{ep}/recover"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(res.body["replayed"], 10, "{}", res.body);
    hook.wait_for(10).await;
    assert_eq!(
        hook.ids(),
        ids,
        "in event order; the one that failed again did not hold up the rest"
    );
    // The last answer is recorded before the clock moves past its lease.
    let mut log = Vec::new();
    for _ in 0..2000 {
        log = deliveries(&app, &key, &ep).await;
        if log.iter().filter(|d| d["status"] == "succeeded").count() == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let third = log
        .iter()
        .find(|d| d["message_id"] == ids[2].as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (third["status"].as_str(), third["last_status_code"].as_i64()),
        (Some("pending"), Some(500)),
        "rescheduled on the retry schedule"
    );

    // Its retry comes due five seconds later (±10 %) and is sent as ordinary traffic.
    app.clock.advance_secs(6);
    hook.wait_for(11).await;
    let mut expected = ids.clone();
    expected.push(ids[2].clone());
    assert_eq!(hook.ids(), expected);
    assert_eq!(
        hook.take_peak(),
        1,
        "never two at once, whichever dispatcher sent"
    );
    shutdown.cancel();
    for r in running {
        r.await.unwrap();
    }
}

/// Record changes as the feed serves them to `token` from the start: (id, item).
async fn feed_items(app: &TestApp, token: &str) -> Vec<Value> {
    crate::changes::walk(app, token, "", None).await.0
}

/// Every change a receiver got in `record.*` deliveries of `kind`.
fn changes_of(hook: &Hook, kind: &str) -> Vec<Value> {
    hook.of_type(kind)
        .iter()
        .flat_map(|g| g.json()["data"]["changes"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn record_events_come_from_the_change_feed_to_endpoints_that_name_them() {
    use ironbridge_core::store::{ConnId, PageWrite};
    use ironbridge_engine::webhooks::RecordEvents;
    use ironbridge_model::Entity;

    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let everything = Hook::start().await;
    let hook = Hook::start().await;
    endpoint(&app, &key, &everything.url, json!({})).await;
    let (ep, secret) = endpoint(
        &app,
        &key,
        &hook.url,
        json!({"event_types": ["record.created", "record.deleted"]}),
    )
    .await;
    // A connection made after the subscription: its whole feed is sent.
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 12})).await;
    let records = RecordEvents::new(
        app.store.clone(),
        app.runtimes.clone(),
        Arc::new(app.clock.clone()),
    );
    assert!(records.produce_all().await.unwrap() >= 1);
    assert_eq!(records.produce_all().await.unwrap(), 0, "each change once");
    drain(&app).await;
    let feed = feed_items(&app, &token).await;
    let mut got = changes_of(&hook, "record.created");
    let key_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    got.sort_by_key(key_of);
    let mut expected = feed.clone();
    expected.sort_by_key(key_of);
    assert_eq!(
        got, expected,
        "the feed's changes, rendered as it renders them"
    );
    let g = &hook.of_type("record.created")[0];
    assert!(
        verifies(&secret, g, secs(&app)),
        "signed like every delivery"
    );
    assert_eq!(g.json()["connection_id"], conn.as_str());
    assert!(
        everything
            .got()
            .iter()
            .all(|g| !g.json()["type"].as_str().unwrap().starts_with("record.")),
        "an endpoint taking every type gets no record events"
    );
    let log = deliveries(&app, &key, &ep).await;
    assert!(
        log.iter()
            .all(|d| d["status"] == "succeeded"
                && d["message_id"].as_str().unwrap().starts_with("msg_")),
        "{log:?}"
    );

    // An endpoint subscribing now gets what changes from now on, not the history.
    let later = Hook::start().await;
    endpoint(
        &app,
        &key,
        &later.url,
        json!({"event_types": ["record.updated", "record.deleted"]}),
    )
    .await;
    let c = ConnId(conn.clone());
    let po = feed
        .iter()
        .find(|c| c["entity"] == "purchase_order")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.store
        .write_page(
            &c,
            &PageWrite {
                entity: Entity::PURCHASE_ORDER,
                records: Vec::new(),
                checkpoint: None,
                now: app.clock.now(),
                seen_run: None,
                deleted: vec![po.clone()],
                closed: Vec::new(),
                skipped: 0,
                bases: Vec::new(),
                points: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(records.produce_all().await.unwrap(), 2);
    drain(&app).await;
    for h in [&hook, &later] {
        let deleted = changes_of(h, "record.deleted");
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        assert_eq!(deleted[0]["id"], po.as_str());
        assert_eq!(deleted[0]["record"], Value::Null);
        assert!(deleted[0]["tombstone"]["deleted_at"].is_string());
    }
    assert!(later.of_type("record.created").is_empty());
    assert!(later.of_type("record.updated").is_empty());
}
