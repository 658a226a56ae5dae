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
    /// The element members the slots change.
    keys: Vec<String>,
}

impl LineView {
    /// The source line of a list element (the one at the same index when its key matches:
    /// lines are mapped in source order; else the one with its key).
    fn source_of<'v>(
        &self,
        item: &Map<String, Value>,
        sources: &'v [Value],
        i: usize,
    ) -> &'v Value {
        let key = item.get("remote_id").and_then(Value::as_str);
        let same = |e: &Value| {
            lookup(e, &self.remote_id)
                .and_then(key_text)
                .is_some_and(|k| Some(k.as_str()) == key)
        };
        sources
            .get(i)
            .filter(|e| same(e))
            .or_else(|| sources.iter().find(|e| same(e)))
            .unwrap_or(&NULL)
    }

    /// The source lines of a source record.
    fn sources<'v>(&self, raw: &'v Value) -> &'v [Value] {
        match lookup(raw, &self.path) {
            Some(Value::Array(a)) => a.as_slice(),
            _ => &[],
        }
    }
}

/// One entity's overrides, compiled.
#[derive(Debug, Clone)]
pub struct EntityView {
    entity: Entity,
    header: Vec<(Target, Slot)>,
    /// The body members the header slots change.
    header_keys: Vec<String>,
    /// The lists with slots (`line_items`).
    list_targets: Vec<String>,
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
            header_keys: Vec::new(),
            list_targets: Vec::new(),
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
                let key = member_of(&target);
                if !self.header_keys.contains(&key) {
                    self.header_keys.push(key);
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
                        self.list_targets.push(source.target.clone());
                        self.lines.push(LineView {
                            target: source.target.clone(),
                            path: source.path.clone(),
                            remote_id: source.remote_id.clone(),
                            slots: Vec::new(),
                            keys: Vec::new(),
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
                let key = member_of(&target);
                if !line.keys.contains(&key) {
                    line.keys.push(key);
                }
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
            let sources = line.sources(raw);
            let Some(Value::Array(items)) = data.get_mut(&line.target) else {
                continue;
            };
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Object(item) = item {
                    self.apply_line(connection_id, line, item, sources, i);
                }
            }
        }
    }

    /// One list element's overrides, from its source line (the element at the same index when
    /// its key matches: lines are mapped in source order; else the one with its key).
    fn apply_line(
        &self,
        connection_id: &str,
        line: &LineView,
        item: &mut Map<String, Value>,
        sources: &[Value],
        i: usize,
    ) {
        let source = line.source_of(item, sources, i);
        for (target, slot) in &line.slots {
            self.set(connection_id, item, target, slot, source);
        }
    }

