//! Per-connection field mappings: overrides of a system's default mapping (remap a unified
//! field or a line field to another source path, add custom fields from any source path with
//! a typed conversion, remove custom fields), checked against the connection's stored records
//! before they are saved, versioned with who changed what, and applied at read time from each
//! record's stored source payload, so a change shows in every answer at once with no resync.

pub mod discover;
pub mod select;
pub mod target;
pub mod view;

use ironbridge_model::field_mappings::{
    Conversion, ConversionType, CustomFieldSourceOut, EntityFieldMappingsOut,
    FieldMappingChangeOut, FieldMappingHistoryOut, FieldMappingIn, FieldMappingOut,
    FieldMappingOverride, FieldMappingVersionOut, FieldMappingsOut, ListSourceOut,
    MappingChangeAction, MappingOrigin, PreviewRecordOut, RemoteFieldsOut,
};
use ironbridge_model::{Entity, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::Keys;
use crate::mapping::{FieldRule, Kind, MappingDef, convert, lookup};
use crate::pagination::{PageSize, Pager};
use crate::service::{ServiceError, invalid, render};
use crate::store::{
    ConnId, Connection, MappingVersion, OrgId, RecordQuery, Store, StoreError, StoredRecord,
};
use crate::system::SystemDescriptor;

pub use target::{Target, TargetError};
pub use view::{ConnectionView, EntityView, ViewCache};

/// Records a change is checked against, at most.
const CHECK_RECORDS: u32 = 5_000;
/// Records read to list a connection's source fields.
const DISCOVER_RECORDS: u32 = 200;
/// Records shown before and after a change.
const PREVIEW_RECORDS: usize = 5;
/// Records whose whole unified record is checked to still decode after a change.
const DECODE_RECORDS: usize = 200;
/// Saves tried when other changes keep coming first.
const SAVE_ATTEMPTS: usize = 3;

/// What a saved version's change was (stored as JSON beside its overrides).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    action: MappingChangeAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entity: Option<Entity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<FieldMappingOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<FieldMappingOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reverted_to: Option<i64>,
}

/// The field mappings of one connection of an organization.
pub struct FieldMappings<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// The connection's system.
    pub system: &'a SystemDescriptor,
    /// The organization acting.
    pub org: &'a OrgId,
    /// The connection (read for this organization).
    pub conn: &'a Connection,
    /// The system's description of the entity's fields (`None`: it has none, or it could
    /// not be read): described paths are known even where no stored record has them.
    pub described: Option<Vec<crate::connector::DescribedField>>,
}

fn corrupt() -> ServiceError {
    ServiceError::Corrupt("stored field mappings are unreadable".into())
}

