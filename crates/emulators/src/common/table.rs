//! Lazy record table: seeded records are generated on demand, changes live in a small overlay,
//! and two compact sorted indexes (by id, by last-modified) make filtered paging O(log n + page).

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use super::clock::Millis;
use super::datagen::{self, GenCtx, Item, Location, PurchaseOrder, Vendor};

/// A record kind the table can hold.
pub trait Record: Clone + Send + Sync + 'static {
    fn generate(ctx: &GenCtx, n: u64) -> Self;
    /// Must equal `generate(ctx, n).last_modified()`, but may be cheaper.
    fn seeded_last_modified(ctx: &GenCtx, n: u64) -> Millis {
        Self::generate(ctx, n).last_modified()
    }
    fn seeded_count(ctx: &GenCtx) -> u64;
    fn id(&self) -> u64;
    fn set_id(&mut self, id: u64);
    fn last_modified(&self) -> Millis;
    fn set_last_modified(&mut self, ms: Millis);
    /// What the last-modified index sorts the record by: [`UNSET`] for a record the source
    /// shows without a change time, so it sorts first and falls outside every bounded range.
    fn index_time(&self) -> Millis {
        self.last_modified()
    }
    /// Must equal `generate(ctx, n).index_time()`, but may be cheaper.
    fn seeded_index_time(ctx: &GenCtx, n: u64) -> Millis {
        Self::seeded_last_modified(ctx, n)
    }
    /// The record was changed: a source sets a change time on every change.
    fn mark_changed(&mut self) {}
}

/// The index time of a record without a change time (a null `LastChangeDateTime`): before
/// every real time, as SAP HANA sorts nulls first in ascending order.
pub const UNSET: Millis = Millis::MIN;

macro_rules! simple_record {
    ($t:ty, $gen:path, $count:ident) => {
        impl Record for $t {
            fn generate(ctx: &GenCtx, n: u64) -> Self {
                $gen(ctx, n)
            }
            fn seeded_count(ctx: &GenCtx) -> u64 {
                ctx.sizes.$count
            }
            fn id(&self) -> u64 {
                self.id
            }
            fn set_id(&mut self, id: u64) {
                self.id = id;
            }
            fn last_modified(&self) -> Millis {
                self.last_modified
            }
            fn set_last_modified(&mut self, ms: Millis) {
                self.last_modified = ms;
            }
        }
    };
}

simple_record!(Vendor, datagen::vendor, vendors);
simple_record!(Item, datagen::item, items);
simple_record!(Location, datagen::location, locations);

impl Record for PurchaseOrder {
    fn generate(ctx: &GenCtx, n: u64) -> Self {
        datagen::purchase_order(ctx, n)
    }
    fn seeded_last_modified(ctx: &GenCtx, n: u64) -> Millis {
        datagen::po_last_modified(ctx, n)
    }
    fn seeded_count(ctx: &GenCtx) -> u64 {
        ctx.sizes.purchase_orders
    }
    fn id(&self) -> u64 {
        self.id
    }
    fn set_id(&mut self, id: u64) {
        self.id = id;
    }
    fn last_modified(&self) -> Millis {
        self.last_modified
    }
    fn set_last_modified(&mut self, ms: Millis) {
        self.last_modified = ms;
    }
    fn index_time(&self) -> Millis {
        if self.change_time_unset {
            UNSET
        } else {
            self.last_modified
        }
    }
    fn seeded_index_time(ctx: &GenCtx, n: u64) -> Millis {
        if datagen::po_change_time_unset(ctx, n) {
            UNSET
        } else {
            datagen::po_last_modified(ctx, n)
        }
    }
    fn mark_changed(&mut self) {
        self.change_time_unset = false;
    }
}

/// Index entry ordered by last-modified, then id (a unique, stable order for paging).
pub type LmKey = (Millis, u64);

#[derive(Debug, Clone)]
pub struct Table<R> {
    ctx: GenCtx,
    seeded: u64,
    /// Changed or created records; `None` marks a deleted seeded record.
    overlay: HashMap<u64, Option<Arc<R>>>,
    next_id: u64,
    /// Live ids, ascending.
    ids: Vec<u64>,
    /// Live (last_modified, id), ascending.
    by_lm: Vec<LmKey>,
    /// Bumped on every change; lets callers cache query results.
    version: u64,
    /// Per-record change counter (absent = never changed), so version tokens change on every write
    /// even when the frozen clock gives two writes the same timestamp.
    revisions: HashMap<u64, u64>,
}

impl<R: Record> Table<R> {
    pub fn new(ctx: GenCtx) -> Self {
        let seeded = R::seeded_count(&ctx);
        let ids: Vec<u64> = (1..=seeded).collect();
        let mut by_lm: Vec<LmKey> = ids
            .iter()
            .map(|&n| (R::seeded_index_time(&ctx, n), n))
            .collect();
        by_lm.sort_unstable();
        Self {
            ctx,
            seeded,
            overlay: HashMap::new(),
            next_id: seeded + 1,
            ids,
            by_lm,
            version: 0,
            revisions: HashMap::new(),
        }
    }

