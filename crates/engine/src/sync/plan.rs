//! How a run's window is read: the slices it is split into (read side by side, each by
//! keyset), the checkpoint that records how far each got, and the shared work list from
//! which readers take slices and split the crowded ones for readers left idle.

use std::collections::VecDeque;

use ironbridge_core::connector::{Connector, Extent, ReadWindow, filters_by_time};
use ironbridge_model::{Entity, Timestamp};

use super::{SLICE_MIN_WINDOW_SECS, SLICES_PER_READER, SyncError};

/// One part of a run's window, read by keyset on its own, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Slice {
    /// Lower bound (µs, inclusive).
    #[serde(rename = "s")]
    pub since: Option<i64>,
    /// Upper bound (µs, inclusive).
    #[serde(rename = "u")]
    pub until: Option<i64>,
    /// The connector's cursor after the last committed page.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Every page committed.
    #[serde(rename = "d", default)]
    pub done: bool,
}

impl Slice {
    pub(super) fn whole(window: &ReadWindow, cursor: Option<String>) -> Slice {
        Slice {
            since: window.modified_since.map(Timestamp::micros),
            until: window.modified_until.map(Timestamp::micros),
            cursor,
            done: false,
        }
    }

    /// An empty range, done: holds a split's place in the plan until the split is recorded.
    pub(super) fn placeholder() -> Slice {
        Slice {
            since: Some(1),
            until: Some(0),
            cursor: None,
            done: true,
        }
    }

    pub(super) fn window(&self) -> ReadWindow {
        ReadWindow {
            modified_since: self.since.map(Timestamp),
            modified_until: self.until.map(Timestamp),
        }
    }
}

/// Checkpoints of a sliced run start with this; anything else is a single connector cursor.
pub(super) const PLAN_PREFIX: &str = "slices1:";

pub(super) fn encode_plan(slices: &[Slice]) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    format!(
        "{PLAN_PREFIX}{}",
        serde_json::to_string(slices).unwrap_or_default()
    )
}

/// The slices of a run resumed from its stored window and checkpoint.
pub(super) fn decode_plan(window: &ReadWindow, checkpoint: Option<&str>) -> Vec<Slice> {
    match checkpoint {
        Some(text) => match text.strip_prefix(PLAN_PREFIX) {
            Some(json) => {
                serde_json::from_str(json).unwrap_or_else(|_| vec![Slice::whole(window, None)])
            }
            None => vec![Slice::whole(window, Some(text.to_string()))],
        },
        None => vec![Slice::whole(window, None)],
    }
}

pub(super) const SECOND: i64 = 1_000_000;

/// Splits a new run's window into slices of equal length, so `readers` reads can be in
/// flight at once, each boundary moved back to the end of the source's read unit where it has
/// one (`Source::slice_boundary`). Boundaries are whole seconds (or the last microsecond of
/// a source's unit) and slices do not overlap: slice k covers
/// `(b[k-1], b[k]]`, so every source precision (seconds, milliseconds) reads each instant
/// in exactly one slice. The first slice keeps the window's open lower bound, so records
/// older than the oldest one found are still read.
pub(super) async fn plan_slices(
    connector: &dyn Connector,
    entity: Entity,
    window: &ReadWindow,
    readers: usize,
) -> Result<Vec<Slice>, SyncError> {
    let single = || vec![Slice::whole(window, None)];
    let Some(until) = window.modified_until else {
        return Ok(single());
    };
    if readers <= 1 || !filters_by_time(connector, entity) {
        return Ok(single());
    }
    let (lower, pages) = match window.modified_since {
        Some(since) => (since, None),
        None => match connector.extent(entity).await? {
            // What one or two requests read whole is not sliced.
            Extent {
                pages: Some(0..=2), ..
            } => return Ok(single()),
            Extent {
                oldest: Some(oldest),
                pages,
            } => (oldest, pages),
            Extent { oldest: None, .. } => return Ok(single()),
        },
    };
    let span = until.micros() - lower.micros();
    if span < SLICE_MIN_WINDOW_SECS * SECOND {
        return Ok(single());
    }
    // Never more slices than pages: each slice costs at least one request.
    let n = i64::try_from(readers * SLICES_PER_READER)
        .unwrap_or(1)
        .min(pages.map_or(i64::MAX, |p| i64::try_from(p).unwrap_or(i64::MAX)))
        .max(1);
    let mut bounds = Vec::with_capacity(n as usize);
    for k in 1..n {
        let b = (lower.micros() + span / n * k).div_euclid(SECOND) * SECOND;
        // A source read in units (days) moves the boundary to the end of its unit.
        let b = connector
            .slice_boundary(entity, Timestamp(b))
            .micros()
            .min(b);
        if b > lower.micros() && b < until.micros() && bounds.last().is_none_or(|&last| b > last) {
            bounds.push(b);
        }
    }
    let mut slices = Vec::with_capacity(bounds.len() + 1);
    let mut since = window.modified_since.map(Timestamp::micros);
    for b in bounds {
        slices.push(Slice {
            since,
            until: Some(b),
            cursor: None,
            done: false,
        });
        since = Some(b + 1);
    }
    slices.push(Slice {
        since,
        until: Some(until.micros()),
        cursor: None,
        done: false,
    });
    Ok(slices)
}

