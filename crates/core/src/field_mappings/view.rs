//! A connection's overrides compiled for reading: per entity, the rules to run over each
//! record's stored source payload and the paths to parse of it. The stored unified body
//! (mapped by the default mapping when the record was synced) is patched, not rebuilt, so a
//! page costs one partial parse per record more than without overrides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ironbridge_model::Entity;
use ironbridge_model::field_mappings::FieldMappingOverride;
use serde_json::{Map, Value};

use super::select::Paths;
use super::target::{Target, rule_of};
use crate::mapping::{FieldRule, Kind, MappingDef, convert, key_text, lookup};
use crate::service::ServiceError;
use crate::store::{Connection, StoredRecord};
use crate::system::SystemDescriptor;

/// One compiled override.
#[derive(Debug, Clone)]
enum Slot {
    /// Set from a rule.
    Set(Box<FieldRule>),
    /// A custom field removed.
    Remove,
}

/// The overrides of one list's elements.
#[derive(Debug, Clone)]
struct LineView {
    /// Unified list field (`line_items`).
    target: String,
    /// Source array path.
    path: String,
    /// Source key path within an element.
    remote_id: String,
    /// (field or `custom_fields.<name>`, slot) for each element.
    slots: Vec<(Target, Slot)>,
}

/// One entity's overrides, compiled.
#[derive(Debug, Clone)]
pub struct EntityView {
    entity: Entity,
    header: Vec<(Target, Slot)>,
    /// Members of each object field the default mapping builds (to fill a new object).
    members: HashMap<String, Vec<String>>,
    lines: Vec<LineView>,
    paths: Paths,
}

/// A connection's overrides at one version, compiled.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    /// The mapping version compiled.
    pub version: i64,
    entities: Vec<EntityView>,
}

impl ConnectionView {
    /// Compiles `overrides` against the system's default mappings. An override that no
    /// longer fits them (a target a newer release dropped) is skipped and returned, so
    /// reads go on with the others.
    pub fn compile(
        system: &SystemDescriptor,
        version: i64,
        overrides: &[FieldMappingOverride],
    ) -> (ConnectionView, Vec<String>) {
        let mut entities: Vec<EntityView> = Vec::new();
        let mut skipped = Vec::new();
        for o in overrides {
            let Some(def) = system.mapping(o.entity) else {
                skipped.push(format!("{} {}", o.entity, o.target));
                continue;
            };
            let Ok(target) = Target::parse(o.entity, def, &o.target) else {
                skipped.push(format!("{} {}", o.entity, o.target));
                continue;
            };
            let slot = match (&o.source_path, &o.conversion, o.remove) {
                (_, _, true) if target.is_custom() => Slot::Remove,
                (Some(path), Some(conversion), false) => {
                    Slot::Set(Box::new(rule_of(path, conversion)))
                }
                _ => {
                    skipped.push(format!("{} {}", o.entity, o.target));
                    continue;
                }
            };
            let view = match entities.iter_mut().position(|v| v.entity == o.entity) {
                Some(i) => &mut entities[i],
                None => {
                    entities.push(EntityView::new(def));
                    entities.last_mut().expect("just pushed")
                }
            };
            view.add(def, target, slot);
        }
        (ConnectionView { version, entities }, skipped)
    }

    /// The compiled overrides of `entity`, if it has any.
    pub fn entity(&self, entity: Entity) -> Option<&EntityView> {
        self.entities.iter().find(|v| v.entity == entity)
    }
}

impl EntityView {
    fn new(def: &MappingDef) -> Self {
        let members = def
            .fields
            .iter()
            .filter(|(_, r)| r.kind == Kind::Object)
            .map(|(n, r)| {
                (
                    n.clone(),
                    r.fields.iter().flatten().map(|(m, _)| m.clone()).collect(),
                )
            })
            .collect();
        EntityView {
            entity: def.entity,
            header: Vec::new(),
            members,
            lines: Vec::new(),
            paths: Paths::default(),
        }
    }

    fn add(&mut self, def: &MappingDef, target: Target, slot: Slot) {
        let path = match &slot {
            Slot::Set(rule) => rule.path.clone(),
            Slot::Remove => None,
        };
        match target.list() {
            None => {
                if let Some(p) = path {
                    self.paths.add(&p);
                }
                self.header.push((target, slot));
            }
            Some(list) => {
                let Some(source) = def.lists.iter().find(|l| l.target == list) else {
                    return;
                };
                let line = match self.lines.iter_mut().position(|l| l.target == list) {
                    Some(i) => &mut self.lines[i],
                    None => {
                        self.lines.push(LineView {
                            target: source.target.clone(),
                            path: source.path.clone(),
                            remote_id: source.remote_id.clone(),
                            slots: Vec::new(),
                        });
                        self.lines.last_mut().expect("just pushed")
                    }
                };
                let mut each = Paths::default();
                each.add(&line.remote_id);
                if let Some(p) = path {
                    each.add(&p);
                }
                self.paths.add_each(&line.path, each);
                line.slots.push((target, slot));
            }
        }
    }

