-- 11: the online application portal (issue 14). Applicant accounts, which account owns which
-- online application, payment orders waiting for the gateway, the gateway's notifications
-- (each id and nonce once: replays are refused) and the applicant's choice of mail or pickup.
CREATE TABLE portal_accounts (
    id             INTEGER PRIMARY KEY,
    login          TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('organization', 'person')),
    display_name   TEXT NOT NULL,
    mobile         TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    failed_logins  INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until   TEXT,
    created_at     TEXT NOT NULL
);
CREATE TABLE portal_applications (
    application_id INTEGER PRIMARY KEY REFERENCES applications(id),
    account_id     INTEGER NOT NULL REFERENCES portal_accounts(id)
);
CREATE INDEX portal_applications_account ON portal_applications(account_id);
CREATE TABLE portal_pay_orders (
    order_no        TEXT PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES applications(id),
    account_id      INTEGER NOT NULL REFERENCES portal_accounts(id),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    created_at      TEXT NOT NULL,
    paid_order_id   INTEGER REFERENCES orders(id),
    notification_id TEXT
);
CREATE INDEX portal_pay_orders_app ON portal_pay_orders(application_id);
CREATE TABLE gateway_notifications (
    notification_id TEXT PRIMARY KEY,
    nonce           TEXT NOT NULL UNIQUE,
    order_no        TEXT NOT NULL REFERENCES portal_pay_orders(order_no),
    amount_fen      INTEGER NOT NULL,
    transaction_id  TEXT NOT NULL,
    received_at     TEXT NOT NULL
);
CREATE TABLE portal_delivery_choices (
    application_id INTEGER PRIMARY KEY REFERENCES applications(id),
    method         TEXT NOT NULL CHECK (method IN ('mail', 'pickup')),
    recipient      TEXT,
    phone          TEXT,
    address        TEXT,
    pickup_site    TEXT CHECK (pickup_site IN ('harbin', 'hegang', 'qiqihar')),
    chosen_at      TEXT NOT NULL,
    CHECK (method <> 'mail' OR (recipient IS NOT NULL AND phone IS NOT NULL AND address IS NOT NULL)),
    CHECK (method <> 'pickup' OR pickup_site IS NOT NULL)
);
