-- Key pairs Ironbridge generated for customers to register with their systems (NetSuite's
-- machine-to-machine certificate, option A). The private key is encrypted like credentials.
CREATE TABLE certificates (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    system TEXT NOT NULL,
    private_key TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX certificates_org ON certificates(org_id, id);
