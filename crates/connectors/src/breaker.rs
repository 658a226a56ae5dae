//! A circuit breaker per connection: it stops calling a source that is failing, then lets one
//! probe through; a success closes it again. It judges whole calls (a call whose retries
//! absorbed a blip succeeded), and opens on a failure rate over a time window once enough
//! calls were made, or on a run of failed calls, as resilience libraries do (resilience4j's
//! `failureRateThreshold` / `minimumNumberOfCalls` / `slidingWindow`): a 30 % rate of 5xx
//! that retries absorb never opens it; an outage does.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use ironbridge_model::Timestamp;
use ironbridge_model::api::CircuitState;

/// When the breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failed calls in a row that open it whatever the rate (a source down for good is
    /// found even when calls are few).
    pub consecutive: u32,
    /// The window the failure rate is taken over.
    pub window: Duration,
    /// Calls in the window before the rate counts.
    pub min_calls: u32,
    /// Share of failed calls in the window that opens it.
    pub failure_rate: f64,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            // Each a call that failed after all its retries (about a minute of them).
            consecutive: 3,
            window: Duration::from_secs(60),
            min_calls: 10,
            failure_rate: 0.5,
            open_for: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Timestamp },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Outcomes of the calls in the window (time, failed), oldest first.
    calls: VecDeque<(Timestamp, bool)>,
    /// Failed calls since the last success.
    consecutive: u32,
}

/// The breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl CircuitBreaker {
    /// A closed breaker with `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        CircuitBreaker {
            policy: BreakerPolicy {
                consecutive: policy.consecutive.max(1),
                min_calls: policy.min_calls.max(1),
                ..policy
            },
            inner: Mutex::new(Inner {
                state: State::Closed,
                calls: VecDeque::new(),
                consecutive: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now; when open, how long until a probe is allowed.
    pub fn allow(&self, now: Timestamp) -> Result<(), Duration> {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Ok(()),
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen { probing: true };
                Ok(())
            }
            State::Open { until } => Err(Duration::from_micros(
                (until.micros() - now.micros()).max(0) as u64,
            )),
            State::HalfOpen { probing: false } => {
                inner.state = State::HalfOpen { probing: true };
                Ok(())
            }
            // One probe at a time: others wait for its outcome.
            State::HalfOpen { probing: true } => Err(self.policy.open_for),
        }
    }

    /// A call succeeded, or got an answer that says the source is healthy (a client error,
    /// throttling).
    pub fn record_success(&self, now: Timestamp) {
        self.record(now, false);
    }

    /// A call failed in a way that says the source is unhealthy (after its retries).
    pub fn record_failure(&self, now: Timestamp) {
        self.record(now, true);
    }

    fn record(&self, now: Timestamp, failed: bool) {
        let mut inner = self.lock();
        let horizon = now.micros() - micros(self.policy.window);
        while inner
            .calls
            .front()
            .is_some_and(|(at, _)| at.micros() < horizon)
        {
            inner.calls.pop_front();
        }
        inner.calls.push_back((now, failed));
        inner.consecutive = if failed { inner.consecutive + 1 } else { 0 };
        let open = State::Open {
            until: Timestamp(now.micros().saturating_add(micros(self.policy.open_for))),
        };
        inner.state = match inner.state {
            // The probe decides.
            State::HalfOpen { .. } if failed => open,
            State::HalfOpen { .. } => {
                inner.calls.clear();
                State::Closed
            }
            State::Open { until } => State::Open { until },
            State::Closed => {
                let total = inner.calls.len();
                let failures = inner.calls.iter().filter(|(_, f)| *f).count();
                let rate_high = total >= self.policy.min_calls as usize
                    && failures as f64 >= self.policy.failure_rate * total as f64;
                if failed && (inner.consecutive >= self.policy.consecutive || rate_high) {
                    open
                } else {
                    State::Closed
                }
            }
        };
    }

    /// The state, as the API shows it.
    pub fn state(&self) -> CircuitState {
        match self.lock().state {
            State::Closed => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(consecutive: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerPolicy {
            consecutive,
            open_for: Duration::from_secs(30),
            ..BreakerPolicy::default()
        })
    }

    #[test]
    fn opens_after_a_run_of_failed_calls_probes_once_and_closes_on_success() {
        let b = breaker(3);
        let t = Timestamp(0);
        b.record_failure(t);
        b.record_failure(t);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.allow(t).is_ok());
        b.record_failure(t);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.allow(Timestamp(10_000_000)), Err(Duration::from_secs(20)));
        let later = Timestamp(30_000_000);
        assert!(b.allow(later).is_ok(), "the probe goes through");
        assert!(b.allow(later).is_err(), "only one probe at a time");
        b.record_failure(later);
        assert_eq!(b.state(), CircuitState::Open, "a failed probe reopens");
        let again = Timestamp(60_000_000);
        assert!(b.allow(again).is_ok());
        b.record_success(again);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.allow(again).is_ok());
    }

    #[test]
    fn a_failure_rate_below_the_threshold_never_opens_it() {
        // 30 % of calls failing, interleaved (never five in a row), for ten minutes.
        let b = breaker(5);
        for i in 0..6_000i64 {
            let at = Timestamp(i * 100_000);
            if i % 10 < 3 {
                b.record_failure(at);
            } else {
                b.record_success(at);
            }
            assert_eq!(b.state(), CircuitState::Closed, "call {i}");
        }
    }

    #[test]
    fn a_failure_rate_above_the_threshold_opens_it_once_enough_calls_were_made() {
        let b = breaker(5);
        let t = |i: i64| Timestamp(i * 1_000_000);
        // Alternating: never two failures in a row, but half of the calls fail.
        for i in 0..9 {
            if i % 2 == 0 {
                b.record_failure(t(i));
            } else {
                b.record_success(t(i));
            }
        }
        assert_eq!(b.state(), CircuitState::Closed, "too few calls to judge");
        b.record_failure(t(9));
        b.record_failure(t(10));
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let b = breaker(50);
        for i in 0..8 {
            b.record_failure(Timestamp(i * 1_000_000));
        }
        // Two minutes later the window holds only new calls.
        for i in 0..12 {
            b.record_success(Timestamp(120_000_000 + i * 1_000_000));
        }
        b.record_failure(Timestamp(133_000_000));
        assert_eq!(b.state(), CircuitState::Closed);
    }
}
