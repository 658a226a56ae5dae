//! One signed HTTP attempt of a webhook: Standard Webhooks headers over the exact stored
//! body, a bounded wait, no redirects, destinations checked at connect time, and a short
//! excerpt of the answer for the delivery log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironbridge_connectors::backoff::parse_retry_after;
use ironbridge_core::webhooks::{Secret, signature_header};
use ironbridge_model::Timestamp;

use ironbridge_connectors::guard::{GuardedResolver, is_blocked};

use super::guard::{AddressPolicy, Resolver, literal_ip};

/// Bytes of a response body kept in the delivery log.
pub const EXCERPT_BYTES: usize = 1024;

/// How an attempt went.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOutcome {
    /// HTTP status answered, if any.
    pub status: Option<u16>,
    /// Why it failed (`timeout`, `connection_failed`, `blocked_address`, `redirect`,
    /// `http_status`, `invalid_url`); `None` on success.
    pub error: Option<&'static str>,
    /// Time from sending to the end of the answer (or the failure).
    pub latency: Duration,
    /// Start of the response body.
    pub excerpt: Option<String>,
    /// The receiver's `Retry-After` (honoured on 429 and 503).
    pub retry_after: Option<Duration>,
}

impl SendOutcome {
    /// The receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// The receiver answered 410 Gone: it wants no more deliveries.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }

    /// A failure before or instead of an answer.
    pub(crate) fn not_sent(error: &'static str, started: Instant) -> Self {
        SendOutcome {
            status: None,
            error: Some(error),
            latency: started.elapsed(),
            excerpt: None,
            retry_after: None,
        }
    }
}

/// Sends webhooks. One HTTP client (and connection pool) for every endpoint.
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
}

impl Sender {
    /// A sender that gives each attempt `timeout` in all and connects only where `policy`
    /// permits, resolving names through `resolver`.
    pub fn new(
        policy: Arc<AddressPolicy>,
        resolver: Arc<dyn Resolver>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("Ironbridge-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver::new(
                resolver,
                Arc::new(policy.network()),
            )))
            .build()?;
        Ok(Sender {
            client,
            policy,
            timeout,
        })
    }

    /// The address policy the sender enforces.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// POSTs `body` to `url`, signed with every secret in `secrets` for message `msg_id` at
    /// `now` (the `webhook-timestamp` of this attempt).
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        now: Timestamp,
        body: &str,
        secrets: &[&Secret],
    ) -> SendOutcome {
        let started = Instant::now();
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return SendOutcome::not_sent("invalid_url", started);
        };
        // IP literals never reach the resolver: check them here.
        if literal_ip(&parsed).is_some_and(|ip| !self.policy.permits(ip)) {
            return SendOutcome::not_sent("blocked_address", started);
        }
        let timestamp = now.micros().div_euclid(1_000_000);
        let request = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(secrets, msg_id, timestamp, body.as_bytes()),
            )
            .body(body.to_string());
        let attempt = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now));
            let mut excerpt = Vec::new();
            while excerpt.len() < EXCERPT_BYTES {
                match response.chunk().await? {
                    Some(chunk) => excerpt.extend_from_slice(&chunk),
                    None => break,
                }
            }
            excerpt.truncate(EXCERPT_BYTES);
            Ok::<_, reqwest::Error>((status, retry_after, excerpt))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => SendOutcome::not_sent("timeout", started),
            Ok(Err(e)) => SendOutcome::not_sent(classify(&e), started),
            Ok(Ok((status, retry_after, excerpt))) => {
                let error = match status {
                    200..=299 => None,
                    300..=399 => Some("redirect"),
                    _ => Some("http_status"),
                };
                SendOutcome {
                    status: Some(status),
                    error,
                    latency: started.elapsed(),
                    excerpt: (!excerpt.is_empty())
                        .then(|| String::from_utf8_lossy(&excerpt).into_owned()),
                    retry_after: matches!(status, 429 | 503).then_some(retry_after).flatten(),
                }
            }
        }
    }
}

/// Names a transport failure without its (possibly internal) details.
fn classify(err: &reqwest::Error) -> &'static str {
    if is_blocked(err) {
        "blocked_address"
    } else if err.is_timeout() {
        "timeout"
    } else {
        "connection_failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::SystemResolver;

    #[tokio::test]
    async fn internal_ip_literals_are_refused_before_any_connection() {
        let sender = Sender::new(
            Arc::new(AddressPolicy::default()),
            Arc::new(SystemResolver),
            Duration::from_secs(1),
        )
        .unwrap();
        let secret = Secret::generate();
        for url in [
            "http://127.0.0.1:9/hook",
            "http://2130706433:9/hook",
            "http://[::ffff:127.0.0.1]:9/hook",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let out = sender
                .send(url, "msg_1", Timestamp::from_secs(1), "{}", &[&secret])
                .await;
            assert_eq!(
                (out.error, out.status),
                (Some("blocked_address"), None),
                "{url}"
            );
            assert!(!out.succeeded());
        }
        let out = sender
            .send(
                "not a url",
                "msg_1",
                Timestamp::from_secs(1),
                "{}",
                &[&secret],
            )
            .await;
        assert_eq!(out.error, Some("invalid_url"));
    }
}
