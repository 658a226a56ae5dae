//! The account's time zone: a few IANA zones with their current daylight-saving rules (US
//! since 2007, EU since 1996, New South Wales since 2008), written out instead of a tz
//! database because the emulator needs only these and only recent years. Instants stay UTC;
//! this turns them into the wall-clock time NetSuite shows, and wall-clock times back.

use crate::common::clock::{Millis, date_ms};

const HOUR: Millis = 3_600_000;
const DAY: Millis = 86_400_000;

/// When a zone observes daylight-saving time (one hour ahead of standard time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Never.
    None,
    /// United States since 2007: second Sunday of March 02:00 standard time to the first
    /// Sunday of November 02:00 daylight time.
    Us,
    /// European Union since 1996: last Sunday of March to the last Sunday of October, both
    /// at 01:00 UTC.
    Eu,
    /// New South Wales (and Victoria, Tasmania, ACT) since 2008: first Sunday of October
    /// 02:00 standard time to the first Sunday of April 03:00 daylight time (southern
    /// hemisphere: daylight time spans the new year).
    Au,
}

/// The zones the emulator knows: (IANA name, standard offset in minutes east of UTC, rule).
const ZONES: &[(&str, i32, Rule)] = &[
    ("UTC", 0, Rule::None),
    ("Etc/UTC", 0, Rule::None),
    ("GMT", 0, Rule::None),
    ("America/Los_Angeles", -8 * 60, Rule::Us),
    ("America/Denver", -7 * 60, Rule::Us),
    ("America/Phoenix", -7 * 60, Rule::None),
    ("America/Chicago", -6 * 60, Rule::Us),
    ("America/New_York", -5 * 60, Rule::Us),
    ("Europe/London", 0, Rule::Eu),
    ("Europe/Dublin", 0, Rule::Eu),
    ("Europe/Berlin", 60, Rule::Eu),
    ("Europe/Paris", 60, Rule::Eu),
    ("Europe/Amsterdam", 60, Rule::Eu),
    ("Asia/Tokyo", 9 * 60, Rule::None),
    ("Asia/Kolkata", 5 * 60 + 30, Rule::None),
    ("Australia/Sydney", 10 * 60, Rule::Au),
    ("Australia/Melbourne", 10 * 60, Rule::Au),
];

/// The instants a wall-clock time denotes in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// One instant (most of the year).
    Single(Millis),
    /// The repeated hour when clocks go back: the earlier instant (daylight time) and the
    /// later one (standard time).
    Ambiguous(Millis, Millis),
    /// The skipped hour when clocks go forward: no instant shows this time.
    Gap,
}

/// An account (or user) time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone {
    name: &'static str,
    standard_ms: Millis,
    rule: Rule,
}

impl TimeZone {
    /// Coordinated Universal Time.
    pub const UTC: TimeZone = TimeZone {
        name: "UTC",
        standard_ms: 0,
        rule: Rule::None,
    };

