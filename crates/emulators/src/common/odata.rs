//! OData `$filter` and `$orderby` parsing and evaluation, shared by the SAP (V2 literals such as
//! `datetimeoffset'…'`) and Business Central (V4 bare literals) emulators.

use std::cmp::Ordering;
use std::ops::Bound;

use super::table::UNSET;

use super::clock::{Millis, parse_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V4,
}

/// A property or literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum OVal {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
    Time(Millis),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp(Operand, Cmp, Operand),
    /// A boolean-valued operand on its own (`substringof(...)`, a boolean property).
    Test(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Prop(String),
    Lit(OVal),
    Call(String, Vec<Operand>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Typed(String, String),
    Num(f64),
    LParen,
    RParen,
    Comma,
}

/// Error with the offending position, for the system's own error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
}

fn perr(msg: impl Into<String>) -> ParseError {
    ParseError {
        message: msg.into(),
    }
}

fn tokenize(s: &str, v: Version) -> Result<Vec<Tok>, ParseError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize| -> Result<String, ParseError> {
        // Opening quote at c[*i]; '' is an escaped quote.
        let mut val = String::new();
        *i += 1;
        loop {
            match c.get(*i) {
                None => return Err(perr("Unterminated string literal")),
                Some('\'') if c.get(*i + 1) == Some(&'\'') => {
                    val.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(val);
                }
                Some(ch) => {
                    val.push(*ch);
                    *i += 1;
                }
            }
        }
    };
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if ch == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if ch == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if ch == '\'' {
            out.push(Tok::Str(quoted(&mut i)?));
        } else if v == Version::V4 && is_guid_at(&c, i) {
            // V4 writes GUIDs bare: 5d115c9c-44e3-ea11-bb43-000d3a2feca1.
            out.push(Tok::Str(
                c[i..i + 36].iter().collect::<String>().to_ascii_lowercase(),
            ));
            i += 36;
        } else if ch.is_ascii_digit()
            || (ch == '-' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < c.len()
                && (c[i].is_ascii_alphanumeric() || matches!(c[i], '.' | ':' | '-' | '+'))
            {
                i += 1;
            }
            let text: String = c[start..i].iter().collect();
            // V4 writes dates and datetimes bare.
            if v == Version::V4 && text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
                let ms = parse_rfc3339(&text)
                    .or_else(|| parse_rfc3339(&format!("{text}T00:00:00Z")))
                    .ok_or_else(|| perr(format!("Invalid date/time literal {text}")))?;
                out.push(Tok::Typed("datetimeoffset".into(), ms.to_string()));
                continue;
            }
            let t = text.trim_end_matches(['M', 'm', 'L', 'l', 'd', 'D', 'f', 'F']);
            out.push(Tok::Num(
                t.parse()
                    .map_err(|_| perr(format!("Invalid number {text}")))?,
            ));
        } else if ch.is_alphabetic() || ch == '_' || ch == '$' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | '/' | '.' | '$')) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            if c.get(i) == Some(&'\'') && v == Version::V2 {
                let val = quoted(&mut i)?;
                out.push(Tok::Typed(word.to_ascii_lowercase(), val));
            } else {
                out.push(Tok::Word(word));
            }
        } else {
            return Err(perr(format!("Unexpected character '{ch}' at position {i}")));
        }
    }
    Ok(out)
}

