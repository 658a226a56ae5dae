//! Migrations that move data: what a store upgraded in place holds afterwards.

use ironbridge_core::store::{PageWrite, PointQuery, PointUpsert};
use ironbridge_model::Entity;

use crate::TestDb;
use crate::cases::{T0, conn, org};

/// Points stored in the first layout (text keys in both B-trees, a separate newest-point
/// table) read back the same after the move to integer series, and new points join them.
async fn points_move_to_integer_series(db: TestDb, version: &'static str) {
    let o = org(&db.store, 1).await;
    let c = conn(&db.store, &o).await;
    let entity = Entity::VEHICLE_LOCATION;
    db.store.start_sync(&c, entity, T0).await.unwrap();
    // Back to the layout before the move, with a connection's points in it.
    for sql in [
        "DROP TABLE points",
        "DROP TABLE point_series",
        "DROP TABLE point_streams",
        version,
        "CREATE TABLE points (connection_id TEXT NOT NULL, entity TEXT NOT NULL, series_id TEXT NOT NULL, \
         recorded_at BIGINT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL, \
         PRIMARY KEY (connection_id, entity, series_id, recorded_at))",
        "CREATE INDEX points_by_time ON points (connection_id, entity, recorded_at, series_id)",
        "CREATE TABLE points_latest (connection_id TEXT NOT NULL, entity TEXT NOT NULL, series_id TEXT NOT NULL, \
         recorded_at BIGINT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL, \
         PRIMARY KEY (connection_id, entity, series_id))",
        "INSERT INTO points SELECT c.id, 'vehicle_location', v.s, v.t, v.d, 1 FROM connections c, \
         (SELECT 'vhc_b' AS s, 1790000000000000 AS t, '{\"vehicle_id\":\"vhc_b\",\"latitude\":2.0}' AS d \
          UNION ALL SELECT 'vhc_a', 1790000000000000, '{\"vehicle_id\":\"vhc_a\",\"latitude\":1.0}' \
          UNION ALL SELECT 'vhc_a', 1790000030000000, '{\"vehicle_id\":\"vhc_a\",\"latitude\":1.5}') v",
        "INSERT INTO points_latest SELECT connection_id, entity, series_id, MAX(recorded_at), MAX(data), 1 \
         FROM points GROUP BY connection_id, entity, series_id",
    ] {
        db.raw_sql(sql).await;
    }
    let store = db.reopen().await;
    let all = PointQuery {
        entity,
        series_id: None,
        from: None,
        until: None,
        after: None,
        limit: 10,
    };
    let points = store.list_points(&c, &all).await.unwrap();
    let read: Vec<(&str, i64)> = points
        .iter()
        .map(|p| {
            (
                p.series_id.as_str(),
                (p.recorded_at.micros() - T0.micros()) / 1_000_000,
            )
        })
        .collect();
    assert_eq!(read.len(), 3, "{read:?}");
    assert!(read.contains(&("vhc_a", 0)) && read.contains(&("vhc_b", 0)));
    assert_eq!(read[2], ("vhc_a", 30));
    assert!(points[2].data.contains("1.5"), "{}", points[2].data);
    let latest = store
        .latest_points(&c, entity, None, None, 10)
        .await
        .unwrap();
    let latest: Vec<(&str, i64)> = latest
        .iter()
        .map(|p| {
            (
                p.series_id.as_str(),
                (p.recorded_at.micros() - T0.micros()) / 1_000_000,
            )
        })
        .collect();
    assert_eq!(latest, vec![("vhc_a", 30), ("vhc_b", 0)]);
    // A page after the move: the moved instant is not added again, the new one is.
    let page = PageWrite {
        entity,
        records: Vec::new(),
        checkpoint: None,
        now: T0.plus_secs(60),
        seen_run: None,
        deleted: Vec::new(),
        closed: Vec::new(),
        skipped: 0,
        bases: Vec::new(),
        points: [30, 60]
            .into_iter()
            .map(|s| PointUpsert {
                series_id: "vhc_a".into(),
                recorded_at: T0.plus_secs(s),
                data: r#"{"latitude":3.0}"#.into(),
            })
            .collect(),
    };
    let counts = store.write_page(&c, &page).await.unwrap();
    assert_eq!((counts.added, counts.unchanged), (1, 1));
    assert_eq!(store.list_points(&c, &all).await.unwrap().len(), 4);
}

#[tokio::test]
async fn sqlite_points_move_to_integer_series() {
    let db = TestDb::sqlite().await;
    points_move_to_integer_series(db, "DELETE FROM schema_migrations WHERE version = 20").await;
}

#[tokio::test]
async fn postgres_points_move_to_integer_series() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    points_move_to_integer_series(db, "DELETE FROM schema_migrations WHERE version = 19").await;
}
