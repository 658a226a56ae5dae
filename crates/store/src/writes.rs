//! Storage of writes, shared by both backends like `shared.rs` (compiled once inside each):
//! idempotency keys with their answers, records written through the API (stored in the
//! transaction that answers their key), and bulk batches with their operations.

use async_trait::async_trait;
use ironbridge_core::store::{
    Batch, BatchOperation, ConnId, Event, IdemAnswer, IdemClaim, IdemHold, IdemRequest, IdemScope,
    NewJob, OperationEnd, OrgId, StoreError, StoreResult, WriteStore, WrittenRecord, batch_status,
    operation_status,
};
use ironbridge_model::Timestamp;
use sqlx::Row;

use super::{Backend, Db, FOR_UPDATE};
use crate::classify;

type DbRow = <Db as sqlx::Database>::Row;
type Tx = sqlx::Transaction<'static, Db>;

/// Idempotency key states.
mod key_state {
    pub const IN_FLIGHT: &str = "in_flight";
    pub const DONE: &str = "done";
    pub const UNKNOWN: &str = "unknown";
}

/// Operations inserted per statement when a batch is stored.
const INSERT_CHUNK: usize = 500;

macro_rules! batch_columns {
    () => {
        "id, org_id, connection_id, status, batch_size, delay_ms, on_error, total, succeeded, failed, cancelled, cancel_requested, job_id, created_at, updated_at, finished_at"
    };
}

macro_rules! operation_columns {
    () => {
        "batch_id, idx, action, entity, target_id, body, status, attempts, record_id, result, updated_at"
    };
}

