-- 8: operators (issue 11). Each member of staff has an operator certificate on their own USBKEY;
-- audit rows carry the operator certificate and the operator key's signature over the row hash.
CREATE TABLE operators (
    cert_serial  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    site         TEXT NOT NULL CHECK (site IN ('harbin', 'hegang', 'qiqihar')),
    roles        TEXT NOT NULL,
    token_label  TEXT NOT NULL,
    token_serial TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    der          BYTEA NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    not_after    TEXT NOT NULL,
    enrolled_at  TEXT NOT NULL,
    enrolled_by  TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX operators_token ON operators(token_serial);
ALTER TABLE audit_log ADD COLUMN operator_cert TEXT;
ALTER TABLE audit_log ADD COLUMN signature BYTEA;
