//! The upstream client against a local HTTP server that answers a script of responses:
//! retries, `Retry-After`, the circuit breaker, limits, size caps, redirects, and the egress
//! guard (internal addresses refused at connect time, DNS rebinding included).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ironbridge_connectors::backoff::RetryPolicy;
use ironbridge_connectors::client::{UpstreamClient, UpstreamConfig, UpstreamError};
use ironbridge_connectors::sleeper::RecordingSleeper;
use ironbridge_connectors::token::{AccessToken, TokenCache};
use ironbridge_core::ManualClock;
use ironbridge_core::netguard::{Egress, NetworkPolicy, Resolver};
use ironbridge_model::Timestamp;
use ironbridge_model::api::CircuitState;

#[derive(Clone, Default)]
struct Step {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Option<Duration>,
}

fn step(status: u16) -> Step {
    Step {
        status,
        body: format!("status {status}"),
        ..Step::default()
    }
}

#[derive(Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Upstream {
    url: String,
    script: Arc<Script>,
}

async fn answer(script: Arc<Script>) -> Response {
    script.calls.fetch_add(1, Ordering::SeqCst);
    let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    script.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let next = script
        .steps
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| step(200));
    if let Some(d) = next.delay {
        tokio::time::sleep(d).await;
    }
    script.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(next.status).unwrap(), next.body).into_response();
    for (name, value) in next.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

async fn upstream(steps: Vec<Step>) -> Upstream {
    let script = Arc::new(Script {
        steps: Mutex::new(steps.into()),
        ..Script::default()
    });
    let s = script.clone();
    let app = Router::new().fallback(move || answer(s.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/records", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { url, script }
}

fn client(config: UpstreamConfig) -> (UpstreamClient, RecordingSleeper, ManualClock) {
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap());
    let sleeper = RecordingSleeper::new(clock.clone());
    let c =
        UpstreamClient::new(config, Arc::new(clock.clone()), Arc::new(sleeper.clone())).unwrap();
    (c, sleeper, clock)
}

fn config() -> UpstreamConfig {
    UpstreamConfig {
        per_second: 0.0,
        retry: RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
        },
        // The test servers run on loopback.
        egress: Egress::local(),
        ..UpstreamConfig::default()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_capped_jittered_backoff() {
    let up = upstream(vec![step(503), step(502), step(200)]).await;
    let (c, sleeper, _) = client(config());
    let res = c.send(|h| h.get(&up.url)).await.unwrap();
    assert_eq!(
        (res.status, res.body.as_ref()),
        (200, b"status 200".as_ref())
    );
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 3);
    let slept = sleeper.slept();
    assert_eq!(slept.len(), 2);
    assert!(
        slept[0] <= Duration::from_millis(100) && slept[1] <= Duration::from_millis(200),
        "{slept:?}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_throttling_does_not_open_the_circuit() {
    let throttled = Step {
        headers: vec![("retry-after", "7".into())],
        ..step(429)
    };
    let up = upstream(vec![throttled.clone(), throttled, step(200)]).await;
    let (c, sleeper, _) = client(UpstreamConfig {
        breaker_threshold: 1,
        ..config()
    });
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 200);
    assert_eq!(
        sleeper.slept(),
        vec![Duration::from_secs(7), Duration::from_secs(7)]
    );
    assert_eq!(c.breaker().state(), CircuitState::Closed);
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_gives_up_at_once() {
    let up = upstream(vec![Step {
        headers: vec![("retry-after", "3600".into())],
        ..step(429)
    }])
    .await;
    let (c, sleeper, _) = client(config());
    assert_eq!(
        c.send(|h| h.get(&up.url)).await.unwrap_err(),
        UpstreamError::RateLimited(Duration::from_secs(3600))
    );
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 1);
    assert!(sleeper.slept().is_empty());
}

#[tokio::test]
async fn persistent_failures_exhaust_retries_then_open_the_circuit() {
    let up = upstream(vec![step(500); 10]).await;
    let (c, _, clock) = client(UpstreamConfig {
        breaker_threshold: 2,
        breaker_open_for: Duration::from_secs(30),
        ..config()
    });
    for _ in 0..2 {
        match c.send(|h| h.get(&up.url)).await.unwrap_err() {
            UpstreamError::Status { status, body } => {
                assert_eq!((status, body.as_ref()), (500, b"status 500".as_ref()))
            }
            other => panic!("{other:?}"),
        }
    }
    // The breaker judges calls, each after its retries: two failed calls in a row.
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 8);
    assert_eq!(c.breaker().state(), CircuitState::Open);
    // While open, nothing reaches the source.
    assert!(matches!(
        c.send(|h| h.get(&up.url)).await,
        Err(UpstreamError::CircuitOpen(_))
    ));
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 8);
    // After the open period one probe goes through; the source has recovered.
    up.script.steps.lock().unwrap().clear();
    clock.advance_secs(31);
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 200);
    assert_eq!(c.breaker().state(), CircuitState::Closed);
}

