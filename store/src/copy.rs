//! Copying a whole CA database to another (`hljca db copy`, backups of a PostgreSQL CA,
//! restores): the schema made fresh on the target at the source's version, every row of every
//! table read from one snapshot of the source and written in one transaction on the target,
//! then checked (row counts per table, the audit chain, the bound rows and the operators'
//! signatures) before that transaction commits. A failure leaves the target as it was.

use super::db::{Backend, Db, DbError, ToSql, Tx, Value, params};
use super::{Location, Store, schema};
use crate::error::{Result, StoreError};
use hljca_rules::Rule;

/// What a copy moved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// Rows per table, as counted on the target after the copy (equal to the source's).
    pub tables: Vec<(String, i64)>,
    /// Audit rows whose chain verified on the target.
    pub audit_rows: usize,
    /// The schema version of both.
    pub schema_version: i64,
}

/// The tables of a database, oldest first (hljca's own; not `schema_migrations`).
pub fn tables(db: &Db) -> Result<Vec<String>> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        }
        Backend::Postgres => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name"
        }
    };
    db.query_vec(sql, params![], |r| r.get(0))
        .map_err(StoreError::db("list tables"))
}

fn count(db: &Db, table: &str) -> Result<i64> {
    db.query_row(&format!("SELECT count(*) FROM {table}"), params![], |r| {
        r.get(0)
    })
    .map_err(StoreError::db("count rows"))
}

/// Copies every row of `from` into `to` (inside `tx`, the target's open transaction).
fn copy_rows(from: &Db, tx: &Tx<'_>, tables: &[String]) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for t in tables {
        let mut n = 0i64;
        let mut insert: Option<String> = None;
        from.for_each(&format!("SELECT * FROM {t}"), params![], |row| {
            let cols = row.column_count();
            let sql = insert.get_or_insert_with(|| {
                let names: Vec<String> = (0..cols).map(|i| row.name(i)).collect();
                let marks: Vec<String> = (1..=cols).map(|i| format!("?{i}")).collect();
                format!(
                    "INSERT INTO {t} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                )
            });
            let values: Vec<Value> = (0..cols)
                .map(|i| row.get_ref(i).map(|v| v.to_owned()))
                .collect::<std::result::Result<_, DbError>>()?;
            let args: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            tx.execute(sql, &args).map_err(|e| {
                StoreError::refuse(Rule::Internal, format!("copying table {t}: {e}"))
            })?;
            n += 1;
            Ok::<(), StoreError>(())
        })?;
        out.push((t.clone(), n));
    }
    Ok(out)
}

/// Identity columns continue after the copied ids.
fn reset_sequences(tx: &Tx<'_>) -> Result<()> {
    let ids: Vec<(String, String)> = tx
        .query_vec(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(StoreError::db("identity columns"))?;
    for (t, c) in ids {
        tx.batch(&format!(
            "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), COALESCE(max({c}), 0) + 1, false) FROM {t}"
        ))
        .map_err(StoreError::db("identity sequence"))?;
    }
    Ok(())
}

/// Copies the database of `from` (read in one snapshot) into the empty database `to`;
/// refuses a target that holds anything. Checks counts and the audit log before it commits.
pub fn copy(from: &Store, to: &Location) -> Result<CopyReport> {
    let version = from.schema_version()?;
    if version != schema::newest() {
        return Err(StoreError::refuse(
            Rule::Schema,
            format!(
                "the source database is at schema version {version}, this hljca at {}; run `hljca db migrate` first",
                schema::newest()
            ),
        ));
    }
    let snapshot = from
        .conn
        .begin_snapshot()
        .map_err(StoreError::db("source snapshot"))?;
    let tables = tables(&snapshot)?;
    let target = match to {
        Location::Sqlite(path) => {
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                return Err(StoreError::refuse(
                    Rule::NoOverwrite,
                    format!(
                        "target database {} already exists; a copy only goes into an empty database",
                        path.display()
                    ),
                ));
            }
            Store::create(to)?
        }
        Location::Postgres(_) => Store::connect(to)?,
    };
    let result = (|| {
        if target.backend() == Backend::Postgres && !schema::is_empty(&target.conn)? {
            return Err(StoreError::refuse(
                Rule::NoOverwrite,
                format!(
                    "target database {} is not empty; a copy only goes into an empty database",
                    to.display()
                ),
            ));
        }
        let tx = target
            .conn
            .begin_write()
            .map_err(StoreError::db("begin copy"))?;
        if target.backend() == Backend::Postgres {
            schema::migrate_postgres_in(&tx)?;
            // Rows go in as they are: no foreign-key order, no row-binding triggers.
            tx.batch("SET LOCAL session_replication_role = replica")
                .map_err(|e| {
                    StoreError::refuse(Rule::DatabaseRole, format!(
                        "the PostgreSQL role cannot copy rows as they are (SET session_replication_role: {e}); use a superuser or the database owner with that right"
                    ))
                })?;
        } else {
            tx.batch("PRAGMA defer_foreign_keys = ON")
                .map_err(StoreError::db("defer foreign keys"))?;
        }
        let copied = copy_rows(&snapshot, &tx, &tables)?;
        if target.backend() == Backend::Postgres {
            reset_sequences(&tx)?;
        }
        // The `changed_rows` the SQLite target's triggers filled are not ours to bind.
        tx.execute("DELETE FROM changed_rows", params![])
            .map_err(StoreError::db("changed rows"))?;
        let mut counted = Vec::new();
        for (t, n) in &copied {
            let there = count(&tx, t)?;
            let here = count(&snapshot, t)?;
            if there != *n || here != *n {
                return Err(StoreError::refuse(
                    Rule::Internal,
                    format!(
                        "table {t}: the source has {here} rows, the target {there} after the copy"
                    ),
                ));
            }
            counted.push((t.clone(), there));
        }
        let audit_rows = crate::audit::verify(&tx)?;
        crate::audit::verify_rows(&tx)?;
        crate::audit::verify_signatures(&tx)?;
        tx.commit().map_err(StoreError::db("commit copy"))?;
        Ok(CopyReport {
            tables: counted,
            audit_rows,
            schema_version: version,
        })
    })();
    drop(snapshot);
    if result.is_err()
        && let Location::Sqlite(path) = to
    {
        drop(target);
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
    }
    result
}

