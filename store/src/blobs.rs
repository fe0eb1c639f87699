//! Content-addressed blobs (materials, CRLs) and the CA's shared documents, in the database so
//! that every site reads what any site wrote. A blob is its SHA-256 (hex) and chunks of at most
//! [`CHUNK`] bytes: written and read a chunk at a time, never whole in one statement.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::db::{Db, Tx, params};
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};

/// The largest chunk a statement carries.
pub const CHUNK: usize = 1 << 20;

/// True when the blob `sha256` is stored.
pub fn exists(conn: &Db, sha256: &str) -> Result<bool> {
    conn.query_opt(
        "SELECT 1 FROM blobs WHERE sha256 = ?1",
        params![sha256],
        |r| r.get::<i64>(0),
    )
    .map(|r| r.is_some())
    .map_err(StoreError::db("find blob"))
}

/// Stores `bytes` under their SHA-256 (nothing is written when they are stored already) and
/// returns it.
pub fn put(tx: &Tx<'_>, bytes: &[u8]) -> Result<String> {
    let sha = hex::encode(Sha256::digest(bytes));
    put_from(tx, &sha, bytes.len() as u64, &mut &bytes[..])?;
    Ok(sha)
}

/// Stores what `from` yields (`size` bytes whose SHA-256 is `sha256`), a chunk at a time; the
/// digest is checked before the transaction can commit.
pub fn put_from(tx: &Tx<'_>, sha256: &str, size: u64, from: &mut dyn Read) -> Result<()> {
    if exists(tx, sha256)? {
        return Ok(());
    }
    let n = i64::try_from(size).map_err(|_| StoreError::Parse {
        what: format!("blob {sha256}"),
        reason: format!("{size} bytes is too large"),
    })?;
    tx.execute(
        "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3)",
        params![sha256, n, ts(now())],
    )
    .map_err(StoreError::db("store blob"))?;
    let mut hash = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    for seq in 0i64.. {
        let mut len = 0;
        while len < CHUNK {
            let k = from.read(&mut buf[len..]).map_err(|e| StoreError::Parse {
                what: format!("blob {sha256}"),
                reason: format!("reading it: {e}"),
            })?;
            if k == 0 {
                break;
            }
            len += k;
        }
        if len == 0 {
            break;
        }
        hash.update(&buf[..len]);
        total += len as u64;
        tx.execute(
            "INSERT INTO blob_chunks (sha256, seq, data) VALUES (?1, ?2, ?3)",
            params![sha256, seq, &buf[..len]],
        )
        .map_err(StoreError::db("store blob chunk"))?;
        if len < CHUNK {
            break;
        }
    }
    let got = hex::encode(hash.finalize());
    if got != sha256 || total != size {
        return Err(StoreError::Parse {
            what: format!("blob {sha256}"),
            reason: format!("{total} bytes with SHA-256 {got} were read, not {size} bytes"),
        });
    }
    Ok(())
}

/// Writes the blob `sha256` into `to`, a chunk at a time, and checks its digest; false when no
/// such blob is stored.
pub fn copy_to(conn: &Db, sha256: &str, to: &mut dyn Write) -> Result<bool> {
    if !exists(conn, sha256)? {
        return Ok(false);
    }
    let mut hash = Sha256::new();
    conn.for_each(
        "SELECT data FROM blob_chunks WHERE sha256 = ?1 ORDER BY seq",
        params![sha256],
        |r| {
            let data: Vec<u8> = r.get(0).map_err(StoreError::db("read blob"))?;
            hash.update(&data);
            to.write_all(&data).map_err(|e| StoreError::Parse {
                what: format!("blob {sha256}"),
                reason: format!("writing it out: {e}"),
            })
        },
    )?;
    let got = hex::encode(hash.finalize());
    if got != sha256 {
        return Err(StoreError::Parse {
            what: format!("blob {sha256}"),
            reason: format!("the stored chunks hash to {got}"),
        });
    }
    Ok(true)
}

/// Every blob a material or a CRL names that is missing or does not hash to its name (a
/// restored database is checked with it); empty when all are there and intact.
pub fn check_referenced(conn: &Db) -> Result<Vec<String>> {
    let names: Vec<String> = conn
        .query_vec(
            "SELECT DISTINCT sha256 FROM materials UNION SELECT sha256 FROM crls WHERE sha256 IS NOT NULL \
             AND sha256 IN (SELECT sha256 FROM blobs)",
            params![],
            |r| r.get(0),
        )
        .map_err(StoreError::db("referenced blobs"))?;
    let mut bad = Vec::new();
    for sha in names {
        let mut sink = std::io::sink();
        match copy_to(conn, &sha, &mut sink) {
            Ok(true) => {}
            Ok(false) | Err(_) => bad.push(sha),
        }
    }
    Ok(bad)
}

/// The blob `sha256` in memory (materials, bounded when they were added); `None` when absent.
pub fn get(conn: &Db, sha256: &str) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    Ok(copy_to(conn, sha256, &mut out)?.then_some(out))
}

/// The CA's shared documents, by name.
pub mod documents {
    use super::*;

    /// The issuing CA certificate (PEM).
    pub const ISSUING: &str = "ca/issuing.pem";
    /// The root CA certificate (PEM).
    pub const ROOT: &str = "ca/root.pem";
    /// The chain issuing + root (PEM).
    pub const CHAIN: &str = "ca/chain.pem";
    /// The seal maker's certificate (PEM), which audit anchors are checked against.
    pub const SEAL_MAKER: &str = "ca/seal-maker.pem";
    /// The OCSP signer's certificate (PEM).
    pub const OCSP_SIGNER: &str = "ca/ocsp-signer.pem";
    /// The configuration every site shares (`hljca.toml` without the site's own keys).
    pub const CONFIG: &str = "hljca.toml";
    /// Set in a database `db copy` moved away from: where the CA's database is now.
    pub const MOVED_TO: &str = "moved-to";

    /// Sets document `name` to `data`.
    pub fn set(tx: &Tx<'_>, name: &str, data: &[u8]) -> Result<()> {
        tx.execute(
            "INSERT INTO ca_documents (name, data, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            params![name, data, ts(now())],
        )
        .map_err(StoreError::db("store CA document"))?;
        Ok(())
    }

    /// Document `name`, when stored.
    pub fn get(conn: &Db, name: &str) -> Result<Option<Vec<u8>>> {
        conn.query_opt(
            "SELECT data FROM ca_documents WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .map_err(StoreError::db("read CA document"))
    }
}
