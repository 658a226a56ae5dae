//! ASCTrac's rows as the connector reads them: a top-level JSON array cut into elements as
//! its bytes arrive (depth- and string-aware, so one page is held at a time whatever the
//! outbox holds), .NET dates made RFC 3339 (zone-less ones read in the site's time zone,
//! `0001-01-01T00:00:00` as no date), whole doubles that are really integers made integers,
//! each row's source key, and the acknowledgement body that names it.

use ironbridge_model::Entity;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// The synthetic member carrying a row's source key (a mapping's `remote_id` path).
pub const KEY: &str = "_key";

/// What the cutter found at the top of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Not decided yet (only whitespace so far).
    Unknown,
    /// An array: elements follow.
    Array,
    /// An object (the "No Records Found" `ModelResponse`, or an error): read it whole.
    Object,
}

/// Cuts the elements of a top-level JSON array out of its bytes, chunk by chunk.
#[derive(Debug)]
pub struct Cutter {
    shape: Shape,
    depth: u32,
    in_string: bool,
    escaped: bool,
    current: Vec<u8>,
    /// The closing `]` was seen.
    pub done: bool,
}

impl Default for Cutter {
    fn default() -> Self {
        Cutter {
            shape: Shape::Unknown,
            depth: 0,
            in_string: false,
            escaped: false,
            current: Vec::new(),
            done: false,
        }
    }
}

impl Cutter {
    /// The answer's shape as far as seen.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Feeds `chunk`, pushing each complete element's bytes to `out`. Returns how many bytes
    /// of `chunk` were consumed: all of them, unless the shape turned out to be an object
    /// (the caller then reads the rest whole) or the array ended.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) -> Result<usize, String> {
        for (i, &b) in chunk.iter().enumerate() {
            match self.shape {
                Shape::Unknown => match b {
                    b' ' | b'\t' | b'\r' | b'\n' | 0xEF | 0xBB | 0xBF => {}
                    b'[' => self.shape = Shape::Array,
                    b'{' => {
                        self.shape = Shape::Object;
                        return Ok(i);
                    }
                    _ => return Err("the answer is not JSON".into()),
                },
                Shape::Object => return Ok(i),
                Shape::Array => {
                    if self.done {
                        return Ok(i);
                    }
                    if self.depth == 0 && !self.in_string {
                        match b {
                            b' ' | b'\t' | b'\r' | b'\n' | b',' => continue,
                            b']' => {
                                self.done = true;
                                continue;
                            }
                            b'{' | b'[' => {
                                self.depth = 1;
                                self.current.push(b);
                                continue;
                            }
                            _ => return Err("an array element is not an object".into()),
                        }
                    }
                    self.current.push(b);
                    if self.in_string {
                        if self.escaped {
                            self.escaped = false;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        b'}' | b']' => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                out.push(std::mem::take(&mut self.current));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(chunk.len())
    }
}

/// The site's clock, in which ASCTrac writes its zone-less times: an IANA time zone (its
/// daylight-saving changes included) or a fixed offset.
#[derive(Debug, Clone)]
pub enum SiteZone {
    /// A fixed offset from UTC (a site that never changes its clocks, or UTC).
    Fixed(UtcOffset),
    /// An IANA zone (`America/New_York`), from the tz database built into the binary.
    Named(jiff::tz::TimeZone),
}

impl SiteZone {
    /// The zone named `name` (IANA), if the tz database knows it.
    pub fn named(name: &str) -> Option<SiteZone> {
        jiff::tz::TimeZone::get(name.trim())
            .ok()
            .map(SiteZone::Named)
    }

    /// The instant of a wall-clock time at the site. A time a daylight-saving change skips
    /// is read as after the change; one it repeats, as its first occurrence (what .NET's
    /// `TimeZoneInfo.ConvertTimeToUtc` does for the repeated hour).
    pub fn instant(&self, local: PrimitiveDateTime) -> Option<OffsetDateTime> {
        match self {
            SiteZone::Fixed(offset) => Some(local.assume_offset(*offset)),
            SiteZone::Named(tz) => {
                let civil = jiff::civil::DateTime::new(
                    i16::try_from(local.year()).ok()?,
                    local.month() as i8,
                    local.day() as i8,
                    local.hour() as i8,
                    local.minute() as i8,
                    local.second() as i8,
                    i32::try_from(local.nanosecond()).ok()?,
                )
                .ok()?;
                let at = tz.to_ambiguous_timestamp(civil).compatible().ok()?;
                OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).ok()
            }
        }
    }

    /// The site's calendar date at `unix_seconds`.
    pub fn date_at(&self, unix_seconds: i64) -> Option<time::Date> {
        let t = OffsetDateTime::from_unix_timestamp(unix_seconds).ok()?;
        match self {
            SiteZone::Fixed(offset) => Some(t.to_offset(*offset).date()),
            SiteZone::Named(tz) => {
                let d = jiff::Timestamp::from_second(unix_seconds)
                    .ok()?
                    .to_zoned_datetime(tz.clone())
                    .date();
                let month = time::Month::try_from(d.month() as u8).ok()?;
                time::Date::from_calendar_date(i32::from(d.year()), month, d.day() as u8).ok()
            }
        }
    }
}

/// A .NET date-time as RFC 3339 UTC: with its own offset when it has one, else in the site's
/// zone; `None` for `0001-01-01…` (`DateTime.MinValue`, ASCTrac's "unset").
pub fn dotnet_datetime(s: &str, site: &SiteZone) -> Option<Option<String>> {
    let b = s.as_bytes();
    let shaped = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit);
    if !shaped {
        return None;
    }
    if s.starts_with("0001-01-01") {
        return Some(None);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC).format(&Rfc3339).ok());
    }
    // Zone-less: up to seven fraction digits, read in the site's zone.
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, f),
        None => (s, ""),
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(main, &format).ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else if frac.len() <= 9 && frac.bytes().all(|c| c.is_ascii_digit()) {
        format!("{frac:0<9}").parse().ok()?
    } else {
        return None;
    };
    let t = site.instant(t.replace_nanosecond(nanos).ok()?)?;
    Some(t.to_offset(UtcOffset::UTC).format(&Rfc3339).ok())
}

