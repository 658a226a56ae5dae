//! The storage seam of per-connection field mappings: the connection's override set, saved
//! whole as a new version on every change, with who made the change and what it was, so any
//! earlier version can be restored.

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::{ConnId, OrgId, StoreResult};

/// One saved version of a connection's field mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingVersion {
    /// 1, 2, …; version 0 is the system's defaults and is never stored.
    pub version: i64,
    /// The whole override set after the change (JSON array).
    pub overrides: String,
    /// What the change was (JSON object).
    pub change: String,
    /// Who made it (`api_key:key_…`).
    pub actor: String,
    /// When.
    pub created_at: Timestamp,
}

/// Storage of field mappings. Every method names the organization: another tenant's
/// connection reads as absent.
#[async_trait]
pub trait FieldMappingStore {
    /// A version of the connection's mappings (`None`: no such version, or not this
    /// organization's connection).
    async fn field_mapping_version(
        &self,
        org: &OrgId,
        conn: &ConnId,
        version: i64,
    ) -> StoreResult<Option<MappingVersion>>;

    /// Saves `new` as the connection's current mappings if its current version is still
    /// `new.version - 1` (one transaction: the version row and the connection's
    /// `mapping_version`). `Conflict` when another change came first; `NotFound` when the
    /// connection is not this organization's.
    async fn save_field_mappings(
        &self,
        org: &OrgId,
        conn: &ConnId,
        new: &MappingVersion,
    ) -> StoreResult<()>;

    /// Versions newest first, those below `before` when given, at most `limit`.
    async fn field_mapping_history(
        &self,
        org: &OrgId,
        conn: &ConnId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<MappingVersion>>;
}