/// The slices of one entity's run as its readers share them: which wait, which are being
/// read and how far, so a slice still being read can hand its upper part to a reader left
/// without work (slices of equal length rarely hold equal amounts of data).
pub(super) struct Work {
    pub slices: Vec<Slice>,
    queue: VecDeque<usize>,
    /// Per slice: being read, and how far (when the connector's cursor tells).
    live: Vec<Live>,
    /// Readers waiting for work.
    pub idle: usize,
    /// Slices split off but not yet in the queue (their split is on its way to the writer).
    pending: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Live {
    running: bool,
    /// Where the count of records below starts: the position after the first page (the
    /// slice's lower bound says nothing of where its records begin).
    origin: Option<i64>,
    /// Records read since `origin`.
    read: u64,
    /// The largest page seen.
    page: u64,
}

/// The upper part of a slice, split off it at a page boundary.
#[derive(Debug)]
pub(super) struct Split {
    /// Where the slice now ends.
    pub until: i64,
    /// The new slice's place in the plan.
    pub index: usize,
    pub slice: Slice,
}

impl Work {
    pub(super) fn new(plan: &[Slice]) -> Work {
        Work {
            slices: plan.to_vec(),
            queue: (0..plan.len()).filter(|&i| !plan[i].done).collect(),
            live: vec![Live::default(); plan.len()],
            idle: 0,
            pending: 0,
        }
    }

    /// The next slice in the queue and its cursor.
    pub(super) fn take(&mut self) -> Option<(usize, Option<String>)> {
        let index = self.queue.pop_front()?;
        self.live[index].running = true;
        Some((index, self.slices[index].cursor.clone()))
    }

    /// Whether a reader without work should wait: a slice may still be split.
    pub(super) fn may_split_later(&self) -> bool {
        self.pending > 0 || self.live.iter().any(|l| l.running)
    }

    /// A page of `records` was read from slice `index`, whose cursor now stands at
    /// `position` (the last record read; the next page starts after it). If a reader is
    /// waiting for work and the slice still has two pages or more to read (estimated from
    /// its pages so far), its upper half is split off: at a whole second strictly after
    /// `position`, so no record read is in the new slice and no instant is in both.
    pub(super) fn advanced(
        &mut self,
        index: usize,
        records: u64,
        position: Option<i64>,
    ) -> Option<Split> {
        let live = &mut self.live[index];
        live.page = live.page.max(records);
        match live.origin {
            Some(_) => live.read += records,
            None => live.origin = position,
        }
        if self.idle <= self.pending + self.queue.len() {
            return None;
        }
        let (Some(p), Some(origin), Some(u)) = (position, live.origin, self.slices[index].until)
        else {
            return None;
        };
        if p <= origin || live.read == 0 {
            return None;
        }
        let left = live.read as f64 / (p - origin) as f64 * (u - p) as f64;
        let middle = (p + (u - p) / 2).div_euclid(SECOND) * SECOND;
        if left < 2.0 * live.page as f64 || middle <= p || middle >= u {
            return None;
        }
        let slice = Slice {
            since: Some(middle + 1),
            until: Some(u),
            cursor: None,
            done: false,
        };
        self.slices[index].until = Some(middle);
        self.slices.push(slice.clone());
        self.live.push(Live::default());
        self.pending += 1;
        Some(Split {
            until: middle,
            index: self.slices.len() - 1,
            slice,
        })
    }