    /// Patches a record's unified body (`data`, as the default mapping made it) from its
    /// source payload (`raw`, whole or parsed with [`EntityView::paths`]). A value that does
    /// not convert reads as null: the override was checked against the stored records when
    /// it was saved, and one bad record must not fail a page.
    pub fn apply(&self, connection_id: &str, data: &mut Map<String, Value>, raw: &Value) {
        for (target, slot) in &self.header {
            self.set(connection_id, data, target, slot, raw);
        }
        for line in &self.lines {
            let sources = match lookup(raw, &line.path) {
                Some(Value::Array(a)) => a.as_slice(),
                _ => &[],
            };
            let Some(Value::Array(items)) = data.get_mut(&line.target) else {
                continue;
            };
            for (i, item) in items.iter_mut().enumerate() {
                let Value::Object(item) = item else { continue };
                let key = item.get("remote_id").and_then(Value::as_str);
                // Lines are mapped in source order, so the same index is the same line; the
                // key is checked all the same, and searched for if they ever differ.
                let same = |e: &Value| {
                    lookup(e, &line.remote_id)
                        .and_then(key_text)
                        .is_some_and(|k| Some(k.as_str()) == key)
                };
                let source = sources
                    .get(i)
                    .filter(|e| same(e))
                    .or_else(|| sources.iter().find(|e| same(e)))
                    .unwrap_or(&Value::Null);
                for (target, slot) in &line.slots {
                    self.set(connection_id, item, target, slot, source);
                }
            }
        }
    }

    fn set(
        &self,
        connection_id: &str,
        data: &mut Map<String, Value>,
        target: &Target,
        slot: &Slot,
        source: &Value,
    ) {
        let value = |name: &str| match slot {
            Slot::Set(rule) => convert(connection_id, name, rule, source).unwrap_or(Value::Null),
            Slot::Remove => Value::Null,
        };
        match target {
            Target::Field(name) | Target::LineField(_, name) => {
                let v = value(name);
                data.insert(name.clone(), v);
            }
            Target::Member(field, member) => {
                let v = value(member);
                let entry = data.entry(field.clone()).or_insert(Value::Null);
                if !entry.is_object() {
                    let names = self.members.get(field).map(Vec::as_slice).unwrap_or(&[]);
                    *entry = Value::Object(
                        names
                            .iter()
                            .map(|n| (n.clone(), Value::Null))
                            .collect::<Map<_, _>>(),
                    );
                }
                if let Value::Object(obj) = entry {
                    obj.insert(member.clone(), v);
                    if obj.values().all(Value::is_null) {
                        *entry = Value::Null;
                    }
                }
            }
            Target::Custom(name) | Target::LineCustom(_, name) => {
                let custom = data
                    .entry("custom_fields")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !custom.is_object() {
                    *custom = Value::Object(Map::new());
                }
                if let Value::Object(custom) = custom {
                    match slot {
                        Slot::Remove => {
                            custom.shift_remove(name);
                        }
                        Slot::Set(_) => {
                            custom.insert(name.clone(), value(name));
                        }
                    }
                }
            }
        }
    }

    /// The overrides of the record's own fields that read a source path.
    pub(crate) fn header_rules(&self) -> impl Iterator<Item = (&Target, &FieldRule)> {
        self.header.iter().filter_map(|(t, s)| match s {
            Slot::Set(r) => Some((t, r.as_ref())),
            Slot::Remove => None,
        })
    }

    /// The paths of a source payload these overrides read.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// A stored record (read with its source payload) with its body patched.
    pub fn apply_record(
        &self,
        connection_id: &str,
        record: &mut StoredRecord,
    ) -> Result<(), ServiceError> {
        let Some(raw) = record.raw.as_deref() else {
            return Ok(());
        };
        let corrupt = |what: &str| ServiceError::Corrupt(format!("a stored {what} is not JSON"));
        let source = self
            .paths
            .parse(raw)
            .map_err(|_| corrupt("source payload"))?;
        let mut data: Map<String, Value> =
            serde_json::from_str(&record.data).map_err(|_| corrupt("record"))?;
        self.apply(connection_id, &mut data, &source);
        record.data = Value::Object(data).to_string();
        Ok(())
    }
}