    /// The values custom field slots give (`None`: removed), from `source`.
    fn custom_changes<'s>(
        connection_id: &str,
        slots: &'s [(Target, Slot)],
        source: &Value,
    ) -> Vec<(&'s str, Option<Value>)> {
        slots
            .iter()
            .filter_map(|(t, slot)| match (t, slot) {
                (Target::Custom(n) | Target::LineCustom(_, n), Slot::Remove) => {
                    Some((n.as_str(), None))
                }
                (Target::Custom(n) | Target::LineCustom(_, n), Slot::Set(rule)) => Some((
                    n.as_str(),
                    Some(convert(connection_id, n, rule, source).unwrap_or(Value::Null)),
                )),
                _ => None,
            })
            .collect()
    }

    /// [`EntityView::apply`] on a body's JSON text, in one pass over it: only the members the
    /// overrides touch are parsed into trees (in a list with overrides, only the touched
    /// members of each element); every other member is copied as text.
    pub fn apply_text(
        &self,
        connection_id: &str,
        data: &str,
        raw: &Value,
    ) -> Result<String, serde_json::Error> {
        let members = text::members(data, &self.list_targets)?;
        let mut touched = Map::new();
        for (k, v) in &members {
            if let text::Part::Raw(v) = v
                && k != "custom_fields"
                && self.header_keys.iter().any(|h| h == k.as_ref())
            {
                touched.insert(k.to_string(), serde_json::from_str(v.get())?);
            }
        }
        for (target, slot) in &self.header {
            if !target.is_custom() {
                self.set(connection_id, &mut touched, target, slot, raw);
            }
        }
        // Custom fields are spliced into the object's text rather than parsed.
        let mut custom = Self::custom_changes(connection_id, &self.header, raw);
        let mut out = String::with_capacity(data.len() + 256);
        let mut object = text::Writer::open(&mut out);
        for (k, v) in &members {
            if let Some(value) = touched.shift_remove(k.as_ref()) {
                object.member(k, &value.to_string());
                continue;
            }
            if k == "custom_fields"
                && !custom.is_empty()
                && let text::Part::Raw(v) = v
            {
                text::splice(v.get(), &std::mem::take(&mut custom), object.key(k))?;
                continue;
            }
            match v {
                text::Part::Raw(v) => object.member(k, v.get()),
                text::Part::Elements(None) => object.member(k, "null"),
                text::Part::Elements(Some(elements)) => {
                    let line = self.lines.iter().find(|l| l.target == k.as_ref());
                    let out = object.key(k);
                    match line {
                        Some(line) => self.lines_text(connection_id, line, elements, raw, out)?,
                        None => text::copy_elements(elements, out),
                    }
                }
            }
        }
        for (k, value) in &touched {
            object.member(k, &value.to_string());
        }
        if !custom.is_empty() {
            text::splice("{}", &custom, object.key("custom_fields"))?;
        }
        object.close();
        Ok(out)
    }

    fn lines_text(
        &self,
        connection_id: &str,
        line: &LineView,
        elements: &[text::Members<'_>],
        raw: &Value,
        out: &mut String,
    ) -> Result<(), serde_json::Error> {
        let sources = line.sources(raw);
        out.push('[');
        for (i, members) in elements.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut touched = Map::new();
            for (k, v) in members {
                if let text::Part::Raw(v) = v
                    && k != "custom_fields"
                    && (k == "remote_id" || line.keys.iter().any(|n| n == k.as_ref()))
                {
                    touched.insert(k.to_string(), serde_json::from_str(v.get())?);
                }
            }
            let source = line.source_of(&touched, sources, i);
            for (target, slot) in &line.slots {
                if !target.is_custom() {
                    self.set(connection_id, &mut touched, target, slot, source);
                }
            }
            let mut custom = Self::custom_changes(connection_id, &line.slots, source);
            let mut item = text::Writer::open(out);
            for (k, v) in members {
                match (touched.shift_remove(k.as_ref()), v) {
                    (Some(value), _) => item.member(k, &value.to_string()),
                    (None, text::Part::Raw(v)) if k == "custom_fields" && !custom.is_empty() => {
                        text::splice(v.get(), &std::mem::take(&mut custom), item.key(k))?;
                    }
                    (None, text::Part::Raw(v)) => item.member(k, v.get()),
                    (None, text::Part::Elements(_)) => item.member(k, "null"),
                }
            }
            for (k, value) in &touched {
                item.member(k, &value.to_string());
            }
            if !custom.is_empty() {
                text::splice("{}", &custom, item.key("custom_fields"))?;
            }
            item.close();
        }
        out.push(']');
        Ok(())
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
        record.data = self
            .apply_text(connection_id, &record.data, &source)
            .map_err(|_| corrupt("record"))?;
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

static NULL: Value = Value::Null;

/// The member of a body (or of a list element) a target changes.
fn member_of(target: &Target) -> String {
    match target {
        Target::Field(n) | Target::LineField(_, n) => n.clone(),
        Target::Member(f, _) => f.clone(),
        Target::Custom(_) | Target::LineCustom(..) => "custom_fields".into(),
    }
}

/// JSON objects as member texts, and written back from them.
mod text {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    use super::super::select::Key;

    /// A member's value: its text, or, for a list the overrides change, its elements'
    /// members (`None`: the list is null).
    pub enum Part<'a> {
        Raw(&'a RawValue),
        Elements(Option<Vec<Members<'a>>>),
    }

    /// A JSON object's members.
    pub type Members<'a> = Vec<(Cow<'a, str>, Part<'a>)>;

    /// The members of the JSON object `text`, the elements of the members named in `lists`
    /// split into their members too, in one pass.
    pub fn members<'a>(text: &'a str, lists: &[String]) -> Result<Members<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let members = Object { lists }.deserialize(&mut de)?;
        de.end()?;
        Ok(members)
    }

    struct Object<'l> {
        lists: &'l [String],
    }

    impl<'de> DeserializeSeed<'de> for Object<'_> {
        type Value = Members<'de>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Members<'de>, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Object<'_> {
        type Value = Members<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
            let mut out = Vec::new();
            while let Some(Key(k)) = map.next_key()? {
                let part = if self.lists.iter().any(|l| l == k.as_ref()) {
                    Part::Elements(map.next_value_seed(List)?)
                } else {
                    Part::Raw(map.next_value()?)
                };
                out.push((k, part));
            }
            Ok(out)
        }
    }

    struct List;

    impl<'de> DeserializeSeed<'de> for List {
        type Value = Option<Vec<Members<'de>>>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for List {
        type Value = Option<Vec<Members<'de>>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of objects, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(m) = seq.next_element_seed(Object { lists: &[] })? {
                out.push(m);
            }
            Ok(Some(out))
        }
    }

    /// Writes the object `text` with `changes` made to it: a member set to `Some` value is
    /// replaced in place (or added at the end), one set to `None` left out. A value that is
    /// not an object (a damaged body) is written as an object of the set members alone.
    pub fn splice(
        text: &str,
        changes: &[(&str, Option<serde_json::Value>)],
        out: &mut String,
    ) -> Result<(), serde_json::Error> {
        let members = if text.trim_start().starts_with('{') {
            members(text, &[])?
        } else {
            Vec::new()
        };
        let mut item = Writer::open(out);
        let mut done = vec![false; changes.len()];
        for (k, v) in &members {
            match changes.iter().position(|(n, _)| *n == k.as_ref()) {
                Some(i) => {
                    done[i] = true;
                    if let Some(value) = &changes[i].1 {
                        item.member(k, &value.to_string());
                    }
                }
                None => match v {
                    Part::Raw(v) => item.member(k, v.get()),
                    Part::Elements(_) => item.member(k, "null"),
                },
            }
        }
        for ((name, value), done) in changes.iter().zip(done) {
            if let (Some(value), false) = (value, done) {
                item.member(name, &value.to_string());
            }
        }
        item.close();
        Ok(())
    }

    /// Writes list elements back as they were.
    pub fn copy_elements(elements: &[Members<'_>], out: &mut String) {
        out.push('[');
        for (i, members) in elements.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut item = Writer::open(out);
            for (k, v) in members {
                match v {
                    Part::Raw(v) => item.member(k, v.get()),
                    Part::Elements(_) => item.member(k, "null"),
                }
            }
            item.close();
        }
        out.push(']');
    }

    /// Writes an object member by member into a string.
    pub struct Writer<'o> {
        out: &'o mut String,
        first: bool,
    }

    impl<'o> Writer<'o> {
        pub fn open(out: &'o mut String) -> Self {
            out.push('{');
            Writer { out, first: true }
        }

        /// Writes `"name":` and gives the string to write the value into.
        pub fn key(&mut self, name: &str) -> &mut String {
            if !self.first {
                self.out.push(',');
            }
            self.first = false;
            // Member names are almost always plain; only others go through the escaper.
            if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                self.out.push('"');
                self.out.push_str(name);
                self.out.push('"');
            } else {
                self.out
                    .push_str(&serde_json::Value::String(name.to_string()).to_string());
            }
            self.out.push(':');
            self.out
        }

        /// Appends `"name":value` (`value` is JSON text).
        pub fn member(&mut self, name: &str, value: &str) {
            self.key(name).push_str(value);
        }

        pub fn close(self) {
            self.out.push('}');
        }
    }
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
                o(
                    "line_items.custom_fields.lc",
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
            "line_items": [{"remote_id": "1", "description": "d1", "custom_fields": {"k": 1}}, {"remote_id": "2", "description": "d2"}]})
        .as_object()
        .unwrap()
        .clone();
        // The partial parse reads what the whole tree would, and the text patch writes what
        // the tree patch makes.
        let parsed = view.paths().parse(&raw.to_string()).unwrap();
        let text = view
            .apply_text("c", &Value::Object(data.clone()).to_string(), &parsed)
            .unwrap();
        view.apply("c", &mut data, &parsed);
        assert_eq!(text, Value::Object(data.clone()).to_string());
        assert_eq!(
            Value::Object(data),
            json!({"memo": "from note2", "custom_fields": {"keep": 2, "cc": 42},
                "line_items": [{"remote_id": "1", "description": "A1", "custom_fields": {"k": 1, "lc": "A1"}},
                               {"remote_id": "2", "description": null, "custom_fields": {"lc": null}}]})
        );
    }
}
