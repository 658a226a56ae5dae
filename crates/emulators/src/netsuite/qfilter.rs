//! The record API's `q` filter language (`field OPERATOR value`, AND/OR, parentheses), with dates parsed
//! in the account's date-format preference and NetSuite's "Unparseable date" error on a mismatch.

use std::ops::Bound;

use super::errors::NsError;
use super::timezone::TimeZone;
use crate::common::clock::{Millis, date_ms, ms_to_datetime};

const PREFIX: &str = "Invalid search query. Detailed unprocessed description follows.";

/// The user's date-format preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    Mdy,
    Dmy,
    Ymd,
    DotDmy,
}

impl DateFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "M/D/YYYY" | "MM/DD/YYYY" => Some(DateFormat::Mdy),
            "D/M/YYYY" | "DD/MM/YYYY" => Some(DateFormat::Dmy),
            "YYYY-MM-DD" => Some(DateFormat::Ymd),
            "D.M.YYYY" | "DD.MM.YYYY" => Some(DateFormat::DotDmy),
            _ => None,
        }
    }

    /// Renders the UTC day of `ms` (shifted by the account offset) in this format.
    pub fn format(self, ms: Millis) -> String {
        let d = ms_to_datetime(ms);
        let (y, m, day) = (d.year(), d.month() as u8, d.day());
        match self {
            DateFormat::Mdy => format!("{m}/{day}/{y}"),
            DateFormat::Dmy => format!("{day}/{m}/{y}"),
            DateFormat::Ymd => format!("{y:04}-{m:02}-{day:02}"),
            DateFormat::DotDmy => format!("{day}.{m}.{y}"),
        }
    }

    /// Parses a date, optionally followed by a time `h:mm[:ss] am|pm` or `HH:mm[:ss]` [I].
    /// Returns the interval `[start, end)` of wall-clock time the value denotes (a day, or a
    /// minute/second), as milliseconds of a UTC calendar: the caller places it in a time zone.
    pub fn parse_value(self, s: &str) -> Option<(Millis, Millis)> {
        let s = s.trim();
        let (date, time) = match s.split_once(' ') {
            Some((d, t)) => (d, Some(t.trim())),
            None => (s, None),
        };
        let (sep, order) = match self {
            DateFormat::Mdy => ('/', [1, 0, 2]),
            DateFormat::Dmy => ('/', [0, 1, 2]),
            DateFormat::Ymd => ('-', [2, 1, 0]),
            DateFormat::DotDmy => ('.', [0, 1, 2]),
        };
        let parts: Vec<&str> = date.split(sep).collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        // order = positions of [day, month, year]
        let day: u8 = parts[order[0]].parse().ok()?;
        let month: u8 = parts[order[1]].parse().ok()?;
        let ytext = parts[order[2]];
        if ytext.len() != 4 {
            return None;
        }
        let year: i32 = ytext.parse().ok()?;
        let start = date_ms(year, month, day)?;
        match time {
            None => Some((start, start + 86_400_000)),
            Some(t) => {
                let (clock, ampm) = match t.rsplit_once(' ') {
                    Some((c, ap)) => (c, Some(ap.to_ascii_lowercase())),
                    None => (t, None),
                };
                let hms: Vec<&str> = clock.split(':').collect();
                if hms.len() < 2 || hms.len() > 3 {
                    return None;
                }
                let mut h: i64 = hms[0].parse().ok()?;
                let mi: i64 = hms[1].parse().ok()?;
                let sec: i64 = hms.get(2).map_or(Some(0), |x| x.parse().ok())?;
                match ampm.as_deref() {
                    Some("am") if (1..=12).contains(&h) => h %= 12,
                    Some("pm") if (1..=12).contains(&h) => h = h % 12 + 12,
                    None if (0..24).contains(&h) => {}
                    _ => return None,
                }
                if !(0..60).contains(&mi) || !(0..60).contains(&sec) {
                    return None;
                }
                let at = start + ((h * 60 + mi) * 60 + sec) * 1000;
                let width = if hms.len() == 3 { 1000 } else { 60_000 };
                Some((at, at + width))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Number,
    String,
    Boolean,
    Date,
    DateTime,
}

/// A field value as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Null,
    Num(f64),
    Str(String),
    Bool(bool),
    Time(Millis),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn syntax(pos: usize) -> NsError {
    NsError::invalid_parameter("q", format!("{PREFIX} Syntax error at position {pos}."))
}

fn tokenize(q: &str) -> Result<Vec<(usize, Tok)>, NsError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = q.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((pos, Tok::LParen));
                i += 1
            }
            ')' => {
                out.push((pos, Tok::RParen));
                i += 1
            }
            '[' => {
                out.push((pos, Tok::LBracket));
                i += 1
            }
            ']' => {
                out.push((pos, Tok::RBracket));
                i += 1
            }
            ',' => {
                out.push((pos, Tok::Comma));
                i += 1
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&(_, c)) = chars.get(i) else {
                        return Err(syntax(pos));
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    s.push(c);
                }
                out.push((pos, Tok::Quoted(s)));
            }
            _ => {
                let mut s = String::new();
                while let Some(&(_, c)) = chars.get(i) {
                    if c.is_whitespace() || "()[],\"'".contains(c) {
                        break;
                    }
                    s.push(c);
                    i += 1;
                }
                out.push((pos, Tok::Word(s)));
            }
        }
    }
    Ok(out)
}

