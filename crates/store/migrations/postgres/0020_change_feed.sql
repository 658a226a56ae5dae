-- The change feed (`GET /v1/changes`): each record carries the number of its latest change
-- (`change_seq`) and of the change that first stored it (`created_seq`). Numbers come from
-- one counter per connection, taken in the transaction that changes the records, so a feed
-- read in (change_seq, entity, id) order sees changes in commit order. No row per change:
-- a record changed twice is found once, at its latest change.
ALTER TABLE records ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;

-- Records stored before this migration are change 0 of their connection, in (entity, id)
-- order: no row is rewritten. The next change of a connection is number 1.
CREATE TABLE change_counters (
    connection_id TEXT COLLATE "C" PRIMARY KEY REFERENCES connections(id),
    last_seq BIGINT NOT NULL
);

-- The whole connection's feed, and one entity's.
CREATE INDEX records_feed ON records(connection_id, change_seq, entity, id);
CREATE INDEX records_entity_feed ON records(connection_id, entity, change_seq, id);

-- Webhook endpoints that name record event types (`record.*`) read the feed of each of their
-- organization's connections from a position of their own, moved in the transaction that
-- stores the deliveries made from it. Endpoints that do not ask for them cost nothing.
ALTER TABLE webhook_endpoints ADD COLUMN record_events BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX webhook_endpoints_record_events ON webhook_endpoints(id) WHERE record_events = TRUE;
CREATE TABLE webhook_record_cursors (
    endpoint_id TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id),
    org_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    entity TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (endpoint_id, connection_id)
);
