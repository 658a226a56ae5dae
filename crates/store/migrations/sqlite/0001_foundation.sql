-- Organizations, admin keys, connections, synced records and sync state.
-- Times are integer microseconds since the Unix epoch (ordering must be chronological).
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    connection_credits INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id),
    system TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    end_user TEXT,
    credentials TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    disconnected_at INTEGER,
    replaces TEXT,
    replaced_by TEXT,
    last_success_at INTEGER,
    last_error_at INTEGER,
    last_error_code TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    circuit_state TEXT NOT NULL DEFAULT 'closed'
);
CREATE INDEX connections_org ON connections(org_id, id);

CREATE TABLE records (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    remote_created_at INTEGER,
    remote_updated_at INTEGER,
    remote_was_deleted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, entity, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX records_remote ON records(connection_id, entity, remote_id);
CREATE INDEX records_modified ON records(connection_id, entity, modified_at);

CREATE TABLE sync_state (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    entity TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor TEXT,
    last_started_at INTEGER,
    last_finished_at INTEGER,
    last_succeeded_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (connection_id, entity)
);
