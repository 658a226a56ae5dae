//! The bytes of source pages one sync holds at once. Every page takes its share of the
//! budget before it is fetched and gives it back once it is committed, so a sync's memory
//! stays flat whatever the system, the page size, the number of entities or the data's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget of a sync unless the worker is configured otherwise (`sync_memory_mb`).
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;
/// What the next page is assumed to cost before any page of the sync was seen.
const FIRST_GUESS: usize = 256 << 10;
/// The semaphore counts KiB (its permits are `u32`).
const UNIT: usize = 1 << 10;
/// Bytes held per byte of a page's record text while the page is in flight: the answer's
/// body and the records cut out of it while it is parsed, then the records and the unified
/// bodies they map to until they are committed.
const HELD_PER_TEXT_BYTE: usize = 2;

/// One sync's budget, shared by every reader of every entity.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    permits: Arc<Semaphore>,
    units: u32,
    /// The largest page seen so far (bytes held), which sizes the next reservation.
    largest: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one unit).
    pub(crate) fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, u32::MAX as usize) as u32;
        MemoryBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
            largest: AtomicUsize::new(FIRST_GUESS),
        }
    }

    fn units_for(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units)
    }

    /// Waits for room for the next page, sized as the largest page seen so far (a page
    /// larger than the whole budget takes all of it: it is then read alone). `None` once
    /// the budget is closed.
    pub(crate) async fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        let want = self.units_for(self.largest.load(Ordering::Relaxed));
        self.permits.clone().acquire_many_owned(want).await.ok()
    }

    /// Settles a reservation against the page that arrived (`text` bytes of records):
    /// gives back what it did not need, and remembers a larger page for the next
    /// reservations. It never waits for more: the page is already in memory, and a reader
    /// waiting while holding its reservation could wait on another doing the same.
    pub(crate) fn settle(
        &self,
        mut permit: OwnedSemaphorePermit,
        text: usize,
    ) -> OwnedSemaphorePermit {
        let held = text.saturating_mul(HELD_PER_TEXT_BYTE);
        self.largest.fetch_max(held, Ordering::Relaxed);
        let need = self.units_for(held) as usize;
        if permit.num_permits() > need
            && let Some(excess) = permit.split(permit.num_permits() - need)
        {
            drop(excess);
        }
        permit
    }

    /// Units not reserved now (tests).
    #[cfg(test)]
    fn free(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_page_reserves_as_much_as_the_largest_seen_and_gives_back_the_rest() {
        let budget = MemoryBudget::new(4 << 20);
        assert_eq!(budget.free(), 4096);
        let first = budget.reserve().await.unwrap();
        assert_eq!(first.num_permits(), 256);
        // A 1 MB page holds 2 MB: the reservation is not grown (the page is here already)
        // but the next one is sized for it.
        let first = budget.settle(first, 1 << 20);
        assert_eq!(first.num_permits(), 256);
        let second = budget.reserve().await.unwrap();
        assert_eq!(second.num_permits(), 2048);
        // A small page gives back what it did not need.
        let second = budget.settle(second, 10 << 10);
        assert_eq!(second.num_permits(), 20);
        drop(first);
        drop(second);
        assert_eq!(budget.free(), 4096);
    }

    #[tokio::test]
    async fn a_page_larger_than_the_budget_is_read_alone() {
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let page = budget.reserve().await.unwrap();
        let page = budget.settle(page, 8 << 20);
        // The next reservation wants the whole budget: it waits for the page's commit.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve().await.map(|p| p.num_permits()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(page);
        assert_eq!(waiting.await.unwrap().unwrap(), 1024);
        assert_eq!(
            budget.units_for(budget.largest.load(Ordering::Relaxed)),
            1024
        );
    }
}