fn batch_from(row: &DbRow) -> Result<Batch, sqlx::Error> {
    Ok(Batch {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        status: row.try_get("status")?,
        batch_size: row.try_get("batch_size")?,
        delay_ms: row.try_get("delay_ms")?,
        on_error: row.try_get("on_error")?,
        total: row.try_get("total")?,
        succeeded: row.try_get("succeeded")?,
        failed: row.try_get("failed")?,
        cancelled: row.try_get("cancelled")?,
        cancel_requested: row.try_get("cancel_requested")?,
        job_id: row.try_get("job_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
    })
}

fn operation_from(row: &DbRow) -> Result<BatchOperation, sqlx::Error> {
    Ok(BatchOperation {
        batch_id: row.try_get("batch_id")?,
        idx: row.try_get("idx")?,
        action: row.try_get("action")?,
        entity: row.try_get("entity")?,
        target_id: row.try_get("target_id")?,
        body: row.try_get("body")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        record_id: row.try_get("record_id")?,
        result: row.try_get("result")?,
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

/// Stores one written record: inserted, or its row replaced (keeping `created_at`). A
/// complete pass of a sync in progress for the entity counts it as seen.
pub(super) async fn upsert_written(
    tx: &mut Tx,
    conn: &ConnId,
    w: &WrittenRecord,
) -> StoreResult<()> {
    let r = &w.record;
    let entity = w.entity.as_str();
    let now = w.now.micros();
    if w.partial {
        super::shared::lock_records(tx, conn, w.entity).await?;
    }
    // A change of the feed (unless the record is stored unchanged: then the number is skipped).
    let seq = super::shared::next_change(tx, conn).await?;
    sqlx::query(
        "INSERT INTO records (connection_id, entity, id, remote_id, data, raw, raw_z, content_hash, remote_created_at, remote_updated_at, remote_was_deleted, created_at, modified_at, change_seq, created_seq) \
         VALUES ($1, $2, $3, $4, $5, '', $6, $7, $8, $9, $10, $11, $11, $12, $12) \
         ON CONFLICT (connection_id, entity, id) DO UPDATE SET remote_id = excluded.remote_id, data = excluded.data, raw = excluded.raw, raw_z = excluded.raw_z, \
         content_hash = excluded.content_hash, remote_created_at = excluded.remote_created_at, remote_updated_at = excluded.remote_updated_at, \
         remote_was_deleted = excluded.remote_was_deleted, modified_at = excluded.modified_at, change_seq = excluded.change_seq \
         WHERE records.content_hash <> excluded.content_hash OR records.remote_was_deleted <> excluded.remote_was_deleted",
    )
    .bind(&conn.0)
    .bind(entity)
    .bind(&r.id)
    .bind(&r.remote_id)
    .bind(&r.data)
    .bind(r.raw.as_bytes())
    .bind(&r.content_hash)
    .bind(r.remote_created_at.map(Timestamp::micros))
    .bind(r.remote_updated_at.map(Timestamp::micros))
    .bind(r.remote_was_deleted)
    .bind(now)
    .bind(seq)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    // A full pass that read past this record before it existed must not sweep it.
    let ids = serde_json::to_string(&[&r.id]).map_err(|e| StoreError::Internal(e.into()))?;
    sqlx::query(
        "INSERT INTO seen_pages (connection_id, entity, run_id, ids) \
         SELECT connection_id, entity, run_id, $3 FROM sync_state WHERE connection_id = $1 AND entity = $2 AND run_id IS NOT NULL",
    )
    .bind(&conn.0)
    .bind(entity)
    .bind(ids)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Stores a claimed key's answer; false when the claim is no longer this holder's.
async fn answer_key(tx: &mut Tx, hold: &IdemHold, answer: &IdemAnswer) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET state = $5, owner = NULL, locked_until = NULL, response_status = $6, response_body = $7 \
         WHERE credential_id = $1 AND connection_id = $2 AND idem_key = $3 AND owner = $4",
    )
    .bind(&hold.scope.credential_id)
    .bind(&hold.scope.connection_id)
    .bind(&hold.scope.key)
    .bind(&hold.owner)
    .bind(key_state::DONE)
    .bind(i64::from(answer.status))
    .bind(&answer.body)
    .execute(&mut **tx)
    .await
    .map_err(classify)?
    .rows_affected();
    Ok(done == 1)
}

#[async_trait]
impl WriteStore for Backend {
    async fn claim_idempotency(
        &self,
        scope: &IdemScope,
        request: &IdemRequest,
        owner: &str,
        now: Timestamp,
        lock_until: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<IdemClaim> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (credential_id, connection_id, idem_key, org_id, method, path, request_hash, state, owner, locked_until, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(&scope.credential_id)
        .bind(&scope.connection_id)
        .bind(&scope.key)
        .bind(&scope.org_id)
        .bind(&request.method)
        .bind(&request.path)
        .bind(&request.request_hash)
        .bind(key_state::IN_FLIGHT)
        .bind(owner)
        .bind(lock_until.micros())
        .bind(now.micros())
        .bind(expires_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        if inserted == 1 {
            self.commit(tx).await?;
            return Ok(IdemClaim::Claimed { reconcile: false });
        }
        let sql = format!(
            "SELECT request_hash, state, locked_until, response_status, response_body, expires_at FROM idempotency_keys \
             WHERE credential_id = $1 AND connection_id = $2 AND idem_key = $3{FOR_UPDATE}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&scope.credential_id)
            .bind(&scope.connection_id)
            .bind(&scope.key)
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        let hash: String = row.try_get("request_hash").map_err(classify)?;
        let state: String = row.try_get("state").map_err(classify)?;
        let locked_until: Option<i64> = row.try_get("locked_until").map_err(classify)?;
        let expired = row.try_get::<i64, _>("expires_at").map_err(classify)? <= now.micros();
        let take_over = |reconcile: bool| {
            sqlx::query(
                "UPDATE idempotency_keys SET org_id = $4, method = $5, path = $6, request_hash = $7, state = $8, owner = $9, locked_until = $10, \
                 response_status = NULL, response_body = NULL, created_at = CASE WHEN $11 THEN $12 ELSE created_at END, \
                 expires_at = CASE WHEN $11 THEN $13 ELSE expires_at END \
                 WHERE credential_id = $1 AND connection_id = $2 AND idem_key = $3",
            )
            .bind(&scope.credential_id)
            .bind(&scope.connection_id)
            .bind(&scope.key)
            .bind(&scope.org_id)
            .bind(&request.method)
            .bind(&request.path)
            .bind(&request.request_hash)
            .bind(key_state::IN_FLIGHT)
            .bind(owner)
            .bind(lock_until.micros())
            .bind(!reconcile)
            .bind(now.micros())
            .bind(expires_at.micros())
        };
        // An expired key is a new one (its earlier request is beyond the replay window).
        if expired && state != key_state::IN_FLIGHT {
            take_over(false).execute(&mut *tx).await.map_err(classify)?;
            self.commit(tx).await?;
            return Ok(IdemClaim::Claimed { reconcile: false });
        }
        if hash != request.request_hash {
            return Ok(IdemClaim::Mismatch);
        }
        let claim = match state.as_str() {
            key_state::DONE => {
                let status: Option<i64> = row.try_get("response_status").map_err(classify)?;
                let body: Option<String> = row.try_get("response_body").map_err(classify)?;
                return Ok(IdemClaim::Replay(IdemAnswer {
                    status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                    body: body.unwrap_or_default(),
                }));
            }
            key_state::IN_FLIGHT if locked_until.is_some_and(|l| l > now.micros()) => {
                return Ok(IdemClaim::InFlight);
            }
            // Its holder died mid-work, or its outcome was unknown: the work may have
            // reached the source, so the new holder looks for it there first.
            _ => IdemClaim::Claimed { reconcile: true },
        };
        take_over(true).execute(&mut *tx).await.map_err(classify)?;
        self.commit(tx).await?;
        Ok(claim)
    }

    async fn answer_idempotency(&self, hold: &IdemHold, answer: &IdemAnswer) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = answer_key(&mut tx, hold, answer).await?;
        self.commit(tx).await?;
        Ok(done)
    }

    async fn release_idempotency(&self, hold: &IdemHold, outcome_unknown: bool) -> StoreResult<()> {
        let sql = if outcome_unknown {
            "UPDATE idempotency_keys SET state = 'unknown', owner = NULL, locked_until = NULL \
             WHERE credential_id = $1 AND connection_id = $2 AND idem_key = $3 AND owner = $4"
        } else {
            "DELETE FROM idempotency_keys WHERE credential_id = $1 AND connection_id = $2 AND idem_key = $3 AND owner = $4"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(sql)
            .bind(&hold.scope.credential_id)
            .bind(&hold.scope.connection_id)
            .bind(&hold.scope.key)
            .bind(&hold.owner)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        debug_assert_eq!(key_state::UNKNOWN, "unknown");
        self.commit(tx).await
    }

    async fn purge_idempotency(&self, now: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // In-flight keys stay until their holder ends; a bounded delete keeps locks short.
        let purged = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (credential_id, connection_id, idem_key) IN \
             (SELECT credential_id, connection_id, idem_key FROM idempotency_keys WHERE expires_at <= $1 AND state <> 'in_flight' LIMIT $2)",
        )
        .bind(now.micros())
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        self.commit(tx).await?;
        Ok(purged)
    }

    async fn store_written(
        &self,
        conn: &ConnId,
        written: &WrittenRecord,
        answer: Option<(&IdemHold, &IdemAnswer)>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        upsert_written(&mut tx, conn, written).await?;
        if let Some((hold, answer)) = answer {
            // A lost claim (its lock ran out and another request took it over) still keeps
            // the record: it is what the source has.
            if !answer_key(&mut tx, hold, answer).await? {
                tracing::warn!(
                    "an idempotency key's claim was taken over before its answer was stored"
                );
            }
        }
        self.commit(tx).await
    }

    async fn create_batch(
        &self,
        batch: &Batch,
        operations: &[BatchOperation],
        job: &NewJob,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(concat!(
            "INSERT INTO batches (",
            batch_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&batch.id)
        .bind(&batch.org_id)
        .bind(&batch.connection_id)
        .bind(&batch.status)
        .bind(batch.batch_size)
        .bind(batch.delay_ms)
        .bind(&batch.on_error)
        .bind(batch.total)
        .bind(batch.succeeded)
        .bind(batch.failed)
        .bind(batch.cancelled)
        .bind(batch.cancel_requested)
        .bind(&batch.job_id)
        .bind(batch.created_at.micros())
        .bind(batch.updated_at.micros())
        .bind(batch.finished_at.map(Timestamp::micros))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        for chunk in operations.chunks(INSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(concat!(
                "INSERT INTO batch_operations (",
                operation_columns!(),
                ") "
            ));
            insert.push_values(chunk, |mut row, op| {
                row.push_bind(&op.batch_id)
                    .push_bind(op.idx)
                    .push_bind(&op.action)
                    .push_bind(&op.entity)
                    .push_bind(&op.target_id)
                    .push_bind(&op.body)
                    .push_bind(&op.status)
                    .push_bind(op.attempts)
                    .push_bind(&op.record_id)
                    .push_bind(&op.result)
                    .push_bind(op.updated_at.micros());
            });
            insert
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
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
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn get_batch(&self, org: &OrgId, id: &str) -> StoreResult<Batch> {
        self.fetch_owned(
            concat!(
                "SELECT ",
                batch_columns!(),
                " FROM batches WHERE org_id = $1 AND id = $2"
            ),
            org,
            id,
            batch_from,
        )
        .await
    }

    async fn list_batches(
        &self,
        org: &OrgId,
        conn: &ConnId,
        before_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Batch>> {
        let rows = match before_id {
            Some(before) => sqlx::query(concat!(
                "SELECT ",
                batch_columns!(),
                " FROM batches WHERE org_id = $1 AND connection_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
            ))
            .bind(&org.0)
            .bind(&conn.0)
            .bind(before)
            .bind(i64::from(limit)),
            None => sqlx::query(concat!(
                "SELECT ",
                batch_columns!(),
                " FROM batches WHERE org_id = $1 AND connection_id = $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(&org.0)
            .bind(&conn.0)
            .bind(i64::from(limit)),
        }
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(batch_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn list_batch_operations(
        &self,
        org: &OrgId,
        batch_id: &str,
        after_idx: Option<i64>,
        status: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BatchOperation>> {
        // The batch must be the organization's: checked in the same statement.
        let owned = "EXISTS (SELECT 1 FROM batches b WHERE b.id = $1 AND b.org_id = $2)";
        let after = after_idx.unwrap_or(-1);
        let rows = match status {
            Some(status) => sqlx::query(sqlx::AssertSqlSafe(format!(
                concat!(
                    "SELECT ",
                    operation_columns!(),
                    " FROM batch_operations WHERE batch_id = $1 AND {} AND status = $3 AND idx > $4 ORDER BY idx LIMIT $5"
                ),
                owned
            )))
            .bind(batch_id)
            .bind(&org.0)
            .bind(status)
            .bind(after)
            .bind(i64::from(limit)),
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                concat!(
                    "SELECT ",
                    operation_columns!(),
                    " FROM batch_operations WHERE batch_id = $1 AND {} AND idx > $3 ORDER BY idx LIMIT $4"
                ),
                owned
            )))
            .bind(batch_id)
            .bind(&org.0)
            .bind(after)
            .bind(i64::from(limit)),
        }
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(operation_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn cancel_batch(&self, org: &OrgId, id: &str, now: Timestamp) -> StoreResult<Batch> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE batches SET cancel_requested = TRUE, updated_at = $3 WHERE org_id = $1 AND id = $2 RETURNING ",
            batch_columns!()
        ))
        .bind(&org.0)
        .bind(id)
        .bind(now.micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        let batch = batch_from(&row).map_err(classify)?;
        self.commit(tx).await?;
        Ok(batch)
    }

    async fn next_batch_operations(
        &self,
        batch_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<BatchOperation>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            operation_columns!(),
            " FROM batch_operations WHERE batch_id = $1 AND status IN ('pending', 'sending') ORDER BY idx LIMIT $2"
        ))
        .bind(batch_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(operation_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn mark_operations_sending(
        &self,
        batch_id: &str,
        idxs: &[i64],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut mark = sqlx::QueryBuilder::<Db>::new(
            "UPDATE batch_operations SET status = 'sending', attempts = attempts + 1, updated_at = ",
        );
        mark.push_bind(now.micros());
        mark.push(" WHERE batch_id = ");
        mark.push_bind(batch_id);
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
        sqlx::query(
            "UPDATE batches SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'queued'",
        )
        .bind(batch_id)
        .bind(batch_status::RUNNING)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn end_operations(
        &self,
        conn: &ConnId,
        batch_id: &str,
        ends: &[OperationEnd],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let (mut succeeded, mut failed) = (0i64, 0i64);
        for end in ends {
            if let Some(written) = &end.written {
                upsert_written(&mut tx, conn, written).await?;
            }
            // Only an operation still open counts: one ended already (a duplicate end after
            // a takeover) changes nothing.
            let changed = sqlx::query(
                "UPDATE batch_operations SET status = $3, record_id = $4, result = $5, updated_at = $6 \
                 WHERE batch_id = $1 AND idx = $2 AND status IN ('pending', 'sending')",
            )
            .bind(batch_id)
            .bind(end.idx)
            .bind(end.status)
            .bind(end.written.as_ref().map(|w| &w.record.id))
            .bind(&end.result)
            .bind(now.micros())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
            if changed == 1 {
                if end.status == operation_status::SUCCEEDED {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
            }
        }
        sqlx::query(
            "UPDATE batches SET succeeded = succeeded + $2, failed = failed + $3, updated_at = $4 WHERE id = $1",
        )
        .bind(batch_id)
        .bind(succeeded)
        .bind(failed)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        self.commit(tx).await
    }

    async fn finish_batch(
        &self,
        batch_id: &str,
        status: &str,
        event_id: &str,
        now: Timestamp,
    ) -> StoreResult<Batch> {
        let mut tx = self.begin_write().await?;
        let cancelled = sqlx::query(
            "UPDATE batch_operations SET status = 'cancelled', updated_at = $2 WHERE batch_id = $1 AND status = 'pending'",
        )
        .bind(batch_id)
        .bind(now.micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        let row = sqlx::query(concat!(
            "UPDATE batches SET status = $2, cancelled = cancelled + $3, finished_at = $4, updated_at = $4 WHERE id = $1 RETURNING ",
            batch_columns!()
        ))
        .bind(batch_id)
        .bind(status)
        .bind(i64::try_from(cancelled).unwrap_or(i64::MAX))
        .bind(now.micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
        let batch = batch_from(&row).map_err(classify)?;
        let event = Event {
            id: event_id.to_string(),
            org_id: batch.org_id.clone(),
            connection_id: Some(batch.connection_id.clone()),
            event_type: "batch.completed".into(),
            data: serde_json::json!({
                "batch_id": batch.id,
                "status": batch.status,
                "total": batch.total,
                "succeeded": batch.succeeded,
                "failed": batch.failed,
                "cancelled": batch.cancelled,
            })
            .to_string(),
            created_at: now,
        };
        super::shared::insert_event(&mut tx, &event).await?;
        self.commit(tx).await?;
        Ok(batch)
    }
}
