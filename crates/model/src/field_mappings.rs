//! Per-connection field mappings as the API shows them: the effective mapping of every unified
//! and custom field, the source fields a connection really has, overrides with their
//! conversions, previews and the history of changes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{Entity, Timestamp};

/// How a source value becomes a unified value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionType {
    /// Text (numbers and booleans become their text).
    Text,
    /// A whole number (also from text such as `"42"`).
    Integer,
    /// A decimal, written as a string without exponent (`"1250.5"`).
    Decimal,
    /// A measurement as a JSON number (coordinates, speeds), also from text that starts with
    /// one (`"38 mph"`).
    Number,
    /// A boolean (also from `"true"`/`"false"`, `"T"`/`"F"`, `1`/`0`).
    Boolean,
    /// A calendar date `YYYY-MM-DD` (a date-time is cut to its date).
    Date,
    /// A date-time in RFC 3339, UTC (also from OData V2 `/Date(ms)/`).
    DateTime,
    /// A value looked up in `values`; `default` (or null) for any other.
    Enum,
    /// The key of another record, turned into its Ironbridge id (`entity` names which).
    Reference,
}

/// A conversion with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    /// The conversion.
    #[serde(rename = "type")]
    pub kind: ConversionType,
    /// For `enum`: source value → unified value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
    /// The value when the source has none (for `enum`, also for a source value not in
    /// `values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// For `reference`: the entity referred to (`vendor`, `item`, `location`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "vendor")]
    pub entity: Option<Entity>,
}

/// A change of one field's mapping (`PUT /v1/connections/{id}/field-mappings/{entity}/{target}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingIn {
    /// Dotted path into the source record (`custbody_cost_center`, `entity.id`), or, for a
    /// line field or line custom field, into one source line (`custcol_project`). Required
    /// unless `remove` is true. `GET …/remote-fields` lists the paths this connection has.
    #[serde(default)]
    #[schema(example = "custbody_cost_center")]
    pub source_path: Option<String>,
    /// How the value is converted. For a unified field it defaults to the field's own
    /// conversion (and must produce the field's type); for a custom field it defaults to
    /// `text`.
    #[serde(default)]
    pub conversion: Option<Conversion>,
    /// Remove a custom field the default mapping brings (only for `custom_fields.*` targets).
    #[serde(default)]
    pub remove: bool,
}

/// An override of the default mapping, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingOverride {
    /// The unified entity.
    #[schema(value_type = String, example = "purchase_order")]
    pub entity: Entity,
    /// The unified field: `memo`, `address.city`, `custom_fields.cost_center`,
    /// `line_items.description`, `line_items.custom_fields.project`.
    #[schema(example = "custom_fields.cost_center")]
    pub target: String,
    /// The source path (absent when the field is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    /// The conversion (absent when the field is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
    /// The custom field is removed from answers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
}

/// Where a field's mapping comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappingOrigin {
    /// The system's built-in mapping.
    Default,
    /// An override saved for this connection.
    Override,
}

/// The effective mapping of one unified or custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldMappingOut {
    /// The field, as overrides name it (`memo`, `line_items.quantity`,
    /// `custom_fields.cost_center`).
    pub target: String,
    /// Where the source path starts: `record`, or the list (`line_items`) whose source lines
    /// it is relative to.
    #[schema(example = "record")]
    pub scope: String,
    /// The source path read (`null`: the field has no source in this system, or is removed).
    pub source_path: Option<String>,
    /// The conversion applied.
    pub conversion: Option<Conversion>,
    /// Default or override.
    pub origin: MappingOrigin,
    /// Whether an override may change it.
    pub remappable: bool,
    /// The custom field is removed by an override.
    pub removed: bool,
}

/// A rule of the default mapping that copies many source fields into `custom_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomFieldSourceOut {
    /// `record` or the list whose lines it reads.
    pub scope: String,
    /// Every member of the source object at this path is copied.
    pub object: Option<String>,
    /// Every top-level source field whose name starts with one of these is copied, under
    /// its source name.
    pub prefixes: Vec<String>,
}

/// The effective mapping of one entity for a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntityFieldMappingsOut {
    /// The unified entity.
    #[schema(value_type = String, example = "purchase_order")]
    pub entity: Entity,
    /// The connection's mapping version (0: defaults, never changed).
    pub version: i64,
    /// Every unified field, line field and custom field added by an override.
    pub fields: Vec<FieldMappingOut>,
    /// Default rules that copy source fields into `custom_fields` by name.
    pub custom_field_sources: Vec<CustomFieldSourceOut>,
    /// Where each list's elements come from in the source record.
    pub lists: Vec<ListSourceOut>,
}

