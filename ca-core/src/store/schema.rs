//! Migrations. Each entry moves the schema one `user_version` forward, in one transaction.

use rusqlite::Connection;

use crate::error::{CoreError, Result};

/// One SQL file per schema version, applied in order; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_init.sql"),
    include_str!("migrations/002_applications.sql"),
    include_str!("migrations/003_batch.sql"),
    include_str!("migrations/004_lifecycle.sql"),
    include_str!("migrations/005_audit_anchors.sql"),
];

/// Brings the schema to the newest version.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(CoreError::db("user_version"))?;
    let newest = MIGRATIONS.len() as i64;
    if current > newest {
        return Err(CoreError::Refused(format!(
            "database schema version {current} is newer than this hljca understands ({newest}); upgrade hljca"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn
            .transaction()
            .map_err(CoreError::db("begin migration"))?;
        tx.execute_batch(sql).map_err(CoreError::db("migration"))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(CoreError::db("set user_version"))?;
        tx.commit().map_err(CoreError::db("commit migration"))?;
    }
    Ok(())
}
