//! CRLs and revocations: the rows a CRL is built from, and the CRLs themselves.

use crate::db::{Db, Tx, params};
use time::OffsetDateTime;

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::{parse_ts, ts};
use crate::vocab::Reason;

/// One revoked certificate as a CRL lists it.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The `serial` column.
    pub serial: String,
    /// The `at` column.
    pub at: Option<OffsetDateTime>,
    /// The `reason` column.
    pub reason: Option<Reason>,
}

/// The next CRL number (read inside the CRL's own write transaction).
pub fn next_number(tx: &Tx<'_>) -> Result<i64> {
    let last: Option<i64> = tx
        .query_row("SELECT max(number) FROM crls", params![], |r| r.get(0))
        .map_err(StoreError::db("last CRL number"))?;
    Ok(last.unwrap_or(0) + 1)
}

/// Records a CRL: its number, dates, entry count, and the SHA-256 and name of its file in the
/// publish directory (the DER itself is not kept in the database).
pub fn insert(
    tx: &Tx<'_>,
    number: i64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: usize,
    sha256: &str,
    file: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO crls (number, this_update, next_update, revoked, sha256, file) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            number,
            ts(this_update),
            ts(next_update),
            revoked as i64,
            sha256,
            file
        ],
    )
    .map_err(StoreError::db("record CRL"))?;
    Ok(())
}

/// Calls `each` with every revoked certificate in serial order, one row at a time (a CRL of a
/// million entries is never held in memory).
pub fn for_each_revoked<E: From<StoreError> + From<crate::db::DbError>>(
    conn: &Db,
    mut each: impl FnMut(Revoked) -> Result<(), E>,
) -> Result<(), E> {
    conn.for_each(
        "SELECT serial, revoked_at, revocation_reason FROM certificates \
         WHERE status = 'revoked' ORDER BY serial",
        params![],
        |r| {
            let at: Option<String> = r.get(1).map_err(StoreError::db("revoked list"))?;
            let reason: Option<String> = r.get(2).map_err(StoreError::db("revoked list"))?;
            each(Revoked {
                serial: r.get(0).map_err(StoreError::db("revoked list"))?,
                at: at.as_deref().and_then(parse_ts),
                reason: reason.and_then(|x| x.parse().ok()),
            })
        },
    )
}

/// A CRL as the database records it.
#[derive(Debug, Clone)]
pub struct CrlRow {
    /// The `number` column.
    pub number: i64,
    /// The `this_update` column.
    pub this_update: String,
    /// The `next_update` column.
    pub next_update: String,
    /// Absent for CRLs made before schema version 9.
    pub sha256: Option<String>,
    /// File name in the publish directory.
    pub file: String,
}

/// The newest CRL's record.
pub fn latest(conn: &Db) -> Result<Option<CrlRow>> {
    conn.query_opt(
        "SELECT number, this_update, next_update, sha256, file FROM crls ORDER BY number DESC LIMIT 1",
        params![],
        |r| {
            Ok(CrlRow {
                number: r.get(0)?,
                this_update: r.get(1)?,
                next_update: r.get(2)?,
                sha256: r.get(3)?,
                file: r.get(4)?,
            })
        },
    )
    .map_err(StoreError::db("latest CRL"))
}

/// Revokes `serial` if it is issued or superseded; false when it was not (compare-and-set).
pub fn revoke(tx: &Tx<'_>, serial: &str, at: OffsetDateTime, reason: Reason) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET status = 'revoked', revoked_at = ?2, revocation_reason = ?3, updated_at = ?2 \
         WHERE serial = ?1 AND status IN ('issued', 'superseded')",
        params![serial, ts(at), reason.name()],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("revoke"))
}

/// Turns a hold into a final revocation with `reason` (the revocation date stays the hold's).
pub fn make_hold_final(tx: &Tx<'_>, serial: &str, reason: Reason) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET revocation_reason = ?2, updated_at = ?3 \
         WHERE serial = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
        params![serial, reason.name(), ts(OffsetDateTime::now_utc())],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("make hold final"))
}

/// Releases a held certificate: issued again, off the next CRL.
pub fn release(tx: &Tx<'_>, serial: &str) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET status = 'issued', revoked_at = NULL, revocation_reason = NULL, updated_at = ?2 \
         WHERE serial = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
        params![serial, ts(OffsetDateTime::now_utc())],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("release"))
}

/// The zero-amount order that keeps a (free) revocation in the business record.
pub fn revocation_order(
    tx: &Tx<'_>,
    application_id: Option<i64>,
    serial: &str,
    cert_type: &str,
    operator: &str,
    at: OffsetDateTime,
) -> Result<()> {
    tx.execute(
        "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, reference, \
         operator, paid_at) VALUES (?1, ?2, 'revocation', ?3, 0, 'free', NULL, ?4, ?5)",
        params![application_id, serial, cert_type, operator, ts(at)],
    )
    .map_err(StoreError::db("record revocation order"))?;
    Ok(())
}

impl Store {
    /// The newest CRL's number, thisUpdate and nextUpdate.
    pub fn last_crl(&self) -> Result<Option<(i64, String, String)>> {
        self.conn
            .query_opt(
                "SELECT number, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::db("last CRL"))
    }
}
