//! The contract of flow storage: documents and versions per organization, runs created with
//! the trigger's position moved once, items ended once with their effects, event triggers
//! started in the event's transaction, and runs' jobs fenced like every job.

use std::sync::Arc;

use ironbridge_core::flows::{FLOW_JOB, new_run};
use ironbridge_core::ids::new_id;
use ironbridge_core::store::*;
use ironbridge_model::Timestamp;
use serde_json::json;

use crate::cases::{T0, conn, org, rec, write};

fn flow(org: &OrgId, key: &str, trigger: serde_json::Value, conn: Option<&ConnId>) -> Flow {
    let kind = trigger["type"].as_str().unwrap().to_string();
    Flow {
        id: new_id("flw", T0.micros()),
        org_id: org.0.clone(),
        key: key.into(),
        version: 1,
        document: json!({"key": key, "name": key, "trigger": trigger, "steps": [{"type": "filter", "id": "f", "condition": "true"}]}).to_string(),
        enabled: true,
        trigger_type: kind,
        trigger_connection_id: conn.map(|c| c.0.clone()),
        feed: None,
        next_run_at: None,
        active_run_id: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn end(idx: i64, status: &'static str) -> ItemEnd {
    let done = status == item_status::SUCCEEDED;
    ItemEnd {
        idx,
        status,
        output: done.then(|| "[1]".into()),
        yielded: i64::from(done),
        error: None,
        not_before: None,
        written: None,
        event: None,
    }
}

fn event(org: &OrgId, conn: &ConnId, kind: &str, at: Timestamp) -> Event {
    Event {
        id: new_id("evt", at.micros()),
        org_id: org.0.clone(),
        connection_id: Some(conn.0.clone()),
        event_type: kind.into(),
        data: json!({"n": 1}).to_string(),
        created_at: at,
    }
}

pub async fn flows_are_versioned_per_organization(store: Arc<dyn Store>) {
    let a = org(&store, 1).await;
    let b = org(&store, 1).await;
    let f = flow(&a, "orders", json!({"type": "manual"}), None);
    store.create_flow(&f, false).await.unwrap();
    // One key per organization; the same key in another is another flow.
    let again = flow(&a, "orders", json!({"type": "manual"}), None);
    assert!(matches!(
        store.create_flow(&again, false).await,
        Err(StoreError::Conflict(Conflict::Duplicate { .. }))
    ));
    store
        .create_flow(&flow(&b, "orders", json!({"type": "manual"}), None), false)
        .await
        .unwrap();
    assert_eq!(store.get_flow(&a, "orders").await.unwrap().id, f.id);
    assert_eq!(store.get_flow(&a, &f.id).await.unwrap().key, "orders");
    assert!(matches!(
        store.get_flow(&b, &f.id).await,
        Err(StoreError::NotFound)
    ));
    // A new version only over the version read.
    let v2 = Flow {
        version: 2,
        document: f
            .document
            .replace("\"name\":\"orders\"", "\"name\":\"two\""),
        updated_at: T0.plus_secs(1),
        ..f.clone()
    };
    store.update_flow(&v2, None).await.unwrap();
    assert!(matches!(
        store.update_flow(&v2, None).await,
        Err(StoreError::Conflict(_))
    ));
    let other = Flow {
        org_id: b.0.clone(),
        version: 3,
        ..v2.clone()
    };
    assert!(
        store.update_flow(&other, None).await.is_err(),
        "another organization's flow"
    );
    let versions = store.list_flow_versions(&a, &f.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(
        store
            .list_flow_versions(&b, &f.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_flow_version(&a, &f.id, 1).await.unwrap().document,
        f.document
    );
    assert_eq!(store.list_flows(&a).await.unwrap().len(), 1);
    // Runs and items go with the flow.
    let (run, job) = new_run(&a.0, &f.id, 2, "manual", 2, T0);
    assert!(
        store
            .create_flow_run(&run, &["{}".into(), "{}".into()], &job, &RunStart::Manual)
            .await
            .unwrap()
    );
    assert!(matches!(
        store.get_flow_run(&b, &run.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.flow_run_counts(&b, &run.id).await.unwrap().is_empty());
    assert!(
        store
            .list_flow_items(&b, &run.id, None, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.delete_flow(&b, &f.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_flow(&a, &f.id).await.unwrap();
    assert!(matches!(
        store.get_flow_run(&a, &run.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_flow(&a, "orders").await,
        Err(StoreError::NotFound)
    ));
}

pub async fn flow_runs_move_their_trigger_once_and_end_items_once(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    // Records before the flow exists: a flow from the end of the feed is not due for them.
    write(&store, &c, vec![rec(&c, "V1", "a"), rec(&c, "V2", "b")], T0).await;
    let f = flow(
        &o,
        "feed",
        json!({"type": "record_changes", "connection_id": c.0, "entity": "vendor"}),
        Some(&c),
    );
    store.create_flow(&f, true).await.unwrap();
    assert!(store.flow_feeds_due(10).await.unwrap().is_empty());
    write(&store, &c, vec![rec(&c, "V3", "c")], T0.plus_secs(1)).await;
    let due = store.flow_feeds_due(10).await.unwrap();
    assert_eq!(due.len(), 1);
    let from = due[0].feed.clone();
    let to = ChangePosition {
        seq: due[0].last_seq + 1,
        entity: String::new(),
        id: String::new(),
    };
    let (run, job) = new_run(&o.0, &f.id, 1, "record_changes", 3, T0);
    let items: Vec<String> = (0..3).map(|i| json!({"i": i}).to_string()).collect();
    let start = RunStart::Feed {
        from: from.clone(),
        to: to.clone(),
    };
    assert!(
        store
            .create_flow_run(&run, &items, &job, &start)
            .await
            .unwrap()
    );
    // The same position read twice starts one run; the flow waits for it.
    let (twin, twin_job) = new_run(&o.0, &f.id, 1, "record_changes", 3, T0);
    assert!(
        !store
            .create_flow_run(&twin, &items, &twin_job, &start)
            .await
            .unwrap()
    );
    assert!(store.flow_feeds_due(10).await.unwrap().is_empty());
    assert_eq!(
        store.get_flow(&o, &f.id).await.unwrap().active_run_id,
        Some(run.id.clone())
    );
    let claimed = store
        .claim_job(FLOW_JOB, "w1", T0, T0.plus_secs(60))
        .await
        .unwrap()
        .expect("the run's job is queued with it");
    assert!(claimed.payload.contains(&run.id));

    // Items: sent, then ended once; a second end (a takeover's) changes nothing.
    let next = store.next_flow_items(&run.id, 0, T0, 2).await.unwrap();
    assert_eq!(next.iter().map(|i| i.idx).collect::<Vec<_>>(), vec![0, 1]);
    store
        .mark_flow_items_sending(&run.id, 0, &[0, 1], T0)
        .await
        .unwrap();
    let sending = store.next_flow_items(&run.id, 0, T0, 2).await.unwrap();
    assert!(
        sending
            .iter()
            .all(|i| i.status == item_status::SENDING && i.attempts == 1)
    );
    let mut with_event = end(0, item_status::SUCCEEDED);
    with_event.event = Some(event(&o, &c, "flow.event", T0));
    let retry = ItemEnd {
        not_before: Some(T0.plus_secs(5)),
        error: Some("{}".into()),
        output: None,
        yielded: 0,
        ..end(1, item_status::PENDING)
    };
    store
        .end_flow_items(&run.id, 0, &[with_event.clone(), retry], T0)
        .await
        .unwrap();
    store
        .end_flow_items(&run.id, 0, &[with_event], T0)
        .await
        .unwrap();
    let events = store
        .list_events(&o, None, None, Some("flow.event"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the item's event is recorded once");
    // The retry waits for its time; the third item is next.
    let next = store.next_flow_items(&run.id, 0, T0, 10).await.unwrap();
    assert_eq!(next.iter().map(|i| i.idx).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        store.next_flow_retry(&run.id, 0).await.unwrap(),
        Some(T0.plus_secs(5))
    );
    let later = store
        .next_flow_items(&run.id, 0, T0.plus_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(later.iter().map(|i| i.idx).collect::<Vec<_>>(), vec![1, 2]);
    store
        .end_flow_items(
            &run.id,
            0,
            &[end(1, item_status::FAILED), end(2, item_status::SUCCEEDED)],
            T0,
        )
        .await
        .unwrap();
    let counts = store.flow_run_counts(&o, &run.id).await.unwrap();
    let of = |status: &str| {
        counts
            .iter()
            .find(|c| c.status == status)
            .map(|c| (c.items, c.yielded))
    };
    assert_eq!(of(item_status::SUCCEEDED), Some((2, 2)));
    assert_eq!(of(item_status::FAILED), Some((1, 0)));
    let outputs = store.flow_step_outputs(&run.id, 0, -1, 10).await.unwrap();
    assert_eq!(
        outputs.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 2]
    );

    // The next step begins once, whoever asks.
    store
        .begin_flow_step(&run.id, 1, &["{\"a\":1}".into(), "{\"a\":2}".into()], T0)
        .await
        .unwrap();
    store
        .begin_flow_step(&run.id, 1, &["{\"a\":9}".into()], T0)
        .await
        .unwrap();
    let step1 = store
        .list_flow_items(&o, &run.id, Some(1), None, None, 10)
        .await
        .unwrap();
    assert_eq!(step1.len(), 2);
    assert_eq!(store.get_flow_run(&o, &run.id).await.unwrap().step, 1);
    // Paged by (step, index).
    let page = store
        .list_flow_items(&o, &run.id, None, None, Some((0, 2)), 10)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|i| (i.step, i.idx)).collect::<Vec<_>>(),
        vec![(1, 0), (1, 1)]
    );

    // Finished: the open items are cancelled, the flow waits no more, one event.
    let done = store
        .finish_flow_run(
            &run.id,
            run_status::FAILED,
            Some("{}"),
            &event(&o, &c, "flow.run_failed", T0),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(done.status, run_status::FAILED);
    let again = store
        .finish_flow_run(
            &run.id,
            run_status::SUCCEEDED,
            None,
            &event(&o, &c, "flow.run_failed", T0),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(again.status, run_status::FAILED, "a run ends once");
    assert_eq!(
        store
            .list_events(&o, None, None, Some("flow.run_failed"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let cancelled = store
        .list_flow_items(&o, &run.id, Some(1), Some(item_status::CANCELLED), None, 10)
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 2);
    assert_eq!(store.get_flow(&o, &f.id).await.unwrap().active_run_id, None);
    // Nothing past the position: not due; a position moved without a run moves once.
    assert!(store.flow_feeds_due(10).await.unwrap().is_empty());
    write(&store, &c, vec![rec(&c, "V4", "d")], T0.plus_secs(2)).await;
    let due = store.flow_feeds_due(10).await.unwrap();
    assert_eq!(due[0].feed, Some(to.clone()));
    let past = ChangePosition {
        seq: due[0].last_seq + 1,
        ..to.clone()
    };
    assert!(
        store
            .advance_flow_feed(&f.id, Some(&to), &past)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_flow_feed(&f.id, Some(&to), &past)
            .await
            .unwrap()
    );
    assert!(store.flow_feeds_due(10).await.unwrap().is_empty());
}

pub async fn event_and_schedule_triggers_start_one_run_each(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let other = org(&store, 1).await;
    let c = conn(&store, &o).await;
    let on_sync = flow(
        &o,
        "on-sync",
        json!({"type": "event", "event_types": ["sync.completed"]}),
        None,
    );
    store.create_flow(&on_sync, false).await.unwrap();
    let mut off = flow(
        &o,
        "off",
        json!({"type": "event", "event_types": ["sync.completed"]}),
        None,
    );
    off.enabled = false;
    store.create_flow(&off, false).await.unwrap();
    // Another type, another organization's event, a flow's own event: no run.
    store
        .insert_event(&event(&o, &c, "sync.failed", T0))
        .await
        .unwrap();
    let foreign = conn(&store, &other).await;
    store
        .insert_event(&event(&other, &foreign, "sync.completed", T0))
        .await
        .unwrap();
    store
        .insert_event(&event(&o, &c, "sync.completed", T0))
        .await
        .unwrap();
    let runs = store
        .list_flow_runs(&o, &on_sync.id, None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, "event");
    let item = store
        .list_flow_items(&o, &runs[0].id, Some(0), None, None, 10)
        .await
        .unwrap();
    let item: serde_json::Value = serde_json::from_str(&item[0].input).unwrap();
    assert_eq!(item["type"], "sync.completed");
    assert_eq!(item["connection_id"], c.0.as_str());
    assert!(
        store
            .list_flow_runs(&o, &off.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A schedule due once: the first to move it starts the run.
    let mut hourly = flow(
        &o,
        "hourly",
        json!({"type": "schedule", "cron": "0 * * * *"}),
        None,
    );
    hourly.next_run_at = Some(T0);
    store.create_flow(&hourly, false).await.unwrap();
    assert!(
        store
            .flows_scheduled_due(T0.plus_secs(-1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.flows_scheduled_due(T0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let start = RunStart::Schedule {
        due: T0,
        next: Some(T0.plus_secs(3600)),
    };
    let (run, job) = new_run(&o.0, &hourly.id, 1, "schedule", 1, T0);
    assert!(
        store
            .create_flow_run(&run, &["{}".into()], &job, &start)
            .await
            .unwrap()
    );
    let (twin, twin_job) = new_run(&o.0, &hourly.id, 1, "schedule", 1, T0);
    assert!(
        !store
            .create_flow_run(&twin, &["{}".into()], &twin_job, &start)
            .await
            .unwrap()
    );
    assert!(
        store
            .flows_scheduled_due(T0.plus_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
