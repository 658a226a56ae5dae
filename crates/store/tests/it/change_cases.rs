//! The change feed's contract: every record change gets a number from its connection's
//! counter in the transaction that stores it, so a walk of the feed in `(seq, entity, id)`
//! order misses no change and repeats none, whatever writes commit meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ironbridge_core::ids::record_id;
use ironbridge_core::store::*;
use ironbridge_model::Entity;

use crate::cases::{T0, conn, org, rec, write};

/// A reader of the feed: its position and what it has read, as (id → (seq, data, deleted)).
#[derive(Default)]
pub(crate) struct Walker {
    pub at: ChangePosition,
    pub seen: BTreeMap<String, (i64, String, bool)>,
    /// Every (id, seq) read, to catch a repeat.
    pub read: HashSet<(String, i64)>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
}

impl Walker {
    /// Reads one page of at most `size` changes; how many it read.
    pub async fn step(&mut self, store: &dyn Store, c: &ConnId, size: u32) -> usize {
        let page = store
            .list_changes(
                c,
                &ChangeQuery {
                    entity: None,
                    after: self.at.clone(),
                    include_raw: false,
                    limit: size,
                },
            )
            .await
            .unwrap();
        // Whether a change is a creation is judged from where the page started.
        let start = self.at.clone();
        for ch in &page {
            let p = ch.position();
            assert!(
                p > self.at,
                "the feed moves forward: {p:?} after {:?}",
                self.at
            );
            assert!(
                self.read.insert((ch.record.id.clone(), ch.seq)),
                "change {p:?} read twice"
            );
            if !ch.record.remote_was_deleted {
                let before = self.seen.contains_key(&ch.record.id);
                if ch.created_after(&start) {
                    assert!(!before, "a record read before is not created again");
                    self.created.push(ch.record.id.clone());
                } else {
                    self.updated.push(ch.record.id.clone());
                }
            }
            self.seen.insert(
                ch.record.id.clone(),
                (ch.seq, ch.record.data.clone(), ch.record.remote_was_deleted),
            );
            self.at = p;
        }
        page.len()
    }

    /// Reads to the end of the feed.
    pub async fn walk_to_end(&mut self, store: &dyn Store, c: &ConnId) {
        while self.step(store, c, 3).await > 0 {}
    }
}

/// Every stored record of the connection's vendors, as the feed should leave a reader.
async fn stored(store: &dyn Store, c: &ConnId) -> BTreeMap<String, (String, bool)> {
    let q = RecordQuery {
        entity: Entity::VENDOR,
        after_id: None,
        after_modified: None,
        modified_after: None,
        modified_before: None,
        include_deleted: true,
        include_raw: false,
        limit: 10_000,
    };
    store
        .list_records(c, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, (r.data, r.remote_was_deleted)))
        .collect()
}

fn view(w: &Walker) -> BTreeMap<String, (String, bool)> {
    w.seen
        .iter()
        .map(|(id, (_, data, deleted))| (id.clone(), (data.clone(), *deleted)))
        .collect()
}

fn vid(c: &ConnId, remote: &str) -> String {
    record_id(&c.0, Entity::VENDOR, remote)
}

