-- 3: batch issuance jobs (issue 6). One row per `hljca batch issue` run, one row per file row
-- handled; certificates carry the row's external id themselves (certificates.external_id).
CREATE TABLE batch_jobs (
    id          INTEGER PRIMARY KEY,
    file_name   TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    operator    TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
    rows_total  INTEGER NOT NULL,
    issued      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batch_jobs_sha256 ON batch_jobs(file_sha256);
CREATE TABLE batch_rows (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES batch_jobs(id),
    line        INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    cert_type   TEXT NOT NULL,
    token       TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('issued', 'skipped', 'failed')),
    serials     TEXT NOT NULL,
    error       TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX batch_rows_job ON batch_rows(job_id);
CREATE INDEX batch_rows_external_id ON batch_rows(external_id);
