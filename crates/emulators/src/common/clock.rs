//! Controllable clock: every timestamp the emulators write comes from here, so tests move time instead of sleeping.

use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// 9999-12-31T23:59:59.999Z, the latest instant the clock accepts.
pub const MAX_MS: Millis = 253_402_300_799_999;

/// A clock that starts at a configured instant and only moves when told to,
/// unless `real_time` makes it also follow the wall clock (useful for demos).
#[derive(Debug)]
pub struct Clock {
    inner: Mutex<ClockState>,
    real_time: bool,
    /// Resolution of a clock that follows real time (1 ms; NetSuite keeps whole seconds).
    resolution_ms: i64,
}

#[derive(Debug)]
struct ClockState {
    base_ms: Millis,
    since: Instant,
}

impl Clock {
    pub fn new(start_ms: Millis, real_time: bool) -> Self {
        Self {
            inner: Mutex::new(ClockState {
                base_ms: start_ms,
                since: Instant::now(),
            }),
            real_time,
            resolution_ms: 1,
        }
    }

    /// A clock whose real-time reading is rounded down to whole `resolution_ms` (a system
    /// that stores times in seconds must never show a fraction, even in a demo).
    pub fn with_resolution(mut self, resolution_ms: i64) -> Self {
        self.resolution_ms = resolution_ms.max(1);
        self
    }

    pub fn now_ms(&self) -> Millis {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if self.real_time {
            let now = s.base_ms + s.since.elapsed().as_millis() as i64;
            now - now.rem_euclid(self.resolution_ms)
        } else {
            s.base_ms
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        ms_to_datetime(self.now_ms())
    }

    /// Moves the clock forward (or backward with a negative delta).
    pub fn advance_ms(&self, delta: i64) -> Millis {
        let now = self.now_ms();
        self.set_ms(now.saturating_add(delta));
        self.now_ms()
    }

    /// Sets the clock, clamped to years 1970..=9999 so date arithmetic can never overflow.
    pub fn set_ms(&self, ms: Millis) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.base_ms = ms.clamp(0, MAX_MS);
        s.since = Instant::now();
    }
}

pub fn ms_to_datetime(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn datetime_to_ms(dt: OffsetDateTime) -> Millis {
    (dt.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 with a `Z` and no fraction, as NetSuite writes datetimes.
pub fn iso_seconds(ms: Millis) -> String {
    let dt = ms_to_datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// RFC 3339 with milliseconds and a `Z`, as Business Central writes datetimes.
pub fn iso_millis(ms: Millis) -> String {
    let dt = ms_to_datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// `YYYY-MM-DD` of the UTC day containing `ms`.
pub fn iso_date(ms: Millis) -> String {
    let dt = ms_to_datetime(ms);
    format!("{:04}-{:02}-{:02}", dt.year(), dt.month() as u8, dt.day())
}

/// Start of the UTC day containing `ms`.
pub fn day_start(ms: Millis) -> Millis {
    ms.div_euclid(86_400_000) * 86_400_000
}

/// Parses an RFC 3339 timestamp (with offset) into milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(datetime_to_ms)
}

/// Milliseconds for a calendar date at midnight UTC, if the date exists.
pub fn date_ms(year: i32, month: u8, day: u8) -> Option<Millis> {
    let month = time::Month::try_from(month).ok()?;
    let d = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(datetime_to_ms(d.midnight().assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_told() {
        let c = Clock::new(1_000, false);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance_ms(500), 1_500);
        c.set_ms(42);
        assert_eq!(c.now_ms(), 42);
        c.set_ms(i64::MAX);
        assert_eq!(c.now_ms(), MAX_MS);
        c.advance_ms(i64::MIN);
        assert_eq!(c.now_ms(), 0);
    }

    #[test]
    fn a_real_time_clock_keeps_its_resolution() {
        let c = Clock::new(1_234_567, true).with_resolution(1000);
        let t = c.now_ms();
        assert_eq!(t % 1000, 0, "{t}");
        assert!((1_234_000..1_300_000).contains(&t));
        let fine = Clock::new(1_234_567, true);
        assert!(fine.now_ms() >= 1_234_567);
    }

    #[test]
    fn formats() {
        let ms = date_ms(2024, 1, 15).unwrap() + 36_000_123;
        assert_eq!(iso_seconds(ms), "2024-01-15T10:00:00Z");
        assert_eq!(iso_millis(ms), "2024-01-15T10:00:00.123Z");
        assert_eq!(iso_date(ms), "2024-01-15");
        assert_eq!(parse_rfc3339("2024-01-15T10:00:00.123Z"), Some(ms));
        assert_eq!(day_start(ms), date_ms(2024, 1, 15).unwrap());
    }
}
