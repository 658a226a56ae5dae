//! The query code shared by both backends. This file is compiled twice, once inside
//! `sqlite` and once inside `postgres`; `super::Db` and `super::Backend` name the backend.
//! Placeholders are `$N`, which both drivers accept, so statements are written once.

use async_trait::async_trait;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    ApiKey, Certificate, ChangeQuery, ConnId, Connection, Event, Fence, Job, JobOutcome, NewApiKey,
    NewConnection, NewJob, OrgId, Organization, PageWrite, PointQuery, RecordQuery, RunTotals,
    Store, StoreError, StoreResult, StoredChange, StoredPayload, StoredPoint, StoredRecord,
    SyncState, WriteCounts,
};
use ironbridge_model::api::McpAccess;
use ironbridge_model::{Entity, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;

use ironbridge_core::store::{RawPayload, RecordUpsert};
use sqlx::Row;

use super::{
    Backend, CACHE_KEY_LOOKUPS, CLAIM_JOB, CLOSE_RECORD, Db, EXPLAIN, FEED_SETUP, FENCE_CHECK,
    LOCK_MIGRATIONS, LOCK_ORG, MIGRATIONS, SHARED_BY_PROCESSES, SWEEP_SETUP, SWEEP_UNSEEN,
};
use crate::classify;
use crate::lists::{self, Arg};
use crate::migrate::CREATE_TABLE;

type DbRow = <Db as sqlx::Database>::Row;
type DbArgs = <Db as sqlx::Database>::Arguments;

impl Backend {
    /// The plan of every shape of every list statement, as the database would run it with
    /// sample values, and the columns its index must be searched by: the plan tests check
    /// that each is, and that none reads a whole table or sorts the rows it pages.
    pub async fn list_plans(&self) -> StoreResult<Vec<(String, String, Vec<&'static str>)>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        if let Some(setting) = EXPLAIN.1 {
            sqlx::query(setting)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let mut out = Vec::new();
        for (name, statement, keyed) in lists::plan_samples() {
            let plan = Self::explain(&mut tx, &statement.sql, &statement.args).await?;
            out.push((format!("{name}: {}", statement.sql), plan, keyed));
        }
        // The sweep of a full pass, as it runs (its own setting included).
        if let Some(setup) = SWEEP_SETUP {
            sqlx::query(setup)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let args = [
            Arg::Text("conn_plan".into()),
            Arg::Text("purchase_order".into()),
            Arg::Text("run_plan".into()),
            Arg::Int(1_700_000_000_000_000),
            Arg::Int(7),
        ];
        let plan = Self::explain(&mut tx, SWEEP_UNSEEN, &args).await?;
        out.push((
            format!("sweep: {SWEEP_UNSEEN}"),
            plan,
            vec!["connection_id", "entity"],
        ));
        // A change feed page, as it runs (its own setting included).
        if let Some(setup) = FEED_SETUP {
            sqlx::query(setup)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let feed = lists::changes(
            &ConnId("conn_plan".into()),
            &ChangeQuery {
                entity: None,
                after: ironbridge_core::store::ChangePosition::start(),
                include_raw: false,
                limit: 1000,
            },
        );
        let plan = Self::explain(&mut tx, &feed.sql, &feed.args).await?;
        out.push((
            format!("feed: {}", feed.sql),
            plan,
            vec!["connection_id", "change_seq"],
        ));
        tx.rollback().await.map_err(classify)?;
        Ok(out)
    }

    /// The plan of one statement with its values, one line a step.
    async fn explain(tx: &mut Tx, sql: &str, args: &[Arg]) -> StoreResult<String> {
        let (prefix, _, column) = EXPLAIN;
        let rows = bind_args(&format!("{prefix}{sql}"), args)
            .persistent(false)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?;
        let lines = rows
            .iter()
            .map(|r| r.try_get::<String, _>(column))
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        Ok(lines.join("\n"))
    }
}

/// A built list statement, its values bound in order. Its text is made only of Ironbridge's
/// own fragments and numbered placeholders (`store::lists`); every value is bound.
pub(crate) fn bind_args<'q>(sql: &str, args: &'q [Arg]) -> sqlx::query::Query<'q, Db, DbArgs> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v.as_str()),
            Arg::Int(v) => query.bind(*v),
        };
    }
    query
}

/// Records per statement when writing a page: 13 parameters a row stays far below both
/// drivers' limits (SQLite 32,766; PostgreSQL 65,535), and fewer, larger statements are what
/// make a page cheap.
const WRITE_CHUNK: usize = 500;

macro_rules! connection_columns {
    () => {
        "id, org_id, system, name, status, settings, end_user, credentials, token_prefix, created_at, disconnected_at, replaces, replaced_by, last_success_at, last_error_at, last_error_code, consecutive_errors, error_count, circuit_state, last_full_sync_at, source_clock_offset_ms, source_clock_measured_at, mcp_access, mapping_version"
    };
}

macro_rules! sync_state_columns {
    () => {
        "entity, status, cursor, last_started_at, last_finished_at, last_succeeded_at, last_error, window_since, window_until, high_water, run_id, run_added, run_updated, run_deleted, run_unchanged, run_skipped, completed_by_job"
    };
}

macro_rules! key_columns {
    () => {
        "id, org_id, name, prefix, created_at, last_used_at, revoked_at, mcp_access"
    };
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

pub(super) fn connection_from(row: &DbRow) -> Result<Connection, sqlx::Error> {
    Ok(Connection {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        system: row.try_get("system")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        settings: row.try_get("settings")?,
        end_user: row.try_get("end_user")?,
        credentials: row.try_get("credentials")?,
        token_prefix: row.try_get("token_prefix")?,
        created_at: Timestamp(row.try_get("created_at")?),
        disconnected_at: ts(row.try_get("disconnected_at")?),
        replaces: row.try_get("replaces")?,
        replaced_by: row.try_get("replaced_by")?,
        last_success_at: ts(row.try_get("last_success_at")?),
        last_error_at: ts(row.try_get("last_error_at")?),
        last_error_code: row.try_get("last_error_code")?,
        consecutive_errors: row.try_get("consecutive_errors")?,
        error_count: row.try_get("error_count")?,
        circuit_state: row.try_get("circuit_state")?,
        last_full_sync_at: ts(row.try_get("last_full_sync_at")?),
        source_clock_offset_ms: row.try_get("source_clock_offset_ms")?,
        source_clock_measured_at: ts(row.try_get("source_clock_measured_at")?),
        mcp_access: McpAccess::parse(row.try_get("mcp_access")?),
        mapping_version: row.try_get("mapping_version")?,
    })
}

fn key_from(row: &DbRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_used_at: ts(row.try_get("last_used_at")?),
        revoked_at: ts(row.try_get("revoked_at")?),
        mcp_access: McpAccess::parse(row.try_get("mcp_access")?),
    })
}

/// Rows of (organization id, connection id) as the scheduler takes them.
fn org_connections(rows: Vec<(String, String)>) -> Vec<(OrgId, ConnId)> {
    rows.into_iter()
        .map(|(o, c)| (OrgId(o), ConnId(c)))
        .collect()
}