    /// The split-off slice `index` is recorded with the writer: readers may take it.
    pub(super) fn publish(&mut self, index: usize) {
        self.pending -= 1;
        self.queue.push_back(index);
    }

    pub(super) fn finished(&mut self, index: usize) {
        self.live[index].running = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ironbridge_core::ManualClock;
    use ironbridge_core::sandbox::{SandboxConnector, data};

    use super::*;

    fn sandbox() -> SandboxConnector {
        sandbox_of(5_000)
    }

    /// A sandbox of `orders` purchase orders (100 a page).
    fn sandbox_of(orders: u32) -> SandboxConnector {
        let clock = ManualClock::new(data::anchor().plus_secs(86_400));
        let settings = serde_json::json!({ "purchase_orders": orders });
        SandboxConnector::new(settings.as_object().unwrap(), None, Arc::new(clock)).unwrap()
    }

    #[tokio::test]
    async fn a_read_of_all_history_is_sliced_only_as_far_as_its_pages_call_for() {
        let all = ReadWindow {
            modified_since: None,
            modified_until: Some(data::anchor()),
        };
        // Two pages: read in one pass, not in twelve requests of a few records each.
        let two_pages = plan_slices(&sandbox_of(200), Entity::PURCHASE_ORDER, &all, 3)
            .await
            .unwrap();
        assert_eq!(two_pages, vec![Slice::whole(&all, None)]);
        // Five pages: never more slices than pages.
        let five_pages = plan_slices(&sandbox_of(500), Entity::PURCHASE_ORDER, &all, 3)
            .await
            .unwrap();
        assert_eq!(five_pages.len(), 5);
        assert_tiles(&five_pages, &all);
        // Fifty pages: as many slices as the readers can use.
        let many = plan_slices(&sandbox_of(5_000), Entity::PURCHASE_ORDER, &all, 3)
            .await
            .unwrap();
        assert_eq!(many.len(), 3 * SLICES_PER_READER);
    }

    fn assert_tiles(slices: &[Slice], window: &ReadWindow) {
        assert_eq!(
            slices.first().unwrap().since,
            window.modified_since.map(Timestamp::micros)
        );
        assert_eq!(
            slices.last().unwrap().until,
            window.modified_until.map(Timestamp::micros)
        );
        for pair in slices.windows(2) {
            let end = pair[0].until.unwrap();
            assert_eq!(end % SECOND, 0, "inner bounds are whole seconds");
            assert_eq!(pair[1].since, Some(end + 1), "no gap and no overlap");
            assert!(pair[1].until.unwrap() > end);
        }
    }

    #[tokio::test]
    async fn long_windows_split_into_slices_that_tile_them() {
        let c = sandbox();
        let until = data::anchor();
        let window = ReadWindow {
            modified_since: Some(until.plus_secs(-90 * 86_400)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PURCHASE_ORDER, &window, 3)
            .await
            .unwrap();
        assert_eq!(slices.len(), 3 * SLICES_PER_READER);
        assert_tiles(&slices, &window);

        // All history: the oldest change sets the scale, the first slice stays open below.
        let all = ReadWindow {
            modified_since: None,
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PURCHASE_ORDER, &all, 2)
            .await
            .unwrap();
        assert_eq!(slices.len(), 2 * SLICES_PER_READER);
        assert_tiles(&slices, &all);
    }

    #[tokio::test]
    async fn short_windows_and_single_readers_read_in_one_pass() {
        let c = sandbox();
        let until = data::anchor();
        let short = ReadWindow {
            modified_since: Some(until.plus_secs(-3600)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PURCHASE_ORDER, &short, 5)
            .await
            .unwrap();
        assert_eq!(slices, vec![Slice::whole(&short, None)]);
        let long = ReadWindow {
            modified_since: Some(until.plus_secs(-90 * 86_400)),
            modified_until: Some(until),
        };
        let slices = plan_slices(&c, Entity::PURCHASE_ORDER, &long, 1)
            .await
            .unwrap();
        assert_eq!(slices, vec![Slice::whole(&long, None)]);
    }

    #[test]
    fn a_slice_with_pages_left_hands_its_upper_half_to_an_idle_reader() {
        let slice = |since: i64, until: i64| Slice {
            since: Some(since * SECOND),
            until: Some(until * SECOND),
            cursor: None,
            done: false,
        };
        let mut work = Work::new(&[slice(0, 1_000), slice(1_001, 2_000)]);
        for index in 0..2 {
            assert_eq!(work.take().map(|t| t.0), Some(index));
        }
        assert!(work.take().is_none());
        // No reader is waiting: nothing is split, however much is left.
        assert!(work.advanced(0, 10, Some(100 * SECOND)).is_none());
        assert!(work.advanced(0, 10, Some(150 * SECOND)).is_none());
        work.idle = 1;
        // Slice 1: 10 records in 900 s so far, 50 s left (about 1 record): not worth a page.
        assert!(work.advanced(1, 10, Some(1_050 * SECOND)).is_none());
        assert!(work.advanced(1, 10, Some(1_950 * SECOND)).is_none());
        // Slice 0: 20 records in 150.5 s, 749.5 s left: about 100 records, split at a
        // whole second halfway through what is left.
        let split = work.advanced(0, 10, Some(250 * SECOND + 500_000)).unwrap();
        assert_eq!(split.until, 625 * SECOND);
        assert_eq!(split.index, 2);
        assert_eq!(work.slices[0].until, Some(split.until));
        assert_eq!(
            split.slice.since,
            Some(split.until + 1),
            "no instant in both"
        );
        assert_eq!(split.slice.until, Some(1_000 * SECOND));
        // Not taken until the writer has been told; then once.
        assert!(work.take().is_none());
        assert!(work.may_split_later());
        assert!(
            work.advanced(0, 10, Some(260 * SECOND)).is_none(),
            "one waiting reader, one split"
        );
        work.publish(split.index);
        assert_eq!(work.take().map(|t| t.0), Some(2));
        work.idle = 0;
        for index in 0..3 {
            work.finished(index);
        }
        assert!(!work.may_split_later(), "readers without work may stop");
    }

    #[test]
    fn plans_round_trip_and_plain_cursors_resume_as_one_slice() {
        let window = ReadWindow {
            modified_since: Some(Timestamp(5 * SECOND)),
            modified_until: Some(Timestamp(50 * SECOND)),
        };
        let plan = vec![
            Slice {
                since: Some(5 * SECOND),
                until: Some(20 * SECOND),
                cursor: Some("abc".into()),
                done: false,
            },
            Slice {
                since: Some(20 * SECOND + 1),
                until: Some(50 * SECOND),
                cursor: None,
                done: true,
            },
        ];
        let text = encode_plan(&plan);
        assert!(text.starts_with(PLAN_PREFIX));
        assert_eq!(decode_plan(&window, Some(&text)), plan);
        assert_eq!(
            decode_plan(&window, Some("200")),
            vec![Slice::whole(&window, Some("200".into()))]
        );
        assert_eq!(
            decode_plan(&window, None),
            vec![Slice::whole(&window, None)]
        );
    }
}
