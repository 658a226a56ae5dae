//! The HTTP client every connector uses for one connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironbridge_core::Clock;
use ironbridge_core::netguard::Egress;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::backoff::{RetryPolicy, parse_retry_after, random_unit};
use crate::breaker::{BreakerPolicy, CircuitBreaker};
use crate::guard::{GuardedResolver, check_literal, is_blocked};
use crate::limiter::Limiter;
use crate::sleeper::Sleeper;

/// Bytes reserved at most for a response body before it arrives (its declared length).
const PRESIZE_MAX: usize = 32 << 20;

/// Limits and timeouts of one connection, set from the source system's documented limits.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// Retries.
    pub retry: RetryPolicy,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Sustained requests per second (0: unlimited).
    pub per_second: f64,
    /// Burst above the sustained rate.
    pub burst: u32,
    /// Failed calls in a row (each after its retries) that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub breaker_open_for: Duration,
    /// The window, minimum calls and failure rate over which the circuit also opens.
    pub breaker_window: Duration,
    /// Calls in the window before its failure rate counts.
    pub breaker_min_calls: u32,
    /// Share of failed calls in the window that opens the circuit.
    pub breaker_failure_rate: f64,
    /// Attempts of one call the source answers 429 (on top of the other retries): a
    /// throttling source is healthy, so the call waits it out longer before giving up.
    pub throttled_attempts: u32,
    /// Where calls may go: every address is checked at connect time (public only by
    /// default).
    pub egress: Egress,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 32 * 1024 * 1024,
            retry: RetryPolicy::default(),
            concurrency: 4,
            per_second: 10.0,
            burst: 10,
            breaker_threshold: 3,
            breaker_open_for: Duration::from_secs(60),
            breaker_window: Duration::from_secs(60),
            breaker_min_calls: 10,
            breaker_failure_rate: 0.5,
            throttled_attempts: 10,
            egress: Egress::default(),
        }
    }
}

/// A final answer from the source (any status that is not retried, or a success).
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most `max_body_bytes`).
    pub body: Bytes,
}

/// Why no usable answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The circuit is open: the source failed repeatedly; no call was made.
    #[error("circuit open; next probe in {0:?}")]
    CircuitOpen(Duration),
    /// The source asked us to wait longer than we accept.
    #[error("rate limited by the source for {0:?}")]
    RateLimited(Duration),
    /// Every attempt timed out.
    #[error("the source timed out")]
    Timeout,
    /// The source could not be reached.
    #[error("the source is unreachable: {0}")]
    Unreachable(String),
    /// The source's address is loopback, private, link-local or otherwise non-public and
    /// not allow-listed; no connection was made.
    #[error(
        "the source's address is not public and not allowed (an operator can allow it with `connections.allowed_private_networks`)"
    )]
    Blocked,
    /// The answer exceeded the size cap.
    #[error("the response exceeded {0} bytes")]
    TooLarge(usize),
    /// A write was sent and no usable answer came back: a timeout or a broken connection
    /// after the request went out, an answer cut off, or a 5xx that is not a refusal before
    /// processing (500, 502, 504, 503 without `Retry-After`). The source may have applied it,
    /// so it is never sent again; the text says what happened.
    #[error("the write was sent and no usable answer came back: {0}")]
    OutcomeUnknown(String),
    /// Retries ran out on a retryable status.
    #[error("the source kept answering {status}")]
    Status {
        /// The last status.
        status: u16,
        /// The last body (capped).
        body: Bytes,
    },
}

/// One connection's client: breaker, limits and retries around `reqwest`.
#[derive(Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
    config: UpstreamConfig,
    breaker: CircuitBreaker,
    limiter: Limiter,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether a request may be sent again once it may have reached the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A read (or an idempotent call): every transient failure is retried.
    Always,
    /// A write: retried only when it certainly did not reach the source or was refused
    /// before processing (connect failures, 429, 503 with `Retry-After`); anything else
    /// after it was sent is [`UpstreamError::OutcomeUnknown`].
    IfUnsent,
}

enum Attempt {
    Done(UpstreamResponse),
    Retry {
        error: UpstreamError,
        wait: Option<Duration>,
    },
    Fail(UpstreamError),
}