#[tokio::test]
async fn failures_retries_absorb_do_not_count_against_the_circuit() {
    // Every call meets three 503s before its answer: no call fails, the circuit stays shut.
    let mut steps = Vec::new();
    for _ in 0..6 {
        steps.extend([step(503), step(503), step(503), step(200)]);
    }
    let up = upstream(steps).await;
    let (c, _, _) = client(UpstreamConfig {
        breaker_threshold: 2,
        ..config()
    });
    for _ in 0..6 {
        assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 200);
    }
    assert_eq!(c.breaker().state(), CircuitState::Closed);
}

#[tokio::test]
async fn a_throttling_source_gets_its_own_longer_budget() {
    // More 429s than failed attempts are allowed, fewer than throttled ones: waited out.
    let mut steps = vec![step(429); 6];
    steps.push(step(200));
    let up = upstream(steps).await;
    let (c, sleeper, _) = client(UpstreamConfig {
        throttled_attempts: 8,
        breaker_threshold: 1,
        ..config()
    });
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 200);
    assert_eq!(sleeper.slept().len(), 6);
    assert_eq!(c.breaker().state(), CircuitState::Closed);
}

#[tokio::test]
async fn client_errors_and_redirects_are_answers_not_retries() {
    let redirect = Step {
        headers: vec![("location", "http://169.254.169.254/latest".into())],
        ..step(302)
    };
    let up = upstream(vec![step(404), step(401), redirect]).await;
    let (c, sleeper, _) = client(config());
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 404);
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 401);
    assert_eq!(
        c.send(|h| h.get(&up.url)).await.unwrap().status,
        302,
        "redirects are not followed"
    );
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 3);
    assert!(sleeper.slept().is_empty());
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let up = upstream(vec![Step {
        body: "x".repeat(10_000),
        ..step(200)
    }])
    .await;
    let (c, _, _) = client(UpstreamConfig {
        max_body_bytes: 1_000,
        ..config()
    });
    assert_eq!(
        c.send(|h| h.get(&up.url)).await.unwrap_err(),
        UpstreamError::TooLarge(1_000)
    );
}

#[tokio::test]
async fn timeouts_and_unreachable_sources_are_retried_then_reported() {
    let slow = Step {
        delay: Some(Duration::from_secs(5)),
        ..step(200)
    };
    let up = upstream(vec![slow.clone(), slow.clone(), slow]).await;
    let (c, sleeper, _) = client(UpstreamConfig {
        timeout: Duration::from_millis(150),
        retry: RetryPolicy {
            max_attempts: 3,
            ..config().retry
        },
        ..config()
    });
    assert_eq!(
        c.send(|h| h.get(&up.url)).await.unwrap_err(),
        UpstreamError::Timeout
    );
    assert_eq!(sleeper.slept().len(), 2);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (c, _, _) = client(config());
    let err = c
        .send(|h| h.get(format!("http://{closed}/")))
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Unreachable("connection failed".into()));
}