impl Store {
    /// Writes one consistent snapshot of the database into the new SQLite file `path` while
    /// the CA keeps running: SQLite's `VACUUM INTO`, or a copy of PostgreSQL read in one
    /// REPEATABLE READ snapshot.
    pub fn snapshot_into(&self, path: &std::path::Path) -> Result<()> {
        match self.backend() {
            Backend::Sqlite => {
                let p = path.display().to_string().replace('\'', "''");
                self.conn
                    .batch(&format!("VACUUM INTO '{p}'"))
                    .map_err(StoreError::db("snapshot"))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(StoreError::io("setting permissions on", path))
            }
            Backend::Postgres => copy(self, &Location::Sqlite(path.to_path_buf())).map(|_| ()),
        }
    }
}

/// What `hljca db status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbStatus {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The file, or the URL without its password.
    pub database: String,
    /// The schema version found.
    pub schema_version: i64,
    /// The newest version this hljca knows.
    pub newest: i64,
    /// The database's schema version (the same as `schema_version`).
    pub schema: i64,
    /// The schema version this binary expects (the same as `newest`).
    pub binary: i64,
    /// The newest schema version this binary still works with (one newer than its own: every
    /// migration only adds, so a site not yet upgraded keeps working).
    pub binary_accepts_up_to: i64,
    /// Rows per table.
    pub tables: Vec<(String, i64)>,
}

/// The state of the database at `loc`, without changing it.
pub fn status(loc: &Location) -> Result<DbStatus> {
    let store = Store::connect(loc)?;
    let schema_version = store.schema_version()?;
    let mut counted = Vec::new();
    if schema_version > 0 {
        for t in tables(&store.conn)? {
            let n = count(&store.conn, &t)?;
            counted.push((t, n));
        }
    }
    Ok(DbStatus {
        backend: match store.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        database: loc.display(),
        schema_version,
        newest: schema::newest(),
        schema: schema_version,
        binary: schema::newest(),
        binary_accepts_up_to: schema::newest_accepted(),
        tables: counted,
    })
}

/// Brings the database at `loc` to the newest schema; returns (found, now).
pub fn migrate(loc: &Location) -> Result<(i64, i64)> {
    let mut store = Store::connect(loc)?;
    if store.schema_version()? == 0 {
        return Err(StoreError::refuse(
            Rule::Schema,
            format!(
                "database {} has no hljca schema; `hljca init` creates a CA, `hljca db copy` moves one",
                loc.display()
            ),
        ));
    }
    let found = schema::migrate(&mut store.conn)?;
    super::binding::install(&store.conn)?;
    Ok((found, store.schema_version()?))
}
