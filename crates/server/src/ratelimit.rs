//! Per-credential rate limits (GCRA: a token bucket without a timer). Time comes from the
//! injected clock, so tests can drive it.

use std::collections::HashMap;
use std::sync::Mutex;

use ironbridge_model::Timestamp;

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current burst (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying, when refused (`Retry-After`).
    pub retry_after_secs: u64,
}

/// Keyed limiter: `rate` requests per second sustained, `burst` at once.
pub struct RateLimiter {
    interval: i64,
    tolerance: i64,
    burst: u32,
    state: Mutex<HashMap<String, i64>>,
}

impl RateLimiter {
    /// A limiter; a zero rate disables limiting.
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        let interval = if rate_per_second == 0 {
            0
        } else {
            1_000_000 / i64::from(rate_per_second)
        };
        let burst = burst.max(1);
        RateLimiter {
            interval,
            tolerance: interval * (i64::from(burst) - 1),
            burst,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Decides one request for `key` at `now`.
    pub fn check(&self, key: &str, now: Timestamp) -> Decision {
        let now = now.micros();
        if self.interval == 0 {
            return Decision {
                allowed: true,
                limit: self.burst,
                remaining: self.burst,
                reset_secs: 0,
                retry_after_secs: 0,
            };
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() > 100_000 {
            // Forget keys whose bucket is full again; they are indistinguishable from new ones.
            state.retain(|_, tat| *tat > now);
        }
        let tat = state.get(key).copied().unwrap_or(now).max(now);
        let secs_up = |micros: i64| (micros.max(0) as u64).div_ceil(1_000_000);
        if tat - now > self.tolerance {
            return Decision {
                allowed: false,
                limit: self.burst,
                remaining: 0,
                reset_secs: secs_up(tat - now),
                retry_after_secs: secs_up(tat - self.tolerance - now).max(1),
            };
        }
        let new_tat = tat + self.interval;
        state.insert(key.to_string(), new_tat);
        let remaining =
            ((now + self.tolerance + self.interval - new_tat) / self.interval).max(0) as u32;
        Decision {
            allowed: true,
            limit: self.burst,
            remaining,
            reset_secs: secs_up(new_tat - now),
            retry_after_secs: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_until_time_passes() {
        let limiter = RateLimiter::new(2, 3);
        let t = Timestamp(1_000_000_000);
        let d: Vec<Decision> = (0..4).map(|_| limiter.check("k", t)).collect();
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            vec![true, true, true, false]
        );
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert_eq!(d[3].retry_after_secs, 1);
        // Another key has its own bucket.
        assert!(limiter.check("other", t).allowed);
        // Half a second later one more request fits (2 per second).
        assert!(limiter.check("k", Timestamp(t.0 + 500_000)).allowed);
        assert!(!limiter.check("k", Timestamp(t.0 + 500_000)).allowed);
        // After the bucket refills, a full burst is available again.
        let later = Timestamp(t.0 + 10_000_000);
        assert_eq!(limiter.check("k", later).remaining, 2);
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let limiter = RateLimiter::new(0, 1);
        assert!((0..1000).all(|_| limiter.check("k", Timestamp(0)).allowed));
    }
}
