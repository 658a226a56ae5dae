//! Retry delays: capped exponential backoff with full jitter (AWS Architecture Blog,
//! "Exponential Backoff and Jitter"), and `Retry-After` in both of its forms (RFC 9110).

use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use ironbridge_model::Timestamp;

/// How many times and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff base.
    pub base: Duration,
    /// Largest computed backoff.
    pub cap: Duration,
    /// Longest `Retry-After` we accept waiting for; a longer one ends the retries.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            // Eight: a 30 % rate of 5xx then fails one call in about 15,000 (0.3⁸), not one
            // in 400, while a source that is down is given up on within about a minute.
            max_attempts: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the delay before retry number `retry` (0 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A full-jitter delay: uniform in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A uniform number in `[0, 1]` from the system's random source.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return 1.0;
    }
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses `Retry-After`: delay-seconds (fractions allowed, as some APIs send) or an HTTP-date,
/// relative to `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let at = date.unix_timestamp().saturating_mul(1_000_000);
    Some(Duration::from_micros(
        u64::try_from(at - now.micros()).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let ceilings: Vec<u128> = (0..6).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(200), Duration::from_secs(1));
        for _ in 0..100 {
            let d = p.delay(3, random_unit());
            assert!(d <= Duration::from_millis(800));
        }
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_takes_seconds_fractions_and_dates() {
        let now = Timestamp::parse_rfc3339("2015-10-21T07:28:00Z").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("0.40235", now),
            Some(Duration::from_secs_f64(0.40235))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
