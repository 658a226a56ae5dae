//! NexTraq's calendar: the trail serves one vehicle over one *local* day of the account per
//! request, with times as milliseconds since that day's local midnight, and shows each point's
//! time as US wall-clock text (`09/12/2018 5:43:39 AM EDT`). Here: the account's zone, the
//! local days a window touches and the part of each a request asks for, the cursor that says
//! which vehicle and day come next, and point times read back to instants.

use ironbridge_model::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};

/// Milliseconds in a day: the trail's largest `endTime`.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The account's time zone from the setting: NexTraq's own US zone names (`Eastern`,
/// `Central`, `Mountain`, `Pacific`, as the web application shows them) or an IANA name.
pub(crate) fn account_zone(name: &str) -> Option<TimeZone> {
    let iana = match name.trim().to_ascii_lowercase().as_str() {
        "eastern" => "America/New_York",
        "central" => "America/Chicago",
        "mountain" => "America/Denver",
        "pacific" => "America/Los_Angeles",
        _ => name.trim(),
    };
    TimeZone::get(iana).ok()
}

fn jiff_instant(t: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_microsecond(t.micros()).ok()
}

/// The account's calendar date at instant `t`.
pub(crate) fn local_date(tz: &TimeZone, t: Timestamp) -> Option<Date> {
    Some(jiff_instant(t)?.to_zoned_datetime(tz.clone()).date())
}

/// The instant the local day `date` starts (its first valid wall-clock time).
pub(crate) fn day_start(tz: &TimeZone, date: Date) -> Option<Timestamp> {
    let zoned = date.to_zoned_datetime(tz.clone()).ok()?;
    Some(Timestamp(zoned.timestamp().as_microsecond()))
}

/// The trail's `date` parameter: `MM/DD/YYYY`.
pub(crate) fn date_param(date: Date) -> String {
    format!("{:02}/{:02}/{:04}", date.month(), date.day(), date.year())
}

/// The part of local day `date` inside `[since, until]` (µs, both inclusive), as the trail's
/// `startTime`/`endTime` (ms since the day's local midnight); `None` when the day and the
/// range do not meet. The start is rounded down (a millisecond read twice is stored once) and
/// the end too (an instant past it is not in the range). A day is at most [`DAY_MS`] long to
/// the trail: the hour a 25-hour day (the end of daylight time) has beyond it cannot be asked
/// for.
pub(crate) fn day_range(
    tz: &TimeZone,
    date: Date,
    since: Timestamp,
    until: Timestamp,
) -> Option<(i64, i64)> {
    let start = day_start(tz, date)?.micros();
    let next = day_start(tz, date.tomorrow().ok()?)?.micros();
    let day_end_ms = ((next - start) / 1000 - 1).min(DAY_MS - 1);
    let from = (since.micros() - start).div_euclid(1000).max(0);
    let to = (until.micros() - start).div_euclid(1000).min(day_end_ms);
    (from <= to).then_some((from, to))
}

/// Where a read of the trail stands: the vehicle (by `mobileId`, so a vehicle added to or
/// removed from the list between pages moves no other vehicle's place) and its local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The vehicle to read next, or the first one listed after it.
    pub mobile: u64,
    /// Its day to read next.
    pub day: Date,
}

impl Position {
    /// `<mobileId>/<YYYY-MM-DD>`.
    pub(crate) fn encode(&self) -> String {
        format!("{}/{}", self.mobile, self.day)
    }

    /// The position a cursor of [`Position::encode`] names.
    pub(crate) fn decode(cursor: &str) -> Option<Position> {
        let (mobile, day) = cursor.split_once('/')?;
        Some(Position {
            mobile: mobile.parse().ok()?,
            day: day.parse().ok()?,
        })
    }
}

/// The UTC offset (seconds) US time-zone abbreviations stand for.
fn abbreviation_offset(abbr: &str) -> Option<i32> {
    let hours = match abbr {
        "UTC" | "GMT" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" | "AKDT" => -8,
        "AKST" => -9,
        "HST" | "HDT" => -10,
        _ => return None,
    };
    Some(hours * 3600)
}

