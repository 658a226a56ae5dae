//! ASCTrac's rows as the connector reads them: a top-level JSON array cut into elements as
//! its bytes arrive (depth- and string-aware, so one page is held at a time whatever the
//! outbox holds), .NET dates made RFC 3339 (zone-less ones read in the site's offset,
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

/// A .NET date-time as RFC 3339 UTC: with its own offset when it has one, else in the site's;
/// `None` for `0001-01-01…` (`DateTime.MinValue`, ASCTrac's "unset").
pub fn dotnet_datetime(s: &str, site: UtcOffset) -> Option<Option<String>> {
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
    // Zone-less: up to seven fraction digits, read in the site's offset.
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
    let t = t.replace_nanosecond(nanos).ok()?.assume_offset(site);
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
pub fn normalize(v: &mut Value, site: UtcOffset) {
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
        let site = parse_offset("-05:00").unwrap();
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
}
