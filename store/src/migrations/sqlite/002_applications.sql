-- 2: applications, their events and materials, orders, the SMS outbox, expiry reminders (issue 5).
CREATE TABLE applications (
    id               INTEGER PRIMARY KEY,
    cert_type        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'paid',
                                                    'issued', 'delivered', 'cancelled')),
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
CREATE INDEX applications_state ON applications(state);
CREATE TABLE application_events (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications(id),
    event          TEXT NOT NULL,
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    operator       TEXT NOT NULL,
    at             TEXT NOT NULL,
    details        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX application_events_app ON application_events(application_id);
CREATE TABLE materials (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications(id),
    kind           TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL CHECK (size > 0),
    media_type     TEXT NOT NULL CHECK (media_type IN ('application/pdf', 'image/png', 'image/jpeg')),
    file_name      TEXT NOT NULL,
    operator       TEXT NOT NULL,
    added_at       TEXT NOT NULL,
    UNIQUE (application_id, kind, sha256)
);
CREATE TABLE orders (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER REFERENCES applications(id),
    cert_serial    TEXT,
    business       TEXT NOT NULL CHECK (business IN ('first', 'renewal', 'revocation')),
    cert_type      TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen >= 0),
    method         TEXT NOT NULL,
    reference      TEXT,
    operator       TEXT NOT NULL,
    paid_at        TEXT NOT NULL
);
CREATE INDEX orders_application ON orders(application_id);
CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY,
    created_at     TEXT NOT NULL,
    mobile         TEXT NOT NULL,
    text           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    application_id INTEGER REFERENCES applications(id),
    cert_serial    TEXT
);
CREATE TABLE reminders (
    id          INTEGER PRIMARY KEY,
    cert_serial TEXT NOT NULL,
    window_days INTEGER NOT NULL CHECK (window_days >= 0),
    not_after   TEXT NOT NULL,
    outbox_id   INTEGER REFERENCES outbox(id),
    created_at  TEXT NOT NULL,
    UNIQUE (cert_serial, window_days)
);
