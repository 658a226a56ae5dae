//! SuiteQL values: comparison, Oracle date formats (`TO_DATE`, `TO_CHAR`), and how values are written
//! into result rows (strings, the user's date format).

use std::cmp::Ordering;

use super::qfilter::DateFormat;
use crate::common::clock::{Millis, date_ms, ms_to_datetime};

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Dec(f64),
    Str(String),
    /// A date (midnight) or datetime; `datetime` decides how it is displayed.
    Time {
        ms: Millis,
        datetime: bool,
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
}

/// SQL comparison; `None` when either side is NULL or the types cannot be compared.
pub fn compare(a: &Val, b: &Val, fmt: DateFormat) -> Option<Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Time { ms: x, .. }, Val::Time { ms: y, .. }) => Some(x.cmp(y)),
        // Oracle converts a string compared with a date using the session's date format.
        (Val::Time { ms, .. }, Val::Str(s)) => fmt.parse_value(s, 0).map(|(t, _)| ms.cmp(&t)),
        (Val::Str(s), Val::Time { ms, .. }) => fmt.parse_value(s, 0).map(|(t, _)| t.cmp(ms)),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (x, y) => {
            let (x, y) = (x.as_f64()?, y.as_f64()?);
            x.partial_cmp(&y)
        }
    }
}

/// Order for ORDER BY: NULLs last ascending (Oracle's default).
pub fn sort_cmp(a: &Val, b: &Val, fmt: DateFormat) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => compare(a, b, fmt).unwrap_or(Ordering::Equal),
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
    Meridian,
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

/// `TO_DATE(s, fmt)`: parses `s` with an Oracle format model.
pub fn to_date(s: &str, fmt: &str) -> Option<Millis> {
    let toks = fmt_tokens(fmt)?;
    let s = s.trim();
    let mut pos = 0;
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec) = (None, 1u8, 1u8, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    for t in &toks {
        match t {
            FmtTok::Year4 => y = Some(take_num(s, &mut pos, 4)? as i32),
            FmtTok::Month => mo = take_num(s, &mut pos, 2)? as u8,
            FmtTok::Day => d = take_num(s, &mut pos, 2)? as u8,
            FmtTok::Hour24 | FmtTok::Hour12 => h = take_num(s, &mut pos, 2)?,
            FmtTok::Minute => mi = take_num(s, &mut pos, 2)?,
            FmtTok::Second => sec = take_num(s, &mut pos, 2)?,
            FmtTok::Meridian => {
                let m = s.get(pos..pos + 2)?.to_ascii_uppercase();
                pm = Some(match m.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
                pos += 2;
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
    Some(date_ms(y?, mo, d)? + ((h * 60 + mi) * 60 + sec) * 1000)
}

/// `TO_CHAR(date, fmt)`.
pub fn to_char(ms: Millis, fmt: &str) -> Option<String> {
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
            FmtTok::Meridian => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            FmtTok::Lit(l) => out.push_str(&l),
        }
    }
    Some(out)
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
            to_char(ms, "YYYY-MM-DD\"T\"HH24:MI:SS").unwrap(),
            "2024-01-15T13:05:09"
        );
        assert_eq!(to_char(ms, "HH:MI PM").unwrap(), "01:05 PM");
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
        let d = Val::Time {
            ms: date_ms(2024, 1, 15).unwrap(),
            datetime: false,
        };
        assert_eq!(
            compare(&d, &Val::Str("1/15/2024".into()), f),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&Val::Int(2), &Val::Str("10".into()), f),
            Some(Ordering::Less)
        );
        assert_eq!(compare(&Val::Null, &Val::Int(1), f), None);
        assert_eq!(sort_cmp(&Val::Null, &Val::Int(1), f), Ordering::Greater);
        assert_eq!(
            display_datetime(date_ms(2024, 1, 15).unwrap() + 13 * 3_600_000, f),
            "1/15/2024 1:00 pm"
        );
    }
}
