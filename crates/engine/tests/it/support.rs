//! Shared test set-up: a fresh store per test (the test kit's: a temporary SQLite file, or a
//! new PostgreSQL schema when `TEST_BACKEND=postgres`), one organization and one connection,
//! a manual clock, and the one place tests call the sync runner through.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use ironbridge_core::connector::Connector;
use ironbridge_core::crypto::token_hash;
use ironbridge_core::store::*;
use ironbridge_core::{Clock, ManualClock};
use ironbridge_engine::sync::{EntityReport, SyncError, sync_connection};
use ironbridge_model::Entity;
use ironbridge_testkit::db::TestDb;
use serde_json::Value;

/// One test's store, organization, connection and clock.
pub struct Env {
    pub store: Arc<dyn Store>,
    pub conn: ConnId,
    pub clock: ManualClock,
    _db: TestDb,
}

pub fn org() -> OrgId {
    OrgId("org_1".into())
}

/// A fresh store with organization `org_1` and connection `conn_1` of `system`, created at
/// the clock's time.
pub async fn env_for(system: &str, clock: ManualClock) -> Env {
    let db = TestDb::fresh().await;
    let store = db.store.clone();
    let key = NewApiKey {
        id: "key_1".into(),
        name: "k".into(),
        token_hash: token_hash("k"),
        prefix: "ibk_".into(),
        created_at: clock.now(),
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store
        .create_organization(
            &Organization {
                id: org().0,
                name: "o".into(),
                connection_credits: 5,
                created_at: clock.now(),
            },
            &key,
        )
        .await
        .unwrap();
    let new = NewConnection {
        id: "conn_1".into(),
        system: system.into(),
        name: None,
        status: "syncing".into(),
        settings: "{}".into(),
        end_user: None,
        credentials: None,
        token_hash: token_hash("t"),
        token_prefix: "ibc_".into(),
        created_at: clock.now(),
        replaces: None,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store.create_connection(&org(), &new).await.unwrap();
    Env {
        store,
        conn: ConnId("conn_1".into()),
        clock,
        _db: db,
    }
}

/// Every sync of these tests goes through here, so a change of the runner's signature is
/// adapted in one place.
/// A sync of `env`'s connection with `options`.
pub async fn sync_with(
    env: &Env,
    connector: &dyn Connector,
    options: ironbridge_engine::sync::SyncOptions,
) -> Result<Vec<EntityReport>, SyncError> {
    ironbridge_engine::sync::sync_connection_with(
        env.store.as_ref(),
        connector,
        &org(),
        &env.conn,
        &options,
        &env.clock,
    )
    .await
}

pub async fn sync(
    env: &Env,
    connector: &dyn Connector,
    full: bool,
) -> Result<Vec<EntityReport>, SyncError> {
    sync_connection(
        env.store.as_ref(),
        connector,
        &org(),
        &env.conn,
        full,
        &env.clock,
    )
    .await
}

/// The report of one entity.
pub fn report(reports: &[EntityReport], entity: Entity) -> &EntityReport {
    reports
        .iter()
        .find(|r| r.entity == Some(entity))
        .unwrap_or_else(|| panic!("no report for {entity}: {reports:?}"))
}

/// Stored records of an entity, deleted ones included.
pub async fn count(env: &Env, entity: Entity) -> u64 {
    let q = RecordQuery {
        entity,
        after_id: None,
        after_modified: None,
        modified_after: None,
        modified_before: None,
        include_deleted: true,
        include_raw: false,
        limit: 10_000,
    };
    env.store.count_records(&env.conn, &q).await.unwrap()
}

/// Every stored record of an entity (deleted ones included), in id order.
pub async fn stored(env: &Env, entity: Entity) -> Vec<StoredRecord> {
    let mut out: Vec<StoredRecord> = Vec::new();
    loop {
        let q = RecordQuery {
            entity,
            after_id: out.last().map(|r| r.id.clone()),
            after_modified: None,
            modified_after: None,
            modified_before: None,
            include_deleted: true,
            include_raw: false,
            limit: 500,
        };
        let page = env.store.list_records(&env.conn, &q).await.unwrap();
        let done = page.len() < 500;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The connection's events, oldest first, as (type, data).
pub async fn events(env: &Env) -> Vec<(String, Value)> {
    let list = env
        .store
        .list_events(&org(), None, Some(&env.conn.0), None, 100)
        .await
        .unwrap();
    list.into_iter()
        .map(|e| (e.event_type, serde_json::from_str(&e.data).unwrap()))
        .collect()
}

pub async fn status(env: &Env) -> String {
    env.store
        .get_connection(&org(), &env.conn)
        .await
        .unwrap()
        .status
}

/// Polls `fut` until `reached` is set, then drops it, as `kill -9` ends a process. `None` if it
/// was dropped.
pub async fn drive_until_killed<F: Future>(fut: F, reached: Arc<AtomicBool>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if reached.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Every stored point, as (vehicle remote id, time) → its unified data.
pub async fn stored_points(env: &Env) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = env
            .store
            .list_points(
                &env.conn,
                &PointQuery {
                    entity: Entity::VEHICLE_LOCATION,
                    series_id: None,
                    from: None,
                    until: None,
                    after: after.clone(),
                    limit: 5000,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.recorded_at, last.series_id.clone()));
        for p in &page {
            // The stored body leaves out its key (vehicle and instant): put them back, as
            // the API renders a point.
            let mut data: Value = serde_json::from_str(&p.data).unwrap();
            data["vehicle_id"] = Value::String(p.series_id.clone());
            data["recorded_at"] = Value::String(p.recorded_at.to_rfc3339());
            out.insert(
                (
                    data["vehicle_remote_id"].as_str().unwrap().to_string(),
                    p.recorded_at.to_rfc3339(),
                ),
                data,
            );
        }
    }
    out
}