impl UpstreamClient {
    /// A client with its own limits; redirects are never followed (a source that redirects
    /// elsewhere must not receive our credentials), and every connection goes through the
    /// egress guard's resolver, so the address checked is the address connected to.
    pub fn new(
        config: UpstreamConfig,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, UpstreamError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(
                config.egress.resolver.clone(),
                config.egress.policy.clone(),
            )));
        if let Some(pem) = &config.egress.extra_ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| UpstreamError::Unreachable(format!("connections.ca_file: {e}")))?;
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(UpstreamClient {
            breaker: CircuitBreaker::new(BreakerPolicy {
                consecutive: config.breaker_threshold,
                window: config.breaker_window,
                min_calls: config.breaker_min_calls,
                failure_rate: config.breaker_failure_rate,
                open_for: config.breaker_open_for,
            }),
            limiter: Limiter::new(config.concurrency, config.per_second, config.burst),
            http,
            config,
            clock,
            sleeper,
        })
    }

    /// The underlying client, to build requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The limits this client enforces.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Our time, on the clock the client was given (answers' `Date` headers are compared
    /// with it to learn the source's clock).
    pub fn now(&self) -> ironbridge_model::Timestamp {
        self.clock.now()
    }

    /// The circuit breaker (its state shows in connection health).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Reads a response's body, refusing more than the client's cap (for answers opened with
    /// [`UpstreamClient::open`] that turn out not to be streamed).
    pub async fn read_capped(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Bytes, UpstreamError> {
        let cap = self.config.max_body_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(UpstreamError::TooLarge(cap));
        }
        // Sized from the declared length (bounded: a server may declare more than it sends),
        // so a large page is not copied through every doubling of the buffer.
        let declared = response
            .content_length()
            .unwrap_or(0)
            .min(PRESIZE_MAX as u64);
        let mut body = BytesMut::with_capacity(declared as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(UpstreamError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    async fn attempt(&self, request: reqwest::RequestBuilder, resend: Resend) -> Attempt {
        let write = resend == Resend::IfUnsent;
        let request = match request.build() {
            Ok(r) => r,
            Err(e) => return Attempt::Fail(transport(&e)),
        };
        // IP literals never reach the resolver: check them here.
        if check_literal(request.url(), &self.config.egress.policy).is_err() {
            return Attempt::Fail(UpstreamError::Blocked);
        }
        let _permit = self
            .limiter
            .acquire(self.clock.as_ref(), self.sleeper.as_ref())
            .await;
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            // Refused by the guard: the source is not unhealthy and retrying cannot help.
            Err(e) if is_blocked(&e) => return Attempt::Fail(UpstreamError::Blocked),
            // No connection was made: the request never left, so a write is safe to resend.
            Err(e) if write && !e.is_connect() => {
                return Attempt::Fail(UpstreamError::OutcomeUnknown(if e.is_timeout() {
                    "timed out after the request was sent".into()
                } else {
                    "the connection failed after the request was sent".into()
                }));
            }
            Err(e) => {
                return Attempt::Retry {
                    error: transport(&e),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match self.read_capped(response).await {
            Ok(b) => b,
            Err(UpstreamError::TooLarge(cap)) if write && (200..300).contains(&status) => {
                return Attempt::Fail(UpstreamError::OutcomeUnknown(format!(
                    "the source answered {status} with more than {cap} bytes"
                )));
            }
            Err(e @ UpstreamError::TooLarge(_)) => return Attempt::Fail(e),
            Err(_) if write => {
                return Attempt::Fail(UpstreamError::OutcomeUnknown(format!(
                    "the answer ({status}) was cut off"
                )));
            }
            Err(e) => {
                return Attempt::Retry {
                    error: e,
                    wait: None,
                };
            }
        };
        if !retryable(status) {
            return Attempt::Done(UpstreamResponse {
                status,
                headers,
                body,
            });
        }
        let wait = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        // A write is resent only when the source refused it before processing: 429, or 503
        // with `Retry-After`. A gateway's 502 or 504, a 500, or a 503 without `Retry-After`
        // may come after the source applied it.
        let refused = status == 429 || (status == 503 && wait.is_some());
        if write && !refused {
            return Attempt::Fail(UpstreamError::OutcomeUnknown(format!(
                "the source answered {status}"
            )));
        }
        if let Some(w) = wait
            && w > self.config.retry.max_retry_after
        {
            return Attempt::Fail(UpstreamError::RateLimited(w));
        }
        Attempt::Retry {
            error: UpstreamError::Status { status, body },
            wait,
        }
    }

    /// Sends the request `make` builds (called once per attempt), retrying what is worth
    /// retrying: connection failures, timeouts, 429 and 5xx. The circuit breaker judges the
    /// whole call: one whose retries absorbed a failure succeeded, and a throttled one (429,
    /// however long) says the source is busy, not unhealthy. For reads and idempotent calls;
    /// writes go through [`UpstreamClient::send_write`].
    pub async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.send_as(make, Resend::Always).await
    }

    /// Sends a read whose answer is consumed as a stream (a large array cut into pages as it
    /// arrives): one attempt through the breaker, the limits and the egress guard, returning
    /// the answer with its body unread. Not retried: a caller that loses the stream asks again.
    pub async fn open(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        if let Err(retry_in) = self.breaker.allow(self.clock.now()) {
            return Err(UpstreamError::CircuitOpen(retry_in));
        }
        let request = request.build().map_err(|e| transport(&e))?;
        if check_literal(request.url(), &self.config.egress.policy).is_err() {
            return Err(UpstreamError::Blocked);
        }
        let permit = self
            .limiter
            .acquire(self.clock.as_ref(), self.sleeper.as_ref())
            .await;
        let result = self.http.execute(request).await;
        drop(permit);
        match result {
            Err(e) if is_blocked(&e) => Err(UpstreamError::Blocked),
            Err(e) => {
                self.breaker.record_failure(self.clock.now());
                Err(transport(&e))
            }
            Ok(r) => {
                if r.status().is_server_error() {
                    self.breaker.record_failure(self.clock.now());
                } else {
                    self.breaker.record_success(self.clock.now());
                }
                Ok(r)
            }
        }
    }

    /// Sends a write (a create or any call that is not idempotent): it is sent again only
    /// when it certainly did not reach the source (no connection was made) or the source
    /// refused it before processing (429; 503 with `Retry-After`). A timeout after it was
    /// sent, a connection broken mid-answer, or another 5xx is
    /// [`UpstreamError::OutcomeUnknown`]: the source may have applied it.
    pub async fn send_write(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.send_as(make, Resend::IfUnsent).await
    }

    async fn send_as(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        resend: Resend,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if let Err(retry_in) = self.breaker.allow(self.clock.now()) {
            return Err(UpstreamError::CircuitOpen(retry_in));
        }
        let result = self.send_with_retries(make, resend).await;
        let healthy = match &result {
            Ok(_) => Some(true),
            Err(UpstreamError::TooLarge(_) | UpstreamError::RateLimited(_)) => Some(true),
            Err(UpstreamError::Status { status, .. }) => Some(*status == 429),
            // Refused by our own guard: says nothing about the source.
            Err(UpstreamError::Blocked) => None,
            Err(_) => Some(false),
        };
        match healthy {
            Some(true) => self.breaker.record_success(self.clock.now()),
            Some(false) => self.breaker.record_failure(self.clock.now()),
            None => {}
        }
        result
    }

    async fn send_with_retries(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        resend: Resend,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let policy = self.config.retry;
        // Failed attempts, and throttled ones, each within their own budget.
        let (mut failed, mut throttled) = (0u32, 0u32);
        loop {
            match self.attempt(make(&self.http), resend).await {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { error, wait } => {
                    let is_throttled = matches!(error, UpstreamError::Status { status: 429, .. });
                    let (tries, budget) = if is_throttled {
                        throttled += 1;
                        (throttled, self.config.throttled_attempts.max(1))
                    } else {
                        failed += 1;
                        (failed, policy.max_attempts.max(1))
                    };
                    tracing::debug!(attempt = tries, error = %error, "upstream call failed; retrying");
                    if tries >= budget {
                        return Err(error);
                    }
                    let delay = wait.unwrap_or_else(|| policy.delay(tries - 1, random_unit()));
                    self.sleeper.sleep(delay).await;
                }
            }
        }
    }
}

fn transport(e: &reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        // Only the kind of failure: URLs may carry query parameters we do not want in logs.
        UpstreamError::Unreachable(if e.is_connect() {
            "connection failed".into()
        } else {
            "transport error".into()
        })
    }
}
