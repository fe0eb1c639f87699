//! The database layer the store runs every statement through: one API over SQLite (embedded,
//! the default) and PostgreSQL (shared by the sites). Statements are written once with `?N`
//! placeholders (rewritten to `$N` for PostgreSQL, once per statement, and prepared once per
//! connection); values are SQLite's storage classes ([`Value`]) on both backends.

mod pg;
pub mod tls;
mod value;

use std::cell::Cell;
use std::time::Duration;

/// `params![…]`, at the crate root by `#[macro_export]`, also here beside the types it names.
pub use crate::params;
pub use value::{FromSql, ToSql, Value, ValueRef};

/// A statement's parameters.
pub type Params<'a> = &'a [&'a dyn ToSql];

/// `params![a, b, c]`: a parameter list of anything [`ToSql`].
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::db::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::db::ToSql),+] as &[&dyn $crate::db::ToSql]
    };
}

/// The advisory lock every PostgreSQL write transaction takes first ("hljca" in ASCII): writes
/// are serialised across sites as SQLite's `BEGIN IMMEDIATE` serialises them across processes.
pub const WRITE_LOCK: i64 = 0x0068_6c6a_6361;

/// The advisory lock key of a name: the first 8 bytes of its SHA-256.
fn lock_key(name: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// SQLite's error in words an operator can act on: a busy database, a full disk and a
/// read-only file are named as such, not by SQLite's code.
fn describe_sqlite(e: &rusqlite::Error) -> String {
    use rusqlite::ffi::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, msg) = e {
        let said = msg.as_deref().unwrap_or("");
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return "the database is busy: another hljca process held its write lock for \
                        longer than 30 s; try again when it is done"
                    .into();
            }
            ErrorCode::DiskFull => {
                return "the disk holding the database is full: free space, then try again \
                        (nothing was written)"
                    .into();
            }
            ErrorCode::SystemIoFailure => {
                return format!(
                    "the database file could not be read or written (disk full, or a failing \
                     or read-only disk): {said}"
                );
            }
            ErrorCode::ReadOnly => {
                return "the database is read-only here (a read-only home or file system): \
                        nothing can be changed"
                    .into();
            }
            _ => {}
        }
    }
    e.to_string()
}

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("{}", describe_sqlite(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no (or could not be reached). Its message is the whole story: the
    /// client error is not repeated as a cause.
    #[error("{}", pg::describe(.0))]
    Postgres(Box<postgres::Error>),
    /// A column did not hold what the caller reads it as.
    #[error("column {index}: {reason}")]
    Column {
        /// The column (0-based).
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// A query that must return a row returned none.
    #[error("the query returned no rows")]
    NoRow,
    /// Anything else (a URL that does not parse, a nested query while streaming).
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// True for a UNIQUE, CHECK or foreign-key violation.
    pub fn is_constraint(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::ConstraintViolation
            }
            DbError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        DbError::Postgres(Box::new(e))
    }
}

/// Results of this layer.
pub type DbResult<T> = std::result::Result<T, DbError>;

/// Which backend a database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file in the home.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// One connection.
pub struct Db {
    inner: Inner,
    /// The site this connection writes for (recorded on the rows it inserts).
    site: std::cell::RefCell<Option<String>>,
    /// Nesting guard: a transaction is open.
    in_tx: Cell<bool>,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Pg(Box<std::cell::RefCell<pg::Pg>>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// One result row.
pub struct Row<'a>(RowInner<'a>);

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` (0-based) as `T`.
    pub fn get<T: FromSql>(&self, i: usize) -> DbResult<T> {
        T::from_sql(self.get_ref(i)?).map_err(|reason| DbError::Column { index: i, reason })
    }

    /// Column `i` as it is stored.
    pub fn get_ref(&self, i: usize) -> DbResult<ValueRef<'_>> {
        match &self.0 {
            RowInner::Sqlite(r) => {
                use rusqlite::types::ValueRef as V;
                Ok(match r.get_ref(i)? {
                    V::Null => ValueRef::Null,
                    V::Integer(n) => ValueRef::Integer(n),
                    V::Real(f) => ValueRef::Real(f),
                    V::Text(t) => {
                        ValueRef::Text(std::str::from_utf8(t).map_err(|e| DbError::Column {
                            index: i,
                            reason: e.to_string(),
                        })?)
                    }
                    V::Blob(b) => ValueRef::Blob(b),
                })
            }
            RowInner::Pg(r) => pg::get_ref(r, i),
        }
    }

    /// How many columns the row has.
    pub fn column_count(&self) -> usize {
        match &self.0 {
            RowInner::Sqlite(r) => r.as_ref().column_count(),
            RowInner::Pg(r) => r.len(),
        }
    }

    /// The name of column `i`.
    pub fn name(&self, i: usize) -> String {
        match &self.0 {
            RowInner::Sqlite(r) => r
                .as_ref()
                .column_name(i)
                .map(str::to_owned)
                .unwrap_or_default(),
            RowInner::Pg(r) => r
                .columns()
                .get(i)
                .map(|c| c.name().to_owned())
                .unwrap_or_default(),
        }
    }
}

struct SqliteParam<'a>(&'a dyn ToSql);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self.0.to_sql() {
            ValueRef::Null => V::Null,
            ValueRef::Integer(n) => V::Integer(n),
            ValueRef::Real(f) => V::Real(f),
            ValueRef::Text(t) => V::Text(t.as_bytes()),
            ValueRef::Blob(b) => V::Blob(b),
        }))
    }
}

fn sqlite_params<'a>(params: Params<'a>) -> impl rusqlite::Params + 'a {
    rusqlite::params_from_iter(params.iter().map(|p| SqliteParam(*p)))
}

impl Db {
    /// Opens the SQLite file at `path` (which must exist): WAL, foreign keys, full sync.
    pub fn open_sqlite(path: &std::path::Path) -> DbResult<Db> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Every hot statement stays prepared for the whole run (issuance, audit, binding).
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Db {
            site: Default::default(),
            inner: Inner::Sqlite(conn),
            in_tx: Cell::new(false),
        })
    }

    /// Opens the SQLite file at `path` on read-only media: immutable (no WAL or lock files
    /// can be made there, and nothing can change it), so every write fails.
    pub fn open_sqlite_read_only(path: &std::path::Path) -> DbResult<Db> {
        let mut uri = String::from("file:");
        for b in path.to_string_lossy().bytes() {
            match b {
                b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
                _ => uri.push(b as char),
            }
        }
        uri.push_str("?immutable=1");
        let conn = rusqlite::Connection::open_with_flags(
            uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_URI
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Db {
            site: Default::default(),
            inner: Inner::Sqlite(conn),
            in_tx: Cell::new(false),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user@host/db`, or a Unix
    /// socket: `postgresql://user@/db?host=/run/postgresql`).
    pub fn open_postgres(url: &str) -> DbResult<Db> {
        Ok(Db {
            site: Default::default(),
            inner: Inner::Pg(Box::new(std::cell::RefCell::new(pg::Pg::connect(url)?))),
            in_tx: Cell::new(false),
        })
    }

    /// Names the site whose rows this connection writes (`None`: no site).
    pub fn set_site(&self, site: Option<String>) {
        if let (Inner::Pg(p), Some(code)) = (&self.inner, &site)
            && let Ok(mut pg) = p.try_borrow_mut()
        {
            // Only a label for the server's views: a failure here changes nothing else.
            let _ = pg.set_application_name(&format!("hljca-{code}"));
        }
        *self.site.borrow_mut() = site;
    }

    /// The site whose rows this connection writes.
    pub fn site(&self) -> Option<String> {
        self.site.borrow().clone()
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Pg(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection (backup, PRAGMAs); `None` on PostgreSQL.
    #[allow(dead_code)] // the backup uses it
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Pg(_) => None,
        }
    }

    fn pg(&self) -> DbResult<std::cell::RefMut<'_, pg::Pg>> {
        match &self.inner {
            Inner::Pg(p) => p.try_borrow_mut().map_err(|_| {
                DbError::Other("a statement ran while another one's rows were streaming".into())
            }),
            Inner::Sqlite(_) => Err(DbError::Other("not a PostgreSQL database".into())),
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: Params<'_>) -> DbResult<usize> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(sqlite_params(params))?),
            Inner::Pg(_) => self.pg()?.execute(sql, params),
        }
    }

    /// Takes the session-level advisory lock named `name` (a lease) without waiting; true
    /// when taken. It is held until [`Db::advisory_unlock`] or until the connection closes.
    pub fn try_advisory_lock(&self, name: &str) -> DbResult<bool> {
        self.pg()?.try_lock(lock_key(name))
    }

    /// Releases the advisory lock named `name`.
    pub fn advisory_unlock(&self, name: &str) -> DbResult<()> {
        self.pg()?.unlock(lock_key(name))
    }

    /// Runs one `INSERT` and returns the `id` it gave its row, by `INSERT … RETURNING id` on
    /// both backends (never a connection-wide "last id" that a trigger's insert could move).
    pub fn insert_id(&self, sql: &str, params: Params<'_>) -> DbResult<i64> {
        self.query_row(&format!("{sql} RETURNING id"), params, |r| r.get(0))
    }

    /// Runs statements without parameters, separated by `;` (schema changes, tests).
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Pg(_) => self.pg()?.batch(sql),
        }
    }

    /// Calls `f` on each row as it streams from the database (memory stays flat).
    pub fn for_each<E: From<DbError>>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql).map_err(DbError::from)?;
                let mut rows = stmt.query(sqlite_params(params)).map_err(DbError::from)?;
                while let Some(r) = rows.next().map_err(DbError::from)? {
                    f(&Row(RowInner::Sqlite(r)))?;
                }
                Ok(())
            }
            Inner::Pg(_) => {
                let mut pg = self.pg()?;
                pg.for_each(sql, params, |r| f(&Row(RowInner::Pg(r))))
            }
        }
    }

    /// Every row, each read by `f`.
    pub fn query_vec<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut out = Vec::new();
        self.for_each(sql, params, |r| {
            out.push(f(r)?);
            Ok::<(), DbError>(())
        })?;
        Ok(out)
    }

    /// The first row, read by `f`, or `None`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params))?;
                match rows.next()? {
                    Some(r) => f(&Row(RowInner::Sqlite(r))).map(Some),
                    None => Ok(None),
                }
            }
            Inner::Pg(_) => {
                let rows = self.pg()?.query(sql, params)?;
                rows.first().map(|r| f(&Row(RowInner::Pg(r)))).transpose()
            }
        }
    }

    /// The first row, read by `f`; no row is an error ([`DbError::NoRow`]).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        self.query_opt(sql, params, f)?.ok_or(DbError::NoRow)
    }

    /// Begins a write transaction: SQLite's `BEGIN IMMEDIATE` (the write lock first), or on
    /// PostgreSQL `BEGIN` and the hljca advisory lock (held to the commit), so what the
    /// transaction reads (the audit head, a CRL number) cannot change before it commits.
    pub fn begin_write(&self) -> DbResult<Tx<'_>> {
        if self.in_tx.get() {
            return Err(DbError::Other("a transaction is already open".into()));
        }
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Inner::Pg(_) => self.pg()?.begin_write()?,
        }
        self.in_tx.set(true);
        Ok(Tx {
            db: self,
            open: Cell::new(true),
        })
    }

    /// Begins a read-only snapshot (every query sees one instant until it ends).
    pub fn begin_snapshot(&self) -> DbResult<Tx<'_>> {
        if self.in_tx.get() {
            return Err(DbError::Other("a transaction is already open".into()));
        }
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Inner::Pg(_) => self
                .pg()?
                .batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?,
        }
        self.in_tx.set(true);
        Ok(Tx {
            db: self,
            open: Cell::new(true),
        })
    }

    /// Waits at most `wait` for the write lock, then lets it go (a health probe).
    pub fn probe_write(&self, wait: Duration) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => {
                c.busy_timeout(wait)?;
                let probe = c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
                if probe.is_err() && !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                c.busy_timeout(Duration::from_secs(30))?;
                Ok(probe?)
            }
            Inner::Pg(_) => self.pg()?.probe_write(wait),
        }
    }

    /// A number that changes whenever any connection commits a change (SQLite's
    /// `data_version`; on PostgreSQL the audit head, which every write moves).
    pub fn data_version(&self) -> DbResult<i64> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?),
            Inner::Pg(_) => self.query_row(
                "SELECT COALESCE(max(seq), 0) FROM audit_log",
                params![],
                |r| r.get(0),
            ),
        }
    }
}

/// An open transaction; rolled back when dropped without [`Tx::commit`].
pub struct Tx<'a> {
    db: &'a Db,
    open: Cell<bool>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(self) -> DbResult<()> {
        self.open.set(false);
        self.db.in_tx.set(false);
        self.db.batch("COMMIT").inspect_err(|_| {
            let _ = self.db.batch("ROLLBACK");
        })
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open.get() {
            let _ = self.db.batch("ROLLBACK");
            self.db.in_tx.set(false);
        }
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn sqlite_trouble_is_named_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = rusqlite::Connection::open(&path).unwrap();
        a.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .unwrap();
        let b = rusqlite::Connection::open(&path).unwrap();
        b.busy_timeout(Duration::from_millis(10)).unwrap();
        let busy = DbError::from(b.execute_batch("BEGIN IMMEDIATE").unwrap_err()).to_string();
        assert!(busy.contains("busy") && !busy.contains("(5)"), "{busy}");
        let full = DbError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ))
        .to_string();
        assert!(full.contains("disk") && full.contains("full"), "{full}");
        let shm = DbError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_SHMMAP),
            Some("disk I/O error".into()),
        ))
        .to_string();
        assert!(shm.contains("disk full"), "{shm}");
    }
}
