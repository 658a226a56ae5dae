-- Points of time series (vehicle locations): append-only, one per series and instant,
-- kept apart from records (no raw payload, no hash), clustered by series and time so a
-- vehicle's history is one range, with a second index by time for pages across series and
-- for the retention purge.
CREATE TABLE points (
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    series_id TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, entity, series_id, recorded_at)
) WITHOUT ROWID;
CREATE INDEX points_by_time ON points (connection_id, entity, recorded_at, series_id);

-- The newest point of each series, kept as points arrive (the latest position per vehicle
-- without scanning the history).
CREATE TABLE points_latest (
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    series_id TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, entity, series_id)
) WITHOUT ROWID;
