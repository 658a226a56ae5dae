//! The connector seam: one implementation per source system, in small role traits. A
//! [`Source`] reads (pages of raw records with a cursor to resume from, and for outboxes an
//! acknowledgement once a page is committed); [`CreateRecords`] and [`UpdateRecords`] are
//! opt-in writes through the unified model; [`Connector`] joins them with the system's
//! descriptor. A connector knows its system's auth, paging and write calls; it never touches
//! the store.

use async_trait::async_trait;
use ironbridge_model::api::{CircuitState, ReadKind};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

pub use crate::source_record::SourceRecord;
use crate::system::SystemDescriptor;

/// Which changes a read covers. The sync engine chooses it (initial history window, then
/// incremental windows with a lookback overlap and an upper bound below the source's "now")
/// and keeps it fixed while it pages through it, so a resumed sync reads the same window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadWindow {
    /// Only records the source last modified at or after this instant (inclusive: records
    /// sharing the boundary timestamp are read again and de-duplicated by the store).
    /// `None`: every record.
    pub modified_since: Option<Timestamp>,
    /// Only records last modified at or before this instant. `None`: no upper bound.
    pub modified_until: Option<Timestamp>,
}

impl ReadWindow {
    /// Everything.
    pub const ALL: ReadWindow = ReadWindow {
        modified_since: None,
        modified_until: None,
    };

    /// Whether a record last modified at `t` falls in the window.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.modified_since.is_none_or(|s| t >= s) && self.modified_until.is_none_or(|u| t <= u)
    }
}

/// A page of raw records and where to continue.
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    /// Records in the source system's own shape, as their JSON text.
    pub records: Vec<SourceRecord>,
    /// Cursor for the next page; `None` when this was the last.
    pub next_cursor: Option<String>,
    /// Feeds: where the next sync continues once this page is the last one read (the
    /// feed's end cursor when it is caught up). Ignored for other read kinds.
    pub resume: Option<String>,
    /// Outboxes: what to acknowledge once the page is committed ([`Source::acknowledge`]).
    pub receipt: Option<String>,
    /// Source keys of records the source's deletion log reports deleted (NetSuite's
    /// deleted-record search, for one): each is flagged `remote_was_deleted` with its last
    /// data kept, within the sync that reads the log, not only by the next full pass.
    pub deleted: Vec<String>,
    /// Records the source removed because their life there ended, not because anyone
    /// deleted them: Business Central deletes a purchase order once posting has received and
    /// invoiced all of it. Flagged `remote_was_deleted` like deletions, and say why: their
    /// unified status becomes `completed` and `remote_status` the source's reason.
    pub closed: Vec<Closed>,
}

/// A record the source closed and removed (see [`RawPage::closed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The record's source key.
    pub key: String,
    /// Why, in the source's terms (`Invoiced`): becomes the record's `remote_status`.
    pub remote_status: String,
}

impl RawPage {
    /// A page of `records` followed by `next_cursor`.
    pub fn new(records: Vec<SourceRecord>, next_cursor: Option<String>) -> Self {
        RawPage {
            records,
            next_cursor,
            ..RawPage::default()
        }
    }

    /// A page of records a connector assembled as trees (each becomes its compact text).
    pub fn from_values(records: Vec<Value>, next_cursor: Option<String>) -> Self {
        RawPage::new(
            records.into_iter().map(SourceRecord::from).collect(),
            next_cursor,
        )
    }

    /// Its records parsed (tests and checks; a sync maps them one at a time instead).
    pub fn parsed(&self) -> Result<Vec<Value>, serde_json::Error> {
        self.records.iter().map(SourceRecord::parse).collect()
    }

    /// The bytes of its records' text: what the page holds in memory, about.
    pub fn bytes(&self) -> usize {
        self.records.iter().map(SourceRecord::len).sum()
    }
}

