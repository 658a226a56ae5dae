-- How many points each time series entity of a connection holds, kept with every page that
-- adds points and every purge that deletes some: counting millions of points for each
-- `GET /v1/connection` would take seconds.
ALTER TABLE sync_state ADD COLUMN points_stored BIGINT NOT NULL DEFAULT 0;
UPDATE sync_state SET points_stored = (SELECT COUNT(*) FROM points p
    WHERE p.connection_id = sync_state.connection_id AND p.entity = sync_state.entity);
