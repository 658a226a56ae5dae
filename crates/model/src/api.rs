//! Request and response bodies of the management and data endpoints (`*In` / `*Out`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

/// A system Ironbridge connects to (`netsuite`, `sap_s4hana`, ...), as `GET /v1/systems`
/// lists them. The set is open: each connector module declares its id in its descriptor, and
/// the registry of the running build says which exist (an unknown one is refused where it
/// is used, naming the field).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemId(std::borrow::Cow<'static, str>);

impl SystemId {
    /// An id known at compile time (a descriptor's).
    pub const fn from_static(id: &'static str) -> Self {
        SystemId(std::borrow::Cow::Borrowed(id))
    }

    /// An id read from input: 1 to 64 lowercase letters, digits and underscores.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| SystemId(std::borrow::Cow::Owned(text.to_string())))
    }

    /// The system's id as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SystemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for SystemId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for SystemId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for SystemId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SystemId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        SystemId::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a system id (lowercase letters, digits and underscores)"
            ))
        })
    }
}

impl utoipa::PartialSchema for SystemId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // The document lists the registered systems as this schema's `enum` (see the
        // server's OpenAPI modifier); the type itself only knows the shape.
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A system id, as listed by `GET /v1/systems`."))
            .pattern(Some("^[a-z0-9_]{1,64}$"))
            .into()
    }
}

impl ToSchema for SystemId {}

/// Lifecycle and health state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// The source system answers and data is current.
    Online,
    /// A sync is running.
    Syncing,
    /// The source system has not answered for a while; syncs retry.
    Offline,
    /// The source system refused the stored credentials; the customer must reconnect.
    ReauthorizationRequired,
    /// Disconnected: the token no longer works and no syncs run. Synced data stays until deleted.
    Disconnected,
}

impl ConnectionStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Online => "online",
            ConnectionStatus::Syncing => "syncing",
            ConnectionStatus::Offline => "offline",
            ConnectionStatus::ReauthorizationRequired => "reauthorization_required",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }

    /// Parses a stored status.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ConnectionStatus::Online,
            ConnectionStatus::Syncing,
            ConnectionStatus::Offline,
            ConnectionStatus::ReauthorizationRequired,
            ConnectionStatus::Disconnected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// State of the circuit breaker guarding calls to the source system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow normally.
    Closed,
    /// Too many consecutive failures: calls are held back until a probe succeeds.
    Open,
    /// One probe call is allowed through to test recovery.
    HalfOpen,
}

impl CircuitState {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Who the connection belongs to on the organization's side.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUser {
    /// The organization's own id for its customer.
    #[schema(example = "customer-4711")]
    pub id: String,
    /// Display name of the customer.
    #[serde(default)]
    pub name: Option<String>,
    /// Contact e-mail of the customer.
    #[serde(default)]
    pub email: Option<String>,
}

/// What a credential may do through the MCP server (`/mcp`, `ironbridge mcp --stdio`), set when
/// it is created. The REST API does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpAccess {
    /// Read tools only (lists, records, status, describe, sync): the default.
    #[default]
    Read,
    /// Read tools and the write tools (`create_…`, `update_…`) the system supports.
    ReadWrite,
}

impl McpAccess {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            McpAccess::Read => "read",
            McpAccess::ReadWrite => "read_write",
        }
    }

    /// Parses the stored name (anything else reads as `read`, the safe side).
    pub fn parse(s: &str) -> McpAccess {
        if s == "read_write" {
            McpAccess::ReadWrite
        } else {
            McpAccess::Read
        }
    }

    /// Whether write tools are granted.
    pub fn allows_writes(self) -> bool {
        self == McpAccess::ReadWrite
    }
}