impl FieldMappings<'_> {
    fn id(&self) -> ConnId {
        ConnId(self.conn.id.clone())
    }

    /// The default mapping of `entity`, or the refusal naming the system.
    pub fn def(&self, entity: Entity) -> Result<&MappingDef, ServiceError> {
        self.system.mapping(entity).ok_or_else(|| {
            invalid(
                "entity",
                format!(
                    "{} connections have no {}s to map.",
                    self.system.name,
                    entity.spec().label
                ),
            )
        })
    }

    /// The current version and its overrides (fresh from the store, not the cache).
    pub async fn current(&self) -> Result<(i64, Vec<FieldMappingOverride>), ServiceError> {
        let conn = self.store.get_connection(self.org, &self.id()).await?;
        self.overrides_at(conn.mapping_version).await
    }

    async fn overrides_at(
        &self,
        version: i64,
    ) -> Result<(i64, Vec<FieldMappingOverride>), ServiceError> {
        if version == 0 {
            return Ok((0, Vec::new()));
        }
        let saved = self
            .store
            .field_mapping_version(self.org, &self.id(), version)
            .await?
            .ok_or_else(corrupt)?;
        let overrides = serde_json::from_str(&saved.overrides).map_err(|_| corrupt())?;
        Ok((version, overrides))
    }

    /// The effective mapping of every entity the system reads, or of one (none when the
    /// system does not read it).
    pub async fn effective(&self, only: Option<Entity>) -> Result<FieldMappingsOut, ServiceError> {
        let (version, overrides) = self.current().await?;
        let data = self
            .system
            .mappings
            .all()
            .iter()
            .filter(|d| only.is_none_or(|e| e == d.entity))
            // Points are stored as mapped: there is no payload to map again at read time.
            .filter(|d| d.entity.spec().storage == ironbridge_model::Storage::Records)
            .map(|def| effective_of(def, version, &overrides))
            .collect();
        Ok(FieldMappingsOut { version, data })
    }

    /// Stored records of `entity` with their source payloads, in id order (ids are hashes,
    /// so this is a spread over the connection's records), at most `limit`, read in pages.
    async fn records(
        &self,
        entity: Entity,
        limit: u32,
        mut each: impl FnMut(StoredRecord) -> Result<(), ServiceError>,
    ) -> Result<u64, ServiceError> {
        let mut seen = 0u64;
        let mut after: Option<String> = None;
        while seen < u64::from(limit) {
            let chunk = (limit - seen as u32).min(500);
            let rows = self
                .store
                .list_records(
                    &self.id(),
                    &RecordQuery {
                        entity,
                        after_id: after.clone(),
                        after_modified: None,
                        modified_after: None,
                        modified_before: None,
                        include_deleted: true,
                        include_raw: true,
                        limit: chunk,
                    },
                )
                .await?;
            let n = rows.len() as u32;
            after = rows.last().map(|r| r.id.clone());
            for r in rows {
                seen += 1;
                each(r)?;
            }
            if n < chunk {
                break;
            }
        }
        Ok(seen)
    }

    /// The source fields the connection's stored records of `entity` have.
    pub async fn remote_fields(&self, entity: Entity) -> Result<RemoteFieldsOut, ServiceError> {
        let def = self.def(entity)?;
        let mut found = discover::Discovery::default();
        self.records(entity, DISCOVER_RECORDS, |r| {
            if let Some(raw) = r.raw.as_deref()
                && let Ok(v) = serde_json::from_str::<Value>(raw)
            {
                found.observe(def, &v);
            }
            Ok(())
        })
        .await?;
        let sampled = found.sampled;
        if let Some(described) = &self.described {
            found.describe(described);
        }
        Ok(RemoteFieldsOut {
            entity,
            records_sampled: sampled,
            described_by_source: self.described.is_some(),
            data: found.fields(def),
        })
    }

    /// Creates or changes the override of `target` (or, with `dry_run`, shows what it would
    /// do). Checked first: the target can be mapped, the source path is in the connection's
    /// stored records, the conversion reads every stored value and keeps every record valid.
    pub async fn set(
        &self,
        entity: Entity,
        target: &str,
        input: FieldMappingIn,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<FieldMappingChangeOut, ServiceError> {
        let def = self.def(entity)?;
        let t = Target::parse(entity, def, target).map_err(|e| invalid("target", e.message()))?;
        let new = if input.remove {
            if !t.is_custom() {
                return Err(invalid(
                    "remove",
                    format!(
                        "`{target}` is a unified field: it can be remapped, not removed (deleting its override restores its default)."
                    ),
                ));
            }
            if input.source_path.is_some() || input.conversion.is_some() {
                return Err(invalid(
                    "remove",
                    "A removal takes no `source_path` or `conversion`.",
                ));
            }
            FieldMappingOverride {
                entity,
                target: target.to_string(),
                source_path: None,
                conversion: None,
                remove: true,
            }
        } else {
            let path = input.source_path.ok_or_else(|| {
                invalid(
                    "source_path",
                    "`source_path` is required (or `remove: true` for a custom field).",
                )
            })?;
            target::check_path(&path).map_err(|m| invalid("source_path", m))?;
            // The type a unified field must keep: this system's rule, else the sandbox's,
            // which maps every field of every entity.
            let type_rule = if t.is_custom() {
                None
            } else {
                t.default_rule(def).or_else(|| {
                    crate::sandbox::DESCRIPTOR
                        .mapping(entity)
                        .and_then(|d| t.default_rule(d))
                })
            };
            let conversion = input
                .conversion
                .or_else(|| type_rule.and_then(target::conversion_of))
                .unwrap_or(Conversion {
                    kind: ConversionType::Text,
                    values: None,
                    default: None,
                    entity: None,
                });
            target::check_conversion(&conversion, type_rule, t.enum_values(self.system, entity))
                .map_err(|(p, m)| invalid(p, m))?;
            FieldMappingOverride {
                entity,
                target: target.to_string(),
                source_path: Some(path),
                conversion: Some(conversion),
                remove: false,
            }
        };
        self.change(entity, &t, Some(new), dry_run, actor, now)
            .await
    }

    /// Deletes the override of `target`: a unified field reads its default again, an added
    /// custom field is gone, a removed one is back.
    pub async fn delete(
        &self,
        entity: Entity,
        target: &str,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<FieldMappingChangeOut, ServiceError> {
        let def = self.def(entity)?;
        let t = Target::parse(entity, def, target).map_err(|e| invalid("target", e.message()))?;
        self.change(entity, &t, None, dry_run, actor, now).await
    }

    async fn change(
        &self,
        entity: Entity,
        t: &Target,
        new: Option<FieldMappingOverride>,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<FieldMappingChangeOut, ServiceError> {
        let target = target_name(t);
        for _ in 0..SAVE_ATTEMPTS {
            let (version, overrides) = self.current().await?;
            let at = overrides
                .iter()
                .position(|o| o.entity == entity && o.target == target);
            let before = at.map(|i| overrides[i].clone());
            if new.is_none() && before.is_none() {
                return Err(ServiceError::Store(StoreError::NotFound));
            }
            let mut next = overrides.clone();
            match (&new, at) {
                (Some(o), Some(i)) => next[i] = o.clone(),
                (Some(o), None) => next.push(o.clone()),
                (None, Some(i)) => {
                    next.remove(i);
                }
                (None, None) => unreachable!("refused above"),
            }
            let (checked, preview) = self
                .check(entity, t, &overrides, &next, new.as_ref())
                .await?;
            let def = self.def(entity)?;
            let mapping = effective_of(def, version, &next)
                .fields
                .into_iter()
                .find(|f| f.target == target)
                .unwrap_or_else(|| default_entry(def, t));
            if dry_run || before == new {
                return Ok(FieldMappingChangeOut {
                    dry_run,
                    version,
                    mapping,
                    records_checked: checked,
                    preview,
                });
            }
            let change = Change {
                action: if new.is_some() {
                    MappingChangeAction::Set
                } else {
                    MappingChangeAction::Delete
                },
                entity: Some(entity),
                target: Some(target.clone()),
                before,
                after: new.clone(),
                reverted_to: None,
            };
            match self.save(version + 1, &next, &change, actor, now).await {
                Ok(()) => {
                    return Ok(FieldMappingChangeOut {
                        dry_run,
                        version: version + 1,
                        mapping,
                        records_checked: checked,
                        preview,
                    });
                }
                Err(ServiceError::Store(StoreError::Conflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Store(StoreError::conflict(
            "The connection's field mappings keep changing; try again.",
        )))
    }

    async fn save(
        &self,
        version: i64,
        overrides: &[FieldMappingOverride],
        change: &Change,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), ServiceError> {
        self.store
            .save_field_mappings(
                self.org,
                &self.id(),
                &MappingVersion {
                    version,
                    overrides: json(&overrides),
                    change: json(change),
                    actor: actor.to_string(),
                    created_at: now,
                },
            )
            .await?;
        Ok(())
    }

    /// Checks a change against the stored records and previews it.
    async fn check(
        &self,
        entity: Entity,
        t: &Target,
        current: &[FieldMappingOverride],
        next: &[FieldMappingOverride],
        new: Option<&FieldMappingOverride>,
    ) -> Result<(u64, Vec<PreviewRecordOut>), ServiceError> {
        let def = self.def(entity)?;
        let label = entity.spec().label;
        let (now_view, _) = ConnectionView::compile(self.system, 0, current);
        let (next_view, _) = ConnectionView::compile(self.system, 0, next);
        let rule = new.and_then(|o| {
            Some(target::rule_of(
                o.source_path.as_deref()?,
                o.conversion.as_ref()?,
            ))
        });
        let list_path = t
            .list()
            .and_then(|l| def.lists.iter().find(|x| x.target == l))
            .map(|l| l.path.clone());
        let mut found = false;
        let mut failures = 0u64;
        let mut first_failure: Option<String> = None;
        let mut preview = Vec::new();
        let mut decoded = 0usize;
        let conn_id = self.conn.id.clone();
        let target = target_name(t);
        let checked = self
            .records(entity, CHECK_RECORDS, |record| {
                let Some(raw) = record.raw.as_deref() else {
                    return Ok(());
                };
                let Ok(raw) = serde_json::from_str::<Value>(raw) else {
                    return Ok(());
                };
                let sources: Vec<&Value> = match &list_path {
                    None => vec![&raw],
                    Some(p) => match lookup(&raw, p) {
                        Some(Value::Array(a)) => a.iter().collect(),
                        _ => Vec::new(),
                    },
                };
                let mut has_value = false;
                if let Some(rule) = &rule {
                    let path = rule.path.as_deref().unwrap_or_default();
                    for source in &sources {
                        found |= exists(source, path);
                        if lookup(source, path).is_some() {
                            has_value = true;
                        }
                        if let Err(e) = convert(&conn_id, &target, rule, source) {
                            failures += 1;
                            if first_failure.is_none() {
                                let value = lookup(source, path)
                                    .map(|v| {
                                        let s = v.to_string();
                                        s.chars().take(60).collect::<String>()
                                    })
                                    .unwrap_or_default();
                                first_failure = Some(format!(
                                    "{} {}: {}, value {value}",
                                    label,
                                    record.id,
                                    problem(&e)
                                ));
                            }
                        }
                    }
                }
                let want_preview = preview.len() < PREVIEW_RECORDS && (has_value || rule.is_none());
                if want_preview || decoded < DECODE_RECORDS {
                    let (before, after) = before_after(&now_view, &next_view, entity, &conn_id, &record, &raw)?;
                    if decoded < DECODE_RECORDS && new.is_some() {
                        decoded += 1;
                        let mut changed = record.clone();
                        changed.data = Value::Object(after.clone()).to_string();
                        changed.raw = None;
                        let rendered = render(&changed, false)?;
                        if let Err(e) = (entity.spec().schema.decodes)(rendered) {
                            return Err(invalid(
                                "conversion",
                                format!(
                                    "With this change {label} {} would not be a valid {label}: {e}.",
                                    record.id
                                ),
                            ));
                        }
                    }
                    if want_preview {
                        preview.push(PreviewRecordOut {
                            id: record.id.clone(),
                            remote_id: record.remote_id.clone(),
                            before: pick(&before, t),
                            after: pick(&after, t),
                        });
                    }
                }
                Ok(())
            })
            .await?;
        if let Some(rule) = &rule {
            let path = rule.path.as_deref().unwrap_or_default();
            let plural = entity.spec().plural.replace('_', " ");
            let scope = t.list().unwrap_or("record");
            let described = self
                .described
                .iter()
                .flatten()
                .any(|f| f.scope == scope && f.path == path);
            if checked == 0 && !described {
                return Err(invalid(
                    "source_path",
                    format!(
                        "No {plural} of this connection are stored yet to check `{path}` against, and {} does not describe it; sync them first.",
                        self.system.name
                    ),
                ));
            }
            if !found && !described {
                let scope = t
                    .list()
                    .map_or(String::new(), |l| format!(" (in `{l}` lines)"));
                return Err(invalid(
                    "source_path",
                    format!(
                        "`{path}`{scope} is in none of the {checked} stored {plural} of this connection; `GET /v1/connections/{}/remote-fields?entity={}` lists the paths it has.",
                        self.conn.id,
                        entity.as_str()
                    ),
                ));
            }
            if failures > 0 {
                let kind = new
                    .and_then(|o| o.conversion.as_ref())
                    .map(|c| serde_json::to_value(c.kind).unwrap_or(Value::Null))
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(invalid(
                    "conversion",
                    format!(
                        "The `{kind}` conversion fails on {failures} value(s) of `{path}` in the {checked} stored {plural} checked (first: {}).",
                        first_failure.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok((checked, preview))
    }

    /// Restores the overrides of `version` (0: the defaults) as a new version.
    pub async fn revert(
        &self,
        version: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<FieldMappingVersionOut, ServiceError> {
        for _ in 0..SAVE_ATTEMPTS {
            let (current, _) = self.current().await?;
            if version < 0 || version > current {
                return Err(invalid(
                    "version",
                    format!("`version` must be between 0 and {current}, the current one."),
                ));
            }
            let (_, overrides) = self.overrides_at(version).await?;
            let change = Change {
                action: MappingChangeAction::Revert,
                entity: None,
                target: None,
                before: None,
                after: None,
                reverted_to: Some(version),
            };
            match self
                .save(current + 1, &overrides, &change, actor, now)
                .await
            {
                Ok(()) => {
                    return Ok(FieldMappingVersionOut {
                        version: current + 1,
                        action: MappingChangeAction::Revert,
                        entity: None,
                        target: None,
                        before: None,
                        after: None,
                        reverted_to: Some(version),
                        actor: actor.to_string(),
                        created_at: now,
                        overrides,
                    });
                }
                Err(ServiceError::Store(StoreError::Conflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Store(StoreError::conflict(
            "The connection's field mappings keep changing; try again.",
        )))
    }

    /// The versions, newest first, in cursor pages.
    pub async fn history(
        &self,
        keys: &Keys,
        cursor: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<FieldMappingHistoryOut, ServiceError> {
        let size = PageSize {
            default: 20,
            max: 100,
        }
        .resolve(page_size)?;
        let pager = Pager::new(
            keys,
            &self.conn.id,
            &[("list", "field_mapping_history".into())],
        );
        let before = match pager.position(cursor)? {
            Some(v) => Some(
                v.parse::<i64>()
                    .map_err(|_| crate::cursor::CursorError::Tampered)?,
            ),
            None => None,
        };
        let rows = self
            .store
            .field_mapping_history(self.org, &self.id(), before, size + 1)
            .await?;
        let (rows, next_cursor) = pager.page_by(rows, size, |r| r.version.to_string());
        let data = rows
            .into_iter()
            .map(|r| {
                let change: Change = serde_json::from_str(&r.change).map_err(|_| corrupt())?;
                Ok(FieldMappingVersionOut {
                    version: r.version,
                    action: change.action,
                    entity: change.entity,
                    target: change.target,
                    before: change.before,
                    after: change.after,
                    reverted_to: change.reverted_to,
                    actor: r.actor,
                    created_at: r.created_at,
                    overrides: serde_json::from_str(&r.overrides).map_err(|_| corrupt())?,
                })
            })
            .collect::<Result<_, ServiceError>>()?;
        Ok(FieldMappingHistoryOut { data, next_cursor })
    }
}

/// A stored document as JSON (plain data, which cannot fail to serialise).
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Whether a key is present at a dotted path (with a value or null).
fn exists(value: &Value, path: &str) -> bool {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (lookup(value, p), l),
        None => (Some(value), path),
    };
    match parent {
        Some(Value::Object(m)) => m.contains_key(last),
        Some(Value::Array(a)) => last.parse::<usize>().is_ok_and(|i| i < a.len()),
        _ => false,
    }
}

fn problem(e: &crate::mapping::MappingError) -> String {
    match e {
        crate::mapping::MappingError::BadValue { problem, .. } => problem.clone(),
        other => other.to_string(),
    }
}

/// A unified record's body.
type Body = Map<String, Value>;

/// A record's unified body under the current and the changed overrides.
fn before_after(
    now: &ConnectionView,
    next: &ConnectionView,
    entity: Entity,
    conn_id: &str,
    record: &StoredRecord,
    raw: &Value,
) -> Result<(Body, Body), ServiceError> {
    let data: Map<String, Value> = serde_json::from_str(&record.data)
        .map_err(|_| ServiceError::Corrupt("a stored record is not JSON".into()))?;
    let under = |view: &ConnectionView| {
        let mut d = data.clone();
        if let Some(v) = view.entity(entity) {
            v.apply(conn_id, &mut d, raw);
        }
        d
    };
    Ok((under(now), under(next)))
}

/// The value of a target in a unified body (one per line for a line target).
fn pick(data: &Map<String, Value>, t: &Target) -> Value {
    let custom = |m: &Map<String, Value>, name: &str| {
        m.get("custom_fields")
            .and_then(|c| c.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match t {
        Target::Field(name) => data.get(name).cloned().unwrap_or(Value::Null),
        Target::Member(f, m) => data
            .get(f)
            .and_then(|o| o.get(m))
            .cloned()
            .unwrap_or(Value::Null),
        Target::Custom(name) => custom(data, name),
        Target::LineField(list, name) | Target::LineCustom(list, name) => Value::Array(
            data.get(list)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| match (t, i) {
                            (Target::LineCustom(..), Value::Object(m)) => custom(m, name),
                            _ => i.get(name).cloned().unwrap_or(Value::Null),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
    }
}

/// The name overrides give a target.
pub fn target_name(t: &Target) -> String {
    match t {
        Target::Field(n) => n.clone(),
        Target::Member(f, m) => format!("{f}.{m}"),
        Target::Custom(n) => format!("custom_fields.{n}"),
        Target::LineField(l, n) => format!("{l}.{n}"),
        Target::LineCustom(l, n) => format!("{l}.custom_fields.{n}"),
    }
}

fn entry(
    target: String,
    scope: &str,
    rule: Option<&FieldRule>,
    origin: MappingOrigin,
    remappable: bool,
) -> FieldMappingOut {
    FieldMappingOut {
        target,
        scope: scope.to_string(),
        source_path: rule.and_then(|r| r.path.clone()),
        conversion: rule.and_then(target::conversion_of),
        origin,
        remappable,
        removed: false,
    }
}

/// A target's default entry (what deleting its override leaves).
fn default_entry(def: &MappingDef, t: &Target) -> FieldMappingOut {
    let mut e = entry(
        target_name(t),
        t.list().unwrap_or("record"),
        t.default_rule(def),
        MappingOrigin::Default,
        true,
    );
    if t.is_custom() {
        e.source_path = None;
    }
    e
}

/// The effective mapping of one entity under `overrides`.
fn effective_of(
    def: &MappingDef,
    version: i64,
    overrides: &[FieldMappingOverride],
) -> EntityFieldMappingsOut {
    let entity = def.entity;
    let spec = entity.spec();
    let mine: Vec<&FieldMappingOverride> =
        overrides.iter().filter(|o| o.entity == entity).collect();
    let over = |target: &str| mine.iter().find(|o| o.target == target).copied();
    let with_override = |mut e: FieldMappingOut| {
        if let Some(o) = over(&e.target) {
            e.origin = MappingOrigin::Override;
            e.source_path = o.source_path.clone();
            e.conversion = o.conversion.clone();
            e.removed = o.remove;
        }
        e
    };
    let mut fields = Vec::new();
    for name in spec.fields {
        if *name == "custom_fields" || entity.list(name).is_some() {
            continue;
        }
        let rule = def.fields.iter().find(|(n, _)| n == name).map(|(_, r)| r);
        match rule {
            Some(r) if r.kind == Kind::Object => {
                for (member, sub) in r.fields.iter().flatten() {
                    fields.push(with_override(entry(
                        format!("{name}.{member}"),
                        "record",
                        Some(sub),
                        MappingOrigin::Default,
                        true,
                    )));
                }
            }
            _ => fields.push(with_override(entry(
                (*name).to_string(),
                "record",
                rule,
                MappingOrigin::Default,
                true,
            ))),
        }
    }
    for list in spec.lists {
        let source = def.lists.iter().find(|l| l.target == list.field);
        for name in list.fields {
            if *name == "custom_fields" {
                continue;
            }
            let fixed = ["id", "remote_id"].contains(name);
            let rule = if *name == "remote_id" {
                None
            } else {
                source.and_then(|l| l.fields.iter().find(|(n, _)| n == name).map(|(_, r)| r))
            };
            let mut e = entry(
                format!("{}.{name}", list.field),
                list.field,
                rule,
                MappingOrigin::Default,
                !fixed,
            );
            if *name == "remote_id" {
                e.source_path = source.map(|l| l.remote_id.clone());
                e.conversion = Some(Conversion {
                    kind: ConversionType::Text,
                    values: None,
                    default: None,
                    entity: None,
                });
            }
            fields.push(if fixed { e } else { with_override(e) });
        }
    }
    for o in &mine {
        let custom = o.target.starts_with("custom_fields.") || o.target.contains(".custom_fields.");
        if custom {
            let scope = o
                .target
                .split_once(".custom_fields.")
                .map_or("record", |(l, _)| l);
            fields.push(FieldMappingOut {
                target: o.target.clone(),
                scope: scope.to_string(),
                source_path: o.source_path.clone(),
                conversion: o.conversion.clone(),
                origin: MappingOrigin::Override,
                remappable: true,
                removed: o.remove,
            });
        }
    }
    let mut custom_field_sources = Vec::new();
    if let Some(c) = &def.custom_fields {
        custom_field_sources.push(CustomFieldSourceOut {
            scope: "record".into(),
            object: c.object.clone(),
            prefixes: c.prefixes.clone(),
        });
    }
    for l in &def.lists {
        if let Some(c) = &l.custom_fields {
            custom_field_sources.push(CustomFieldSourceOut {
                scope: l.target.clone(),
                object: c.object.clone(),
                prefixes: c.prefixes.clone(),
            });
        }
    }
    let lists = def
        .lists
        .iter()
        .map(|l| ListSourceOut {
            target: l.target.clone(),
            source_path: l.path.clone(),
            remote_id_path: l.remote_id.clone(),
        })
        .collect();
    EntityFieldMappingsOut {
        entity,
        version,
        fields,
        custom_field_sources,
        lists,
    }
}

/// Places a write's fields named through overrides where the source takes them: a custom
/// field added from a top-level source field is written under that field's name (a custom
/// field of the source), and so is a unified field remapped to one. A field mapped from a
/// path the system cannot write is refused, naming the caller's field.
pub fn translate_write(
    view: &EntityView,
    system: &SystemDescriptor,
    entity: Entity,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ServiceError> {
    view.translate(system, entity, body)
}

impl EntityView {
    fn translate(
        &self,
        system: &SystemDescriptor,
        entity: Entity,
        body: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ServiceError> {
        let custom_rules = system.write(entity).map(|w| &w.custom_fields);
        let takes = |name: &str| {
            custom_rules.is_some_and(|c| {
                c.any_name
                    || c.prefixes.iter().any(|p| name.starts_with(p))
                    || c.fields.iter().any(|f| f.name == name && !f.read_only)
            })
        };
        let mut out = body.clone();
        for (target, rule) in self.header_rules() {
            let (name, from_custom) = match target {
                Target::Field(n) => (n.as_str(), false),
                Target::Custom(n) => (n.as_str(), true),
                _ => continue,
            };
            let given = if from_custom {
                out.get_mut("custom_fields")
                    .and_then(Value::as_object_mut)
                    .and_then(|c| c.shift_remove(name))
            } else {
                out.shift_remove(name)
            };
            let Some(value) = given else { continue };
            let param = target_name(target);
            let path = rule.path.as_deref().unwrap_or_default();
            if path.contains('.') || !takes(path) {
                return Err(invalid(
                    param.clone(),
                    format!(
                        "`{param}` is mapped from `{path}` for this connection, which Ironbridge cannot write to {}.",
                        system.name
                    ),
                ));
            }
            let value = match rule.kind {
                Kind::Enum => rule
                    .values
                    .iter()
                    .flatten()
                    .find(|(_, unified)| **unified == value)
                    .map(|(source, _)| Value::String(source.clone()))
                    .ok_or_else(|| {
                        invalid(
                            param.clone(),
                            format!(
                                "{value} is not a value `{param}` maps from for this connection."
                            ),
                        )
                    })?,
                _ => value,
            };
            let custom = out
                .entry("custom_fields")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(c) = custom {
                c.insert(path.to_string(), value);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presence_is_told_from_a_value() {
        let v = json!({"a": {"b": null}, "l": [1]});
        assert!(exists(&v, "a.b"));
        assert!(!exists(&v, "a.c"));
        assert!(exists(&v, "l.0"));
        assert!(!exists(&v, "l.1"));
        assert!(!exists(&v, "x.y"));
    }
}
