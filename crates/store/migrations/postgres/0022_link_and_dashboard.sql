-- Link and the dashboard. Link: single-use tokens with which an organization's end customer connects their own
-- system on the hosted pages. Only hashes of the link and public tokens are kept; the new
-- connection's token waits here encrypted (bound to the row) until the organization's
-- backend exchanges the public token for it, then is erased.
CREATE TABLE link_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    token_hash TEXT NOT NULL UNIQUE,
    end_user TEXT NOT NULL,
    systems TEXT NOT NULL,
    connection_id TEXT COLLATE "C",
    redirect_url TEXT NOT NULL,
    brand_name TEXT,
    brand_colour TEXT,
    certificate_id TEXT COLLATE "C",
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    claimed_at BIGINT,
    completed_at BIGINT,
    result_connection_id TEXT COLLATE "C",
    public_token_hash TEXT UNIQUE,
    connection_token TEXT,
    exchanged_at BIGINT
);
CREATE INDEX link_tokens_org ON link_tokens(org_id, id);

-- The dashboard: an organization's people (passwords as argon2id PHC strings), their
-- sessions and one-time sign-in links (only hashes of the cookie and link tokens).
CREATE TABLE dashboard_users (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX dashboard_users_email_key ON dashboard_users(email);
CREATE TABLE dashboard_sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    user_id TEXT COLLATE "C" NOT NULL REFERENCES dashboard_users(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE TABLE dashboard_sign_in_links (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    user_id TEXT COLLATE "C" NOT NULL REFERENCES dashboard_users(id),
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The API request log of each organization, written in batches by the API processes and
-- kept for a configured time.
CREATE TABLE request_log (
    org_id TEXT COLLATE "C" NOT NULL,
    request_id TEXT COLLATE "C" NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_us BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, request_id)
);
CREATE INDEX request_log_age ON request_log(created_at);
