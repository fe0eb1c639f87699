//! The SQLite store: one file, WAL, foreign keys, migrations tracked in `user_version`.

pub(crate) mod api;
pub(crate) mod binding;
mod certs;
pub(crate) mod crls;
mod issuances;
pub(crate) mod jobs;
pub(crate) mod operators;
pub(crate) mod portal;
mod schema;
pub(crate) mod summary;
mod tokens;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{CoreError, Result};

pub use api::IdempotencyRow;
pub(crate) use certs::insert_pending;
pub use certs::{CertFilter, CertRecord, CertRole, CertStatus, NewPending, normalize_serial};
pub use issuances::{IssuanceKind, IssuanceRow, NewIssuance, Stage};
pub(crate) use issuances::{
    direct_order, mark_issued, record_issued, record_key, record_signed, set_stage, status_in,
    supersede_renewed, void_rows,
};
pub(crate) use issuances::{get as issuance_in, insert as insert_issuance};
pub use operators::OperatorRecord;
pub use portal::{DeliveryChoice, GatewayNotification, PayOrder, PortalAccount};
pub use summary::{CertCounts, CertSummary};
pub(crate) use tokens::bind as bind_token;

/// Runs one statement through the connection's statement cache: the hot writes are prepared
/// once per run, not once per row.
pub(crate) fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Signs the audit rows a transaction appends: the logged-in operator's USBKEY.
pub trait AuditSigner {
    /// Serial of the operator certificate (recorded on each row).
    fn cert_serial(&self) -> &str;
    /// Signs `msg` with the operator key (DER ECDSA signature).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>>;
}

/// An open database.
pub struct Store {
    pub(crate) conn: Connection,
    /// Who the `state.bind` audit rows name (the operator of the command).
    actor: String,
    /// The logged-in operator: every audit row a write appends is signed with their key.
    signer: Option<Box<dyn AuditSigner>>,
    /// Writes without an operator are allowed (creating the CA and its first operator).
    bootstrap: std::cell::Cell<bool>,
    /// The audit head when the current transaction began.
    tx_start: std::cell::Cell<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("actor", &self.actor)
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database of an initialised home. A missing, empty or schema-less file is an
    /// error, never a fresh start: only [`Store::create`] (`hljca init`) makes a database.
    pub fn open(path: &Path, home: &Path) -> Result<Store> {
        let missing = |reason| CoreError::DatabaseMissing {
            path: path.to_path_buf(),
            home: home.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|_| missing("is missing"))?;
        if meta.len() == 0 {
            return Err(missing("is empty (0 bytes)"));
        }
        let mut store = Store::connect(path)?;
        if store.schema_version()? == 0 {
            return Err(missing("has no hljca schema"));
        }
        let found = schema::migrate(&mut store.conn)?;
        binding::install(&store.conn)?;
        if found < schema::ROW_BINDING_VERSION {
            store.bind_baseline()?;
        }
        Ok(store)
    }

    /// Creates a new database (mode 0600 from the first byte); refuses an existing non-empty file.
    pub fn create(path: &Path) -> Result<Store> {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(CoreError::Refused(format!(
                "database {} already exists; `hljca init` never overwrites a CA's history",
                path.display()
            )));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(CoreError::io("creating database", path))?;
        let mut store = Store::connect(path)?;
        schema::migrate(&mut store.conn)?;
        binding::install(&store.conn)?;
        Ok(store)
    }

    /// Names the operator recorded on the audit rows that bind changed rows.
    pub(crate) fn set_actor(&mut self, actor: &str) {
        self.actor = actor.to_owned();
    }

    /// The logged-in operator, whose key signs every audit row from now on.
    pub(crate) fn set_signer(&mut self, signer: Box<dyn AuditSigner>) {
        self.signer = Some(signer);
    }

    /// Allows (or stops allowing) writes without an operator: only while the CA and its first
    /// operator are created.
    pub(crate) fn set_bootstrap(&self, on: bool) {
        self.bootstrap.set(on);
    }

    /// Binds every existing row once (a database from before row binding).
    fn bind_baseline(&self) -> Result<()> {
        let was = self.bootstrap.replace(true);
        let done = self.write("bind existing rows", |tx| {
            let rows = binding::current(tx)?;
            crate::audit::append(
                tx,
                "migration",
                "state.baseline",
                "rows",
                &serde_json::json!({ "rows": rows }),
            )
        });
        self.bootstrap.set(was);
        done
    }

