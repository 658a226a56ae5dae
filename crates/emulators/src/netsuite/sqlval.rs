//! SuiteQL values: comparison, Oracle date formats (`TO_DATE`, `TO_CHAR`, `TO_TIMESTAMP_TZ`),
//! time zones (datetimes are instants shown in the user's time zone), and how values are
//! written into result rows (strings, the user's date format).

use std::cmp::Ordering;

use super::qfilter::DateFormat;
use super::timezone::TimeZone;
use crate::common::clock::{Millis, date_ms, ms_to_datetime};

/// The session a query runs in: the user's date-format and time-zone preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub fmt: DateFormat,
    pub tz: TimeZone,
}

impl Session {
    /// UTC and `M/D/YYYY`.
    pub const UTC: Session = Session {
        fmt: DateFormat::Mdy,
        tz: TimeZone::UTC,
    };
}

/// Where an instant is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The session's time zone (datetime columns, `SYSDATE`, `CURRENT_TIMESTAMP`).
    Session,
    /// A region with its daylight-saving rules (`FROM_TZ(ts, 'America/New_York')`).
    Region(TimeZone),
    /// A fixed offset from UTC (`TO_TIMESTAMP_TZ('… +02:00', '… TZH:TZM')`).
    Offset(Millis),
}

impl Zone {
    /// Offset from UTC at `at`.
    pub fn offset_at(self, at: Millis, s: &Session) -> Millis {
        match self {
            Zone::Session => s.tz.offset_at(at),
            Zone::Region(tz) => tz.offset_at(at),
            Zone::Offset(o) => o,
        }
    }

    /// `TZR`: the region name, or the offset for a fixed zone.
    fn name(self, at: Millis, s: &Session) -> String {
        match self {
            Zone::Session => s.tz.name().to_string(),
            Zone::Region(tz) => tz.name().to_string(),
            Zone::Offset(_) => offset_text(self.offset_at(at, s)),
        }
    }

    /// A zone as SQL names one: an IANA region, `UTC`/`GMT`, or an offset `[+-]HH:MM`.
    pub fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if let Some(tz) = TimeZone::parse(t) {
            return Some(Zone::Region(tz));
        }
        let (sign, rest) = match t.as_bytes().first()? {
            b'+' => (1, &t[1..]),
            b'-' => (-1, &t[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        Some(Zone::Offset(sign * (h * 60 + m) * 60_000))
    }
}

/// `+HH:MM` of an offset.
pub fn offset_text(offset: Millis) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let minutes = offset.abs() / 60_000;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Dec(f64),
    Str(String),
    /// A wall-clock value without a time zone: a date (midnight; calendar dates are never
    /// converted) or a timestamp (a literal, `SYS_EXTRACT_UTC`'s result), as milliseconds of a
    /// UTC calendar. `datetime` decides how it is displayed.
    Time {
        ms: Millis,
        datetime: bool,
    },
    /// A point in time and the zone it is shown in: NetSuite stores datetimes as UTC and
    /// shows them in the user's time zone, which is what Oracle's `TIMESTAMP WITH LOCAL TIME
    /// ZONE` does (and `TIMESTAMP WITH TIME ZONE` for an explicit zone).
    Instant {
        at: Millis,
        zone: Zone,
    },
}

impl Val {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Dec(d) => Some(*d),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn truthy(&self) -> bool {
        matches!(self, Val::Int(1))
    }

    /// The wall-clock time shown for a date or datetime, and whether it has a time part.
    pub fn wall(&self, s: &Session) -> Option<(Millis, bool)> {
        match self {
            Val::Time { ms, datetime } => Some((*ms, *datetime)),
            Val::Instant { at, zone } => Some((at + zone.offset_at(*at, s), true)),
            _ => None,
        }
    }

    /// The instant a date or datetime denotes: a wall-clock value is read in the session's
    /// time zone, as Oracle reads a `TIMESTAMP` compared with a zoned value (the repeated hour
    /// as standard time); a string in the user's date format likewise.
    pub fn instant(&self, s: &Session) -> Option<Millis> {
        match self {
            Val::Instant { at, .. } => Some(*at),
            Val::Time { ms, .. } => Some(s.tz.resolve(*ms)),
            Val::Str(text) => s.fmt.parse_value(text).map(|(t, _)| s.tz.resolve(t)),
            _ => None,
        }
    }
}

/// SQL comparison; `None` when either side is NULL or the types cannot be compared.
pub fn compare(a: &Val, b: &Val, s: &Session) -> Option<Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        // Two wall-clock values compare as they read.
        (Val::Time { ms: x, .. }, Val::Time { ms: y, .. }) => Some(x.cmp(y)),
        (Val::Time { ms, .. }, Val::Str(t)) => s.fmt.parse_value(t).map(|(t, _)| ms.cmp(&t)),
        (Val::Str(t), Val::Time { ms, .. }) => s.fmt.parse_value(t).map(|(t, _)| t.cmp(ms)),
        // Anything compared with an instant compares as an instant.
        (Val::Instant { .. }, _) | (_, Val::Instant { .. }) => {
            Some(a.instant(s)?.cmp(&b.instant(s)?))
        }
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (x, y) => {
            let (x, y) = (x.as_f64()?, y.as_f64()?);
            x.partial_cmp(&y)
        }
    }
}