/// Parsed filter, before binding to a record type.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cond {
        field: String,
        op: String,
        values: Vec<String>,
    },
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.len, |t| t.0)
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn expr(&mut self) -> Result<Expr, NsError> {
        let mut terms = vec![self.term()?];
        while self.keyword("OR") {
            self.i += 1;
            terms.push(self.term()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }
    fn term(&mut self) -> Result<Expr, NsError> {
        let mut fs = vec![self.factor()?];
        while self.keyword("AND") {
            self.i += 1;
            fs.push(self.factor()?);
        }
        Ok(if fs.len() == 1 {
            fs.remove(0)
        } else {
            Expr::And(fs)
        })
    }
    fn value(&mut self) -> Result<String, NsError> {
        match self.toks.get(self.i).cloned() {
            Some((_, Tok::Word(w))) | Some((_, Tok::Quoted(w))) => {
                self.i += 1;
                Ok(w)
            }
            _ => Err(syntax(self.pos())),
        }
    }
    fn factor(&mut self) -> Result<Expr, NsError> {
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let e = self.expr()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(syntax(self.pos()));
            }
            self.i += 1;
            return Ok(e);
        }
        let field = match self.peek() {
            Some(Tok::Word(w)) => w.clone(),
            _ => return Err(syntax(self.pos())),
        };
        self.i += 1;
        let op = match self.peek() {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(syntax(self.pos())),
        };
        self.i += 1;
        let mut values = Vec::new();
        if op == "EMPTY" || op == "EMPTY_NOT" {
            return Ok(Expr::Cond { field, op, values });
        }
        let bracketed = self.peek() == Some(&Tok::LBracket);
        if bracketed {
            self.i += 1;
        }
        values.push(self.value()?);
        let multi =
            op.starts_with("ANY_OF") || op.starts_with("BETWEEN") || op.starts_with("WITHIN");
        while multi && self.peek() == Some(&Tok::Comma) {
            self.i += 1;
            values.push(self.value()?);
        }
        if bracketed {
            if self.peek() != Some(&Tok::RBracket) {
                return Err(syntax(self.pos()));
            }
            self.i += 1;
        }
        Ok(Expr::Cond { field, op, values })
    }
}

pub fn parse(q: &str) -> Result<Expr, NsError> {
    let toks = tokenize(q)?;
    if toks.is_empty() {
        return Err(syntax(0));
    }
    let mut p = Parser {
        toks,
        i: 0,
        len: q.len(),
    };
    let e = p.expr()?;
    if p.i != p.toks.len() {
        return Err(syntax(p.pos()));
    }
    Ok(e)
}

/// A filter bound to a record type: field names resolved, values parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Empty {
        field: String,
        negate: bool,
    },
    Num {
        field: String,
        op: NumOp,
        vals: Vec<f64>,
        negate: bool,
    },
    Str {
        field: String,
        op: StrOp,
        val: String,
        negate: bool,
    },
    Bool {
        field: String,
        val: bool,
        negate: bool,
    },
    Time {
        field: String,
        op: TimeOp,
        lo: Millis,
        hi: Millis,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    AnyOf,
    Between,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contain,
    Is,
    StartWith,
    EndWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    After,
    Before,
    On,
    OnOrAfter,
    OnOrBefore,
}

