//! Reading only some paths of a JSON text: a stored source payload is parsed into a tree
//! that holds just the members an override reads, the rest skipped without being built, so
//! applying overrides costs little more than reading the text once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The paths to keep, as a tree of their segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paths {
    /// Keep this value whole.
    whole: bool,
    /// Members (or array indexes, as text) to descend into.
    children: BTreeMap<String, Paths>,
    /// For an array: what to keep of every element.
    each: Option<Box<Paths>>,
}

impl Paths {
    /// Keeps the value at a dotted path (`a.b`, `lines.0.qty`).
    pub fn add(&mut self, path: &str) {
        self.node(path).whole = true;
    }

    /// Keeps `sub`'s paths in every element of the array at `path`.
    pub fn add_each(&mut self, path: &str, sub: Paths) {
        let node = self.node(path);
        match &mut node.each {
            Some(each) => each.merge(sub),
            None => node.each = Some(Box::new(sub)),
        }
    }

    fn node(&mut self, path: &str) -> &mut Paths {
        let mut node = self;
        for part in path.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node
    }

    fn merge(&mut self, other: Paths) {
        self.whole |= other.whole;
        for (k, v) in other.children {
            self.children.entry(k).or_default().merge(v);
        }
        if let Some(each) = other.each {
            match &mut self.each {
                Some(mine) => mine.merge(*each),
                None => self.each = Some(each),
            }
        }
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        !self.whole && self.children.is_empty() && self.each.is_none()
    }

    /// `text` parsed, keeping only these paths (other members absent; skipped array elements
    /// kept as nulls so indexes still hold).
    pub fn parse(&self, text: &str) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Select(self).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

struct Select<'p>(&'p Paths);

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

/// A member name, borrowed from the text when it has no escapes.
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Select<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.0.children.get(key.as_ref()) {
                Some(child) => {
                    let v = map.next_value_seed(Select(child))?;
                    out.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let index = out.len().to_string();
            let keep = self.0.children.get(&index).or(self.0.each.as_deref());
            let next = match keep {
                Some(paths) => seq.next_element_seed(Select(paths))?,
                None => seq.next_element::<IgnoredAny>()?.map(|_| Value::Null),
            };
            match next {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_chosen_paths_are_kept() {
        let text = r#"{"id":"7","memo":"m","big":{"a":[1,2,3]},"entity":{"id":"V1","refName":"x"},
            "lines":[{"line":1,"custcol_p":"P1","rate":"2"},{"line":2,"rate":"3"}],
            "items":[{"plant":"A"},{"plant":"B"}],"esc\"aped":1}"#;
        let mut paths = Paths::default();
        paths.add("memo");
        paths.add("entity.id");
        paths.add("items.1.plant");
        let mut line = Paths::default();
        line.add("line");
        line.add("custcol_p");
        paths.add_each("lines", line);
        let v = paths.parse(text).unwrap();
        assert_eq!(
            v,
            json!({"memo": "m", "entity": {"id": "V1"},
                   "lines": [{"line": 1, "custcol_p": "P1"}, {"line": 2}],
                   "items": [null, {"plant": "B"}]})
        );
        // Paths read the same in the kept tree as in the whole one.
        let whole: Value = serde_json::from_str(text).unwrap();
        for p in ["memo", "entity.id", "items.1.plant", "lines.0.custcol_p"] {
            assert_eq!(
                crate::mapping::lookup(&v, p),
                crate::mapping::lookup(&whole, p)
            );
        }
    }

    #[test]
    fn bad_text_is_an_error_and_empty_paths_keep_an_empty_object() {
        assert!(Paths::default().parse("{\"a\":").is_err());
        assert!(Paths::default().parse("{} x").is_err());
        assert_eq!(Paths::default().parse(r#"{"a":1}"#).unwrap(), json!({}));
        assert!(Paths::default().is_empty());
    }
}