/// What a whole read of an entity holds ([`Source::extent`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    /// The earliest modification time; `None`: unknown (the entity is read in one pass).
    pub oldest: Option<Timestamp>,
    /// Pages a whole read takes at the connector's page size; `None`: not counted.
    pub pages: Option<u64>,
}

/// Why a connector call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The source system refused the credentials.
    #[error("the source system refused the credentials")]
    Unauthorized,
    /// The source system refused a write for lack of permission: the connection's role or
    /// user may not create or change such records there (its credentials are fine).
    #[error("{message}")]
    Forbidden {
        /// The source system's own code (`INSUFFICIENT_PERMISSION`).
        remote_code: String,
        /// What the source said, safe to show.
        message: String,
    },
    /// The source system rejected a write on a business rule.
    #[error("{message}")]
    BusinessRule {
        /// The source system's own code (`INVALID_VENDOR`).
        remote_code: String,
        /// What the source said, safe to show.
        message: String,
        /// The unified field it concerns.
        param: Option<String>,
    },
    /// The source system accepted part of a write and left the rest out (ASCTrac's
    /// `ReturnCode 412`: a document kept without the items it does not know). Not a success:
    /// the record is not stored, and the caller learns what was left out.
    #[error("{message}")]
    PartialAcceptance {
        /// What the source said, safe to show.
        message: String,
        /// The unified field the left-out parts belong to (`line_items`).
        param: String,
        /// The source's keys of what it left out (item codes).
        missing: Vec<String>,
    },
    /// The record's workflow state forbids the change.
    #[error("{message}")]
    State {
        /// The source system's own code.
        remote_code: String,
        /// What the source said, safe to show.
        message: String,
    },
    /// The source system has no such record.
    #[error("the source system has no such record")]
    NotFound,
    /// The operation is not supported for this entity by this system.
    #[error("{0}")]
    Unsupported(String),
    /// The settings given for the connection are invalid.
    #[error("{message}")]
    InvalidSettings {
        /// Which setting.
        param: String,
        /// What is wrong, safe to show.
        message: String,
    },
    /// The source system failed or could not be reached; the text is for logs.
    #[error("upstream failure: {0}")]
    Upstream(String),
    /// The source system kept limiting the rate of requests (429) past every retry: it is
    /// healthy but busy, so the connection stays online and the work is tried later. The
    /// text is for logs.
    #[error("rate limited by the source: {0}")]
    Throttled(String),
    /// A write was sent and no usable answer came back (a timeout after the request was
    /// sent, a connection reset mid-answer, a 5xx that is not a refusal before processing):
    /// the source may or may not have applied it. Never retried blindly: the write is
    /// reconciled by reading it back by its reference (`crate::reconcile`). The text is for
    /// logs.
    #[error("the outcome of the write is unknown: {0}")]
    OutcomeUnknown(String),
    /// The source no longer accepts the position a read went on from (a feed cursor it
    /// forgot or refuses): the read must start anew, not be retried. The text is for logs.
    #[error("the source refused the stored position: {0}")]
    PositionRefused(String),
}

/// A purchase order to create, with references already resolved to the source's keys.
#[derive(Debug, Clone)]
pub struct PurchaseOrderWrite {
    /// Order number, if the caller chose one.
    pub number: Option<String>,
    /// Vendor key in the source system.
    pub vendor_remote_id: String,
    /// Location key in the source system.
    pub location_remote_id: Option<String>,
    /// Currency.
    pub currency: Option<String>,
    /// Order date `YYYY-MM-DD`.
    pub order_date: Option<String>,
    /// Expected delivery `YYYY-MM-DD`.
    pub expected_delivery_date: Option<String>,
    /// Note.
    pub memo: Option<String>,
    /// Custom fields by name.
    pub custom_fields: serde_json::Map<String, Value>,
    /// Lines.
    pub lines: Vec<PurchaseOrderLineWrite>,
}

