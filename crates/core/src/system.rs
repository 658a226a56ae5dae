//! System descriptors and their registry. Each connector module exports one
//! [`SystemDescriptor`]: its id and name, the credentials and settings it takes, the entities
//! it reads and how, the writes it supports, its documented limits, its default mappings and
//! how to build its connector. The [`Registry`] lists the descriptors of a build; `GET
//! /v1/systems`, the capability matrix, the entities a sync reads and the connector factory
//! are all derived from it, so adding a system edits no central `match`.

use std::sync::{Arc, OnceLock};

use ironbridge_model::Entity;
use ironbridge_model::api::{
    CredentialOptionOut, DeletionDetection, EntityCapability, FieldFormat, FieldOut, ReadKind,
    SystemCapabilities, SystemId, SystemLimits,
};
use serde_json::{Map, Value};

use crate::clock::{Clock, Sleeper};
use crate::connector::{Connector, ConnectorError};
use crate::mapping::MappingDef;
use crate::netguard::Egress;

/// How a system reads one entity.
#[derive(Debug, Clone, Copy)]
pub struct ReadSpec {
    /// The entity.
    pub entity: Entity,
    /// How its records are read.
    pub kind: ReadKind,
    /// How deletions reach Ironbridge.
    pub deletions: DeletionDetection,
    /// Whether a record read carries the whole source record or only some of its members.
    pub payload: Payload,
    /// Time series only: after its history is back-filled by time, the entity follows the
    /// source's change feed from a stored cursor (a fetch with [`FEED_CURSOR_PREFIX`]
    /// cursors), polled on the worker's short interval apart from the hourly sync.
    pub follows_feed: bool,
}

/// Cursors of a followed feed start with this (`feed:` alone opens the feed afresh), so a
/// connector tells them from the cursors of its history pages.
pub const FEED_CURSOR_PREFIX: &str = "feed:";

/// What one record the source sends carries of the source's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// All of it: a record read replaces the stored one.
    Whole,
    /// Some of its members: a record read (or a write's answer) is laid over the stored
    /// payload, and the members it lacks are kept ([`crate::partial`]). ASCTrac's order
    /// status rows carry no lines; the lines are the ones Ironbridge wrote.
    Partial,
}

/// Which writes a system supports for one entity, and what they take: one description per
/// system and entity, from which `GET /v1/meta/{entity}` is built and against which every
/// write is validated before the source is called (so the two never disagree).
#[derive(Debug, Clone, Copy)]
pub struct WriteSpec {
    /// The entity.
    pub entity: Entity,
    /// `POST` creates records.
    pub create: bool,
    /// `PATCH` updates records.
    pub update: bool,
    /// Every unified body field of the entity (the catalogue's, `custom_fields` aside), in
    /// catalogue order: writable or read-only, with its type and rules.
    pub fields: &'static [WriteField],
    /// The custom fields the system can write.
    pub custom_fields: CustomFields,
}

/// The kind of value a writable field takes (and how a write's value is checked).
#[derive(Debug, Clone, Copy)]
pub enum WriteType {
    /// Text.
    String,
    /// A decimal amount (a string of digits or a number), within a range.
    Decimal(DecimalRange),
    /// `true` or `false`.
    Boolean,
    /// A whole number (read-only fields only).
    Integer,
    /// A measurement as a JSON number (coordinates), from `min` to `max`.
    Number {
        /// The least value.
        min: f64,
        /// The greatest value.
        max: f64,
    },
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 date-time with an offset, written normalised to UTC.
    Datetime,
    /// One of these values (the unified ones).
    Enum(&'static [&'static str]),
    /// An Ironbridge id of this entity, resolved to the source's key before the write.
    Reference(Entity),
    /// An ISO 4217 code of three capital letters.
    Currency,
    /// An e-mail address.
    Email,
    /// An object with these fields.
    Object(&'static [WriteField]),
    /// A list of objects with these fields, at least `min` of them (a write replaces the whole
    /// list).
    List {
        /// The elements' fields.
        fields: &'static [WriteField],
        /// The fewest elements.
        min: u32,
    },
    /// Any JSON value (read-only envelope data).
    Any,
}