/// Body of `POST /v1/connections`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionIn {
    /// Which system to connect.
    pub system: SystemId,
    /// A label for people.
    #[serde(default)]
    #[schema(example = "Acme Corp ERP")]
    pub name: Option<String>,
    /// The source system's credentials. Stored encrypted; never returned.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<serde_json::Map<String, serde_json::Value>>,
    /// System-specific settings. The sandbox takes `seed` (integer) and `purchase_orders`
    /// (how many orders to generate, 1 to 5000, default 120). Every system also takes
    /// `history_days` (1 to 3650): how many days of transactions the first sync reads
    /// (default 90; reference data such as vendors and items is always read whole).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"seed": 7, "purchase_orders": 120}))]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// The organization's customer this connection belongs to.
    #[serde(default)]
    pub end_user: Option<EndUser>,
    /// What the connection's token may do through the MCP server: `read` (default) or
    /// `read_write` (write tools too). A reconnect keeps it.
    #[serde(default)]
    pub mcp_access: Option<McpAccess>,
}

/// Body of `POST /v1/connections/{id}/reconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconnectIn {
    /// New credentials; the old ones are reused when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Health figures of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionHealth {
    /// Last time a call to the source system succeeded.
    pub last_successful_call_at: Option<Timestamp>,
    /// Last time a call to the source system failed.
    pub last_error_at: Option<Timestamp>,
    /// Machine code of the last failure.
    pub last_error_code: Option<String>,
    /// Failures since the last success.
    pub consecutive_errors: i64,
    /// Failures since the connection was made.
    pub error_count: i64,
    /// Circuit breaker state.
    pub circuit_state: CircuitState,
    /// How far the source system's clock runs ahead of Ironbridge's, in milliseconds
    /// (negative: behind), from the HTTP `Date` headers of its answers as of the last sync
    /// (`Date` has whole seconds, so this is known to about a second). Ironbridge corrects for
    /// it (sync windows, NetSuite's signed assertions); a large value still explains a
    /// source's time-related refusals. `null` until a sync has measured it.
    #[schema(example = -600000)]
    pub source_clock_offset_ms: Option<i64>,
    /// When `source_clock_offset_ms` was measured.
    pub source_clock_measured_at: Option<Timestamp>,
}

/// Sync state of one entity of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntitySyncStatus {
    /// The entity.
    pub entity: crate::catalogue::Entity,
    /// `never`, `running`, `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// When the last sync of this entity started.
    pub last_started_at: Option<Timestamp>,
    /// When the last sync of this entity finished.
    pub last_finished_at: Option<Timestamp>,
    /// When a sync of this entity last succeeded.
    pub last_succeeded_at: Option<Timestamp>,
    /// Records stored for this entity (deleted ones included).
    pub record_count: i64,
    /// Why the last sync failed, if it did.
    pub last_error: Option<String>,
}

/// A connection to a customer's system.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionOut {
    /// Connection id (`conn_…`).
    #[schema(example = "conn_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub id: String,
    /// The connected system.
    pub system: SystemId,
    /// Label for people.
    pub name: Option<String>,
    /// Current state.
    pub status: ConnectionStatus,
    /// The organization's customer.
    pub end_user: Option<EndUser>,
    /// System-specific settings (never credentials).
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// First characters of the connection token, to recognise it.
    #[schema(example = "ibc_7Hq2")]
    pub token_prefix: String,
    /// What the token may do through the MCP server.
    pub mcp_access: McpAccess,
    /// When the connection was made.
    pub created_at: Timestamp,
    /// When it was disconnected, if it was.
    pub disconnected_at: Option<Timestamp>,
    /// When the last full sync succeeded: a pass over every record, which flags those the
    /// source no longer has. The scheduler runs one every reconciliation interval.
    pub last_full_sync_at: Option<Timestamp>,
    /// The connection this one replaced through a reconnect.
    pub replaces: Option<String>,
    /// The connection that replaced this one through a reconnect.
    pub replaced_by: Option<String>,
    /// Health of calls to the source system.
    pub health: ConnectionHealth,
    /// Sync state of each entity the connection's system reads (and of any other it holds
    /// records of), in catalogue order.
    pub sync: Vec<EntitySyncStatus>,
}

/// Answer to creating or reconnecting a connection: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionCreatedOut {
    /// The new connection.
    pub connection: ConnectionOut,
    /// The connection's API token for the data endpoints. Shown once; store it safely.
    #[schema(example = "ibc_7Hq2…")]
    pub token: String,
}