    fn connect(path: &Path) -> Result<Store> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(CoreError::io("setting permissions on", path))?;
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(CoreError::db("open"))?;
        // Every hot statement stays prepared for the whole run (issuance, audit, binding).
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(CoreError::db("busy_timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(CoreError::db("journal_mode=WAL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(CoreError::db("foreign_keys=ON"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(CoreError::db("synchronous=FULL"))?;
        Ok(Store {
            conn,
            actor: "hljca".into(),
            signer: None,
            bootstrap: std::cell::Cell::new(false),
            tx_start: std::cell::Cell::new(0),
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it: the only way anything is
    /// written. IMMEDIATE takes the write lock first, so what `f` reads (the audit head, a CRL
    /// number, a state to compare-and-set) cannot change under it before the commit.
    pub(crate) fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self.begin(what)?;
        let value = f(&tx)?;
        self.commit(tx, what)?;
        Ok(value)
    }

    /// Commits a transaction from [`Store::begin`], first binding the rows it changed into the
    /// audit log (one `state.bind` row with their digests, see [`binding`]).
    pub(crate) fn commit(&self, tx: Transaction<'_>, what: &'static str) -> Result<()> {
        let rows = binding::take_changed(&tx)?;
        if !rows.is_empty() {
            crate::audit::append(
                &tx,
                &self.actor,
                "state.bind",
                what,
                &serde_json::json!({ "rows": rows }),
            )?;
        }
        self.sign_new_rows(&tx)?;
        tx.commit().map_err(CoreError::db(what))
    }

    /// Signs the audit rows this transaction appended with the operator's key; without a
    /// logged-in operator nothing may be written (outside the bootstrap of a new CA).
    fn sign_new_rows(&self, tx: &Transaction<'_>) -> Result<()> {
        let new: Vec<(i64, String)> = {
            let mut stmt = tx
                .prepare_cached("SELECT seq, hash FROM audit_log WHERE seq > ?1 ORDER BY seq")
                .map_err(CoreError::db("audit rows to sign"))?;
            stmt.query_map([self.tx_start.get()], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(CoreError::db("audit rows to sign"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CoreError::db("audit rows to sign"))?
        };
        if new.is_empty() {
            return Ok(());
        }
        let Some(signer) = &self.signer else {
            if self.bootstrap.get() {
                return Ok(());
            }
            return Err(CoreError::NotLoggedIn);
        };
        for (seq, hash) in new {
            let msg = crate::audit::signed_message(seq, &hash, signer.cert_serial());
            let sig = signer.sign(msg.as_bytes())?;
            exec(
                tx,
                "UPDATE audit_log SET operator_cert = ?2, signature = ?3 WHERE seq = ?1",
                rusqlite::params![seq, signer.cert_serial(), sig],
            )
            .map_err(CoreError::db("sign audit row"))?;
        }
        Ok(())
    }

    /// Begins a `BEGIN IMMEDIATE` transaction for a caller that commits it itself (a write
    /// whose steps do not fit one closure); as [`Store::write`], it is the write lock first.
    pub(crate) fn begin(&self, what: &'static str) -> Result<Transaction<'_>> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(CoreError::db(what))?;
        let head: i64 = tx
            .query_row("SELECT COALESCE(max(seq), 0) FROM audit_log", [], |r| {
                r.get(0)
            })
            .map_err(CoreError::db(what))?;
        self.tx_start.set(head);
        Ok(tx)
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
        let s = Store::create(&p).unwrap();
        let v = s.schema_version().unwrap();
        assert!(v >= 4);
        drop(s);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Reopening applies nothing twice.
        assert_eq!(
            Store::open(&p, dir.path())
                .unwrap()
                .schema_version()
                .unwrap(),
            v
        );
        // ... but never creates over an existing one, nor opens a missing or empty one.
        assert!(Store::create(&p).is_err());
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(
            Store::open(&p, dir.path()),
            Err(CoreError::DatabaseMissing { .. })
        ));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            Store::open(&p, dir.path()),
            Err(CoreError::DatabaseMissing { .. })
        ));
        assert!(!p.exists(), "open must not create a database");
    }

    #[test]
    fn serials_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(&dir.path().join("x.db")).unwrap();
        s.set_bootstrap(true);
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
            issuance_id: 0,
        };
        s.write("t", |tx| {
            tx.execute_batch("PRAGMA defer_foreign_keys = ON").unwrap();
            insert_pending(tx, &p)?;
            assert!(insert_pending(tx, &p).is_err(), "UNIQUE serial");
            tx.execute("DELETE FROM certificates", []).unwrap();
            Ok(())
        })
        .unwrap();
        assert!(s.cert("01:02").is_err());
    }
}