/// The values a decimal field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalRange {
    /// Any amount.
    Any,
    /// Zero or more.
    NonNegative,
    /// More than zero.
    Positive,
}

/// One field of an entity's write description.
#[derive(Debug, Clone, Copy)]
pub struct WriteField {
    /// The unified field name.
    pub name: &'static str,
    /// Its type.
    pub ty: WriteType,
    /// A create must give it.
    pub required: bool,
    /// Shown on records but refused in writes.
    pub read_only: bool,
    /// An update may change it.
    pub updatable: bool,
    /// The most characters the system keeps (text).
    pub max_length: Option<u32>,
    /// An update may clear it with `null` (a JSON merge patch: Samsara unassigns a route's
    /// driver so); elsewhere a `null` is the same as leaving the field out.
    pub clearable: bool,
    /// What it is and where it goes in the system.
    pub description: &'static str,
}

impl WriteField {
    /// An optional field that creates and updates may set.
    pub const fn new(name: &'static str, ty: WriteType, description: &'static str) -> Self {
        WriteField {
            name,
            ty,
            required: false,
            read_only: false,
            updatable: true,
            max_length: None,
            clearable: false,
            description,
        }
    }

    /// The same field, required on create.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The same field, shown but never written.
    pub const fn read_only(mut self) -> Self {
        self.read_only = true;
        self.updatable = false;
        self.required = false;
        self
    }

    /// The same field, set on create only.
    pub const fn create_only(mut self) -> Self {
        self.updatable = false;
        self
    }

    /// The same field, at most `n` characters.
    pub const fn max(mut self, n: u32) -> Self {
        self.max_length = Some(n);
        self
    }

    /// The same field, which an update clears with `null` (the connector receives the
    /// `null`).
    pub const fn clearable(mut self) -> Self {
        self.clearable = true;
        self
    }
}

/// The custom fields a system can write for an entity.
#[derive(Debug, Clone, Copy)]
pub struct CustomFields {
    /// Custom fields known by name, with their types.
    pub fields: &'static [WriteField],
    /// Other names taken when they start with one of these.
    pub prefixes: &'static [&'static str],
    /// Any name is taken.
    pub any_name: bool,
}

impl CustomFields {
    /// No custom fields can be written.
    pub const NONE: CustomFields = CustomFields {
        fields: &[],
        prefixes: &[],
        any_name: false,
    };

    /// Whether any custom field can be written.
    pub fn writable(&self) -> bool {
        self.any_name || !self.fields.is_empty() || !self.prefixes.is_empty()
    }
}

/// A write operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a record.
    Create,
    /// Update a record.
    Update,
}

impl WriteOp {
    /// `create` or `update`, as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOp::Create => "create",
            WriteOp::Update => "update",
        }
    }
}

/// One field of a credential option or of a system's settings.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// Key in `credentials` or `settings`.
    pub name: &'static str,
    /// Label for people.
    pub label: &'static str,
    /// Where to find the value, or what it does.
    pub description: &'static str,
    /// How it is entered.
    pub format: FieldFormat,
    /// Whether it must be given.
    pub required: bool,
    /// A secret (stored encrypted, never shown again).
    pub secret: bool,
}

impl FieldSpec {
    /// A required, non-secret text field.
    pub const fn text(name: &'static str, label: &'static str, description: &'static str) -> Self {
        FieldSpec {
            name,
            label,
            description,
            format: FieldFormat::Text,
            required: true,
            secret: false,
        }
    }

    /// The same field, optional.
    pub const fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// The same field, secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The same field, entered as `format`.
    pub const fn format(mut self, format: FieldFormat) -> Self {
        self.format = format;
        self
    }

    fn out(&self) -> FieldOut {
        FieldOut {
            name: self.name.into(),
            label: self.label.into(),
            description: self.description.into(),
            format: self.format,
            required: self.required,
            secret: self.secret,
        }
    }
}