/// A page of connections.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionList {
    /// Connections, oldest first.
    pub data: Vec<ConnectionOut>,
    /// Cursor for the next page, absent on the last page.
    pub next_cursor: Option<String>,
    /// Connections matching the query.
    pub total_count: Option<u64>,
}

/// Connection credits of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditsOut {
    /// Size of the pool.
    pub total: i64,
    /// Credits held by live (not disconnected) connections.
    pub used: i64,
    /// Credits free for new connections.
    pub available: i64,
}

/// The calling organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganizationOut {
    /// Organization id (`org_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Connection credits.
    pub connection_credits: CreditsOut,
}

/// Body of `POST /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// A label, e.g. where the key is used: 1 to 100 characters, not only spaces.
    #[schema(
        example = "billing-service",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    pub name: String,
    /// What the key may do through the MCP server: `read` (default) or `read_write`.
    #[serde(default)]
    pub mcp_access: Option<McpAccess>,
}

/// An admin API key (never the secret itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyOut {
    /// Key id (`key_…`).
    pub id: String,
    /// Label.
    pub name: String,
    /// First characters of the key, to recognise it.
    #[schema(example = "ibk_Zp3c")]
    pub prefix: String,
    /// What the key may do through the MCP server.
    pub mcp_access: McpAccess,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When the key was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// Answer to creating a key: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    /// The key's metadata.
    pub api_key: ApiKeyOut,
    /// The secret key. Shown once; store it safely.
    pub key: String,
}

/// All admin API keys of the organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, oldest first, revoked ones included.
    pub data: Vec<ApiKeyOut>,
}

/// Answer to deleting a connection's synced data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataDeletedOut {
    /// Records removed.
    pub deleted_records: u64,
}

/// Body of `POST /v1/purchase-orders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderIn {
    /// Order number; the source system assigns one when absent.
    #[serde(default)]
    pub number: Option<String>,
    /// The vendor (`vnd_…`). Required by the ERPs; a warehouse (ASCTrac) keeps its own vendor
    /// master and takes the vendor's code as a custom field instead (`GET
    /// /v1/meta/purchase-orders` says which).
    #[serde(default)]
    #[schema(pattern = "^vnd_", example = "vnd_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub vendor_id: Option<String>,
    /// Receiving location (`loc_…`).
    #[serde(default)]
    #[schema(pattern = "^loc_", example = "loc_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub location_id: Option<String>,
    /// ISO 4217 currency code (three capital letters); the vendor's currency when absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// Order date (`YYYY-MM-DD`); today when absent.
    #[serde(default)]
    #[schema(format = Date)]
    pub order_date: Option<String>,
    /// Expected delivery (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date)]
    pub expected_delivery_date: Option<String>,
    /// Free-text note.
    #[serde(default)]
    pub memo: Option<String>,
    /// Custom fields to set, by name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Lines; at least one. Created in the same transaction as the order.
    #[schema(min_items = 1)]
    pub line_items: Vec<PurchaseOrderLineIn>,
}

/// One line of a purchase order to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderLineIn {
    /// The item (`itm_…`). Required.
    #[schema(pattern = "^itm_", example = "itm_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub item_id: String,
    /// Quantity, greater than zero, as a decimal string (`"10"`, `"2.5"`) or number.
    #[serde(deserialize_with = "crate::amount::deserialize")]
    #[schema(schema_with = crate::amount::quantity_schema)]
    pub quantity: Decimal,
    /// Price per unit, not negative; the item's cost when absent.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(schema_with = crate::amount::unit_price_schema)]
    pub unit_price: Option<Decimal>,
    /// Description; the item's name when absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Unit of measure; the item's when absent.
    #[serde(default)]
    pub unit_of_measure: Option<String>,
    /// Expected delivery of this line (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date)]
    pub expected_delivery_date: Option<String>,
}

