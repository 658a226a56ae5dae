//! Reading synced records, out of the HTTP handlers: a list query validated, paged by its
//! opaque cursor and rendered; a record read by id; the connection's change feed. The API
//! calls it; custom mappings and the dashboard will too.

use ironbridge_model::{Entity, Timestamp};
use serde_json::Value;

use crate::crypto::Keys;
use crate::field_mappings::ConnectionView;
use crate::pagination::{PageSize, Pager};
use crate::service::{ServiceError, render};
use crate::store::{
    ChangePosition, ChangeQuery, ConnId, RecordQuery, Store, StoredChange, StoredRecord,
};

/// A list query of one entity's records.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Records per page (the entity's default when absent).
    pub page_size: Option<u32>,
    /// Only records Ironbridge changed after this instant (exclusive).
    pub modified_after: Option<Timestamp>,
    /// Only records Ironbridge changed before this instant (exclusive).
    pub modified_before: Option<Timestamp>,
    /// Deleted records too.
    pub include_deleted: bool,
    /// Each record's source payload as `remote_data`.
    pub include_remote_data: bool,
    /// Count the records matching the filters (`total_count`); a page alone needs none.
    pub include_total: bool,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items.
    pub data: Vec<T>,
    /// The cursor of the next page, absent on the last.
    pub next_cursor: Option<String>,
    /// Items matching the filters, where counted.
    pub total_count: Option<u64>,
}

impl Page<String> {
    /// The page as the API's JSON list body, its records already JSON text.
    pub fn into_body(self) -> String {
        let size = self.data.iter().map(String::len).sum::<usize>() + self.data.len() + 96;
        let mut out = String::with_capacity(size);
        out.push_str("{\"data\":[");
        for (i, record) in self.data.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(record);
        }
        out.push_str("],\"next_cursor\":");
        out.push_str(
            &self
                .next_cursor
                .map_or(Value::Null, Value::String)
                .to_string(),
        );
        out.push_str(",\"total_count\":");
        out.push_str(
            &self
                .total_count
                .map_or(Value::Null, Value::from)
                .to_string(),
        );
        out.push('}');
        out
    }
}

/// A query of a connection's change feed.
#[derive(Debug, Clone, Default)]
pub struct ChangesQuery {
    /// `next_cursor` of the previous page (absent: from the feed's beginning).
    pub cursor: Option<String>,
    /// Changes per page ([`CHANGE_PAGE`]).
    pub page_size: Option<u32>,
    /// Only this entity's changes.
    pub entity: Option<Entity>,
    /// Each record's source payload as `remote_data`.
    pub include_remote_data: bool,
}

/// Page sizes of the change feed.
pub const CHANGE_PAGE: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// A page of the change feed, its items already JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    /// The changes.
    pub data: Vec<String>,
    /// Where the next page starts: always given, also at the end of the feed.
    pub next_cursor: String,
}

impl ChangePage {
    /// The page as the API's JSON body.
    pub fn into_body(self) -> String {
        let size = self.data.iter().map(String::len).sum::<usize>() + self.data.len() + 64;
        let mut out = String::with_capacity(size + self.next_cursor.len());
        out.push_str("{\"data\":[");
        for (i, item) in self.data.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(item);
        }
        out.push_str("],\"next_cursor\":");
        out.push_str(&Value::String(self.next_cursor).to_string());
        out.push('}');
        out
    }
}

/// The position a change feed cursor carries, written as `seq|entity|id`.
fn position_key(p: &ChangePosition) -> String {
    format!("{}|{}|{}", p.seq, p.entity, p.id)
}

fn parse_position(key: &str) -> Result<ChangePosition, crate::cursor::CursorError> {
    let mut parts = key.splitn(3, '|');
    let (Some(seq), Some(entity), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(crate::cursor::CursorError::Tampered);
    };
    Ok(ChangePosition {
        seq: seq
            .parse()
            .map_err(|_| crate::cursor::CursorError::Tampered)?,
        entity: entity.to_string(),
        id: id.to_string(),
    })
}

