//! Idempotency keys of the client-certificate API: which key (of which operator) asked for
//! which request, under which `external_id` it is issued, and the serial it got.

use crate::db::{Tx, params};

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};

/// One idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    /// The operator certificate (serial, hex) the key belongs to.
    pub operator_cert: String,
    /// The key as the client sent it.
    pub key: String,
    /// SHA-256 (hex) of the request body it was first sent with.
    pub request_sha256: String,
    /// The `external_id` the issuance and its certificate rows carry.
    pub external_id: String,
    /// The identity certificate's serial, once the issuance committed.
    pub serial: Option<String>,
}

/// Claims `row`'s key; false when the operator already used it (nothing changed).
pub fn claim(tx: &Tx<'_>, row: &IdempotencyRow) -> Result<bool> {
    tx.execute(
        "INSERT INTO api_idempotency (operator_cert, idem_key, request_sha256, external_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (operator_cert, idem_key) DO NOTHING",
        params![
            row.operator_cert,
            row.key,
            row.request_sha256,
            row.external_id,
            ts(now())
        ],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("claim idempotency key"))
}

/// Records the serial issued under `external_id` (the engine's commit: in its transaction).
/// Nothing happens when no key carries that id (every issuance but the API's).
pub fn link(tx: &Tx<'_>, external_id: &str, serial: &str) -> Result<()> {
    super::exec(
        tx,
        "UPDATE api_idempotency SET serial = ?2 WHERE external_id = ?1 AND serial IS NULL",
        params![external_id, serial],
    )
    .map(|_| ())
    .map_err(StoreError::db("link idempotency key"))
}

impl Store {
    /// The key `key` of operator `operator_cert`.
    pub fn idempotency(&self, operator_cert: &str, key: &str) -> Result<Option<IdempotencyRow>> {
        self.conn
            .query_opt(
                "SELECT operator_cert, idem_key, request_sha256, external_id, serial \
                 FROM api_idempotency WHERE operator_cert = ?1 AND idem_key = ?2",
                params![operator_cert, key],
                |r| {
                    Ok(IdempotencyRow {
                        operator_cert: r.get(0)?,
                        key: r.get(1)?,
                        request_sha256: r.get(2)?,
                        external_id: r.get(3)?,
                        serial: r.get(4)?,
                    })
                },
            )
            .map_err(StoreError::db("idempotency key"))
    }
}
