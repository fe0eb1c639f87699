//! The USBKEY register: which holder each token serial belongs to.

use crate::db::{Tx, params};

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};
use crate::vocab::{Holder, HolderKind};

impl Store {
    /// The holder token `serial` is bound to, if any.
    pub fn token_holder(&self, serial: &str) -> Result<Option<Holder>> {
        holder_in(&self.conn, serial)
    }
}

fn holder_in(conn: &crate::Db, serial: &str) -> Result<Option<Holder>> {
    conn.query_opt(
        "SELECT holder_kind, holder_id, holder_name FROM token_holders WHERE token_serial = ?1",
        params![serial],
        |r| {
            let kind: String = r.get(0)?;
            Ok(Holder {
                kind: if kind == "uscc" {
                    HolderKind::Uscc
                } else {
                    HolderKind::ResidentId
                },
                id: r.get(1)?,
                name: r.get(2)?,
            })
        },
    )
    .map_err(StoreError::db("token holder"))
}

/// Binds token `serial` to `holder` at its first issuance (inside the issuance's commit);
/// refuses when it is bound to another holder meanwhile.
pub fn bind(tx: &Tx<'_>, serial: &str, label: &str, holder: &Holder, operator: &str) -> Result<()> {
    let bound = holder_in(tx, serial)?;
    crate::vocab::one_holder(serial, bound.as_ref(), holder)?;
    match bound {
        Some(_) => Ok(()),
        None => {
            tx.execute(
                "INSERT INTO token_holders (token_serial, token_label, holder_kind, holder_id, holder_name, bound_at, operator) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![serial, label, holder.kind.as_str(), holder.id, holder.name, ts(now()), operator],
            )
            .map_err(StoreError::db("bind token"))?;
            Ok(())
        }
    }
}
