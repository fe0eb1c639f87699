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
-- Orders: refunds (money paid back for an application cancelled after payment).
ALTER TABLE orders DROP CONSTRAINT orders_business_check;
ALTER TABLE orders ADD CONSTRAINT orders_business_check CHECK (business IN ('first', 'renewal', 'revocation', 'refund'));
ALTER TABLE orders ADD COLUMN refund_of BIGINT REFERENCES orders(id);
ALTER TABLE orders ADD CONSTRAINT orders_refund_of_check CHECK (business <> 'refund' OR refund_of IS NOT NULL);
CREATE UNIQUE INDEX orders_one_refund ON orders(refund_of) WHERE refund_of IS NOT NULL;
-- Certificate queries by status and expiry (status, cert list --expiring-within, remind).
CREATE INDEX IF NOT EXISTS certificates_status_not_after ON certificates(status, not_after);
CREATE INDEX IF NOT EXISTS certificates_token ON certificates(token_serial);
-- Bindings record the site where the counter activated them.
ALTER TABLE bindings ADD COLUMN site TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar'));
