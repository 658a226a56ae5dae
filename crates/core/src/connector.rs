//! The connector seam: one implementation per source system. A connector knows its system's
//! auth, paging and write calls; it never touches the store. It yields raw records page by
//! page with a cursor to resume from.

use async_trait::async_trait;
use ironbridge_model::api::{CircuitState, SystemId};
use ironbridge_model::{Entity, Timestamp};
use rust_decimal::Decimal;
use serde_json::Value;

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
#[derive(Debug, Clone)]
pub struct RawPage {
    /// Records in the source system's own shape.
    pub records: Vec<Value>,
    /// Cursor for the next page; `None` when this was the last.
    pub next_cursor: Option<String>,
}

/// Why a connector call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The source system refused the credentials.
    #[error("the source system refused the credentials")]
    Unauthorized,
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

/// One source system, as seen by the sync engine and the write path.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Which system this is.
    fn system(&self) -> SystemId;

    /// Entities this connector can read.
    fn readable(&self) -> &'static [Entity];

    /// Verifies the credentials and that the system answers.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Reads one page of an entity's records in `window`, from the start (`None`) or from a
    /// cursor it returned for the same window. Pages must be stable (ordered by modification
    /// time and a unique key where the source allows it) so that no record in the window is
    /// skipped between pages. Entities the source cannot filter by modification time are read
    /// whole whatever the window.
    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError>;

    /// How many days of history the first sync of an incrementally read entity covers
    /// (`None`: all of it). Reference data (vendors, items, locations) is always read whole.
    fn default_history_days(&self) -> Option<u32> {
        Some(90)
    }

    /// Whether `fetch_page` of `entity` honours the window's bounds (the source filters by
    /// modification time). Only then may the engine split a window into slices read side by
    /// side; an entity read whole whatever the window is read in one pass.
    fn filters_by_time(&self, _entity: Entity) -> bool {
        false
    }

    /// How many reads of this connection may be in flight at once: the source system's
    /// documented concurrency limit for one integration (the client enforces it too).
    fn read_concurrency(&self) -> usize {
        1
    }

    /// The earliest modification time of `entity` at the source (one small query), so a read
    /// of all history can be split into slices of equal length. `None`: unknown, read it in
    /// one pass.
    async fn oldest_change(&self, _entity: Entity) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(None)
    }

    /// Where a cursor of `entity` stands: the modification time of the last record read,
    /// when the cursor is a keyset that the next `fetch_page` applies within whatever window
    /// it is given. The engine may then narrow a window's upper bound between pages and hand
    /// the rest to another reader. `None` (the default): the cursor is bound to the window it
    /// came from (a server's next link, an offset).
    fn cursor_position(&self, _entity: Entity, _cursor: &str) -> Option<Timestamp> {
        None
    }

    /// The state of this connection's circuit breaker (shown in connection health).
    fn circuit_state(&self) -> CircuitState {
        CircuitState::Closed
    }

    /// The source system's current time, when it tells (its HTTP `Date` header or an API);
    /// windows are capped below it, never below our own clock.
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(None)
    }

    /// Creates a purchase order (header and lines in one transaction); returns the raw record.
    async fn create_purchase_order(
        &self,
        order: &PurchaseOrderWrite,
    ) -> Result<Value, ConnectorError>;

    /// Updates a purchase order; returns the raw record as it now is.
    async fn update_purchase_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError>;
}
