//! An example system, to show (and test) what adding a system takes: this module, its
//! mapping file (`mappings/example/location.json`) and one line in the registry
//! (`crate::registry`). It reads one entity, locations, from an in-memory table by
//! modification time, so it syncs through the real engine like any ERP: sliced windows,
//! keyset pages, checkpoints, deletions found by a full pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use ironbridge_core::connector::{Connector, ConnectorError, Extent, RawPage, ReadWindow, Source};
use ironbridge_core::system::{
    AuthOption, FieldSpec, Limits, Mappings, ReadSpec, SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Map, Value, json};

/// The example's id.
pub const ID: SystemId = SystemId::from_static("example");

/// Locations per page: small, so tests page.
pub const PAGE: usize = 3;

/// The token the example refuses, as a source refuses revoked credentials.
pub const REVOKED: &str = "revoked";

/// The example system.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "Example location list",
    auth: &[AuthOption {
        id: "token",
        name: "API token",
        description: "Any token; `revoked` is refused.",
        fields: &[FieldSpec::text("token", "Token", "The list's API token.").secret()],
    }],
    settings: &[FieldSpec::text(
        "table",
        "Table",
        "Which in-memory table to read.",
    )],
    reads: &[ReadSpec {
        entity: Entity::LOCATION,
        kind: ReadKind::Windowed,
        deletions: DeletionDetection::Reconciliation,
        payload: ironbridge_core::system::Payload::Whole,
        follows_feed: false,
    }],
    writes: &[],
    limits: Limits {
        concurrency: 2,
        per_second: 0.0,
        burst: 2,
        description: "In memory: two reads at once.",
    },
    history_days: None,
    mappings: Mappings::new(&[include_str!("../mappings/example/location.json")]),
    build: |ctx| {
        let table = ctx
            .settings
            .get("table")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "settings.table".into(),
                message: "`table` is required".into(),
            })?;
        let token = ctx
            .credentials
            .and_then(|c| c.get("token"))
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "credentials.token".into(),
                message: "`token` is required".into(),
            })?;
        Ok(Arc::new(Example {
            table: table_named(table),
            revoked: token == REVOKED,
        }))
    },
};

/// A table of locations: the source's data, which tests change.
#[derive(Debug, Default)]
pub struct Table {
    rows: Mutex<HashMap<String, Value>>,
    /// Pages read, for tests that count requests.
    pub pages: std::sync::atomic::AtomicU64,
}

impl Table {
    /// Adds or replaces a location, last modified at `at`.
    pub fn put(&self, code: &str, name: &str, at: Timestamp) {
        let row = json!({"code": code, "name": name, "type": "DC", "open": true,
            "city": "Dayton", "country": "US", "x_dock_doors": 4,
            "updatedAt": at.to_rfc3339()});
        self.lock().insert(code.to_string(), row);
    }

    /// Removes a location (the source forgets it).
    pub fn remove(&self, code: &str) {
        self.lock().remove(code);
    }

    /// The codes of every location.
    pub fn codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.lock().keys().cloned().collect();
        codes.sort();
        codes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The table of that name (made empty the first time), shared by every connector built
/// with `{"table": name}`.
pub fn table_named(name: &str) -> Arc<Table> {
    static TABLES: OnceLock<Mutex<HashMap<String, Arc<Table>>>> = OnceLock::new();
    TABLES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone()
}

struct Example {
    table: Arc<Table>,
    revoked: bool,
}

fn modified(row: &Value) -> Timestamp {
    row["updatedAt"]
        .as_str()
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or(Timestamp(0))
}

impl Example {
    fn authorize(&self) -> Result<(), ConnectorError> {
        if self.revoked {
            Err(ConnectorError::Unauthorized)
        } else {
            Ok(())
        }
    }
}

impl Connector for Example {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }
}

#[async_trait]
impl Source for Example {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.authorize()
    }

    /// Keyset pages on `(updatedAt, code)` within the window: the cursor is the last row's
    /// pair, so the engine may narrow a window between pages.
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        self.authorize()?;
        if entity != Entity::LOCATION {
            return Err(ConnectorError::Unsupported(format!(
                "the example has no {entity} read"
            )));
        }
        let after = cursor.map(parse_cursor).transpose()?;
        let mut rows: Vec<(Timestamp, String, Value)> = self
            .table
            .lock()
            .values()
            .map(|r| {
                (
                    modified(r),
                    r["code"].as_str().unwrap_or("").to_string(),
                    r.clone(),
                )
            })
            .filter(|(t, code, _)| {
                window.contains(*t) && after.as_ref().is_none_or(|(at, key)| (t, code) > (at, key))
            })
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let more = rows.len() > PAGE;
        rows.truncate(PAGE);
        let next_cursor = match rows.last() {
            Some((t, code, _)) if more => Some(format!("{}|{code}", t.micros())),
            _ => None,
        };
        self.table
            .pages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(RawPage::from_values(
            rows.into_iter().map(|(_, _, r)| r).collect(),
            next_cursor,
        ))
    }

    async fn extent(&self, _entity: Entity) -> Result<Extent, ConnectorError> {
        self.authorize()?;
        Ok(Extent {
            oldest: self.table.lock().values().map(modified).min(),
            pages: None,
        })
    }

    fn cursor_position(&self, _entity: Entity, cursor: &str) -> Option<Timestamp> {
        parse_cursor(cursor).ok().map(|(t, _)| t)
    }
}

fn parse_cursor(cursor: &str) -> Result<(Timestamp, String), ConnectorError> {
    let bad = || ConnectorError::InvalidSettings {
        param: "cursor".into(),
        message: "not a cursor of the example".into(),
    };
    let (t, code) = cursor.split_once('|').ok_or_else(bad)?;
    Ok((Timestamp(t.parse().map_err(|_| bad())?), code.to_string()))
}

/// Settings and credentials of an example connection to `table`.
pub fn connection(table: &str) -> (Map<String, Value>, Map<String, Value>) {
    let settings = json!({"table": table});
    let credentials = json!({"token": "t0ken"});
    (
        settings.as_object().cloned().unwrap_or_default(),
        credentials.as_object().cloned().unwrap_or_default(),
    )
}