/// One line to write.
#[derive(Debug, Clone)]
pub struct PurchaseOrderLineWrite {
    /// Item key in the source system.
    pub item_remote_id: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price.
    pub unit_price: Option<Decimal>,
    /// Description.
    pub description: Option<String>,
    /// Unit of measure.
    pub unit_of_measure: Option<String>,
    /// Expected delivery `YYYY-MM-DD`.
    pub expected_delivery_date: Option<String>,
}

/// Changes to a purchase order; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct PurchaseOrderUpdate {
    /// New receiving location key.
    pub location_remote_id: Option<String>,
    /// New expected delivery.
    pub expected_delivery_date: Option<String>,
    /// New note.
    pub memo: Option<String>,
    /// Custom fields to set.
    pub custom_fields: serde_json::Map<String, Value>,
    /// Replacement lines.
    pub lines: Option<Vec<PurchaseOrderLineWrite>>,
}

/// A record to write, in the unified model's terms: the unified fields the caller gave,
/// validated, with references (`vendor_id`, a line's `item_id`) resolved to the source's own
/// keys. Connectors read the fields they write; [`PurchaseOrderWrite`] and
/// [`PurchaseOrderUpdate`] are typed views of an order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnifiedWrite {
    /// Unified fields by name; nested lists (`line_items`) as arrays of objects.
    pub fields: Map<String, Value>,
    /// A reference Ironbridge chose for a create (at most [`REFERENCE_MAX`] ASCII letters
    /// and digits, derived from the idempotency key or the batch id and index). The connector
    /// writes it into a field the source stores and filters on, in the same request as the
    /// create, so [`CreateRecords::find_written`] can find the record when the outcome of the
    /// create is unknown. `None`: the create cannot be reconciled.
    pub reference: Option<String>,
}

/// The longest reference a create may carry: SAP's `CorrespncExternalReference` ("Your
/// Reference") holds 12 characters, the smallest of the fields the connectors use.
pub const REFERENCE_MAX: usize = 12;

/// Checks a create's reference: 1 to [`REFERENCE_MAX`] ASCII letters and digits, so it fits
/// every system's field and needs no quoting in a URL or a filter.
pub fn check_reference(reference: &str) -> Result<(), ConnectorError> {
    if !reference.is_empty()
        && reference.len() <= REFERENCE_MAX
        && reference.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(ConnectorError::InvalidSettings {
            param: "reference".into(),
            message: format!("must be 1 to {REFERENCE_MAX} ASCII letters and digits"),
        })
    }
}

impl UnifiedWrite {
    /// A text field, if given.
    pub fn text(&self, name: &str) -> Option<String> {
        text(&self.fields, name)
    }

    /// The custom fields given (`custom_fields`), or none.
    pub fn custom_fields(&self) -> Map<String, Value> {
        match self.fields.get("custom_fields") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }
}

fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_string)
}

fn decimal(fields: &Map<String, Value>, name: &str) -> Result<Option<Decimal>, ConnectorError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad_write(name)),
        Some(Value::Number(n)) => n.to_string().parse().map(Some).map_err(|_| bad_write(name)),
        Some(_) => Err(bad_write(name)),
    }
}

fn bad_write(field: &str) -> ConnectorError {
    ConnectorError::InvalidSettings {
        param: field.to_string(),
        message: format!("`{field}` has the wrong type"),
    }
}