/// Binding context: which fields exist and how dates are written.
pub struct Schema<'a> {
    pub record_type: &'a str,
    pub fields: &'a [(&'a str, FieldType)],
    pub date_format: DateFormat,
    /// The account's time zone: a date or time in `q` is wall-clock time there.
    pub time_zone: TimeZone,
}

pub fn bind(e: &Expr, s: &Schema<'_>) -> Result<Pred, NsError> {
    match e {
        Expr::And(xs) => Ok(Pred::And(
            xs.iter().map(|x| bind(x, s)).collect::<Result<_, _>>()?,
        )),
        Expr::Or(xs) => Ok(Pred::Or(
            xs.iter().map(|x| bind(x, s)).collect::<Result<_, _>>()?,
        )),
        Expr::Cond { field, op, values } => bind_cond(field, op, values, s),
    }
}

fn bind_cond(field: &str, op: &str, values: &[String], s: &Schema<'_>) -> Result<Pred, NsError> {
    let Some(&(name, ftype)) = s.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(field)) else {
        return Err(NsError::invalid_parameter(
            "q",
            format!(
                "{PREFIX} Search error occurred: Field '{field}' for record '{}' was not found. Reason: NOT_EXPOSED - Not available for search",
                s.record_type
            ),
        ));
    };
    let field = name.to_string();
    let (base, negate) = match op.strip_suffix("_NOT") {
        Some(b) => (b, true),
        None => (op, false),
    };
    let bad_op = || {
        NsError::invalid_parameter(
            "q",
            format!(
                "{PREFIX} Search error occurred: Invalid search operator '{op}' for field '{field}'."
            ),
        )
    };
    if base == "EMPTY" {
        return Ok(Pred::Empty { field, negate });
    }
    let one = |n: usize| -> Result<(), NsError> {
        if values.len() == n {
            Ok(())
        } else {
            Err(bad_op())
        }
    };
    match ftype {
        FieldType::Number => {
            let op = match base {
                "ANY_OF" => NumOp::AnyOf,
                "BETWEEN" | "WITHIN" => NumOp::Between,
                "EQUAL" => NumOp::Equal,
                "GREATER" => NumOp::Greater,
                "GREATER_OR_EQUAL" => NumOp::GreaterOrEqual,
                "LESS" => NumOp::Less,
                "LESS_OR_EQUAL" => NumOp::LessOrEqual,
                _ => return Err(bad_op()),
            };
            match op {
                NumOp::AnyOf => {}
                NumOp::Between => one(2)?,
                _ => one(1)?,
            }
            let vals = values
                .iter()
                .map(|v| {
                    v.trim().parse::<f64>().map_err(|_| {
                        NsError::invalid_parameter(
                            "q",
                            format!("{PREFIX} Search error occurred: Invalid number: \"{v}\""),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Pred::Num {
                field,
                op,
                vals,
                negate,
            })
        }
        FieldType::String => {
            let op = match base {
                "CONTAIN" => StrOp::Contain,
                "IS" => StrOp::Is,
                "START_WITH" => StrOp::StartWith,
                "END_WITH" => StrOp::EndWith,
                _ => return Err(bad_op()),
            };
            one(1)?;
            Ok(Pred::Str {
                field,
                op,
                val: values[0].to_lowercase(),
                negate,
            })
        }
        FieldType::Boolean => {
            if base != "IS" {
                return Err(bad_op());
            }
            one(1)?;
            let val = match values[0].to_ascii_lowercase().as_str() {
                "true" | "t" => true,
                "false" | "f" => false,
                _ => return Err(bad_op()),
            };
            Ok(Pred::Bool { field, val, negate })
        }
        FieldType::Date | FieldType::DateTime => {
            let op = match base {
                "AFTER" => TimeOp::After,
                "BEFORE" => TimeOp::Before,
                "ON" => TimeOp::On,
                "ON_OR_AFTER" => TimeOp::OnOrAfter,
                "ON_OR_BEFORE" => TimeOp::OnOrBefore,
                _ => return Err(bad_op()),
            };
            one(1)?;
            let (lo, hi) = s.date_format.parse_value(&values[0]).ok_or_else(|| {
                NsError::invalid_parameter(
                    "q",
                    format!("{PREFIX} Unparseable date: \"{}\"", values[0]),
                )
            })?;
            // A datetime field holds instants: the wall-clock interval is read in the
            // account's time zone (a day starts at its local midnight, whatever daylight time
            // does to its length). Date fields are calendar dates, not converted ("Date field
            // values are not subject to any time zone conversion", section_157305090645).
            let (lo, hi) = if ftype == FieldType::DateTime {
                (s.time_zone.resolve(lo), s.time_zone.resolve(hi))
            } else {
                (lo, hi)
            };
            Ok(Pred::Time {
                field,
                op,
                lo,
                hi,
                negate,
            })
        }
    }
}

impl Pred {
    pub fn eval(&self, get: &dyn Fn(&str) -> FieldValue) -> bool {
        match self {
            Pred::And(xs) => xs.iter().all(|x| x.eval(get)),
            Pred::Or(xs) => xs.iter().any(|x| x.eval(get)),
            Pred::Empty { field, negate } => {
                let empty = matches!(get(field), FieldValue::Null)
                    || matches!(get(field), FieldValue::Str(s) if s.is_empty());
                empty != *negate
            }
            Pred::Num {
                field,
                op,
                vals,
                negate,
            } => {
                let r = match get(field) {
                    FieldValue::Num(x) => match op {
                        NumOp::AnyOf => vals.contains(&x),
                        NumOp::Between => x >= vals[0] && x <= vals[1],
                        NumOp::Equal => x == vals[0],
                        NumOp::Greater => x > vals[0],
                        NumOp::GreaterOrEqual => x >= vals[0],
                        NumOp::Less => x < vals[0],
                        NumOp::LessOrEqual => x <= vals[0],
                    },
                    _ => false,
                };
                r != *negate
            }
            Pred::Str {
                field,
                op,
                val,
                negate,
            } => {
                let r = match get(field) {
                    FieldValue::Str(s) => {
                        let s = s.to_lowercase();
                        match op {
                            StrOp::Contain => s.contains(val.as_str()),
                            StrOp::Is => s == *val,
                            StrOp::StartWith => s.starts_with(val.as_str()),
                            StrOp::EndWith => s.ends_with(val.as_str()),
                        }
                    }
                    _ => false,
                };
                r != *negate
            }
            Pred::Bool { field, val, negate } => {
                (matches!(get(field), FieldValue::Bool(b) if b == *val)) != *negate
            }
            Pred::Time {
                field,
                op,
                lo,
                hi,
                negate,
            } => {
                let r = match get(field) {
                    FieldValue::Time(t) => time_match(*op, *lo, *hi, t),
                    _ => false,
                };
                r != *negate
            }
        }
    }

    /// Bounds on `field` implied by a conjunction, and whether they capture the predicate exactly
    /// (then the index range alone answers the query, without building any record).
    pub fn time_bounds(&self, field: &str) -> (Bound<Millis>, Bound<Millis>, bool) {
        let conds: Vec<&Pred> = match self {
            Pred::And(xs) => xs.iter().collect(),
            p => vec![p],
        };
        let mut lo = Bound::Unbounded;
        let mut hi = Bound::Unbounded;
        let mut exact = true;
        for c in conds {
            match c {
                Pred::Time {
                    field: f,
                    op,
                    lo: a,
                    hi: b,
                    negate: false,
                } if f == field => {
                    let (l, h) = match op {
                        TimeOp::After => (Bound::Included(*b), Bound::Unbounded),
                        TimeOp::OnOrAfter => (Bound::Included(*a), Bound::Unbounded),
                        TimeOp::Before => (Bound::Unbounded, Bound::Excluded(*a)),
                        TimeOp::OnOrBefore => (Bound::Unbounded, Bound::Excluded(*b)),
                        TimeOp::On => (Bound::Included(*a), Bound::Excluded(*b)),
                    };
                    lo = tighter_lo(lo, l);
                    hi = tighter_hi(hi, h);
                }
                _ => exact = false,
            }
        }
        (lo, hi, exact)
    }
}

fn time_match(op: TimeOp, lo: Millis, hi: Millis, t: Millis) -> bool {
    match op {
        TimeOp::On => t >= lo && t < hi,
        TimeOp::After => t >= hi,
        TimeOp::Before => t < lo,
        TimeOp::OnOrAfter => t >= lo,
        TimeOp::OnOrBefore => t < hi,
    }
}

fn tighter_lo(a: Bound<Millis>, b: Bound<Millis>) -> Bound<Millis> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.max(y)),
        (x, _) => x,
    }
}