/// One way of authenticating to a system.
#[derive(Debug, Clone, Copy)]
pub struct AuthOption {
    /// Option id (`certificate_generated`).
    pub id: &'static str,
    /// Name for people.
    pub name: &'static str,
    /// How to set it up.
    pub description: &'static str,
    /// The credentials it takes.
    pub fields: &'static [FieldSpec],
}

/// The limits kept for one connection, from the vendor's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls in flight at most (syncs and writes of the connection together).
    pub concurrency: usize,
    /// Sustained calls per second (0: no documented rate, only concurrency).
    pub per_second: f64,
    /// Burst above the sustained rate.
    pub burst: u32,
    /// Where the figures come from.
    pub description: &'static str,
}

/// What a connector is built from.
pub struct BuildContext<'a> {
    /// The connection's settings for the system (engine settings already taken out).
    pub settings: &'a Map<String, Value>,
    /// The decrypted credentials.
    pub credentials: Option<&'a Map<String, Value>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Waiting between retries.
    pub sleeper: Arc<dyn Sleeper>,
    /// Where the connector may connect (every call's address is checked at connect time).
    pub egress: Egress,
}

/// Builds a system's connector.
pub type Build = fn(&BuildContext<'_>) -> Result<Arc<dyn Connector>, ConnectorError>;

/// A system's default mappings: JSON definitions compiled into the binary (one per entity),
/// parsed once.
pub struct Mappings {
    texts: &'static [&'static str],
    parsed: OnceLock<Vec<MappingDef>>,
}

impl Mappings {
    /// The definitions, as `include_str!` texts.
    pub const fn new(texts: &'static [&'static str]) -> Self {
        Mappings {
            texts,
            parsed: OnceLock::new(),
        }
    }

    /// Every definition, parsed.
    pub fn all(&self) -> &[MappingDef] {
        self.parsed.get_or_init(|| {
            self.texts
                .iter()
                .map(|text| {
                    // The definitions are compiled in and checked by the registry's tests, so a
                    // broken one is a build defect, never a runtime condition.
                    serde_json::from_str(text).expect("built-in mapping definitions are valid")
                })
                .collect()
        })
    }
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mappings")
            .field("definitions", &self.texts.len())
            .finish()
    }
}

/// Everything Ironbridge knows about one system, in one place.
#[derive(Debug)]
pub struct SystemDescriptor {
    /// Id, as stored and used in the API (`netsuite`).
    pub id: SystemId,
    /// Display name.
    pub name: &'static str,
    /// The ways a connection authenticates, with their credentials.
    pub auth: &'static [AuthOption],
    /// The system's own settings.
    pub settings: &'static [FieldSpec],
    /// The entities it reads, and how.
    pub reads: &'static [ReadSpec],
    /// The writes it supports.
    pub writes: &'static [WriteSpec],
    /// Limits kept for each connection.
    pub limits: Limits,
    /// Days of history the first sync of a transactional entity reads (`None`: all of it).
    pub history_days: Option<u32>,
    /// Default mappings, one per read entity.
    pub mappings: Mappings,
    /// Builds the connector.
    pub build: Build,
}

impl SystemDescriptor {
    /// The entities it reads, in catalogue order (referenced records first).
    pub fn readable(&self) -> Vec<Entity> {
        Entity::ALL
            .iter()
            .copied()
            .filter(|e| self.read(*e).is_some())
            .collect()
    }

    /// How it reads `entity`.
    pub fn read(&self, entity: Entity) -> Option<&ReadSpec> {
        self.reads.iter().find(|r| r.entity == entity)
    }

    /// Whether it supports `op` on `entity`.
    pub fn writes(&self, entity: Entity, op: WriteOp) -> bool {
        self.write(entity).is_some_and(|w| match op {
            WriteOp::Create => w.create,
            WriteOp::Update => w.update,
        })
    }

