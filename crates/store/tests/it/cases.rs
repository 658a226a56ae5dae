//! The contract every `Store` implementation must keep.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_core::crypto::token_hash;
use ironbridge_core::ids::{new_id, record_id};
use ironbridge_core::store::*;
use ironbridge_model::{Entity, Timestamp};

pub use crate::change_cases::*;
pub use crate::flow_cases::*;
pub use crate::link_cases::*;
pub use crate::webhook_cases::*;
pub use crate::write_cases::*;

pub(crate) const T0: Timestamp = Timestamp(1_790_000_000_000_000);

pub(crate) async fn org(store: &Arc<dyn Store>, credits: i64) -> OrgId {
    let id = new_id("org", T0.micros());
    let key = NewApiKey {
        id: new_id("key", T0.micros()),
        name: "first".into(),
        token_hash: token_hash(&id),
        prefix: "ibk_test".into(),
        created_at: T0,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store
        .create_organization(
            &Organization {
                id: id.clone(),
                name: "Acme".into(),
                connection_credits: credits,
                created_at: T0,
            },
            &key,
        )
        .await
        .unwrap();
    OrgId(id)
}

fn new_conn(token: &str) -> NewConnection {
    NewConnection {
        id: new_id("conn", T0.micros()),
        system: "sandbox".into(),
        name: Some("test".into()),
        status: "online".into(),
        settings: "{}".into(),
        end_user: None,
        credentials: Some("v1.x.ciphertext".into()),
        token_hash: token_hash(token),
        token_prefix: "ibc_test".into(),
        created_at: T0,
        replaces: None,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    }
}

pub(crate) async fn conn(store: &Arc<dyn Store>, org: &OrgId) -> ConnId {
    let c = store
        .create_connection(org, &new_conn(&new_id("tok", 0)))
        .await
        .unwrap();
    ConnId(c.id)
}

pub(crate) fn rec(conn: &ConnId, remote_id: &str, body: &str) -> RecordUpsert {
    RecordUpsert {
        id: record_id(&conn.0, Entity::VENDOR, remote_id),
        remote_id: remote_id.into(),
        data: format!(r#"{{"name":"{body}"}}"#),
        raw: format!(r#"{{"n":"{body}"}}"#).into(),
        content_hash: body.into(),
        remote_created_at: Some(T0),
        remote_updated_at: None,
        remote_was_deleted: false,
    }
}

pub(crate) async fn write(
    store: &Arc<dyn Store>,
    conn: &ConnId,
    records: Vec<RecordUpsert>,
    now: Timestamp,
) -> WriteCounts {
    store.start_sync(conn, Entity::VENDOR, now).await.unwrap();
    store
        .write_page(
            conn,
            &PageWrite {
                entity: Entity::VENDOR,
                records,
                checkpoint: None,
                seen_run: None,
                now,
                deleted: Vec::new(),
                closed: Vec::new(),
                skipped: 0,
                bases: Vec::new(),
                points: Vec::new(),
            },
        )
        .await
        .unwrap()
}

pub(crate) fn query(limit: u32) -> RecordQuery {
    RecordQuery {
        entity: Entity::VENDOR,
        after_id: None,
        after_modified: None,
        modified_after: None,
        modified_before: None,
        include_deleted: false,
        include_raw: false,
        limit,
    }
}

pub async fn organizations_and_keys(store: Arc<dyn Store>) {
    let a = org(&store, 3).await;
    let b = org(&store, 3).await;
    assert_eq!(
        store.get_organization(&a).await.unwrap().connection_credits,
        3
    );
    let key = NewApiKey {
        id: new_id("key", T0.micros()),
        name: "ci".into(),
        token_hash: token_hash("secret-1"),
        prefix: "ibk_sec".into(),
        created_at: T0,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    let created = store.create_api_key(&a, &key).await.unwrap();
    assert_eq!(created.org_id, a.0);
    let found = store
        .find_api_key(&token_hash("secret-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, key.id);
    assert!(
        store
            .find_api_key(&token_hash("secret-2"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_api_keys(&a).await.unwrap().len(), 2);
    assert!(matches!(
        store.revoke_api_key(&b, &key.id, T0).await,
        Err(StoreError::NotFound)
    ));
    let revoked = store.revoke_api_key(&a, &key.id, T0).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(T0));
    assert!(matches!(
        store.revoke_api_key(&a, &key.id, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.get_organization(&OrgId("org_missing".into())).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .create_api_key(
                &OrgId("org_missing".into()),
                &NewApiKey {
                    token_hash: token_hash("x"),
                    ..key
                }
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn connection_credits_are_a_pool(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let first = conn(&store, &o).await;
    conn(&store, &o).await;
    assert_eq!(store.credits_used(&o).await.unwrap(), 2);
    assert!(matches!(
        store.create_connection(&o, &new_conn("t3")).await,
        Err(StoreError::CreditsExhausted)
    ));
    let gone = store.disconnect_connection(&o, &first, T0).await.unwrap();
    assert_eq!(gone.status, "disconnected");
    assert_eq!(gone.disconnected_at, Some(T0));
    assert!(matches!(
        store.disconnect_connection(&o, &first, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.credits_used(&o).await.unwrap(), 1);
    store.create_connection(&o, &new_conn("t3")).await.unwrap();
    let found = store
        .find_connection_by_token(&token_hash("t3"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.org_id, o.0);
    let (list, total) = store.list_connections(&o, None, 10).await.unwrap();
    assert_eq!((list.len(), total), (3, 3));
    let (page, _) = store
        .list_connections(&o, Some(&list[0].id), 1)
        .await
        .unwrap();
    assert_eq!(page[0].id, list[1].id);
}

pub async fn concurrent_creations_never_exceed_credits(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (store, o) = (store.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            store
                .create_connection(&o, &new_conn(&format!("race-{i}")))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::CreditsExhausted) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(store.credits_used(&o).await.unwrap(), 2);
}

pub async fn tenants_cannot_touch_each_other(store: Arc<dyn Store>) {
    let a = org(&store, 2).await;
    let b = org(&store, 2).await;
    let ca = conn(&store, &a).await;
    assert!(matches!(
        store.get_connection(&b, &ca).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.disconnect_connection(&b, &ca, T0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_connection_data(&b, &ca).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.reconnect(&b, &ca, &new_conn("r"), T0).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_connections(&b, None, 10).await.unwrap().1, 0);
    assert_eq!(
        store.get_connection(&a, &ca).await.unwrap().status,
        "online"
    );
}

pub async fn reconnect_replaces_atomically(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let old = conn(&store, &o).await;
    // The pool is full, but a reconnect frees the old credit in the same transaction.
    let new = store
        .reconnect(&o, &old, &new_conn("fresh"), T0)
        .await
        .unwrap();
    assert_eq!(new.replaces.as_deref(), Some(old.0.as_str()));
    let old_row = store.get_connection(&o, &old).await.unwrap();
    assert_eq!(old_row.status, "disconnected");
    assert_eq!(old_row.replaced_by.as_deref(), Some(new.id.as_str()));
    // Replaced is disconnected, and announced like any disconnection.
    let events = store.list_events(&o, None, None, None, 10).await.unwrap();
    let disconnected: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == "connection.disconnected")
        .collect();
    assert_eq!(disconnected.len(), 1, "{events:?}");
    assert_eq!(
        disconnected[0].connection_id.as_deref(),
        Some(old.0.as_str())
    );
    assert!(matches!(
        store.reconnect(&o, &old, &new_conn("again"), T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.credits_used(&o).await.unwrap(), 1);
}

pub async fn pages_are_written_idempotently(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let counts = write(&store, &c, vec![rec(&c, "1", "a"), rec(&c, "2", "b")], T0).await;
    assert_eq!((counts.added, counts.updated, counts.unchanged), (2, 0, 0));
    let t1 = T0.plus_secs(10);
    let counts = write(&store, &c, vec![rec(&c, "1", "a"), rec(&c, "2", "b2")], t1).await;
    assert_eq!((counts.added, counts.updated, counts.unchanged), (0, 1, 1));
    let one = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "1"),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (one.created_at, one.modified_at),
        (T0, T0),
        "an unchanged record keeps its modified_at"
    );
    assert_eq!(one.raw.as_deref(), Some(r#"{"n":"a"}"#));
    let two = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "2"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((two.created_at, two.modified_at, two.raw), (T0, t1, None));
    let mut gone = rec(&c, "2", "b2");
    gone.remote_was_deleted = true;
    let counts = write(&store, &c, vec![gone], t1.plus_secs(1)).await;
    assert_eq!(counts.deleted, 1);
    assert_eq!(store.list_records(&c, &query(10)).await.unwrap().len(), 1);
    let mut with_deleted = query(10);
    with_deleted.include_deleted = true;
    let all = store.list_records(&c, &with_deleted).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|r| r.remote_was_deleted));
    assert_eq!(store.count_records(&c, &query(10)).await.unwrap(), 1);
    assert_eq!(
        store.record_counts(&c).await.unwrap(),
        vec![(Entity::VENDOR, 2)]
    );
    assert!(
        store
            .get_record(&c, Entity::ITEM, &all[0].id, false)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn sync_state_checkpoints_with_the_page(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let fresh = store.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    assert_eq!(
        (fresh.cursor, fresh.run_id, fresh.high_water),
        (None, None, None)
    );
    let until = T0.plus_secs(-120);
    store
        .begin_window(
            &c,
            Entity::VENDOR,
            "run_1",
            Some(T0.plus_secs(-3600)),
            Some(until),
            None,
        )
        .await
        .unwrap();
    let page = PageWrite {
        entity: Entity::VENDOR,
        records: vec![rec(&c, "1", "a")],
        checkpoint: Some("page-2".into()),
        now: T0,
        seen_run: Some("run_1".into()),
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points: Vec::new(),
    };
    store.write_page(&c, &page).await.unwrap();
    store
        .finish_sync(&c, Entity::VENDOR, T0, Some("upstream timed out"), None)
        .await
        .unwrap();
    // A failed sync resumes where its last committed page ended, in the same window.
    let resumed = store.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    assert_eq!(
        (resumed.cursor.as_deref(), resumed.run_id.as_deref()),
        (Some("page-2"), Some("run_1"))
    );
    assert_eq!(
        (resumed.window_since, resumed.window_until),
        (Some(T0.plus_secs(-3600)), Some(until))
    );
    assert_eq!(
        (resumed.status.as_str(), resumed.last_error.as_deref()),
        ("running", Some("upstream timed out"))
    );
    store
        .finish_sync(&c, Entity::VENDOR, T0.plus_secs(1), None, None)
        .await
        .unwrap();
    let states = store.sync_states(&c).await.unwrap();
    assert_eq!(
        (
            states[0].status.as_str(),
            states[0].cursor.as_deref(),
            states[0].last_error.as_deref()
        ),
        ("succeeded", None, None)
    );
    assert_eq!(
        (states[0].high_water, states[0].run_id.as_deref()),
        (Some(until), None),
        "the next run starts from the window's end"
    );
    assert_eq!(states[0].last_succeeded_at, Some(T0.plus_secs(1)));
}

pub async fn complete_passes_sweep_records_the_source_no_longer_has(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(
        &store,
        &c,
        vec![rec(&c, "1", "a"), rec(&c, "2", "a"), rec(&c, "3", "a")],
        T0,
    )
    .await;
    store
        .begin_window(&c, Entity::VENDOR, "run_2", None, Some(T0), None)
        .await
        .unwrap();
    // The pass sees 1 (unchanged) and 3 (changed), not 2.
    let page = PageWrite {
        entity: Entity::VENDOR,
        records: vec![rec(&c, "1", "a"), rec(&c, "3", "b")],
        checkpoint: None,
        now: T0.plus_secs(5),
        seen_run: Some("run_2".into()),
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points: Vec::new(),
    };
    store.write_page(&c, &page).await.unwrap();
    assert_eq!(
        store
            .sweep_unseen(&c, Entity::VENDOR, "run_2", T0.plus_secs(6))
            .await
            .unwrap(),
        1
    );
    let two = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "2"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(two.remote_was_deleted);
    assert_eq!(
        two.modified_at,
        T0.plus_secs(6),
        "a deletion is a change clients can filter on"
    );
    assert_eq!(
        store
            .sweep_unseen(&c, Entity::VENDOR, "run_2", T0.plus_secs(7))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
}

pub async fn keyset_pages_survive_concurrent_changes(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let initial: Vec<RecordUpsert> = (0..250).map(|i| rec(&c, &format!("r{i}"), "v1")).collect();
    write(&store, &c, initial.clone(), T0).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut round = 0;
    let mut deleted = HashSet::new();
    loop {
        let mut q = query(17);
        q.after_id = after.clone();
        let page = store.list_records(&c, &q).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|r| r.id.clone()));
        after = page.last().map(|r| r.id.clone());
        // Between pages: insert new records, update some, delete one.
        round += 1;
        let now = T0.plus_secs(round);
        let mut changes = vec![
            rec(&c, &format!("new{round}"), "v1"),
            rec(&c, &format!("r{}", round * 7 % 250), &format!("v{round}")),
        ];
        let mut gone = rec(&c, &format!("r{}", (round * 13 + 5) % 250), "v1");
        gone.remote_was_deleted = true;
        deleted.insert(gone.id.clone());
        changes.push(gone);
        write(&store, &c, changes, now).await;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no record is returned twice");
    for r in &initial {
        if !deleted.contains(&r.id) {
            assert!(
                unique.contains(&r.id),
                "record {} existed throughout and was missed",
                r.remote_id
            );
        }
    }
}

pub async fn filters_by_modification_time(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(&store, &c, vec![rec(&c, "old", "a")], T0).await;
    write(&store, &c, vec![rec(&c, "mid", "a")], T0.plus_secs(10)).await;
    write(&store, &c, vec![rec(&c, "new", "a")], T0.plus_secs(20)).await;
    let mut q = query(10);
    q.modified_after = Some(T0);
    assert_eq!(
        store.count_records(&c, &q).await.unwrap(),
        2,
        "modified_after is exclusive"
    );
    q.modified_before = Some(T0.plus_secs(20));
    let rows = store.list_records(&c, &q).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r.remote_id.as_str())
            .collect::<Vec<_>>(),
        vec!["mid"]
    );
}

/// With a `modified_*` filter, pages are in change order and positioned by (modified_at,
/// id): records that share an instant are split across pages without loss, a record
/// changed during the walk comes again at its new place, one unchanged comes once.
pub async fn change_order_pages_follow_modification_time(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    // Three instants, five records each: pages of 4 cut through every tie.
    for (i, at) in [T0, T0.plus_secs(10), T0.plus_secs(20)]
        .into_iter()
        .enumerate()
    {
        let batch = (0..5).map(|k| rec(&c, &format!("r{i}{k}"), "v1")).collect();
        write(&store, &c, batch, at).await;
    }
    let mut q = query(4);
    q.modified_after = Some(Timestamp(0));
    let mut seen: Vec<(Timestamp, String)> = Vec::new();
    let mut changed: Option<String> = None;
    loop {
        let page = store.list_records(&c, &q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after_id = Some(last.id.clone());
        q.after_modified = Some(last.modified_at);
        seen.extend(page.iter().map(|r| (r.modified_at, r.remote_id.clone())));
        if changed.is_none() {
            // The first record seen changes after its page: it must come again at the end.
            let name = page[0].remote_id.clone();
            write(&store, &c, vec![rec(&c, &name, "v2")], T0.plus_secs(30)).await;
            changed = Some(name);
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| {
        (a.0, record_id(&c.0, Entity::VENDOR, &a.1))
            .cmp(&(b.0, record_id(&c.0, Entity::VENDOR, &b.1)))
    });
    assert_eq!(seen, sorted, "pages are in (modified_at, id) order");
    let names: Vec<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.len(), 16, "15 records, one of them twice: {names:?}");
    let changed = changed.unwrap();
    assert_eq!(names.iter().filter(|n| **n == changed).count(), 2);
    assert_eq!(
        names.last(),
        Some(&changed.as_str()),
        "the changed record comes last"
    );
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), 15, "nothing lost, nothing else repeated");
    // `modified_before` alone is in change order too, and stops at its bound.
    let mut q = query(100);
    q.modified_before = Some(T0.plus_secs(20));
    let rows = store.list_records(&c, &q).await.unwrap();
    assert_eq!(
        rows.len(),
        9,
        "the T0 and T0+10s records but the one changed"
    );
    assert!(
        rows.windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at)
    );
}

pub async fn deleting_data_needs_a_disconnected_connection(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(&store, &c, vec![rec(&c, "1", "a"), rec(&c, "2", "a")], T0).await;
    assert!(matches!(
        store.delete_connection_data(&o, &c).await,
        Err(StoreError::Conflict(_))
    ));
    store.disconnect_connection(&o, &c, T0).await.unwrap();
    // Disconnecting keeps the synced history.
    assert_eq!(store.count_records(&c, &query(10)).await.unwrap(), 2);
    assert_eq!(store.delete_connection_data(&o, &c).await.unwrap(), 2);
    assert_eq!(store.count_records(&c, &query(10)).await.unwrap(), 0);
    assert!(store.sync_states(&c).await.unwrap().is_empty());
}

fn job(org: &OrgId, dedupe: Option<&str>, now: Timestamp) -> NewJob {
    NewJob {
        id: new_id("job", now.micros()),
        kind: "sync".into(),
        org_id: org.0.clone(),
        connection_id: None,
        payload: "{}".into(),
        dedupe_key: dedupe.map(str::to_string),
        run_at: now,
        max_attempts: 3,
        created_at: now,
    }
}

pub async fn jobs_are_claimed_once_by_concurrent_workers(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    for _ in 0..40 {
        store
            .enqueue_job(&job(&o, None, T0))
            .await
            .unwrap()
            .unwrap();
    }
    let lease = T0.plus_secs(300);
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut done = Vec::new();
            while let Some(j) = store.claim_job("sync", &owner, T0, lease).await.unwrap() {
                assert_eq!(
                    (j.status.as_str(), j.attempts, j.lease_owner.as_deref()),
                    ("running", 1, Some(owner.as_str()))
                );
                assert!(
                    store
                        .finish_job(&j, &owner, T0, &JobOutcome::Succeeded)
                        .await
                        .unwrap()
                );
                done.push(j.id);
            }
            done
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (40, 40),
        "every job ran exactly once"
    );
    assert!(
        store
            .claim_job("sync", "late", T0, lease)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .claim_job("other-kind", "w", T0, lease)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn jobs_dedupe_retry_and_fence_late_workers(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let first = store
        .enqueue_job(&job(&o, Some("sync:conn_1"), T0))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .enqueue_job(&job(&o, Some("sync:conn_1"), T0))
            .await
            .unwrap()
            .is_none(),
        "deduplicated"
    );
    assert_eq!(
        store.active_job("sync:conn_1").await.unwrap().unwrap().id,
        first.id
    );
    assert_eq!(store.get_job(&o, &first.id).await.unwrap().status, "queued");
    let other = org(&store, 1).await;
    assert!(matches!(
        store.get_job(&other, &first.id).await,
        Err(StoreError::NotFound)
    ));

    // Worker A takes it, then stops heart-beating (it crashed, or stalled).
    let a = store
        .claim_job("sync", "a", T0, T0.plus_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(store.extend_lease(&a, "a", T0.plus_secs(60)).await.unwrap());
    assert!(
        store
            .claim_job("sync", "b", T0.plus_secs(59), T0.plus_secs(120))
            .await
            .unwrap()
            .is_none(),
        "the lease holds"
    );
    let b = store
        .claim_job("sync", "b", T0.plus_secs(61), T0.plus_secs(120))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (b.id.as_str(), b.attempts),
        (first.id.as_str(), 2),
        "rescued after the lease expired"
    );
    // A wakes up: it can neither extend nor finish the attempt B now owns.
    assert!(
        !store
            .extend_lease(&a, "a", T0.plus_secs(200))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(&a, "a", T0.plus_secs(62), &JobOutcome::Succeeded)
            .await
            .unwrap()
    );
    // B fails and retries later; the job is not claimable before then.
    let retry = JobOutcome::Retry {
        run_at: T0.plus_secs(600),
        error: "upstream 503".into(),
    };
    assert!(
        store
            .finish_job(&b, "b", T0.plus_secs(62), &retry)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_job("sync", "c", T0.plus_secs(599), T0.plus_secs(700))
            .await
            .unwrap()
            .is_none()
    );
    let c = store
        .claim_job("sync", "c", T0.plus_secs(600), T0.plus_secs(700))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.attempts, c.failures, c.last_error.as_deref()),
        (3, 1, Some("upstream 503")),
        "A's takeover is an attempt, not a failure"
    );
    let retry_later = JobOutcome::Retry {
        run_at: T0.plus_secs(900),
        error: "upstream 503".into(),
    };
    assert!(
        store
            .finish_job(&c, "c", T0.plus_secs(601), &retry_later)
            .await
            .unwrap()
    );
    let d = store
        .claim_job("sync", "d", T0.plus_secs(900), T0.plus_secs(1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.attempts, d.failures), (4, 2));
    // Out of attempts (the third failure): a retry becomes a failure, and the dedupe key is
    // free again.
    assert!(
        store
            .finish_job(&d, "d", T0.plus_secs(901), &retry)
            .await
            .unwrap()
    );
    assert_eq!(store.get_job(&o, &first.id).await.unwrap().status, "failed");
    assert!(store.active_job("sync:conn_1").await.unwrap().is_none());
    assert!(
        store
            .enqueue_job(&job(&o, Some("sync:conn_1"), T0))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn events_are_written_with_the_changes_they_describe(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let c = conn(&store, &o).await;
    let c2 = conn(&store, &o).await;
    store
        .set_connection_status(&c, "syncing", T0, None)
        .await
        .unwrap();
    store
        .set_connection_status(&c, "online", T0, None)
        .await
        .unwrap();
    assert!(
        store
            .list_events(&o, None, None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "syncing and back is not news"
    );
    store
        .set_connection_status(&c, "offline", T0, None)
        .await
        .unwrap();
    store
        .set_connection_status(&c, "syncing", T0, None)
        .await
        .unwrap();
    store
        .set_connection_status(&c, "reauthorization_required", T0, None)
        .await
        .unwrap();
    store.disconnect_connection(&o, &c, T0).await.unwrap();
    // Disconnected connections keep their status.
    store
        .set_connection_status(&c, "online", T0, None)
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(&o, &c).await.unwrap().status,
        "disconnected"
    );
    store
        .set_connection_status(&c2, "offline", T0, None)
        .await
        .unwrap();
    let all = store.list_events(&o, None, None, None, 10).await.unwrap();
    let types: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "connection.status_changed",
            "connection.status_changed",
            "connection.reauthorization_required",
            "connection.disconnected",
            "connection.status_changed"
        ]
    );
    assert_eq!(
        all[1].data,
        r#"{"previous_status":"offline","status":"reauthorization_required"}"#
    );
    let mine = store
        .list_events(&o, None, Some(&c.0), None, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 4);
    let page = store
        .list_events(
            &o,
            Some(&all[1].id),
            None,
            Some("connection.status_changed"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].connection_id.as_deref(), Some(c2.0.as_str()));
    let other = org(&store, 1).await;
    assert!(
        store
            .list_events(&other, None, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The scheduler sees live connections that never synced, not disconnected ones.
    let due = store.connections_due(T0, 10).await.unwrap();
    assert!(due.iter().any(|(_, id)| *id == c2) && !due.iter().any(|(_, id)| *id == c));
    store.start_sync(&c2, Entity::VENDOR, T0).await.unwrap();
    assert!(
        !store
            .connections_due(T0, 10)
            .await
            .unwrap()
            .iter()
            .any(|(_, id)| *id == c2)
    );
    assert!(
        store
            .connections_due(T0.plus_secs(1), 10)
            .await
            .unwrap()
            .iter()
            .any(|(_, id)| *id == c2)
    );
    // Reconciliation: the last full sync, or the connection's creation before any.
    let created = store.get_connection(&o, &c2).await.unwrap().created_at;
    assert_eq!(store.last_full_sync(&c2).await.unwrap(), created);
    store
        .record_full_sync(&c2, T0.plus_secs(86_400))
        .await
        .unwrap();
    assert_eq!(
        store.last_full_sync(&c2).await.unwrap(),
        T0.plus_secs(86_400)
    );
    assert_eq!(store.last_full_sync(&c).await.unwrap(), {
        store.get_connection(&o, &c).await.unwrap().created_at
    });
    assert!(matches!(
        store.last_full_sync(&ConnId("conn_nope".into())).await,
        Err(StoreError::NotFound)
    ));
}

/// Pages larger than one statement's chunk, and pages that repeat a record (an offset-paged
/// source while data moves): every record is stored once, with its last copy, and the counts
/// add up.
pub async fn large_pages_with_repeats_are_written_in_batches(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let mut records: Vec<RecordUpsert> = (0..1_234)
        .map(|n| rec(&c, &n.to_string(), &format!("v{n}")))
        .collect();
    // The same source record twice in one page: the last copy wins.
    records.push(rec(&c, "7", "seven-again"));
    let counts = write(&store, &c, records, T0).await;
    assert_eq!(
        (counts.added, counts.updated, counts.unchanged),
        (1_234, 0, 0)
    );
    assert_eq!(store.count_records(&c, &query(10)).await.unwrap(), 1_234);
    let seven = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "7"),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seven.data, r#"{"name":"seven-again"}"#);

    // Rewrite with every third record changed and a new one: one batch decides all.
    let t1 = T0.plus_secs(60);
    let mut records: Vec<RecordUpsert> = (0..1_234)
        .map(|n| {
            let body = if n == 7 {
                "seven-again".to_string()
            } else if n % 3 == 0 {
                format!("w{n}")
            } else {
                format!("v{n}")
            };
            rec(&c, &n.to_string(), &body)
        })
        .collect();
    records.push(rec(&c, "new", "fresh"));
    let counts = write(&store, &c, records, t1).await;
    let changed = (0..1_234).filter(|n| n % 3 == 0 && *n != 7).count() as u64;
    assert_eq!(
        (counts.added, counts.updated, counts.unchanged),
        (1, changed, 1_234 - changed)
    );
    let mut recent = query(2_000);
    recent.modified_after = Some(T0);
    assert_eq!(
        store.list_records(&c, &recent).await.unwrap().len() as u64,
        changed + 1,
        "only changed and new records moved their modified_at"
    );
    let first = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "3"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.created_at, first.modified_at),
        (T0, t1),
        "an update keeps created_at"
    );
}

/// Failed calls count up with the circuit's state until a success resets them.
pub async fn call_failures_are_counted_with_the_circuit_state(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    assert_eq!(
        store
            .record_call_failure(&c, T0, "UPSTREAM_UNAVAILABLE", "closed")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_call_failure(&c, T0.plus_secs(1), "UPSTREAM_UNAVAILABLE", "open")
            .await
            .unwrap(),
        2
    );
    let now = store.get_connection(&o, &c).await.unwrap();
    assert_eq!(
        (
            now.consecutive_errors,
            now.error_count,
            now.circuit_state.as_str(),
            now.last_error_code.as_deref()
        ),
        (2, 2, "open", Some("UPSTREAM_UNAVAILABLE"))
    );
    store
        .record_call_success(&c, T0.plus_secs(2))
        .await
        .unwrap();
    let now = store.get_connection(&o, &c).await.unwrap();
    assert_eq!(
        (
            now.consecutive_errors,
            now.error_count,
            now.circuit_state.as_str()
        ),
        (0, 2, "closed")
    );
    assert!(matches!(
        store
            .record_call_failure(&ConnId("conn_missing".into()), T0, "X", "closed")
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn feeds_keep_their_position_between_runs(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    store.start_sync(&c, Entity::ITEM, T0).await.unwrap();
    // A new run of a feed starts from where the last one stopped.
    store
        .begin_window(&c, Entity::ITEM, "run_1", None, Some(T0), Some("pos-4"))
        .await
        .unwrap();
    let started = store.start_sync(&c, Entity::ITEM, T0).await.unwrap();
    assert_eq!(
        (started.cursor.as_deref(), started.run_id.as_deref()),
        (Some("pos-4"), Some("run_1"))
    );
    store
        .finish_sync(&c, Entity::ITEM, T0, None, Some("pos-9"))
        .await
        .unwrap();
    let done = store.start_sync(&c, Entity::ITEM, T0).await.unwrap();
    assert_eq!(
        (done.cursor.as_deref(), done.run_id.as_deref()),
        (Some("pos-9"), None),
        "the finished run leaves its position for the next"
    );
    // A failure keeps the cursor the run had committed.
    store
        .finish_sync(&c, Entity::ITEM, T0, Some("feed broke"), None)
        .await
        .unwrap();
    let failed = store.start_sync(&c, Entity::ITEM, T0).await.unwrap();
    assert_eq!(
        (failed.cursor.as_deref(), failed.last_error.as_deref()),
        (Some("pos-9"), Some("feed broke"))
    );
}

pub async fn write_slots_are_shared_and_expire(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let c = conn(&store, &o).await;
    let other = conn(&store, &o).await;
    let until = T0.plus_secs(60);
    let take = |conn: &ConnId, holder: &str, now: Timestamp| {
        let (store, conn, holder) = (store.clone(), conn.clone(), holder.to_string());
        async move {
            store
                .acquire_write_slot(&conn, 2, &holder, now, until)
                .await
                .unwrap()
        }
    };
    assert_eq!(take(&c, "p1", T0).await, Some(0));
    assert_eq!(take(&c, "p2", T0).await, Some(1));
    assert_eq!(take(&c, "p3", T0).await, None, "both slots are held");
    assert_eq!(take(&other, "p3", T0).await, Some(0), "per connection");
    // Only the holder frees a slot.
    store.release_write_slot(&c, 0, "p2").await.unwrap();
    assert_eq!(take(&c, "p3", T0).await, None);
    store.release_write_slot(&c, 0, "p1").await.unwrap();
    assert_eq!(take(&c, "p3", T0).await, Some(0));
    // A holder that renews its lease keeps the slot past it; only the holder renews.
    assert!(
        !store
            .renew_write_slot(&c, 1, "p9", T0.plus_secs(120))
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_write_slot(&c, 1, "p2", T0.plus_secs(120))
            .await
            .unwrap()
    );
    // A holder that never gave its slot back loses it when the lease ends.
    assert_eq!(take(&c, "p4", T0.plus_secs(61)).await, Some(0));
    // (p4's lease ran out at once: `take` leases to T0 + 60.) Slot 1, renewed, is not taken.
    assert_ne!(
        take(&c, "p5", T0.plus_secs(61)).await,
        Some(1),
        "slot 1 was renewed"
    );
    assert!(
        !store
            .renew_write_slot(&c, 0, "p3", T0.plus_secs(120))
            .await
            .unwrap(),
        "p3 lost it"
    );
}

pub async fn released_jobs_use_up_no_failure(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let queued = store
        .enqueue_job(&job(&o, Some("sync:conn_9"), T0))
        .await
        .unwrap()
        .unwrap();
    let claimed = store
        .claim_job("sync", "w1", T0, T0.plus_secs(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempts, 1);
    // Another owner cannot give it back.
    assert!(!store.release_job(&claimed, "w2", T0).await.unwrap());
    assert!(
        store
            .release_job(&claimed, "w1", T0.plus_secs(5))
            .await
            .unwrap()
    );
    let back = store.get_job(&o, &queued.id).await.unwrap();
    assert_eq!(
        (back.status.as_str(), back.failures, back.lease_owner),
        ("queued", 0, None)
    );
    // Due at once for the next worker, and the old attempt is fenced off.
    let again = store
        .claim_job("sync", "w2", T0.plus_secs(5), T0.plus_secs(300))
        .await
        .unwrap()
        .unwrap();
    // A new attempt (the fencing token moves on), still no failure.
    assert_eq!(
        (again.id, again.attempts, again.failures),
        (queued.id, 2, 0)
    );
    assert!(
        !store
            .finish_job(&claimed, "w1", T0.plus_secs(6), &JobOutcome::Succeeded)
            .await
            .unwrap()
    );
}

pub async fn named_constraints_are_typed_conflicts(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let key = |id: &str| NewApiKey {
        id: id.into(),
        name: "k".into(),
        token_hash: token_hash("the same secret"),
        prefix: "ibk_".into(),
        created_at: T0,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    };
    store.create_api_key(&o, &key("key_a")).await.unwrap();
    match store.create_api_key(&o, &key("key_b")).await {
        Err(StoreError::Conflict(Conflict::Duplicate { constraint, what })) => {
            assert_eq!(constraint, "api_keys_token_hash_key");
            assert_eq!(what, "an API key with this token");
        }
        other => panic!("expected a typed conflict, got {other:?}"),
    }
    // Any other failure keeps the driver's error as its source, for the logs only.
    match store.create_api_key(&o, &key("key_a")).await {
        Err(err @ StoreError::Internal(_)) => {
            assert_eq!(err.to_string(), "database error", "no database text");
            assert!(
                std::error::Error::source(&err).is_some(),
                "the cause is kept as a source"
            );
            assert!(err.chain().len() > "database error".len());
        }
        Err(StoreError::Conflict(Conflict::Duplicate { .. })) => {
            // Both the id and the token are taken; a backend may name either.
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

fn page(records: Vec<RecordUpsert>, run: &str, now: Timestamp) -> PageWrite {
    PageWrite {
        entity: Entity::VENDOR,
        records,
        checkpoint: Some(format!("after-{now}")),
        now,
        seen_run: Some(run.into()),
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points: Vec::new(),
    }
}

async fn event_types(store: &Arc<dyn Store>, o: &OrgId) -> Vec<String> {
    store
        .list_events(o, None, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

pub async fn job_writes_are_fenced_by_the_lease(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let queued = store
        .enqueue_job(&job(&o, Some("sync:fenced"), T0))
        .await
        .unwrap()
        .unwrap();
    let a = store
        .claim_job("sync", "a", T0, T0.plus_secs(60))
        .await
        .unwrap()
        .unwrap();
    let view_a = store.fenced(Fence::of(&a, "a"));
    view_a.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    view_a
        .begin_window(&c, Entity::VENDOR, "run_a", None, Some(T0), None)
        .await
        .unwrap();
    view_a
        .write_page(&c, &page(vec![rec(&c, "1", "a")], "run_a", T0))
        .await
        .expect("the lease holder writes");
    // A freezes; its lease runs out and B takes the job over.
    let b = store
        .claim_job("sync", "b", T0.plus_secs(61), T0.plus_secs(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.id.as_str(), b.attempts), (queued.id.as_str(), 2));
    let view_b = store.fenced(Fence::of(&b, "b"));
    // A wakes up: every write it tries is refused, and nothing of it stays.
    let stale = view_a
        .write_page(
            &c,
            &page(
                vec![rec(&c, "1", "stale"), rec(&c, "2", "stale")],
                "run_a",
                T0.plus_secs(62),
            ),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced)), "{stale:?}");
    let one = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "1"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.data, r#"{"name":"a"}"#, "the stale page rolled back");
    assert!(
        store
            .get_record(
                &c,
                Entity::VENDOR,
                &record_id(&c.0, Entity::VENDOR, "2"),
                false
            )
            .await
            .unwrap()
            .is_none()
    );
    let state = store.sync_states(&c).await.unwrap();
    assert_eq!(
        state[0].cursor.as_deref(),
        Some(format!("after-{T0}").as_str())
    );
    for refused in [
        view_a
            .sweep_unseen(&c, Entity::VENDOR, "run_a", T0.plus_secs(63))
            .await
            .map(|_| ()),
        view_a
            .finish_sync(&c, Entity::VENDOR, T0.plus_secs(63), None, None)
            .await
            .map(|_| ()),
        view_a
            .set_connection_status(&c, "online", T0.plus_secs(63), None)
            .await,
        view_a.record_full_sync(&c, T0.plus_secs(63)).await,
        view_a.record_call_success(&c, T0.plus_secs(63)).await,
    ] {
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    }
    let event = |id: &str| Event {
        id: id.into(),
        org_id: o.0.clone(),
        connection_id: Some(c.0.clone()),
        event_type: "sync.completed".into(),
        data: "{}".into(),
        created_at: T0.plus_secs(64),
    };
    let late = view_a
        .complete_sync(&c, "online", T0.plus_secs(64), &event("evt_stale"))
        .await;
    assert!(matches!(late, Err(StoreError::Fenced)), "{late:?}");
    assert!(
        !event_types(&store, &o)
            .await
            .contains(&"sync.completed".to_string()),
        "a stale completion announces nothing"
    );
    assert_eq!(store.last_full_sync(&c).await.unwrap(), T0, "unchanged");
    // B's writes go through; its completion and the job's success are one commit.
    view_b
        .write_page(
            &c,
            &page(vec![rec(&c, "2", "b")], "run_a", T0.plus_secs(65)),
        )
        .await
        .unwrap();
    view_b
        .complete_sync(&c, "online", T0.plus_secs(66), &event("evt_live"))
        .await
        .unwrap();
    let done = store.get_job(&o, &queued.id).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.failures, done.lease_owner),
        ("succeeded", 0, None)
    );
    assert_eq!(
        event_types(&store, &o)
            .await
            .iter()
            .filter(|t| *t == "sync.completed")
            .count(),
        1
    );
    // Once the job ended, even its last holder writes nothing more through the job's view.
    let after = view_b
        .write_page(
            &c,
            &page(vec![rec(&c, "3", "b")], "run_a", T0.plus_secs(67)),
        )
        .await;
    assert!(matches!(after, Err(StoreError::Fenced)), "{after:?}");
    // The plain store is not fenced.
    write(&store, &c, vec![rec(&c, "3", "plain")], T0.plus_secs(68)).await;
}

pub async fn runs_total_their_attempts_and_the_deletion_log(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(
        &store,
        &c,
        vec![rec(&c, "1", "a"), rec(&c, "2", "a"), rec(&c, "3", "a")],
        T0,
    )
    .await;
    store
        .finish_sync(&c, Entity::VENDOR, T0, None, None)
        .await
        .unwrap();
    store.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    store
        .begin_window(&c, Entity::VENDOR, "run_2", None, Some(T0), None)
        .await
        .unwrap();
    // First attempt: one new, one changed, one the deletion log reports gone.
    let mut first = page(vec![rec(&c, "4", "a"), rec(&c, "1", "b")], "run_2", T0);
    first.deleted = vec![
        record_id(&c.0, Entity::VENDOR, "2"),
        record_id(&c.0, Entity::VENDOR, "never-stored"),
    ];
    first.skipped = 2;
    let counts = store.write_page(&c, &first).await.unwrap();
    assert_eq!((counts.added, counts.updated, counts.deleted), (1, 1, 1));
    store
        .finish_sync(&c, Entity::VENDOR, T0, Some("upstream timed out"), None)
        .await
        .unwrap();
    let resumed = store.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    assert_eq!(
        (resumed.run_id.as_deref(), resumed.run_totals.skipped),
        (Some("run_2"), 2)
    );
    let two = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "2"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(two.remote_was_deleted, "flagged by the log");
    assert_eq!(two.data, r#"{"name":"a"}"#, "its last data kept");
    // Second attempt: sees 3 again; the sweep then finds nothing else unseen (2 is
    // already flagged, 1 and 4 were seen by the first attempt).
    store
        .write_page(&c, &page(vec![rec(&c, "3", "a")], "run_2", T0))
        .await
        .unwrap();
    assert_eq!(
        store
            .sweep_unseen(&c, Entity::VENDOR, "run_2", T0)
            .await
            .unwrap(),
        0
    );
    let totals = store
        .finish_sync(&c, Entity::VENDOR, T0.plus_secs(1), None, None)
        .await
        .unwrap();
    assert_eq!(
        totals,
        RunTotals {
            written: WriteCounts {
                added: 1,
                updated: 1,
                deleted: 1,
                unchanged: 1
            },
            skipped: 2
        },
        "the whole run, both attempts"
    );
    // The next run starts from zero.
    store.start_sync(&c, Entity::VENDOR, T0).await.unwrap();
    store
        .begin_window(&c, Entity::VENDOR, "run_3", None, Some(T0), None)
        .await
        .unwrap();
    let totals = store
        .finish_sync(&c, Entity::VENDOR, T0.plus_secs(2), None, None)
        .await
        .unwrap();
    assert_eq!(totals, RunTotals::default());
}

pub async fn the_source_clock_offset_is_recorded_per_connection(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let c = conn(&store, &o).await;
    let other = conn(&store, &o).await;
    let fresh = store.get_connection(&o, &c).await.unwrap();
    assert_eq!(
        (fresh.source_clock_offset_ms, fresh.source_clock_measured_at),
        (None, None),
        "unknown until measured"
    );
    store
        .record_source_clock(&c, 600_000, T0.plus_secs(5))
        .await
        .unwrap();
    store
        .record_source_clock(&c, -600_000, T0.plus_secs(10))
        .await
        .unwrap();
    let now = store.get_connection(&o, &c).await.unwrap();
    assert_eq!(
        (now.source_clock_offset_ms, now.source_clock_measured_at),
        (Some(-600_000), Some(T0.plus_secs(10))),
        "the latest measurement"
    );
    let untouched = store.get_connection(&o, &other).await.unwrap();
    assert_eq!(untouched.source_clock_offset_ms, None);
}

/// Raw payloads are stored compressed and read back as the exact bytes written, whether a
/// record is read alone or in a list, and large repetitive ones (OData's `__metadata` on every
/// line) as well as small ones.
pub async fn raw_payloads_read_back_exactly(store: Arc<dyn Store>) {
    let org = org(&store, 5).await;
    let c = conn(&store, &org).await;
    let line = r#"{"__metadata":{"uri":"https://h/A_PurchaseOrderItem('10')","type":"T"},"Date":"\/Date(1667823962922)\/","Text":"x\u00e9 \"quoted\""}"#;
    let large = format!(r#"{{"items":[{}]}}"#, vec![line; 200].join(","));
    let mut big = rec(&c, "big", "big");
    big.raw = large.as_str().into();
    assert!(big.raw.as_bytes().len() * 10 < large.len());
    write(&store, &c, vec![big, rec(&c, "small", "s")], T0).await;
    let one = store
        .get_record(
            &c,
            Entity::VENDOR,
            &record_id(&c.0, Entity::VENDOR, "big"),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.raw.as_deref(), Some(large.as_str()));
    let mut q = query(10);
    q.include_raw = true;
    let listed = store.list_records(&c, &q).await.unwrap();
    let raws: Vec<_> = listed
        .iter()
        .map(|r| (r.remote_id.as_str(), r.raw.as_deref()))
        .collect();
    assert!(raws.contains(&("big", Some(large.as_str()))), "{raws:?}");
    assert!(raws.contains(&("small", Some(r#"{"n":"s"}"#))), "{raws:?}");
}

pub async fn points_are_appended_once_paged_by_time_and_purged_in_batches(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let entity = Entity::VEHICLE_LOCATION;
    store.start_sync(&c, entity, T0).await.unwrap();
    let point = |series: &str, secs: i64, lat: f64| PointUpsert {
        series_id: series.into(),
        recorded_at: T0.plus_secs(secs),
        data: format!(r#"{{"vehicle_id":"{series}","latitude":{lat}}}"#),
    };
    let write = |points: Vec<PointUpsert>, now: Timestamp| PageWrite {
        entity,
        records: Vec::new(),
        checkpoint: Some(format!("after-{now}")),
        now,
        seen_run: None,
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points,
    };
    let mut first = Vec::new();
    for s in 0..30 {
        first.push(point("vhc_a", s * 30, 1.0));
        first.push(point("vhc_b", s * 30, 2.0));
    }
    let counts = store.write_page(&c, &write(first, T0)).await.unwrap();
    assert_eq!(counts.added, 60);
    // The same instants again (a window read twice) add nothing and change nothing; a new
    // one is added and moves the series' latest point.
    let again = vec![point("vhc_a", 0, 9.0), point("vhc_a", 900, 3.0)];
    let counts = store
        .write_page(&c, &write(again, T0.plus_secs(5)))
        .await
        .unwrap();
    assert_eq!((counts.added, counts.unchanged), (1, 1));
    let all = |after: Option<(Timestamp, String)>, limit| PointQuery {
        entity,
        series_id: None,
        from: None,
        until: None,
        after,
        limit,
    };
    let first_page = store.list_points(&c, &all(None, 10)).await.unwrap();
    assert_eq!(first_page.len(), 10);
    assert_eq!(
        (
            first_page[0].series_id.as_str(),
            first_page[1].series_id.as_str()
        ),
        ("vhc_a", "vhc_b"),
        "time, then series"
    );
    assert!(
        first_page[0].data.contains("1.0") || first_page[0].data.contains(":1"),
        "the first copy stays: {}",
        first_page[0].data
    );
    // Walking the pages reads each point once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_points(&c, &all(after.clone(), 7)).await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        after = Some((last.recorded_at, last.series_id.clone()));
        seen.extend(page.into_iter().map(|p| (p.series_id, p.recorded_at)));
    }
    assert_eq!(seen.len(), 61);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 61);
    // One vehicle over a time range.
    let range = store
        .list_points(
            &c,
            &PointQuery {
                entity,
                series_id: Some("vhc_b".into()),
                from: Some(T0.plus_secs(60)),
                until: Some(T0.plus_secs(150)),
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let times: Vec<i64> = range
        .iter()
        .map(|p| (p.recorded_at.micros() - T0.micros()) / 1_000_000)
        .collect();
    assert_eq!(times, vec![60, 90, 120]);
    let latest = store
        .latest_points(&c, entity, None, None, 10)
        .await
        .unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].recorded_at, T0.plus_secs(900));
    assert_eq!(latest[1].recorded_at, T0.plus_secs(29 * 30));
    let after_a = store
        .latest_points(&c, entity, None, Some("vhc_a"), 10)
        .await
        .unwrap();
    assert_eq!(after_a.len(), 1);
    // The purge: points before T0+300s go, in batches, and at most `max` in one call.
    let purged = store
        .purge_points(entity, T0.plus_secs(300), 3, 5)
        .await
        .unwrap();
    assert_eq!(purged, 5, "bounded by max");
    let purged = store
        .purge_points(entity, T0.plus_secs(300), 3, 1_000)
        .await
        .unwrap();
    assert_eq!(purged, 15, "the other 15 of the 20 before 300 s");
    let left = store.list_points(&c, &all(None, 1_000)).await.unwrap();
    assert_eq!(left.len(), 41);
    assert!(left.iter().all(|p| p.recorded_at >= T0.plus_secs(300)));
    // The connection's count of points follows the writes (61, a point read twice counted
    // once) and the purges (20 fewer), without counting the table.
    let counts = store.record_counts(&c).await.unwrap();
    assert_eq!(counts, vec![(entity, 41)]);
    // Another organization's connection with a vehicle of the same id: a series of its own,
    // seen by neither connection's lists nor purged by its count.
    let o2 = org(&store, 1).await;
    let c2 = conn(&store, &o2).await;
    store.start_sync(&c2, entity, T0).await.unwrap();
    let theirs = vec![point("vhc_a", 900, 7.0), point("vhc_a", 0, 7.0)];
    let counts = store.write_page(&c2, &write(theirs, T0)).await.unwrap();
    assert_eq!(counts.added, 2, "the same instants, another connection");
    assert_eq!(
        store
            .list_points(&c, &all(None, 1_000))
            .await
            .unwrap()
            .len(),
        41
    );
    let their_latest = store
        .latest_points(&c2, entity, None, None, 10)
        .await
        .unwrap();
    assert_eq!(their_latest.len(), 1);
    assert!(their_latest[0].data.contains("7"));
    let mine = store
        .latest_points(&c, entity, Some("vhc_a"), None, 10)
        .await
        .unwrap();
    assert!(mine[0].data.contains('3'), "{}", mine[0].data);
    // Deleting the connection's data deletes its points.
    store
        .disconnect_connection(&o, &c, T0.plus_secs(10))
        .await
        .unwrap();
    store.delete_connection_data(&o, &c).await.unwrap();
    assert!(
        store
            .list_points(&c, &all(None, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .latest_points(&c, entity, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_points(&c2, &all(None, 10)).await.unwrap().len(),
        2,
        "the other connection's points stay"
    );
}