fn tighter_hi(a: Bound<Millis>, b: Bound<Millis>) -> Bound<Millis> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.min(y)),
        (x, _) => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [(&str, FieldType); 4] = [
        ("id", FieldType::Number),
        ("lastModifiedDate", FieldType::DateTime),
        ("tranId", FieldType::String),
        ("isInactive", FieldType::Boolean),
    ];

    fn schema() -> Schema<'static> {
        Schema {
            record_type: "purchaseOrder",
            fields: &FIELDS,
            date_format: DateFormat::Mdy,
            time_zone: TimeZone::UTC,
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let e = parse(
            r#"lastModifiedDate ON_OR_AFTER "1/15/2024" AND lastModifiedDate BEFORE "1/16/2024""#,
        )
        .unwrap();
        let p = bind(&e, &schema()).unwrap();
        let day = date_ms(2024, 1, 15).unwrap();
        let (lo, hi, exact) = p.time_bounds("lastModifiedDate");
        assert_eq!(
            (lo, hi, exact),
            (
                Bound::Included(day),
                Bound::Excluded(day + 86_400_000),
                true
            )
        );
        assert!(p.eval(&|_| FieldValue::Time(day + 5)));
        assert!(!p.eval(&|_| FieldValue::Time(day + 86_400_000)));
    }

    #[test]
    fn dates_follow_the_preference() {
        let e = parse(r#"lastModifiedDate AFTER "2024-01-15""#).unwrap();
        let err = bind(&e, &schema()).unwrap_err();
        assert!(err.body().to_string().contains("Unparseable date"));
        let iso = Schema {
            date_format: DateFormat::Ymd,
            ..schema()
        };
        assert!(bind(&e, &iso).is_ok());
        assert_eq!(DateFormat::Mdy.parse_value("13/1/2024"), None);
        let (a, b) = DateFormat::Mdy.parse_value("1/15/2024 1:30 pm").unwrap();
        assert_eq!(
            a,
            date_ms(2024, 1, 15).unwrap() + 13 * 3_600_000 + 1_800_000
        );
        assert_eq!(b - a, 60_000);
    }

    #[test]
    fn operators_and_errors() {
        let p = bind(
            &parse("id ANY_OF [1, 3] OR (tranId START_WITH po AND isInactive IS false)").unwrap(),
            &schema(),
        )
        .unwrap();
        let rec = |id: f64, t: &str| {
            let t = t.to_string();
            move |f: &str| match f {
                "id" => FieldValue::Num(id),
                "tranId" => FieldValue::Str(t.clone()),
                "isInactive" => FieldValue::Bool(false),
                _ => FieldValue::Null,
            }
        };
        assert!(p.eval(&rec(3.0, "x")));
        assert!(p.eval(&rec(2.0, "PO1")));
        assert!(!p.eval(&rec(2.0, "X1")));
        assert!(bind(&parse("nope IS 1").unwrap(), &schema()).is_err());
        assert!(bind(&parse("id CONTAIN 1").unwrap(), &schema()).is_err());
        assert!(bind(&parse("id EQUAL abc").unwrap(), &schema()).is_err());
        assert!(parse("id EQUAL").is_err());
        assert!(parse("(id EQUAL 1").is_err());
        assert!(parse("id EQUAL \"1").is_err());
        assert!(parse("").is_err());
        let not = bind(&parse("id EQUAL_NOT 1").unwrap(), &schema()).unwrap();
        assert!(not.eval(&rec(2.0, "")));
    }
}