fn write_lines(
    fields: &Map<String, Value>,
) -> Result<Option<Vec<PurchaseOrderLineWrite>>, ConnectorError> {
    let Some(lines) = fields.get("line_items") else {
        return Ok(None);
    };
    let lines = lines.as_array().ok_or_else(|| bad_write("line_items"))?;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let line = line
                .as_object()
                .ok_or_else(|| bad_write(&format!("line_items[{i}]")))?;
            Ok(PurchaseOrderLineWrite {
                item_remote_id: text(line, "item_id")
                    .ok_or_else(|| bad_write(&format!("line_items[{i}].item_id")))?,
                quantity: decimal(line, "quantity")?
                    .ok_or_else(|| bad_write(&format!("line_items[{i}].quantity")))?,
                unit_price: decimal(line, "unit_price")?,
                description: text(line, "description"),
                unit_of_measure: text(line, "unit_of_measure"),
                expected_delivery_date: text(line, "expected_delivery_date"),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Refuses a write of an entity other than purchase orders, naming the system.
fn orders_only(system: &SystemDescriptor, entity: Entity) -> Result<(), ConnectorError> {
    if entity == Entity::PURCHASE_ORDER {
        Ok(())
    } else {
        Err(ConnectorError::Unsupported(format!(
            "{} cannot write {} records through Ironbridge",
            system.name,
            entity.spec().label
        )))
    }
}

impl PurchaseOrderWrite {
    /// The typed order a unified create of `entity` carries, for a system that creates
    /// purchase orders only (any other entity is unsupported).
    pub fn for_entity(
        system: &SystemDescriptor,
        entity: Entity,
        write: &UnifiedWrite,
    ) -> Result<Self, ConnectorError> {
        orders_only(system, entity)?;
        Self::from_unified(write)
    }

    /// The typed view of a purchase order to create.
    pub fn from_unified(write: &UnifiedWrite) -> Result<Self, ConnectorError> {
        let f = &write.fields;
        Ok(PurchaseOrderWrite {
            number: text(f, "number"),
            vendor_remote_id: text(f, "vendor_id").ok_or_else(|| bad_write("vendor_id"))?,
            location_remote_id: text(f, "location_id"),
            currency: text(f, "currency"),
            order_date: text(f, "order_date"),
            expected_delivery_date: text(f, "expected_delivery_date"),
            memo: text(f, "memo"),
            custom_fields: write.custom_fields(),
            lines: write_lines(f)?.unwrap_or_default(),
        })
    }
}

impl PurchaseOrderUpdate {
    /// The typed changes a unified update of `entity` carries, for a system that updates
    /// purchase orders only (any other entity is unsupported).
    pub fn for_entity(
        system: &SystemDescriptor,
        entity: Entity,
        write: &UnifiedWrite,
    ) -> Result<Self, ConnectorError> {
        orders_only(system, entity)?;
        Self::from_unified(write)
    }

    /// The typed view of changes to a purchase order.
    pub fn from_unified(write: &UnifiedWrite) -> Result<Self, ConnectorError> {
        let f = &write.fields;
        Ok(PurchaseOrderUpdate {
            location_remote_id: text(f, "location_id"),
            expected_delivery_date: text(f, "expected_delivery_date"),
            memo: text(f, "memo"),
            custom_fields: write.custom_fields(),
            lines: write_lines(f)?,
        })
    }
}

/// The unified view of a purchase order to create (the inverse of
/// [`PurchaseOrderWrite::from_unified`]).
impl From<&PurchaseOrderWrite> for UnifiedWrite {
    fn from(o: &PurchaseOrderWrite) -> Self {
        let mut f = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                f.insert(k.into(), Value::String(v.clone()));
            }
        };
        put("number", &o.number);
        put("vendor_id", &Some(o.vendor_remote_id.clone()));
        put("location_id", &o.location_remote_id);
        put("currency", &o.currency);
        put("order_date", &o.order_date);
        put("expected_delivery_date", &o.expected_delivery_date);
        put("memo", &o.memo);
        if !o.custom_fields.is_empty() {
            f.insert(
                "custom_fields".into(),
                Value::Object(o.custom_fields.clone()),
            );
        }
        f.insert("line_items".into(), lines_value(&o.lines));
        UnifiedWrite {
            fields: f,
            reference: None,
        }
    }
}

/// The unified view of changes to a purchase order.
impl From<&PurchaseOrderUpdate> for UnifiedWrite {
    fn from(u: &PurchaseOrderUpdate) -> Self {
        let mut f = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                f.insert(k.into(), Value::String(v.clone()));
            }
        };
        put("location_id", &u.location_remote_id);
        put("expected_delivery_date", &u.expected_delivery_date);
        put("memo", &u.memo);
        if !u.custom_fields.is_empty() {
            f.insert(
                "custom_fields".into(),
                Value::Object(u.custom_fields.clone()),
            );
        }
        if let Some(lines) = &u.lines {
            f.insert("line_items".into(), lines_value(lines));
        }
        UnifiedWrite {
            fields: f,
            reference: None,
        }
    }
}

