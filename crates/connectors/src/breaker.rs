//! A circuit breaker per connection: after a run of failures it stops calling the source for
//! a while, then lets one probe through; a success closes it again.

use std::sync::Mutex;
use std::time::Duration;

use ironbridge_model::Timestamp;
use ironbridge_model::api::CircuitState;

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Timestamp },
    HalfOpen { probing: bool },
}

/// The breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now; when open, how long until a probe is allowed.
    pub fn allow(&self, now: Timestamp) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
            State::Open { until } => Err(Duration::from_micros(
                (until.micros() - now.micros()).max(0) as u64,
            )),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
            // One probe at a time: others wait for its outcome.
            State::HalfOpen { probing: true } => Err(self.open_for),
        }
    }

    /// A call succeeded.
    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// A call failed in a way that says the source is unhealthy.
    pub fn record_failure(&self, now: Timestamp) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Timestamp(
                    now.micros() + i64::try_from(self.open_for.as_micros()).unwrap_or(i64::MAX),
                ),
            },
        };
    }

    /// The state, as the API shows it.
    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let b = CircuitBreaker::new(3, Duration::from_secs(30));
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
        b.record_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.allow(again).is_ok());
    }
}
