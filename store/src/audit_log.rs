//! The audit log's SQL: its tail, appends, the rows in order (streamed), the bound states,
//! the operators' signatures and the signed anchors. What the rows mean — the hash chain, the
//! signatures, the anchors — is `crate::audit`'s.

use std::collections::HashMap;

use super::db::{Db, Tx, params};
use crate::audit::AuditEntry;
use crate::error::{Result, StoreError};

/// The newest row's sequence number and hash.
pub fn tail(conn: &Db) -> Result<Option<(i64, String)>> {
    conn.query_opt(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(StoreError::db("audit tail"))
}

/// The newest row's time.
pub fn tail_at(conn: &Db) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT at FROM audit_log ORDER BY seq DESC LIMIT 1",
        params![],
        |r| r.get(0),
    )
    .map_err(StoreError::db("audit tail"))
}

/// The newest row's sequence number (0 for an empty log; one indexed lookup).
pub fn head_seq(conn: &Db) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE(max(seq), 0) FROM audit_log",
        params![],
        |r| r.get(0),
    )
    .map_err(StoreError::db("audit head"))
}

/// Appends `e` (its sequence number, site and hashes set by the caller), inside the caller's
/// write transaction.
pub fn insert(tx: &Tx<'_>, e: &AuditEntry) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (seq, at, operator, action, object, details, prev_hash, hash, site) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            e.seq,
            e.at,
            e.operator,
            e.action,
            e.object,
            e.details,
            e.prev_hash,
            e.hash,
            e.site
        ],
    )
    .map(|_| ())
    .map_err(StoreError::db("audit append"))
}

/// Calls `each` with every row in sequence order, streamed (memory stays flat).
pub fn for_each(conn: &Db, mut each: impl FnMut(AuditEntry) -> Result<()>) -> Result<()> {
    conn.for_each(
        "SELECT seq, at, operator, action, object, details, prev_hash, hash, site FROM audit_log ORDER BY seq",
        params![],
        |r| {
            each(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                action: r.get(3)?,
                object: r.get(4)?,
                details: r.get(5)?,
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
                site: r.get(8)?,
            })
        },
    )
}

/// The `state.bind` and `state.baseline` rows: (seq, details), in order.
pub fn for_each_state(conn: &Db, mut each: impl FnMut(i64, String) -> Result<()>) -> Result<()> {
    conn.for_each(
        "SELECT seq, details FROM audit_log WHERE action IN ('state.bind', 'state.baseline') ORDER BY seq",
        params![],
        |r| {
            let seq: i64 = r.get(0).map_err(StoreError::db("bound rows"))?;
            let details: String = r.get(1).map_err(StoreError::db("bound rows"))?;
            each(seq, details)
        },
    )
}

/// Every operator certificate (serial → DER), revoked ones included.
pub fn operator_certs(conn: &Db) -> Result<HashMap<String, Vec<u8>>> {
    Ok(conn
        .query_vec("SELECT cert_serial, der FROM operators", params![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(StoreError::db("operators"))?
        .into_iter()
        .collect())
}

/// The first row an operator signed, if any.
pub fn first_signed(conn: &Db) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT min(seq) FROM audit_log WHERE signature IS NOT NULL",
        params![],
        |r| r.get(0),
    )
    .map_err(StoreError::db("first signed row"))
}

/// One row's signature: (seq, hash, operator certificate, signature).
pub type Signed = (i64, String, Option<String>, Option<Vec<u8>>);

/// Calls `each` with every row's signature, in order, streamed.
pub fn for_each_signature(conn: &Db, mut each: impl FnMut(Signed) -> Result<()>) -> Result<()> {
    conn.for_each(
        "SELECT seq, hash, operator_cert, signature FROM audit_log ORDER BY seq",
        params![],
        |r| each((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

/// Records an anchor of the head `seq`/`head` signed by the seal maker.
pub fn insert_anchor(tx: &Tx<'_>, seq: i64, head: &str, at: &str, signature: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_anchors (seq, head, at, signature, signer) VALUES (?1, ?2, ?3, ?4, 'seal-maker')",
        params![seq, head, at, signature],
    )
    .map(|_| ())
    .map_err(StoreError::db("store audit anchor"))
}

/// One anchor: (seq, head, at, signature, signer).
pub type Anchor = (i64, String, String, Vec<u8>, String);

/// Every anchor, oldest first.
pub fn anchors(conn: &Db) -> Result<Vec<Anchor>> {
    conn.query_vec(
        "SELECT seq, head, at, signature, signer FROM audit_anchors ORDER BY id",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .map_err(StoreError::db("audit anchors"))
}

/// The hash of row `seq`, if it is there.
pub fn hash_at(conn: &Db, seq: i64) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT hash FROM audit_log WHERE seq = ?1",
        params![seq],
        |r| r.get(0),
    )
    .map_err(StoreError::db("anchored row"))
}
