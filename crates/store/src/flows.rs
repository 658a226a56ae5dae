//! Storage of flows, shared by both backends like `shared.rs` (compiled once inside each):
//! documents and their versions, runs with their items step by step, and the triggers'
//! positions, each moved in the transaction that creates the run it starts. Event triggers
//! start their runs inside the transaction that records the event.

use async_trait::async_trait;
use ironbridge_core::flows::new_run;
use ironbridge_core::store::{
    ChangePosition, Event, Flow, FlowFeedDue, FlowItem, FlowRun, FlowStore, FlowVersion, ItemEnd,
    NewJob, OrgId, RunStart, StepCount, StoreError, StoreResult, item_status,
};
use ironbridge_model::Timestamp;
use sqlx::Row;

use super::{Backend, Db};
use crate::classify;

type DbRow = <Db as sqlx::Database>::Row;
type Tx = sqlx::Transaction<'static, Db>;

/// Items inserted per statement.
const INSERT_CHUNK: usize = 500;

macro_rules! flow_columns {
    () => {
        "id, org_id, key, version, document, enabled, trigger_type, trigger_connection_id, feed_seq, feed_entity, feed_id, next_run_at, active_run_id, created_at, updated_at"
    };
}

macro_rules! run_columns {
    () => {
        "id, org_id, flow_id, flow_version, trigger, status, step, input_count, error, cancel_requested, job_id, created_at, updated_at, finished_at"
    };
}

macro_rules! item_columns {
    () => {
        "run_id, step, idx, status, attempts, input, output, error, not_before, updated_at"
    };
}

/// A change feed trigger's position (`feed_seq`, `feed_entity`, `feed_id`), if it has one.
fn feed_of(row: &DbRow) -> Result<Option<ChangePosition>, sqlx::Error> {
    let seq: Option<i64> = row.try_get("feed_seq")?;
    let Some(seq) = seq else { return Ok(None) };
    Ok(Some(ChangePosition {
        seq,
        entity: row
            .try_get::<Option<String>, _>("feed_entity")?
            .unwrap_or_default(),
        id: row
            .try_get::<Option<String>, _>("feed_id")?
            .unwrap_or_default(),
    }))
}