    /// The zone of an IANA name the emulator knows (case-insensitive).
    pub fn parse(name: &str) -> Option<TimeZone> {
        ZONES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|&(name, minutes, rule)| TimeZone {
                name,
                standard_ms: Millis::from(minutes) * 60_000,
                rule,
            })
    }

    /// The names [`TimeZone::parse`] accepts.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ZONES.iter().map(|z| z.0)
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Offset from UTC at `utc` (wall clock = UTC + offset), in milliseconds.
    pub fn offset_at(self, utc: Millis) -> Millis {
        if self.in_daylight_time(utc) {
            self.standard_ms + HOUR
        } else {
            self.standard_ms
        }
    }

    /// The wall-clock time at `utc`, as milliseconds of a UTC calendar (so the usual date
    /// functions format it).
    pub fn to_local(self, utc: Millis) -> Millis {
        utc.saturating_add(self.offset_at(utc))
    }

    /// The instants whose wall-clock time is `local`.
    pub fn from_local(self, local: Millis) -> Local {
        let daylight = local - self.standard_ms - HOUR;
        let standard = local - self.standard_ms;
        let shows = |utc: Millis| self.to_local(utc) == local;
        match (self.rule != Rule::None && shows(daylight), shows(standard)) {
            (true, true) => Local::Ambiguous(daylight, standard),
            (true, false) => Local::Single(daylight),
            (false, true) => Local::Single(standard),
            (false, false) => Local::Gap,
        }
    }

    /// A wall-clock time as one instant, the way Oracle converts a session-time literal:
    /// the repeated hour is read as standard time (the later instant, Oracle's default with
    /// `ERROR_ON_OVERLAP_TIME` false) and a time in the skipped hour is moved forward by the
    /// hour it skips (what Oracle's time-zone conversion does with a nonexistent time).
    pub fn resolve(self, local: Millis) -> Millis {
        match self.from_local(local) {
            Local::Single(utc) | Local::Ambiguous(_, utc) => utc,
            // Read with the offset in force before the jump (standard time): 02:30 becomes
            // 03:30 daylight time.
            Local::Gap => local - self.standard_ms,
        }
    }

    fn in_daylight_time(self, utc: Millis) -> bool {
        let Some((start, end)) = self.daylight_period(year_of(utc)) else {
            return false;
        };
        match self.rule {
            // Southern hemisphere: daylight time from October to the next April.
            Rule::Au => utc < end || utc >= start,
            _ => start <= utc && utc < end,
        }
    }

    /// The UTC instants daylight time starts and ends in `year` (for the southern hemisphere,
    /// the end is the April one and the start the October one).
    fn daylight_period(self, year: i32) -> Option<(Millis, Millis)> {
        let std = self.standard_ms;
        Some(match self.rule {
            Rule::None => return None,
            Rule::Us => (
                nth_sunday(year, 3, 2)? + 2 * HOUR - std,
                nth_sunday(year, 11, 1)? + 2 * HOUR - (std + HOUR),
            ),
            Rule::Eu => (last_sunday(year, 3)? + HOUR, last_sunday(year, 10)? + HOUR),
            Rule::Au => (
                nth_sunday(year, 10, 1)? + 2 * HOUR - std,
                nth_sunday(year, 4, 1)? + 3 * HOUR - (std + HOUR),
            ),
        })
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

/// The UTC calendar year of an instant.
fn year_of(ms: Millis) -> i32 {
    crate::common::clock::ms_to_datetime(ms).year()
}

/// 0 = Sunday.
fn weekday(day_ms: Millis) -> Millis {
    // 1970-01-01 was a Thursday.
    (day_ms.div_euclid(DAY) + 4).rem_euclid(7)
}

/// Midnight (UTC calendar) of the `n`th Sunday of a month.
fn nth_sunday(year: i32, month: u8, n: i64) -> Option<Millis> {
    let first = date_ms(year, month, 1)?;
    let to_sunday = (7 - weekday(first)) % 7;
    Some(first + (to_sunday + 7 * (n - 1)) * DAY)
}

/// Midnight (UTC calendar) of the last Sunday of a month.
fn last_sunday(year: i32, month: u8) -> Option<Millis> {
    let next = if month == 12 {
        date_ms(year + 1, 1, 1)?
    } else {
        date_ms(year, month + 1, 1)?
    };
    let last = next - DAY;
    Some(last - weekday(last) * DAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::clock::parse_rfc3339;

    fn at(s: &str) -> Millis {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn us_rules_move_at_two_in_the_morning_local_time() {
        let la = TimeZone::parse("America/Los_Angeles").unwrap();
        // 2026: 8 March and 1 November.
        assert_eq!(la.offset_at(at("2026-03-08T09:59:59Z")), -8 * HOUR);
        assert_eq!(la.offset_at(at("2026-03-08T10:00:00Z")), -7 * HOUR);
        assert_eq!(la.offset_at(at("2026-11-01T08:59:59Z")), -7 * HOUR);
        assert_eq!(la.offset_at(at("2026-11-01T09:00:00Z")), -8 * HOUR);
        let ny = TimeZone::parse("america/new_york").unwrap();
        assert_eq!(ny.offset_at(at("2025-03-09T07:00:00Z")), -4 * HOUR);
        assert_eq!(ny.offset_at(at("2025-03-09T06:59:59Z")), -5 * HOUR);
    }

    #[test]
    fn eu_and_australian_rules() {
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        // 2026: 29 March and 25 October, at 01:00 UTC.
        assert_eq!(berlin.offset_at(at("2026-03-29T00:59:59Z")), HOUR);
        assert_eq!(berlin.offset_at(at("2026-03-29T01:00:00Z")), 2 * HOUR);
        assert_eq!(berlin.offset_at(at("2026-10-25T00:59:59Z")), 2 * HOUR);
        assert_eq!(berlin.offset_at(at("2026-10-25T01:00:00Z")), HOUR);
        let london = TimeZone::parse("Europe/London").unwrap();
        assert_eq!(london.offset_at(at("2026-07-01T00:00:00Z")), HOUR);
        let sydney = TimeZone::parse("Australia/Sydney").unwrap();
        // 2026: daylight time ends 5 April 03:00 local (16:00 UTC the day before) and
        // starts 4 October 02:00 local (16:00 UTC the day before).
        assert_eq!(sydney.offset_at(at("2026-01-15T00:00:00Z")), 11 * HOUR);
        assert_eq!(sydney.offset_at(at("2026-04-04T15:59:59Z")), 11 * HOUR);
        assert_eq!(sydney.offset_at(at("2026-04-04T16:00:00Z")), 10 * HOUR);
        assert_eq!(sydney.offset_at(at("2026-10-03T15:59:59Z")), 10 * HOUR);
        assert_eq!(sydney.offset_at(at("2026-10-03T16:00:00Z")), 11 * HOUR);
        assert!(TimeZone::parse("Mars/Olympus_Mons").is_none());
    }

    #[test]
    fn wall_clock_times_map_back_to_zero_one_or_two_instants() {
        let la = TimeZone::parse("America/Los_Angeles").unwrap();
        let wall = |s: &str| at(&format!("{s}Z"));
        // Spring forward: 02:30 does not exist.
        assert_eq!(la.from_local(wall("2026-03-08T02:30:00")), Local::Gap);
        assert_eq!(
            la.resolve(wall("2026-03-08T02:30:00")),
            at("2026-03-08T10:30:00Z")
        );
        assert_eq!(
            la.from_local(wall("2026-03-08T03:00:00")),
            Local::Single(at("2026-03-08T10:00:00Z"))
        );
        // Fall back: 01:30 happens twice, first in daylight time.
        assert_eq!(
            la.from_local(wall("2026-11-01T01:30:00")),
            Local::Ambiguous(at("2026-11-01T08:30:00Z"), at("2026-11-01T09:30:00Z"))
        );
        assert_eq!(
            la.resolve(wall("2026-11-01T01:30:00")),
            at("2026-11-01T09:30:00Z")
        );
        for utc in [
            "2026-11-01T08:30:00Z",
            "2026-11-01T09:30:00Z",
            "2026-03-08T10:00:00Z",
            "2026-06-01T12:00:00Z",
        ] {
            let t = at(utc);
            match la.from_local(la.to_local(t)) {
                Local::Single(x) => assert_eq!(x, t),
                Local::Ambiguous(a, b) => assert!(a == t || b == t),
                Local::Gap => panic!("{utc} shows a skipped time"),
            }
        }
        assert_eq!(
            TimeZone::UTC.from_local(wall("2026-03-08T02:30:00")),
            Local::Single(at("2026-03-08T02:30:00Z"))
        );
    }
}
