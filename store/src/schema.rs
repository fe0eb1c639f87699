//! Migrations, one folder per backend (`migrations/sqlite/`, `migrations/postgres/`), each in
//! its own dialect and types (SQLite's INTEGER/BLOB and table rebuilds; PostgreSQL's BIGINT,
//! BYTEA, identity keys and ALTER … CONSTRAINT). File N of both folders moves the schema to
//! version N in one transaction; SQLite tracks the version in `user_version`, PostgreSQL in
//! `schema_migrations`. Both end in the same tables with the same columns in the same order
//! (a test applies both and compares them), so a row digests the same on either.

use super::db::{Backend, Db, params};
use crate::error::{Result, StoreError};
use hljca_rules::Rule;

/// SQLite's migrations, one SQL file per schema version, applied in order; never change what
/// one does once shipped.
const SQLITE: &[&str] = &[
    include_str!("migrations/sqlite/001_init.sql"),
    include_str!("migrations/sqlite/002_applications.sql"),
    include_str!("migrations/sqlite/003_batch.sql"),
    include_str!("migrations/sqlite/004_lifecycle.sql"),
    include_str!("migrations/sqlite/005_audit_anchors.sql"),
    include_str!("migrations/sqlite/006_engine.sql"),
    include_str!("migrations/sqlite/007_counter_rules.sql"),
    include_str!("migrations/sqlite/008_operators.sql"),
    include_str!("migrations/sqlite/009_crl_files.sql"),
    include_str!("migrations/sqlite/010_api_idempotency.sql"),
    include_str!("migrations/sqlite/011_portal.sql"),
    include_str!("migrations/sqlite/012_sites.sql"),
    include_str!("migrations/sqlite/013_cert_roles.sql"),
    include_str!("migrations/sqlite/014_shared_state.sql"),
];

/// PostgreSQL's migrations (the same versions, in its dialect).
const POSTGRES: &[&str] = &[
    include_str!("migrations/postgres/001_init.sql"),
    include_str!("migrations/postgres/002_applications.sql"),
    include_str!("migrations/postgres/003_batch.sql"),
    include_str!("migrations/postgres/004_lifecycle.sql"),
    include_str!("migrations/postgres/005_audit_anchors.sql"),
    include_str!("migrations/postgres/006_engine.sql"),
    include_str!("migrations/postgres/007_counter_rules.sql"),
    include_str!("migrations/postgres/008_operators.sql"),
    include_str!("migrations/postgres/009_crl_files.sql"),
    include_str!("migrations/postgres/010_api_idempotency.sql"),
    include_str!("migrations/postgres/011_portal.sql"),
    include_str!("migrations/postgres/012_sites.sql"),
    include_str!("migrations/postgres/013_cert_roles.sql"),
    include_str!("migrations/postgres/014_shared_state.sql"),
];

/// The version from which every write binds the rows it changed into the audit log.
pub const ROW_BINDING_VERSION: i64 = 7;

/// The newest version this binary knows.
pub fn newest() -> i64 {
    SQLITE.len() as i64
}

/// The newest schema a binary works with: its own and the next. Migrations are expand-only
/// (they add tables, columns and values; what the binary before uses is taken away only one
/// version later), so after `hljca db migrate` by an upgraded site the others keep working
/// until they are upgraded.
pub fn newest_accepted() -> i64 {
    newest() + 1
}

/// Checks a shared (PostgreSQL) database's schema without changing it: only `hljca db migrate`
/// migrates a database other sites use. Returns the version found.
pub fn check_shared(db: &Db) -> Result<i64> {
    let current = version(db)?;
    if current > newest_accepted() {
        return Err(too_new(current));
    }
    if current < newest() {
        return Err(StoreError::refuse(
            Rule::Schema,
            format!(
                "database schema version {current} is older than this hljca's ({}); run \
                 `hljca db migrate` once (at any site: hljca binaries of schema {current} keep \
                 working on it), then run this again",
                newest()
            ),
        ));
    }
    Ok(current)
}

/// The schema version of the database (0 for an empty one).
pub fn version(db: &Db) -> Result<i64> {
    match db.backend() {
        Backend::Sqlite => db
            .query_row("PRAGMA user_version", params![], |r| r.get(0))
            .map_err(StoreError::db("user_version")),
        Backend::Postgres => {
            let has: i64 = db
                .query_row(
                    "SELECT count(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
                    params![],
                    |r| r.get(0),
                )
                .map_err(StoreError::db("schema version"))?;
            if has == 0 {
                return Ok(0);
            }
            db.query_row(
                "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                params![],
                |r| r.get(0),
            )
            .map_err(StoreError::db("schema version"))
        }
    }
}

