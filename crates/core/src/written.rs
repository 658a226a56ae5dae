//! What happens to a record the source answered a write with: mapped like a synced record,
//! stored at once (so a read right after the write shows it), and rendered for the answer.
//! Also the references Ironbridge gives writes so that one whose outcome is unknown can be
//! found at the source instead of being written again.

use ironbridge_model::{Entity, Timestamp};
use serde_json::Value;

use crate::crypto::{sha256_hex, sha256_hex_joined};
use crate::ids;
use crate::mapping::MappingDef;
use crate::raw_payload::RawPayload;
use crate::service::{ServiceError, render};
use crate::source_record::SourceRecord;
use crate::store::{RecordUpsert, StoredRecord, WrittenRecord};
use crate::system::SystemDescriptor;

/// Length of a write reference: short enough for the smallest reference field of the
/// systems (SAP's "Your Reference" holds 12 characters).
pub const REFERENCE_LEN: usize = crate::connector::REFERENCE_MAX;

/// The record to store for a raw record of the source, as a sync stores it: unified body,
/// raw payload (the source's own text, moved, not copied) and the hash that tells a later
/// sync whether it changed. The record is parsed here, alone: its tree lives only while it
/// is mapped.
pub fn record_upsert(
    connection_id: &str,
    entity: Entity,
    raw: SourceRecord,
    def: &MappingDef,
) -> Result<RecordUpsert, String> {
    let tree = raw
        .parse()
        .map_err(|e| format!("the record is not JSON: {e}"))?;
    let mapped = def.apply(connection_id, &tree).map_err(|e| e.to_string())?;
    drop(tree);
    let data = Value::Object(crate::unified::complete(entity, mapped.data)).to_string();
    let text = raw.into_string();
    let content_hash = sha256_hex_joined(&[data.as_bytes(), text.as_bytes()]);
    let raw = RawPayload::compress(&text);
    Ok(RecordUpsert {
        id: ids::record_id(connection_id, entity, &mapped.remote_id),
        remote_id: mapped.remote_id,
        data,
        raw,
        content_hash,
        remote_created_at: mapped.remote_created_at,
        remote_updated_at: mapped.remote_updated_at,
        remote_was_deleted: mapped.remote_was_deleted,
    })
}

/// The point to store for a raw point of the source (an entity stored as points): the
/// unified body, its series and instant. No raw payload is kept and nothing is hashed: a
/// point is never updated, only added once.
pub fn point_upsert(
    connection_id: &str,
    entity: Entity,
    raw: &SourceRecord,
    def: &MappingDef,
) -> Result<crate::store::PointUpsert, String> {
    let ironbridge_model::Storage::Points { series, at } = entity.spec().storage else {
        return Err(format!("{} is not stored as points", entity.as_str()));
    };
    let tree = raw
        .parse()
        .map_err(|e| format!("the point is not JSON: {e}"))?;
    let mapped = def.apply(connection_id, &tree).map_err(|e| e.to_string())?;
    drop(tree);
    let data = crate::unified::complete(entity, mapped.data);
    let series_id = data
        .get(series)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the point has no `{series}`"))?
        .to_string();
    let recorded_at = data
        .get(at)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339)
        .ok_or_else(|| format!("the point has no `{at}`"))?;
    // The series and the instant are the point's key columns, and an absent value reads
    // as null: neither is repeated in the body, a third of it for a typical location.
    let mut data = data;
    data.remove(series);
    data.remove(at);
    data.retain(|_, v| !v.is_null());
    Ok(crate::store::PointUpsert {
        series_id,
        recorded_at,
        data: Value::Object(data).to_string(),
    })
}

/// A written record ready to store, and its rendering for the answer (`created_at`: when
/// Ironbridge first stored it, `now` for a new record).
pub fn prepare(
    connection_id: &str,
    system: &SystemDescriptor,
    entity: Entity,
    raw: &Value,
    created_at: Timestamp,
    now: Timestamp,
    view: Option<&crate::field_mappings::ConnectionView>,
) -> Result<(WrittenRecord, Value), ServiceError> {
    let def = system.mapping(entity).ok_or_else(|| {
        ServiceError::Corrupt(format!(
            "{} has no mapping of {}",
            system.id,
            entity.as_str()
        ))
    })?;
    let record = record_upsert(connection_id, entity, SourceRecord::from_value(raw), def)
        .map_err(ServiceError::Corrupt)?;
    let mut rendered = render(
        &StoredRecord {
            id: record.id.clone(),
            remote_id: record.remote_id.clone(),
            data: record.data.clone(),
            raw: None,
            created_at,
            modified_at: now,
            remote_created_at: record.remote_created_at,
            remote_updated_at: record.remote_updated_at,
            remote_was_deleted: record.remote_was_deleted,
        },
        false,
    )?;
    // The record is stored as the default mapping makes it; the answer shows it as this
    // connection's reads do.
    if let (Some(view), Value::Object(out)) = (view.and_then(|v| v.entity(entity)), &mut rendered) {
        view.apply(connection_id, out, raw);
    }
    Ok((
        WrittenRecord {
            entity,
            record,
            now,
            partial: system
                .read(entity)
                .is_some_and(|r| r.payload == crate::system::Payload::Partial),
        },
        rendered,
    ))
}

/// Whether what a write answers is stored: not for the sandbox, whose writes answer as a
/// real system's would and change nothing.
pub fn keeps_writes(system: &SystemDescriptor) -> bool {
    system.id != crate::sandbox::ID
}

/// The reference of a write made under an idempotency key (or a batch operation): the same
/// for every attempt of it, so a retry finds the first attempt's record at the source.
pub fn reference(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    let hex = sha256_hex(joined.as_bytes()).to_ascii_uppercase();
    format!("IB{}", &hex[..REFERENCE_LEN - 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_stable_short_and_distinct() {
        let a = reference(&["key_1", "conn_1", "k"]);
        assert_eq!(a, reference(&["key_1", "conn_1", "k"]));
        assert_eq!(a.len(), REFERENCE_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, reference(&["key_1", "conn_2", "k"]));
        // Joined with a separator: the parts' boundaries matter.
        assert_ne!(reference(&["ab", "c"]), reference(&["a", "bc"]));
    }
}