/// Order for ORDER BY: NULLs last ascending (Oracle's default).
pub fn sort_cmp(a: &Val, b: &Val, s: &Session) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => compare(a, b, s).unwrap_or(Ordering::Equal),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum FmtTok {
    Year4,
    Month,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    /// `FF[1-9]`: fractional seconds (NetSuite keeps whole seconds: always zeros).
    Fraction(usize),
    Meridian,
    /// `TZH`, `TZM`: the offset's hours (with its sign) and minutes.
    TzHour,
    TzMinute,
    /// `TZR`: the time-zone region (or the offset of a fixed zone).
    TzRegion,
    Lit(String),
}

fn fmt_tokens(fmt: &str) -> Option<Vec<FmtTok>> {
    let mut out = Vec::new();
    let up = fmt.to_ascii_uppercase();
    let b = up.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &up[i..];
        let (tok, len) = if rest.starts_with("YYYY") {
            (FmtTok::Year4, 4)
        } else if rest.starts_with("HH24") {
            (FmtTok::Hour24, 4)
        } else if rest.starts_with("HH12") {
            (FmtTok::Hour12, 4)
        } else if rest.starts_with("HH") {
            (FmtTok::Hour12, 2)
        } else if rest.starts_with("MM") {
            (FmtTok::Month, 2)
        } else if rest.starts_with("MI") {
            (FmtTok::Minute, 2)
        } else if rest.starts_with("DD") {
            (FmtTok::Day, 2)
        } else if rest.starts_with("SS") {
            (FmtTok::Second, 2)
        } else if rest.starts_with("FF") {
            match b.get(i + 2) {
                Some(d @ b'1'..=b'9') => (FmtTok::Fraction(usize::from(d - b'0')), 3),
                _ => (FmtTok::Fraction(6), 2),
            }
        } else if rest.starts_with("TZH") {
            (FmtTok::TzHour, 3)
        } else if rest.starts_with("TZM") {
            (FmtTok::TzMinute, 3)
        } else if rest.starts_with("TZR") {
            (FmtTok::TzRegion, 3)
        } else if rest.starts_with("AM") || rest.starts_with("PM") {
            (FmtTok::Meridian, 2)
        } else if b[i] == b'"' {
            let end = rest[1..].find('"')? + 1;
            (FmtTok::Lit(fmt[i + 1..i + end].to_string()), end + 1)
        } else if b[i].is_ascii_alphanumeric() {
            return None;
        } else {
            (FmtTok::Lit((b[i] as char).to_string()), 1)
        };
        out.push(tok);
        i += len;
    }
    Some(out)
}

