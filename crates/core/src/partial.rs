//! Records a source sends in parts ([`crate::system::Payload::Partial`]): a record read, or a
//! write's answer, carries some of the source record's members, and is laid over the payload
//! already stored so that the members it lacks are kept (an ASCTrac order's status row has no
//! lines; the lines are those of the order Ironbridge wrote). The merged payload is mapped
//! like any other, so reads, field mappings and `remote_data` see one whole record.

use ironbridge_model::Entity;
use serde_json::{Map, Value};

use crate::mapping::MappingDef;
use crate::raw_payload::RawPayload;
use crate::source_record::SourceRecord;
use crate::store::RecordUpsert;

/// `part`'s members over `stored`'s: a member `part` has (even `null`) wins, one it lacks is
/// kept. Both are JSON objects; a stored payload that is not one is replaced by `part`.
pub fn overlay(stored: &str, part: &str) -> Result<String, String> {
    let part: Map<String, Value> =
        serde_json::from_str(part).map_err(|e| format!("the record is not a JSON object: {e}"))?;
    let mut merged: Map<String, Value> = match serde_json::from_str(stored) {
        Ok(m) => m,
        // A damaged stored payload cannot hold anything worth keeping.
        Err(_) => return serde_json::to_string(&part).map_err(|e| e.to_string()),
    };
    for (k, v) in part {
        merged.insert(k, v);
    }
    serde_json::to_string(&merged).map_err(|e| e.to_string())
}

/// `record` (mapped from a part) remapped from its payload laid over `stored` (the stored
/// payload's text).
pub fn merge(
    connection_id: &str,
    entity: Entity,
    def: &MappingDef,
    record: &RecordUpsert,
    stored: &str,
) -> Result<RecordUpsert, String> {
    let part = RawPayload::text(record.raw.as_bytes())?;
    let merged = overlay(stored, &part)?;
    let tree: Value = serde_json::from_str(&merged).map_err(|e| e.to_string())?;
    crate::written::record_upsert(connection_id, entity, SourceRecord::from_value(&tree), def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_wins_and_what_it_lacks_is_kept() {
        let stored = r#"{"_key":"SO1","PICKSTATUS":"N","SHIP_TO_NAME":"Acme","DetailList":[{"LINE_NUMBER":1}]}"#;
        let part = r#"{"_key":"SO1","PICKSTATUS":"P","SHIP_TO_NAME":null}"#;
        let merged: Value = serde_json::from_str(&overlay(stored, part).unwrap()).unwrap();
        assert_eq!(merged["PICKSTATUS"], "P");
        // Present in the part, even as null: the part's.
        assert!(merged["SHIP_TO_NAME"].is_null());
        assert_eq!(merged["DetailList"][0]["LINE_NUMBER"], 1);
    }

    #[test]
    fn a_damaged_stored_payload_gives_way_and_a_bad_part_is_an_error() {
        assert_eq!(overlay("not json", r#"{"a":1}"#).unwrap(), r#"{"a":1}"#);
        assert!(overlay(r#"{"a":1}"#, "[1]").is_err());
    }
}