fn lines_value(lines: &[PurchaseOrderLineWrite]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                let mut m = Map::new();
                m.insert("item_id".into(), Value::String(l.item_remote_id.clone()));
                m.insert(
                    "quantity".into(),
                    Value::String(l.quantity.normalize().to_string()),
                );
                if let Some(p) = l.unit_price {
                    m.insert(
                        "unit_price".into(),
                        Value::String(p.normalize().to_string()),
                    );
                }
                for (k, v) in [
                    ("description", &l.description),
                    ("unit_of_measure", &l.unit_of_measure),
                    ("expected_delivery_date", &l.expected_delivery_date),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), Value::String(v.clone()));
                    }
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// A field of a source record as the system describes itself (its OData `$metadata`, its
/// metadata catalog), for field mappings: fields no stored record has a value for yet can be
/// mapped too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedField {
    /// `record`, or the unified list (`line_items`) whose source lines the path is in.
    pub scope: String,
    /// The path in the stored source record (or line).
    pub path: String,
    /// The type, in the names remote fields use (`text`, `integer`, `decimal`, `boolean`,
    /// `date`, `date_time`).
    pub kind: String,
    /// The system's label for it, where it has one.
    pub label: Option<String>,
}

/// Reading a source system. What the engine asks depends on the entity's read kind in the
/// system's descriptor: every kind pages with [`Source::fetch_page`]; windowed reads may be
/// split by time ([`Source::extent`], [`Source::cursor_position`]); outboxes are
/// acknowledged page by page once committed ([`Source::acknowledge`]).
#[async_trait]
pub trait Source: Send + Sync {
    /// Verifies the credentials and that the system answers (one cheap call; it also
    /// refreshes the source's clock).
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Reads one page of an entity's records in `window`, from the start (`None`) or from a
    /// cursor it returned for the same window. Pages must be stable (ordered by modification
    /// time and a unique key where the source allows it) so that no record in the window is
    /// skipped between pages. Entities the source cannot filter by modification time are read
    /// whole whatever the window; feeds start from the cursor they last gave.
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError>;

    /// Outboxes: tells the source that the page carrying `receipt` is committed, so it may
    /// forget those records. Called only after the commit; a crash before it re-reads the
    /// page, which the store de-duplicates.
    async fn acknowledge(&self, entity: Entity, _receipt: &str) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "{entity} is not read from an outbox"
        )))
    }

    /// What a whole read of `entity` holds, as one small query tells: its earliest
    /// modification time, so a read of all history can be split into slices of equal
    /// length, and, where the same query counts the records, the pages of this connector's
    /// page size it takes, so an entity that fits in a page or a few is not sliced into
    /// requests that each return a handful of records. The default: unknown, read in one
    /// pass.
    async fn extent(&self, _entity: Entity) -> Result<Extent, ConnectorError> {
        Ok(Extent::default())
    }

    /// Where a slice of `entity` should end when the engine would end it at `t`: a source
    /// read in fixed units places the boundary on the last instant of the unit `t` falls in
    /// (NexTraq's trail is one local day per request: a slice that cut a day in two would
    /// read it twice), so the next slice starts with a whole unit. The default: `t`.
    fn slice_boundary(&self, _entity: Entity, t: Timestamp) -> Timestamp {
        t
    }

    /// Where a cursor of `entity` stands: the modification time of the last record read,
    /// when the cursor is a keyset that the next `fetch_page` applies within whatever window
    /// it is given. The engine may then narrow a window's upper bound between pages and hand
    /// the rest to another reader. `None` (the default): the cursor is bound to the window it
    /// came from (a server's next link, an offset).
    fn cursor_position(&self, _entity: Entity, _cursor: &str) -> Option<Timestamp> {
        None
    }

    /// The fields of `entity`'s source records as the system describes them, at the paths
    /// this connector stores them under. `None` (the default): the system does not describe
    /// itself, or the connector does not read its description.
    async fn describe_fields(
        &self,
        _entity: Entity,
    ) -> Result<Option<Vec<DescribedField>>, ConnectorError> {
        Ok(None)
    }

    /// The source system's current time, when it tells (its HTTP `Date` header or an API);
    /// windows are capped below it, never below our own clock.
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(None)
    }
}