/// A trail point's `dateDisplay` (`09/12/2018 5:43:39 AM EDT`) as an instant. The
/// abbreviation says which side of a daylight-saving change a repeated hour is on; without
/// one it knows, the time is read in the account's zone (a repeated hour as its first
/// occurrence).
pub(crate) fn parse_date_display(text: &str, tz: &TimeZone) -> Option<Timestamp> {
    let mut parts = text.split_whitespace();
    let (date, time, meridiem) = (parts.next()?, parts.next()?, parts.next()?);
    let abbr = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let mut d = date.split('/');
    let month: i8 = d.next()?.parse().ok()?;
    let day: i8 = d.next()?.parse().ok()?;
    let year: i16 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let hour12: i8 = t.next()?.parse().ok()?;
    let minute: i8 = t.next()?.parse().ok()?;
    let second: i8 = t.next()?.parse().ok()?;
    if d.next().is_some() || t.next().is_some() || !(1..=12).contains(&hour12) {
        return None;
    }
    let hour = match meridiem.to_ascii_uppercase().as_str() {
        "AM" => hour12 % 12,
        "PM" => hour12 % 12 + 12,
        _ => return None,
    };
    let civil = DateTime::new(year, month, day, hour, minute, second, 0).ok()?;
    let instant = match abbr.and_then(abbreviation_offset) {
        Some(secs) => Offset::from_seconds(secs).ok()?.to_timestamp(civil).ok()?,
        None => tz.to_ambiguous_timestamp(civil).compatible().ok()?,
    };
    Some(Timestamp(instant.as_microsecond()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn zones_by_nextraq_name_or_iana_name() {
        assert!(account_zone("Eastern").is_some());
        assert!(account_zone("pacific").is_some());
        assert!(account_zone("America/Phoenix").is_some());
        assert!(account_zone("Atlantis").is_none());
    }

    #[test]
    fn date_display_reads_back_across_the_repeated_hour() {
        let tz = account_zone("Eastern").unwrap();
        assert_eq!(
            parse_date_display("09/12/2018 5:43:39 AM EDT", &tz),
            Some(at("2018-09-12T09:43:39Z"))
        );
        // 1:30 happens twice on 2024-11-03: the abbreviation says which.
        assert_eq!(
            parse_date_display("11/03/2024 1:30:00 AM EDT", &tz),
            Some(at("2024-11-03T05:30:00Z"))
        );
        assert_eq!(
            parse_date_display("11/03/2024 1:30:00 AM EST", &tz),
            Some(at("2024-11-03T06:30:00Z"))
        );
        assert_eq!(
            parse_date_display("01/15/2026 12:00:05 AM", &tz),
            Some(at("2026-01-15T05:00:05Z"))
        );
        assert_eq!(
            parse_date_display("01/15/2026 12:00:05 PM CST", &tz),
            Some(at("2026-01-15T18:00:05Z"))
        );
        for bad in [
            "",
            "yesterday",
            "13/01/2026 1:00:00 AM EST",
            "01/15/2026 13:00:00 PM EST",
            "01/15/2026 1:00 AM EST",
            "01/15/2026 1:00:00 XM EST",
            "01/15/2026 1:00:00 AM EST extra",
        ] {
            assert_eq!(parse_date_display(bad, &tz), None, "{bad:?}");
        }
    }

    #[test]
    fn a_window_becomes_the_parts_of_local_days() {
        let tz = account_zone("Eastern").unwrap();
        let day: Date = "2026-01-15".parse().unwrap();
        assert_eq!(date_param(day), "01/15/2026");
        assert_eq!(day_start(&tz, day), Some(at("2026-01-15T05:00:00Z")));
        // A whole day.
        assert_eq!(
            day_range(
                &tz,
                day,
                at("2026-01-14T00:00:00Z"),
                at("2026-01-17T00:00:00Z")
            ),
            Some((0, DAY_MS - 1))
        );
        // Cut by the window on both sides, to the millisecond.
        assert_eq!(
            day_range(
                &tz,
                day,
                at("2026-01-15T06:00:00.000001Z"),
                at("2026-01-15T07:00:00Z")
            ),
            Some((3_600_000, 7_200_000))
        );
        // Outside.
        assert_eq!(
            day_range(
                &tz,
                day,
                at("2026-01-16T06:00:00Z"),
                at("2026-01-17T00:00:00Z")
            ),
            None
        );
        // The day daylight time starts has 23 hours.
        let spring: Date = "2026-03-08".parse().unwrap();
        let (_, end) = day_range(
            &tz,
            spring,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-20T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(end, 23 * 3_600_000 - 1);
        assert_eq!(
            local_date(&tz, at("2026-01-15T04:59:59Z")),
            "2026-01-14".parse().ok()
        );
    }

    #[test]
    fn positions_round_trip_and_refuse_garbage() {
        let p = Position {
            mobile: 100_004,
            day: "2026-01-15".parse().unwrap(),
        };
        assert_eq!(p.encode(), "100004/2026-01-15");
        assert_eq!(Position::decode(&p.encode()), Some(p));
        for bad in [
            "",
            "100004",
            "x/2026-01-15",
            "100004/2026-13-01",
            "-1/2026-01-01",
        ] {
            assert_eq!(Position::decode(bad), None, "{bad:?}");
        }
    }
}
