-- Background jobs with leases, and the outbox of events (written in the same transaction as
-- the change they describe).
CREATE TABLE jobs (
    id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    org_id TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C",
    payload TEXT NOT NULL,
    dedupe_key TEXT,
    status TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(status, run_at);
-- At most one queued or running job per dedupe key (one sync per connection at a time).
CREATE UNIQUE INDEX jobs_dedupe ON jobs(dedupe_key) WHERE status IN ('queued', 'running');

CREATE TABLE events (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C",
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_org ON events(org_id, id);