/// Creating records in the source system (opt-in: the descriptor's `writes` say which
/// entities).
#[async_trait]
pub trait CreateRecords: Send + Sync {
    /// Creates a record (an order with its lines in one source transaction) and returns the
    /// raw record as the source now has it. A `record.reference` is written with it, in the
    /// same request. A request that may have reached the source without an answer is
    /// [`ConnectorError::OutcomeUnknown`], never sent again.
    async fn create(&self, entity: Entity, record: &UnifiedWrite) -> Result<Value, ConnectorError>;

    /// The record of `entity` a create wrote with `reference`, in the raw shape `create`
    /// answers with (one filtered read), or `None` when the source has none. The default:
    /// the system cannot look records up by reference.
    async fn find_written(
        &self,
        entity: Entity,
        _reference: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "{entity} records cannot be looked up by reference in this system"
        )))
    }
}

/// Updating records in the source system (opt-in, like [`CreateRecords`]).
#[async_trait]
pub trait UpdateRecords: Send + Sync {
    /// Applies `changes` (fields left out stay unchanged; `line_items` replaces all lines)
    /// and returns the raw record as the source now has it.
    async fn update(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError>;
}

/// One connection's connector: a [`Source`], its system's descriptor, and whichever writes
/// it supports.
pub trait Connector: Source {
    /// The system's descriptor: what it reads and how, what it writes, its limits.
    fn descriptor(&self) -> &'static SystemDescriptor;

    /// How many reads of this connection may be in flight at once: the source system's
    /// documented concurrency limit for one integration (the client enforces it too).
    fn read_concurrency(&self) -> usize {
        self.descriptor().limits.concurrency
    }

    /// The state of this connection's circuit breaker (shown in connection health).
    fn circuit_state(&self) -> CircuitState {
        CircuitState::Closed
    }

    /// Creates, where the system supports them.
    fn creates(&self) -> Option<&dyn CreateRecords> {
        None
    }

    /// Updates, where the system supports them.
    fn updates(&self) -> Option<&dyn UpdateRecords> {
        None
    }
}

/// A connector that writes purchase orders implements these two typed calls, and for other
/// entities (vendors, items) [`OrderWriter::create_record`] and
/// [`OrderWriter::update_record`], which refuse by default; `CreateRecords` and
/// `UpdateRecords` follow. `write` is the unified write the typed order came from, for a
/// connector that places it with its reverse mapping.
#[async_trait]
pub trait OrderWriter: Connector {
    /// Creates an order with its lines; returns the raw record as the source has it.
    async fn create_order(
        &self,
        order: &PurchaseOrderWrite,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError>;

    /// Updates an order; returns the raw record as the source now has it.
    async fn update_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError>;

    /// The order created with `reference` ([`CreateRecords::find_written`]); by default the
    /// system cannot look orders up by reference.
    async fn find_order(&self, _reference: &str) -> Result<Option<Value>, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "{} cannot look purchase orders up by reference",
            self.descriptor().name
        )))
    }

    /// Creates a record of another entity from its validated unified write (references
    /// already the source's keys); returns the raw record in the shape of reads.
    async fn create_record(
        &self,
        entity: Entity,
        _write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        Err(unsupported(self.descriptor(), entity, "create"))
    }

    /// Updates a record of another entity; returns the raw record in the shape of reads.
    async fn update_record(
        &self,
        entity: Entity,
        _remote_id: &str,
        _changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        Err(unsupported(self.descriptor(), entity, "update"))
    }

    /// The record of another entity created with `reference`; by default the system cannot
    /// look such records up by reference.
    async fn find_record(
        &self,
        entity: Entity,
        _reference: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "{} cannot look {} records up by reference",
            self.descriptor().name,
            entity.spec().label
        )))
    }
}

