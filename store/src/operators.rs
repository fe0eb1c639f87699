//! Operator rows: who may act on the CA, with which roles, from which USBKEY.

use crate::db::{Row, Tx, params};
use serde::Serialize;

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};

/// One operator.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorRecord {
    /// Serial of the operator certificate (hex).
    pub cert_serial: String,
    /// The staff member's name.
    pub name: String,
    /// Their site.
    pub site: String,
    /// Their roles (comma-separated keys).
    pub roles: Vec<String>,
    /// Their USBKEY's label.
    pub token_label: String,
    /// Their USBKEY's serial.
    pub token_serial: String,
    /// `CKA_ID` of the operator key (hex).
    pub key_id: String,
    /// The certificate (DER).
    #[serde(skip)]
    pub der: Vec<u8>,
    /// active or revoked.
    pub status: String,
    /// Validity end.
    pub not_after: String,
    /// When enrolled.
    pub enrolled_at: String,
    /// By whom.
    pub enrolled_by: String,
}

const COLS: &str = "cert_serial, name, site, roles, token_label, token_serial, key_id, der, status, not_after, \
                    enrolled_at, enrolled_by";

fn from_row(r: &Row<'_>) -> crate::db::DbResult<OperatorRecord> {
    let roles: String = r.get(3)?;
    Ok(OperatorRecord {
        cert_serial: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        roles: roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        token_label: r.get(4)?,
        token_serial: r.get(5)?,
        key_id: r.get(6)?,
        der: r.get(7)?,
        status: r.get(8)?,
        not_after: r.get(9)?,
        enrolled_at: r.get(10)?,
        enrolled_by: r.get(11)?,
    })
}

/// Inserts an active operator.
pub fn insert(tx: &Tx<'_>, o: &OperatorRecord) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO operators ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9, ?10, ?11)"),
        params![
            o.cert_serial,
            o.name,
            o.site,
            o.roles.join(","),
            o.token_label,
            o.token_serial,
            o.key_id,
            o.der,
            o.not_after,
            o.enrolled_at,
            o.enrolled_by
        ],
    )
    .map_err(StoreError::db("insert operator"))?;
    Ok(())
}

/// Replaces an operator's roles; false when no active operator has that serial.
pub fn set_roles(tx: &Tx<'_>, serial: &str, roles: &[String]) -> Result<bool> {
    tx.execute(
        "UPDATE operators SET roles = ?2 WHERE cert_serial = ?1 AND status = 'active'",
        params![serial, roles.join(",")],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("set operator roles"))
}

/// Revokes an operator; false when no active operator has that serial.
pub fn revoke(tx: &Tx<'_>, serial: &str) -> Result<bool> {
    tx.execute(
        "UPDATE operators SET status = 'revoked', revoked_at = ?2 WHERE cert_serial = ?1 AND status = 'active'",
        params![serial, ts(now())],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("revoke operator"))
}

impl Store {
    /// Every operator, in enrolment order.
    pub fn operators(&self) -> Result<Vec<OperatorRecord>> {
        self.conn
            .query_vec(
                &format!("SELECT {COLS} FROM operators ORDER BY enrolled_at, cert_serial"),
                params![],
                from_row,
            )
            .map_err(StoreError::db("operators"))
    }

    /// The operator with certificate `serial`.
    pub fn operator(&self, serial: &str) -> Result<Option<OperatorRecord>> {
        self.conn
            .query_opt(
                &format!("SELECT {COLS} FROM operators WHERE cert_serial = ?1"),
                params![serial],
                from_row,
            )
            .map_err(StoreError::db("operator"))
    }

    /// The active operator whose USBKEY has serial `token_serial`, if any (a holder's
    /// certificate never goes onto it).
    pub fn operator_on_token(&self, token_serial: &str) -> Result<Option<OperatorRecord>> {
        self.conn
            .query_opt(
                &format!(
                    "SELECT {COLS} FROM operators WHERE token_serial = ?1 AND status = 'active' \
                     ORDER BY enrolled_at LIMIT 1"
                ),
                params![token_serial],
                from_row,
            )
            .map_err(StoreError::db("operator by USBKEY"))
    }
}