    /// Its write description of `entity`, if it writes any of it.
    pub fn write(&self, entity: Entity) -> Option<&'static WriteSpec> {
        self.writes.iter().find(|w| w.entity == entity)
    }

    /// Its default mapping of `entity`.
    pub fn mapping(&self, entity: Entity) -> Option<&MappingDef> {
        self.mappings.all().iter().find(|m| m.entity == entity)
    }

    /// Builds its connector directly (tools and tests; the process builds connectors through
    /// its [`Registry`]).
    pub fn connect(
        &self,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        (self.build)(&BuildContext {
            settings,
            credentials,
            clock,
            sleeper,
            egress,
        })
    }

    /// Its row of the capability matrix, as `GET /v1/systems` shows it.
    pub fn capabilities(&self) -> SystemCapabilities {
        // Entities read, and those only written (served as Ironbridge wrote them).
        let entities = Entity::ALL
            .iter()
            .copied()
            .filter(|e| self.read(*e).is_some() || self.writes.iter().any(|w| w.entity == *e))
            .map(|e| {
                let read = self.read(e);
                EntityCapability {
                    entity: e,
                    read: read.is_some(),
                    incremental: read.is_some_and(|r| r.kind != ReadKind::Whole),
                    read_kind: read.map(|r| r.kind),
                    deletions: read.map(|r| r.deletions),
                    create: self.writes(e, WriteOp::Create),
                    update: self.writes(e, WriteOp::Update),
                }
            })
            .collect();
        SystemCapabilities {
            system: self.id.clone(),
            name: self.name.into(),
            auth: self.auth.iter().map(|a| a.name.to_string()).collect(),
            credentials: self
                .auth
                .iter()
                .map(|a| CredentialOptionOut {
                    id: a.id.into(),
                    name: a.name.into(),
                    description: a.description.into(),
                    fields: a.fields.iter().map(FieldSpec::out).collect(),
                })
                .collect(),
            settings: self.settings.iter().map(FieldSpec::out).collect(),
            limits: SystemLimits {
                concurrency: u32::try_from(self.limits.concurrency).unwrap_or(u32::MAX),
                requests_per_second: (self.limits.per_second > 0.0)
                    .then_some(self.limits.per_second),
                description: self.limits.description.into(),
            },
            entities,
        }
    }
}

/// Builds connectors for connections. The registry builds each system's with its
/// descriptor's constructor; tests wrap connectors (failing ones, counting ones) through
/// their own factory.
pub trait ConnectorFactory: Send + Sync {
    /// A connector for `system` with the given settings and decrypted credentials.
    fn build(
        &self,
        system: &'static SystemDescriptor,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// Builds each system's connector with its descriptor's constructor.
#[derive(Debug, Clone)]
pub struct DescriptorFactory {
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    egress: Egress,
}

impl DescriptorFactory {
    /// Connectors reading time from `clock`, waiting through `sleeper` and connecting to
    /// public addresses only.
    pub fn new(clock: Arc<dyn Clock>, sleeper: Arc<dyn Sleeper>) -> Self {
        DescriptorFactory {
            clock,
            sleeper,
            egress: Egress::default(),
        }
    }

    /// The same factory, its connectors connecting where `egress` permits.
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = egress;
        self
    }
}

impl ConnectorFactory for DescriptorFactory {
    fn build(
        &self,
        system: &'static SystemDescriptor,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        (system.build)(&BuildContext {
            settings,
            credentials,
            clock: self.clock.clone(),
            sleeper: self.sleeper.clone(),
            egress: self.egress.clone(),
        })
    }
}

/// The systems of a build, and how their connectors are made.
#[derive(Clone)]
pub struct Registry {
    systems: Vec<&'static SystemDescriptor>,
    factory: Arc<dyn ConnectorFactory>,
    egress: Egress,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.systems.iter().map(|s| s.id.as_str()))
            .finish()
    }
}

impl Registry {
    /// A registry of `systems` whose connectors `factory` builds.
    pub fn new(systems: &[&'static SystemDescriptor], factory: Arc<dyn ConnectorFactory>) -> Self {
        Registry {
            systems: systems.to_vec(),
            factory,
            egress: Egress::default(),
        }
    }

    /// The same registry, whose connections' hosts are checked against `egress` when they
    /// are made (its connectors' factory enforces it at every call).
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = egress;
        self
    }

