//! Fault-injection switches (latency, 5xx rate, 429s, hangs, outages, canned errors, answers
//! lost after a write was applied) and their bookkeeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::datagen::mix;

/// What the admin API sets. Every field defaults to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Added to every API request (real time: it exists to exercise client timeouts and throughput).
    pub latency_ms: u64,
    /// Fraction (0.0..=1.0) of requests answered with a 5xx; which ones is a function of the seed.
    pub error_rate: f64,
    /// Status used by `error_rate` (default 503).
    pub error_status: Option<u16>,
    /// The next `count` requests get 429, with or without `Retry-After`.
    pub rate_limit: Option<RateLimitFault>,
    /// At most this many requests in flight; the rest get 429 (in the system's own format).
    pub concurrency_limit: Option<u32>,
    /// The next `count` requests stall for `duration_ms` before being answered (to trip client timeouts).
    pub hang: Option<HangFault>,
    /// The next `count` requests get exactly this status and body.
    pub next_errors: Option<NextErrors>,
    /// Simulated outage of the whole host (admin API included; it can end by itself after `duration_ms`).
    pub offline: Option<OfflineFault>,
    /// The next `count` matching requests are processed (a write is applied), then their
    /// answer is lost: the connection drops, the answer is held back, or a gateway's 502/504
    /// replaces it.
    pub lose_answer: Option<LoseAnswerFault>,
}