fn unsupported(system: &SystemDescriptor, entity: Entity, verb: &str) -> ConnectorError {
    ConnectorError::Unsupported(format!(
        "{} cannot {verb} {} records through Ironbridge",
        system.name,
        entity.spec().label
    ))
}

#[async_trait]
impl<T: OrderWriter> CreateRecords for T {
    async fn create(&self, entity: Entity, record: &UnifiedWrite) -> Result<Value, ConnectorError> {
        if entity != Entity::PURCHASE_ORDER {
            return self.create_record(entity, record).await;
        }
        let order = PurchaseOrderWrite::for_entity(self.descriptor(), entity, record)?;
        if let Some(reference) = &record.reference {
            check_reference(reference)?;
        }
        self.create_order(&order, record).await
    }

    async fn find_written(
        &self,
        entity: Entity,
        reference: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        check_reference(reference)?;
        if entity != Entity::PURCHASE_ORDER {
            return self.find_record(entity, reference).await;
        }
        self.find_order(reference).await
    }
}

#[async_trait]
impl<T: OrderWriter> UpdateRecords for T {
    async fn update(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if entity != Entity::PURCHASE_ORDER {
            return self.update_record(entity, remote_id, changes).await;
        }
        let update = PurchaseOrderUpdate::for_entity(self.descriptor(), entity, changes)?;
        self.update_order(remote_id, &update).await
    }
}

/// Purchase-order writes through a connector's role traits, for tools and tests that hold a
/// connector directly (the API writes through the connection's runtime).
#[async_trait]
pub trait PurchaseOrderWrites {
    /// Creates an order: [`CreateRecords::create`] of a [`PurchaseOrderWrite`].
    async fn create_purchase_order(
        &self,
        order: &PurchaseOrderWrite,
    ) -> Result<Value, ConnectorError>;
    /// Updates an order: [`UpdateRecords::update`] of a [`PurchaseOrderUpdate`].
    async fn update_purchase_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError>;
}

#[async_trait]
impl<C: Connector + ?Sized> PurchaseOrderWrites for C {
    async fn create_purchase_order(
        &self,
        order: &PurchaseOrderWrite,
    ) -> Result<Value, ConnectorError> {
        let writer = self.creates().ok_or_else(|| {
            ConnectorError::Unsupported(format!("{} cannot create records", self.descriptor().name))
        })?;
        writer
            .create(Entity::PURCHASE_ORDER, &UnifiedWrite::from(order))
            .await
    }

    async fn update_purchase_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        let writer = self.updates().ok_or_else(|| {
            ConnectorError::Unsupported(format!("{} cannot update records", self.descriptor().name))
        })?;
        writer
            .update(
                Entity::PURCHASE_ORDER,
                remote_id,
                &UnifiedWrite::from(update),
            )
            .await
    }
}

/// How `connector` reads `entity` (`None`: it does not).
pub fn read_kind(connector: &dyn Connector, entity: Entity) -> Option<ReadKind> {
    connector.descriptor().read(entity).map(|r| r.kind)
}

/// Whether the engine may split reads of `entity` by modification time: the source filters
/// by it on every page.
pub fn filters_by_time(connector: &dyn Connector, entity: Entity) -> bool {
    matches!(
        read_kind(connector, entity),
        Some(ReadKind::Windowed | ReadKind::TimeSeries)
    )
}