/// True when the database holds no tables at all (a new PostgreSQL database).
pub fn is_empty(db: &Db) -> Result<bool> {
    let n: i64 = match db.backend() {
        Backend::Sqlite => db.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            params![],
            |r| r.get(0),
        ),
        Backend::Postgres => db.query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            params![],
            |r| r.get(0),
        ),
    }
    .map_err(StoreError::db("list tables"))?;
    Ok(n == 0)
}

fn too_new(current: i64) -> StoreError {
    StoreError::refuse(
        Rule::Schema,
        format!(
            "database schema version {current} is newer than this hljca understands ({}, and {} \
             after an upgrade elsewhere); upgrade hljca",
            newest(),
            newest_accepted()
        ),
    )
}

/// Brings the schema to the newest version; returns the version it found.
pub fn migrate(db: &mut Db) -> Result<i64> {
    let current = version(db)?;
    let newest = newest();
    if current > newest_accepted() {
        return Err(too_new(current));
    }
    if current >= newest {
        return Ok(current);
    }
    match db.backend() {
        Backend::Sqlite => migrate_sqlite(db, current)?,
        Backend::Postgres => migrate_postgres(db)?,
    }
    Ok(current)
}

fn migrate_sqlite(db: &Db, current: i64) -> Result<()> {
    // A migration may rebuild a table (SQLite's way to change a CHECK): foreign keys are off
    // while it runs (a PRAGMA that only works outside a transaction) and checked before commit.
    db.batch("PRAGMA foreign_keys = OFF")
        .map_err(StoreError::db("foreign_keys=OFF"))?;
    let result = (|| {
        for (i, sql) in SQLITE.iter().enumerate().skip(current as usize) {
            let tx = db
                .begin_write()
                .map_err(StoreError::db("begin migration"))?;
            // Another process may have migrated while this one waited for the lock.
            if version(&tx)? > i as i64 {
                continue;
            }
            tx.batch(sql).map_err(StoreError::db("migration"))?;
            let broken: Option<String> = tx
                .query_opt("PRAGMA foreign_key_check", params![], |r| r.get(0))
                .map_err(StoreError::db("foreign_key_check"))?;
            if let Some(table) = broken {
                return Err(StoreError::refuse(
                    Rule::Internal,
                    format!(
                        "migration {} left a dangling reference in table {table}",
                        i + 1
                    ),
                ));
            }
            tx.batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(StoreError::db("set user_version"))?;
            tx.commit().map_err(StoreError::db("commit migration"))?;
        }
        Ok(())
    })();
    db.batch("PRAGMA foreign_keys = ON")
        .map_err(StoreError::db("foreign_keys=ON"))?;
    result
}

fn migrate_postgres(db: &Db) -> Result<()> {
    // The write lock first: sites starting at once migrate one after the other, and the
    // second finds the work done.
    let tx = db
        .begin_write()
        .map_err(StoreError::db("begin migration"))?;
    migrate_postgres_in(&tx)?;
    tx.commit().map_err(StoreError::db("commit migration"))
}

/// Brings a PostgreSQL schema to the newest version inside the caller's write transaction
/// (`db copy` creates the schema and the rows in one).
pub fn migrate_postgres_in(tx: &super::Tx<'_>) -> Result<()> {
    tx.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(StoreError::db("schema_migrations"))?;
    let current = version(tx)?;
    if current > newest() {
        return Err(too_new(current));
    }
    for (i, sql) in POSTGRES.iter().enumerate().skip(current as usize) {
        tx.batch(sql).map_err(StoreError::db("migration"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![(i + 1) as i64, crate::time_fmt::ts(crate::time_fmt::now())],
        )
        .map_err(StoreError::db("record migration"))?;
    }
    tx.batch(&super::binding::postgres_triggers())
        .map_err(StoreError::db("install row binding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_every_version() {
        assert_eq!(SQLITE.len(), POSTGRES.len());
        for (i, (l, p)) in SQLITE.iter().zip(POSTGRES).enumerate() {
            // The same tables are touched by version i+1 on both.
            let tables = |sql: &str| {
                let mut t: Vec<String> = sql
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .collect::<Vec<_>>()
                    .windows(2)
                    .filter(|w| w[0].eq_ignore_ascii_case("TABLE"))
                    .map(|w| w[1].to_owned())
                    .filter(|n| !n.ends_with("_new") && n != "IF")
                    .collect();
                t.sort();
                t.dedup();
                t
            };
            let (lt, pt) = (tables(l), tables(p));
            assert!(
                pt.iter().all(|t| lt.contains(t)),
                "version {}: PostgreSQL touches {pt:?}, SQLite {lt:?}",
                i + 1
            );
        }
    }
}