    /// Where connections may point.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The same registry with one more system (or a system replaced, by id).
    pub fn with(mut self, system: &'static SystemDescriptor) -> Self {
        self.systems.retain(|s| s.id != system.id);
        self.systems.push(system);
        self
    }

    /// The same systems, built by another factory.
    pub fn with_factory(mut self, factory: Arc<dyn ConnectorFactory>) -> Self {
        self.factory = factory;
        self
    }

    /// Every system, in registration order.
    pub fn systems(&self) -> &[&'static SystemDescriptor] {
        &self.systems
    }

    /// The system with id `id`.
    pub fn get(&self, id: &str) -> Option<&'static SystemDescriptor> {
        self.systems.iter().copied().find(|s| s.id == id)
    }

    /// The system with id `id`, or an error naming the known ones.
    pub fn require(&self, id: &str) -> Result<&'static SystemDescriptor, UnknownSystem> {
        self.get(id).ok_or_else(|| UnknownSystem {
            id: id.to_string(),
            known: self.systems.iter().map(|s| s.id.to_string()).collect(),
        })
    }

    /// The capability matrix.
    pub fn capabilities(&self) -> Vec<SystemCapabilities> {
        self.systems.iter().map(|s| s.capabilities()).collect()
    }

    /// A connector for `system`.
    pub fn build(
        &self,
        system: &'static SystemDescriptor,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        self.factory.build(system, settings, credentials)
    }
}

/// A system id no registered system has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown system `{id}`; expected one of {}", known.join(", "))]
pub struct UnknownSystem {
    /// The id asked for.
    pub id: String,
    /// The registered ids.
    pub known: Vec<String>,
}

/// Checks descriptors against their mappings and the catalogue: every read entity has a
/// mapping of its own system and entity, every mapping an entity read, every write a read,
/// no id twice. Returns the problems found (tests assert there are none).
pub fn check_descriptors(systems: &[&'static SystemDescriptor]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for s in systems {
        let id = s.id.as_str();
        if !ids.insert(id) {
            problems.push(format!("{id}: registered twice"));
        }
        for r in s.reads {
            match s.mapping(r.entity) {
                None => problems.push(format!("{id} {}: read without a mapping", r.entity)),
                Some(m) if m.system != s.id => {
                    problems.push(format!("{id} {}: mapping of {}", r.entity, m.system))
                }
                Some(_) => {}
            }
            if s.reads.iter().filter(|o| o.entity == r.entity).count() > 1 {
                problems.push(format!("{id} {}: read twice", r.entity));
            }
        }
        for m in s.mappings.all() {
            if s.read(m.entity).is_none() && !s.writes.iter().any(|w| w.entity == m.entity) {
                problems.push(format!(
                    "{id} {}: mapping of an entity neither read nor written",
                    m.entity
                ));
            }
            problems.extend(m.problems());
        }
        for w in s.writes {
            // An entity written and not read (ASCTrac's purchase orders) is served as
            // Ironbridge wrote it, which takes a mapping of the write's answer.
            if s.mapping(w.entity).is_none() {
                problems.push(format!("{id} {}: written without a mapping", w.entity));
            }
            if s.read(w.entity).is_none() && !w.create {
                problems.push(format!(
                    "{id} {}: updated but neither read nor created",
                    w.entity
                ));
            }
            if s.writes.iter().filter(|o| o.entity == w.entity).count() > 1 {
                problems.push(format!("{id} {}: written twice", w.entity));
            }
            problems.extend(
                crate::write::description_problems(w)
                    .into_iter()
                    .map(|p| format!("{id} {}: {p}", w.entity)),
            );
        }
        if s.limits.concurrency == 0 {
            problems.push(format!("{id}: no concurrency"));
        }
        for a in s.auth {
            let mut names = std::collections::HashSet::new();
            for f in a.fields {
                if !names.insert(f.name) {
                    problems.push(format!("{id} {}: field {} twice", a.id, f.name));
                }
            }
        }
    }
    problems
}
