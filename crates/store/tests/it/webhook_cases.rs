//! The webhook part of the store contract: fan-out with the event, leased claims with
//! fencing, failure streaks that disable endpoints, replay, recovery (one delivery at a time,
//! in event order), retention.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_core::ids::new_id;
use ironbridge_core::store::*;
use ironbridge_core::webhooks::event_payload;
use ironbridge_model::Timestamp;

use crate::cases::{T0, conn, org};

fn endpoint(org: &OrgId, status: &str) -> WebhookEndpoint {
    WebhookEndpoint {
        id: new_id("whk", T0.micros()),
        org_id: org.0.clone(),
        url: "https://hooks.example.com/in".into(),
        description: None,
        event_types: None,
        connection_ids: None,
        status: status.into(),
        disabled_reason: (status == "disabled").then(|| "manual".into()),
        disabled_at: None,
        failing_since: None,
        secret: "v1.k.ciphertext".into(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: T0,
        updated_at: T0,
    }
}

async fn add(store: &Arc<dyn Store>, org: &OrgId, ep: WebhookEndpoint) -> String {
    store.create_webhook_endpoint(org, &ep).await.unwrap();
    ep.id
}

fn event(org: &OrgId, conn: Option<&ConnId>, event_type: &str, at: Timestamp) -> Event {
    Event {
        id: new_id("evt", at.micros()),
        org_id: org.0.clone(),
        connection_id: conn.map(|c| c.0.clone()),
        event_type: event_type.into(),
        data: r#"{"records_added":1}"#.into(),
        created_at: at,
    }
}

async fn deliveries(store: &Arc<dyn Store>, org: &OrgId, ep: &str) -> Vec<WebhookDelivery> {
    store
        .list_webhook_deliveries(
            org,
            ep,
            &DeliveryQuery {
                limit: 100,
                ..DeliveryQuery::default()
            },
        )
        .await
        .unwrap()
}

fn attempt_of(d: &WebhookDelivery, at: Timestamp) -> WebhookAttempt {
    WebhookAttempt {
        id: new_id("att", at.micros()),
        org_id: d.org_id.clone(),
        delivery_id: d.id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        message_id: d.message_id.clone(),
        event_type: d.event_type.clone(),
        attempt: d.attempts,
        outcome: "failed".into(),
        status_code: Some(500),
        error: Some("http_status".into()),
        latency_micros: 1_500,
        response_excerpt: Some("oops".into()),
        created_at: at,
    }
}

fn failed(
    d: &WebhookDelivery,
    at: Timestamp,
    next: DeliveryNext,
    since_before: Timestamp,
) -> AttemptResult {
    AttemptResult {
        attempt: attempt_of(d, at),
        next,
        health: EndpointHealth::Failing {
            disable_if_since_before: since_before,
        },
    }
}

async fn claim(store: &Arc<dyn Store>, owner: &str, now: Timestamp) -> Vec<WebhookDelivery> {
    store
        .claim_webhook_deliveries(owner, now, now.plus_secs(60), &[], 100)
        .await
        .unwrap()
}

pub async fn webhook_events_fan_out_to_matching_endpoints(store: Arc<dyn Store>) {
    let o = org(&store, 5).await;
    let other = org(&store, 5).await;
    let c1 = conn(&store, &o).await;
    let c2 = conn(&store, &o).await;
    let all = add(&store, &o, endpoint(&o, "enabled")).await;
    let only_completed = add(
        &store,
        &o,
        WebhookEndpoint {
            event_types: Some(vec!["sync.completed".into()]),
            ..endpoint(&o, "enabled")
        },
    )
    .await;
    let only_c2 = add(
        &store,
        &o,
        WebhookEndpoint {
            connection_ids: Some(vec![c2.0.clone()]),
            ..endpoint(&o, "enabled")
        },
    )
    .await;
    let disabled = add(&store, &o, endpoint(&o, "disabled")).await;
    let foreign = add(&store, &other, endpoint(&other, "enabled")).await;

    let failed_c1 = event(&o, Some(&c1), "sync.failed", T0);
    store.insert_event(&failed_c1).await.unwrap();
    let completed_c2 = event(&o, Some(&c2), "sync.completed", T0.plus_secs(1));
    store
        .set_connection_status(&c2, "online", T0.plus_secs(1), Some(&completed_c2))
        .await
        .unwrap();
    let org_wide = event(&o, None, "webhook_endpoint.disabled", T0.plus_secs(2));
    store.insert_event(&org_wide).await.unwrap();

    let ids = |ds: Vec<WebhookDelivery>| -> Vec<String> {
        ds.into_iter().map(|d| d.message_id).collect()
    };
    assert_eq!(
        ids(deliveries(&store, &o, &all).await),
        [
            org_wide.id.clone(),
            completed_c2.id.clone(),
            failed_c1.id.clone()
        ],
        "newest first"
    );
    assert_eq!(
        ids(deliveries(&store, &o, &only_completed).await),
        std::slice::from_ref(&completed_c2.id)
    );
    assert_eq!(
        ids(deliveries(&store, &o, &only_c2).await),
        std::slice::from_ref(&completed_c2.id)
    );
    assert!(deliveries(&store, &other, &foreign).await.is_empty());
    let to_disabled = deliveries(&store, &o, &disabled).await;
    assert_eq!(to_disabled.len(), 3);
    assert!(
        to_disabled.iter().all(|d| d.status == "failed"
            && d.last_error.as_deref() == Some("endpoint disabled")
            && d.next_attempt_at.is_none()),
        "logged as failed, to recover after enabling"
    );
    let first = deliveries(&store, &o, &all).await.pop().unwrap();
    assert_eq!(first.payload, event_payload(&failed_c1));
    assert_eq!(
        (first.status.as_str(), first.attempts, first.next_attempt_at),
        ("pending", 0, Some(T0))
    );
    assert_eq!(first.connection_id.as_deref(), Some(c1.0.as_str()));
}

pub async fn webhook_deliveries_are_claimed_once_and_fenced(store: Arc<dyn Store>) {
    let o = org(&store, 5).await;
    let a = add(&store, &o, endpoint(&o, "enabled")).await;
    let b = add(&store, &o, endpoint(&o, "enabled")).await;
    for i in 0..40 {
        store
            .insert_event(&event(&o, None, "system.error", T0.plus_secs(i)))
            .await
            .unwrap();
    }
    let now = T0.plus_secs(100);
    // Four dispatchers claim at once: 80 deliveries, each leased exactly once.
    let mut claims = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store
                .claim_webhook_deliveries(&format!("w{w}"), now, now.plus_secs(60), &[], 30)
                .await
                .unwrap()
        }));
    }
    let mut seen = HashSet::new();
    for c in claims {
        for d in c.await.unwrap() {
            assert_eq!(
                (d.attempts, d.next_attempt_at),
                (1, Some(now.plus_secs(60)))
            );
            assert!(seen.insert(d.id.clone()), "claimed twice: {}", d.id);
        }
    }
    assert_eq!(seen.len(), 80);
    assert!(
        claim(&store, "late", now.plus_secs(59)).await.is_empty(),
        "leased"
    );

    // After the lease, another dispatcher takes them over; the first one's results no longer
    // move the delivery, but its attempt is still logged.
    let taken = store
        .claim_webhook_deliveries(
            "w9",
            now.plus_secs(61),
            now.plus_secs(120),
            std::slice::from_ref(&b),
            100,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 40, "the skip list keeps the other endpoint's");
    assert!(taken.iter().all(|d| d.endpoint_id == a && d.attempts == 2));
    let d = &taken[0];
    let stale = WebhookDelivery {
        attempts: 1,
        lease_owner: Some("w0".into()),
        ..d.clone()
    };
    let at = now.plus_secs(62);
    let result = failed(&stale, at, DeliveryNext::Failed, T0);
    assert!(
        !store
            .finish_webhook_attempt(&stale, "w0", &result)
            .await
            .unwrap()
    );
    let retry_at = at.plus_secs(5);
    assert!(
        store
            .finish_webhook_attempt(d, "w9", &failed(d, at, DeliveryNext::Retry(retry_at), T0))
            .await
            .unwrap()
    );
    let after = store.get_webhook_delivery(&o, &d.id).await.unwrap();
    assert_eq!(
        (
            after.status.as_str(),
            after.next_attempt_at,
            after.retry_step,
            after.last_status_code,
            after.lease_owner
        ),
        ("pending", Some(retry_at), 1, Some(500), None)
    );
    let log = store
        .list_webhook_attempts(&o, None, Some(&d.id), None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "both attempts are in the log");
    assert_eq!(log[0].response_excerpt.as_deref(), Some("oops"));

    // Released deliveries are due again at once, with the attempt given back.
    let e = &taken[1];
    store.release_webhook_delivery(e, "w9", at).await.unwrap();
    let back = store
        .claim_webhook_deliveries("w10", at, at.plus_secs(60), std::slice::from_ref(&b), 100)
        .await
        .unwrap();
    assert!(back.iter().any(|x| x.id == e.id && x.attempts == 2));
}

