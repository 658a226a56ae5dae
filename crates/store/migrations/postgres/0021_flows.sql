-- Flows: declarative workflows between an organization's connections. A flow's document is
-- kept whole, each change a new numbered version; runs are jobs whose items are kept step by
-- step, so a run taken over after a crash resumes at its first unfinished item.
CREATE TABLE flows (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id),
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    trigger_type TEXT NOT NULL,
    trigger_connection_id TEXT,
    -- The event types of an `event` trigger (JSON array).
    trigger_event_types TEXT,
    -- Where the next run of a `record_changes` trigger starts in the change feed.
    feed_seq BIGINT,
    feed_entity TEXT,
    feed_id TEXT,
    -- When a `schedule` trigger is next due.
    next_run_at BIGINT,
    -- The run a `record_changes` trigger waits for before it starts another (changes in order).
    active_run_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, key)
);
CREATE INDEX flows_triggers ON flows (trigger_type, org_id) WHERE enabled = TRUE;

CREATE TABLE flow_versions (
    flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE flow_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT NOT NULL,
    flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    flow_version BIGINT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    step BIGINT NOT NULL,
    input_count BIGINT NOT NULL,
    error TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    job_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX flow_runs_flow ON flow_runs (org_id, flow_id, id);

CREATE TABLE flow_items (
    run_id TEXT NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    input TEXT NOT NULL,
    output TEXT,
    yielded BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    not_before BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step, idx)
);
-- The open items of a step, in order, without passing over the ended ones.
CREATE INDEX flow_items_open ON flow_items (run_id, step, status, idx);
