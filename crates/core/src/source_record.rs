//! One record as the source system sent it: its own JSON text, kept byte for byte while it
//! waits in a page (never a parsed tree), parsed one record at a time when it is mapped.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// A source record's JSON text. A page of these costs about its size in text, where a page
/// of parsed `Value` trees costs six to seven times more; and the raw payload stored for
/// `remote_data` is the source's own bytes, not a re-serialization.
#[derive(Debug, Clone)]
pub struct SourceRecord(Box<RawValue>);

impl SourceRecord {
    /// A record cut out of the source's answer as it was sent.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        SourceRecord(raw)
    }

    /// A record a connector assembled itself (from several answers, say): its text is the
    /// value's compact JSON.
    pub fn from_value(value: &Value) -> Self {
        // Serializing a `Value` cannot fail (its keys are strings): the default (`null`)
        // is unreachable.
        SourceRecord(serde_json::value::to_raw_value(value).unwrap_or_default())
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the text is empty (never, for a record parsed out of JSON).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// The record as a tree, for mapping it (one record at a time).
    pub fn parse(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Just the members a connector needs (its key, its change time), without building the
    /// rest: serde skips the members `T` does not name.
    pub fn view<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The text, moved out without a copy.
    pub fn into_string(self) -> String {
        let text: Box<str> = self.0.into();
        text.into()
    }
}

impl From<Value> for SourceRecord {
    fn from(value: Value) -> Self {
        SourceRecord::from_value(&value)
    }
}

impl From<Box<RawValue>> for SourceRecord {
    fn from(raw: Box<RawValue>) -> Self {
        SourceRecord(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_sources_bytes() {
        let text = r#"{ "b": 1.50, "a": "x\u00e9" }"#;
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let record = SourceRecord::from_raw(raw);
        assert_eq!(record.text(), text);
        assert_eq!(record.len(), text.len());
        assert_eq!(record.parse().unwrap()["a"], "xé");
        assert_eq!(record.clone().into_string(), text);
    }

    #[test]
    fn views_only_what_is_asked() {
        #[derive(serde::Deserialize)]
        struct Key {
            id: String,
        }
        let record = SourceRecord::from_value(&serde_json::json!({"id": "7", "lines": [1, 2]}));
        assert_eq!(record.text(), r#"{"id":"7","lines":[1,2]}"#);
        assert_eq!(record.view::<Key>().unwrap().id, "7");
    }
}