/// The stream of a connection's entity stored as points, made on its first point.
async fn point_stream(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
    entity: Entity,
) -> StoreResult<i64> {
    sqlx::query(
        "INSERT INTO point_streams (connection_id, entity) VALUES ($1, $2) \
         ON CONFLICT (connection_id, entity) DO NOTHING",
    )
    .bind(&conn.0)
    .bind(entity.as_str())
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    sqlx::query_scalar("SELECT id FROM point_streams WHERE connection_id = $1 AND entity = $2")
        .bind(&conn.0)
        .bind(entity.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(classify)
}

/// Adds the points a series does not have yet (one per series and instant) and moves each
/// series' newest point forward; returns how many were added.
async fn write_points(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
    entity: Entity,
    points: &[ironbridge_core::store::PointUpsert],
    now: i64,
) -> StoreResult<u64> {
    let stream = point_stream(tx, conn, entity).await?;
    // The newest point of each series in this page, laid over the stored newest if newer;
    // the same statement names a series the first time it is seen.
    let mut newest: HashMap<&str, &ironbridge_core::store::PointUpsert> = HashMap::new();
    for p in points {
        let slot = newest.entry(p.series_id.as_str()).or_insert(p);
        if p.recorded_at > slot.recorded_at {
            *slot = p;
        }
    }
    let mut newest: Vec<_> = newest.into_values().collect();
    // One order for every writer, so two pages of one stream never wait on each other's
    // rows in opposite orders.
    newest.sort_by(|a, b| a.series_id.cmp(&b.series_id));
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(newest.len());
    for chunk in newest.chunks(WRITE_CHUNK) {
        let mut upsert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO point_series (stream, series_id, latest_at, latest_data, latest_created_at) ",
        );
        upsert.push_values(chunk, |mut row, p| {
            row.push_bind(stream)
                .push_bind(&p.series_id)
                .push_bind(p.recorded_at.micros())
                .push_bind(&p.data)
                .push_bind(now);
        });
        upsert.push(
            " ON CONFLICT (stream, series_id) DO UPDATE SET latest_at = excluded.latest_at, \
             latest_data = excluded.latest_data, latest_created_at = excluded.latest_created_at \
             WHERE point_series.latest_at IS NULL OR excluded.latest_at > point_series.latest_at",
        );
        upsert
            .build()
            .persistent(false)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
        let mut select =
            sqlx::QueryBuilder::<Db>::new("SELECT id, series_id FROM point_series WHERE stream = ");
        select.push_bind(stream);
        select.push(" AND series_id IN (");
        let mut names = select.separated(", ");
        for p in chunk {
            names.push_bind(&p.series_id);
        }
        select.push(")");
        for row in select
            .build()
            .persistent(false)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?
        {
            ids.insert(
                row.try_get("series_id").map_err(classify)?,
                row.try_get("id").map_err(classify)?,
            );
        }
    }
    let mut added = 0;
    for chunk in points.chunks(WRITE_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO points (series, recorded_at, stream, data, created_at) ",
        );
        let mut missing = false;
        insert.push_values(chunk, |mut row, p| {
            let series = ids.get(p.series_id.as_str()).copied().unwrap_or_else(|| {
                missing = true;
                0
            });
            row.push_bind(series)
                .push_bind(p.recorded_at.micros())
                .push_bind(stream)
                .push_bind(&p.data)
                .push_bind(now);
        });
        if missing {
            return Err(StoreError::Internal(
                "a point's series was not named".into(),
            ));
        }
        insert.push(" ON CONFLICT (series, recorded_at) DO NOTHING");
        added += insert
            .build()
            .persistent(chunk.len() == WRITE_CHUNK)
            .execute(&mut **tx)
            .await
            .map_err(classify)?
            .rows_affected();
    }
    Ok(added)
}

fn point_from(row: &DbRow) -> StoreResult<StoredPoint> {
    Ok(StoredPoint {
        series_id: row.try_get("series_id").map_err(classify)?,
        recorded_at: Timestamp(row.try_get("recorded_at").map_err(classify)?),
        data: row.try_get("data").map_err(classify)?,
        created_at: Timestamp(row.try_get("created_at").map_err(classify)?),
    })
}

/// Refuses a page of partial records when a version one of them was laid over is no longer
/// the stored one. Writes of the connection's entity that could change them take turns
/// with this check ([`lock_records`]), so nothing changes between it and the commit.
async fn check_bases(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
    entity: Entity,
    bases: &[(String, Option<String>)],
) -> StoreResult<()> {
    lock_records(tx, conn, entity).await?;
    for chunk in bases.chunks(WRITE_CHUNK) {
        let mut select = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, content_hash FROM records WHERE connection_id = ",
        );
        select.push_bind(&conn.0);
        select.push(" AND entity = ");
        select.push_bind(entity.as_str());
        select.push(" AND id IN (");
        let mut list = select.separated(", ");
        for (id, _) in chunk {
            list.push_bind(id);
        }
        select.push(")");
        let rows = select
            .build()
            .persistent(false)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?;
        let mut now: HashMap<String, String> = HashMap::with_capacity(rows.len());
        for row in &rows {
            now.insert(
                row.try_get("id").map_err(classify)?,
                row.try_get("content_hash").map_err(classify)?,
            );
        }
        if chunk.iter().any(|(id, base)| now.get(id) != base.as_ref()) {
            return Err(StoreError::conflict(
                "a stored record changed while a partial record was merged with it",
            ));
        }
    }
    Ok(())
}

