-- Key pairs Ironbridge generated for customers to register with their systems (NetSuite's
-- machine-to-machine certificate, option A). The private key is encrypted like credentials.
CREATE TABLE certificates (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id),
    system TEXT NOT NULL,
    private_key TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX certificates_org ON certificates(org_id, id);