pub async fn the_change_feed_has_every_change_once_in_commit_order(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let c = conn(&store, &o).await;
    let other = conn(&store, &o).await;
    write(
        &store,
        &c,
        (0..6).map(|i| rec(&c, &i.to_string(), "a")).collect(),
        T0,
    )
    .await;
    write(&store, &other, vec![rec(&other, "x", "a")], T0).await;
    let mut w = Walker::default();
    assert_eq!(w.step(store.as_ref(), &c, 4).await, 4);
    // Unchanged records take no new number; a changed one moves to the end; a new one follows.
    write(
        &store,
        &c,
        vec![rec(&c, "0", "a"), rec(&c, "1", "b"), rec(&c, "6", "a")],
        T0.plus_secs(1),
    )
    .await;
    // The source's deletion log: a tombstone at the end.
    store
        .write_page(
            &c,
            &PageWrite {
                entity: Entity::VENDOR,
                records: Vec::new(),
                checkpoint: None,
                now: T0.plus_secs(2),
                seen_run: None,
                deleted: vec![vid(&c, "5")],
                closed: Vec::new(),
                skipped: 0,
                bases: Vec::new(),
                points: Vec::new(),
            },
        )
        .await
        .unwrap();
    w.walk_to_end(store.as_ref(), &c).await;
    assert_eq!(view(&w), stored(store.as_ref(), &c).await, "no gap");
    // The first page was read as created; what it held and then changed is read again,
    // updated; the record new since is created; a deletion is read as its tombstone.
    let first: Vec<String> = w.created[..4].to_vec();
    let one = vid(&c, "1");
    if first.contains(&one) {
        assert_eq!(w.updated, vec![one.clone()]);
    }
    assert!(w.created.contains(&vid(&c, "6")));
    assert!(w.seen[&vid(&c, "5")].2, "a tombstone");
    let seq = |id: &str| w.seen[&vid(&c, id)].0;
    assert!(seq("1") < seq("5"), "changes in commit order");
    assert_eq!(seq("1"), seq("6"), "one page, one change number");
    assert_eq!(seq("0"), seq("2"), "unchanged records keep their number");
    // A reader from the start finds each record once, at its latest change.
    let mut fresh = Walker::default();
    fresh.walk_to_end(store.as_ref(), &c).await;
    assert_eq!(fresh.read.len(), 7, "each record once");
    // Nothing more: the end is a position to poll from, and a sweep's deletions come there.
    assert_eq!(w.step(store.as_ref(), &c, 10).await, 0);
    store
        .begin_window(&c, Entity::VENDOR, "run_2", None, Some(T0), None)
        .await
        .unwrap();
    let mut pass = PageWrite {
        entity: Entity::VENDOR,
        records: (0..5)
            .filter(|i| *i != 3)
            .map(|i| rec(&c, &i.to_string(), if i == 1 { "b" } else { "a" }))
            .collect(),
        checkpoint: None,
        now: T0.plus_secs(3),
        seen_run: Some("run_2".into()),
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points: Vec::new(),
    };
    pass.records.push(rec(&c, "6", "a"));
    store.write_page(&c, &pass).await.unwrap();
    assert_eq!(w.step(store.as_ref(), &c, 10).await, 0, "an unchanged pass");
    store
        .sweep_unseen(&c, Entity::VENDOR, "run_2", T0.plus_secs(4))
        .await
        .unwrap();
    assert_eq!(w.step(store.as_ref(), &c, 10).await, 1);
    assert!(w.seen[&vid(&c, "3")].2, "the sweep's tombstone");
    assert_eq!(view(&w), stored(store.as_ref(), &c).await);
    // One entity's feed, and tenancy: another connection's feed holds only its own.
    let only = store
        .list_changes(
            &c,
            &ChangeQuery {
                entity: Some(Entity::PURCHASE_ORDER),
                after: ChangePosition::start(),
                include_raw: false,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(only.is_empty());
    let mut theirs = Walker::default();
    theirs.walk_to_end(store.as_ref(), &other).await;
    assert_eq!(theirs.seen.keys().collect::<Vec<_>>(), [&vid(&other, "x")]);
}

pub async fn concurrent_writers_never_let_the_feed_skip_a_change(store: Arc<dyn Store>) {
    let o = org(&store, 1).await;
    let c = conn(&store, &o).await;
    // Writers of one connection in parallel (as slices of a sync and API writes are), each
    // page changing records, while a reader follows the feed; a reader that saw a change
    // numbered after one not yet committed would skip it for ever.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let c = c.clone();
            tokio::spawn(async move {
                for round in 0..12 {
                    let records = (0..5)
                        .map(|i| {
                            rec(
                                &c,
                                &format!("{}-{}", w, (round + i) % 9),
                                &format!("r{round}"),
                            )
                        })
                        .collect();
                    write(&store, &c, records, T0.plus_secs(round)).await;
                }
            })
        })
        .collect();
    let mut walker = Walker::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let done = done.clone();
        let store = store.clone();
        let c = c.clone();
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                walker.step(store.as_ref(), &c, 4).await;
                tokio::task::yield_now().await;
            }
            walker
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut walker = reading.await.unwrap();
    walker.walk_to_end(store.as_ref(), &c).await;
    assert_eq!(view(&walker), stored(store.as_ref(), &c).await);
    assert_eq!(walker.seen.len(), 36);
}

pub async fn record_event_positions_start_at_subscription_and_move_once(store: Arc<dyn Store>) {
    let o = org(&store, 2).await;
    let c = conn(&store, &o).await;
    write(&store, &c, vec![rec(&c, "1", "a")], T0).await;
    let ep = WebhookEndpoint {
        id: ironbridge_core::ids::new_id("whk", T0.micros()),
        org_id: o.0.clone(),
        url: "https://hooks.example.com/in".into(),
        description: None,
        event_types: Some(vec!["record.created".into()]),
        connection_ids: None,
        status: "enabled".into(),
        disabled_reason: None,
        disabled_at: None,
        failing_since: None,
        secret: "v1.k.ciphertext".into(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: T0,
        updated_at: T0,
    };
    store.create_webhook_endpoint(&o, &ep).await.unwrap();
    // Subscribed at the present: what was stored before is not due.
    assert!(store.record_feeds_due(100).await.unwrap().is_empty());
    write(&store, &c, vec![rec(&c, "2", "a")], T0.plus_secs(1)).await;
    // A connection created after the subscription has no position: read from its start.
    let later = conn(&store, &o).await;
    write(&store, &later, vec![rec(&later, "x", "a")], T0).await;
    let mut due = store.record_feeds_due(100).await.unwrap();
    due.sort_by(|a, b| a.at.cmp(&b.at));
    assert_eq!(due.len(), 2, "{due:?}");
    assert_eq!(
        (due[0].connection_id.as_str(), &due[0].at),
        (later.0.as_str(), &None)
    );
    assert_eq!(due[1].connection_id, c.0);
    let at = due[1].at.clone().unwrap();
    assert_eq!((at.seq, at.entity.as_str()), (2, ""));
    // Two processes read the same changes: one moves the position, the other stores nothing.
    let to = ChangePosition {
        seq: 3,
        entity: String::new(),
        id: String::new(),
    };
    assert!(store.advance_record_feed(&due[1], &to, &[]).await.unwrap());
    assert!(!store.advance_record_feed(&due[1], &to, &[]).await.unwrap());
    assert!(store.advance_record_feed(&due[0], &to, &[]).await.unwrap());
    assert!(!store.advance_record_feed(&due[0], &to, &[]).await.unwrap());
    assert!(store.record_feeds_due(100).await.unwrap().is_empty());
    // Dropping the record types drops the positions; other endpoints never have any.
    store
        .update_webhook_endpoint(
            &o,
            &WebhookEndpoint {
                event_types: None,
                ..ep.clone()
            },
        )
        .await
        .unwrap();
    write(&store, &c, vec![rec(&c, "3", "a")], T0.plus_secs(2)).await;
    assert!(store.record_feeds_due(100).await.unwrap().is_empty());
}