/// Makes writes of partial records of one connection's entity take turns (PostgreSQL; one
/// SQLite writer at a time does so already).
pub(crate) async fn lock_records(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
    entity: Entity,
) -> StoreResult<()> {
    if let Some(lock) = super::LOCK_RECORDS {
        sqlx::query(lock)
            .bind(format!("{}/{}", conn.0, entity.as_str()))
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

/// Takes the connection's next change number; every record the transaction changes is
/// stamped with it (the change feed, `GET /v1/changes`). The counter's row stays locked until
/// the commit (PostgreSQL; SQLite has one writer), so changes of a connection commit in the
/// order of their numbers: a reader of the feed never sees number n + 1 while n may still
/// come. A number taken by a transaction that then changes nothing is skipped, harmlessly.
pub(crate) async fn next_change(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
) -> StoreResult<i64> {
    sqlx::query_scalar(
        "INSERT INTO change_counters (connection_id, last_seq) VALUES ($1, 1) \
         ON CONFLICT (connection_id) DO UPDATE SET last_seq = change_counters.last_seq + 1 RETURNING last_seq",
    )
    .bind(&conn.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(classify)
}

/// The transaction's change number, taken at its first change ([`next_change`]).
async fn change_number(
    tx: &mut sqlx::Transaction<'static, Db>,
    conn: &ConnId,
    taken: &mut Option<i64>,
) -> StoreResult<i64> {
    if let Some(seq) = *taken {
        return Ok(seq);
    }
    let seq = next_change(tx, conn).await?;
    *taken = Some(seq);
    Ok(seq)
}

fn change_from(row: &DbRow) -> StoreResult<StoredChange> {
    let entity: String = row.try_get("entity").map_err(classify)?;
    let entity = Entity::parse(&entity).ok_or_else(|| {
        StoreError::Internal(format!("unknown entity {entity} in records").into())
    })?;
    Ok(StoredChange {
        entity,
        seq: row.try_get("change_seq").map_err(classify)?,
        created_seq: row.try_get("created_seq").map_err(classify)?,
        record: record_from(row).map_err(classify)?,
    })
}

fn record_from(row: &DbRow) -> Result<StoredRecord, sqlx::Error> {
    Ok(StoredRecord {
        id: row.try_get("id")?,
        remote_id: row.try_get("remote_id")?,
        data: row.try_get("data")?,
        raw: match row.try_get::<Option<Vec<u8>>, _>("raw_z")? {
            // Compressed (since migration 15); `raw` holds the text of records stored before.
            Some(stored) => {
                Some(RawPayload::text(&stored).map_err(|e| sqlx::Error::Decode(e.into()))?)
            }
            None => row.try_get("raw")?,
        },
        created_at: Timestamp(row.try_get("created_at")?),
        modified_at: Timestamp(row.try_get("modified_at")?),
        remote_created_at: ts(row.try_get("remote_created_at")?),
        remote_updated_at: ts(row.try_get("remote_updated_at")?),
        remote_was_deleted: row.try_get("remote_was_deleted")?,
    })
}

fn sync_state_from(row: &DbRow) -> Result<Option<SyncState>, sqlx::Error> {
    let entity: String = row.try_get("entity")?;
    let Some(entity) = Entity::parse(&entity) else {
        return Ok(None);
    };
    Ok(Some(SyncState {
        entity,
        status: row.try_get("status")?,
        cursor: row.try_get("cursor")?,
        last_started_at: ts(row.try_get("last_started_at")?),
        last_finished_at: ts(row.try_get("last_finished_at")?),
        last_succeeded_at: ts(row.try_get("last_succeeded_at")?),
        last_error: row.try_get("last_error")?,
        window_since: ts(row.try_get("window_since")?),
        window_until: ts(row.try_get("window_until")?),
        high_water: ts(row.try_get("high_water")?),
        run_id: row.try_get("run_id")?,
        run_totals: totals_from(row)?,
        completed_by_job: row.try_get("completed_by_job")?,
    }))
}

fn totals_from(row: &DbRow) -> Result<RunTotals, sqlx::Error> {
    let n = |column: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
    };
    Ok(RunTotals {
        written: WriteCounts {
            added: n("run_added")?,
            updated: n("run_updated")?,
            deleted: n("run_deleted")?,
            unchanged: n("run_unchanged")?,
        },
        skipped: n("run_skipped")?,
    })
}

fn job_from(row: &DbRow) -> Result<Job, sqlx::Error> {
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        run_at: Timestamp(row.try_get("run_at")?),
        attempts: row.try_get("attempts")?,
        failures: row.try_get("failures")?,
        max_attempts: row.try_get("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: ts(row.try_get("lease_until")?),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn event_from(row: &DbRow) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        event_type: row.try_get("type")?,
        data: row.try_get("data")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// Writes an event and, in the same transaction, its webhook deliveries.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'static, Db>,
    e: &Event,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO events (id, org_id, connection_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&e.id)
        .bind(&e.org_id)
        .bind(&e.connection_id)
        .bind(&e.event_type)
        .bind(&e.data)
        .bind(e.created_at.micros())
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    super::webhooks::fan_out(tx, e).await?;
    super::flows::start_event_runs(tx, e).await
}

/// A lifecycle event of a connection, written by the store with the change itself.
fn connection_event(
    org: &str,
    conn: &str,
    event_type: &str,
    data: serde_json::Value,
    now: Timestamp,
) -> Event {
    Event {
        id: new_id("evt", now.micros()),
        org_id: org.to_string(),
        connection_id: Some(conn.to_string()),
        event_type: event_type.to_string(),
        data: data.to_string(),
        created_at: now,
    }
}

const INSERT_CONNECTION: &str = "INSERT INTO connections (id, org_id, system, name, status, settings, end_user, credentials, token_hash, token_prefix, created_at, replaces, mcp_access) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const COUNT_LIVE: &str =
    "SELECT COUNT(*) FROM connections WHERE org_id = $1 AND status <> 'disconnected'";
pub(super) const SELECT_CONNECTION: &str = concat!(
    "SELECT ",
    connection_columns!(),
    " FROM connections WHERE org_id = $1 AND id = $2"
);

pub(super) type Tx = sqlx::Transaction<'static, Db>;

impl Backend {
    /// Refuses the transaction's writes (`Fenced`) when this view's job lease is no longer
    /// held; a view without a fence writes freely.
    async fn guard(&self, tx: &mut Tx) -> StoreResult<()> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let held: Option<i32> = sqlx::query_scalar(FENCE_CHECK)
            .bind(&fence.job_id)
            .bind(&fence.owner)
            .bind(fence.attempt)
            .fetch_optional(&mut **tx)
            .await
            .map_err(classify)?;
        if held.is_none() {
            return Err(StoreError::Fenced);
        }
        Ok(())
    }

    /// Commits a write transaction once the fence (if any) still holds; rolls it back if not.
    pub(super) async fn commit(&self, mut tx: Tx) -> StoreResult<()> {
        self.guard(&mut tx).await?;
        tx.commit().await.map_err(classify)?;
        self.after_commit();
        Ok(())
    }

    /// Moves a connection to `status`, writing `connection.status_changed` (and
    /// `connection.reauthorization_required`) when its settled state changes.
    pub(super) async fn apply_status(
        tx: &mut Tx,
        conn: &ConnId,
        status: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let current: Option<(String, String)> =
            sqlx::query_as("SELECT org_id, status FROM connections WHERE id = $1")
                .bind(&conn.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(classify)?;
        let Some((org, previous)) = current else {
            return Err(StoreError::NotFound);
        };
        if previous == "disconnected" || previous == status {
            return Ok(());
        }
        sqlx::query("UPDATE connections SET status = $2 WHERE id = $1")
            .bind(&conn.0)
            .bind(status)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
        // `syncing` is a passing state, not news: events compare settled states only.
        if status == "syncing" {
            return Ok(());
        }
        let last: Option<String> = sqlx::query_scalar(
            "SELECT data FROM events WHERE connection_id = $1 AND type = 'connection.status_changed' ORDER BY id DESC LIMIT 1",
        )
        .bind(&conn.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
        let last_settled = last
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|d| d["status"].as_str().map(str::to_string))
            .unwrap_or_else(|| "online".into());
        if last_settled != status {
            let data = serde_json::json!({"previous_status": last_settled, "status": status});
            insert_event(
                tx,
                &connection_event(&org, &conn.0, "connection.status_changed", data, now),
            )
            .await?;
            if status == "reauthorization_required" {
                let data = serde_json::json!({"status": status});
                insert_event(
                    tx,
                    &connection_event(
                        &org,
                        &conn.0,
                        "connection.reauthorization_required",
                        data,
                        now,
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Drops the keys an entity's passes recorded as seen.
    async fn forget_seen(tx: &mut Tx, conn: &ConnId, entity: Entity) -> StoreResult<()> {
        sqlx::query("DELETE FROM seen_pages WHERE connection_id = $1 AND entity = $2")
            .bind(&conn.0)
            .bind(entity.as_str())
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Reads one row of the organization by id (`sql` binds them as `$1`, `$2`); `NotFound`
    /// when it has none.
    pub(super) async fn fetch_owned<T>(
        &self,
        sql: &'static str,
        org: &OrgId,
        id: &str,
        from: fn(&DbRow) -> Result<T, sqlx::Error>,
    ) -> StoreResult<T> {
        let row = sqlx::query(sql)
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        from(&row).map_err(classify)
    }

    /// Applies the embedded migrations that are not yet applied.
    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if let Some(lock) = LOCK_MIGRATIONS {
            sqlx::query(lock)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        sqlx::query(CREATE_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(ironbridge_core::Clock::now(&ironbridge_core::SystemClock).micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        tx.commit().await.map_err(classify)
    }

    pub(super) async fn insert_connection(
        tx: &mut sqlx::Transaction<'static, Db>,
        org: &OrgId,
        new: &NewConnection,
    ) -> StoreResult<()> {
        let credits: Option<i64> = sqlx::query_scalar(LOCK_ORG)
            .bind(&org.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(classify)?;
        let credits = credits.ok_or(StoreError::NotFound)?;
        let used: i64 = sqlx::query_scalar(COUNT_LIVE)
            .bind(&org.0)
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
        if used >= credits {
            return Err(StoreError::CreditsExhausted);
        }
        sqlx::query(INSERT_CONNECTION)
            .bind(&new.id)
            .bind(&org.0)
            .bind(&new.system)
            .bind(&new.name)
            .bind(&new.status)
            .bind(&new.settings)
            .bind(&new.end_user)
            .bind(&new.credentials)
            .bind(&new.token_hash)
            .bind(&new.token_prefix)
            .bind(new.created_at.micros())
            .bind(&new.replaces)
            .bind(new.mcp_access.as_str())
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl Store for Backend {
    fn pool_stats(&self) -> Vec<ironbridge_core::store::PoolStats> {
        Backend::pool_stats(self)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.reader().await?)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn create_organization(&self, org: &Organization, key: &NewApiKey) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO organizations (id, name, connection_credits, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.connection_credits)
            .bind(org.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("INSERT INTO api_keys (id, org_id, name, token_hash, prefix, created_at, mcp_access) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&key.id)
            .bind(&org.id)
            .bind(&key.name)
            .bind(&key.token_hash)
            .bind(&key.prefix)
            .bind(key.created_at.micros())
            .bind(key.mcp_access.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn get_organization(&self, org: &OrgId) -> StoreResult<Organization> {
        let row = sqlx::query(
            "SELECT id, name, connection_credits, created_at FROM organizations WHERE id = $1",
        )
        .bind(&org.0)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        (|| {
            Ok::<_, sqlx::Error>(Organization {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                connection_credits: row.try_get("connection_credits")?,
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })()
        .map_err(classify)
    }

    async fn credits_used(&self, org: &OrgId) -> StoreResult<i64> {
        sqlx::query_scalar(COUNT_LIVE)
            .bind(&org.0)
            .fetch_one(&mut *self.reader().await?)
            .await
            .map_err(classify)
    }

    async fn create_api_key(&self, org: &OrgId, key: &NewApiKey) -> StoreResult<ApiKey> {
        let row = sqlx::query(concat!(
            "INSERT INTO api_keys (id, org_id, name, token_hash, prefix, created_at, mcp_access) SELECT $1, id, $3, $4, $5, $6, $7 FROM organizations WHERE id = $2 RETURNING ",
            key_columns!()
        ))
        .bind(&key.id)
        .bind(&org.0)
        .bind(&key.name)
        .bind(&key.token_hash)
        .bind(&key.prefix)
        .bind(key.created_at.micros())
        .bind(key.mcp_access.as_str())
        .fetch_optional(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        key_from(&row).map_err(classify)
    }

    async fn find_api_key(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.as_ref().map(key_from).transpose().map_err(classify)
    }

    async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE org_id = $1 ORDER BY id"
        ))
        .bind(&org.0)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(key_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn revoke_api_key(
        &self,
        org: &OrgId,
        key_id: &str,
        now: Timestamp,
    ) -> StoreResult<ApiKey> {
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING ",
            key_columns!()
        ))
        .bind(&org.0)
        .bind(key_id)
        .bind(now.micros())
        .fetch_optional(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?;
        match row {
            Some(row) => key_from(&row).map_err(classify),
            None => {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM api_keys WHERE org_id = $1 AND id = $2")
                        .bind(&org.0)
                        .bind(key_id)
                        .fetch_optional(&mut *self.reader().await?)
                        .await
                        .map_err(classify)?;
                Err(if exists.is_some() {
                    StoreError::conflict("already revoked")
                } else {
                    StoreError::NotFound
                })
            }
        }
    }

    async fn touch_api_key(&self, key_id: &str, now: Timestamp) -> StoreResult<()> {
        // Only once a minute per key, so authentication does not turn every read into a write.
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(key_id)
            .bind(now.micros())
            .bind(now.micros() - 60_000_000)
            .execute(&mut *self.write_conn().await?)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn create_connection(&self, org: &OrgId, new: &NewConnection) -> StoreResult<Connection> {
        let mut tx = self.begin_write().await?;
        Self::insert_connection(&mut tx, org, new).await?;
        tx.commit().await.map_err(classify)?;
        self.get_connection(org, &ConnId(new.id.clone())).await
    }

    async fn reconnect(
        &self,
        org: &OrgId,
        old: &ConnId,
        new: &NewConnection,
        now: Timestamp,
    ) -> StoreResult<Connection> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(SELECT_CONNECTION)
            .bind(&org.0)
            .bind(&old.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        let previous = connection_from(&row).map_err(classify)?;
        if previous.replaced_by.is_some() {
            return Err(StoreError::conflict("this connection was already replaced"));
        }
        sqlx::query("UPDATE connections SET status = 'disconnected', disconnected_at = COALESCE(disconnected_at, $3), replaced_by = $4 WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(&old.0)
            .bind(now.micros())
            .bind(&new.id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if previous.status != "disconnected" {
            // Replaced is disconnected: subscribers hear of it as of any disconnection.
            let event = connection_event(
                &org.0,
                &old.0,
                "connection.disconnected",
                serde_json::json!({"status": "disconnected", "replaced_by": new.id}),
                now,
            );
            insert_event(&mut tx, &event).await?;
        }
        let new = NewConnection {
            replaces: Some(old.0.clone()),
            ..new.clone()
        };
        Self::insert_connection(&mut tx, org, &new).await?;
        tx.commit().await.map_err(classify)?;
        self.due.notify_one();
        self.get_connection(org, &ConnId(new.id.clone())).await
    }

    async fn get_connection(&self, org: &OrgId, id: &ConnId) -> StoreResult<Connection> {
        let row = sqlx::query(SELECT_CONNECTION)
            .bind(&org.0)
            .bind(&id.0)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        connection_from(&row).map_err(classify)
    }

    async fn find_connection_by_token(&self, token_hash: &str) -> StoreResult<Option<Connection>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.as_ref()
            .map(connection_from)
            .transpose()
            .map_err(classify)
    }

    async fn list_connections(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<Connection>, u64)> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(&org.0)
        .bind(after_id.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE org_id = $1")
            .bind(&org.0)
            .fetch_one(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        let list = rows
            .iter()
            .map(connection_from)
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        Ok((list, total.max(0) as u64))
    }

    async fn disconnect_connection(
        &self,
        org: &OrgId,
        id: &ConnId,
        now: Timestamp,
    ) -> StoreResult<Connection> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE connections SET status = 'disconnected', disconnected_at = $3 WHERE org_id = $1 AND id = $2 AND status <> 'disconnected' RETURNING ",
            connection_columns!()
        ))
        .bind(&org.0)
        .bind(&id.0)
        .bind(now.micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(row) = row else {
            drop(tx);
            self.get_connection(org, id).await?;
            return Err(StoreError::conflict(
                "the connection is already disconnected",
            ));
        };
        let connection = connection_from(&row).map_err(classify)?;
        let event = connection_event(
            &org.0,
            &id.0,
            "connection.disconnected",
            serde_json::json!({"status": "disconnected"}),
            now,
        );
        insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(classify)?;
        self.due.notify_one();
        Ok(connection)
    }

    async fn delete_connection_data(&self, org: &OrgId, id: &ConnId) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM connections WHERE org_id = $1 AND id = $2")
                .bind(&org.0)
                .bind(&id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("disconnected") => {}
            Some(_) => {
                return Err(StoreError::conflict(
                    "disconnect the connection before deleting its data",
                ));
            }
        }
        let deleted = sqlx::query("DELETE FROM records WHERE connection_id = $1")
            .bind(&id.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        for delete in [
            "DELETE FROM points WHERE stream IN (SELECT id FROM point_streams WHERE connection_id = $1)",
            "DELETE FROM point_series WHERE stream IN (SELECT id FROM point_streams WHERE connection_id = $1)",
            "DELETE FROM point_streams WHERE connection_id = $1",
        ] {
            sqlx::query(delete)
                .bind(&id.0)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        sqlx::query("DELETE FROM sync_state WHERE connection_id = $1")
            .bind(&id.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn set_connection_status(
        &self,
        conn: &ConnId,
        status: &str,
        now: Timestamp,
        event: Option<&Event>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::apply_status(&mut tx, conn, status, now).await?;
        if let Some(event) = event {
            insert_event(&mut tx, event).await?;
        }
        self.commit(tx).await?;
        self.due.notify_one();
        Ok(())
    }

    async fn record_call_success(&self, conn: &ConnId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE connections SET last_success_at = $2, consecutive_errors = 0, circuit_state = 'closed' WHERE id = $1")
            .bind(&conn.0)
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await
    }

    async fn record_call_failure(
        &self,
        conn: &ConnId,
        now: Timestamp,
        code: &str,
        circuit_state: &str,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let failures: Option<i64> = sqlx::query_scalar("UPDATE connections SET last_error_at = $2, last_error_code = $3, circuit_state = $4, consecutive_errors = consecutive_errors + 1, error_count = error_count + 1 WHERE id = $1 RETURNING consecutive_errors")
            .bind(&conn.0)
            .bind(now.micros())
            .bind(code)
            .bind(circuit_state)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await?;
        failures.ok_or(StoreError::NotFound)
    }

    async fn sync_states(&self, conn: &ConnId) -> StoreResult<Vec<SyncState>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            sync_state_columns!(),
            " FROM sync_state WHERE connection_id = $1 ORDER BY entity"
        ))
        .bind(&conn.0)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        let states: Vec<Option<SyncState>> = rows
            .iter()
            .map(sync_state_from)
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        Ok(states.into_iter().flatten().collect())
    }

    async fn start_sync(
        &self,
        conn: &ConnId,
        entity: Entity,
        now: Timestamp,
    ) -> StoreResult<SyncState> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO sync_state (connection_id, entity, status, last_started_at) VALUES ($1, $2, 'running', $3) ",
            "ON CONFLICT (connection_id, entity) DO UPDATE SET status = 'running', last_started_at = excluded.last_started_at RETURNING ",
            sync_state_columns!()
        ))
        .bind(&conn.0)
        .bind(entity.as_str())
        .bind(now.micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await?;
        sync_state_from(&row)
            .map_err(classify)?
            .ok_or_else(|| StoreError::Internal("unknown entity".into()))
    }

    async fn begin_window(
        &self,
        conn: &ConnId,
        entity: Entity,
        run_id: &str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sync_state SET run_id = $3, window_since = $4, window_until = $5, cursor = $6, completed_by_job = NULL, \
             run_added = 0, run_updated = 0, run_deleted = 0, run_unchanged = 0, run_skipped = 0 WHERE connection_id = $1 AND entity = $2")
            .bind(&conn.0)
            .bind(entity.as_str())
            .bind(run_id)
            .bind(since.map(Timestamp::micros))
            .bind(until.map(Timestamp::micros))
            .bind(cursor)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        // What an abandoned run saw is of no use to this one.
        Self::forget_seen(&mut tx, conn, entity).await?;
        self.commit(tx).await
    }

    async fn sweep_unseen(
        &self,
        conn: &ConnId,
        entity: Entity,
        run_id: &str,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        if let Some(setup) = SWEEP_SETUP {
            sqlx::query(setup)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let seq = next_change(&mut tx, conn).await?;
        let swept = sqlx::query(SWEEP_UNSEEN)
            .bind(&conn.0)
            .bind(entity.as_str())
            .bind(run_id)
            .bind(now.micros())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        sqlx::query("UPDATE sync_state SET run_deleted = run_deleted + $3 WHERE connection_id = $1 AND entity = $2")
            .bind(&conn.0)
            .bind(entity.as_str())
            .bind(i64::try_from(swept).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await?;
        Ok(swept)
    }

    async fn write_page(&self, conn: &ConnId, page: &PageWrite) -> StoreResult<WriteCounts> {
        let mut counts = WriteCounts::default();
        let mut tx = self.begin_write().await?;
        let now = page.now.micros();
        // The page's change number, taken at its first change: a page that changes nothing
        // takes none (and waits for no other writer of the connection).
        let mut seq = None;
        let entity = page.entity.as_str();
        if !page.bases.is_empty() {
            check_bases(&mut tx, conn, page.entity, &page.bases).await?;
        }
        // A page may repeat a record (a source that pages by offset while data moves); the
        // last copy wins, and one statement must not touch the same row twice.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(page.records.len());
        for (i, r) in page.records.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let records: Vec<&RecordUpsert> = page
            .records
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(r.id.as_str()) == Some(i))
            .map(|(_, r)| r)
            .collect();
        for chunk in records.chunks(WRITE_CHUNK) {
            // What is stored already, in one statement per chunk.
            let mut select = sqlx::QueryBuilder::<Db>::new(
                "SELECT id, content_hash, remote_was_deleted FROM records WHERE connection_id = ",
            );
            select.push_bind(&conn.0);
            select.push(" AND entity = ");
            select.push_bind(entity);
            select.push(" AND id IN (");
            let mut ids = select.separated(", ");
            for r in chunk {
                ids.push_bind(&r.id);
            }
            select.push(")");
            let rows = select
                .build()
                .persistent(CACHE_KEY_LOOKUPS && chunk.len() == WRITE_CHUNK)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
            let mut stored: HashMap<String, (String, bool)> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("id").map_err(classify)?;
                let hash: String = row.try_get("content_hash").map_err(classify)?;
                let deleted: bool = row.try_get("remote_was_deleted").map_err(classify)?;
                stored.insert(id, (hash, deleted));
            }
            let mut changed = Vec::with_capacity(chunk.len());
            let mut unchanged = Vec::new();
            for r in chunk {
                match stored.get(&r.id) {
                    None => {
                        if r.remote_was_deleted {
                            counts.deleted += 1
                        } else {
                            counts.added += 1
                        }
                        changed.push(*r);
                    }
                    Some((hash, was_deleted)) => {
                        if *hash == r.content_hash && *was_deleted == r.remote_was_deleted {
                            counts.unchanged += 1;
                            unchanged.push(*r);
                            continue;
                        }
                        if r.remote_was_deleted && !was_deleted {
                            counts.deleted += 1
                        } else {
                            counts.updated += 1
                        }
                        changed.push(*r);
                    }
                }
            }
            if !changed.is_empty() {
                let seq = change_number(&mut tx, conn, &mut seq).await?;
                // New and changed records in one statement; `created_at` (and `created_seq`)
                // stay as first stored.
                let mut upsert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO records (connection_id, entity, id, remote_id, data, raw, raw_z, content_hash, remote_created_at, remote_updated_at, remote_was_deleted, created_at, modified_at, change_seq, created_seq) ",
                );
                upsert.push_values(&changed, |mut row, r| {
                    row.push_bind(&conn.0)
                        .push_bind(entity)
                        .push_bind(&r.id)
                        .push_bind(&r.remote_id)
                        .push_bind(&r.data)
                        .push_bind("")
                        .push_bind(r.raw.as_bytes())
                        .push_bind(&r.content_hash)
                        .push_bind(r.remote_created_at.map(Timestamp::micros))
                        .push_bind(r.remote_updated_at.map(Timestamp::micros))
                        .push_bind(r.remote_was_deleted)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(seq)
                        .push_bind(seq);
                });
                upsert.push(
                    " ON CONFLICT (connection_id, entity, id) DO UPDATE SET remote_id = excluded.remote_id, data = excluded.data, raw = excluded.raw, raw_z = excluded.raw_z, \
                     content_hash = excluded.content_hash, remote_created_at = excluded.remote_created_at, remote_updated_at = excluded.remote_updated_at, \
                     remote_was_deleted = excluded.remote_was_deleted, modified_at = excluded.modified_at, change_seq = excluded.change_seq",
                );
                upsert
                    .build()
                    .persistent(changed.len() == WRITE_CHUNK)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
        }
        let mut points_added = 0;
        if !page.points.is_empty() {
            let added = write_points(&mut tx, conn, page.entity, &page.points, now).await?;
            points_added = added;
            counts.added += added;
            counts.unchanged += page.points.len() as u64 - added;
        }
        if let Some(run) = &page.seen_run
            && !records.is_empty()
        {
            // What the pass saw, as one compact row: the record rows stay untouched.
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Internal(e.into()))?;
            sqlx::query(
                "INSERT INTO seen_pages (connection_id, entity, run_id, ids) VALUES ($1, $2, $3, $4)",
            )
            .bind(&conn.0)
            .bind(entity)
            .bind(run)
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        for chunk in page.deleted.chunks(WRITE_CHUNK) {
            // The source's deletion log: the record keeps its last data, flagged.
            let seq = change_number(&mut tx, conn, &mut seq).await?;
            let mut mark = sqlx::QueryBuilder::<Db>::new(
                "UPDATE records SET remote_was_deleted = TRUE, modified_at = ",
            );
            mark.push_bind(now);
            mark.push(", change_seq = ");
            mark.push_bind(seq);
            mark.push(" WHERE connection_id = ");
            mark.push_bind(&conn.0);
            mark.push(" AND entity = ");
            mark.push_bind(entity);
            mark.push(" AND remote_was_deleted = FALSE AND id IN (");
            let mut ids = mark.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            mark.push(")");
            counts.deleted += mark
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
        }
        for (id, reason) in &page.closed {
            // Closed at the source: kept with its last data, saying why it went.
            let seq = change_number(&mut tx, conn, &mut seq).await?;
            counts.deleted += sqlx::query(CLOSE_RECORD)
                .bind(&conn.0)
                .bind(entity)
                .bind(id)
                .bind(now)
                .bind(reason)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
        }
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE sync_state SET cursor = $3, run_added = run_added + $4, run_updated = run_updated + $5, \
             run_deleted = run_deleted + $6, run_unchanged = run_unchanged + $7, run_skipped = run_skipped + $8, \
             points_stored = points_stored + $9 WHERE connection_id = $1 AND entity = $2",
        )
        .bind(&conn.0)
        .bind(entity)
        .bind(&page.checkpoint)
        .bind(n(counts.added))
        .bind(n(counts.updated))
        .bind(n(counts.deleted))
        .bind(n(counts.unchanged))
        .bind(n(page.skipped))
        .bind(n(points_added))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await?;
        Ok(counts)
    }

    async fn finish_sync(
        &self,
        conn: &ConnId,
        entity: Entity,
        now: Timestamp,
        error: Option<&str>,
        position: Option<&str>,
    ) -> StoreResult<RunTotals> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT run_added, run_updated, run_deleted, run_unchanged, run_skipped FROM sync_state WHERE connection_id = $1 AND entity = $2",
        )
        .bind(&conn.0)
        .bind(entity.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let totals = row
            .as_ref()
            .map(totals_from)
            .transpose()
            .map_err(classify)?
            .unwrap_or_default();
        let sql = match error {
            None => {
                "UPDATE sync_state SET status = 'succeeded', cursor = $4, run_id = NULL, high_water = COALESCE(window_until, high_water), \
                 window_since = NULL, window_until = NULL, last_finished_at = $3, last_succeeded_at = $3, last_error = NULL, \
                 completed_by_job = $5 WHERE connection_id = $1 AND entity = $2"
            }
            Some(_) => {
                "UPDATE sync_state SET status = 'failed', last_finished_at = $3, last_error = $4 WHERE connection_id = $1 AND entity = $2"
            }
        };
        // $4: the feed's position on success, the error on failure. $5: the job that finished
        // the run (its totals stay until the next run begins).
        sqlx::query(sql)
            .bind(&conn.0)
            .bind(entity.as_str())
            .bind(now.micros())
            .bind(error.or(position))
            .bind(self.fence.as_ref().map(|f| f.job_id.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if error.is_none() {
            Self::forget_seen(&mut tx, conn, entity).await?;
        }
        self.commit(tx).await?;
        Ok(totals)
    }

    async fn list_changes(&self, conn: &ConnId, q: &ChangeQuery) -> StoreResult<Vec<StoredChange>> {
        let statement = lists::changes(conn, q);
        let query = bind_args(&statement.sql, &statement.args).persistent(CACHE_KEY_LOOKUPS);
        let rows = match FEED_SETUP {
            Some(setup) => {
                let mut tx = self.pool.begin().await.map_err(classify)?;
                sqlx::query(setup)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                let rows = query.fetch_all(&mut *tx).await.map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                rows
            }
            None => query
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(classify)?,
        };
        rows.iter().map(change_from).collect()
    }

    async fn list_records(&self, conn: &ConnId, q: &RecordQuery) -> StoreResult<Vec<StoredRecord>> {
        let statement = lists::records(conn, q);
        let rows = bind_args(&statement.sql, &statement.args)
            .persistent(CACHE_KEY_LOOKUPS)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(record_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn count_records(&self, conn: &ConnId, q: &RecordQuery) -> StoreResult<u64> {
        let statement = lists::count_records(conn, q);
        let n: i64 = bind_args(&statement.sql, &statement.args)
            .persistent(CACHE_KEY_LOOKUPS)
            .fetch_one(&mut *self.reader().await?)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(classify)?;
        Ok(n.max(0) as u64)
    }

    async fn get_record(
        &self,
        conn: &ConnId,
        entity: Entity,
        id: &str,
        include_raw: bool,
    ) -> StoreResult<Option<StoredRecord>> {
        let row = sqlx::query(
            "SELECT id, remote_id, data, CASE WHEN $4 THEN raw ELSE NULL END AS raw, CASE WHEN $4 THEN raw_z ELSE NULL END AS raw_z, created_at, modified_at, remote_created_at, remote_updated_at, remote_was_deleted \
             FROM records WHERE connection_id = $1 AND entity = $2 AND id = $3",
        )
        .bind(&conn.0)
        .bind(entity.as_str())
        .bind(id)
        .bind(include_raw)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.as_ref().map(record_from).transpose().map_err(classify)
    }

    async fn payloads(
        &self,
        conn: &ConnId,
        entity: Entity,
        ids: &[String],
    ) -> StoreResult<Vec<StoredPayload>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(WRITE_CHUNK) {
            let mut select = sqlx::QueryBuilder::<Db>::new(
                "SELECT id, raw, raw_z, content_hash FROM records WHERE connection_id = ",
            );
            select.push_bind(&conn.0);
            select.push(" AND entity = ");
            select.push_bind(entity.as_str());
            select.push(" AND id IN (");
            let mut list = select.separated(", ");
            for id in chunk {
                list.push_bind(id);
            }
            select.push(")");
            let rows = select
                .build()
                .persistent(false)
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(classify)?;
            for row in &rows {
                let raw = match row
                    .try_get::<Option<Vec<u8>>, _>("raw_z")
                    .map_err(classify)?
                {
                    Some(stored) => {
                        RawPayload::text(&stored).map_err(|e| StoreError::Internal(e.into()))?
                    }
                    None => row.try_get("raw").map_err(classify)?,
                };
                out.push(StoredPayload {
                    id: row.try_get("id").map_err(classify)?,
                    raw,
                    content_hash: row.try_get("content_hash").map_err(classify)?,
                });
            }
        }
        Ok(out)
    }

    async fn list_points(
        &self,
        conn: &ConnId,
        query: &PointQuery,
    ) -> StoreResult<Vec<StoredPoint>> {
        let statement = lists::points(conn, query);
        let rows = bind_args(&statement.sql, &statement.args)
            .persistent(false)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows.iter().map(point_from).collect()
    }

    async fn latest_points(
        &self,
        conn: &ConnId,
        entity: Entity,
        series_id: Option<&str>,
        after_series: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredPoint>> {
        let mut select = sqlx::QueryBuilder::<Db>::new(
            "SELECT series_id, latest_at AS recorded_at, latest_data AS data, latest_created_at AS created_at \
             FROM point_series WHERE latest_at IS NOT NULL AND stream = (SELECT id FROM point_streams WHERE connection_id = ",
        );
        select.push_bind(&conn.0);
        select.push(" AND entity = ");
        select.push_bind(entity.as_str());
        select.push(")");
        if let Some(series) = series_id {
            select.push(" AND series_id = ");
            select.push_bind(series);
        }
        if let Some(after) = after_series {
            select.push(" AND series_id > ");
            select.push_bind(after);
        }
        select.push(" ORDER BY series_id LIMIT ");
        select.push_bind(i64::from(limit));
        let rows = select
            .build()
            .persistent(false)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows.iter().map(point_from).collect()
    }

    async fn purge_points(
        &self,
        entity: Entity,
        before: Timestamp,
        batch: u32,
        max: u64,
    ) -> StoreResult<u64> {
        // Per stream, oldest first along the time index, one short transaction a batch:
        // readers and syncs interleave between batches instead of waiting on one long delete.
        let streams: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, connection_id FROM point_streams WHERE entity = $1 ORDER BY id",
        )
        .bind(entity.as_str())
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        let mut purged = 0u64;
        for (stream, conn) in streams {
            while purged < max {
                let take = i64::from(batch).min(i64::try_from(max - purged).unwrap_or(i64::MAX));
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "DELETE FROM points WHERE (series, recorded_at) IN \
                     (SELECT series, recorded_at FROM points WHERE stream = $1 AND recorded_at < $2 \
                      ORDER BY recorded_at LIMIT $3)",
                )
                .bind(stream)
                .bind(before.micros())
                .bind(take)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                sqlx::query(
                    "UPDATE sync_state SET points_stored = CASE WHEN points_stored > $3 THEN points_stored - $3 ELSE 0 END \
                     WHERE connection_id = $1 AND entity = $2",
                )
                .bind(&conn)
                .bind(entity.as_str())
                .bind(i64::try_from(done).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                self.commit(tx).await?;
                purged += done;
                if done < take as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }

    async fn record_counts(&self, conn: &ConnId) -> StoreResult<Vec<(Entity, i64)>> {
        // Time series count their points as they are written and purged.
        let rows = sqlx::query(
            "SELECT entity, COUNT(*) AS n FROM records WHERE connection_id = $1 GROUP BY entity \
             UNION ALL SELECT entity, points_stored AS n FROM sync_state WHERE connection_id = $1 AND points_stored > 0 \
             ORDER BY entity",
        )
            .bind(&conn.0)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        for row in rows {
            let entity: String = row.try_get("entity").map_err(classify)?;
            let n: i64 = row.try_get("n").map_err(classify)?;
            if let Some(entity) = Entity::parse(&entity) {
                out.push((entity, n));
            }
        }
        Ok(out)
    }

    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, kind, org_id, connection_id, payload, dedupe_key, status, run_at, attempts, max_attempts, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, 0, $8, $9, $9) ON CONFLICT DO NOTHING RETURNING ",
            job_columns!()
        ))
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.org_id)
        .bind(&job.connection_id)
        .bind(&job.payload)
        .bind(&job.dedupe_key)
        .bind(job.run_at.micros())
        .bind(job.max_attempts)
        .bind(job.created_at.micros())
        .fetch_optional(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?;
        row.as_ref().map(job_from).transpose().map_err(classify)
    }

    async fn active_job(&self, dedupe_key: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE dedupe_key = $1 AND status IN ('queued', 'running')"
        ))
        .bind(dedupe_key)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        row.as_ref().map(job_from).transpose().map_err(classify)
    }

    async fn get_job(&self, org: &OrgId, id: &str) -> StoreResult<Job> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE org_id = $1 AND id = $2"
            ),
            org,
            id,
            job_from,
        )
        .await
    }

    async fn claim_job(
        &self,
        kind: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(CLAIM_JOB)
            .bind(kind)
            .bind(owner)
            .bind(lease_until.micros())
            .bind(now.micros())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        row.as_ref().map(job_from).transpose().map_err(classify)
    }

    async fn update_job_payload(&self, job: &Job, owner: &str, payload: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE jobs SET payload = $4 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'")
            .bind(&job.id)
            .bind(owner)
            .bind(job.attempts)
            .bind(payload)
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn extend_lease(&self, job: &Job, owner: &str, until: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE jobs SET lease_until = $4 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'")
            .bind(&job.id)
            .bind(owner)
            .bind(job.attempts)
            .bind(until.micros())
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    fn shared_by_processes(&self) -> bool {
        SHARED_BY_PROCESSES
    }

    async fn acquire_write_slot(
        &self,
        conn: &ConnId,
        slots: u32,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<u32>> {
        for slot in 0..slots {
            let taken = sqlx::query(
                "INSERT INTO write_slots (connection_id, slot, holder, lease_until) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connection_id, slot) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
                 WHERE write_slots.lease_until < $5",
            )
            .bind(&conn.0)
            .bind(i64::from(slot))
            .bind(holder)
            .bind(until.micros())
            .bind(now.micros())
            .execute(&mut *self.write_conn().await?)
            .await
            .map_err(classify)?;
            if taken.rows_affected() == 1 {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    async fn release_write_slot(&self, conn: &ConnId, slot: u32, holder: &str) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM write_slots WHERE connection_id = $1 AND slot = $2 AND holder = $3",
        )
        .bind(&conn.0)
        .bind(i64::from(slot))
        .bind(holder)
        .execute(&mut *self.write_conn().await?)
        .await
        .map(|_| ())
        .map_err(classify)
    }

    async fn renew_write_slot(
        &self,
        conn: &ConnId,
        slot: u32,
        holder: &str,
        until: Timestamp,
    ) -> StoreResult<bool> {
        sqlx::query(
            "UPDATE write_slots SET lease_until = $4 WHERE connection_id = $1 AND slot = $2 AND holder = $3",
        )
        .bind(&conn.0)
        .bind(i64::from(slot))
        .bind(holder)
        .bind(until.micros())
        .execute(&mut *self.write_conn().await?)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(classify)
    }

    async fn release_job(&self, job: &Job, owner: &str, now: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $4, lease_owner = NULL, lease_until = NULL, updated_at = $4 \
             WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'",
        )
        .bind(&job.id)
        .bind(owner)
        .bind(job.attempts)
        .bind(now.micros())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        now: Timestamp,
        outcome: &JobOutcome,
    ) -> StoreResult<bool> {
        let (status, run_at, error) = match outcome {
            JobOutcome::Succeeded => ("succeeded", job.run_at, None),
            JobOutcome::Retry { run_at, error } if job.failures + 1 < job.max_attempts => {
                ("queued", *run_at, Some(error.as_str()))
            }
            JobOutcome::Retry { error, .. } | JobOutcome::Failed { error } => {
                ("failed", job.run_at, Some(error.as_str()))
            }
        };
        // Fenced by owner and attempt: a worker whose lease was taken over changes nothing.
        let done = sqlx::query(
            "UPDATE jobs SET status = $4, run_at = $5, last_error = COALESCE($6, last_error), lease_owner = NULL, lease_until = NULL, updated_at = $7, \
             failures = failures + CASE WHEN $6 IS NULL THEN 0 ELSE 1 END \
             WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'",
        )
        .bind(&job.id)
        .bind(owner)
        .bind(job.attempts)
        .bind(status)
        .bind(run_at.micros())
        .bind(error)
        .bind(now.micros())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn connections_due(
        &self,
        started_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(OrgId, ConnId)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.org_id, c.id FROM connections c WHERE c.status NOT IN ('disconnected', 'reauthorization_required') \
             AND COALESCE((SELECT MAX(s.last_started_at) FROM sync_state s WHERE s.connection_id = c.id \
             AND (s.cursor IS NULL OR s.cursor NOT LIKE 'feed:%')), 0) < $1 ORDER BY c.id LIMIT $2",
        )
        .bind(started_before.micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        Ok(org_connections(rows))
    }

    async fn connections_to_poll(
        &self,
        started_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(OrgId, ConnId)>> {
        // `feed:` is `system::FEED_CURSOR_PREFIX`: only followed feeds store such positions.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.org_id, c.id FROM connections c WHERE c.status = 'online' AND EXISTS \
             (SELECT 1 FROM sync_state s WHERE s.connection_id = c.id AND s.cursor LIKE 'feed:%' \
             AND COALESCE(s.last_started_at, 0) < $1) ORDER BY c.id LIMIT $2",
        )
        .bind(started_before.micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        Ok(org_connections(rows))
    }

    async fn purge_finished_jobs(
        &self,
        kind: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let purged = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE kind = $1 \
             AND status IN ('succeeded', 'failed') AND updated_at < $2 LIMIT $3)",
        )
        .bind(kind)
        .bind(before.micros())
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        self.commit(tx).await?;
        Ok(purged)
    }

    async fn last_full_sync(&self, conn: &ConnId) -> StoreResult<Timestamp> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE(last_full_sync_at, created_at) FROM connections WHERE id = $1",
        )
        .bind(&conn.0)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        at.map(Timestamp).ok_or(StoreError::NotFound)
    }

    async fn record_full_sync(&self, conn: &ConnId, at: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE connections SET last_full_sync_at = $2 WHERE id = $1")
            .bind(&conn.0)
            .bind(at.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await
    }

    async fn complete_sync(
        &self,
        conn: &ConnId,
        status: &str,
        now: Timestamp,
        event: &Event,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::apply_status(&mut tx, conn, status, now).await?;
        insert_event(&mut tx, event).await?;
        if let Some(fence) = &self.fence {
            // The job's success is this same commit: fenced like `finish_job`.
            let done = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'",
            )
            .bind(&fence.job_id)
            .bind(&fence.owner)
            .bind(fence.attempt)
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Fenced);
            }
        }
        tx.commit().await.map_err(classify)?;
        self.due.notify_one();
        Ok(())
    }

    fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
        Arc::new(Backend {
            fence: Some(Arc::new(fence)),
            ..self.clone()
        })
    }

    async fn insert_event(&self, event: &Event) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_event(&mut tx, event).await?;
        self.commit(tx).await?;
        self.due.notify_one();
        Ok(())
    }

    async fn list_events(
        &self,
        org: &OrgId,
        after_id: Option<&str>,
        connection: Option<&str>,
        event_type: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let statement = lists::events(
            "id, org_id, connection_id, type, data, created_at",
            org,
            after_id,
            connection,
            event_type,
            limit,
        );
        let rows = bind_args(&statement.sql, &statement.args)
            .persistent(CACHE_KEY_LOOKUPS)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(event_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn recent_events(&self, org: &OrgId, limit: u32) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, org_id, connection_id, type, data, created_at FROM events WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(&org.0)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(event_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn create_certificate(&self, c: &Certificate) -> StoreResult<()> {
        sqlx::query("INSERT INTO certificates (id, org_id, system, private_key, certificate_pem, not_before, not_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&c.id)
            .bind(&c.org_id)
            .bind(&c.system)
            .bind(&c.private_key)
            .bind(&c.certificate_pem)
            .bind(c.not_before.micros())
            .bind(c.not_after.micros())
            .bind(c.created_at.micros())
            .execute(&mut *self.write_conn().await?)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn get_certificate(&self, org: &OrgId, id: &str) -> StoreResult<Certificate> {
        let row = sqlx::query("SELECT id, org_id, system, private_key, certificate_pem, not_before, not_after, created_at FROM certificates WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        (|| {
            Ok::<_, sqlx::Error>(Certificate {
                id: row.try_get("id")?,
                org_id: row.try_get("org_id")?,
                system: row.try_get("system")?,
                private_key: row.try_get("private_key")?,
                certificate_pem: row.try_get("certificate_pem")?,
                not_before: Timestamp(row.try_get("not_before")?),
                not_after: Timestamp(row.try_get("not_after")?),
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })()
        .map_err(classify)
    }

    async fn record_source_clock(
        &self,
        conn: &ConnId,
        offset_ms: i64,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE connections SET source_clock_offset_ms = $2, source_clock_measured_at = $3 WHERE id = $1")
            .bind(&conn.0)
            .bind(offset_ms)
            .bind(at.micros())
            .execute(&mut *self.write_conn().await?)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
