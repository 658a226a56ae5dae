//! List pagination, written once for every list endpoint (records, connections, events,
//! webhook endpoints, deliveries, attempts): the page size checked against its bounds, the
//! opaque cursor decoded and re-issued (bound to the tenant and the query's filters), and
//! a page cut from rows fetched with one extra to know whether more follow.

use crate::crypto::Keys;
use crate::cursor::{self, CursorError};
use crate::service::ServiceError;

/// Bounds of a list's page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    /// When the client gives none.
    pub default: u32,
    /// The largest allowed.
    pub max: u32,
}

impl PageSize {
    /// The page size asked for, within bounds (`INVALID_REQUEST` naming `page_size` else).
    pub fn resolve(self, requested: Option<u32>) -> Result<u32, ServiceError> {
        let size = requested.unwrap_or(self.default);
        if (1..=self.max).contains(&size) {
            Ok(size)
        } else {
            Err(ServiceError::BadQuery {
                param: "page_size".into(),
                message: format!("`page_size` must be from 1 to {}.", self.max),
            })
        }
    }
}

/// One list query's cursors: bound to its scope (the organization or connection) and to a
/// fingerprint of its filters.
pub struct Pager<'a> {
    keys: &'a Keys,
    scope: &'a str,
    fingerprint: String,
}

impl<'a> Pager<'a> {
    /// Cursors of the list `parts` describe (its name and filters, in a fixed order).
    pub fn new(keys: &'a Keys, scope: &'a str, parts: &[(&str, String)]) -> Self {
        Pager {
            keys,
            scope,
            fingerprint: cursor::fingerprint(parts),
        }
    }

    /// The id a cursor stands after (`None`: from the start).
    pub fn position(&self, cursor: Option<&str>) -> Result<Option<String>, CursorError> {
        cursor
            .map(|c| cursor::decode(self.keys, self.scope, &self.fingerprint, c))
            .transpose()
    }

    /// A cursor standing after `id`.
    pub fn cursor_after(&self, id: &str) -> String {
        cursor::encode(self.keys, self.scope, &self.fingerprint, id)
    }

    /// Keeps `size` of `rows` (fetched with one extra) and the cursor after the last kept,
    /// when more follow.
    pub fn page<T>(
        &self,
        rows: Vec<T>,
        size: u32,
        id: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Option<String>) {
        self.page_by(rows, size, |r| id(r).to_string())
    }

    /// [`Pager::page`] for a list whose position is more than an id: `key` writes the
    /// position of a row (the list decodes it again from [`Pager::position`]).
    pub fn page_by<T>(
        &self,
        mut rows: Vec<T>,
        size: u32,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next = if more {
            rows.last().map(|r| self.cursor_after(&key(r)))
        } else {
            None
        };
        (rows, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_one_extra_row_and_cursors_round_trip() {
        let keys = Keys::from_master(&[9u8; 32]).unwrap();
        let pager = Pager::new(&keys, "org_1", &[("list", "things".into())]);
        let (rows, next) = pager.page(vec!["a", "b", "c"], 2, |r| r);
        assert_eq!(rows, ["a", "b"]);
        assert_eq!(
            pager.position(next.as_deref()).unwrap().as_deref(),
            Some("b")
        );
        let (rows, next) = pager.page(vec!["c"], 2, |r| r);
        assert_eq!((rows, next), (vec!["c"], None));
        let other = Pager::new(&keys, "org_1", &[("list", "others".into())]);
        let cursor = pager.cursor_after("x");
        assert_eq!(
            other.position(Some(&cursor)).unwrap_err(),
            CursorError::OtherQuery
        );
        let bounds = PageSize {
            default: 50,
            max: 100,
        };
        assert_eq!(bounds.resolve(None).unwrap(), 50);
        assert!(matches!(
            bounds.resolve(Some(101)),
            Err(ServiceError::BadQuery { ref param, .. }) if param == "page_size"
        ));
        assert!(bounds.resolve(Some(0)).is_err());
    }
}