#[tokio::test]
async fn concurrency_is_capped_per_connection() {
    let slow = Step {
        delay: Some(Duration::from_millis(50)),
        ..step(200)
    };
    let up = upstream(vec![slow; 12]).await;
    let (c, _, _) = client(UpstreamConfig {
        concurrency: 2,
        ..config()
    });
    let c = Arc::new(c);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (c, url) = (c.clone(), up.url.clone());
        tasks.push(tokio::spawn(async move {
            c.send(|h| h.get(&url)).await.unwrap().status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 12);
    assert!(up.script.max_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn the_rate_budget_spaces_requests() {
    let up = upstream(vec![]).await;
    let (c, sleeper, _) = client(UpstreamConfig {
        per_second: 4.0,
        burst: 2,
        ..config()
    });
    for _ in 0..5 {
        c.send(|h| h.get(&up.url)).await.unwrap();
    }
    // Two go at once (the burst), then one every 250 ms; the clock advances as we wait.
    let slept = sleeper.slept();
    assert_eq!(slept.len(), 3, "{slept:?}");
    assert!(slept.iter().all(|d| *d <= Duration::from_millis(250)));
}

#[tokio::test]
async fn tokens_refresh_once_however_many_callers_need_one() {
    let cache = Arc::new(TokenCache::default());
    let clock = ManualClock::new(Timestamp(0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (cache, clock, fetches) = (cache.clone(), clock.clone(), fetches.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get(&clock, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<_, ()>(AccessToken {
                        value: "t1".into(),
                        expires_at: Timestamp(3_600_000_000),
                    })
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().value, "t1");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Within a minute of expiry the token is renewed.
    clock.set(Timestamp(3_550_000_000));
    let renewed = cache
        .get(&clock, || async {
            Ok::<_, ()>(AccessToken {
                value: "t2".into(),
                expires_at: Timestamp(7_200_000_000),
            })
        })
        .await
        .unwrap();
    assert_eq!(renewed.value, "t2");
    cache.invalidate().await;
    let after = cache
        .get(&clock, || async {
            Ok::<_, ()>(AccessToken {
                value: "t3".into(),
                expires_at: Timestamp(7_200_000_000),
            })
        })
        .await
        .unwrap();
    assert_eq!(after.value, "t3");
}

/// DNS for tests: each name answers its scripted address lists in turn (the last repeats).
#[derive(Default)]
struct ScriptedDns(Mutex<std::collections::HashMap<String, VecDeque<Vec<std::net::IpAddr>>>>);

impl ScriptedDns {
    fn script(self, host: &str, answers: &[&[&str]]) -> Self {
        let answers = answers
            .iter()
            .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
            .collect();
        self.0.lock().unwrap().insert(host.into(), answers);
        self
    }
}

#[async_trait::async_trait]
impl Resolver for ScriptedDns {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        let mut names = self.0.lock().unwrap();
        match names.get_mut(host) {
            Some(a) if a.len() > 1 => Ok(a.pop_front().unwrap()),
            Some(a) if !a.is_empty() => Ok(a[0].clone()),
            _ => Err(std::io::Error::other("no such host")),
        }
    }
}

fn guarded(policy: NetworkPolicy, dns: ScriptedDns) -> UpstreamClient {
    client(UpstreamConfig {
        egress: Egress::new(policy).with_resolver(Arc::new(dns)),
        ..config()
    })
    .0
}

#[tokio::test]
async fn internal_addresses_are_refused_at_connect_time() {
    let up = upstream(vec![]).await;
    let port = up
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let dns = || {
        ScriptedDns::default()
            .script("erp.example.com", &[&["127.0.0.1"]])
            .script("sap.internal.example", &[&["127.0.0.1"]])
    };
    // Public only (the default of `serve`): literals in every notation and names resolving
    // inside (whenever they are resolved: the check is the connection's own resolution, so a
    // name rebound after a connection was made is refused too) are refused before any
    // connection, not retried, and not held against the source.
    let c = guarded(NetworkPolicy::default(), dns());
    for host in [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "erp.example.com",
    ] {
        let url = format!("http://{host}:{port}/records");
        assert_eq!(
            c.send(|h| h.get(&url)).await.unwrap_err(),
            UpstreamError::Blocked,
            "{url}"
        );
    }
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
    ] {
        assert_eq!(
            c.send(|h| h.get(url)).await.unwrap_err(),
            UpstreamError::Blocked
        );
    }
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 0);
    assert_eq!(c.breaker().state(), CircuitState::Closed);
    // The operator's allow-list: a network, or a host name whatever it resolves to.
    let c = guarded(NetworkPolicy::parse(["127.0.0.1/32"]).unwrap(), dns());
    let url = format!("http://erp.example.com:{port}/records");
    assert_eq!(c.send(|h| h.get(&url)).await.unwrap().status, 200);
    let c = guarded(
        NetworkPolicy::parse(["sap.internal.example"]).unwrap(),
        dns(),
    );
    let allowed = format!("http://sap.internal.example:{port}/records");
    assert_eq!(c.send(|h| h.get(&allowed)).await.unwrap().status, 200);
    let other = format!("http://erp.example.com:{port}/records");
    assert_eq!(
        c.send(|h| h.get(&other)).await.unwrap_err(),
        UpstreamError::Blocked
    );
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_write_is_resent_only_when_it_certainly_did_not_reach_the_source() {
    // A 5xx that is not a refusal before processing: sent once, the outcome unknown.
    for status in [500, 502, 503, 504] {
        let up = upstream(vec![step(status), step(201)]).await;
        let (c, sleeper, _) = client(config());
        let err = c.send_write(|h| h.post(&up.url)).await.unwrap_err();
        assert_eq!(
            err,
            UpstreamError::OutcomeUnknown(format!("the source answered {status}"))
        );
        assert_eq!(up.script.calls.load(Ordering::SeqCst), 1, "{status}");
        assert!(sleeper.slept().is_empty());
    }
    // Refused before processing: 429 (with or without Retry-After) and 503 with Retry-After
    // are sent again.
    let refused = |status: u16, retry_after: Option<&str>| Step {
        headers: retry_after
            .map(|s| vec![("retry-after", s.to_string())])
            .unwrap_or_default(),
        ..step(status)
    };
    let up = upstream(vec![
        refused(429, None),
        refused(503, Some("1")),
        refused(429, Some("2")),
        step(201),
    ])
    .await;
    let (c, sleeper, _) = client(config());
    let ok = c.send_write(|h| h.post(&up.url)).await.unwrap();
    assert_eq!(ok.status, 201);
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        &sleeper.slept()[1..],
        &[Duration::from_secs(1), Duration::from_secs(2)]
    );
    // A timeout after the request was sent: once, the outcome unknown.
    let slow = Step {
        delay: Some(Duration::from_secs(5)),
        ..step(201)
    };
    let up = upstream(vec![slow, step(201)]).await;
    let (c, _, _) = client(UpstreamConfig {
        timeout: Duration::from_millis(150),
        ..config()
    });
    assert_eq!(
        c.send_write(|h| h.post(&up.url)).await.unwrap_err(),
        UpstreamError::OutcomeUnknown("timed out after the request was sent".into())
    );
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 1);
    // No connection could be made: nothing was sent, so it is tried again, then reported
    // as unreachable (not as unknown).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (c, sleeper, _) = client(config());
    let err = c
        .send_write(|h| h.post(format!("http://{closed}/")))
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Unreachable("connection failed".into()));
    assert_eq!(sleeper.slept().len(), 3, "four attempts");
    // Reads keep retrying every transient failure.
    let up = upstream(vec![step(502), step(504), step(200)]).await;
    let (c, _, _) = client(config());
    assert_eq!(c.send(|h| h.get(&up.url)).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_write_of_unknown_outcome_counts_against_the_circuit() {
    let up = upstream(vec![step(504), step(504), step(504), step(201)]).await;
    let (c, _, _) = client(config());
    for _ in 0..3 {
        assert!(matches!(
            c.send_write(|h| h.post(&up.url)).await,
            Err(UpstreamError::OutcomeUnknown(_))
        ));
    }
    assert_eq!(c.breaker().state(), CircuitState::Open);
    assert!(matches!(
        c.send_write(|h| h.post(&up.url)).await,
        Err(UpstreamError::CircuitOpen(_))
    ));
    assert_eq!(up.script.calls.load(Ordering::SeqCst), 3);
}
