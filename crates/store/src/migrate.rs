//! Embedded, ordered schema migrations, applied at start-up in one transaction each.

/// One migration: version, name and SQL.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// SQLite migrations, in order.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "record_counts",
        sql: include_str!("../migrations/sqlite/0002_record_counts.sql"),
    },
    Migration {
        version: 3,
        name: "jobs_and_events",
        sql: include_str!("../migrations/sqlite/0003_jobs_and_events.sql"),
    },
    Migration {
        version: 4,
        name: "sync_windows",
        sql: include_str!("../migrations/sqlite/0004_sync_windows.sql"),
    },
    Migration {
        version: 5,
        name: "certificates",
        sql: include_str!("../migrations/sqlite/0005_certificates.sql"),
    },
    Migration {
        version: 6,
        name: "records_rowid",
        sql: include_str!("../migrations/sqlite/0006_records_rowid.sql"),
    },
    Migration {
        version: 7,
        name: "webhooks",
        sql: include_str!("../migrations/sqlite/0007_webhooks.sql"),
    },
    Migration {
        version: 8,
        name: "reconciliation",
        sql: include_str!("../migrations/sqlite/0008_reconciliation.sql"),
    },
    Migration {
        version: 9,
        name: "write_slots",
        sql: include_str!("../migrations/sqlite/0009_write_slots.sql"),
    },
    Migration {
        version: 10,
        name: "fenced_runs",
        sql: include_str!("../migrations/sqlite/0010_fenced_runs.sql"),
    },
    Migration {
        version: 11,
        name: "clock_offset",
        sql: include_str!("../migrations/sqlite/0011_clock_offset.sql"),
    },
    Migration {
        version: 12,
        name: "webhook_replay_order",
        sql: include_str!("../migrations/sqlite/0012_webhook_replay_order.sql"),
    },
    Migration {
        version: 13,
        name: "list_indexes",
        sql: include_str!("../migrations/sqlite/0013_list_indexes.sql"),
    },
    Migration {
        version: 14,
        name: "writes",
        sql: include_str!("../migrations/sqlite/0014_writes.sql"),
    },
    Migration {
        version: 15,
        name: "compressed_raw",
        sql: include_str!("../migrations/sqlite/0015_compressed_raw.sql"),
    },
    Migration {
        version: 16,
        name: "mcp_access",
        sql: include_str!("../migrations/sqlite/0016_mcp_access.sql"),
    },
    Migration {
        version: 17,
        name: "field_mappings",
        sql: include_str!("../migrations/sqlite/0017_field_mappings.sql"),
    },
    Migration {
        version: 18,
        name: "points",
        sql: include_str!("../migrations/sqlite/0018_points.sql"),
    },
    Migration {
        version: 19,
        name: "point_counts",
        sql: include_str!("../migrations/sqlite/0019_point_counts.sql"),
    },
    Migration {
        version: 20,
        name: "point_series",
        sql: include_str!("../migrations/sqlite/0020_point_series.sql"),
    },
    Migration {
        version: 21,
        name: "change_feed",
        sql: include_str!("../migrations/sqlite/0021_change_feed.sql"),
    },
    Migration {
        version: 22,
        name: "flows",
        sql: include_str!("../migrations/sqlite/0022_flows.sql"),
    },
    Migration {
        version: 23,
        name: "link_and_dashboard",
        sql: include_str!("../migrations/sqlite/0023_link_and_dashboard.sql"),
    },
];

/// PostgreSQL migrations, in order.
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "record_counts",
        sql: include_str!("../migrations/postgres/0002_record_counts.sql"),
    },
    Migration {
        version: 3,
        name: "jobs_and_events",
        sql: include_str!("../migrations/postgres/0003_jobs_and_events.sql"),
    },
    Migration {
        version: 4,
        name: "sync_windows",
        sql: include_str!("../migrations/postgres/0004_sync_windows.sql"),
    },
    Migration {
        version: 5,
        name: "certificates",
        sql: include_str!("../migrations/postgres/0005_certificates.sql"),
    },
    Migration {
        version: 6,
        name: "webhooks",
        sql: include_str!("../migrations/postgres/0006_webhooks.sql"),
    },
    Migration {
        version: 7,
        name: "reconciliation",
        sql: include_str!("../migrations/postgres/0007_reconciliation.sql"),
    },
    Migration {
        version: 8,
        name: "write_slots",
        sql: include_str!("../migrations/postgres/0008_write_slots.sql"),
    },
    Migration {
        version: 9,
        name: "fenced_runs",
        sql: include_str!("../migrations/postgres/0009_fenced_runs.sql"),
    },
    Migration {
        version: 10,
        name: "clock_offset",
        sql: include_str!("../migrations/postgres/0010_clock_offset.sql"),
    },
    Migration {
        version: 11,
        name: "webhook_replay_order",
        sql: include_str!("../migrations/postgres/0011_webhook_replay_order.sql"),
    },
    Migration {
        version: 12,
        name: "list_indexes",
        sql: include_str!("../migrations/postgres/0012_list_indexes.sql"),
    },
    Migration {
        version: 13,
        name: "writes",
        sql: include_str!("../migrations/postgres/0013_writes.sql"),
    },
    Migration {
        version: 14,
        name: "compressed_raw",
        sql: include_str!("../migrations/postgres/0014_compressed_raw.sql"),
    },
    Migration {
        version: 15,
        name: "mcp_access",
        sql: include_str!("../migrations/postgres/0015_mcp_access.sql"),
    },
    Migration {
        version: 16,
        name: "field_mappings",
        sql: include_str!("../migrations/postgres/0016_field_mappings.sql"),
    },
    Migration {
        version: 17,
        name: "points",
        sql: include_str!("../migrations/postgres/0017_points.sql"),
    },
    Migration {
        version: 18,
        name: "point_counts",
        sql: include_str!("../migrations/postgres/0018_point_counts.sql"),
    },
    Migration {
        version: 19,
        name: "point_series",
        sql: include_str!("../migrations/postgres/0019_point_series.sql"),
    },
    Migration {
        version: 20,
        name: "change_feed",
        sql: include_str!("../migrations/postgres/0020_change_feed.sql"),
    },
    Migration {
        version: 21,
        name: "flows",
        sql: include_str!("../migrations/postgres/0021_flows.sql"),
    },
    Migration {
        version: 22,
        name: "link_and_dashboard",
        sql: include_str!("../migrations/postgres/0022_link_and_dashboard.sql"),
    },
];

/// The bookkeeping table, identical in both dialects.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
