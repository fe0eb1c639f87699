//! Binding business rows into the audit log. Every write transaction records which rows of
//! `certificates`, `orders`, `applications` and `token_holders` it changed (temporary triggers on
//! this connection), and before it commits appends one `state.bind` audit row with a SHA-256
//! digest of each changed row as written. `audit verify` recomputes the digests of the current
//! rows and compares each with the last one bound: a row edited, added or deleted outside hljca
//! no longer matches the hash-chained log.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::db::{Backend, Db, Row, Tx, ValueRef, params};
use crate::error::{Result, StoreError};

/// The bound tables and their key column.
pub const TABLES: [(&str, &str); 5] = [
    ("certificates", "serial"),
    ("orders", "id"),
    ("applications", "id"),
    ("token_holders", "token_serial"),
    ("operators", "cert_serial"),
];

/// Columns added to a bound table after row binding began: left out of the digest while NULL,
/// so the rows bound before the column existed still match.
const LATE_COLUMNS: [(&str, &str); 1] = [("certificates", "site")];

/// The digest a deleted row is bound to.
pub const DELETED: &str = "deleted";

/// Creates the temporary change log and its triggers on this connection (SQLite). On
/// PostgreSQL the triggers are part of the schema ([`postgres_triggers`]) and the change log
/// is made when the connection opens.
pub fn install(conn: &Db) -> Result<()> {
    if conn.backend() == Backend::Postgres {
        return Ok(());
    }
    let mut sql = String::from(
        "CREATE TEMP TABLE IF NOT EXISTS changed_rows (tbl TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tbl, key));",
    );
    for (t, k) in TABLES {
        sql.push_str(&format!(
            "CREATE TEMP TRIGGER IF NOT EXISTS bind_{t}_ins AFTER INSERT ON main.{t} BEGIN \
               INSERT OR IGNORE INTO changed_rows VALUES ('{t}', CAST(NEW.{k} AS TEXT)); END;\
             CREATE TEMP TRIGGER IF NOT EXISTS bind_{t}_upd AFTER UPDATE ON main.{t} BEGIN \
               INSERT OR IGNORE INTO changed_rows VALUES ('{t}', CAST(NEW.{k} AS TEXT)); \
               INSERT OR IGNORE INTO changed_rows VALUES ('{t}', CAST(OLD.{k} AS TEXT)); END;\
             CREATE TEMP TRIGGER IF NOT EXISTS bind_{t}_del AFTER DELETE ON main.{t} BEGIN \
               INSERT OR IGNORE INTO changed_rows VALUES ('{t}', CAST(OLD.{k} AS TEXT)); END;"
        ));
    }
    conn.batch(&sql)
        .map_err(StoreError::db("install row binding"))
}

/// PostgreSQL's row binding: one trigger function recording the changed key into the
/// session's `changed_rows`, only in hljca's write transactions (which `SET LOCAL hljca.bind`);
/// edits from any other session change nothing there, and `audit verify` finds them.
pub fn postgres_triggers() -> String {
    let mut sql = String::from(
        "CREATE OR REPLACE FUNCTION hljca_bind() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF current_setting('hljca.bind', true) = 'on' THEN \
             IF TG_OP <> 'DELETE' THEN \
               INSERT INTO pg_temp.changed_rows VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0]) ON CONFLICT DO NOTHING; \
             END IF; \
             IF TG_OP <> 'INSERT' THEN \
               INSERT INTO pg_temp.changed_rows VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> TG_ARGV[0]) ON CONFLICT DO NOTHING; \
             END IF; \
           END IF; \
           RETURN NULL; \
         END $$;",
    );
    for (t, k) in TABLES {
        sql.push_str(&format!(
            "CREATE OR REPLACE TRIGGER hljca_bind_{t} AFTER INSERT OR UPDATE OR DELETE ON {t} \
             FOR EACH ROW EXECUTE FUNCTION hljca_bind('{k}');"
        ));
    }
    sql
}

