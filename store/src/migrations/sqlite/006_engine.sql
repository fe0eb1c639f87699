-- 6: the issuance engine (issue 9). One `issuances` row per issuance (identity + seal go
-- together), holding its stage and the lease of the process working on it; certificate rows
-- point at it. Applications gain the `issuing` state (claimed by an issuance in progress).
CREATE TABLE issuances (
    id             INTEGER PRIMARY KEY,
    lease          TEXT NOT NULL,
    owner          TEXT NOT NULL,
    stage          TEXT NOT NULL CHECK (stage IN ('reserved', 'keys', 'signed', 'written', 'committed', 'void')),
    kind           TEXT NOT NULL CHECK (kind IN ('token', 'csr')),
    cert_type      TEXT NOT NULL,
    token_label    TEXT,
    token_serial   TEXT,
    application_id INTEGER REFERENCES applications(id),
    renewal_of     TEXT REFERENCES certificates(serial),
    fee_fen        INTEGER CHECK (fee_fen IS NULL OR fee_fen >= 0),
    pay_method     TEXT,
    pay_reference  TEXT,
    external_id    TEXT,
    operator       TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK (kind = 'csr' OR token_serial IS NOT NULL)
);
CREATE INDEX issuances_open ON issuances(stage) WHERE stage NOT IN ('committed', 'void');
-- At most one issuance in flight per application and per renewed certificate.
CREATE UNIQUE INDEX issuances_one_per_application ON issuances(application_id)
    WHERE application_id IS NOT NULL AND stage NOT IN ('committed', 'void');
CREATE UNIQUE INDEX issuances_one_per_renewal ON issuances(renewal_of)
    WHERE renewal_of IS NOT NULL AND stage NOT IN ('committed', 'void');
ALTER TABLE certificates ADD COLUMN issuance_id INTEGER REFERENCES issuances(id);
ALTER TABLE certificates ADD COLUMN spki BLOB;
CREATE INDEX certificates_issuance ON certificates(issuance_id);
-- Rows left pending by versions before the engine: one issuance each, at the `written` stage,
-- so `recover` finishes them when the token holds their certificates and voids them otherwise.
INSERT INTO issuances (lease, owner, stage, kind, cert_type, token_label, token_serial, application_id,
                       external_id, operator, created_at, updated_at)
    SELECT 'legacy-' || c.serial, 'before the issuance engine', 'written',
           CASE WHEN c.token_serial = '' THEN 'csr' ELSE 'token' END,
           c.cert_type, c.token_label, c.token_serial, c.application_id, c.external_id, 'migration',
           c.created_at, c.created_at
    FROM certificates c WHERE c.status = 'pending' AND c.identity_serial IS NULL;
UPDATE certificates SET issuance_id = (SELECT i.id FROM issuances i WHERE i.lease = 'legacy-' || certificates.serial)
    WHERE status = 'pending' AND identity_serial IS NULL;
UPDATE certificates SET issuance_id = (SELECT p.issuance_id FROM certificates p WHERE p.serial = certificates.identity_serial)
    WHERE status = 'pending' AND identity_serial IS NOT NULL;
-- Which key signed an anchor: the issuing CA (before the seal maker existed) or the seal maker.
ALTER TABLE audit_anchors ADD COLUMN signer TEXT NOT NULL DEFAULT 'issuing'
    CHECK (signer IN ('issuing', 'seal-maker'));
-- Applications: the `issuing` state (SQLite cannot change a CHECK in place: rebuild).
CREATE TABLE applications_new (
    id               INTEGER PRIMARY KEY,
    cert_type        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'paid',
                                                    'issuing', 'issued', 'delivered', 'cancelled')),
    channel          TEXT NOT NULL CHECK (channel IN ('counter', 'online')),
    site             TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar')),
    applicant_json   TEXT NOT NULL,
    renewal_of       TEXT,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    submitted_by     TEXT,
    reviewed_by      TEXT,
    rejection_reason TEXT,
    token_label      TEXT,
    token_serial     TEXT,
    delivery_method  TEXT CHECK (delivery_method IN ('mail', 'pickup')),
    recipient        TEXT,
    phone            TEXT,
    address          TEXT,
    tracking_no      TEXT,
    pickup_site      TEXT CHECK (pickup_site IN ('harbin', 'hegang', 'qiqihar')),
    collected_at     TEXT,
    CHECK (channel = 'online' OR site IS NOT NULL),
    CHECK (state <> 'rejected' OR rejection_reason IS NOT NULL)
);
INSERT INTO applications_new SELECT * FROM applications;
DROP TABLE applications;
ALTER TABLE applications_new RENAME TO applications;
CREATE INDEX applications_state ON applications(state);
-- Batch jobs are known to be running by their lease (a held lock), not by a process id.
ALTER TABLE batch_jobs ADD COLUMN lease TEXT;