/// The view of `conn` at its current version, read from the store and compiled (`None`: it
/// has no overrides).
pub async fn load(
    store: &dyn crate::store::Store,
    system: &SystemDescriptor,
    conn: &Connection,
) -> Result<Option<ConnectionView>, ServiceError> {
    if conn.mapping_version == 0 {
        return Ok(None);
    }
    let org = crate::store::OrgId(conn.org_id.clone());
    let id = crate::store::ConnId(conn.id.clone());
    let saved = store
        .field_mapping_version(&org, &id, conn.mapping_version)
        .await?
        .ok_or_else(|| {
            ServiceError::Corrupt("the connection's field mapping version is missing".into())
        })?;
    let overrides: Vec<FieldMappingOverride> = serde_json::from_str(&saved.overrides)
        .map_err(|_| ServiceError::Corrupt("stored field mappings are unreadable".into()))?;
    let (view, skipped) = ConnectionView::compile(system, saved.version, &overrides);
    if !skipped.is_empty() {
        tracing::warn!(connection = %conn.id, ?skipped, "field mapping overrides that no longer fit the system's mapping are not applied");
    }
    Ok(Some(view))
}

/// Compiled views by connection, each kept while its version is the connection's: every
/// request reads the connection's row (with its `mapping_version`), so a change made by any
/// API process is seen by all at their next request, with no message between them.
#[derive(Debug, Default)]
pub struct ViewCache {
    views: Mutex<HashMap<String, Arc<ConnectionView>>>,
}

/// Connections whose views are kept before the cache starts over.
const CACHE_MAX: usize = 10_000;

impl ViewCache {
    /// The view of `conn` at its current version (`None`: it has no overrides).
    pub async fn view(
        &self,
        store: &dyn crate::store::Store,
        system: &SystemDescriptor,
        conn: &Connection,
    ) -> Result<Option<Arc<ConnectionView>>, ServiceError> {
        if conn.mapping_version == 0 {
            return Ok(None);
        }
        if let Some(v) = self.get(&conn.id)
            && v.version == conn.mapping_version
        {
            return Ok(Some(v));
        }
        let Some(view) = load(store, system, conn).await? else {
            return Ok(None);
        };
        let view = Arc::new(view);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if views.len() >= CACHE_MAX {
            views.clear();
        }
        views.insert(conn.id.clone(), view.clone());
        Ok(Some(view))
    }

    fn get(&self, id: &str) -> Option<Arc<ConnectionView>> {
        self.views
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_patch_the_body_from_the_source() {
        let system = &crate::sandbox::DESCRIPTOR;
        let o =
            |target: &str, path: Option<&str>, conv: Value, remove: bool| FieldMappingOverride {
                entity: Entity::PURCHASE_ORDER,
                target: target.into(),
                source_path: path.map(str::to_string),
                conversion: (!conv.is_null()).then(|| serde_json::from_value(conv).unwrap()),
                remove,
            };
        let def = system.mapping(Entity::PURCHASE_ORDER).unwrap();
        let line_path = def.lists[0].path.clone();
        let line_key = def.lists[0].remote_id.clone();
        let (view, skipped) = ConnectionView::compile(
            system,
            3,
            &[
                o("memo", Some("note2"), json!({"type": "text"}), false),
                o(
                    "custom_fields.cc",
                    Some("extra.cc"),
                    json!({"type": "integer"}),
                    false,
                ),
                o("custom_fields.old", None, Value::Null, true),
                o(
                    "line_items.description",
                    Some("alt"),
                    json!({"type": "text"}),
                    false,
                ),
                o("colour", Some("x"), json!({"type": "text"}), false),
            ],
        );
        assert_eq!(skipped.len(), 1);
        let view = view.entity(Entity::PURCHASE_ORDER).unwrap();
        let raw = json!({"note2": "from note2", "extra": {"cc": "42"},
            line_path.clone(): [{line_key.clone(): "1", "alt": "A1"}, {line_key.clone(): "2"}]});
        let mut data = json!({"memo": "m", "custom_fields": {"old": 1, "keep": 2},
            "line_items": [{"remote_id": "1", "description": "d1"}, {"remote_id": "2", "description": "d2"}]})
        .as_object()
        .unwrap()
        .clone();
        // The partial parse reads what the whole tree would.
        let parsed = view.paths().parse(&raw.to_string()).unwrap();
        view.apply("c", &mut data, &parsed);
        assert_eq!(
            Value::Object(data),
            json!({"memo": "from note2", "custom_fields": {"keep": 2, "cc": 42},
                "line_items": [{"remote_id": "1", "description": "A1"}, {"remote_id": "2", "description": null}]})
        );
    }
}
