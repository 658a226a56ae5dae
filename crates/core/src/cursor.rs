//! Opaque, tamper-evident pagination cursors. A cursor carries the last id returned and is
//! bound to the connection (or organization) and to the query's filters, so it cannot be
//! edited, replayed against another tenant, or reused with different filters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::{Keys, sha256_hex};

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// Scope: the connection or organization id.
    s: String,
    /// Fingerprint of the filters.
    q: String,
    /// Last id of the previous page.
    k: String,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor we issued, or altered.
    #[error("the cursor is malformed or was altered")]
    Tampered,
    /// Issued for another connection, entity or set of filters.
    #[error("the cursor belongs to another query; start again without a cursor")]
    OtherQuery,
}

/// A stable fingerprint of a query's filters (in a fixed order chosen by the caller).
pub fn fingerprint(parts: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (name, value) in parts {
        text.push_str(name);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())[..16].to_string()
}

/// Encodes a cursor positioned after `last_id`.
pub fn encode(keys: &Keys, scope: &str, query: &str, last_id: &str) -> String {
    let payload = Payload {
        v: 1,
        s: scope.to_string(),
        q: query.to_string(),
        k: last_id.to_string(),
    };
    // Serializing a struct of strings cannot fail.
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let tag = keys.sign_cursor(&body);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(&tag[..16])
    )
}

/// Decodes a cursor and returns the last id it carries.
pub fn decode(keys: &Keys, scope: &str, query: &str, cursor: &str) -> Result<String, CursorError> {
    let (body, tag) = cursor.split_once('.').ok_or(CursorError::Tampered)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| CursorError::Tampered)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| CursorError::Tampered)?;
    let full = keys.sign_cursor(&body);
    if tag.len() != 16 || !keys.verify_cursor(&body, &[tag.as_slice(), &full[16..]].concat()) {
        return Err(CursorError::Tampered);
    }
    let payload: Payload = serde_json::from_slice(&body).map_err(|_| CursorError::Tampered)?;
    if payload.v != 1 {
        return Err(CursorError::Tampered);
    }
    if payload.s != scope || payload.q != query {
        return Err(CursorError::OtherQuery);
    }
    Ok(payload.k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_resist_tampering() {
        let keys = Keys::from_master(&[1u8; 32]).unwrap();
        let q = fingerprint(&[("entity", "purchase_order".into())]);
        let c = encode(&keys, "conn_a", &q, "po_123");
        assert_eq!(decode(&keys, "conn_a", &q, &c).unwrap(), "po_123");
        assert_eq!(
            decode(&keys, "conn_b", &q, &c),
            Err(CursorError::OtherQuery)
        );
        let q2 = fingerprint(&[("entity", "vendor".into())]);
        assert_eq!(
            decode(&keys, "conn_a", &q2, &c),
            Err(CursorError::OtherQuery)
        );
        // Forge a payload pointing elsewhere, keep the old tag.
        let (_, tag) = c.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"v":1,"s":"conn_a","q":"x","k":"po_999"}"#);
        assert_eq!(
            decode(&keys, "conn_a", &q, &format!("{forged_body}.{tag}")),
            Err(CursorError::Tampered)
        );
        assert_eq!(
            decode(&keys, "conn_a", &q, "garbage"),
            Err(CursorError::Tampered)
        );
        assert_eq!(
            decode(&keys, "conn_a", &q, "a.b"),
            Err(CursorError::Tampered)
        );
        let other = Keys::from_master(&[2u8; 32]).unwrap();
        assert_eq!(decode(&other, "conn_a", &q, &c), Err(CursorError::Tampered));
    }
}
