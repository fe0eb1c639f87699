//! CRLs and revocations: the rows a CRL is built from, and the CRLs themselves.

use crate::store::db::{Db, Tx, params};
use time::OffsetDateTime;

use super::Store;
use crate::error::{CoreError, Result};
use crate::revoke::Reason;
use crate::time_fmt::{parse_ts, ts};

/// One revoked certificate as a CRL lists it.
#[derive(Debug, Clone)]
pub(crate) struct Revoked {
    pub serial: String,
    pub at: Option<OffsetDateTime>,
    pub reason: Option<Reason>,
}

/// The next CRL number (read inside the CRL's own write transaction).
pub(crate) fn next_number(tx: &Tx<'_>) -> Result<i64> {
    let last: Option<i64> = tx
        .query_row("SELECT max(number) FROM crls", params![], |r| r.get(0))
        .map_err(CoreError::db("last CRL number"))?;
    Ok(last.unwrap_or(0) + 1)
}

/// Records a CRL.
pub(crate) fn insert(
    tx: &Tx<'_>,
    number: i64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: usize,
    der: &[u8],
) -> Result<()> {
    tx.execute(
        "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![number, ts(this_update), ts(next_update), revoked as i64, der],
    )
    .map_err(CoreError::db("record CRL"))?;
    Ok(())
}

/// Every revoked certificate, in revocation order.
pub(crate) fn revoked(conn: &Db) -> Result<Vec<Revoked>> {
    conn.query_vec(
        "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE status = 'revoked' \
         ORDER BY revoked_at",
        params![],
        |r| {
            let at: Option<String> = r.get(1)?;
            let reason: Option<String> = r.get(2)?;
            Ok(Revoked {
                serial: r.get(0)?,
                at: at.as_deref().and_then(parse_ts),
                reason: reason.and_then(|x| x.parse().ok()),
            })
        },
    )
    .map_err(CoreError::db("revoked list"))
}

/// Revokes `serial` if it is issued or superseded; false when it was not (compare-and-set).
pub(crate) fn revoke(
    tx: &Tx<'_>,
    serial: &str,
    at: OffsetDateTime,
    reason: Reason,
) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET status = 'revoked', revoked_at = ?2, revocation_reason = ?3, updated_at = ?2 \
         WHERE serial = ?1 AND status IN ('issued', 'superseded')",
        params![serial, ts(at), reason.name()],
    )
    .map(|n| n == 1)
    .map_err(CoreError::db("revoke"))
}

/// Turns a hold into a final revocation with `reason` (the revocation date stays the hold's).
pub(crate) fn make_hold_final(tx: &Tx<'_>, serial: &str, reason: Reason) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET revocation_reason = ?2, updated_at = ?3 \
         WHERE serial = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
        params![serial, reason.name(), ts(OffsetDateTime::now_utc())],
    )
    .map(|n| n == 1)
    .map_err(CoreError::db("make hold final"))
}

/// Releases a held certificate: issued again, off the next CRL.
pub(crate) fn release(tx: &Tx<'_>, serial: &str) -> Result<bool> {
    tx.execute(
        "UPDATE certificates SET status = 'issued', revoked_at = NULL, revocation_reason = NULL, updated_at = ?2 \
         WHERE serial = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
        params![serial, ts(OffsetDateTime::now_utc())],
    )
    .map(|n| n == 1)
    .map_err(CoreError::db("release"))
}

/// The zero-amount order that keeps a (free) revocation in the business record.
pub(crate) fn revocation_order(
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
    .map_err(CoreError::db("record revocation order"))?;
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
            .map_err(CoreError::db("last CRL"))
    }
}
