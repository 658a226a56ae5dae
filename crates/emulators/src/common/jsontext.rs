//! A small JSON text writer: large pages are written straight into one buffer because building
//! `serde_json::Value` trees for them costs several times more than the rest of the request.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (runs without escapes are copied whole).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so `run..i` and `i + 1..` fall on character boundaries.
        out.push_str(&s[run..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Writes the members of one JSON object (the caller writes the braces).
pub struct Members<'a> {
    out: &'a mut String,
    first: bool,
    /// Values written in place of the ones given, by member name (properties a client set
    /// that the generated model does not hold).
    overrides: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'a> Members<'a> {
    pub fn new(out: &'a mut String) -> Self {
        Self {
            out,
            first: true,
            overrides: None,
        }
    }

    /// Members named in `overrides` are written with its values until it is cleared.
    pub fn set_overrides(&mut self, overrides: Option<serde_json::Map<String, serde_json::Value>>) {
        self.overrides = overrides;
    }

    /// Writes the override of `k`, if there is one.
    fn overridden(&mut self, k: &str) -> bool {
        let Some(v) = self.overrides.as_ref().and_then(|o| o.get(k)) else {
            return false;
        };
        let text = v.to_string();
        self.key(k).push_str(&text);
        true
    }

    /// Writes `"k":` and returns the buffer for the value.
    pub fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_str(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, k: &str, v: &str) {
        if self.overridden(k) {
            return;
        }
        let out = self.key(k);
        json_str(out, v);
    }

    /// A number as serde_json would print it (`50`, `3310.17`), `null` if not finite.
    pub fn num(&mut self, k: &str, v: f64) {
        if self.overridden(k) {
            return;
        }
        let out = self.key(k);
        if v.is_finite() {
            let _ = write!(out, "{v}");
        } else {
            out.push_str("null");
        }
    }

    pub fn int(&mut self, k: &str, v: i64) {
        if self.overridden(k) {
            return;
        }
        let out = self.key(k);
        let _ = write!(out, "{v}");
    }

    pub fn bool(&mut self, k: &str, v: bool) {
        if self.overridden(k) {
            return;
        }
        self.key(k).push_str(if v { "true" } else { "false" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut s = String::from("{");
        let mut m = Members::new(&mut s);
        m.str("a\"b", "line\nbreak \u{1} \\ é");
        m.num("n", 3310.17);
        m.num("whole", 50.0);
        m.num("nan", f64::NAN);
        m.int("i", -3);
        m.bool("t", true);
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a\"b"], "line\nbreak \u{1} \\ é");
        assert_eq!(v["n"], 3310.17);
        assert!(s.contains("\"whole\":50,"));
        assert!(v["nan"].is_null());
        assert_eq!(v["i"], -3);
    }
}