/// How an answer is lost after the request was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoseMode {
    /// The connection is closed mid-answer: after part of the body when there is one; reset
    /// before the status line otherwise.
    Drop,
    /// The answer is held back `duration_ms` (real time) before it is sent, so a client with a
    /// shorter timeout gives up after the request was applied.
    Hang,
    /// A gateway in front of the system answers 504 Gateway Timeout instead.
    GatewayTimeout,
    /// A gateway in front of the system answers 502 Bad Gateway instead.
    BadGateway,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseAnswerFault {
    pub count: u32,
    pub mode: LoseMode,
    /// For `hang`: how long the answer is held back, in real milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// Only requests with this method; by default any but `GET` and `HEAD`.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path contains this text.
    #[serde(default)]
    pub path_contains: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFault {
    pub count: u32,
    /// Seconds for `Retry-After`; `null` sends no header.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangFault {
    pub count: u32,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextErrors {
    pub count: u32,
    pub status: u16,
    pub body: String,
    #[serde(default = "json_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

fn json_type() -> String {
    "application/json".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineMode {
    Online,
    /// The port stops listening: connects fail with "connection refused".
    Refuse,
    /// Connections are accepted and reset at once; open keep-alive connections are reset on their next use.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineFault {
    pub mode: OfflineMode,
    /// Back online by itself after this many real milliseconds (the admin API is unreachable meanwhile).
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// A fault decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    Error(NextErrors),
    TooManyRequests { retry_after_secs: Option<u64> },
    ServerError(u16),
}

#[derive(Debug)]
pub struct Faults {
    seed: u64,
    config: Mutex<FaultConfig>,
    counter: AtomicU64,
    offline_tx: watch::Sender<OfflineMode>,
    offline_epoch: Arc<AtomicU64>,
}

/// Per-request plan: what to wait for and what to answer.
#[derive(Debug, Default)]
pub struct Plan {
    pub latency_ms: u64,
    pub hang_ms: u64,
    pub injected: Option<Injected>,
    pub concurrency_limit: Option<u32>,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        let (offline_tx, _) = watch::channel(OfflineMode::Online);
        Self {
            seed,
            config: Mutex::new(FaultConfig::default()),
            counter: AtomicU64::new(0),
            offline_tx,
            offline_epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn config(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configuration; returns an error message for values that make no sense.
    pub fn set(&self, cfg: FaultConfig) -> Result<(), String> {
        if !(0.0..=1.0).contains(&cfg.error_rate) {
            return Err("error_rate must be within 0.0..=1.0".into());
        }
        if let Some(s) = cfg.error_status
            && !(500..=599).contains(&s)
        {
            return Err("error_status must be a 5xx status".into());
        }
        if let Some(n) = &cfg.next_errors
            && !(100..=599).contains(&n.status)
        {
            return Err("next_errors.status must be an HTTP status".into());
        }
        if cfg.concurrency_limit == Some(0) {
            return Err("concurrency_limit must be at least 1".into());
        }
        if let Some(l) = &cfg.lose_answer
            && l.mode == LoseMode::Hang
            && l.duration_ms == 0
        {
            return Err("lose_answer.duration_ms must be set for mode hang".into());
        }
        let offline = cfg.offline.clone();
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
        match offline {
            // Delayed a little so the admin call that asked for the outage still gets its answer.
            Some(o) if o.mode != OfflineMode::Online => {
                let epoch = self.offline_epoch.fetch_add(1, Ordering::SeqCst) + 1;
                let (tx, epochs) = (self.offline_tx.clone(), self.offline_epoch.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    if epochs.load(Ordering::SeqCst) != epoch {
                        return;
                    }
                    tx.send_replace(o.mode);
                    if let Some(ms) = o.duration_ms {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        if epochs.load(Ordering::SeqCst) == epoch {
                            tx.send_replace(OfflineMode::Online);
                        }
                    }
                });
            }
            _ => self.go_offline(OfflineMode::Online, None),
        }
        Ok(())
    }

    pub fn offline_watch(&self) -> watch::Receiver<OfflineMode> {
        self.offline_tx.subscribe()
    }

    /// Switches the outage mode; with a duration, a timer switches back unless something changed it since.
    pub fn go_offline(&self, mode: OfflineMode, duration_ms: Option<u64>) {
        let epoch = self.offline_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.offline_tx.send_replace(mode);
        if mode == OfflineMode::Online {
            self.config
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .offline = None;
        }
        if let (Some(ms), true) = (duration_ms, mode != OfflineMode::Online) {
            let tx = self.offline_tx.clone();
            let epochs = self.offline_epoch.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                // Only end the outage this timer belongs to, not a later one.
                if epochs.load(Ordering::SeqCst) == epoch {
                    tx.send_replace(OfflineMode::Online);
                }
            });
        }
    }

    pub fn offline_mode(&self) -> OfflineMode {
        *self.offline_tx.borrow()
    }

    /// Whether the answer to this request, about to be processed, is to be lost (and how),
    /// consuming one of the `lose_answer` budget's requests when it matches.
    pub fn lose_answer(&self, method: &str, path: &str) -> Option<(LoseMode, u64)> {
        let mut cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let fault = cfg.lose_answer.as_mut()?;
        let method_ok = match &fault.method {
            Some(m) => m.eq_ignore_ascii_case(method),
            None => !matches!(method, "GET" | "HEAD"),
        };
        let path_ok = fault
            .path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p));
        if fault.count == 0 || !method_ok || !path_ok {
            return None;
        }
        fault.count -= 1;
        let lost = (fault.mode, fault.duration_ms);
        if fault.count == 0 {
            cfg.lose_answer = None;
        }
        Some(lost)
    }

    /// Decides the faults for one request, consuming "next N" budgets.
    pub fn plan(&self) -> Plan {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut plan = Plan {
            latency_ms: cfg.latency_ms,
            concurrency_limit: cfg.concurrency_limit,
            ..Plan::default()
        };
        if let Some(h) = &mut cfg.hang
            && h.count > 0
        {
            h.count -= 1;
            plan.hang_ms = h.duration_ms;
            if h.count == 0 {
                cfg.hang = None;
            }
        }
        if let Some(e) = &mut cfg.next_errors
            && e.count > 0
        {
            e.count -= 1;
            plan.injected = Some(Injected::Error(e.clone()));
            if e.count == 0 {
                cfg.next_errors = None;
            }
            return plan;
        }
        if let Some(r) = &mut cfg.rate_limit
            && r.count > 0
        {
            r.count -= 1;
            plan.injected = Some(Injected::TooManyRequests {
                retry_after_secs: r.retry_after_secs,
            });
            if r.count == 0 {
                cfg.rate_limit = None;
            }
            return plan;
        }
        if cfg.error_rate > 0.0 {
            // Deterministic per (seed, request number): a rerun with the same seed fails the same requests.
            let roll = (mix(self.seed, 0xFA17, n) % 1_000_000) as f64 / 1_000_000.0;
            if roll < cfg.error_rate {
                plan.injected = Some(Injected::ServerError(cfg.error_status.unwrap_or(503)));
            }
        }
        plan
    }
}
