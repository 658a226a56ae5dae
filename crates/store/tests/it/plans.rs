//! Every shape of every list statement is served by an index, on both databases: each is
//! searched by its filters' columns and no plan reads a whole table. On SQLite, which plans
//! without statistics (the same at any size), none may sort either: a sort reads every
//! matching row for each page.

use crate::TestDb;
use crate::cases::{conn, org};

/// Rows enough for PostgreSQL's planner to cost plans by real statistics (on empty tables
/// it guesses), spread over organizations, connections, types and statuses as in use.
const PG_SEED: &[&str] = &[
    // The sample statements name `conn_plan` and `org_plan`: make them the busy ones.
    "UPDATE connections SET id = 'conn_plan'",
    "INSERT INTO records (connection_id, entity, id, remote_id, data, raw, content_hash, remote_was_deleted, created_at, modified_at) \
     SELECT 'conn_plan', CASE WHEN i % 4 = 0 THEN 'vendor' ELSE 'purchase_order' END, 'po_' || md5(i::text), i::text, '{}', '{}', 'h', i % 50 = 0, i, 1700000000000000 + (i / 100) * 1000000 \
     FROM generate_series(1, 40000) i",
    "INSERT INTO events (id, org_id, connection_id, type, data, created_at) \
     SELECT 'evt_' || i, CASE WHEN i % 5 = 0 THEN 'org_plan' ELSE 'org_' || (i % 5) END, 'conn_' || (i % 40), (ARRAY['sync.completed', 'sync.failed', 'connection.status_changed', 'record.updated'])[1 + i % 4], '{}', i \
     FROM generate_series(1, 40000) i",
    "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, message_id, event_type, payload, status, created_at, updated_at) \
     SELECT 'dlv_' || i, CASE WHEN i % 5 = 0 THEN 'org_plan' ELSE 'org_' || (i % 5) END, 'whe_' || (i % 20), 'msg_' || i, 'sync.completed', '{}', CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 10 = 1 THEN 'pending' ELSE 'delivered' END, i, i \
     FROM generate_series(1, 40000) i",
    "INSERT INTO webhook_attempts (id, org_id, delivery_id, endpoint_id, message_id, event_type, attempt, outcome, latency_micros, created_at) \
     SELECT 'att_' || i, CASE WHEN i % 5 = 0 THEN 'org_plan' ELSE 'org_' || (i % 5) END, 'dlv_' || (i / 2), 'whe_' || (i % 20), 'msg_' || i, 'sync.completed', 1, 'delivered', 1000, i \
     FROM generate_series(1, 60000) i",
    // Points: the sample connection's vehicles and another connection's, a week of points.
    "INSERT INTO point_streams (connection_id, entity) VALUES ('conn_plan', 'vehicle_location'), ('conn_other', 'vehicle_location')",
    "INSERT INTO point_series (stream, series_id) SELECT s.id, 'vhc_' || i FROM generate_series(1, 200) i \
     JOIN point_streams s ON s.connection_id = CASE WHEN i % 2 = 0 THEN 'conn_plan' ELSE 'conn_other' END",
    "INSERT INTO points (series, recorded_at, stream, data, created_at) \
     SELECT x.id, 1700000000000000 + (i / 200)::bigint * 1000000000, x.stream, '{}', i \
     FROM generate_series(1, 60000) i JOIN point_series x ON x.series_id = 'vhc_' || (1 + i % 200)",
    "ANALYZE",
];