fn flow_from(row: &DbRow) -> Result<Flow, sqlx::Error> {
    let feed = feed_of(row)?;
    Ok(Flow {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        key: row.try_get("key")?,
        version: row.try_get("version")?,
        document: row.try_get("document")?,
        enabled: row.try_get("enabled")?,
        trigger_type: row.try_get("trigger_type")?,
        trigger_connection_id: row.try_get("trigger_connection_id")?,
        feed,
        next_run_at: row.try_get::<Option<i64>, _>("next_run_at")?.map(Timestamp),
        active_run_id: row.try_get("active_run_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn run_from(row: &DbRow) -> Result<FlowRun, sqlx::Error> {
    Ok(FlowRun {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        flow_id: row.try_get("flow_id")?,
        flow_version: row.try_get("flow_version")?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        step: row.try_get("step")?,
        input_count: row.try_get("input_count")?,
        error: row.try_get("error")?,
        cancel_requested: row.try_get("cancel_requested")?,
        job_id: row.try_get("job_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
    })
}

fn item_from(row: &DbRow) -> Result<FlowItem, sqlx::Error> {
    Ok(FlowItem {
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        idx: row.try_get("idx")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        input: row.try_get("input")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        not_before: row.try_get::<Option<i64>, _>("not_before")?.map(Timestamp),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn rows_to<T>(rows: &[DbRow], f: fn(&DbRow) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(f)
        .collect::<Result<_, _>>()
        .map_err(classify)
}

/// The event types of an event trigger, read from its document.
fn event_types(document: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(document).ok()?;
    let types = doc.get("trigger")?.get("event_types")?;
    Some(types.to_string())
}

async fn insert_version(tx: &mut Tx, flow: &Flow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flow_versions (flow_id, version, document, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&flow.id)
    .bind(flow.version)
    .bind(&flow.document)
    .bind(flow.updated_at.micros())
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Moves a change feed trigger to the end of its connection's feed as it is now (the next
/// change number), read in the transaction.
async fn feed_to_end(tx: &mut Tx, flow_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE flows SET feed_seq = COALESCE((SELECT last_seq FROM change_counters WHERE connection_id = flows.trigger_connection_id), 0) + 1, \
         feed_entity = '', feed_id = '' WHERE id = $1",
    )
    .bind(flow_id)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Inserts a step's items.
async fn insert_items(
    tx: &mut Tx,
    run_id: &str,
    step: i64,
    inputs: &[String],
    now: Timestamp,
) -> StoreResult<()> {
    for (c, chunk) in inputs.chunks(INSERT_CHUNK).enumerate() {
        let base = i64::try_from(c * INSERT_CHUNK).unwrap_or(i64::MAX);
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO flow_items (run_id, step, idx, status, attempts, input, yielded, updated_at) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut row, (i, input)| {
            row.push_bind(run_id)
                .push_bind(step)
                .push_bind(base + i64::try_from(i).unwrap_or(0))
                .push_bind(item_status::PENDING)
                .push_bind(0i64)
                .push_bind(input)
                .push_bind(0i64)
                .push_bind(now.micros());
        });
        insert
            .build()
            .persistent(false)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

async fn insert_run(
    tx: &mut Tx,
    run: &FlowRun,
    inputs: &[String],
    job: &NewJob,
) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO flow_runs (",
        run_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&run.id)
    .bind(&run.org_id)
    .bind(&run.flow_id)
    .bind(run.flow_version)
    .bind(&run.trigger)
    .bind(&run.status)
    .bind(run.step)
    .bind(run.input_count)
    .bind(&run.error)
    .bind(run.cancel_requested)
    .bind(&run.job_id)
    .bind(run.created_at.micros())
    .bind(run.updated_at.micros())
    .bind(run.finished_at.map(Timestamp::micros))
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    insert_items(tx, &run.id, 0, inputs, run.created_at).await?;
    sqlx::query(
        "INSERT INTO jobs (id, kind, org_id, connection_id, payload, dedupe_key, status, run_at, attempts, max_attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, 0, $8, $9, $9)",
    )
    .bind(&job.id)
    .bind(&job.kind)
    .bind(&job.org_id)
    .bind(&job.connection_id)
    .bind(&job.payload)
    .bind(&job.dedupe_key)
    .bind(job.run_at.micros())
    .bind(job.max_attempts)
    .bind(job.created_at.micros())
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Starts a run of each enabled flow of the event's organization whose trigger takes it, in
/// the transaction that records the event: each event starts each such flow once. Events of
/// flows themselves start none (no flow can start itself, or another, in a loop).
pub(crate) async fn start_event_runs(tx: &mut Tx, event: &Event) -> StoreResult<()> {
    if event.event_type.starts_with("flow.") || event.event_type.starts_with("record.") {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT id, version, trigger_connection_id, trigger_event_types FROM flows \
         WHERE org_id = $1 AND trigger_type = 'event' AND enabled = TRUE",
    )
    .bind(&event.org_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(classify)?;
    for row in rows {
        let id: String = row.try_get("id").map_err(classify)?;
        let version: i64 = row.try_get("version").map_err(classify)?;
        let conn: Option<String> = row.try_get("trigger_connection_id").map_err(classify)?;
        let types: Option<String> = row.try_get("trigger_event_types").map_err(classify)?;
        let types: Vec<String> = types
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !types.contains(&event.event_type) {
            continue;
        }
        if conn.is_some() && conn != event.connection_id {
            continue;
        }
        let data: serde_json::Value =
            serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let item = serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "connection_id": event.connection_id,
            "data": data,
            "created_at": event.created_at,
        })
        .to_string();
        let (run, job) = new_run(&event.org_id, &id, version, "event", 1, event.created_at);
        insert_run(tx, &run, &[item], &job).await?;
    }
    Ok(())
}

#[async_trait]
impl FlowStore for Backend {
    async fn create_flow(&self, flow: &Flow, feed_from_end: bool) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM flows WHERE org_id = $1 AND key = $2")
                .bind(&flow.org_id)
                .bind(&flow.key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(
                ironbridge_core::store::Conflict::Duplicate {
                    constraint: "flows_org_id_key_key",
                    what: "a flow with this key",
                },
            ));
        }
        sqlx::query(concat!(
            "INSERT INTO flows (",
            flow_columns!(),
            ", trigger_event_types) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&flow.id)
        .bind(&flow.org_id)
        .bind(&flow.key)
        .bind(flow.version)
        .bind(&flow.document)
        .bind(flow.enabled)
        .bind(&flow.trigger_type)
        .bind(&flow.trigger_connection_id)
        .bind(flow.feed.as_ref().map(|f| f.seq))
        .bind(flow.feed.as_ref().map(|f| f.entity.clone()))
        .bind(flow.feed.as_ref().map(|f| f.id.clone()))
        .bind(flow.next_run_at.map(Timestamp::micros))
        .bind(&flow.active_run_id)
        .bind(flow.created_at.micros())
        .bind(flow.updated_at.micros())
        .bind(event_types(&flow.document))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if feed_from_end && flow.trigger_type == "record_changes" {
            feed_to_end(&mut tx, &flow.id).await?;
        }
        insert_version(&mut tx, flow).await?;
        self.commit(tx).await
    }

    async fn update_flow(&self, flow: &Flow, reset_trigger: Option<bool>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE flows SET version = $3, document = $4, enabled = $5, trigger_type = $6, trigger_connection_id = $7, \
             trigger_event_types = $8, updated_at = $9 WHERE id = $1 AND org_id = $2 AND version = $10",
        )
        .bind(&flow.id)
        .bind(&flow.org_id)
        .bind(flow.version)
        .bind(&flow.document)
        .bind(flow.enabled)
        .bind(&flow.trigger_type)
        .bind(&flow.trigger_connection_id)
        .bind(event_types(&flow.document))
        .bind(flow.updated_at.micros())
        .bind(flow.version - 1)
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if moved != 1 {
            return Err(StoreError::Conflict(
                ironbridge_core::store::Conflict::State(
                    "the flow changed meanwhile; read it again and retry".into(),
                ),
            ));
        }
        if let Some(from_end) = reset_trigger {
            sqlx::query(
                "UPDATE flows SET feed_seq = $2, feed_entity = $3, feed_id = $4, next_run_at = $5 WHERE id = $1",
            )
            .bind(&flow.id)
            .bind(flow.feed.as_ref().map(|f| f.seq))
            .bind(flow.feed.as_ref().map(|f| f.entity.clone()))
            .bind(flow.feed.as_ref().map(|f| f.id.clone()))
            .bind(flow.next_run_at.map(Timestamp::micros))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if from_end && flow.trigger_type == "record_changes" {
                feed_to_end(&mut tx, &flow.id).await?;
            }
        } else if flow.trigger_type == "schedule" {
            // A schedule changed without its trigger (a new cron is a new trigger) keeps its
            // next time, unless it had none (it was disabled).
            sqlx::query("UPDATE flows SET next_run_at = COALESCE(next_run_at, $2) WHERE id = $1")
                .bind(&flow.id)
                .bind(flow.next_run_at.map(Timestamp::micros))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        insert_version(&mut tx, flow).await?;
        self.commit(tx).await
    }

    async fn get_flow(&self, org: &OrgId, id_or_key: &str) -> StoreResult<Flow> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                flow_columns!(),
                " FROM flows WHERE org_id = $1 AND (id = $2 OR key = $2)"
            ),
            org,
            id_or_key,
            flow_from,
        )
        .await
    }

    async fn list_flows(&self, org: &OrgId) -> StoreResult<Vec<Flow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            flow_columns!(),
            " FROM flows WHERE org_id = $1 ORDER BY key LIMIT 1000"
        ))
        .bind(&org.0)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, flow_from)
    }

    async fn delete_flow(&self, org: &OrgId, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Items and versions first: one statement each, whatever the foreign keys do.
        sqlx::query(
            "DELETE FROM flow_items WHERE run_id IN (SELECT r.id FROM flow_runs r WHERE r.flow_id = $2 AND r.org_id = $1)",
        )
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query("DELETE FROM flow_runs WHERE flow_id = $2 AND org_id = $1")
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(
            "DELETE FROM flow_versions WHERE flow_id IN (SELECT f.id FROM flows f WHERE f.id = $2 AND f.org_id = $1)",
        )
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let deleted = sqlx::query("DELETE FROM flows WHERE org_id = $1 AND id = $2")
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        self.commit(tx).await
    }

    async fn list_flow_versions(
        &self,
        org: &OrgId,
        flow_id: &str,
    ) -> StoreResult<Vec<FlowVersion>> {
        let rows = sqlx::query(
            "SELECT v.version, v.document, v.created_at FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
             WHERE f.org_id = $1 AND f.id = $2 ORDER BY v.version DESC LIMIT 1000",
        )
        .bind(&org.0)
        .bind(flow_id)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, |row| {
            Ok(FlowVersion {
                version: row.try_get("version")?,
                document: row.try_get("document")?,
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })
    }

    async fn get_flow_version(
        &self,
        org: &OrgId,
        flow_id: &str,
        version: i64,
    ) -> StoreResult<FlowVersion> {
        let row = sqlx::query(
            "SELECT v.version, v.document, v.created_at FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
             WHERE f.org_id = $1 AND f.id = $2 AND v.version = $3",
        )
        .bind(&org.0)
        .bind(flow_id)
        .bind(version)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        Ok(FlowVersion {
            version: row.try_get("version").map_err(classify)?,
            document: row.try_get("document").map_err(classify)?,
            created_at: Timestamp(row.try_get("created_at").map_err(classify)?),
        })
    }

    async fn create_flow_run(
        &self,
        run: &FlowRun,
        inputs: &[String],
        job: &NewJob,
        start: &RunStart,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let moved = match start {
            RunStart::Manual => sqlx::query("SELECT id FROM flows WHERE id = $1 AND org_id = $2")
                .bind(&run.flow_id)
                .bind(&run.org_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?
                .is_some(),
            RunStart::Feed { from, to } => {
                let q = match from {
                    Some(from) => sqlx::query(
                        "UPDATE flows SET feed_seq = $3, feed_entity = $4, feed_id = $5, active_run_id = $6 \
                         WHERE id = $1 AND org_id = $2 AND enabled = TRUE AND active_run_id IS NULL \
                         AND feed_seq = $7 AND feed_entity = $8 AND feed_id = $9",
                    )
                    .bind(&run.flow_id)
                    .bind(&run.org_id)
                    .bind(to.seq)
                    .bind(&to.entity)
                    .bind(&to.id)
                    .bind(&run.id)
                    .bind(from.seq)
                    .bind(&from.entity)
                    .bind(&from.id),
                    None => sqlx::query(
                        "UPDATE flows SET feed_seq = $3, feed_entity = $4, feed_id = $5, active_run_id = $6 \
                         WHERE id = $1 AND org_id = $2 AND enabled = TRUE AND active_run_id IS NULL AND feed_seq IS NULL",
                    )
                    .bind(&run.flow_id)
                    .bind(&run.org_id)
                    .bind(to.seq)
                    .bind(&to.entity)
                    .bind(&to.id)
                    .bind(&run.id),
                };
                q.execute(&mut *tx).await.map_err(classify)?.rows_affected() == 1
            }
            RunStart::Schedule { due, next } => {
                sqlx::query(
                    "UPDATE flows SET next_run_at = $3 WHERE id = $1 AND org_id = $2 AND enabled = TRUE AND next_run_at = $4",
                )
                .bind(&run.flow_id)
                .bind(&run.org_id)
                .bind(next.map(Timestamp::micros))
                .bind(due.micros())
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected()
                    == 1
            }
        };
        if !moved {
            return Ok(false);
        }
        insert_run(&mut tx, run, inputs, job).await?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn get_flow_run(&self, org: &OrgId, id: &str) -> StoreResult<FlowRun> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                run_columns!(),
                " FROM flow_runs WHERE org_id = $1 AND id = $2"
            ),
            org,
            id,
            run_from,
        )
        .await
    }

    async fn list_flow_runs(
        &self,
        org: &OrgId,
        flow_id: &str,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<FlowRun>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM flow_runs WHERE org_id = $1 AND flow_id = $2 AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
        .bind(&org.0)
        .bind(flow_id)
        .bind(before_id.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, run_from)
    }

    async fn flow_run_counts(&self, org: &OrgId, run_id: &str) -> StoreResult<Vec<StepCount>> {
        let rows = sqlx::query(
            "SELECT i.step, i.status, COUNT(*) AS items, CAST(COALESCE(SUM(i.yielded), 0) AS BIGINT) AS yielded \
             FROM flow_items i WHERE i.run_id = $1 AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.id = $1 AND r.org_id = $2) \
             GROUP BY i.step, i.status ORDER BY i.step",
        )
        .bind(run_id)
        .bind(&org.0)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, |row| {
            Ok(StepCount {
                step: row.try_get("step")?,
                status: row.try_get("status")?,
                items: row.try_get("items")?,
                yielded: row.try_get("yielded")?,
            })
        })
    }

    async fn list_flow_items(
        &self,
        org: &OrgId,
        run_id: &str,
        step: Option<i64>,
        status: Option<&str>,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<FlowItem>> {
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            "SELECT ",
            item_columns!(),
            " FROM flow_items WHERE run_id = "
        ));
        q.push_bind(run_id);
        q.push(" AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.id = ");
        q.push_bind(run_id);
        q.push(" AND r.org_id = ");
        q.push_bind(&org.0);
        q.push(")");
        if let Some(step) = step {
            q.push(" AND step = ");
            q.push_bind(step);
        }
        if let Some(status) = status {
            q.push(" AND status = ");
            q.push_bind(status);
        }
        if let Some((s, i)) = after {
            q.push(" AND (step > ");
            q.push_bind(s);
            q.push(" OR (step = ");
            q.push_bind(s);
            q.push(" AND idx > ");
            q.push_bind(i);
            q.push("))");
        }
        q.push(" ORDER BY step, idx LIMIT ");
        q.push_bind(i64::from(limit));
        let rows = q
            .build()
            .persistent(false)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(classify)?;
        rows_to(&rows, item_from)
    }

    async fn cancel_flow_run(&self, org: &OrgId, id: &str, now: Timestamp) -> StoreResult<FlowRun> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE flow_runs SET cancel_requested = TRUE, updated_at = $3 WHERE org_id = $1 AND id = $2 AND finished_at IS NULL",
        )
        .bind(&org.0)
        .bind(id)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM flow_runs WHERE org_id = $1 AND id = $2"
        ))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        let run = run_from(&row).map_err(classify)?;
        self.commit(tx).await?;
        Ok(run)
    }

    async fn next_flow_items(
        &self,
        run_id: &str,
        step: i64,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<FlowItem>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM flow_items WHERE run_id = $1 AND step = $2 AND status IN ('pending', 'sending') \
             AND (not_before IS NULL OR not_before <= $3) ORDER BY idx LIMIT $4"
        ))
        .bind(run_id)
        .bind(step)
        .bind(now.micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, item_from)
    }

    async fn next_flow_retry(&self, run_id: &str, step: i64) -> StoreResult<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(not_before) FROM flow_items WHERE run_id = $1 AND step = $2 AND status IN ('pending', 'sending')",
        )
        .bind(run_id)
        .bind(step)
        .fetch_one(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        Ok(at.map(Timestamp))
    }

    async fn mark_flow_items_sending(
        &self,
        run_id: &str,
        step: i64,
        idxs: &[i64],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut mark = sqlx::QueryBuilder::<Db>::new(
            "UPDATE flow_items SET status = 'sending', attempts = attempts + 1, updated_at = ",
        );
        mark.push_bind(now.micros());
        mark.push(" WHERE run_id = ");
        mark.push_bind(run_id);
        mark.push(" AND step = ");
        mark.push_bind(step);
        mark.push(" AND idx IN (");
        let mut list = mark.separated(", ");
        for idx in idxs {
            list.push_bind(*idx);
        }
        mark.push(")");
        mark.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("UPDATE flow_runs SET status = 'running', updated_at = $2 WHERE id = $1 AND status = 'queued'")
            .bind(run_id)
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await
    }

    async fn end_flow_items(
        &self,
        run_id: &str,
        step: i64,
        ends: &[ItemEnd],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for end in ends {
            // Only an item still open changes: one ended already (a duplicate end after a
            // takeover) keeps its end, and its record and event are not stored twice.
            let changed = sqlx::query(
                "UPDATE flow_items SET status = $4, output = $5, yielded = $6, error = $7, not_before = $8, \
                 attempts = attempts + CASE WHEN status = 'pending' THEN 1 ELSE 0 END, updated_at = $9 \
                 WHERE run_id = $1 AND step = $2 AND idx = $3 AND status IN ('pending', 'sending')",
            )
            .bind(run_id)
            .bind(step)
            .bind(end.idx)
            .bind(end.status)
            .bind(&end.output)
            .bind(end.yielded)
            .bind(&end.error)
            .bind(end.not_before.map(Timestamp::micros))
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
            if changed != 1 {
                continue;
            }
            if let Some((conn, written)) = &end.written {
                super::writes::upsert_written(&mut tx, conn, written).await?;
            }
            if let Some(event) = &end.event {
                super::shared::insert_event(&mut tx, event).await?;
            }
        }
        sqlx::query("UPDATE flow_runs SET status = 'running', updated_at = $2 WHERE id = $1 AND finished_at IS NULL")
            .bind(run_id)
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.commit(tx).await?;
        if ends.iter().any(|e| e.event.is_some()) {
            self.due.notify_one();
        }
        Ok(())
    }

    async fn flow_step_outputs(
        &self,
        run_id: &str,
        step: i64,
        after_idx: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT idx, output FROM flow_items WHERE run_id = $1 AND step = $2 AND status = 'succeeded' AND idx > $3 ORDER BY idx LIMIT $4",
        )
        .bind(run_id)
        .bind(step)
        .bind(after_idx)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|row| {
                let idx: i64 = row.try_get("idx")?;
                let output: Option<String> = row.try_get("output")?;
                Ok((idx, output.unwrap_or_else(|| "[]".into())))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }

    async fn begin_flow_step(
        &self,
        run_id: &str,
        step: i64,
        inputs: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE flow_runs SET step = $2, status = 'running', updated_at = $3 WHERE id = $1 AND step = $4 AND finished_at IS NULL",
        )
        .bind(run_id)
        .bind(step)
        .bind(now.micros())
        .bind(step - 1)
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if moved == 1 {
            insert_items(&mut tx, run_id, step, inputs, now).await?;
        }
        self.commit(tx).await
    }

    async fn finish_flow_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        event: &Event,
        now: Timestamp,
    ) -> StoreResult<FlowRun> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE flow_runs SET status = $2, error = $3, finished_at = $4, updated_at = $4 WHERE id = $1 AND finished_at IS NULL RETURNING ",
            run_columns!()
        ))
        .bind(run_id)
        .bind(status)
        .bind(error)
        .bind(now.micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(row) = row else {
            // Ended already (by an earlier holder of the job): as it ended.
            let row = sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM flow_runs WHERE id = $1"
            ))
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
            return run_from(&row).map_err(classify);
        };
        let run = run_from(&row).map_err(classify)?;
        sqlx::query(
            "UPDATE flow_items SET status = 'cancelled', updated_at = $2 WHERE run_id = $1 AND status = 'pending'",
        )
        .bind(run_id)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query("UPDATE flows SET active_run_id = NULL WHERE id = $1 AND active_run_id = $2")
            .bind(&run.flow_id)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        super::shared::insert_event(&mut tx, event).await?;
        self.commit(tx).await?;
        self.due.notify_one();
        Ok(run)
    }

    async fn advance_flow_feed(
        &self,
        flow_id: &str,
        from: Option<&ChangePosition>,
        to: &ChangePosition,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let q = match from {
            Some(from) => sqlx::query(
                "UPDATE flows SET feed_seq = $2, feed_entity = $3, feed_id = $4 WHERE id = $1 AND active_run_id IS NULL \
                 AND feed_seq = $5 AND feed_entity = $6 AND feed_id = $7",
            )
            .bind(flow_id)
            .bind(to.seq)
            .bind(&to.entity)
            .bind(&to.id)
            .bind(from.seq)
            .bind(&from.entity)
            .bind(&from.id),
            None => sqlx::query(
                "UPDATE flows SET feed_seq = $2, feed_entity = $3, feed_id = $4 WHERE id = $1 AND active_run_id IS NULL AND feed_seq IS NULL",
            )
            .bind(flow_id)
            .bind(to.seq)
            .bind(&to.entity)
            .bind(&to.id),
        };
        let moved = q.execute(&mut *tx).await.map_err(classify)?.rows_affected() == 1;
        self.commit(tx).await?;
        Ok(moved)
    }

    async fn flow_feeds_due(&self, limit: u32) -> StoreResult<Vec<FlowFeedDue>> {
        let rows = sqlx::query(
            "SELECT f.id, f.org_id, f.trigger_connection_id, f.feed_seq, f.feed_entity, f.feed_id, f.version, k.last_seq \
             FROM flows f JOIN change_counters k ON k.connection_id = f.trigger_connection_id \
             WHERE f.trigger_type = 'record_changes' AND f.enabled = TRUE AND f.active_run_id IS NULL \
             AND (f.feed_seq IS NULL OR k.last_seq >= f.feed_seq) LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, |row| {
            Ok(FlowFeedDue {
                flow_id: row.try_get("id")?,
                org_id: row.try_get("org_id")?,
                connection_id: row
                    .try_get::<Option<String>, _>("trigger_connection_id")?
                    .unwrap_or_default(),
                feed: feed_of(row)?,
                version: row.try_get("version")?,
                last_seq: row.try_get("last_seq")?,
            })
        })
    }

    async fn flows_scheduled_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Flow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            flow_columns!(),
            " FROM flows WHERE trigger_type = 'schedule' AND enabled = TRUE AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
        ))
        .bind(now.micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows_to(&rows, flow_from)
    }
}