/// The source array a unified list is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListSourceOut {
    /// The unified list (`line_items`).
    pub target: String,
    /// The source array's path in the record; line fields' source paths are relative to
    /// one of its elements.
    pub source_path: String,
    /// The path of each element's key, relative to the element.
    pub remote_id_path: String,
}

/// The effective mapping of every entity the connection's system reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldMappingsOut {
    /// The connection's mapping version (0: defaults, never changed).
    pub version: i64,
    /// One entry per entity.
    pub data: Vec<EntityFieldMappingsOut>,
}

/// One source field a connection's records have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteFieldOut {
    /// Dotted path: from the record, or from one line for a `scope` naming a list.
    pub path: String,
    /// `record`, or the list (`line_items`) whose source lines the path is relative to.
    pub scope: String,
    /// The type seen (`text`, `integer`, `decimal`, `boolean`, `date`, `date_time`,
    /// `object`, `array`, `null`: only null seen), inferred from the values.
    #[serde(rename = "type")]
    pub kind: String,
    /// Up to three distinct values seen (long texts cut to 100 characters).
    pub examples: Vec<Value>,
    /// How many of the sampled records had a value here.
    pub records_with_value: u64,
    /// The conversions that read every sampled value without error.
    pub conversions: Vec<ConversionType>,
    /// The unified fields the default mapping fills from this path.
    pub mapped_to: Vec<String>,
    /// The system describes this field (OData `$metadata`), so it can be mapped even where no
    /// stored record has a value yet.
    pub described: bool,
    /// The system's label for it, where it has one.
    pub label: Option<String>,
}

/// The source fields of one entity of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteFieldsOut {
    /// The unified entity.
    #[schema(value_type = String, example = "purchase_order")]
    pub entity: Entity,
    /// Stored records read to find the fields (their source payloads, spread over the
    /// connection's records).
    pub records_sampled: u64,
    /// Whether the system's own description of its fields was read (SAP and Business
    /// Central `$metadata`); false when it has none or could not be reached.
    pub described_by_source: bool,
    /// The fields, sorted by scope and path.
    pub data: Vec<RemoteFieldOut>,
}

/// One stored record under the mapping before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreviewRecordOut {
    /// The record's id.
    pub id: String,
    /// Its source key.
    pub remote_id: String,
    /// The field's value now (for a line field: one value per line).
    pub before: Value,
    /// The field's value with the change.
    pub after: Value,
}

/// What a change would do, without saving it (`dry_run=true`), or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldMappingChangeOut {
    /// True when nothing was saved.
    pub dry_run: bool,
    /// The connection's mapping version after the change (unchanged for a dry run).
    pub version: i64,
    /// The field's effective mapping after the change.
    pub mapping: FieldMappingOut,
    /// Stored records the change was checked against.
    pub records_checked: u64,
    /// A few of them, before and after.
    pub preview: Vec<PreviewRecordOut>,
}

/// What one saved change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappingChangeAction {
    /// An override was created or changed.
    Set,
    /// An override was deleted (the field is back to its default, or gone for an added
    /// custom field).
    Delete,
    /// Every override was restored to an earlier version.
    Revert,
}

/// One version of a connection's field mappings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldMappingVersionOut {
    /// The version this change made.
    pub version: i64,
    /// What it was.
    pub action: MappingChangeAction,
    /// The entity changed (absent for a revert).
    #[schema(value_type = Option<String>)]
    pub entity: Option<Entity>,
    /// The field changed (absent for a revert).
    pub target: Option<String>,
    /// The override before the change (`null`: the default).
    pub before: Option<FieldMappingOverride>,
    /// The override after it (`null`: the default).
    pub after: Option<FieldMappingOverride>,
    /// For a revert: the version restored.
    pub reverted_to: Option<i64>,
    /// Who made the change (`api_key:key_…`).
    pub actor: String,
    /// When.
    pub created_at: Timestamp,
    /// Every override in force after the change.
    pub overrides: Vec<FieldMappingOverride>,
}

/// A page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldMappingHistoryOut {
    /// The versions.
    pub data: Vec<FieldMappingVersionOut>,
    /// Cursor of the next (older) page, absent on the last.
    pub next_cursor: Option<String>,
}

/// Restores the overrides of an earlier version (as a new version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingRevertIn {
    /// The version to restore (at most the current one); 0 restores the system's defaults.
    #[schema(minimum = 0)]
    pub version: i64,
}
