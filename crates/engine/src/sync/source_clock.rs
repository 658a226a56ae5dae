//! The source's clock as a sync's opening call measured it, recorded for the connection's
//! health: the worker that measures it is not the API process that shows it.

use ironbridge_core::Clock;
use ironbridge_core::connector::Connector;
use ironbridge_core::store::{ConnId, Store};

/// Records how far the source's clock runs ahead of ours (its `Date` headers, through
/// `Source::source_time`), rounded to the millisecond. Nothing is recorded when the source
/// never told its time. A failure to record is logged, not raised: the offset is health
/// information, and the sync's own statements report a broken store.
pub(super) async fn record_source_clock(
    store: &dyn Store,
    connector: &dyn Connector,
    conn: &ConnId,
    clock: &dyn Clock,
) {
    let Ok(Some(theirs)) = connector.source_time().await else {
        return;
    };
    let now = clock.now();
    let offset_ms = (theirs.micros().saturating_sub(now.micros()) + 500).div_euclid(1000);
    if let Err(e) = store.record_source_clock(conn, offset_ms, now).await {
        tracing::warn!(connection = %conn.0, error = %e.chain(), "cannot record the source's clock offset");
    }
}
