//! Storage of Link's tokens, shared by both backends like `shared.rs` (compiled once inside
//! each). A token is spent in the same transaction that makes or re-authorizes its
//! connection and writes the event, so a crash can neither make a connection from a token
//! that still works nor spend a token for a connection that was never made.

use async_trait::async_trait;
use ironbridge_core::store::{
    ConnId, Connection, LinkCompletion, LinkStore, LinkToken, NewConnection, OrgId, StoreError,
    StoreResult,
};
use ironbridge_model::Timestamp;
use sqlx::Row;

use super::shared::{SELECT_CONNECTION, Tx, connection_from, insert_event};
use super::{Backend, Db};
use crate::classify;

type DbRow = <Db as sqlx::Database>::Row;

const COLUMNS: &str = "id, org_id, token_hash, end_user, systems, connection_id, redirect_url, brand_name, brand_colour, certificate_id, expires_at, created_at, claimed_at, completed_at, result_connection_id, public_token_hash, connection_token, exchanged_at";

fn link_from(row: &DbRow) -> Result<LinkToken, sqlx::Error> {
    let at = |name: &str| -> Result<Option<Timestamp>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(name)?.map(Timestamp))
    };
    Ok(LinkToken {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        token_hash: row.try_get("token_hash")?,
        end_user: row.try_get("end_user")?,
        systems: row.try_get("systems")?,
        connection_id: row.try_get("connection_id")?,
        redirect_url: row.try_get("redirect_url")?,
        brand_name: row.try_get("brand_name")?,
        brand_colour: row.try_get("brand_colour")?,
        certificate_id: row.try_get("certificate_id")?,
        expires_at: Timestamp(row.try_get("expires_at")?),
        created_at: Timestamp(row.try_get("created_at")?),
        claimed_at: at("claimed_at")?,
        completed_at: at("completed_at")?,
        result_connection_id: row.try_get("result_connection_id")?,
        public_token_hash: row.try_get("public_token_hash")?,
        connection_token: row.try_get("connection_token")?,
        exchanged_at: at("exchanged_at")?,
    })
}

