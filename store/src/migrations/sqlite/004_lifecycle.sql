-- 4: renewals and cross-platform bindings.
CREATE TABLE renewals (
    id          INTEGER PRIMARY KEY,
    old_serial  TEXT NOT NULL REFERENCES certificates(serial),
    new_serial  TEXT NOT NULL REFERENCES certificates(serial),
    renewed_at  TEXT NOT NULL,
    operator    TEXT NOT NULL
);
CREATE TABLE bindings (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    serial       TEXT NOT NULL,
    not_before   TEXT NOT NULL,
    not_after    TEXT NOT NULL,
    der          BLOB NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('pem', 'token')),
    token_label  TEXT,
    token_serial TEXT,
    materials    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    operator     TEXT NOT NULL,
    bound_at     TEXT NOT NULL
);