fn take_num(s: &str, pos: &mut usize, max_len: usize) -> Option<i64> {
    let digits: String = s[*pos..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(max_len)
        .collect();
    if digits.is_empty() {
        return None;
    }
    *pos += digits.len();
    digits.parse().ok()
}

/// `TO_DATE(s, fmt)` / `TO_TIMESTAMP(s, fmt)`: parses `s` with an Oracle format model into a
/// wall-clock time (a zone in the text is refused: that is `TO_TIMESTAMP_TZ`).
pub fn to_date(s: &str, fmt: &str) -> Option<Millis> {
    match parse_timestamp(s, fmt)? {
        (ms, None) => Some(ms),
        (_, Some(_)) => None,
    }
}

/// `TO_TIMESTAMP_TZ(s, fmt)`: the wall-clock time and the zone the text names, if it names
/// one (`TZH:TZM` or `TZR`).
pub fn parse_timestamp(s: &str, fmt: &str) -> Option<(Millis, Option<Zone>)> {
    let toks = fmt_tokens(fmt)?;
    let s = s.trim();
    let mut pos = 0;
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec) = (None, 1u8, 1u8, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let (mut tzh, mut tzm, mut region): (Option<i64>, i64, Option<Zone>) = (None, 0, None);
    for t in &toks {
        match t {
            FmtTok::Year4 => y = Some(take_num(s, &mut pos, 4)? as i32),
            FmtTok::Month => mo = take_num(s, &mut pos, 2)? as u8,
            FmtTok::Day => d = take_num(s, &mut pos, 2)? as u8,
            FmtTok::Hour24 | FmtTok::Hour12 => h = take_num(s, &mut pos, 2)?,
            FmtTok::Minute => mi = take_num(s, &mut pos, 2)?,
            FmtTok::Second => sec = take_num(s, &mut pos, 2)?,
            // Fractions are read and dropped: NetSuite's times are whole seconds.
            FmtTok::Fraction(n) => {
                take_num(s, &mut pos, *n)?;
            }
            FmtTok::Meridian => {
                let m = s.get(pos..pos + 2)?.to_ascii_uppercase();
                pm = Some(match m.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
                pos += 2;
            }
            FmtTok::TzHour => {
                let sign = match s.as_bytes().get(pos)? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                pos += 1;
                tzh = Some(sign * take_num(s, &mut pos, 2)?);
            }
            FmtTok::TzMinute => tzm = take_num(s, &mut pos, 2)?,
            FmtTok::TzRegion => {
                let rest = s.get(pos..)?;
                let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                region = Some(Zone::parse(&word)?);
                pos += word.len();
            }
            FmtTok::Lit(l) => {
                if !s.get(pos..).is_some_and(|r| r.starts_with(l.as_str())) {
                    return None;
                }
                pos += l.len();
            }
        }
    }
    if pos != s.len() {
        return None;
    }
    if let Some(p) = pm {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = h % 12 + if p { 12 } else { 0 };
    }
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
        return None;
    }
    let wall = date_ms(y?, mo, d)? + ((h * 60 + mi) * 60 + sec) * 1000;
    let zone = match (tzh, region) {
        (Some(hours), _) if hours.abs() <= 14 && (0..60).contains(&tzm) => {
            let minutes = hours * 60 + if hours < 0 { -tzm } else { tzm };
            Some(Zone::Offset(minutes * 60_000))
        }
        (Some(_), _) => return None,
        (None, region) => region,
    };
    Some((wall, zone))
}

/// `TO_CHAR(date, fmt)` of a wall-clock time; `zone` gives the offset and region of a zoned
/// value (`TZH`, `TZM`, `TZR` are refused without one, as Oracle refuses them for a `DATE`).
pub fn to_char(ms: Millis, fmt: &str, zone: Option<(Millis, &str)>) -> Option<String> {
    let toks = fmt_tokens(fmt)?;
    let dt = ms_to_datetime(ms);
    let mut out = String::new();
    for t in toks {
        match t {
            FmtTok::Year4 => out.push_str(&format!("{:04}", dt.year())),
            FmtTok::Month => out.push_str(&format!("{:02}", dt.month() as u8)),
            FmtTok::Day => out.push_str(&format!("{:02}", dt.day())),
            FmtTok::Hour24 => out.push_str(&format!("{:02}", dt.hour())),
            FmtTok::Hour12 => out.push_str(&format!("{:02}", (dt.hour() + 11) % 12 + 1)),
            FmtTok::Minute => out.push_str(&format!("{:02}", dt.minute())),
            FmtTok::Second => out.push_str(&format!("{:02}", dt.second())),
            FmtTok::Fraction(n) => out.push_str(&"0".repeat(n)),
            FmtTok::Meridian => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            FmtTok::TzHour => {
                let text = offset_text(zone?.0);
                out.push_str(&text[..3]);
            }
            FmtTok::TzMinute => {
                let text = offset_text(zone?.0);
                out.push_str(&text[4..]);
            }
            FmtTok::TzRegion => out.push_str(zone?.1),
            FmtTok::Lit(l) => out.push_str(&l),
        }
    }
    Some(out)
}

/// `TO_CHAR(value, fmt)` of a date or datetime, shown in its zone.
pub fn value_to_char(v: &Val, fmt: &str, s: &Session) -> Option<String> {
    match v {
        Val::Time { ms, .. } => to_char(*ms, fmt, None),
        Val::Instant { at, zone } => {
            let offset = zone.offset_at(*at, s);
            let name = zone.name(*at, s);
            to_char(at + offset, fmt, Some((offset, &name)))
        }
        _ => None,
    }
}

/// A datetime the way NetSuite shows one with the time: `1/15/2024 10:05 am`.
pub fn display_datetime(ms: Millis, fmt: DateFormat) -> String {
    let dt = ms_to_datetime(ms);
    let h12 = (dt.hour() + 11) % 12 + 1;
    let ampm = if dt.hour() < 12 { "am" } else { "pm" };
    format!("{} {}:{:02} {}", fmt.format(ms), h12, dt.minute(), ampm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_formats_round_trip() {
        let ms = to_date("2024-01-15 13:05:09", "YYYY-MM-DD HH24:MI:SS").unwrap();
        assert_eq!(
            ms,
            date_ms(2024, 1, 15).unwrap() + (13 * 3600 + 5 * 60 + 9) * 1000
        );
        assert_eq!(
            to_char(ms, "YYYY-MM-DD\"T\"HH24:MI:SS", None).unwrap(),
            "2024-01-15T13:05:09"
        );
        assert_eq!(to_char(ms, "HH:MI PM", None).unwrap(), "01:05 PM");
        assert_eq!(to_char(ms, "HH24:MI:SS.FF1", None).unwrap(), "13:05:09.0");
        assert_eq!(to_char(ms, "HH24:MI TZH:TZM", None), None);
        assert_eq!(to_date("2024-01-15", "YYYY-MM-DD"), date_ms(2024, 1, 15));
        assert_eq!(
            to_date("01/15/2024 01:00 PM", "MM/DD/YYYY HH:MI AM"),
            Some(date_ms(2024, 1, 15).unwrap() + 13 * 3_600_000)
        );
        assert_eq!(to_date("2024-13-01", "YYYY-MM-DD"), None);
        assert_eq!(to_date("2024-01-15x", "YYYY-MM-DD"), None);
        assert_eq!(to_date("2024-01-15", "QQ"), None);
    }

    #[test]
    fn comparisons() {
        let f = DateFormat::Mdy;
        let s = Session::UTC;
        let d = Val::Time {
            ms: date_ms(2024, 1, 15).unwrap(),
            datetime: false,
        };
        assert_eq!(
            compare(&d, &Val::Str("1/15/2024".into()), &s),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&Val::Int(2), &Val::Str("10".into()), &s),
            Some(Ordering::Less)
        );
        assert_eq!(compare(&Val::Null, &Val::Int(1), &s), None);
        assert_eq!(sort_cmp(&Val::Null, &Val::Int(1), &s), Ordering::Greater);
        assert_eq!(
            display_datetime(date_ms(2024, 1, 15).unwrap() + 13 * 3_600_000, f),
            "1/15/2024 1:00 pm"
        );
    }

    #[test]
    fn instants_show_in_their_zone_and_compare_as_instants() {
        let la = Session {
            fmt: DateFormat::Mdy,
            tz: TimeZone::parse("America/Los_Angeles").unwrap(),
        };
        let hour = 3_600_000;
        // 2026-11-01 08:30Z is 01:30 PDT; 09:30Z is 01:30 PST: the same wall-clock text.
        let first = date_ms(2026, 11, 1).unwrap() + 8 * hour + 30 * 60_000;
        let second = first + hour;
        let (a, b) = (
            Val::Instant {
                at: first,
                zone: Zone::Session,
            },
            Val::Instant {
                at: second,
                zone: Zone::Session,
            },
        );
        let fmt = "YYYY-MM-DD HH24:MI:SS TZH:TZM";
        assert_eq!(
            value_to_char(&a, fmt, &la).unwrap(),
            "2026-11-01 01:30:00 -07:00"
        );
        assert_eq!(
            value_to_char(&b, fmt, &la).unwrap(),
            "2026-11-01 01:30:00 -08:00"
        );
        assert_eq!(
            value_to_char(&a, "TZR", &la).unwrap(),
            "America/Los_Angeles"
        );
        assert_eq!(compare(&a, &b, &la), Some(Ordering::Less));
        // A wall-clock literal in the repeated hour is read as standard time (Oracle).
        let literal = Val::Time {
            ms: date_ms(2026, 11, 1).unwrap() + hour + 30 * 60_000,
            datetime: true,
        };
        assert_eq!(compare(&b, &literal, &la), Some(Ordering::Equal));
        assert_eq!(compare(&a, &literal, &la), Some(Ordering::Less));
        // An explicit offset is exact.
        let (wall, zone) = parse_timestamp(
            "2026-11-01 08:30:00 +00:00",
            "YYYY-MM-DD HH24:MI:SS TZH:TZM",
        )
        .unwrap();
        let utc = Val::Instant {
            at: wall - zone.unwrap().offset_at(wall, &la),
            zone: zone.unwrap(),
        };
        assert_eq!(compare(&a, &utc, &la), Some(Ordering::Equal));
        assert_eq!(
            parse_timestamp(
                "2026-11-01 01:30:00 -07:30",
                "YYYY-MM-DD HH24:MI:SS TZH:TZM"
            )
            .unwrap()
            .1,
            Some(Zone::Offset(-(7 * 60 + 30) * 60_000))
        );
        assert_eq!(Zone::parse("+05:30"), Some(Zone::Offset(330 * 60_000)));
        assert_eq!(
            Zone::parse("Europe/Berlin")
                .map(|z| z.name(0, &la))
                .as_deref(),
            Some("Europe/Berlin")
        );
    }
}
