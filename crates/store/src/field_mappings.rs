//! Storage of per-connection field mappings, shared by both backends like `shared.rs`
//! (compiled once inside each): versions of the override set, saved with a compare-and-set
//! on the connection's `mapping_version` so two concurrent changes cannot both win.

use async_trait::async_trait;
use ironbridge_core::store::{
    ConnId, FieldMappingStore, MappingVersion, OrgId, StoreError, StoreResult,
};
use ironbridge_model::Timestamp;
use sqlx::Row;

use super::{Backend, Db};
use crate::classify;

type DbRow = <Db as sqlx::Database>::Row;

fn version_from(row: &DbRow) -> Result<MappingVersion, sqlx::Error> {
    Ok(MappingVersion {
        version: row.try_get("version")?,
        overrides: row.try_get("overrides")?,
        change: row.try_get("change")?,
        actor: row.try_get("actor")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

#[async_trait]
impl FieldMappingStore for Backend {
    async fn field_mapping_version(
        &self,
        org: &OrgId,
        conn: &ConnId,
        version: i64,
    ) -> StoreResult<Option<MappingVersion>> {
        let row = sqlx::query(
            "SELECT version, overrides, change, actor, created_at FROM field_mapping_versions \
             WHERE connection_id = $1 AND org_id = $2 AND version = $3",
        )
        .bind(&conn.0)
        .bind(&org.0)
        .bind(version)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.as_ref().map(version_from).transpose().map_err(classify)
    }

    async fn save_field_mappings(
        &self,
        org: &OrgId,
        conn: &ConnId,
        new: &MappingVersion,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE connections SET mapping_version = $1 \
             WHERE id = $2 AND org_id = $3 AND mapping_version = $4",
        )
        .bind(new.version)
        .bind(&conn.0)
        .bind(&org.0)
        .bind(new.version - 1)
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if moved == 0 {
            let exists = sqlx::query("SELECT 1 FROM connections WHERE id = $1 AND org_id = $2")
                .bind(&conn.0)
                .bind(&org.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?
                .is_some();
            return Err(if exists {
                StoreError::conflict(
                    "The connection's field mappings changed meanwhile; read them again.",
                )
            } else {
                StoreError::NotFound
            });
        }
        sqlx::query(
            "INSERT INTO field_mapping_versions (connection_id, version, org_id, overrides, change, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&conn.0)
        .bind(new.version)
        .bind(&org.0)
        .bind(&new.overrides)
        .bind(&new.change)
        .bind(&new.actor)
        .bind(new.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        self.after_commit();
        Ok(())
    }

    async fn field_mapping_history(
        &self,
        org: &OrgId,
        conn: &ConnId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<MappingVersion>> {
        let rows = sqlx::query(
            "SELECT version, overrides, change, actor, created_at FROM field_mapping_versions \
             WHERE connection_id = $1 AND org_id = $2 AND version < $3 ORDER BY version DESC LIMIT $4",
        )
        .bind(&conn.0)
        .bind(&org.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(version_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }
}