    pub fn ctx(&self) -> &GenCtx {
        &self.ctx
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<R> {
        match self.overlay.get(&id) {
            Some(Some(r)) => Some((**r).clone()),
            Some(None) => None,
            None if id >= 1 && id <= self.seeded => Some(R::generate(&self.ctx, id)),
            None => None,
        }
    }

    /// `get(id)?.last_modified()` without generating a seeded record.
    pub fn last_modified_of(&self, id: u64) -> Option<Millis> {
        match self.overlay.get(&id) {
            Some(Some(r)) => Some(r.last_modified()),
            Some(None) => None,
            None if id >= 1 && id <= self.seeded => Some(R::seeded_last_modified(&self.ctx, id)),
            None => None,
        }
    }

    pub fn exists(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Live ids in ascending order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Live `(last_modified, id)` keys in ascending order.
    pub fn by_last_modified(&self) -> &[LmKey] {
        &self.by_lm
    }

    /// The slice of `by_last_modified` within the given bounds on last-modified.
    pub fn lm_range(&self, lo: Bound<Millis>, hi: Bound<Millis>) -> &[LmKey] {
        let start = match lo {
            Bound::Included(t) => self.by_lm.partition_point(|k| k.0 < t),
            Bound::Excluded(t) => self.by_lm.partition_point(|k| k.0 <= t),
            Bound::Unbounded => 0,
        };
        let end = match hi {
            Bound::Included(t) => self.by_lm.partition_point(|k| k.0 <= t),
            Bound::Excluded(t) => self.by_lm.partition_point(|k| k.0 < t),
            Bound::Unbounded => self.by_lm.len(),
        };
        if start >= end {
            &[]
        } else {
            &self.by_lm[start..end]
        }
    }

    /// Stores a new record with a fresh id; returns the id.
    pub fn insert(&mut self, mut r: R) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        r.set_id(id);
        let key = (r.index_time(), id);
        self.overlay.insert(id, Some(Arc::new(r)));
        self.ids.push(id);
        let pos = self.by_lm.partition_point(|k| *k < key);
        self.by_lm.insert(pos, key);
        self.version += 1;
        id
    }

    /// Replaces an existing record (same id), keeping the indexes sorted.
    pub fn replace(&mut self, mut r: R) -> bool {
        let id = r.id();
        let Some(old) = self.get(id) else {
            return false;
        };
        self.remove_lm(old.index_time(), id);
        r.mark_changed();
        let key = (r.index_time(), id);
        let pos = self.by_lm.partition_point(|k| *k < key);
        self.by_lm.insert(pos, key);
        self.overlay.insert(id, Some(Arc::new(r)));
        self.version += 1;
        *self.revisions.entry(id).or_insert(0) += 1;
        true
    }

    /// How many times record `id` was changed since it was seeded or created.
    pub fn revision(&self, id: u64) -> u64 {
        self.revisions.get(&id).copied().unwrap_or(0)
    }

    pub fn delete(&mut self, id: u64) -> Option<R> {
        let old = self.get(id)?;
        self.remove_lm(old.index_time(), id);
        if let Ok(pos) = self.ids.binary_search(&id) {
            self.ids.remove(pos);
        }
        self.overlay.insert(id, None);
        self.version += 1;
        Some(old)
    }

    fn remove_lm(&mut self, lm: Millis, id: u64) {
        if let Ok(pos) = self.by_lm.binary_search(&(lm, id)) {
            self.by_lm.remove(pos);
        }
    }

    /// Changed and created records (not the untouched seeded ones).
    pub fn overlay_values(&self) -> impl Iterator<Item = &R> {
        self.overlay.values().filter_map(|r| r.as_deref())
    }

    /// Approximate heap bytes used by the indexes and overlay (for the benchmark report).
    pub fn approx_bytes(&self) -> usize {
        self.ids.capacity() * 8 + self.by_lm.capacity() * 16 + self.overlay.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::datagen::Sizes;

    fn table() -> Table<PurchaseOrder> {
        Table::new(GenCtx {
            seed: 3,
            sizes: Sizes::for_orders(50),
            epoch: 1_767_225_600_000,
            unset_change_every: 0,
        })
    }

    #[test]
    fn overlay_changes_keep_indexes_sorted() {
        let mut t = table();
        assert_eq!(t.len(), 50);
        let mut po = t.get(10).unwrap();
        po.last_modified = 1_767_225_600_000 + 5;
        assert!(t.replace(po));
        assert_eq!(t.by_last_modified().last(), Some(&(1_767_225_600_005, 10)));
        assert!(t.by_last_modified().windows(2).all(|w| w[0] < w[1]));
        let mut new = t.get(1).unwrap();
        new.last_modified = 1;
        let id = t.insert(new);
        assert_eq!(id, 51);
        assert_eq!(t.by_last_modified()[0], (1, 51));
        assert!(t.delete(3).is_some());
        assert!(t.get(3).is_none() && !t.exists(3));
        assert_eq!(t.len(), 50);
        assert!(t.delete(3).is_none());
        assert!(t.get(999).is_none());
        for id in [1, 10, 51] {
            assert_eq!(t.last_modified_of(id), t.get(id).map(|r| r.last_modified));
        }
        assert_eq!(t.last_modified_of(3), None);
        assert_eq!(t.last_modified_of(999), None);
    }

    #[test]
    fn lm_range_bounds() {
        let t = table();
        let all = t.by_last_modified();
        let pivot = all[20].0;
        let ge = t.lm_range(Bound::Included(pivot), Bound::Unbounded);
        let gt = t.lm_range(Bound::Excluded(pivot), Bound::Unbounded);
        assert_eq!(ge[0].0, pivot);
        assert!(gt.iter().all(|k| k.0 > pivot));
        assert_eq!(
            ge.len() - gt.len(),
            all.iter().filter(|k| k.0 == pivot).count()
        );
    }
}
