//! Cross-platform bindings: the certificates of the former platform's CA activated at a counter.

use super::db::{Db, Tx, params};
use crate::error::{Result, StoreError};
use crate::vocab::Binding;

/// A binding to record.
#[derive(Debug)]
pub struct NewBinding<'a> {
    /// The `fingerprint` column.
    pub fingerprint: &'a str,
    /// The `issuer` column.
    pub issuer: &'a str,
    /// The `subject` column.
    pub subject: &'a str,
    /// The `serial` column.
    pub serial: &'a str,
    /// The `not_before` column.
    pub not_before: &'a str,
    /// The `not_after` column.
    pub not_after: &'a str,
    /// The `der` column.
    pub der: &'a [u8],
    /// The `source` column.
    pub source: &'a str,
    /// The `token_label` column.
    pub token_label: Option<&'a str>,
    /// The `token_serial` column.
    pub token_serial: Option<&'a str>,
    /// The `materials` column.
    pub materials: &'a str,
    /// The `operator` column.
    pub operator: &'a str,
    /// The `bound_at` column.
    pub bound_at: &'a str,
    /// The `site` column.
    pub site: &'a str,
}

/// Records an active binding; its id, or `None` when that certificate is already bound.
pub fn insert(tx: &Tx<'_>, b: &NewBinding<'_>) -> Result<Option<i64>> {
    let inserted = tx.query_row(
        "INSERT INTO bindings (fingerprint, issuer, subject, serial, not_before, not_after, der, source, token_label, \
         token_serial, materials, status, operator, bound_at, site) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'active', ?12, ?13, ?14) RETURNING id",
        params![
            b.fingerprint,
            b.issuer,
            b.subject,
            b.serial,
            b.not_before,
            b.not_after,
            b.der,
            b.source,
            b.token_label,
            b.token_serial,
            b.materials,
            b.operator,
            b.bound_at,
            b.site
        ],
        |r| r.get(0),
    );
    match inserted {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.is_constraint() => Ok(None),
        Err(e) => Err(StoreError::db("record binding")(e)),
    }
}

/// Every binding, newest first.
pub fn list(conn: &Db) -> Result<Vec<Binding>> {
    conn.query_vec(
        "SELECT id, fingerprint, issuer, subject, serial, not_after, source, token_label, status, operator, bound_at, \
         site FROM bindings ORDER BY id DESC",
        params![],
        |r| {
            Ok(Binding {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
                issuer: r.get(2)?,
                subject: r.get(3)?,
                serial: r.get(4)?,
                not_after: r.get(5)?,
                source: r.get(6)?,
                token_label: r.get(7)?,
                status: r.get(8)?,
                operator: r.get(9)?,
                bound_at: r.get(10)?,
                site: r.get::<Option<String>>(11)?.and_then(|x| x.parse().ok()),
            })
        },
    )
    .map_err(StoreError::db("list bindings"))
}
