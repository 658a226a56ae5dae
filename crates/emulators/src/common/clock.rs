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
///
/// It keeps a *reference* time (the time the test or the demo shares with Ironbridge's
/// clock: `set` and `advance` move it) and the system's *offset* from it: a real host's clock
/// drifts and an account sits in another data centre, so the emulated system may run minutes
/// ahead or behind. Everything the emulator shows or compares (`Date` headers, record
/// timestamps, token and assertion times) reads the reference plus the offset.
#[derive(Debug)]
pub struct Clock {
    inner: Mutex<ClockState>,
    real_time: bool,
    /// Resolution of every reading (1 ms; NetSuite keeps whole seconds).
    resolution_ms: i64,
}

#[derive(Debug)]
struct ClockState {
    base_ms: Millis,
    since: Instant,
    offset_ms: i64,
}

impl Clock {
    pub fn new(start_ms: Millis, real_time: bool) -> Self {
        Self {
            inner: Mutex::new(ClockState {
                base_ms: start_ms,
                since: Instant::now(),
                offset_ms: 0,
            }),
            real_time,
            resolution_ms: 1,
        }
    }

    /// A clock whose readings are rounded down to whole `resolution_ms` (a system that stores
    /// times in seconds must never show a fraction: not in a demo following real time, not
    /// after a start time, offset or `set` with milliseconds).
    pub fn with_resolution(mut self, resolution_ms: i64) -> Self {
        self.resolution_ms = resolution_ms.max(1);
        self
    }

    /// The same clock running `offset_ms` ahead of (negative: behind) its reference time.
    pub fn with_offset_ms(self, offset_ms: i64) -> Self {
        self.set_offset_ms(offset_ms);
        self
    }

    /// The resolution of every reading, in milliseconds.
    pub fn resolution_ms(&self) -> i64 {
        self.resolution_ms
    }

    /// Rounds `ms` down to the clock's resolution.
    pub fn truncate(&self, ms: Millis) -> Millis {
        ms - ms.rem_euclid(self.resolution_ms)
    }

    /// The reference time, without the system's offset.
    pub fn reference_ms(&self) -> Millis {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::reference_of(&s, self.real_time)
    }

    fn reference_of(s: &ClockState, real_time: bool) -> Millis {
        if real_time {
            s.base_ms
                .saturating_add(s.since.elapsed().as_millis().min(i64::MAX as u128) as i64)
        } else {
            s.base_ms
        }
    }

    /// How far the system's clock runs ahead of the reference (negative: behind).
    pub fn offset_ms(&self) -> i64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offset_ms
    }

    /// Sets the system's offset from the reference, clamped to ±100 years.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        const LIMIT: i64 = 100 * 366 * 86_400_000;
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.offset_ms = offset_ms.clamp(-LIMIT, LIMIT);
    }

    /// The system's time: the reference plus the offset, at the clock's resolution.
    pub fn now_ms(&self) -> Millis {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Self::reference_of(&s, self.real_time)
            .saturating_add(s.offset_ms)
            .clamp(0, MAX_MS);
        self.truncate(now)
    }

    pub fn now(&self) -> OffsetDateTime {
        ms_to_datetime(self.now_ms())
    }

    /// Moves the clock forward (or backward with a negative delta); the offset stays.
    pub fn advance_ms(&self, delta: i64) -> Millis {
        let reference = self.reference_ms();
        self.set_ms(reference.saturating_add(delta));
        self.now_ms()
    }

    /// Sets the reference time (the offset stays), clamped to years 1970..=9999 so date
    /// arithmetic can never overflow.
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
    fn the_offset_moves_every_reading_and_survives_set_and_advance() {
        let c = Clock::new(1_000_000, false).with_offset_ms(-600_000);
        assert_eq!((c.now_ms(), c.reference_ms()), (400_000, 1_000_000));
        c.set_ms(2_000_000);
        assert_eq!(c.now_ms(), 1_400_000);
        assert_eq!(c.advance_ms(1_000), 1_401_000);
        c.set_offset_ms(600_000);
        assert_eq!((c.now_ms(), c.offset_ms()), (2_601_000, 600_000));
        // Never before 1970, whatever the offset.
        c.set_offset_ms(i64::MIN);
        assert_eq!(c.now_ms(), 0);
    }

    #[test]
    fn a_clock_in_seconds_never_shows_milliseconds() {
        let c = Clock::new(1_234_567, false).with_resolution(1000);
        assert_eq!(c.now_ms(), 1_234_000);
        c.set_offset_ms(999);
        assert_eq!(c.now_ms(), 1_235_000);
        c.set_ms(5_000_001);
        c.set_offset_ms(0);
        assert_eq!(c.now_ms(), 5_000_000);
        assert_eq!(c.truncate(-1), -1000);
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
