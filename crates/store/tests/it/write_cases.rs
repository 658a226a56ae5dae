//! The contract of the write storage: idempotency keys, written records, bulk batches.

use std::sync::Arc;

use ironbridge_core::ids::{new_id, record_id};
use ironbridge_core::store::*;
use ironbridge_model::{Entity, Timestamp};

use crate::cases::{T0, conn, org, rec, write};

fn scope(credential: &str, connection: &str, key: &str) -> IdemScope {
    IdemScope {
        org_id: "org_x".into(),
        credential_id: credential.into(),
        connection_id: connection.into(),
        key: key.into(),
    }
}

fn request(hash: &str) -> IdemRequest {
    IdemRequest {
        method: "POST".into(),
        path: "/v1/purchase-orders".into(),
        request_hash: hash.into(),
    }
}

const DAY: i64 = 86_400;

async fn claim(
    store: &Arc<dyn Store>,
    scope: &IdemScope,
    hash: &str,
    owner: &str,
    now: Timestamp,
) -> IdemClaim {
    store
        .claim_idempotency(
            scope,
            &request(hash),
            owner,
            now,
            now.plus_secs(60),
            now.plus_secs(DAY),
        )
        .await
        .unwrap()
}

pub async fn idempotency_keys_replay_refuse_and_expire(store: Arc<dyn Store>) {
    let s = scope("key_1", "conn_1", "k-1");
    assert_eq!(
        claim(&store, &s, "h1", "o1", T0).await,
        IdemClaim::Claimed { reconcile: false }
    );
    // While the first holds it: the same request waits, another is refused.
    assert_eq!(claim(&store, &s, "h1", "o2", T0).await, IdemClaim::InFlight);
    assert_eq!(claim(&store, &s, "h2", "o2", T0).await, IdemClaim::Mismatch);
    // Keys are per credential and connection.
    for other in [
        scope("key_2", "conn_1", "k-1"),
        scope("key_1", "conn_2", "k-1"),
    ] {
        assert_eq!(
            claim(&store, &other, "h9", "o3", T0).await,
            IdemClaim::Claimed { reconcile: false }
        );
    }
    let hold = IdemHold {
        scope: s.clone(),
        owner: "o1".into(),
    };
    let answer = IdemAnswer {
        status: 201,
        body: r#"{"id":"po_1"}"#.into(),
    };
    // Only the holder answers.
    let stranger = IdemHold {
        scope: s.clone(),
        owner: "o2".into(),
    };
    assert!(!store.answer_idempotency(&stranger, &answer).await.unwrap());
    assert!(store.answer_idempotency(&hold, &answer).await.unwrap());
    assert_eq!(
        claim(&store, &s, "h1", "o4", T0.plus_secs(3600)).await,
        IdemClaim::Replay(answer.clone())
    );
    assert_eq!(
        claim(&store, &s, "h2", "o4", T0.plus_secs(3600)).await,
        IdemClaim::Mismatch,
        "another body under an answered key"
    );
    // After 24 hours the key is new again, and purged.
    assert_eq!(
        claim(&store, &s, "h2", "o5", T0.plus_secs(DAY + 1)).await,
        IdemClaim::Claimed { reconcile: false }
    );
    let t = scope("key_1", "conn_1", "k-2");
    claim(&store, &t, "h1", "o1", T0).await;
    store
        .answer_idempotency(
            &IdemHold {
                scope: t.clone(),
                owner: "o1".into(),
            },
            &answer,
        )
        .await
        .unwrap();
    assert!(
        store
            .purge_idempotency(T0.plus_secs(DAY + 10), 100)
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(
        claim(&store, &t, "h7", "o1", T0.plus_secs(DAY + 11)).await,
        IdemClaim::Claimed { reconcile: false },
        "purged"
    );
}

pub async fn idempotency_keys_left_in_flight_or_unknown_are_reconciled(store: Arc<dyn Store>) {
    let s = scope("key_1", "conn_1", "crash");
    claim(&store, &s, "h1", "o1", T0).await;
    // Its process died: past the lock, the next attempt takes it over, warned.
    assert_eq!(
        claim(&store, &s, "h1", "o2", T0.plus_secs(61)).await,
        IdemClaim::Claimed { reconcile: true }
    );
    // The dead holder can no longer answer.
    let dead = IdemHold {
        scope: s.clone(),
        owner: "o1".into(),
    };
    let answer = IdemAnswer {
        status: 201,
        body: "{}".into(),
    };
    assert!(!store.answer_idempotency(&dead, &answer).await.unwrap());
    // An unknown outcome keeps the key, and its next attempt reconciles.
    let live = IdemHold {
        scope: s.clone(),
        owner: "o2".into(),
    };
    store.release_idempotency(&live, true).await.unwrap();
    assert_eq!(
        claim(&store, &s, "h1", "o3", T0.plus_secs(62)).await,
        IdemClaim::Claimed { reconcile: true }
    );
    // A failure that surely did not reach the source frees the key, even for another body.
    let third = IdemHold {
        scope: s.clone(),
        owner: "o3".into(),
    };
    store.release_idempotency(&third, false).await.unwrap();
    assert_eq!(
        claim(&store, &s, "h2", "o4", T0.plus_secs(63)).await,
        IdemClaim::Claimed { reconcile: false }
    );
}

pub async fn concurrent_claims_of_one_key_admit_one(store: Arc<dyn Store>) {
    let s = scope("key_1", "conn_1", "race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            claim(&store, &s, "h1", &format!("o{i}"), T0).await
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        match t.await.unwrap() {
            IdemClaim::Claimed { .. } => claimed += 1,
            IdemClaim::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}

fn written(c: &ConnId, remote: &str, body: &str, now: Timestamp) -> WrittenRecord {
    WrittenRecord {
        entity: Entity::VENDOR,
        record: rec(c, remote, body),
        now,
        partial: false,
    }
}

pub async fn written_records_are_stored_with_their_answer_and_never_swept(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(&store, &c, vec![rec(&c, "1", "a")], T0).await;
    // A full pass is under way when the record is written.
    store
        .begin_window(&c, Entity::VENDOR, "run_2", None, Some(T0), None)
        .await
        .unwrap();
    let s = scope("key_1", &c.0, "w");
    claim(&store, &s, "h", "o1", T0).await;
    let hold = IdemHold {
        scope: s.clone(),
        owner: "o1".into(),
    };
    let answer = IdemAnswer {
        status: 201,
        body: r#"{"id":"vnd_2"}"#.into(),
    };
    store
        .store_written(
            &c,
            &written(&c, "2", "new", T0.plus_secs(1)),
            Some((&hold, &answer)),
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&store, &s, "h", "o2", T0.plus_secs(2)).await,
        IdemClaim::Replay(answer),
        "answered in the record's transaction"
    );
    let id = record_id(&c.0, Entity::VENDOR, "2");
    let stored = store
        .get_record(&c, Entity::VENDOR, &id, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data, r#"{"name":"new"}"#);
    assert_eq!(stored.created_at, T0.plus_secs(1));
    // The pass read before the record existed: its sweep keeps it.
    store
        .write_page(
            &c,
            &PageWrite {
                entity: Entity::VENDOR,
                records: vec![rec(&c, "1", "a")],
                checkpoint: None,
                now: T0.plus_secs(3),
                seen_run: Some("run_2".into()),
                deleted: Vec::new(),
                closed: Vec::new(),
                skipped: 0,
                bases: Vec::new(),
                points: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .sweep_unseen(&c, Entity::VENDOR, "run_2", T0.plus_secs(4))
            .await
            .unwrap(),
        0
    );
    // An update keeps `created_at`; the same content again changes nothing.
    store
        .store_written(&c, &written(&c, "2", "newer", T0.plus_secs(5)), None)
        .await
        .unwrap();
    store
        .store_written(&c, &written(&c, "2", "newer", T0.plus_secs(9)), None)
        .await
        .unwrap();
    let stored = store
        .get_record(&c, Entity::VENDOR, &id, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.created_at, T0.plus_secs(1));
    assert_eq!(stored.modified_at, T0.plus_secs(5));
    assert!(!stored.remote_was_deleted);
}

fn batch(o: &OrgId, c: &ConnId, id: &str, total: i64) -> Batch {
    Batch {
        id: id.into(),
        org_id: o.0.clone(),
        connection_id: c.0.clone(),
        status: batch_status::QUEUED.into(),
        batch_size: 2,
        delay_ms: 0,
        on_error: "continue".into(),
        total,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        cancel_requested: false,
        job_id: None,
        created_at: T0,
        updated_at: T0,
        finished_at: None,
    }
}

fn operations(id: &str, n: i64) -> Vec<BatchOperation> {
    (0..n)
        .map(|i| BatchOperation {
            batch_id: id.into(),
            idx: i,
            action: "create".into(),
            entity: "vendor".into(),
            target_id: None,
            body: format!(r#"{{"name":"v{i}"}}"#),
            status: operation_status::PENDING.into(),
            attempts: 0,
            record_id: None,
            result: None,
            updated_at: T0,
        })
        .collect()
}

fn job(o: &OrgId, c: &ConnId, batch_id: &str) -> NewJob {
    NewJob {
        id: new_id("job", T0.micros()),
        kind: "batch".into(),
        org_id: o.0.clone(),
        connection_id: Some(c.0.clone()),
        payload: format!(r#"{{"batch_id":"{batch_id}"}}"#),
        dedupe_key: None,
        run_at: T0,
        max_attempts: 3,
        created_at: T0,
    }
}

pub async fn batches_keep_operations_results_and_their_event(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let id = new_id("bat", T0.micros());
    store
        .create_batch(
            &batch(&o, &c, &id, 1200),
            &operations(&id, 1200),
            &job(&o, &c, &id),
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_job("batch", "w1", T0, T0.plus_secs(60))
            .await
            .unwrap()
            .is_some(),
        "its job is queued with it"
    );
    let next = store.next_batch_operations(&id, 2).await.unwrap();
    assert_eq!(next.iter().map(|o| o.idx).collect::<Vec<_>>(), vec![0, 1]);
    store
        .mark_operations_sending(&id, &[0, 1], T0.plus_secs(1))
        .await
        .unwrap();
    assert_eq!(
        store.get_batch(&o, &id).await.unwrap().status,
        batch_status::RUNNING
    );
    // A crash now: both are still next, `sending`, their outcome unknown.
    let again = store.next_batch_operations(&id, 2).await.unwrap();
    assert!(
        again
            .iter()
            .all(|o| o.status == operation_status::SENDING && o.attempts == 1)
    );
    let ends = vec![
        OperationEnd {
            idx: 0,
            status: operation_status::SUCCEEDED,
            written: Some(written(&c, "v0", "v0", T0.plus_secs(2))),
            result: r#"{"record":{}}"#.into(),
        },
        OperationEnd {
            idx: 1,
            status: operation_status::FAILED,
            written: None,
            result: r#"{"error":{"code":"VALIDATION_ERROR"}}"#.into(),
        },
    ];
    store
        .end_operations(&c, &id, &ends, T0.plus_secs(2))
        .await
        .unwrap();
    // Ending them twice (a worker that lost its lease) counts nothing twice.
    store
        .end_operations(&c, &id, &ends, T0.plus_secs(2))
        .await
        .unwrap();
    assert!(
        store
            .get_record(
                &c,
                Entity::VENDOR,
                &record_id(&c.0, Entity::VENDOR, "v0"),
                false
            )
            .await
            .unwrap()
            .is_some(),
        "the written record is stored with the result"
    );
    let b = store.get_batch(&o, &id).await.unwrap();
    assert_eq!((b.succeeded, b.failed), (1, 1));
    let failed = store
        .list_batch_operations(&o, &id, None, Some(operation_status::FAILED), 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].idx, 1);
    let page = store
        .list_batch_operations(&o, &id, Some(0), None, 3)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|o| o.idx).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Another organization sees nothing.
    let other = org(&store, 1).await;
    assert!(matches!(
        store.get_batch(&other, &id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .list_batch_operations(&other, &id, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.cancel_batch(&other, &id, T0).await,
        Err(StoreError::NotFound)
    ));
    // Cancel, then end: the rest are cancelled and the event says so.
    assert!(
        store
            .cancel_batch(&o, &id, T0.plus_secs(3))
            .await
            .unwrap()
            .cancel_requested
    );
    let done = store
        .finish_batch(
            &id,
            batch_status::CANCELLED,
            &new_id("evt", T0.micros()),
            T0.plus_secs(4),
        )
        .await
        .unwrap();
    assert_eq!(done.cancelled, 1198);
    assert_eq!(done.finished_at, Some(T0.plus_secs(4)));
    let events = store
        .list_events(&o, None, None, Some("batch.completed"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(data["status"], "cancelled");
    assert_eq!(data["succeeded"], 1);
    assert_eq!(data["cancelled"], 1198);
    let listed = store.list_batches(&o, &c, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        store
            .next_batch_operations(&id, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn partial_pages_are_refused_when_what_they_merged_changed(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    write(&store, &c, vec![rec(&c, "1", "a")], T0).await;
    let (one, two) = (
        record_id(&c.0, Entity::VENDOR, "1"),
        record_id(&c.0, Entity::VENDOR, "2"),
    );
    let stored = store
        .payloads(&c, Entity::VENDOR, &[one.clone(), two.clone()])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "only what exists");
    assert_eq!(
        (
            stored[0].id.as_str(),
            stored[0].raw.as_str(),
            stored[0].content_hash.as_str()
        ),
        (one.as_str(), r#"{"n":"a"}"#, "a")
    );
    let page = |records, bases, now| PageWrite {
        entity: Entity::VENDOR,
        records,
        checkpoint: Some(format!("after-{now}")),
        now,
        seen_run: None,
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases,
        points: Vec::new(),
    };
    // Merged with what is stored: written.
    let counts = store
        .write_page(
            &c,
            &page(
                vec![rec(&c, "1", "b"), rec(&c, "2", "x")],
                vec![(one.clone(), Some("a".into())), (two.clone(), None)],
                T0.plus_secs(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!((counts.added, counts.updated), (1, 1));
    // A write through the API stores record 3 after a page merged without it, and changes
    // record 1 after a page merged its earlier version: both pages are refused, whole.
    let three = record_id(&c.0, Entity::VENDOR, "3");
    store
        .store_written(
            &c,
            &WrittenRecord {
                entity: Entity::VENDOR,
                record: rec(&c, "3", "w"),
                now: T0.plus_secs(2),
                partial: true,
            },
            None,
        )
        .await
        .unwrap();
    for (records, bases) in [
        (vec![rec(&c, "3", "y")], vec![(three.clone(), None)]),
        (
            vec![rec(&c, "1", "c"), rec(&c, "3", "y")],
            vec![
                (one.clone(), Some("a".into())),
                (three.clone(), Some("w".into())),
            ],
        ),
    ] {
        let refused = store
            .write_page(&c, &page(records, bases, T0.plus_secs(3)))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
    }
    for (id, data) in [(&one, r#"{"name":"b"}"#), (&three, r#"{"name":"w"}"#)] {
        let r = store
            .get_record(&c, Entity::VENDOR, id, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data, data, "nothing of a refused page is kept");
    }
    let state = &store.sync_states(&c).await.unwrap()[0];
    assert_eq!(
        state.cursor.as_deref(),
        Some(format!("after-{}", T0.plus_secs(1)).as_str())
    );
}