/// Fields ASCTrac declares `double` that hold whole numbers people read as integers.
const WHOLE: &[&str] = &[
    "LINE_NUMBER",
    "ORDER_LINENUM",
    "TRANFILE_REC_ID",
    "LINENUMBER",
];

/// Normalises a row in place: dates to RFC 3339 UTC, whole doubles of integer fields to
/// integers (nested lists too).
pub fn normalize(v: &mut Value, site: &SiteZone) {
    match v {
        Value::Object(m) => {
            for (k, field) in m.iter_mut() {
                if WHOLE.contains(&k.as_str())
                    && let Some(f) = field.as_f64()
                    && f.fract() == 0.0
                    && f.abs() < 9e15
                {
                    *field = json!(f as i64);
                    continue;
                }
                normalize(field, site);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalize(i, site)),
        // ASCTrac's columns are `''` when unset: no value, not an empty code.
        Value::String(s) if s.trim().is_empty() => *v = Value::Null,
        Value::String(s) => {
            if let Some(parsed) = dotnet_datetime(s, site) {
                *v = parsed.map_or(Value::Null, Value::String);
            }
        }
        _ => {}
    }
}

/// A member as key text (`12345.0` → `12345`; `null` → empty).
pub fn text(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => (f as i64).to_string(),
            _ => n.to_string(),
        },
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The source key of a row of `entity` (see docs/connectors/asctrac.md).
pub fn key(entity: Entity, m: &Map<String, Value>) -> String {
    let join = |fields: &[&str]| {
        fields
            .iter()
            .map(|f| text(m, f))
            .collect::<Vec<_>>()
            .join("|")
    };
    if entity == Entity::RECEIPT {
        join(&[
            "FACILITY",
            "ORDERNUMBER",
            "RELEASENUM",
            "LINE_NUMBER",
            "PRODUCT_CODE",
            "LOTID",
            "SKIDID",
            "RECEIVER_NO",
        ])
    } else if entity == Entity::INVENTORY_TRANSACTION {
        text(m, "TRANFILE_REC_ID")
    } else if entity == Entity::SHIPMENT {
        join(&["FACILITY", "ORDERNUMBER", "SHIPMENT_NUMBER"])
    } else if entity == Entity::OUTBOUND_ORDER {
        text(m, "ORDERNUMBER")
    } else if entity == Entity::INVENTORY_LEVEL {
        let exp = text(m, "EXPDATE");
        join(&["FACILITY", "VMI_CUSTID", "PRODUCT_CODE", "LOTID"])
            + "|"
            + exp.get(..10).unwrap_or("")
    } else if entity == Entity::ITEM {
        text(m, "PRODUCT_CODE")
    } else {
        text(m, "FACILITY")
    }
}

/// The acknowledgement of a row of `entity`: its key fields as the row sent them, and
/// `SUCCESSFUL: true` (never a null `ERROR_MESSAGE`: the service throws on one).
pub fn acknowledgement(entity: Entity, m: &Map<String, Value>) -> Value {
    let fields: &[&str] = if entity == Entity::RECEIPT {
        &[
            "ORDERNUMBER",
            "RELEASENUM",
            "LINE_NUMBER",
            "PRODUCT_CODE",
            "LOTID",
            "SKIDID",
            "RECEIVER_NO",
        ]
    } else if entity == Entity::INVENTORY_TRANSACTION {
        &["TRANFILE_REC_ID"]
    } else {
        &["ORDERNUMBER"]
    };
    let mut ack = Map::new();
    for f in fields {
        ack.insert((*f).to_string(), m.get(*f).cloned().unwrap_or(Value::Null));
    }
    ack.insert("SUCCESSFUL".into(), Value::Bool(true));
    Value::Object(ack)
}

/// Parses a `±HH:MM` offset.
pub fn parse_offset(s: &str) -> Option<UtcOffset> {
    let f = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    UtcOffset::parse(s.trim(), &f).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_cut_into_elements_across_chunks() {
        let body = br#" [{"a":"x]}\"","b":[1,{"c":2}]} , {"d":"e"}]"#;
        for split in 1..body.len() {
            let mut c = Cutter::default();
            let mut out = Vec::new();
            c.feed(&body[..split], &mut out).unwrap();
            c.feed(&body[split..], &mut out).unwrap();
            assert_eq!(out.len(), 2, "split {split}");
            assert!(c.done);
            let first: Value = serde_json::from_slice(&out[0]).unwrap();
            assert_eq!(first["a"], "x]}\"");
        }
        let mut c = Cutter::default();
        assert_eq!(c.feed(b"  {\"Message\":1}", &mut Vec::new()).unwrap(), 2);
        assert_eq!(c.shape(), Shape::Object);
        assert!(Cutter::default().feed(b"nope", &mut Vec::new()).is_err());
    }

    #[test]
    fn dotnet_dates_become_rfc3339() {
        let site = &SiteZone::Fixed(parse_offset("-05:00").unwrap());
        assert_eq!(
            dotnet_datetime("2026-01-01T07:00:00", site),
            Some(Some("2026-01-01T12:00:00Z".into()))
        );
        assert_eq!(
            dotnet_datetime("2026-01-01T07:00:00.1230000-05:00", site),
            Some(Some("2026-01-01T12:00:00.123Z".into()))
        );
        assert_eq!(dotnet_datetime("0001-01-01T00:00:00", site), Some(None));
        assert_eq!(dotnet_datetime("PO-2026", site), None);
        let mut row = json!({"TRANFILE_REC_ID": 12345.0, "QUANTITY": 10.0,
            "L": [{"LINE_NUMBER": 2.0, "D": "2026-01-01T07:00:00Z"}]});
        normalize(&mut row, site);
        assert_eq!(row["TRANFILE_REC_ID"], 12345);
        assert_eq!(row["QUANTITY"], 10.0);
        assert_eq!(row["L"][0]["LINE_NUMBER"], 2);
        assert_eq!(row["L"][0]["D"], "2026-01-01T07:00:00Z");
        assert_eq!(
            key(Entity::INVENTORY_TRANSACTION, row.as_object().unwrap()),
            "12345"
        );
    }

    #[test]
    fn a_named_zone_follows_daylight_saving_time() {
        let ny = &SiteZone::named("America/New_York").unwrap();
        let at = |s| dotnet_datetime(s, ny).unwrap().unwrap();
        // Winter: UTC−5; summer: UTC−4.
        assert_eq!(at("2026-01-15T07:00:00"), "2026-01-15T12:00:00Z");
        assert_eq!(at("2026-07-15T07:00:00.5"), "2026-07-15T11:00:00.5Z");
        // 2026-03-08 02:30 does not exist there (clocks jump 02:00 → 03:00): read as after
        // the change. 2026-11-01 01:30 happens twice: its first occurrence (still −4).
        assert_eq!(at("2026-03-08T02:30:00"), "2026-03-08T07:30:00Z");
        assert_eq!(at("2026-11-01T01:30:00"), "2026-11-01T05:30:00Z");
        // The site's date: 03:00 UTC on 2 July is still 1 July in New York.
        let t = OffsetDateTime::parse("2026-07-02T03:00:00Z", &Rfc3339).unwrap();
        assert_eq!(
            ny.date_at(t.unix_timestamp()).unwrap(),
            time::macros::date!(2026 - 07 - 01)
        );
        assert!(SiteZone::named("Mars/Olympus").is_none());
    }
}