impl Backend {
    /// Spends the organization's link token `id` for `conn`, or `Conflict` if it is spent.
    async fn spend_link_token(
        tx: &mut Tx,
        org: &OrgId,
        id: &str,
        conn: &str,
        done: &LinkCompletion,
    ) -> StoreResult<()> {
        let spent = sqlx::query(
            "UPDATE link_tokens SET completed_at = $3, result_connection_id = $4, public_token_hash = $5, connection_token = $6 \
             WHERE org_id = $1 AND id = $2 AND completed_at IS NULL",
        )
        .bind(&org.0)
        .bind(id)
        .bind(done.now.micros())
        .bind(conn)
        .bind(&done.public_token_hash)
        .bind(&done.connection_token)
        .execute(&mut **tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if spent == 0 {
            return Err(StoreError::conflict("This link was already used."));
        }
        insert_event(tx, &done.event).await
    }

    async fn connection_in(tx: &mut Tx, org: &OrgId, id: &str) -> StoreResult<Connection> {
        let row = sqlx::query(SELECT_CONNECTION)
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        connection_from(&row).map_err(classify)
    }
}

#[async_trait]
impl LinkStore for Backend {
    async fn create_link_token(&self, org: &OrgId, t: &LinkToken) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO link_tokens (id, org_id, token_hash, end_user, systems, connection_id, redirect_url, brand_name, brand_colour, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.id)
        .bind(&org.0)
        .bind(&t.token_hash)
        .bind(&t.end_user)
        .bind(&t.systems)
        .bind(&t.connection_id)
        .bind(&t.redirect_url)
        .bind(&t.brand_name)
        .bind(&t.brand_colour)
        .bind(t.expires_at.micros())
        .bind(t.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn find_link_token(&self, token_hash: &str) -> StoreResult<Option<LinkToken>> {
        let sql = format!("SELECT {COLUMNS} FROM link_tokens WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        row.as_ref().map(link_from).transpose().map_err(classify)
    }

    async fn set_link_certificate(
        &self,
        org: &OrgId,
        id: &str,
        certificate_id: &str,
    ) -> StoreResult<String> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE link_tokens SET certificate_id = $3 WHERE org_id = $1 AND id = $2 AND certificate_id IS NULL",
        )
        .bind(&org.0)
        .bind(id)
        .bind(certificate_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let kept: Option<Option<String>> = sqlx::query_scalar(
            "SELECT certificate_id FROM link_tokens WHERE org_id = $1 AND id = $2",
        )
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await?;
        kept.flatten().ok_or(StoreError::NotFound)
    }

    async fn claim_link_token(
        &self,
        org: &OrgId,
        id: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE link_tokens SET claimed_at = $3 WHERE org_id = $1 AND id = $2 \
             AND completed_at IS NULL AND (claimed_at IS NULL OR claimed_at < $4)",
        )
        .bind(&org.0)
        .bind(id)
        .bind(now.micros())
        .bind(stale_before.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        self.commit(tx).await?;
        Ok(claimed == 1)
    }

    async fn release_link_token(&self, org: &OrgId, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE link_tokens SET claimed_at = NULL WHERE org_id = $1 AND id = $2 AND completed_at IS NULL",
        )
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn finish_link_connection(
        &self,
        org: &OrgId,
        id: &str,
        new: &NewConnection,
        done: &LinkCompletion,
    ) -> StoreResult<Connection> {
        let mut tx = self.begin_write().await?;
        Self::insert_connection(&mut tx, org, new).await?;
        Self::spend_link_token(&mut tx, org, id, &new.id, done).await?;
        let connection = Self::connection_in(&mut tx, org, &new.id).await?;
        self.commit(tx).await?;
        self.due.notify_one();
        Ok(connection)
    }

    async fn finish_link_reauthorization(
        &self,
        org: &OrgId,
        id: &str,
        conn: &ConnId,
        credentials: &str,
        done: &LinkCompletion,
    ) -> StoreResult<Connection> {
        let mut tx = self.begin_write().await?;
        let current = Self::connection_in(&mut tx, org, &conn.0).await?;
        if current.status == "disconnected" {
            return Err(StoreError::conflict(
                "This connection was disconnected; it cannot be re-authorized.",
            ));
        }
        sqlx::query(
            "UPDATE connections SET credentials = $3, consecutive_errors = 0, circuit_state = 'closed' \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org.0)
        .bind(&conn.0)
        .bind(credentials)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Self::apply_status(&mut tx, conn, "online", done.now).await?;
        Self::spend_link_token(&mut tx, org, id, &conn.0, done).await?;
        let connection = Self::connection_in(&mut tx, org, &conn.0).await?;
        self.commit(tx).await?;
        self.due.notify_one();
        Ok(connection)
    }

    async fn exchange_public_token(
        &self,
        org: &OrgId,
        public_token_hash: &str,
        now: Timestamp,
        completed_after: Timestamp,
    ) -> StoreResult<Option<LinkToken>> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM link_tokens WHERE org_id = $1 AND public_token_hash = $2 \
             AND exchanged_at IS NULL AND completed_at > $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&org.0)
            .bind(public_token_hash)
            .bind(completed_after.micros())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(token) = row.as_ref().map(link_from).transpose().map_err(classify)? else {
            return Ok(None);
        };
        // The compare-and-set makes the exchange once-only even between processes.
        let taken = sqlx::query(
            "UPDATE link_tokens SET exchanged_at = $3, connection_token = NULL \
             WHERE org_id = $1 AND id = $2 AND exchanged_at IS NULL",
        )
        .bind(&org.0)
        .bind(&token.id)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        self.commit(tx).await?;
        Ok((taken == 1).then_some(token))
    }
}
