//! Decimal amounts of request bodies (a purchase order line's `quantity` and `unit_price`):
//! a JSON string of digits with an optional fraction (`"12.50"`), or a JSON number. The
//! grammar is the one the document states (`PATTERN`), so a string the document forbids
//! (`"1e3"`, `"+1"`, `"1_000"`, `" 1"`) is refused here rather than read by the lenient
//! decimal parser.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// Most digits before the decimal point.
pub const MAX_INTEGER_DIGITS: usize = 15;
/// Most digits after the decimal point.
pub const MAX_FRACTION_DIGITS: usize = 10;
/// The string form, as the document states it.
pub const PATTERN: &str = r"^[0-9]{1,15}(\.[0-9]{1,10})?$";

/// Whether `text` is digits with an optional fraction, within the digit limits.
pub fn is_decimal_text(text: &str) -> bool {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    digits(int, MAX_INTEGER_DIGITS) && frac.is_none_or(|f| digits(f, MAX_FRACTION_DIGITS))
}

struct AmountVisitor;

impl AmountVisitor {
    fn text<E: de::Error>(text: &str, unexpected: Unexpected<'_>) -> Result<Decimal, E> {
        if !is_decimal_text(text) {
            return Err(E::invalid_value(unexpected, &AmountVisitor));
        }
        Decimal::from_str(text).map_err(|_| E::invalid_value(unexpected, &AmountVisitor))
    }
}

impl Visitor<'_> for AmountVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a decimal string such as \"12.50\" (at most {MAX_INTEGER_DIGITS} digits before the point and {MAX_FRACTION_DIGITS} after) or a number"
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Self::text(v, Unexpected::Str(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Self::text(&v.to_string(), Unexpected::Unsigned(v))
    }

    // A negative number is read (the writer refuses it by name, like a negative string).
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        let magnitude = Self::text(&v.unsigned_abs().to_string(), Unexpected::Signed(v))?;
        Ok(if v < 0 { -magnitude } else { magnitude })
    }

    // Its shortest decimal form must fit the same digits: `1e300` or `1e-30` is refused
    // rather than rounded.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::invalid_value(Unexpected::Float(v), &self));
        }
        let magnitude = Self::text(&v.abs().to_string(), Unexpected::Float(v))?;
        Ok(if v < 0.0 { -magnitude } else { magnitude })
    }
}

/// A decimal amount read as described in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AmountVisitor).map(Amount)
    }
}

/// Reads a required amount (`#[serde(deserialize_with = "...")]`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Amount::deserialize(d).map(|a| a.0)
}

/// Reads an optional amount; `null` is `None`.
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Option::<Amount>::deserialize(d).map(|a| a.map(|a| a.0))
}

fn branches(positive: bool) -> Vec<RefOr<Schema>> {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(PATTERN))
        .max_length(Some(MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS))
        .build();
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .maximum(Some(999_999_999_999_999.0));
    let number = if positive {
        number.exclusive_minimum(Some(0.0))
    } else {
        number.minimum(Some(0.0))
    };
    vec![text.into(), number.build().into()]
}

/// Schema of `quantity`: a decimal string or a number, greater than zero.
pub fn quantity_schema() -> Schema {
    let mut any = AnyOfBuilder::new()
        .description(Some(
            "Greater than zero: a decimal string (`\"10\"`, `\"2.5\"`; at most 15 digits before the point and 10 after) or a number whose shortest decimal form fits the same digits.",
        ))
        .examples([serde_json::json!("10")]);
    for b in branches(true) {
        any = any.item(b);
    }
    any.build().into()
}

/// Schema of `unit_price`: a decimal string or a number, not negative, or `null`.
pub fn unit_price_schema() -> Schema {
    let mut any = AnyOfBuilder::new()
        .description(Some(
            "Not negative: a decimal string (`\"12.50\"`; at most 15 digits before the point and 10 after) or a number whose shortest decimal form fits the same digits; the item's cost when absent or `null`.",
        ))
        .examples([serde_json::json!("12.50")]);
    for b in branches(false) {
        any = any.item(b);
    }
    any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    any.build().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Option<Decimal> {
        serde_json::from_str::<Amount>(json).ok().map(|a| a.0)
    }

    #[test]
    fn strings_of_digits_with_an_optional_fraction_are_read() {
        assert_eq!(read(r#""10""#), Some(Decimal::from(10)));
        assert_eq!(read(r#""12.50""#), Some(Decimal::new(1250, 2)));
        assert_eq!(read(r#""0""#), Some(Decimal::ZERO));
        assert_eq!(
            read(r#""999999999999999.9999999999""#),
            Some(Decimal::from_str("999999999999999.9999999999").unwrap())
        );
    }

    #[test]
    fn strings_the_document_forbids_are_refused() {
        for bad in [
            r#""""#,
            r#""1e3""#,
            r#""+1""#,
            r#""-1""#,
            r#""1_000""#,
            r#"" 1""#,
            r#""1.""#,
            r#"".5""#,
            r#""1.2.3""#,
            r#""abc""#,
            r#""1000000000000000""#,
            r#""1.00000000001""#,
            r#""١""#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_are_read_when_their_decimal_form_fits() {
        assert_eq!(read("2"), Some(Decimal::from(2)));
        assert_eq!(read("-2"), Some(Decimal::from(-2)));
        assert_eq!(read("12.5"), Some(Decimal::new(125, 1)));
        assert_eq!(read("0"), Some(Decimal::ZERO));
        assert_eq!(read("1e300"), None);
        assert_eq!(read("1e-30"), None);
        assert_eq!(read("1000000000000000"), None);
    }

    #[test]
    fn the_pattern_and_the_reader_agree() {
        // The document's pattern, by hand: anchored, 1-15 digits, optional 1-10 digit fraction.
        assert_eq!(PATTERN, r"^[0-9]{1,15}(\.[0-9]{1,10})?$");
        assert!(is_decimal_text("123456789012345.1234567890"));
        assert!(!is_decimal_text("1234567890123456"));
        assert!(!is_decimal_text("1.12345678901"));
    }

    #[test]
    fn optional_amounts_take_null() {
        #[derive(Deserialize)]
        struct Line {
            #[serde(default, deserialize_with = "deserialize_option")]
            price: Option<Decimal>,
        }
        let line: Line = serde_json::from_str(r#"{"price": null}"#).unwrap();
        assert_eq!(line.price, None);
        let line: Line = serde_json::from_str(r#"{"price": "1.5"}"#).unwrap();
        assert_eq!(line.price, Some(Decimal::new(15, 1)));
        assert!(serde_json::from_str::<Line>(r#"{"price": "1e1"}"#).is_err());
    }
}
