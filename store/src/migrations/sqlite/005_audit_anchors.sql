-- 5: signed anchors of the audit log's head, made with every CRL (truncation evidence).
CREATE TABLE audit_anchors (
    id        INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    head      TEXT NOT NULL,
    at        TEXT NOT NULL,
    signature BLOB NOT NULL
);