/// Body of `PATCH /v1/purchase-orders/{id}`: fields left out stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderPatch {
    /// Receiving location (`loc_…`).
    #[serde(default)]
    #[schema(pattern = "^loc_", example = "loc_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub location_id: Option<String>,
    /// Expected delivery (`YYYY-MM-DD`).
    #[serde(default)]
    #[schema(format = Date)]
    pub expected_delivery_date: Option<String>,
    /// Free-text note.
    #[serde(default)]
    pub memo: Option<String>,
    /// Custom fields to set, by name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// When present, replaces all lines; at least one.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub line_items: Option<Vec<PurchaseOrderLineIn>>,
}

/// A postal address to write (fields left out stay unchanged on an update).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressIn {
    /// Street and number.
    #[serde(default)]
    pub line1: Option<String>,
    /// Suite, building, floor.
    #[serde(default)]
    pub line2: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State, province or region.
    #[serde(default)]
    pub state: Option<String>,
    /// Postal or ZIP code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default)]
    #[schema(example = "US")]
    pub country: Option<String>,
}

/// Body of `POST /v1/vendors`. Which fields a connection's system takes, requires or sets
/// itself differs by system: `GET /v1/meta/vendors` says, and the write is refused by field
/// name (`VALIDATION_ERROR`) otherwise.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorIn {
    /// The vendor's code or number; most systems assign it.
    #[serde(default)]
    pub code: Option<String>,
    /// Legal or trading name.
    #[serde(default)]
    #[schema(example = "Acme Supplies Ltd")]
    pub name: Option<String>,
    /// `active` or `inactive` (blocked for purchasing).
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ActiveStatus>)]
    pub status: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Contact phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Tax registration number.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Default ISO 4217 currency code.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// Payment terms as the source names them.
    #[serde(default)]
    pub payment_terms: Option<String>,
    /// Main address.
    #[serde(default)]
    pub address: Option<AddressIn>,
    /// Custom fields to set, by name (`GET /v1/meta/vendors` lists those the connection can write).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /v1/vendors/{id}`: fields left out stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorPatch {
    /// The vendor's code or number, where the system lets it change.
    #[serde(default)]
    pub code: Option<String>,
    /// Legal or trading name.
    #[serde(default)]
    pub name: Option<String>,
    /// `active` or `inactive` (blocked for purchasing).
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ActiveStatus>)]
    pub status: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Contact phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Tax registration number.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Default ISO 4217 currency code.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// Payment terms as the source names them.
    #[serde(default)]
    pub payment_terms: Option<String>,
    /// Main address: the parts given are set.
    #[serde(default)]
    pub address: Option<AddressIn>,
    /// Custom fields to set, by name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `POST /v1/items`. Which fields a connection's system takes, requires or sets
/// itself differs by system: `GET /v1/meta/items` says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemIn {
    /// SKU or item number.
    #[serde(default)]
    #[schema(example = "ITM-2001")]
    pub code: Option<String>,
    /// Short name.
    #[serde(default)]
    pub name: Option<String>,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// Kind of item.
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ItemType>)]
    pub item_type: Option<String>,
    /// `active` or `inactive` (blocked).
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ActiveStatus>)]
    pub status: Option<String>,
    /// Base unit of measure (`EA`).
    #[serde(default)]
    pub unit_of_measure: Option<String>,
    /// Standard purchase cost per unit, not negative.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(schema_with = crate::amount::unit_price_schema)]
    pub unit_cost: Option<Decimal>,
    /// Custom fields to set, by name (`GET /v1/meta/items` lists those the connection can write).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /v1/items/{id}`: fields left out stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// SKU or item number, where the system lets it change.
    #[serde(default)]
    pub code: Option<String>,
    /// Short name.
    #[serde(default)]
    pub name: Option<String>,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// Kind of item, where the system lets it change.
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ItemType>)]
    pub item_type: Option<String>,
    /// `active` or `inactive` (blocked).
    #[serde(default)]
    #[schema(value_type = Option<crate::entities::ActiveStatus>)]
    pub status: Option<String>,
    /// Base unit of measure.
    #[serde(default)]
    pub unit_of_measure: Option<String>,
    /// Standard purchase cost per unit, not negative.
    #[serde(default, deserialize_with = "crate::amount::deserialize_option")]
    #[schema(schema_with = crate::amount::unit_price_schema)]
    pub unit_cost: Option<Decimal>,
    /// Custom fields to set, by name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The kind of value a writable field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteFieldType {
    /// Text.
    String,
    /// A decimal amount: a string of digits with an optional fraction, or a number.
    Decimal,
    /// `true` or `false`.
    Boolean,
    /// A whole number (only read-only fields have it).
    Integer,
    /// A measurement as a JSON number (coordinates), within the range the description
    /// states.
    Number,
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 date-time with an offset.
    Datetime,
    /// One of `values`.
    Enum,
    /// An Ironbridge id of the `references` entity (`vnd_…`).
    Reference,
    /// An ISO 4217 currency code (three capital letters).
    Currency,
    /// An e-mail address.
    Email,
    /// An object with the nested `fields`.
    Object,
    /// A list of objects with the nested `fields`.
    Array,
    /// Any JSON value (custom fields matched by prefix).
    Any,
}

