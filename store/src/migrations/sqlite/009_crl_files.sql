-- 9: CRLs are files (issue 12). The database keeps each CRL's number, dates, entry count,
-- SHA-256 and file name in the publish directory, not a copy of the DER: a CRL of a million
-- entries is tens of megabytes, written once and streamed. CRLs made before this version have no
-- recorded hash (their files are in the publish directory as issuing-N.crl).
CREATE TABLE crls_new (
    number      INTEGER PRIMARY KEY,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    revoked     INTEGER NOT NULL,
    sha256      TEXT,
    file        TEXT NOT NULL
);
INSERT INTO crls_new (number, this_update, next_update, revoked, sha256, file)
    SELECT number, this_update, next_update, revoked, NULL, 'issuing-' || number || '.crl' FROM crls;
DROP TABLE crls;
ALTER TABLE crls_new RENAME TO crls;
-- The CRL reads the revoked certificates in serial order from this index alone (covering: a
-- million entries without a million table lookups).
CREATE INDEX certificates_revoked_serial ON certificates(serial, revoked_at, revocation_reason)
    WHERE status = 'revoked';
