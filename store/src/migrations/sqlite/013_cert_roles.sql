-- 13: one signing path (issue 19). Every certificate the CA signs is a row of `certificates`
-- with its role: the holder's identity and seal certificates as before, and now the CA's own
-- working certificates (operator, OCSP signer, API TLS server, seal maker; encryption and CMP
-- signer reserved for what comes next), so revoking one puts it on the CRL and OCSP knows it.
-- SQLite cannot change a CHECK in place: rebuild the table (same columns, same order).
CREATE TABLE certificates_new (
    id                INTEGER PRIMARY KEY,
    serial            TEXT NOT NULL UNIQUE,
    cert_type         TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('identity', 'seal', 'encryption', 'operator',
                                                    'ocsp-signer', 'tls-server', 'seal-maker', 'cmp-signer')),
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
    issuance_id       INTEGER REFERENCES issuances(id),
    spki              BLOB,
    site              TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar')),
    CHECK (status NOT IN ('issued', 'revoked', 'superseded') OR der IS NOT NULL)
);
INSERT INTO certificates_new SELECT * FROM certificates;
DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
CREATE INDEX certificates_status ON certificates(status);
CREATE INDEX certificates_org_id ON certificates(org_id);
CREATE INDEX certificates_external_id ON certificates(external_id);
CREATE INDEX certificates_application_id ON certificates(application_id);
CREATE INDEX certificates_issuance ON certificates(issuance_id);
CREATE INDEX certificates_status_not_after ON certificates(status, not_after);
CREATE INDEX certificates_token ON certificates(token_serial);
CREATE INDEX certificates_revoked_serial ON certificates(serial, revoked_at, revocation_reason)
    WHERE status = 'revoked';
CREATE INDEX certificates_site ON certificates(site);
