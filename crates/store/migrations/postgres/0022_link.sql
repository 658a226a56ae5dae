-- Link: single-use tokens with which an organization's end customer connects their own
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
