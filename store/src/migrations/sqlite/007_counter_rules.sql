-- 7: counter rules (issue 10). The USBKEY register: each token serial bound to one holder at
-- its first issuance. Refunds as orders. Hold and release need nothing new.
CREATE TABLE token_holders (
    token_serial TEXT PRIMARY KEY,
    token_label  TEXT NOT NULL,
    holder_kind  TEXT NOT NULL CHECK (holder_kind IN ('uscc', 'resident-id')),
    holder_id    TEXT NOT NULL,
    holder_name  TEXT NOT NULL,
    bound_at     TEXT NOT NULL,
    operator     TEXT NOT NULL
);
-- Tokens that already hold certificates are bound to the holder of their first one.
INSERT OR IGNORE INTO token_holders (token_serial, token_label, holder_kind, holder_id, holder_name, bound_at, operator)
    SELECT token_serial, token_label,
           CASE WHEN org_id IS NOT NULL THEN 'uscc' ELSE 'resident-id' END,
           COALESCE(org_id, json_extract(applicant_json, '$.expert_id'), json_extract(applicant_json, '$.rep_id'), subject),
           COALESCE(json_extract(applicant_json, '$.organization'), json_extract(applicant_json, '$.expert_name'), subject),
           created_at, 'migration'
    FROM certificates
    WHERE token_serial <> '' AND status IN ('issued', 'superseded', 'revoked')
    ORDER BY id;
-- Orders: refunds (money paid back for an application cancelled after payment).
CREATE TABLE orders_new (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER REFERENCES applications(id),
    cert_serial    TEXT,
    business       TEXT NOT NULL CHECK (business IN ('first', 'renewal', 'revocation', 'refund')),
    cert_type      TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen >= 0),
    method         TEXT NOT NULL,
    reference      TEXT,
    operator       TEXT NOT NULL,
    paid_at        TEXT NOT NULL,
    refund_of      INTEGER REFERENCES orders(id),
    CHECK (business <> 'refund' OR refund_of IS NOT NULL)
);
INSERT INTO orders_new (id, application_id, cert_serial, business, cert_type, amount_fen, method, reference, operator, paid_at)
    SELECT id, application_id, cert_serial, business, cert_type, amount_fen, method, reference, operator, paid_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_application ON orders(application_id);
CREATE UNIQUE INDEX orders_one_refund ON orders(refund_of) WHERE refund_of IS NOT NULL;
-- Certificate queries by status and expiry (status, cert list --expiring-within, remind).
CREATE INDEX IF NOT EXISTS certificates_status_not_after ON certificates(status, not_after);
CREATE INDEX IF NOT EXISTS certificates_token ON certificates(token_serial);
-- Bindings record the site where the counter activated them.
ALTER TABLE bindings ADD COLUMN site TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar'));