pub async fn webhook_failure_streaks_disable_endpoints(store: Arc<dyn Store>) {
    let o = org(&store, 5).await;
    let ep = add(&store, &o, endpoint(&o, "enabled")).await;
    let other = add(&store, &o, endpoint(&o, "enabled")).await;
    for i in 0..3 {
        store
            .insert_event(&event(&o, None, "system.error", T0.plus_secs(i)))
            .await
            .unwrap();
    }
    let day = 86_400;
    let claimed = claim(&store, "w", T0.plus_secs(10)).await;
    let mine: Vec<_> = claimed.iter().filter(|d| d.endpoint_id == ep).collect();
    // First failure at day 1 starts the streak; the threshold (5 days before) is not reached.
    let at = T0.plus_secs(day);
    store
        .finish_webhook_attempt(
            mine[0],
            "w",
            &failed(mine[0], at, DeliveryNext::Failed, at.plus_secs(-5 * day)),
        )
        .await
        .unwrap();
    let e = store.get_webhook_endpoint(&o, &ep).await.unwrap();
    assert_eq!((e.status.as_str(), e.failing_since), ("enabled", Some(at)));
    // Six days later the streak is older than the threshold: disabled, with its event, and
    // its pending deliveries failed.
    let later = T0.plus_secs(7 * day);
    store
        .finish_webhook_attempt(
            mine[1],
            "w",
            &failed(
                mine[1],
                later,
                DeliveryNext::Retry(later.plus_secs(5)),
                later.plus_secs(-5 * day),
            ),
        )
        .await
        .unwrap();
    let e = store.get_webhook_endpoint(&o, &ep).await.unwrap();
    assert_eq!(
        (
            e.status.as_str(),
            e.disabled_reason.as_deref(),
            e.disabled_at
        ),
        ("disabled", Some("failing"), Some(later))
    );
    let states: Vec<String> = deliveries(&store, &o, &ep)
        .await
        .into_iter()
        .map(|d| d.status)
        .collect();
    assert!(!states.contains(&"pending".to_string()), "{states:?}");
    let events = store
        .list_events(&o, None, None, Some("webhook_endpoint.disabled"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].data.contains(&ep) && events[0].data.contains("failing"));
    // The other endpoint hears about it.
    assert!(
        deliveries(&store, &o, &other)
            .await
            .iter()
            .any(|d| d.message_id == events[0].id)
    );

    // A success ends the streak; 410 disables at once.
    let theirs: Vec<_> = claimed.iter().filter(|d| d.endpoint_id == other).collect();
    store
        .finish_webhook_attempt(
            theirs[0],
            "w",
            &failed(
                theirs[0],
                at,
                DeliveryNext::Retry(at),
                at.plus_secs(-5 * day),
            ),
        )
        .await
        .unwrap();
    assert!(
        store
            .get_webhook_endpoint(&o, &other)
            .await
            .unwrap()
            .failing_since
            .is_some()
    );
    let ok = AttemptResult {
        attempt: attempt_of(theirs[1], at),
        next: DeliveryNext::Succeeded,
        health: EndpointHealth::Healthy,
    };
    store
        .finish_webhook_attempt(theirs[1], "w", &ok)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_webhook_endpoint(&o, &other)
            .await
            .unwrap()
            .failing_since,
        None
    );
    let delivered = store.get_webhook_delivery(&o, &theirs[1].id).await.unwrap();
    assert_eq!(
        (delivered.status.as_str(), delivered.delivered_at),
        ("succeeded", Some(at))
    );
    let gone = AttemptResult {
        attempt: attempt_of(theirs[2], at),
        next: DeliveryNext::Failed,
        health: EndpointHealth::Gone,
    };
    store
        .finish_webhook_attempt(theirs[2], "w", &gone)
        .await
        .unwrap();
    let e = store.get_webhook_endpoint(&o, &other).await.unwrap();
    assert_eq!(
        (e.status.as_str(), e.disabled_reason.as_deref()),
        ("disabled", Some("gone"))
    );
}