/// One field of a write, as a connection's system takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteFieldOut {
    /// The unified field name (`vendor_id`), or the custom field's name.
    #[schema(example = "vendor_id")]
    pub name: String,
    /// The kind of value.
    #[serde(rename = "type")]
    pub field_type: WriteFieldType,
    /// A create must give it.
    pub required: bool,
    /// Shown on the record but refused in a write (the system sets it, or Ironbridge cannot
    /// write it to this system).
    pub read_only: bool,
    /// An update may change it (false for read-only fields and fields fixed at creation).
    pub updatable: bool,
    /// For `enum`: the values taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// For text: the most characters the system keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// For `reference`: the entity referred to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<crate::catalogue::Entity>,
    /// For `array`: the fewest elements a write gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u32>,
    /// What it is and where it goes in the system.
    pub description: String,
    /// For `object` and `array`: the nested fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub fields: Option<Vec<WriteFieldOut>>,
}

/// The custom fields a connection can write for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomFieldsOut {
    /// Custom fields the system is known to have, with their types.
    pub fields: Vec<WriteFieldOut>,
    /// Other names taken as custom fields when they start with one of these (`custbody`).
    pub prefixes: Vec<String>,
    /// Any name is taken.
    pub any_name: bool,
}

/// Which writes a connection's system supports for an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WriteOperationsOut {
    /// `POST` creates records.
    pub create: bool,
    /// `PATCH` updates records.
    pub update: bool,
}

/// Answer of `GET /v1/meta/{entity}`: what a write of the entity takes on this connection.
/// Writes are validated against this same description before the source is called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteMetaOut {
    /// The entity.
    pub entity: crate::catalogue::Entity,
    /// The connection's system.
    pub system: SystemId,
    /// The operations supported.
    pub operations: WriteOperationsOut,
    /// Every field of the record: writable ones, and read-only ones (shown, refused in a
    /// write). Empty when the system writes none of the entity.
    pub fields: Vec<WriteFieldOut>,
    /// The custom fields the connection can write (`custom_fields` of the body).
    pub custom_fields: CustomFieldsOut,
}

/// Answer of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthOut {
    /// `ok`, or `unavailable` with a 503.
    pub status: String,
}

/// Body of `POST /v1/sync`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncIn {
    /// Start every entity from the beginning instead of resuming (no data is deleted).
    #[serde(default)]
    pub full: bool,
}

/// A sync job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncJobOut {
    /// Job id (`job_…`).
    pub id: String,
    /// The connection synced.
    pub connection_id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(example = "queued")]
    pub status: String,
    /// Whether the sync reads every record (and flags those the source no longer has).
    pub full: bool,
    /// Why it reads everything: `requested` (`POST /v1/sync {"full": true}`),
    /// `reconciliation_due` (the scheduler's weekly pass) or `reconciliation_overdue` (an
    /// incremental sync upgraded because the last full one was too long ago); `null` for an
    /// incremental sync.
    #[schema(example = "reconciliation_overdue")]
    pub full_reason: Option<String>,
    /// Attempts started so far (a takeover after a worker stopped starts one too).
    pub attempts: i64,
    /// Attempts that failed; the job fails for good at `max_attempts` of them.
    pub failed_attempts: i64,
    /// Failed attempts allowed before the job fails for good.
    pub max_attempts: i64,
    /// When the job runs (next).
    pub run_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the job was queued.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Answer to `POST /v1/sync`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncQueuedOut {
    /// The sync job (the one already queued or running, if there was one).
    pub job: SyncJobOut,
    /// True when a sync was already queued or running and no new one was queued.
    pub already_queued: bool,
}

