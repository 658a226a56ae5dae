-- Organizations, admin keys, connections, synced records and sync state.
-- Times are BIGINT microseconds since the Unix epoch; ids use the C collation so that keyset
-- pagination orders them bytewise, exactly as SQLite does.
CREATE TABLE organizations (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    connection_credits BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

CREATE TABLE connections (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    system TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    end_user TEXT,
    credentials TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disconnected_at BIGINT,
    replaces TEXT,
    replaced_by TEXT,
    last_success_at BIGINT,
    last_error_at BIGINT,
    last_error_code TEXT,
    consecutive_errors BIGINT NOT NULL DEFAULT 0,
    error_count BIGINT NOT NULL DEFAULT 0,
    circuit_state TEXT NOT NULL DEFAULT 'closed'
);
CREATE INDEX connections_org ON connections(org_id, id);

CREATE TABLE records (
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id),
    entity TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    remote_id TEXT COLLATE "C" NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    remote_created_at BIGINT,
    remote_updated_at BIGINT,
    remote_was_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (connection_id, entity, id)
);
CREATE UNIQUE INDEX records_remote ON records(connection_id, entity, remote_id);
CREATE INDEX records_modified ON records(connection_id, entity, modified_at);

CREATE TABLE sync_state (
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id),
    entity TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    cursor TEXT,
    last_started_at BIGINT,
    last_finished_at BIGINT,
    last_succeeded_at BIGINT,
    last_error TEXT,
    PRIMARY KEY (connection_id, entity)
);
