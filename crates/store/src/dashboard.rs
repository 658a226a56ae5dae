//! Storage of the dashboard's people, sessions, sign-in links and request log, shared by both
//! backends like `shared.rs` (compiled once inside each).

use async_trait::async_trait;
use ironbridge_core::store::{
    DashboardSession, DashboardStore, DashboardUser, NewDashboardToken, OrgId, RequestLogEntry,
    StoreResult,
};
use ironbridge_model::Timestamp;
use sqlx::Row;

use super::{Backend, Db};
use crate::classify;

type DbRow = <Db as sqlx::Database>::Row;

fn user_from(row: &DbRow) -> Result<DashboardUser, sqlx::Error> {
    Ok(DashboardUser {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn entry_from(row: &DbRow) -> Result<RequestLogEntry, sqlx::Error> {
    Ok(RequestLogEntry {
        org_id: row.try_get("org_id")?,
        request_id: row.try_get("request_id")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        status: row.try_get("status")?,
        latency_us: row.try_get("latency_us")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

const USER_COLUMNS: &str = "id, org_id, email, password_hash, created_at";
const LOG_COLUMNS: &str = "org_id, request_id, method, path, status, latency_us, created_at";

#[async_trait]
impl DashboardStore for Backend {
    async fn create_dashboard_user(&self, org: &OrgId, user: &DashboardUser) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dashboard_users (id, org_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&org.0)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.created_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn find_dashboard_user(&self, email: &str) -> StoreResult<Option<DashboardUser>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        row.as_ref().map(user_from).transpose().map_err(classify)
    }

    async fn create_dashboard_session(
        &self,
        org: &OrgId,
        s: &NewDashboardToken,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (id, org_id, user_id, token_hash, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6 FROM dashboard_users WHERE id = $3 AND org_id = $2",
        )
        .bind(&s.id)
        .bind(&org.0)
        .bind(&s.user_id)
        .bind(&s.token_hash)
        .bind(s.created_at.micros())
        .bind(s.expires_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn find_dashboard_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DashboardSession>> {
        let row = sqlx::query(
            "SELECT s.id, s.org_id, s.user_id, u.email, s.expires_at FROM dashboard_sessions s \
             JOIN dashboard_users u ON u.id = s.user_id AND u.org_id = s.org_id \
             WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now.micros())
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.map(|r| -> Result<DashboardSession, sqlx::Error> {
            Ok(DashboardSession {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                expires_at: Timestamp(r.try_get("expires_at")?),
            })
        })
        .transpose()
        .map_err(classify)
    }

    async fn end_dashboard_session(
        &self,
        org: &OrgId,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE dashboard_sessions SET ended_at = $3 WHERE org_id = $1 AND id = $2 AND ended_at IS NULL",
        )
        .bind(&org.0)
        .bind(id)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn create_sign_in_link(&self, org: &OrgId, link: &NewDashboardToken) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dashboard_sign_in_links (id, org_id, user_id, token_hash, expires_at) \
             SELECT $1, $2, $3, $4, $5 FROM dashboard_users WHERE id = $3 AND org_id = $2",
        )
        .bind(&link.id)
        .bind(&org.0)
        .bind(&link.user_id)
        .bind(&link.token_hash)
        .bind(link.expires_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn use_sign_in_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DashboardUser>> {
        let mut tx = self.begin_write().await?;
        let used: Option<(String, String)> = sqlx::query_as(
            "UPDATE dashboard_sign_in_links SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING org_id, user_id",
        )
        .bind(token_hash)
        .bind(now.micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let user = match used {
            Some((org, user)) => {
                let sql = format!(
                    "SELECT {USER_COLUMNS} FROM dashboard_users WHERE id = $1 AND org_id = $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .bind(org)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?
                    .as_ref()
                    .map(user_from)
                    .transpose()
                    .map_err(classify)?
            }
            None => None,
        };
        self.commit(tx).await?;
        Ok(user)
    }

    async fn write_request_log(&self, entries: &[RequestLogEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO request_log (org_id, request_id, method, path, status, latency_us, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, request_id) DO NOTHING",
            )
            .bind(&e.org_id)
            .bind(&e.request_id)
            .bind(&e.method)
            .bind(&e.path)
            .bind(e.status)
            .bind(e.latency_us)
            .bind(e.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        self.commit(tx).await
    }

    async fn list_request_log(
        &self,
        org: &OrgId,
        request_id: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        let rows = match request_id {
            Some(id) => {
                let sql = format!(
                    "SELECT {LOG_COLUMNS} FROM request_log WHERE org_id = $1 AND request_id = $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&org.0)
                    .bind(id)
                    .fetch_all(&mut *self.reader().await?)
                    .await
            }
            None => {
                // Request ids are time-ordered: the newest first is the id order reversed.
                let sql = format!(
                    "SELECT {LOG_COLUMNS} FROM request_log WHERE org_id = $1 AND request_id < $2 \
                     ORDER BY request_id DESC LIMIT $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&org.0)
                    .bind(before.unwrap_or("req_~"))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.reader().await?)
                    .await
            }
        }
        .map_err(classify)?;
        rows.iter()
            .map(entry_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn purge_request_log(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM request_log WHERE created_at < $1")
            .bind(before.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        self.commit(tx).await?;
        Ok(gone)
    }
}