/// Something that happened: a sync finished, a connection changed state, ...
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventOut {
    /// Event id (`evt_…`), increasing in time.
    pub id: String,
    /// One of `GET /v1/webhook-event-types`: `sync.completed`, `sync.failed`,
    /// `connection.status_changed`, `connection.reauthorization_required`,
    /// `connection.disconnected`, `system.error`, `webhook_endpoint.disabled`.
    #[serde(rename = "type")]
    #[schema(example = "sync.completed")]
    pub event_type: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The connection concerned.
    pub connection_id: Option<String>,
    /// Event-specific details (for syncs: records added, updated, deleted per entity,
    /// duration, error).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// Events, oldest first.
    pub data: Vec<EventOut>,
    /// Cursor for the next page; absent when there are no more events yet.
    pub next_cursor: Option<String>,
}

/// What a change did to a record, as seen from the reader's position in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// First stored after the position the page was read from: no earlier version of the
    /// record can have been read from this feed.
    Created,
    /// Changed; an earlier version was stored before the page's position. The feed keeps
    /// each record at its latest change only, so that version may never have been read from
    /// this cursor: apply `created` and `updated` alike, as upserts.
    Updated,
    /// Deleted in the source system (the record's tombstone).
    Deleted,
}

/// What remains of a deleted record in the feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeTombstone {
    /// The record's key in the source system.
    pub remote_id: String,
    /// When Ironbridge stored the deletion.
    pub deleted_at: Timestamp,
}

/// One record at its latest change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeOut {
    /// The change number: increasing along the feed; the records one sync page or one write
    /// changed together share it.
    pub seq: i64,
    /// What the change did.
    pub change: ChangeKind,
    /// The entity (`purchase_order`, `vendor`, …).
    #[schema(example = "purchase_order")]
    pub entity: String,
    /// The record's id (`po_…`).
    pub id: String,
    /// The record as `GET /v1/{entity}/{id}` answers it now (field mappings applied);
    /// `null` for a deletion.
    #[schema(value_type = Option<Object>)]
    pub record: Option<serde_json::Value>,
    /// For a deletion, what remains of the record; `null` otherwise.
    pub tombstone: Option<ChangeTombstone>,
}

/// A page of the change feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeList {
    /// Changes in feed order: by `seq`, then entity, then id. A record changed several times
    /// appears once, at its latest change.
    pub data: Vec<ChangeOut>,
    /// Where to continue: always present, also on an empty page at the end of the feed, so
    /// the same cursor can be polled for later changes, forever.
    pub next_cursor: String,
}

/// How a system's deletions reach Ironbridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletionDetection {
    /// The source flags deleted records, and every sync sees them.
    Flagged,
    /// The source forgets deleted records: a full sync (scheduled once a week by default, or
    /// `POST /v1/sync` with `full: true`) marks the records it no longer returns as deleted.
    Reconciliation,
    /// The source forgets deleted records but logs their deletion: every sync (incremental
    /// ones too) reads the log for its window and flags what it reports, so a deletion shows
    /// within one sync; the weekly full sync still marks anything the log missed.
    DeletionLog,
}

/// How a system's records of one entity reach Ironbridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadKind {
    /// Filtered by the source's modification time: the first sync reads the history window
    /// (or everything, for reference data), later syncs only what changed since.
    Windowed,
    /// Read whole at every sync: the source cannot filter by modification time.
    Whole,
    /// A change feed with a cursor: each sync continues where the last one stopped.
    Feed,
    /// An outbox the source empties: each page is acknowledged once Ironbridge committed it.
    Outbox,
    /// Append-only observations read by time (never changed, never swept as deleted).
    TimeSeries,
}