/// One change as its API JSON text (see `ChangeOut`): the record rendered as the record
/// routes render it, or its tombstone.
fn change_text(
    change: &StoredChange,
    from: &ChangePosition,
    record_text: Option<String>,
) -> String {
    let r = &change.record;
    let text = |v: &str| Value::String(v.to_string()).to_string();
    let kind = if r.remote_was_deleted {
        "deleted"
    } else if change.created_after(from) {
        "created"
    } else {
        "updated"
    };
    let body = record_text.as_deref().unwrap_or("null");
    let mut out = String::with_capacity(body.len() + 160);
    out.push_str("{\"seq\":");
    out.push_str(&change.seq.to_string());
    out.push_str(",\"change\":\"");
    out.push_str(kind);
    out.push_str("\",\"entity\":");
    out.push_str(&text(change.entity.as_str()));
    out.push_str(",\"id\":");
    out.push_str(&text(&r.id));
    out.push_str(",\"record\":");
    out.push_str(body);
    out.push_str(",\"tombstone\":");
    if r.remote_was_deleted {
        out.push_str("{\"remote_id\":");
        out.push_str(&text(&r.remote_id));
        out.push_str(",\"deleted_at\":");
        out.push_str(&text(&r.modified_at.to_rfc3339()));
        out.push('}');
    } else {
        out.push_str("null");
    }
    out.push('}');
    out
}

/// One change of the feed as its API JSON text (`ChangeOut`), read from position `from`: the
/// record patched by the connection's overrides (`view`) and rendered as the record routes
/// render it, or its tombstone.
pub fn render_change(
    connection_id: &str,
    mut change: StoredChange,
    from: &ChangePosition,
    view: Option<&ConnectionView>,
    include_remote_data: bool,
) -> Result<String, ServiceError> {
    let record = if change.record.remote_was_deleted {
        None
    } else {
        match view.and_then(|v| v.entity(change.entity)) {
            Some(view) => {
                view.apply_record(connection_id, &mut change.record)?;
                Some(render_checked(&change.record, include_remote_data, true)?)
            }
            None => Some(render_text(&change.record, include_remote_data)?),
        }
    };
    Ok(change_text(&change, from, record))
}

/// A stored record of `entity` as the record routes render it, patched by the connection's
/// overrides (`view`, the record read with its source payload).
pub fn render_record(
    connection_id: &str,
    entity: Entity,
    mut record: StoredRecord,
    view: Option<&ConnectionView>,
) -> Result<String, ServiceError> {
    match view.and_then(|v| v.entity(entity)) {
        Some(view) => {
            view.apply_record(connection_id, &mut record)?;
            render_checked(&record, false, true)
        }
        None => render_text(&record, false),
    }
}

/// A stored record as its API JSON text, as [`render`] would make it but without building
/// the record's tree: the envelope is written, then the stored body's members are copied
/// (the body is the object the sync serialized from the entity's shape, which has no
/// envelope field; it is checked to be a JSON object first, without allocating), then the
/// source payload, checked the same way.
pub fn render_text(
    record: &StoredRecord,
    include_remote_data: bool,
) -> Result<String, ServiceError> {
    render_checked(record, include_remote_data, false)
}

/// [`render_text`]; `body_checked`: the body is an object Ironbridge just wrote (a body
/// patched by field mapping overrides), so it is not checked again.
fn render_checked(
    record: &StoredRecord,
    include_remote_data: bool,
    body_checked: bool,
) -> Result<String, ServiceError> {
    let corrupt = || ServiceError::Corrupt("a stored record is not a JSON object".into());
    let members = if body_checked {
        record
            .data
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .map(str::trim)
    } else {
        object_members(&record.data)
    }
    .ok_or_else(corrupt)?;
    let raw = match (&record.raw, include_remote_data) {
        (Some(raw), true) => {
            serde_json::from_str::<serde::de::IgnoredAny>(raw).map_err(|_| corrupt())?;
            Some(raw.as_str())
        }
        (None, true) => Some("null"),
        (_, false) => None,
    };
    let mut out = String::with_capacity(record.data.len() + raw.map_or(0, str::len) + 320);
    let text = |v: &str| Value::String(v.to_string()).to_string();
    let ts = |t: Option<Timestamp>| t.map_or_else(|| "null".to_string(), |t| text(&t.to_rfc3339()));
    out.push_str("{\"id\":");
    out.push_str(&text(&record.id));
    out.push_str(",\"remote_id\":");
    out.push_str(&text(&record.remote_id));
    out.push_str(",\"created_at\":");
    out.push_str(&ts(Some(record.created_at)));
    out.push_str(",\"modified_at\":");
    out.push_str(&ts(Some(record.modified_at)));
    out.push_str(",\"remote_created_at\":");
    out.push_str(&ts(record.remote_created_at));
    out.push_str(",\"remote_updated_at\":");
    out.push_str(&ts(record.remote_updated_at));
    out.push_str(",\"remote_was_deleted\":");
    out.push_str(if record.remote_was_deleted {
        "true"
    } else {
        "false"
    });
    if !members.is_empty() {
        out.push(',');
        out.push_str(members);
    }
    if let Some(raw) = raw {
        out.push_str(",\"remote_data\":");
        out.push_str(raw.trim());
    }
    out.push('}');
    Ok(out)
}

