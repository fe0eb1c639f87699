-- 1: certificates, audit log, CRLs.
CREATE TABLE certificates (
    id                INTEGER PRIMARY KEY,
    serial            TEXT NOT NULL UNIQUE,
    cert_type         TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('identity', 'seal')),
    identity_serial   TEXT REFERENCES certificates(serial),
    subject           TEXT NOT NULL,
    org_id            TEXT,
    applicant_json    TEXT NOT NULL,
    token_label       TEXT NOT NULL,
    token_serial      TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'void', 'revoked', 'superseded')),
    not_before        TEXT,
    not_after         TEXT,
    der               BLOB,
    seal              BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    revoked_at        TEXT,
    revocation_reason TEXT,
    external_id       TEXT,
    application_id    INTEGER,
    CHECK (status NOT IN ('issued', 'revoked', 'superseded') OR der IS NOT NULL)
);
CREATE INDEX certificates_status ON certificates(status);
CREATE INDEX certificates_org_id ON certificates(org_id);
CREATE INDEX certificates_external_id ON certificates(external_id);
CREATE INDEX certificates_application_id ON certificates(application_id);
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    operator  TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE TABLE crls (
    number      INTEGER PRIMARY KEY,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    revoked     INTEGER NOT NULL,
    der         BLOB NOT NULL
);
