//! Binding business rows into the audit log. Every write transaction records which rows of
//! `certificates`, `orders`, `applications` and `token_holders` it changed (temporary triggers on
//! this connection), and before it commits appends one `state.bind` audit row with a SHA-256
//! digest of each changed row as written. `audit verify` recomputes the digests of the current
//! rows and compares each with the last one bound: a row edited, added or deleted outside hljca
//! no longer matches the hash-chained log.

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// The bound tables and their key column.
pub(crate) const TABLES: [(&str, &str); 5] = [
    ("certificates", "serial"),
    ("orders", "id"),
    ("applications", "id"),
    ("token_holders", "token_serial"),
    ("operators", "cert_serial"),
];

/// The digest a deleted row is bound to.
pub(crate) const DELETED: &str = "deleted";

/// Creates the temporary change log and its triggers on this connection.
pub(crate) fn install(conn: &Connection) -> Result<()> {
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
    conn.execute_batch(&sql)
        .map_err(CoreError::db("install row binding"))
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
        ValueRef::Text(t) => (3, t),
        ValueRef::Blob(b) => (4, b),
    };
    h.update((name.len() as u64).to_be_bytes());
    h.update(name.as_bytes());
    h.update([tag]);
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn digest(names: &[String], row: &rusqlite::Row<'_>) -> Result<String> {
    let mut h = Sha256::new();
    for (i, name) in names.iter().enumerate() {
        feed(
            &mut h,
            name,
            row.get_ref(i).map_err(CoreError::db("row digest"))?,
        );
    }
    Ok(hex::encode(h.finalize()))
}

/// SHA-256 over a row's columns (name, type tag, length, bytes each), or `None` when absent.
pub(crate) fn row_digest(
    conn: &Connection,
    table: &str,
    key_col: &str,
    key: &str,
) -> Result<Option<String>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT * FROM main.{table} WHERE {key_col} = ?1"))
        .map_err(CoreError::db("row digest"))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    // Integer keys are bound as integers so the primary key index is used.
    let mut rows = match key.parse::<i64>() {
        Ok(n) if key_col == "id" => stmt.query([n]),
        _ => stmt.query([key]),
    }
    .map_err(CoreError::db("row digest"))?;
    match rows.next().map_err(CoreError::db("row digest"))? {
        Some(row) => digest(&names, row).map(Some),
        None => Ok(None),
    }
}

/// The digests of the rows this transaction changed (`table/key` → digest), emptying the log.
pub(crate) fn take_changed(tx: &Transaction<'_>) -> Result<BTreeMap<String, String>> {
    let changed: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare_cached("SELECT tbl, key FROM temp.changed_rows ORDER BY tbl, key")
            .map_err(CoreError::db("changed rows"))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(CoreError::db("changed rows"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(CoreError::db("changed rows"))?
    };
    let mut out = BTreeMap::new();
    for (t, key) in changed {
        let key_col = TABLES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, k)| *k)
            .unwrap_or("rowid");
        let d = row_digest(tx, &t, key_col, &key)?.unwrap_or_else(|| DELETED.to_owned());
        out.insert(format!("{t}/{key}"), d);
    }
    tx.execute("DELETE FROM temp.changed_rows", [])
        .map_err(CoreError::db("changed rows"))?;
    Ok(out)
}

/// Every current row of the bound tables: `table/key` → digest, in one pass per table.
pub(crate) fn current(conn: &Connection) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (t, k) in TABLES {
        let mut stmt = conn
            .prepare(&format!("SELECT CAST({k} AS TEXT), * FROM main.{t}"))
            .map_err(CoreError::db("bound rows"))?;
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .skip(1)
            .map(|s| s.to_string())
            .collect();
        let mut rows = stmt.query([]).map_err(CoreError::db("bound rows"))?;
        while let Some(row) = rows.next().map_err(CoreError::db("bound rows"))? {
            let key: String = row.get(0).map_err(CoreError::db("bound rows"))?;
            let mut h = Sha256::new();
            for (i, name) in names.iter().enumerate() {
                let v = row.get_ref(i + 1).map_err(CoreError::db("row digest"))?;
                feed(&mut h, name, v);
            }
            out.insert(format!("{t}/{key}"), hex::encode(h.finalize()));
        }
    }
    Ok(out)
}
