//! The certificate reads of the OCSP responder: one certificate's revocation state, the rows
//! changed since a moment, and the serials worth answering ahead.

use super::Store;
use super::db::params;
use crate::error::{Result, StoreError};

/// A certificate's status, revocation time and reason, as stored.
pub type RevocationState = (String, Option<String>, Option<String>);

impl Store {
    /// The stored status, revocation time and reason of `serial` (prepared once per
    /// connection: the responder asks this for every answer it signs).
    pub fn revocation_state(&self, serial: &str) -> Result<Option<RevocationState>> {
        self.conn
            .query_opt(
                "SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = ?1",
                params![serial],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::db("OCSP status"))
    }

    /// (serial, updated_at) of the rows changed at or after `since`, oldest first.
    pub fn changed_since(&self, since: &str) -> Result<Vec<(String, String)>> {
        self.conn
            .query_vec(
                "SELECT serial, updated_at FROM certificates WHERE updated_at >= ?1 \
                 ORDER BY updated_at",
                params![since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(StoreError::db("changed certificates"))
    }

    /// Serials whose OCSP answer is good or revoked, newest first.
    pub fn ocsp_serials(&self) -> Result<Vec<String>> {
        self.conn
            .query_vec(
                "SELECT serial FROM certificates \
                 WHERE status IN ('issued', 'revoked', 'superseded') ORDER BY id DESC",
                params![],
                |r| r.get(0),
            )
            .map_err(StoreError::db("OCSP serials"))
    }
}
