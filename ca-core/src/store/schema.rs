//! Migrations. Each entry moves the schema one `user_version` forward, in one transaction.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{CoreError, Result};

/// One SQL file per schema version, applied in order; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_init.sql"),
    include_str!("migrations/002_applications.sql"),
    include_str!("migrations/003_batch.sql"),
    include_str!("migrations/004_lifecycle.sql"),
    include_str!("migrations/005_audit_anchors.sql"),
    include_str!("migrations/006_engine.sql"),
    include_str!("migrations/007_counter_rules.sql"),
    include_str!("migrations/008_operators.sql"),
    include_str!("migrations/009_crl_files.sql"),
    include_str!("migrations/010_api_idempotency.sql"),
    include_str!("migrations/011_portal.sql"),
];

/// The version from which every write binds the rows it changed into the audit log.
pub(crate) const ROW_BINDING_VERSION: i64 = 7;

/// Brings the schema to the newest version; returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<i64> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(CoreError::db("user_version"))?;
    let newest = MIGRATIONS.len() as i64;
    if current > newest {
        return Err(CoreError::Refused(format!(
            "database schema version {current} is newer than this hljca understands ({newest}); upgrade hljca"
        )));
    }
    if current == newest {
        return Ok(current);
    }
    // A migration may rebuild a table (SQLite's way to change a CHECK): foreign keys are off
    // while it runs (a PRAGMA that only works outside a transaction) and checked before commit.
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(CoreError::db("foreign_keys=OFF"))?;
    let result = (|| {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(CoreError::db("begin migration"))?;
            // Another process may have migrated while this one waited for the lock.
            let now: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(CoreError::db("user_version"))?;
            if now > i as i64 {
                continue;
            }
            tx.execute_batch(sql).map_err(CoreError::db("migration"))?;
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()
                .map_err(CoreError::db("foreign_key_check"))?;
            if let Some(table) = broken {
                return Err(CoreError::Refused(format!(
                    "migration {} left a dangling reference in table {table}",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(CoreError::db("set user_version"))?;
            tx.commit().map_err(CoreError::db("commit migration"))?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(CoreError::db("foreign_keys=ON"))?;
    result.map(|()| current)
}
