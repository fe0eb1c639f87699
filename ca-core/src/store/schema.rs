//! Migrations. Each entry moves the schema one `user_version` forward, in one transaction.

use rusqlite::Connection;

use crate::error::{CoreError, Result};

const MIGRATIONS: &[&str] = &[
    // 1: certificates, audit log, CRLs.
    r#"
    CREATE TABLE certificates (
        id                INTEGER PRIMARY KEY,
        serial            TEXT NOT NULL UNIQUE,
        cert_type         TEXT NOT NULL,
        role              TEXT NOT NULL CHECK (role IN ('identity', 'seal')),
        identity_serial   TEXT REFERENCES certificates(serial),
        subject           TEXT NOT NULL,
        org_id            TEXT,
        applicant_json    TEXT NOT NULL,
        token_label       TEXT NOT NULL,
        token_serial      TEXT NOT NULL,
        key_id            TEXT NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'void', 'revoked', 'superseded')),
        not_before        TEXT,
        not_after         TEXT,
        der               BLOB,
        seal              BLOB,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        revoked_at        TEXT,
        revocation_reason TEXT,
        CHECK (status NOT IN ('issued', 'revoked', 'superseded') OR der IS NOT NULL)
    );
    CREATE INDEX certificates_status ON certificates(status);
    CREATE INDEX certificates_org_id ON certificates(org_id);
    CREATE TABLE audit_log (
        seq       INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        operator  TEXT NOT NULL,
        action    TEXT NOT NULL,
        object    TEXT NOT NULL,
        details   TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL UNIQUE
    );
    CREATE TABLE crls (
        number      INTEGER PRIMARY KEY,
        this_update TEXT NOT NULL,
        next_update TEXT NOT NULL,
        revoked     INTEGER NOT NULL,
        der         BLOB NOT NULL
    );
    "#,
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
