//! The store contract suite: every case runs on SQLite, and on PostgreSQL whenever
//! `DATABASE_URL` names one (CI always sets it; under `CI=true` a missing URL fails the run).

mod cases;
mod change_cases;
mod flow_cases;
mod link_cases;
mod migrations;
mod plans;
mod wal;
mod webhook_cases;
mod write_cases;

use ironbridge_testkit::db::TestDb;

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::TestDb::sqlite().await;
                    crate::cases::$case(db.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = crate::TestDb::postgres().await else { return };
                    crate::cases::$case(db.store.clone()).await;
                }
            )*
        }
    };
}

contract!(
    organizations_and_keys,
    connection_credits_are_a_pool,
    concurrent_creations_never_exceed_credits,
    tenants_cannot_touch_each_other,
    reconnect_replaces_atomically,
    pages_are_written_idempotently,
    sync_state_checkpoints_with_the_page,
    keyset_pages_survive_concurrent_changes,
    filters_by_modification_time,
    change_order_pages_follow_modification_time,
    deleting_data_needs_a_disconnected_connection,
    jobs_are_claimed_once_by_concurrent_workers,
    jobs_dedupe_retry_and_fence_late_workers,
    events_are_written_with_the_changes_they_describe,
    complete_passes_sweep_records_the_source_no_longer_has,
    large_pages_with_repeats_are_written_in_batches,
    call_failures_are_counted_with_the_circuit_state,
    feeds_keep_their_position_between_runs,
    write_slots_are_shared_and_expire,
    released_jobs_use_up_no_failure,
    named_constraints_are_typed_conflicts,
    job_writes_are_fenced_by_the_lease,
    runs_total_their_attempts_and_the_deletion_log,
    the_source_clock_offset_is_recorded_per_connection,
    webhook_events_fan_out_to_matching_endpoints,
    webhook_deliveries_are_claimed_once_and_fenced,
    webhook_failure_streaks_disable_endpoints,
    webhook_replay_recover_purge_and_delete,
    webhook_recoveries_are_claimed_one_at_a_time_in_event_order,
    idempotency_keys_replay_refuse_and_expire,
    idempotency_keys_left_in_flight_or_unknown_are_reconciled,
    concurrent_claims_of_one_key_admit_one,
    written_records_are_stored_with_their_answer_and_never_swept,
    partial_pages_are_refused_when_what_they_merged_changed,
    points_are_appended_once_paged_by_time_and_purged_in_batches,
    batches_keep_operations_results_and_their_event,
    raw_payloads_read_back_exactly,
    the_change_feed_has_every_change_once_in_commit_order,
    concurrent_writers_never_let_the_feed_skip_a_change,
    record_event_positions_start_at_subscription_and_move_once,
    flows_are_versioned_per_organization,
    flow_runs_move_their_trigger_once_and_end_items_once,
    event_and_schedule_triggers_start_one_run_each,
    link_tokens_are_claimed_spent_and_exchanged_once,
    link_renewals_keep_the_connection_and_refuse_disconnected_ones,
    dashboard_sessions_sign_in_links_and_the_request_log,
);
