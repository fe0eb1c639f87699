//! Leases: an issuance in progress is owned by the process holding its lease. With SQLite that
//! is an exclusive advisory lock (`flock`) on `<home>/run/<lease>.lock`; with PostgreSQL (sites
//! on several hosts) a session-level advisory lock on the shared database, held by a connection
//! of its own. The kernel, or the database when the connection goes, drops the lock when the
//! process ends, however it ends (SIGKILL included), so `recover` at any site can tell a live
//! issuance from an abandoned one by trying the lock — no process ids, no clocks.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};
use crate::home::{Home, create_private_dir};

/// Where leases live: lock files in the home, or advisory locks in the shared database.
#[derive(Debug, Clone)]
pub enum LeaseSpace {
    /// `<home>/run/<lease>.lock` (SQLite: one host).
    Files(Home),
    /// Advisory locks in this PostgreSQL database (every site sees them).
    Postgres(String),
}

/// A held lease; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct Lease {
    id: String,
    owner: String,
    hold: Hold,
}

#[derive(Debug)]
enum Hold {
    File {
        path: PathBuf,
        _file: File,
    },
    /// The connection holding the advisory lock; closing it releases the lock.
    Db(#[allow(dead_code)] crate::store::Db),
}

/// Tries the advisory lock of lease `id` on a connection of its own.
fn try_db(url: &str, id: &str) -> Result<Option<crate::store::Db>> {
    let db = crate::store::Db::open_postgres(url).map_err(|e| CoreError::Unreachable {
        database: crate::store::redact(url),
        reason: e.to_string(),
    })?;
    let taken = db
        .try_advisory_lock(id)
        .map_err(CoreError::db("lease lock"))?;
    Ok(taken.then_some(db))
}

/// What trying someone else's lease found.
#[derive(Debug)]
pub enum Probe {
    /// Its owner is alive and holds it.
    Held,
    /// Nobody holds it: it is now ours until dropped.
    Taken(Lease),
}

fn lease_path(home: &Home, id: &str) -> PathBuf {
    home.dir().join("run").join(format!("{id}.lock"))
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(CoreError::io("opening lease", path))
}

/// `pid@host` of this process, recorded beside the lease for people reading the database.
fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{}@{host}", std::process::id())
}

impl Lease {
    /// Takes a fresh lease for this process.
    pub fn acquire(space: &LeaseSpace) -> Result<Lease> {
        let id = format!("lease-{}", hex::encode(rand::random::<[u8; 12]>()));
        let home = match space {
            LeaseSpace::Files(home) => home,
            LeaseSpace::Postgres(url) => {
                let db = try_db(url, &id)?
                    .ok_or_else(|| CoreError::InProgress(format!("lease {id} is already held")))?;
                return Ok(Lease {
                    id,
                    owner: owner(),
                    hold: Hold::Db(db),
                });
            }
        };
        let path = lease_path(home, &id);
        let file = open(&path)?;
        file.try_lock().map_err(|e| {
            CoreError::InProgress(format!("could not lock {}: {e}", path.display()))
        })?;
        Ok(Lease {
            id,
            owner: owner(),
            hold: Hold::File { path, _file: file },
        })
    }

    /// Tries to take over lease `id` (recorded on an issuance or a batch job).
    pub fn probe(space: &LeaseSpace, id: &str) -> Result<Probe> {
        let home = match space {
            LeaseSpace::Files(home) => home,
            LeaseSpace::Postgres(url) => {
                return Ok(match try_db(url, id)? {
                    Some(db) => Probe::Taken(Lease {
                        id: id.to_owned(),
                        owner: owner(),
                        hold: Hold::Db(db),
                    }),
                    None => Probe::Held,
                });
            }
        };
        let path = lease_path(home, id);
        let file = open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Probe::Taken(Lease {
                id: id.to_owned(),
                owner: owner(),
                hold: Hold::File { path, _file: file },
            })),
            Err(TryLockError::WouldBlock) => Ok(Probe::Held),
            Err(TryLockError::Error(e)) => Err(CoreError::Io {
                action: "locking lease",
                path,
                source: e,
            }),
        }
    }

    /// The lease id recorded in the database.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who holds it (`pid@host`).
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Removed while still locked: whoever opens the path afterwards gets a fresh file.
        if let Hold::File { path, .. } = &self.hold {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_leases_are_seen_by_every_connection_and_end_with_theirs() {
        if !crate::pg_cluster::wanted() {
            return;
        }
        let (_, url) = crate::pg_cluster::database();
        let space = LeaseSpace::Postgres(url);
        let lease = Lease::acquire(&space).unwrap();
        let id = lease.id().to_owned();
        // Another connection (another site) sees it held.
        assert!(matches!(Lease::probe(&space, &id).unwrap(), Probe::Held));
        drop(lease);
        let Probe::Taken(again) = Lease::probe(&space, &id).unwrap() else {
            panic!("a released lease is free");
        };
        assert!(matches!(Lease::probe(&space, &id).unwrap(), Probe::Held));
        drop(again);
        // Leases of an unreachable database are an error, never "free".
        let gone = LeaseSpace::Postgres("postgresql://x@/y?host=/nonexistent".into());
        assert!(Lease::probe(&gone, &id).is_err());
    }

    #[test]
    fn a_held_lease_cannot_be_taken_and_a_dropped_one_can() {
        let dir = tempfile::tempdir().unwrap();
        let home = LeaseSpace::Files(Home::new(dir.path()));
        let lease = Lease::acquire(&home).unwrap();
        let id = lease.id().to_owned();
        assert!(matches!(Lease::probe(&home, &id).unwrap(), Probe::Held));
        drop(lease);
        let Probe::Taken(again) = Lease::probe(&home, &id).unwrap() else {
            panic!("a released lease is free");
        };
        assert!(matches!(Lease::probe(&home, &id).unwrap(), Probe::Held));
        drop(again);
    }
}