fn feed(h: &mut Sha256, name: &str, v: ValueRef<'_>) {
    let (tag, bytes): (u8, &[u8]) = match v {
        ValueRef::Null => (0, &[]),
        ValueRef::Integer(n) => {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update([1]);
            h.update(8u64.to_be_bytes());
            h.update(n.to_be_bytes());
            return;
        }
        ValueRef::Real(f) => {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update([2]);
            h.update(8u64.to_be_bytes());
            h.update(f.to_be_bytes());
            return;
        }
        ValueRef::Text(t) => (3, t.as_bytes()),
        ValueRef::Blob(b) => (4, b),
    };
    h.update((name.len() as u64).to_be_bytes());
    h.update(name.as_bytes());
    h.update([tag]);
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// SHA-256 over columns `skip..` of a row (name, type tag, length, bytes each): the same
/// canonical encoding on both backends, the columns in table order.
fn digest(table: &str, row: &Row<'_>, skip: usize) -> Result<String> {
    let mut h = Sha256::new();
    for i in skip..row.column_count() {
        let v = row.get_ref(i).map_err(StoreError::db("row digest"))?;
        let name = row.name(i);
        if v == ValueRef::Null && LATE_COLUMNS.contains(&(table, name.as_str())) {
            continue;
        }
        feed(&mut h, &name, v);
    }
    Ok(hex::encode(h.finalize()))
}

/// SHA-256 over a row's columns, or `None` when absent.
pub fn row_digest(conn: &Db, table: &str, key_col: &str, key: &str) -> Result<Option<String>> {
    let sql = format!("SELECT * FROM {table} WHERE {key_col} = ?1");
    // Integer keys are bound as integers so the primary key index is used.
    let found = match key.parse::<i64>() {
        Ok(n) if key_col == "id" => conn.query_opt(&sql, params![n], |r| {
            digest(table, r, 0).map_err(|e| super::db::DbError::Other(e.to_string()))
        }),
        _ => conn.query_opt(&sql, params![key], |r| {
            digest(table, r, 0).map_err(|e| super::db::DbError::Other(e.to_string()))
        }),
    };
    found.map_err(StoreError::db("row digest"))
}

/// The digests of the rows this transaction changed (`table/key` → digest), emptying the log.
pub fn take_changed(tx: &Tx<'_>) -> Result<BTreeMap<String, String>> {
    let changed: Vec<(String, String)> = tx
        .query_vec(
            "SELECT tbl, key FROM changed_rows ORDER BY tbl, key",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(StoreError::db("changed rows"))?;
    let mut out = BTreeMap::new();
    for (t, key) in changed {
        let Some(key_col) = TABLES.iter().find(|(n, _)| *n == t).map(|(_, k)| *k) else {
            continue;
        };
        let d = row_digest(tx, &t, key_col, &key)?.unwrap_or_else(|| DELETED.to_owned());
        out.insert(format!("{t}/{key}"), d);
    }
    tx.execute("DELETE FROM changed_rows", params![])
        .map_err(StoreError::db("changed rows"))?;
    Ok(out)
}

/// Every current row of the bound tables: `table/key` → digest, in one pass per table.
pub fn current(conn: &Db) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for_each_current(conn, |key, digest| {
        out.insert(key, digest);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `each` with `table/key` and the digest of every current row of the bound tables, one
/// row at a time (a million certificates are never held at once).
pub fn for_each_current(
    conn: &Db,
    mut each: impl FnMut(String, String) -> Result<()>,
) -> Result<()> {
    for (t, k) in TABLES {
        conn.for_each(
            &format!("SELECT CAST({k} AS TEXT), * FROM {t}"),
            params![],
            |row| {
                let key: String = row.get(0).map_err(StoreError::db("bound rows"))?;
                each(format!("{t}/{key}"), digest(t, row, 1)?)
            },
        )?;
    }
    Ok(())
}
