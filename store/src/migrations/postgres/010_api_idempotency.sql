-- 10: idempotency keys of the client-certificate API (`hljca serve`, issue 13). A job sends an
-- `Idempotency-Key` with `POST /api/v1/certificates`; the same key (of the same operator) again
-- gives the same certificate, a different request under it is refused. The issuance carries
-- `external_id` (see the engine); `serial` is set in the engine's commit transaction.
CREATE TABLE api_idempotency (
    operator_cert  TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    external_id    TEXT NOT NULL UNIQUE,
    serial         TEXT,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (operator_cert, idem_key)
);
