-- 14: everything three sites share lives in the database (issue 20). Blobs are content
-- addressed (SHA-256, hex) and kept in chunks of at most 1 MiB, so materials and CRLs are
-- streamed in and out; documents are the CA's own files every site needs (its certificates,
-- its shared configuration), by name.
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE blob_chunks (
    sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    seq    BIGINT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (sha256, seq)
);
CREATE TABLE ca_documents (
    name       TEXT PRIMARY KEY,
    data       BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE portal_sessions (
    id_hash    TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