fn is_guid_at(c: &[char], i: usize) -> bool {
    if i + 36 > c.len() || c.get(i + 36).is_some_and(|x| x.is_ascii_alphanumeric()) {
        return false;
    }
    (0..36).all(|k| {
        let ch = c[i + k];
        if matches!(k, 8 | 13 | 18 | 23) {
            ch == '-'
        } else {
            ch.is_ascii_hexdigit()
        }
    })
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

impl P {
    fn kw(&self, k: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn or(&mut self) -> Result<Filter, ParseError> {
        let mut l = self.and()?;
        while self.kw("or") {
            self.i += 1;
            l = Filter::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Filter, ParseError> {
        let mut l = self.not()?;
        while self.kw("and") {
            self.i += 1;
            l = Filter::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Filter, ParseError> {
        if self.kw("not") {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Filter, ParseError> {
        if self.t.get(self.i) == Some(&Tok::LParen) {
            // A parenthesised boolean expression.
            let save = self.i;
            self.i += 1;
            if let Ok(f) = self.or()
                && self.t.get(self.i) == Some(&Tok::RParen)
            {
                self.i += 1;
                return Ok(f);
            }
            self.i = save;
        }
        let l = self.operand()?;
        let op = match self.t.get(self.i) {
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "eq" => Some(Cmp::Eq),
                "ne" => Some(Cmp::Ne),
                "gt" => Some(Cmp::Gt),
                "ge" => Some(Cmp::Ge),
                "lt" => Some(Cmp::Lt),
                "le" => Some(Cmp::Le),
                _ => None,
            },
            _ => None,
        };
        match op {
            Some(op) => {
                self.i += 1;
                let r = self.operand()?;
                Ok(Filter::Cmp(l, op, r))
            }
            None => Ok(Filter::Test(l)),
        }
    }
    fn operand(&mut self) -> Result<Operand, ParseError> {
        let t = self
            .t
            .get(self.i)
            .cloned()
            .ok_or_else(|| perr("Unexpected end of expression"))?;
        self.i += 1;
        Ok(match t {
            Tok::Str(s) => Operand::Lit(OVal::Str(s)),
            Tok::Num(n) => Operand::Lit(OVal::Num(n)),
            Tok::Typed(kind, val) => Operand::Lit(typed(&kind, &val)?),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Operand::Lit(OVal::Null),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Operand::Lit(OVal::Bool(true)),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Operand::Lit(OVal::Bool(false)),
            Tok::Word(w) => {
                if self.t.get(self.i) == Some(&Tok::LParen) {
                    self.i += 1;
                    let mut args = Vec::new();
                    if self.t.get(self.i) != Some(&Tok::RParen) {
                        loop {
                            args.push(self.operand()?);
                            match self.t.get(self.i) {
                                Some(Tok::Comma) => self.i += 1,
                                Some(Tok::RParen) => break,
                                _ => return Err(perr("Expected ',' or ')'")),
                            }
                        }
                    }
                    self.i += 1;
                    Operand::Call(w.to_ascii_lowercase(), args)
                } else {
                    Operand::Prop(w)
                }
            }
            Tok::LParen => {
                let o = self.operand()?;
                if self.t.get(self.i) != Some(&Tok::RParen) {
                    return Err(perr("Expected ')'"));
                }
                self.i += 1;
                o
            }
            other => return Err(perr(format!("Unexpected token {other:?}"))),
        })
    }
}

fn typed(kind: &str, val: &str) -> Result<OVal, ParseError> {
    match kind {
        "datetimeoffset" => {
            if let Ok(ms) = val.parse::<i64>() {
                return Ok(OVal::Time(ms));
            }
            parse_rfc3339(val)
                .map(OVal::Time)
                .ok_or_else(|| perr(format!("Invalid datetimeoffset literal '{val}'")))
        }
        // Edm.DateTime has no offset: UTC is assumed.
        "datetime" => parse_rfc3339(&format!("{val}Z"))
            .or_else(|| parse_rfc3339(&format!("{val}:00Z")))
            .map(OVal::Time)
            .ok_or_else(|| perr(format!("Invalid datetime literal '{val}'"))),
        "guid" => Ok(OVal::Str(val.to_ascii_lowercase())),
        "time" => Ok(OVal::Str(val.to_string())),
        other => Err(perr(format!("Unknown literal type {other}"))),
    }
}

pub fn parse_filter(s: &str, v: Version) -> Result<Filter, ParseError> {
    let t = tokenize(s, v)?;
    if t.is_empty() {
        return Err(perr("Empty filter expression"));
    }
    let mut p = P { t, i: 0 };
    let f = p.or()?;
    if p.i != p.t.len() {
        return Err(perr(format!("Unexpected token at {}", p.i)));
    }
    Ok(f)
}

/// Property names used anywhere in the filter (to validate them against the entity type).
pub fn properties(f: &Filter, out: &mut Vec<String>) {
    fn op(o: &Operand, out: &mut Vec<String>) {
        match o {
            Operand::Prop(p) => out.push(p.clone()),
            Operand::Call(_, a) => a.iter().for_each(|x| op(x, out)),
            Operand::Lit(_) => {}
        }
    }
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            properties(a, out);
            properties(b, out);
        }
        Filter::Not(a) => properties(a, out),
        Filter::Cmp(a, _, b) => {
            op(a, out);
            op(b, out);
        }
        Filter::Test(a) => op(a, out),
    }
}

pub fn compare(a: &OVal, b: &OVal) -> Option<Ordering> {
    match (a, b) {
        (OVal::Str(x), OVal::Str(y)) => Some(x.cmp(y)),
        (OVal::Num(x), OVal::Num(y)) => x.partial_cmp(y),
        (OVal::Str(x), OVal::Num(y)) => x.parse::<f64>().ok()?.partial_cmp(y),
        (OVal::Num(x), OVal::Str(y)) => x.partial_cmp(&y.parse::<f64>().ok()?),
        (OVal::Bool(x), OVal::Bool(y)) => Some(x.cmp(y)),
        (OVal::Time(x), OVal::Time(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn value(o: &Operand, get: &dyn Fn(&str) -> OVal) -> OVal {
    match o {
        Operand::Prop(p) => get(p),
        Operand::Lit(v) => v.clone(),
        Operand::Call(name, args) => {
            let a: Vec<OVal> = args.iter().map(|x| value(x, get)).collect();
            let s = |i: usize| match a.get(i) {
                Some(OVal::Str(s)) => Some(s.clone()),
                _ => None,
            };
            match name.as_str() {
                // V2: substringof('needle', Field); V4: contains(Field, 'needle').
                "substringof" => match (s(0), s(1)) {
                    (Some(n), Some(h)) => OVal::Bool(h.contains(&n)),
                    _ => OVal::Null,
                },
                "contains" => match (s(0), s(1)) {
                    (Some(h), Some(n)) => OVal::Bool(h.contains(&n)),
                    _ => OVal::Null,
                },
                "startswith" => match (s(0), s(1)) {
                    (Some(h), Some(n)) => OVal::Bool(h.starts_with(&n)),
                    _ => OVal::Null,
                },
                "endswith" => match (s(0), s(1)) {
                    (Some(h), Some(n)) => OVal::Bool(h.ends_with(&n)),
                    _ => OVal::Null,
                },
                "tolower" => s(0).map_or(OVal::Null, |x| OVal::Str(x.to_lowercase())),
                "toupper" => s(0).map_or(OVal::Null, |x| OVal::Str(x.to_uppercase())),
                _ => OVal::Null,
            }
        }
    }
}

/// Functions the evaluator knows; anything else is rejected at parse-validation time.
pub const FUNCTIONS: [&str; 6] = [
    "substringof",
    "contains",
    "startswith",
    "endswith",
    "tolower",
    "toupper",
];

pub fn functions(f: &Filter, out: &mut Vec<String>) {
    fn op(o: &Operand, out: &mut Vec<String>) {
        if let Operand::Call(n, a) = o {
            out.push(n.clone());
            a.iter().for_each(|x| op(x, out));
        }
    }
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            functions(a, out);
            functions(b, out);
        }
        Filter::Not(a) => functions(a, out),
        Filter::Cmp(a, _, b) => {
            op(a, out);
            op(b, out);
        }
        Filter::Test(a) => op(a, out),
    }
}

pub fn eval(f: &Filter, get: &dyn Fn(&str) -> OVal) -> bool {
    match f {
        Filter::And(a, b) => eval(a, get) && eval(b, get),
        Filter::Or(a, b) => eval(a, get) || eval(b, get),
        Filter::Not(a) => !eval(a, get),
        Filter::Test(o) => matches!(value(o, get), OVal::Bool(true)),
        Filter::Cmp(a, op, b) => {
            let (x, y) = (value(a, get), value(b, get));
            if matches!(x, OVal::Null) || matches!(y, OVal::Null) {
                let both = matches!(x, OVal::Null) && matches!(y, OVal::Null);
                return match op {
                    Cmp::Eq => both,
                    Cmp::Ne => !both,
                    _ => false,
                };
            }
            match compare(&x, &y) {
                None => false,
                Some(o) => match op {
                    Cmp::Eq => o == Ordering::Equal,
                    Cmp::Ne => o != Ordering::Equal,
                    Cmp::Gt => o == Ordering::Greater,
                    Cmp::Ge => o != Ordering::Less,
                    Cmp::Lt => o == Ordering::Less,
                    Cmp::Le => o != Ordering::Greater,
                },
            }
        }
    }
}

/// Bounds on a datetime property implied by top-level `and` conjuncts, and whether the filter is
/// nothing but those bounds (then an index range answers it exactly).
pub fn time_bounds(f: &Filter, prop: &str) -> (Bound<Millis>, Bound<Millis>, bool) {
    let mut parts = Vec::new();
    fn split<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
        match f {
            Filter::And(a, b) => {
                split(a, out);
                split(b, out);
            }
            other => out.push(other),
        }
    }
    split(f, &mut parts);
    let (mut lo, mut hi, mut exact) = (Bound::Unbounded, Bound::Unbounded, true);
    let (mut not_null, mut null) = (false, false);
    for p in parts {
        // A null time sorts first in the index (`table::UNSET`), below every real time.
        match p {
            Filter::Cmp(Operand::Prop(n), Cmp::Ne, Operand::Lit(OVal::Null)) if n == prop => {
                not_null = true;
                continue;
            }
            Filter::Cmp(Operand::Prop(n), Cmp::Eq, Operand::Lit(OVal::Null)) if n == prop => {
                null = true;
                continue;
            }
            _ => {}
        }
        let bound = match p {
            Filter::Cmp(Operand::Prop(n), op, Operand::Lit(OVal::Time(t))) if n == prop => {
                Some((*op, *t))
            }
            Filter::Cmp(Operand::Lit(OVal::Time(t)), op, Operand::Prop(n)) if n == prop => Some((
                match op {
                    Cmp::Gt => Cmp::Lt,
                    Cmp::Ge => Cmp::Le,
                    Cmp::Lt => Cmp::Gt,
                    Cmp::Le => Cmp::Ge,
                    o => *o,
                },
                *t,
            )),
            _ => None,
        };
        match bound {
            Some((Cmp::Gt, t)) if lo == Bound::Unbounded => lo = Bound::Excluded(t),
            Some((Cmp::Ge, t)) if lo == Bound::Unbounded => lo = Bound::Included(t),
            Some((Cmp::Lt, t)) if hi == Bound::Unbounded => hi = Bound::Excluded(t),
            Some((Cmp::Le, t)) if hi == Bound::Unbounded => hi = Bound::Included(t),
            Some((Cmp::Eq, t)) if lo == Bound::Unbounded && hi == Bound::Unbounded => {
                lo = Bound::Included(t);
                hi = Bound::Included(t);
            }
            _ => exact = false,
        }
    }
    if null {
        if lo == Bound::Unbounded && hi == Bound::Unbounded && !not_null {
            lo = Bound::Included(UNSET);
            hi = Bound::Included(UNSET);
        } else {
            exact = false;
        }
    } else if lo == Bound::Unbounded && (not_null || hi != Bound::Unbounded) {
        // A null compares false with every time: `lt`/`le` alone must not reach the nulls.
        lo = Bound::Excluded(UNSET);
    }
    (lo, hi, exact)
}

/// `$orderby=A asc,B desc`.
pub fn parse_orderby(s: &str) -> Result<Vec<(String, bool)>, ParseError> {
    s.split(',')
        .map(|part| {
            let mut w = part.split_whitespace();
            let name = w
                .next()
                .ok_or_else(|| perr("Empty $orderby item"))?
                .to_string();
            let asc = match w.next().map(|d| d.to_ascii_lowercase()) {
                None => true,
                Some(d) if d == "asc" => true,
                Some(d) if d == "desc" => false,
                Some(d) => return Err(perr(format!("Invalid sort direction {d}"))),
            };
            if w.next().is_some() {
                return Err(perr("Invalid $orderby"));
            }
            Ok((name, asc))
        })
        .collect()
}

/// Ordering for `$orderby`: NULLs first ascending, as SAP Gateway and BC do.
pub fn sort_cmp(a: &OVal, b: &OVal) -> Ordering {
    match (a, b) {
        (OVal::Null, OVal::Null) => Ordering::Equal,
        (OVal::Null, _) => Ordering::Less,
        (_, OVal::Null) => Ordering::Greater,
        _ => compare(a, b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> OVal {
        match name {
            "LastChangeDateTime" => OVal::Time(1_705_312_212_000),
            "PurchaseOrder" => OVal::Str("4500000197".into()),
            "Supplier" => OVal::Str("10300001".into()),
            "Flag" => OVal::Bool(true),
            _ => OVal::Null,
        }
    }

    #[test]
    fn v2_literals_and_grammar() {
        let f = parse_filter(
            "LastChangeDateTime gt datetimeoffset'2024-01-15T00:00:00Z' and (PurchaseOrder eq '4500000197' or Supplier eq 'x')",
            Version::V2,
        )
        .unwrap();
        assert!(eval(&f, &rec));
        let f = parse_filter(
            "LastChangeDateTime ge datetime'2024-01-15T09:50:12'",
            Version::V2,
        )
        .unwrap();
        assert!(eval(&f, &rec));
        let f = parse_filter(
            "LastChangeDateTime gt datetime'2024-01-15T09:50:12'",
            Version::V2,
        )
        .unwrap();
        assert!(!eval(&f, &rec), "gt excludes the boundary instant");
        let f = parse_filter("substringof('0001',Supplier) and startswith(PurchaseOrder,'45') and not (Supplier ne '10300001')", Version::V2).unwrap();
        assert!(eval(&f, &rec));
        let f = parse_filter("Flag and Missing eq null", Version::V2).unwrap();
        assert!(eval(&f, &rec));
        for bad in [
            "",
            "PurchaseOrder eq",
            "PurchaseOrder eq 'x",
            "(PurchaseOrder eq 'x'",
            "a eq datetime'nope'",
            "a # b",
            "a eq b c",
        ] {
            assert!(parse_filter(bad, Version::V2).is_err(), "{bad}");
        }
    }

    #[test]
    fn v4_bare_datetimes_and_bounds() {
        let f = parse_filter(
            "lastModifiedDateTime gt 2024-01-15T00:00:00Z and number eq '108001'",
            Version::V4,
        )
        .unwrap();
        let (lo, hi, exact) = time_bounds(&f, "lastModifiedDateTime");
        assert_eq!(
            (lo, hi, exact),
            (Bound::Excluded(1_705_276_800_000), Bound::Unbounded, false)
        );
        let f = parse_filter("id eq 5D115C9C-44e3-ea11-bb43-000d3a2feca1", Version::V4).unwrap();
        assert!(eval(&f, &|_| OVal::Str(
            "5d115c9c-44e3-ea11-bb43-000d3a2feca1".into()
        )));
        let f = parse_filter("contains(name,'Up')", Version::V4).unwrap();
        assert!(eval(&f, &|_| OVal::Str("First Up".into())));
        assert_eq!(
            parse_orderby("A asc, B desc").unwrap(),
            vec![("A".into(), true), ("B".into(), false)]
        );
        assert!(parse_orderby("A sideways").is_err());
    }
}
