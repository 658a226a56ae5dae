//! The engine's metrics: what the worker and the sync runner record for an operator to see
//! saturation (jobs waiting longer, runs taking longer, records per second falling), with
//! their names, descriptions and histogram buckets in one place. Labels are bounded sets
//! (job kinds, outcomes, systems, entities, modes): never a connection, job or organization.

use ironbridge_model::Timestamp;

/// Seconds a job waited between becoming due (`run_at`) and a worker claiming it; labels
/// `kind`.
pub const JOB_QUEUE_WAIT: &str = "ironbridge_job_queue_wait_seconds";
/// Seconds a worker ran a job, from its claim to its end; labels `kind`, `outcome`
/// ([`outcome`]).
pub const JOB_DURATION: &str = "ironbridge_job_duration_seconds";
/// Records a sync committed: added, updated, unchanged, or marked deleted (by the source or
/// by a full pass's sweep), as its reports count them; labels `system`, `entity`. Its rate is
/// the sync's throughput.
pub const SYNC_RECORDS: &str = "ironbridge_sync_records_total";
/// Seconds one entity's run took, from its start to its success; labels `system`, `entity`,
/// `mode` ([`mode`]).
pub const SYNC_RUN: &str = "ironbridge_sync_run_seconds";
/// Webhook delivery attempts; label `outcome` (`succeeded`, `failed`).
pub const WEBHOOK_ATTEMPTS: &str = "ironbridge_webhook_attempts_total";
/// Seconds a webhook attempt took (the receiver's answer, or the failure).
pub const WEBHOOK_ATTEMPT: &str = "ironbridge_webhook_attempt_seconds";

/// How a job's attempt ended, as [`JOB_DURATION`]'s `outcome` says.
pub mod outcome {
    /// Done.
    pub const SUCCEEDED: &str = "succeeded";
    /// Failed for good (no retry, or its attempts are used up).
    pub const FAILED: &str = "failed";
    /// Failed, queued again after a back-off.
    pub const RETRIED: &str = "retried";
    /// Stopped by a shutdown and given back to the queue without using up an attempt.
    pub const RELEASED: &str = "released";
    /// Its outcome was not recorded: another worker took the job over (its lease ran out),
    /// or the store failed; the job runs again.
    pub const LOST: &str = "lost";
}

/// What an entity's run read, as [`SYNC_RUN`]'s `mode` says.
pub mod mode {
    /// The entity's first complete run on the connection (its history window, or all of it).
    pub const INITIAL: &str = "initial";
    /// Everything again (a requested full sync or the scheduled reconciliation).
    pub const FULL: &str = "full";
    /// What changed since the last run.
    pub const INCREMENTAL: &str = "incremental";
}

/// Buckets (upper bounds, seconds) of jobs and entity runs: a small incremental sync takes
/// well under a second, a first sync of a large ERP hours.
const LONG: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Buckets of queue waits: an idle worker claims within its poll (a second); minutes mean
/// every job slot is busy.
const WAIT: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets of webhook attempts (bounded by the delivery timeout).
const WEBHOOK: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The buckets of each histogram the engine records, for the exporter.
pub const BUCKETS: &[(&str, &[f64])] = &[
    (JOB_QUEUE_WAIT, WAIT),
    (JOB_DURATION, LONG),
    (SYNC_RUN, LONG),
    (WEBHOOK_ATTEMPT, WEBHOOK),
];

/// Describes the engine's metrics to the installed recorder (the `# HELP` lines).
pub fn describe() {
    metrics::describe_histogram!(
        JOB_QUEUE_WAIT,
        metrics::Unit::Seconds,
        "Time a job waited from due to claimed, by kind."
    );
    metrics::describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "Time a worker ran a job, from its claim to its end, by kind and outcome."
    );
    metrics::describe_counter!(
        SYNC_RECORDS,
        metrics::Unit::Count,
        "Records syncs committed (added, updated, unchanged or marked deleted), by system and entity."
    );
    metrics::describe_histogram!(
        SYNC_RUN,
        metrics::Unit::Seconds,
        "Time one entity's successful sync run took, by system, entity and mode."
    );
    metrics::describe_counter!(
        WEBHOOK_ATTEMPTS,
        metrics::Unit::Count,
        "Webhook delivery attempts, by outcome."
    );
    metrics::describe_histogram!(
        WEBHOOK_ATTEMPT,
        metrics::Unit::Seconds,
        "Time a webhook delivery attempt took."
    );
}

/// Seconds from `from` to `to` on the injected clock (never negative).
pub fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.micros() - from.micros()).max(0) as f64 / 1e6
}

/// A worker claimed a job of `kind` that was due at `due`, at `now`.
pub(crate) fn job_claimed(kind: &str, due: Timestamp, now: Timestamp) {
    metrics::histogram!(JOB_QUEUE_WAIT, "kind" => kind.to_string())
        .record(seconds_between(due, now));
}

/// A job of `kind` claimed at `claimed` ended at `now` with `outcome`.
pub(crate) fn job_ended(kind: &str, outcome: &'static str, claimed: Timestamp, now: Timestamp) {
    metrics::histogram!(JOB_DURATION, "kind" => kind.to_string(), "outcome" => outcome)
        .record(seconds_between(claimed, now));
}

/// A sync of `system` committed `records` records of `entity`.
pub(crate) fn records_synced(system: &str, entity: &'static str, records: u64) {
    metrics::counter!(SYNC_RECORDS, "system" => system.to_string(), "entity" => entity)
        .increment(records);
}

/// An entity's run in `mode` that started at `started` succeeded at `now`.
pub(crate) fn run_finished(
    system: &str,
    entity: &'static str,
    mode: &'static str,
    started: Timestamp,
    now: Timestamp,
) {
    metrics::histogram!(SYNC_RUN, "system" => system.to_string(), "entity" => entity, "mode" => mode)
        .record(seconds_between(started, now));
}
