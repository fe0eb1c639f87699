//! The SQLite store: one file, WAL, foreign keys, migrations tracked in `user_version`.

mod certs;
mod schema;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{CoreError, Result};

pub use certs::{CertFilter, CertRecord, CertRole, CertStatus, NewPending, normalize_serial};

/// An open database.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
}

impl Store {
    /// Opens (creating with mode 0600 when missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            // Create the file ourselves so it is 0600 from the first byte.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(CoreError::io("creating database", path))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(CoreError::io("setting permissions on", path))?;
        let conn = Connection::open(path).map_err(CoreError::db("open"))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(CoreError::db("busy_timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(CoreError::db("journal_mode=WAL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(CoreError::db("foreign_keys=ON"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(CoreError::db("synchronous=FULL"))?;
        let mut store = Store { conn };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(CoreError::db("user_version"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn opens_private_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let s = Store::open(&p).unwrap();
        let v = s.schema_version().unwrap();
        assert!(v >= 4);
        drop(s);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Reopening applies nothing twice.
        assert_eq!(Store::open(&p).unwrap().schema_version().unwrap(), v);
    }

    #[test]
    fn serials_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("x.db")).unwrap();
        let p = NewPending {
            serial: "0102",
            cert_type: "medical",
            role: CertRole::Identity,
            identity_serial: None,
            subject: "CN=x",
            org_id: None,
            applicant_json: "{}",
            token_label: "t",
            token_serial: "s",
            key_id: "aa",
            external_id: None,
            application_id: None,
        };
        s.insert_pending(&p).unwrap();
        assert!(s.insert_pending(&p).is_err(), "UNIQUE serial");
        s.mark_void("0102").unwrap();
        assert_eq!(s.cert("01:02").unwrap().status, CertStatus::Void);
    }
}