/// The members of a JSON object's text (between its braces), if it is a valid object.
fn object_members(text: &str) -> Option<&str> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    text.trim()
        .strip_prefix('{')?
        .strip_suffix('}')
        .map(str::trim)
}

/// Records per task when a page's records are patched by field mapping overrides.
const PATCH_CHUNK: usize = 50;

/// A page's records patched by the connection's overrides and rendered. The work is CPU
/// only (a partial parse of each source payload), so it runs off the async workers, split
/// over the machine's cores when the page is large enough to gain from it.
async fn patched(
    view: std::sync::Arc<ConnectionView>,
    entity: Entity,
    connection_id: &str,
    rows: Vec<StoredRecord>,
    include_remote_data: bool,
) -> Result<Vec<String>, ServiceError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let tasks = (rows.len() / PATCH_CHUNK).clamp(1, cores);
    let per_task = rows.len().div_ceil(tasks).max(1);
    let mut rows = rows.into_iter();
    let mut handles = Vec::with_capacity(tasks);
    loop {
        let chunk: Vec<StoredRecord> = rows.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        let (view, id) = (view.clone(), connection_id.to_string());
        handles.push(tokio::task::spawn_blocking(move || {
            let Some(view) = view.entity(entity) else {
                return Err(ServiceError::Corrupt(
                    "an override view went missing".into(),
                ));
            };
            chunk
                .into_iter()
                .map(|mut r| {
                    view.apply_record(&id, &mut r)?;
                    render_checked(&r, include_remote_data, true)
                })
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        let part = h
            .await
            .map_err(|_| ServiceError::Corrupt("patching a page of records failed".into()))??;
        out.extend(part);
    }
    Ok(out)
}

/// Reads a connection's records.
pub struct RecordReader<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Cursor keys.
    pub keys: &'a Keys,
    /// The connection's field mapping overrides, when it has any: records are patched from
    /// their stored source payloads as they are read.
    pub view: Option<std::sync::Arc<ConnectionView>>,
}

impl RecordReader<'_> {
    /// One page of `entity`'s records of a connection. In id order, the pages are stable
    /// while records change: a record that exists throughout an iteration is returned
    /// exactly once. With a `modified_*` filter they are in change order (`modified_at`, then
    /// id): a record unchanged throughout is returned exactly once, and one changed during
    /// the iteration comes again, at its new place, when it still matches.
    pub async fn list(
        &self,
        conn: &ConnId,
        entity: Entity,
        q: &ListQuery,
    ) -> Result<Page<String>, ServiceError> {
        let size = PageSize {
            default: entity.default_page_size(),
            max: entity.max_page_size(),
        }
        .resolve(q.page_size)?;
        let view = self.view.as_deref().and_then(|v| v.entity(entity));
        if let (Some(a), Some(b)) = (q.modified_after, q.modified_before)
            && a >= b
        {
            return Err(ServiceError::BadQuery {
                param: "modified_after".into(),
                message: "`modified_after` must be before `modified_before`.".into(),
            });
        }
        let micros = |t: Option<Timestamp>| t.map(|t| t.micros().to_string()).unwrap_or_default();
        let mut query = RecordQuery {
            entity,
            after_id: None,
            after_modified: None,
            modified_after: q.modified_after,
            modified_before: q.modified_before,
            include_deleted: q.include_deleted,
            // Overrides read the source payload.
            include_raw: q.include_remote_data || view.is_some(),
            limit: size + 1,
        };
        let by_change = query.by_change();
        let mut parts = vec![
            ("entity", entity.as_str().into()),
            ("modified_after", micros(q.modified_after)),
            ("modified_before", micros(q.modified_before)),
            ("include_deleted", q.include_deleted.to_string()),
        ];
        // Change-order cursors carry (modified_at, id); one of an id-order list (or of an
        // earlier version) is refused as another query's rather than misread.
        if by_change {
            parts.push(("order", "changed".into()));
        }
        let pager = Pager::new(self.keys, &conn.0, &parts);
        if let Some(key) = pager.position(q.cursor.as_deref())? {
            if by_change {
                let (at, id) = key
                    .split_once('|')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                    .ok_or(crate::cursor::CursorError::Tampered)?;
                query.after_modified = Some(Timestamp(at));
                query.after_id = Some(id.to_string());
            } else {
                query.after_id = Some(key);
            }
        }
        let rows = self.store.list_records(conn, &query).await?;
        let (rows, next_cursor) = if by_change {
            pager.page_by(rows, size, |r| {
                format!("{}|{}", r.modified_at.micros(), r.id)
            })
        } else {
            pager.page(rows, size, |r| &r.id)
        };
        let total_count = if q.include_total {
            Some(self.store.count_records(conn, &query).await?)
        } else {
            None
        };
        let data = match (&self.view, view.is_some()) {
            (Some(all), true) => {
                patched(all.clone(), entity, &conn.0, rows, q.include_remote_data).await?
            }
            _ => rows
                .iter()
                .map(|r| render_text(r, q.include_remote_data))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Page {
            data,
            next_cursor,
            total_count,
        })
    }

    /// One page of the connection's change feed: every record created, changed or deleted
    /// after the cursor's position, in `(seq, entity, id)` order, each once, at its latest
    /// change (a log-compacted feed: a record changed twice since the position is found once,
    /// as it is now). Change numbers are taken in the transaction that stores the change, so
    /// following `next_cursor` forever misses no change and returns none twice, whatever
    /// syncs, writes or crashes happen meanwhile.
    pub async fn changes(
        &self,
        conn: &ConnId,
        q: &ChangesQuery,
    ) -> Result<ChangePage, ServiceError> {
        let size = CHANGE_PAGE.resolve(q.page_size)?;
        let pager = Pager::new(
            self.keys,
            &conn.0,
            &[
                ("list", "changes".into()),
                ("entity", q.entity.map_or("", Entity::as_str).into()),
            ],
        );
        let from = match pager.position(q.cursor.as_deref())? {
            Some(key) => parse_position(&key)?,
            None => ChangePosition::start(),
        };
        let query = ChangeQuery {
            entity: q.entity,
            after: from.clone(),
            // Overrides read the source payload.
            include_raw: q.include_remote_data || self.view.is_some(),
            limit: size,
        };
        let rows = self.store.list_changes(conn, &query).await?;
        let next = rows
            .last()
            .map_or_else(|| from.clone(), StoredChange::position);
        let data = rows
            .into_iter()
            .map(|change| {
                render_change(
                    &conn.0,
                    change,
                    &from,
                    self.view.as_deref(),
                    q.include_remote_data,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChangePage {
            data,
            next_cursor: pager.cursor_after(&position_key(&next)),
        })
    }

    /// One record of a connection (`None`: no such record of this entity).
    pub async fn get(
        &self,
        conn: &ConnId,
        entity: Entity,
        id: &str,
        include_remote_data: bool,
    ) -> Result<Option<Value>, ServiceError> {
        let view = self.view.as_deref().and_then(|v| v.entity(entity));
        match self
            .store
            .get_record(conn, entity, id, include_remote_data || view.is_some())
            .await?
        {
            Some(mut record) => {
                if let Some(view) = view {
                    view.apply_record(&conn.0, &mut record)?;
                }
                Ok(Some(render(&record, include_remote_data)?))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &str, raw: Option<&str>) -> StoredRecord {
        StoredRecord {
            id: "po_1".into(),
            remote_id: "A \"quoted\" key\n".into(),
            data: data.into(),
            raw: raw.map(str::to_string),
            created_at: Timestamp(1_700_000_000_000_000),
            modified_at: Timestamp(1_700_000_000_123_456),
            remote_created_at: None,
            remote_updated_at: Some(Timestamp(1_600_000_000_000_000)),
            remote_was_deleted: true,
        }
    }

    #[test]
    fn record_text_is_the_rendered_record() {
        let data = r#"{"number":"PO-1","memo":"a \"memo\"","line_items":[{"id":"pol_1","quantity":"2"}],"custom_fields":{}}"#;
        for (r, remote) in [
            (record(data, Some(r#" {"tranid":"PO-1","x":[1,2]} "#)), true),
            (record(data, None), true),
            (record(data, Some("{}")), false),
            (record("{}", None), false),
            (record(" { } ", None), true),
        ] {
            let text = render_text(&r, remote).unwrap();
            let tree = render(&r, remote).unwrap();
            // Same members in the same order.
            assert_eq!(text, tree.to_string());
        }
    }

    #[test]
    fn a_damaged_record_is_corrupt_not_broken_json() {
        for (data, raw) in [
            ("[1]", None),
            (r#"{"a":1"#, None),
            (r#"{"a":1}, "b":2}"#, None),
            ("{}", Some("{not json")),
        ] {
            assert!(matches!(
                render_text(&record(data, raw), true),
                Err(ServiceError::Corrupt(_))
            ));
        }
    }
}