pub async fn webhook_replay_recover_purge_and_delete(store: Arc<dyn Store>) {
    let o = org(&store, 5).await;
    let intruder = org(&store, 5).await;
    let ep = add(&store, &o, endpoint(&o, "enabled")).await;
    for i in 0..5 {
        store
            .insert_event(&event(&o, None, "system.error", T0.plus_secs(i)))
            .await
            .unwrap();
    }
    let now = T0.plus_secs(10);
    let claimed = claim(&store, "w", now).await;
    assert_eq!(claimed.len(), 5);
    for d in &claimed {
        store
            .finish_webhook_attempt(
                d,
                "w",
                &failed(d, now, DeliveryNext::Failed, T0.plus_secs(-1)),
            )
            .await
            .unwrap();
    }
    // Replay: only finished deliveries, only the owner's.
    let first = &claimed[0];
    assert!(matches!(
        store
            .replay_webhook_delivery(&intruder, &first.id, now)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_webhook_endpoint(&intruder, &ep).await,
        Err(StoreError::NotFound)
    ));
    let replayed = store
        .replay_webhook_delivery(&o, &first.id, now)
        .await
        .unwrap();
    assert_eq!(
        (
            replayed.status.as_str(),
            replayed.retry_step,
            replayed.next_attempt_at
        ),
        ("pending", 0, Some(now))
    );
    assert!(matches!(
        store.replay_webhook_delivery(&o, &first.id, now).await,
        Err(StoreError::Conflict(_))
    ));

    // Recover [T0+1, T0+4): three failed deliveries, due in event order.
    let n = store
        .recover_webhook_deliveries(&o, &ep, T0.plus_secs(1), T0.plus_secs(4), now)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        store
            .recover_webhook_deliveries(&intruder, &ep, T0, now, now)
            .await
            .unwrap(),
        0
    );
    let again = claim(&store, "w2", now).await;
    let order: Vec<&str> = again.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        order,
        [claimed[0].id.as_str(), claimed[1].id.as_str()],
        "due at once: the replayed one, and the recovery's first in event order (the rest wait for it)"
    );

    // Retention deletes finished deliveries (and their attempts) only.
    let purged = store.purge_webhook_history(T0.plus_secs(5)).await.unwrap();
    assert_eq!(
        purged, 1,
        "the one failed delivery neither replayed nor recovered"
    );
    assert_eq!(deliveries(&store, &o, &ep).await.len(), 4);
    assert!(
        store
            .list_webhook_attempts(&o, Some(&ep), None, None, 100)
            .await
            .unwrap()
            .iter()
            .all(|a| a.delivery_id != claimed[4].id)
    );

    // Deleting the endpoint takes its log with it; another tenant cannot.
    assert!(matches!(
        store.delete_webhook_endpoint(&intruder, &ep).await,
        Err(StoreError::NotFound)
    ));
    store.delete_webhook_endpoint(&o, &ep).await.unwrap();
    assert!(matches!(
        store.get_webhook_delivery(&o, &claimed[0].id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .list_webhook_attempts(&o, Some(&ep), None, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

fn succeeded(d: &WebhookDelivery, at: Timestamp) -> AttemptResult {
    AttemptResult {
        attempt: WebhookAttempt {
            outcome: "succeeded".into(),
            status_code: Some(204),
            error: None,
            ..attempt_of(d, at)
        },
        next: DeliveryNext::Succeeded,
        health: EndpointHealth::Healthy,
    }
}

/// (endpoint, message) of each claimed delivery, oldest event first.
fn claimed_pairs(ds: &[WebhookDelivery]) -> Vec<(String, String)> {
    ds.iter()
        .map(|d| (d.endpoint_id.clone(), d.message_id.clone()))
        .collect()
}

pub async fn webhook_recoveries_are_claimed_one_at_a_time_in_event_order(store: Arc<dyn Store>) {
    let o = org(&store, 5).await;
    // Both endpoints are disabled while six events happen, so each logs them as failed.
    let a_def = endpoint(&o, "disabled");
    let b_def = endpoint(&o, "disabled");
    let a = add(&store, &o, a_def.clone()).await;
    let b = add(&store, &o, b_def.clone()).await;
    let mut m = Vec::new();
    for i in 0..6 {
        let e = event(&o, None, "system.error", T0.plus_secs(i));
        store.insert_event(&e).await.unwrap();
        m.push(e.id);
    }
    let now = T0.plus_secs(10);
    for def in [&a_def, &b_def] {
        let enabled = WebhookEndpoint {
            status: "enabled".into(),
            disabled_reason: None,
            updated_at: now,
            ..def.clone()
        };
        store.update_webhook_endpoint(&o, &enabled).await.unwrap();
    }
    let pair = |ep: &str, i: usize| (ep.to_string(), m[i].clone());
    let only_a = |now: Timestamp, owner: &'static str| {
        let store = store.clone();
        let b = b.clone();
        async move {
            store
                .claim_webhook_deliveries(owner, now, now.plus_secs(60), &[b], 100)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        store
            .recover_webhook_deliveries(&o, &a, T0, T0.plus_secs(3), now)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .recover_webhook_deliveries(&o, &b, T0, now, now)
            .await
            .unwrap(),
        6
    );
    // All are due, but each endpoint's replay yields only its first event; whoever claims
    // next gets nothing of it while that one is in flight.
    let first = claim(&store, "w1", now).await;
    assert_eq!(claimed_pairs(&first), [pair(&a, 0), pair(&b, 0)]);
    assert!(claim(&store, "w2", now).await.is_empty(), "one at a time");

    // Live traffic is not held behind a replay.
    let live = event(&o, None, "system.error", now);
    store.insert_event(&live).await.unwrap();
    let live_claimed = claim(&store, "w2", now).await;
    assert_eq!(live_claimed.len(), 2);
    assert!(live_claimed.iter().all(|d| d.message_id == live.id));
    for d in &live_claimed {
        store
            .finish_webhook_attempt(d, "w2", &succeeded(d, now))
            .await
            .unwrap();
    }

    // A second recovery while the first is under way queues behind it.
    assert_eq!(
        store
            .recover_webhook_deliveries(&o, &a, T0.plus_secs(3), now, now)
            .await
            .unwrap(),
        3
    );
    assert!(only_a(now, "w2").await.is_empty());

    // The next goes once the previous one's attempt has ended, however it ended:
    // delivered...
    let a0 = &first[0];
    store
        .finish_webhook_attempt(a0, "w1", &succeeded(a0, now))
        .await
        .unwrap();
    let a1 = only_a(now, "w2").await;
    assert_eq!(claimed_pairs(&a1), [pair(&a, 1)]);
    // ...rescheduled (it leaves the replay and is retried on its schedule)...
    let retry_at = now.plus_secs(5);
    store
        .finish_webhook_attempt(
            &a1[0],
            "w2",
            &failed(&a1[0], now, DeliveryNext::Retry(retry_at), T0),
        )
        .await
        .unwrap();
    let a2 = only_a(now, "w1").await;
    assert_eq!(claimed_pairs(&a2), [pair(&a, 2)]);
    // ...or failed for good; then the second recovery's first.
    store
        .finish_webhook_attempt(&a2[0], "w1", &failed(&a2[0], now, DeliveryNext::Failed, T0))
        .await
        .unwrap();
    let a3 = only_a(now, "w1").await;
    assert_eq!(claimed_pairs(&a3), [pair(&a, 3)]);

    // Its dispatcher dies: when the lease ends it comes back before the next one; the
    // rescheduled one is due by then too, as ordinary traffic.
    let later = now.plus_secs(61);
    let back = only_a(later, "w3").await;
    assert_eq!(claimed_pairs(&back), [pair(&a, 1), pair(&a, 3)]);
    assert!(back.iter().all(|d| d.attempts == 2));

    // Replaying one delivery is not part of the sequence: it goes at once.
    let replayed = store
        .replay_webhook_delivery(&o, &a0.id, later)
        .await
        .unwrap();
    assert_eq!(claimed_pairs(&only_a(later, "w3").await), [pair(&a, 0)]);
    assert_eq!(replayed.message_id, m[0]);

    // Disabling the endpoint ends the replay; recovering after enabling starts afresh, in
    // event order.
    let disabled = WebhookEndpoint {
        status: "disabled".into(),
        disabled_reason: Some("manual".into()),
        updated_at: later,
        ..a_def.clone()
    };
    store.update_webhook_endpoint(&o, &disabled).await.unwrap();
    let enabled = WebhookEndpoint {
        status: "enabled".into(),
        disabled_reason: None,
        updated_at: later,
        ..a_def.clone()
    };
    store.update_webhook_endpoint(&o, &enabled).await.unwrap();
    assert_eq!(
        store
            .recover_webhook_deliveries(&o, &a, T0, later, later)
            .await
            .unwrap(),
        6,
        "the disabling failed every pending one; the live event's was delivered"
    );
    assert_eq!(claimed_pairs(&only_a(later, "w4").await), [pair(&a, 0)]);
}
