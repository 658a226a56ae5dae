//! Cron schedules of flows: five fields (minute, hour, day of month, month, day of week) or six
//! with seconds first, with `*`, lists, ranges, steps and month and day names, read in an
//! IANA time zone. When both day fields are restricted a day matching either is due (as in
//! Vixie cron). The next due instant is found field by field, not minute by minute.

use ironbridge_model::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{ToSpan, ZonedDateTime};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    seconds: Vec<bool>,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_restricted: bool,
    weekdays_restricted: bool,
    zone: TimeZone,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], base: u32) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let upper = s.to_ascii_uppercase();
    names
        .iter()
        .position(|n| *n == upper)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + base)
}

/// One field: which of `min..=max` it allows, and whether it is restricted (not `*`).
fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    what: &str,
) -> Result<(Vec<bool>, bool), String> {
    let mut allowed = vec![false; max as usize + 1];
    let restricted = !(text == "*" || text == "?");
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step = s
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: `{s}` is not a step"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, names, min).ok_or_else(|| format!("{what}: `{a}` is not a value"))?;
            let b = value(b, names, min).ok_or_else(|| format!("{what}: `{b}` is not a value"))?;
            (a, b)
        } else {
            let a = value(range, names, min)
                .ok_or_else(|| format!("{what}: `{range}` is not a value"))?;
            // `5/15` means from 5 to the end, every 15.
            (a, if part.contains('/') { max } else { a })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{what}: `{part}` is outside {min}–{max}"));
        }
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            v += step;
        }
    }
    Ok((allowed, restricted))
}

impl Schedule {
    /// Parses `expression` read in `timezone` (IANA name; `UTC` when absent).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "a cron expression has five fields (minute hour day month weekday) or six with seconds first, not {n}"
                ));
            }
        };
        let (seconds, _) = field(sec, 0, 59, &[], "seconds")?;
        let (minutes, _) = field(rest[0], 0, 59, &[], "minute")?;
        let (hours, _) = field(rest[1], 0, 23, &[], "hour")?;
        let (days, days_restricted) = field(rest[2], 1, 31, &[], "day of month")?;
        let (months, _) = field(rest[3], 1, 12, &MONTHS, "month")?;
        let (mut weekdays, weekdays_restricted) = field(rest[4], 0, 7, &WEEKDAYS, "day of week")?;
        // 7 is Sunday too.
        if weekdays[7] {
            weekdays[0] = true;
        }
        let zone = match timezone {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| format!("`{name}` is not an IANA time zone"))?
            }
        };
        let s = Schedule {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
            zone,
        };
        // A schedule that is never due (`0 0 31 2 *`) is refused now, not found out later.
        let probe = Timestamp(1_735_689_600_000_000); // 2025-01-01T00:00:00Z
        if s.next_after(probe).is_none() {
            return Err("the expression is never due".into());
        }
        Ok(s)
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days[date.day() as usize];
        let dow = self.weekdays[date.weekday().to_sunday_zero_offset() as usize];
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first due instant strictly after `after`, within eight years.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = jiff::Timestamp::from_microsecond(after.micros())
            .ok()?
            .to_zoned_datetime(self.zone.clone());
        // The next whole second after `after`.
        let start_dt = start.datetime();
        let mut dt = start_dt
            .with()
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.second())
            .ok()?;
        let limit = start_dt.checked_add(3000.days()).ok()?;
        while dt < limit {
            if !self.months[dt.month() as usize] {
                dt = first_of_next_month(dt)?;
                continue;
            }
            if !self.day_matches(dt.date()) {
                dt = dt
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::time(0, 0, 0, 0));
                continue;
            }
            if !self.hours[dt.hour() as usize] {
                dt = dt
                    .with()
                    .minute(0)
                    .second(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !self.minutes[dt.minute() as usize] {
                dt = dt
                    .with()
                    .second(0)
                    .build()
                    .ok()?
                    .checked_add(1.minute())
                    .ok()?;
                continue;
            }
            if !self.seconds[dt.second() as usize] {
                dt = dt.checked_add(1.second()).ok()?;
                continue;
            }
            // A civil time a DST gap skips resolves to the instant after the gap; one a
            // fold repeats, to its first occurrence.
            let zoned: ZonedDateTime = self
                .zone
                .to_ambiguous_zoned_datetime(dt)
                .compatible()
                .ok()?;
            let micros = zoned.timestamp().as_microsecond();
            if micros > after.micros() {
                return Some(Timestamp(micros));
            }
            dt = dt.checked_add(1.second()).ok()?;
        }
        None
    }
}

fn first_of_next_month(dt: DateTime) -> Option<DateTime> {
    let first = dt.date().first_of_month();
    let next = first.checked_add(1.month()).ok()?;
    Some(next.to_datetime(jiff::civil::time(0, 0, 0, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_microsecond())
    }

    fn show(t: Timestamp) -> String {
        jiff::Timestamp::from_microsecond(t.micros())
            .unwrap()
            .to_string()
    }

    #[test]
    fn finds_the_next_due_instant() {
        let every15 = Schedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(
            show(every15.next_after(at("2026-12-05T10:07:30Z")).unwrap()),
            "2026-12-05T10:15:00Z"
        );
        assert_eq!(
            show(every15.next_after(at("2026-12-05T10:15:00Z")).unwrap()),
            "2026-12-05T10:30:00Z"
        );
        let weekdays = Schedule::parse("0 9 * * MON-FRI", None).unwrap();
        // Saturday 5 December 2026: next is Monday the 7th.
        assert_eq!(
            show(weekdays.next_after(at("2026-12-05T10:00:00Z")).unwrap()),
            "2026-12-07T09:00:00Z"
        );
        let berlin = Schedule::parse("30 6 1 * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            show(berlin.next_after(at("2026-12-05T00:00:00Z")).unwrap()),
            "2027-01-01T05:30:00Z"
        );
        let leap = Schedule::parse("0 0 29 2 *", None).unwrap();
        assert_eq!(
            show(leap.next_after(at("2026-03-01T00:00:00Z")).unwrap()),
            "2028-02-29T00:00:00Z"
        );
        let either = Schedule::parse("0 12 1 * SUN", None).unwrap();
        assert_eq!(
            show(either.next_after(at("2026-12-01T13:00:00Z")).unwrap()),
            "2026-12-06T12:00:00Z"
        );
        let secs = Schedule::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(
            show(secs.next_after(at("2026-12-05T10:00:01Z")).unwrap()),
            "2026-12-05T10:00:10Z"
        );
    }

    #[test]
    fn refuses_bad_expressions_with_a_reason() {
        for (bad, says) in [
            ("* * * *", "five fields"),
            ("61 * * * *", "outside"),
            ("*/0 * * * *", "step"),
            ("0 0 31 2 *", "never due"),
            ("0 0 * * FUNDAY", "not a value"),
        ] {
            let e = Schedule::parse(bad, None).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("time zone"), "{e}");
    }
}