/// What a system supports for one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntityCapability {
    /// The entity.
    pub entity: crate::catalogue::Entity,
    /// Records are synced. When `false` the entity is only written, and its records are
    /// those written through Ironbridge, as the source answered them (ASCTrac's purchase
    /// orders: expected receipts, which ASCTrac does not export).
    pub read: bool,
    /// Later syncs read only what changed (by the source's modification time, a feed or an
    /// outbox).
    pub incremental: bool,
    /// How records are read (`null` when they are not).
    pub read_kind: Option<ReadKind>,
    /// How deletions are detected (`null` when records are not read).
    pub deletions: Option<DeletionDetection>,
    /// `POST` creates records in the source system.
    pub create: bool,
    /// `PATCH` updates records in the source system.
    pub update: bool,
}

/// How a credential or setting is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldFormat {
    /// One line of text.
    Text,
    /// An http(s) URL.
    Url,
    /// A PEM document (private key or certificate).
    Pem,
    /// A whole number.
    Integer,
    /// The id of a certificate Ironbridge generated (`crt_…`, `POST /v1/certificates`).
    CertificateId,
}

/// One field of a credential option or of a system's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldOut {
    /// Key in `credentials` or `settings`.
    #[schema(example = "account_id")]
    pub name: String,
    /// Label for people.
    pub label: String,
    /// Where to find the value, or what it does.
    pub description: String,
    /// How it is entered.
    pub format: FieldFormat,
    /// Whether it must be given.
    pub required: bool,
    /// A secret: stored encrypted, never shown again, masked when typed.
    pub secret: bool,
}

/// One way of authenticating to a system: the credentials it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialOptionOut {
    /// Option id (`certificate_generated`).
    pub id: String,
    /// Name for people.
    pub name: String,
    /// How to set it up.
    pub description: String,
    /// The fields of `credentials` this option takes.
    pub fields: Vec<FieldOut>,
}

/// The limits Ironbridge keeps to for one connection of a system (from the vendor's
/// documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemLimits {
    /// Calls in flight at most.
    pub concurrency: u32,
    /// Sustained calls per second at most (`null`: no documented rate, only concurrency).
    pub requests_per_second: Option<f64>,
    /// Where the figures come from.
    pub description: String,
}

/// A system and its capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemCapabilities {
    /// System id, as used in `POST /v1/connections`.
    pub system: SystemId,
    /// Display name.
    pub name: String,
    /// How a connection authenticates to it.
    pub auth: Vec<String>,
    /// The credential options, field by field (what `credentials` takes).
    pub credentials: Vec<CredentialOptionOut>,
    /// The system's own settings (what `settings` takes besides `history_days`).
    pub settings: Vec<FieldOut>,
    /// The limits kept for each connection.
    pub limits: SystemLimits,
    /// Per entity.
    pub entities: Vec<EntityCapability>,
}

/// Every system Ironbridge connects to, with what it supports.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SystemList {
    /// Systems.
    pub data: Vec<SystemCapabilities>,
}

/// Body of `POST /v1/certificates`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateIn {
    /// The system the certificate is for. Only `netsuite` (machine-to-machine auth) uses one.
    pub system: SystemId,
    /// Common name of the certificate's subject (default: `Ironbridge`): 1 to 64
    /// characters, not only spaces.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub common_name: Option<String>,
}

/// A key pair Ironbridge generated: the private key stays here (encrypted); the public
/// certificate is for the customer to upload to their system.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateOut {
    /// Certificate id (`crt_…`). Use it as `credentials.ironbridge_certificate` when creating
    /// the connection.
    pub id: String,
    /// The system it is for.
    pub system: SystemId,
    /// The public X.509 certificate (PEM) to upload, e.g. in NetSuite's OAuth 2.0 Client
    /// Credentials (M2M) Setup. Also at `GET /v1/certificates/{id}/certificate.pem`.
    pub certificate_pem: String,
    /// Validity start.
    pub not_before: Timestamp,
    /// Validity end (at most two years, NetSuite's limit).
    pub not_after: Timestamp,
    /// When it was generated.
    pub created_at: Timestamp,
}
