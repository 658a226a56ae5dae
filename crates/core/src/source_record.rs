//! One record as the source system sent it: its own JSON text, kept byte for byte while it
//! waits in a page (never a parsed tree), parsed one record at a time when it is mapped.

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

/// A source record's JSON text. A page of these costs its answer's size, once: a record cut
/// out of an answer shares the answer's buffer (no copy), where a page of parsed `Value`
/// trees costs six to seven times more. The raw payload stored for `remote_data` is the
/// source's own bytes, not a re-serialization.
#[derive(Debug, Clone)]
pub struct SourceRecord(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// Text of its own (a record a connector assembled).
    Own(Box<str>),
    /// A slice of the answer it was cut from, checked to be UTF-8 JSON when it was cut.
    Shared(Bytes),
}

impl SourceRecord {
    /// The records `raw` found in `body` (borrowed from it by a parse of `body`), each as a
    /// slice of `body`'s buffer. A value not borrowed from `body` is copied instead.
    pub fn cut(body: &Bytes, raw: &[&RawValue]) -> Vec<SourceRecord> {
        let start = body.as_ptr() as usize;
        raw.iter()
            .map(|r| {
                let text = r.get();
                let offset = (text.as_ptr() as usize).wrapping_sub(start);
                match offset.checked_add(text.len()) {
                    Some(end) if offset < body.len() && end <= body.len() => {
                        SourceRecord(Repr::Shared(body.slice(offset..end)))
                    }
                    _ => SourceRecord(Repr::Own(text.into())),
                }
            })
            .collect()
    }

    /// A record a connector assembled itself (from several answers, say): its text is the
    /// value's compact JSON.
    pub fn from_value(value: &Value) -> Self {
        SourceRecord(Repr::Own(value.to_string().into()))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        match &self.0 {
            Repr::Own(text) => text,
            // Checked when it was cut (serde_json reads only UTF-8): never empty in practice.
            Repr::Shared(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Own(text) => text.len(),
            Repr::Shared(bytes) => bytes.len(),
        }
    }

    /// Whether the text is empty (never, for a record parsed out of JSON).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record as a tree, for mapping it (one record at a time).
    pub fn parse(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.text())
    }

    /// The text as an owned string (moved when it has its own, copied out of a shared
    /// answer otherwise, so the answer's buffer is freed with the page).
    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Own(text) => text.into(),
            Repr::Shared(_) => self.text().to_string(),
        }
    }
}

impl From<Value> for SourceRecord {
    fn from(value: Value) -> Self {
        SourceRecord::from_value(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_sources_bytes() {
        let text = r#"{ "b": 1.50, "a": "x\u00e9" }"#;
        let body = Bytes::from_static(text.as_bytes());
        let raw: &RawValue = serde_json::from_slice(&body).unwrap();
        let record = SourceRecord::cut(&body, &[raw]).remove(0);
        assert_eq!(record.text(), text);
        assert_eq!(record.len(), text.len());
        assert_eq!(record.parse().unwrap()["a"], "xé");
        assert_eq!(record.clone().into_string(), text);
    }

    #[test]
    fn records_cut_from_an_answer_share_its_buffer() {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            value: Vec<&'a RawValue>,
        }
        let body = Bytes::from_static(br#"{"value":[ {"id":"1","d":"\/Date(5)\/"} ,{"id":"2"}]}"#);
        let page: Page<'_> = serde_json::from_slice(&body).unwrap();
        let records = SourceRecord::cut(&body, &page.value);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].text(), r#"{"id":"1","d":"\/Date(5)\/"}"#);
        assert_eq!(records[1].text(), r#"{"id":"2"}"#);
        assert!(
            matches!(&records[0].0, Repr::Shared(b) if b.as_ptr() as usize > body.as_ptr() as usize)
        );
        assert_eq!(records[0].parse().unwrap()["d"], "/Date(5)/");
        // A value from elsewhere is copied, not sliced out of a buffer it is not in.
        let elsewhere: &RawValue = serde_json::from_str(r#"{"id":"3"}"#).unwrap();
        let copied = SourceRecord::cut(&body, &[elsewhere]);
        assert!(matches!(&copied[0].0, Repr::Own(_)));
        assert_eq!(copied[0].text(), r#"{"id":"3"}"#);
    }

    #[test]
    fn an_assembled_record_is_its_compact_text() {
        let record = SourceRecord::from_value(&serde_json::json!({"id": "7", "lines": [1, 2]}));
        assert_eq!(record.text(), r#"{"id":"7","lines":[1,2]}"#);
        assert_eq!(record.clone().into_string(), r#"{"id":"7","lines":[1,2]}"#);
    }
}
