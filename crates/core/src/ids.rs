//! Typed, prefixed ids. Records get ids derived from their source key, so the same source
//! record always has the same id, and references can be computed without a lookup.

use std::sync::Mutex;

use ironbridge_model::Entity;
use ironbridge_model::catalogue::ListSpec;

use crate::crypto::{random_bytes, sha256};

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    base32_into(bytes, &mut out);
    out
}

fn base32_into(bytes: &[u8], out: &mut String) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(CROCKFORD[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(CROCKFORD[((acc << (5 - bits)) & 31) as usize] as char);
    }
}

/// A new time-ordered id (`conn_01jdq…`): 48 bits of milliseconds then 80 random bits, so ids
/// sort by creation time and list endpoints can page by id. Within one process ids are
/// strictly increasing even within a millisecond (the random part is incremented), so events
/// keep their order.
pub fn new_id(prefix: &str, now_micros: i64) -> String {
    static LAST: Mutex<Option<(u64, u128)>> = Mutex::new(None);
    let millis = (now_micros / 1000).max(0) as u64;
    let random = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[6..].copy_from_slice(&random_bytes::<10>());
        b
    });
    let (millis, random) = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let next = match *last {
            // Same (or an earlier) millisecond in this process: one more than the last id.
            Some((ms, r)) if millis <= ms => (ms, (r + 1) & ((1u128 << 80) - 1)),
            _ => (millis, random),
        };
        *last = Some(next);
        next
    };
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random.to_be_bytes()[6..]);
    format!("{prefix}_{}", base32(&bytes))
}

/// The id of a synced record: a hash of connection, entity and source key.
pub fn record_id(connection_id: &str, entity: Entity, remote_id: &str) -> String {
    derived_id(
        entity.id_prefix(),
        &[connection_id, entity.as_str(), remote_id],
    )
}

/// The id of an element of a record's nested list (a purchase-order line): a hash of
/// connection, the list's id scope, the parent's and the element's source keys.
pub fn list_item_id(
    connection_id: &str,
    list: &ListSpec,
    parent_remote_id: &str,
    remote_id: &str,
) -> String {
    derived_id(
        list.id_prefix,
        &[connection_id, list.id_scope, parent_remote_id, remote_id],
    )
}

/// The id of a purchase-order line.
pub fn line_id(connection_id: &str, order_remote_id: &str, line_remote_id: &str) -> String {
    let lines = Entity::PURCHASE_ORDER
        .list("line_items")
        .expect("purchase orders have lines");
    list_item_id(connection_id, lines, order_remote_id, line_remote_id)
}

fn derived_id(prefix: &str, parts: &[&str]) -> String {
    // Length-prefix each part so ("a:b", "c") and ("a", "b:c") cannot collide.
    let mut input = Vec::new();
    for p in parts {
        input.extend_from_slice(&(p.len() as u64).to_be_bytes());
        input.extend_from_slice(p.as_bytes());
    }
    // The first 128 bits of the hash, straight from its bytes (ids are derived for every
    // record and line a sync reads).
    let hash = sha256(&input);
    let mut out = String::with_capacity(prefix.len() + 1 + 26);
    out.push_str(prefix);
    out.push('_');
    base32_into(&hash[..16], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_stable_and_distinct() {
        let a = record_id("conn_1", Entity::PURCHASE_ORDER, "100");
        assert_eq!(a, record_id("conn_1", Entity::PURCHASE_ORDER, "100"));
        assert!(a.starts_with("po_"));
        assert_eq!(a.len(), 3 + 26);
        assert_ne!(a, record_id("conn_2", Entity::PURCHASE_ORDER, "100"));
        assert_ne!(a, record_id("conn_1", Entity::PURCHASE_ORDER, "101"));
        assert_ne!(line_id("c", "a:b", "c"), line_id("c", "a", "b:c"));
    }

    #[test]
    fn record_ids_never_change_between_versions() {
        // Stored records and references are keyed by these: a change of derivation would
        // duplicate every record at the next sync.
        assert_eq!(
            record_id("conn_1", Entity::PURCHASE_ORDER, "100"),
            "po_6bq7x7rm1xdkrdks03gyt17ayc"
        );
        assert_eq!(
            line_id("conn_1", "100", "2"),
            "pol_x406ra7kvan09z5ag9yx5a3ytw"
        );
    }

    #[test]
    fn new_ids_sort_by_time() {
        let early = new_id("conn", 1_000_000);
        let late = new_id("conn", 2_000_000);
        assert!(early < late);
        assert_ne!(new_id("conn", 5), new_id("conn", 5));
        // Never the same id in two processes just because the clock was the same.
        assert!(new_id("conn", 0).len() > 20);
        let same_millisecond: Vec<String> = (0..100).map(|_| new_id("evt", 9_000_000)).collect();
        assert!(
            same_millisecond.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
    }
}
