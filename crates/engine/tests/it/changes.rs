//! The change feed read while syncs run: pages of the feed interleaved with the sync's
//! pages, the source changing meanwhile, and a sync killed half-way and run again. The walk
//! must end equal to the store, with no change read twice and unchanged records never again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, RawPage, ReadWindow, Source};
use ironbridge_core::store::{ChangePosition, ChangeQuery, ConnId, Store};
use ironbridge_core::system::SystemDescriptor;
use ironbridge_model::Entity;
use serde_json::json;

use crate::seams::{KIND_PAGE, Kinded, WHOLE, kind_env};
use crate::support::{Env, drive_until_killed, stored, sync};

/// A reader of the feed: its position, the last version read of each record, and how many
/// changes of each record it read.
#[derive(Default)]
struct Walker {
    at: ChangePosition,
    seen: BTreeMap<String, (String, bool)>,
    reads: HashMap<String, u32>,
}

impl Walker {
    async fn step(&mut self, store: &dyn Store, conn: &ConnId, size: u32) -> usize {
        let page = store
            .list_changes(
                conn,
                &ChangeQuery {
                    entity: None,
                    after: self.at.clone(),
                    include_raw: false,
                    limit: size,
                },
            )
            .await
            .unwrap();
        for change in &page {
            let p = change.position();
            assert!(p > self.at, "{p:?} after {:?}", self.at);
            self.at = p;
            let r = &change.record;
            *self.reads.entry(r.id.clone()).or_default() += 1;
            self.seen
                .insert(r.id.clone(), (r.data.clone(), r.remote_was_deleted));
        }
        page.len()
    }

    async fn walk_to_end(&mut self, env: &Env) {
        while self.step(env.store.as_ref(), &env.conn, 3).await > 0 {}
    }

    /// The walk ended where the store is: every record at its last version.
    async fn assert_equals_store(&self, env: &Env) {
        let stored: BTreeMap<String, (String, bool)> = stored(env, Entity::LOCATION)
            .await
            .into_iter()
            .map(|r| (r.id, (r.data, r.remote_was_deleted)))
            .collect();
        assert_eq!(self.seen, stored, "no change missed");
    }
}

/// What the test does to the source before page `n` is served.
type SourceChange<'a> = Box<dyn Fn(u32, &Kinded) + Send + Sync + 'a>;

/// The source, wrapped: before serving each page it reads a page of the feed, then lets
/// the test change the source; at page `kill_at` it hangs (the process is killed there).
struct Interleaved<'a> {
    inner: &'a Kinded,
    store: Arc<dyn Store>,
    conn: ConnId,
    walker: tokio::sync::Mutex<Walker>,
    pages: AtomicU32,
    change: SourceChange<'a>,
    kill_at: Option<u32>,
    reached: Arc<AtomicBool>,
}

impl Connector for Interleaved<'_> {
    fn descriptor(&self) -> &'static SystemDescriptor {
        self.inner.descriptor()
    }
}

#[async_trait]
impl Source for Interleaved<'_> {
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let n = self.pages.fetch_add(1, Ordering::SeqCst);
        self.walker
            .lock()
            .await
            .step(self.store.as_ref(), &self.conn, 3)
            .await;
        (self.change)(n, self.inner);
        if Some(n) == self.kill_at {
            self.reached.store(true, Ordering::SeqCst);
            return std::future::pending().await;
        }
        self.inner.fetch_page(entity, window, cursor).await
    }
}

fn rename(source: &Kinded, code: &str, name: &str) {
    let mut rows = source.rows.lock().unwrap();
    if let Some(r) = rows.iter_mut().find(|r| r["code"] == code) {
        r["name"] = json!(name);
    }
}

fn interleaved<'a>(
    env: &Env,
    source: &'a Kinded,
    walker: Walker,
    kill_at: Option<u32>,
    change: impl Fn(u32, &Kinded) + Send + Sync + 'a,
) -> Interleaved<'a> {
    Interleaved {
        inner: source,
        store: env.store.clone(),
        conn: env.conn.clone(),
        walker: tokio::sync::Mutex::new(walker),
        pages: AtomicU32::new(0),
        change: Box::new(change),
        kill_at,
        reached: Arc::new(AtomicBool::new(false)),
    }
}

#[tokio::test]
async fn the_change_feed_walked_during_syncs_and_across_a_crash_has_no_gap_and_no_repeat() {
    let env = kind_env().await;
    let source = Kinded::new(&WHOLE);
    let at = env.clock.now().plus_secs(-3600);
    for i in 0..24 {
        source.push(&format!("W{i:02}"), "first", at);
    }
    // The first sync, the feed read between its pages while the source changes: records
    // already stored and records not read yet are renamed, new ones are added.
    let first = interleaved(&env, &source, Walker::default(), None, |n, s| {
        rename(
            s,
            &format!("W{:02}", n * 3),
            &format!("renamed in page {n}"),
        );
        if n % 2 == 0 {
            s.push(&format!("N{n:02}"), "new", at);
        }
    });
    sync(&env, &first, false).await.unwrap();
    assert!(
        first.pages.load(Ordering::SeqCst) as usize >= 24 / KIND_PAGE,
        "several pages"
    );
    let mut walker = first.walker.into_inner();
    walker.walk_to_end(&env).await;
    walker.assert_equals_store(&env).await;
    assert!(walker.reads.values().all(|n| *n <= 2), "{:?}", walker.reads);
    let read_before = walker.reads.clone();
    let state_before = walker.seen.clone();

    // A sync killed at its third page, after pages were committed and read from the feed,
    // then run again by a new process; the source changes and loses a record meanwhile.
    env.clock.advance_secs(60);
    let killed = interleaved(&env, &source, walker, Some(2), |n, s| {
        if n == 0 {
            rename(s, "W05", "changed before the crash");
            s.rows.lock().unwrap().retain(|r| r["code"] != "W07");
        }
    });
    let outcome = drive_until_killed(sync(&env, &killed, false), killed.reached.clone()).await;
    assert!(outcome.is_none(), "killed");
    let walker = killed.walker.into_inner();
    env.clock.advance_secs(60);
    let again = interleaved(&env, &source, walker, None, |n, s| {
        if n == 1 {
            rename(s, "W20", "changed after the crash");
        }
    });
    sync(&env, &again, false).await.unwrap();
    let mut walker = again.walker.into_inner();
    walker.walk_to_end(&env).await;
    walker.assert_equals_store(&env).await;
    let w = |code: &str| ironbridge_core::ids::record_id(&env.conn.0, Entity::LOCATION, code);
    assert!(walker.seen[&w("W07")].1, "the deletion's tombstone");
    assert!(
        walker.seen[&w("W05")]
            .0
            .contains("changed before the crash")
    );
    assert!(walker.seen[&w("W20")].0.contains("changed after the crash"));
    // Each record is read once more if it changed since the first walk ended (W05, W07,
    // W20, and renames the first sync's pass had already gone by), never otherwise: pages
    // written again by the run after the crash, unchanged, are not in the feed again.
    for (id, n) in &walker.reads {
        let before = read_before.get(id).copied().unwrap_or(0);
        let changed = state_before.get(id) != walker.seen.get(id);
        assert_eq!(*n, before + u32::from(changed), "{id}");
    }
}