type Plans = [(String, String, Vec<&'static str>)];

/// Whether `text` names `column` as a whole word (`id`, not the end of `org_id`).
fn names(text: &str, column: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(column)
        .any(|(at, _)| !text[..at].ends_with(word) && !text[at + column.len()..].starts_with(word))
}

/// What is wrong with each plan: a line `bad` calls out, or a column its index condition
/// (what `conditions` picks from the plan) leaves out.
fn offenders(
    plans: &Plans,
    bad: impl Fn(&str) -> bool,
    conditions: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, plan, keyed) in plans {
        let searched = conditions(plan);
        let missing: Vec<_> = keyed
            .iter()
            .filter(|c| !c.split('|').any(|c| names(&searched, c)))
            .collect();
        if plan.lines().any(&bad) || !missing.is_empty() {
            out.push(format!("{name}\n  not searched by {missing:?}\n{plan}"));
        }
    }
    out
}

#[tokio::test]
async fn sqlite_list_statements_search_indexes_in_their_order() {
    let db = TestDb::sqlite().await;
    let plans = db.list_plans().await;
    assert!(plans.len() > 70, "every shape is planned: {}", plans.len());
    let bad = offenders(
        &plans,
        |line| {
            let line = line.trim_start();
            // `SCAN t` reads the table, `SCAN t USING INDEX` the whole index: both grow with
            // the data. A temporary B-tree is a sort.
            // (A table-valued function's rows, `json_each` of one row, are no table.)
            (line.starts_with("SCAN ") && !line.contains("VIRTUAL TABLE"))
                || line.contains("USE TEMP B-TREE")
        },
        // `SEARCH t USING INDEX i (a=? AND b>?)` (or `USING PRIMARY KEY (a=?)`, a table
        // without rowid searched by its key): the parenthesis is what it is searched by.
        |plan| {
            plan.lines()
                .filter_map(|l| {
                    l.split_once(" INDEX ")
                        .or_else(|| l.split_once(" PRIMARY KEY "))
                        .map(|(_, rest)| rest.to_string())
                })
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

#[tokio::test]
async fn postgres_list_statements_search_indexes_in_their_order() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let o = org(&db.store, 1).await;
    conn(&db.store, &o).await;
    for sql in PG_SEED {
        db.raw_sql(sql).await;
    }
    let plans = db.list_plans().await;
    assert!(plans.len() > 70);
    // With statistics, PostgreSQL may sort the few rows an index range yields rather than
    // walk an index in order; what must never happen is a table read whole, or a filter
    // the index is not searched by.
    let bad = offenders(
        &plans,
        // A nested loop anti-join reads the seen keys once per record.
        |line| line.contains("Seq Scan") || line.contains("Nested Loop Anti Join"),
        |plan| {
            plan.lines()
                .filter(|l| l.contains("Index Cond:") || l.contains("Recheck Cond:"))
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

/// The plans PostgreSQL makes from statistics taken while the tables were empty, once a full
/// connection's 40,000 records are in: what a first sync into a new database leaves until
/// autovacuum catches up.
async fn plans_on_stale_statistics(db: &TestDb) -> Box<Plans> {
    let o = org(&db.store, 1).await;
    conn(&db.store, &o).await;
    db.raw_sql("ANALYZE").await;
    db.raw_sql(PG_SEED[0]).await;
    db.raw_sql(PG_SEED[1]).await;
    db.list_plans().await.into_boxed_slice()
}

#[tokio::test]
async fn postgres_sweeps_hash_the_seen_keys_whatever_the_statistics() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let plans = plans_on_stale_statistics(&db).await;
    let (_, sweep, _) = plans
        .iter()
        .find(|(name, _, _)| name.starts_with("sweep"))
        .expect("the sweep is planned");
    assert!(!sweep.contains("Nested Loop"), "{sweep}");
}

#[tokio::test]
async fn postgres_feed_pages_follow_their_index_whatever_the_statistics() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Planned from empty tables' statistics, a page was every record past the position,
    // gathered and sorted.
    let plans = plans_on_stale_statistics(&db).await;
    let (_, feed, _) = plans
        .iter()
        .find(|(name, _, _)| name.starts_with("feed"))
        .expect("the feed is planned");
    assert!(!feed.contains("Sort"), "{feed}");
    assert!(feed.contains("records_feed"), "{feed}");
}
