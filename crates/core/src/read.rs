//! Reading synced records, out of the HTTP handlers: a list query validated, paged by its
//! opaque cursor and rendered; a record read by id. The API calls it; custom mappings and the
//! dashboard will too.

use ironbridge_model::{Entity, Timestamp};
use serde_json::{Map, Value};

use crate::crypto::Keys;
use crate::pagination::{PageSize, Pager};
use crate::service::{ServiceError, render};
use crate::store::{ConnId, RecordQuery, Store};

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

impl Page<Value> {
    /// The page as the API's JSON list body.
    pub fn into_json(self) -> Value {
        let mut out = Map::new();
        out.insert("data".into(), Value::Array(self.data));
        out.insert(
            "next_cursor".into(),
            self.next_cursor.map_or(Value::Null, Value::String),
        );
        out.insert(
            "total_count".into(),
            self.total_count.map_or(Value::Null, Value::from),
        );
        Value::Object(out)
    }
}

/// Reads a connection's records.
pub struct RecordReader<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Cursor keys.
    pub keys: &'a Keys,
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
    ) -> Result<Page<Value>, ServiceError> {
        let size = PageSize {
            default: entity.default_page_size(),
            max: entity.max_page_size(),
        }
        .resolve(q.page_size)?;
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
            include_raw: q.include_remote_data,
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
        let data = rows
            .iter()
            .map(|r| render(r, q.include_remote_data))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            data,
            next_cursor,
            total_count,
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
        match self
            .store
            .get_record(conn, entity, id, include_remote_data)
            .await?
        {
            Some(record) => Ok(Some(render(&record, include_remote_data)?)),
            None => Ok(None),
        }
    }
}
