//! Which changes a new run of an entity reads: its window, from the entity's role and read
//! kind, the last run's high-water mark and the source's clock.

use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ReadWindow};
use ironbridge_core::store::SyncState;
use ironbridge_model::api::ReadKind;
use ironbridge_model::{Entity, EntityRole, Timestamp};

use super::{LOOKBACK_SECS, SETTLE_SECS, SyncError, SyncOptions};

/// Picks the window of a new run. Windowed reads: everything on a full run (time series:
/// their history window); on the first run, the history window for transactions and time
/// series and everything for reference data; otherwise from the last high-water mark minus the lookback. The upper
/// bound is `now` (the source's clock read when the sync began) minus the settle delay.
/// Whole reads, feeds and outboxes are not bounded by time: their window says only when the
/// run read (the high-water mark still moves, for health).
pub(super) fn new_window(
    connector: &dyn Connector,
    entity: Entity,
    kind: ReadKind,
    state: &SyncState,
    options: &SyncOptions,
    now: Timestamp,
) -> ReadWindow {
    let until = now.plus_secs(-SETTLE_SECS);
    let since = match kind {
        ReadKind::Whole | ReadKind::Feed | ReadKind::Outbox => None,
        ReadKind::Windowed | ReadKind::TimeSeries => {
            let history = || {
                options
                    .history_days
                    .or(connector.descriptor().history_days)
                    .map(|days| now.plus_secs(-i64::from(days) * 86_400))
            };
            if options.full {
                // Observations are never swept, so a full run of a time series re-reads
                // only the history window, not everything the source ever recorded.
                if kind == ReadKind::TimeSeries {
                    history()
                } else {
                    None
                }
            } else if let Some(hw) = state.high_water {
                Some(hw.plus_secs(-LOOKBACK_SECS))
            } else if entity.role() == EntityRole::Reference && kind == ReadKind::Windowed {
                // Reference data is wanted whole the first time, whatever its age; later runs
                // read only what changed, like everything else. (Observations are read from
                // the history window whatever they describe.)
                None
            } else {
                history()
            }
        }
    };
    ReadWindow {
        modified_since: since,
        modified_until: Some(until),
    }
}

/// The source's "now": its clock as of the sync's opening call, never ahead of ours.
pub(super) async fn source_now(
    connector: &dyn Connector,
    clock: &dyn Clock,
) -> Result<Timestamp, SyncError> {
    let ours = clock.now();
    Ok(match connector.source_time().await? {
        Some(theirs) => theirs.min(ours),
        None => ours,
    })
}

/// Calls the connection may have in flight: the option, or the system's documented limit.
pub(super) fn permitted_calls(connector: &dyn Connector, options: &SyncOptions) -> usize {
    options
        .max_concurrency
        .unwrap_or_else(|| connector.read_concurrency())
        .max(1)
}
