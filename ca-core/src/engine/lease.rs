//! Leases: an issuance in progress is owned by the process holding its lease, an exclusive
//! advisory lock (`flock`) on `<home>/run/<lease>.lock`. The kernel drops the lock when the
//! process ends, however it ends (SIGKILL included), so `recover` can tell a live issuance from
//! an abandoned one by trying the lock — no process ids, no clocks.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};
use crate::home::{Home, create_private_dir};

/// A held lease; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct Lease {
    id: String,
    owner: String,
    path: PathBuf,
    _file: File,
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
    pub fn acquire(home: &Home) -> Result<Lease> {
        let id = format!("lease-{}", hex::encode(rand::random::<[u8; 12]>()));
        let path = lease_path(home, &id);
        let file = open(&path)?;
        file.try_lock().map_err(|e| {
            CoreError::InProgress(format!("could not lock {}: {e}", path.display()))
        })?;
        Ok(Lease {
            id,
            owner: owner(),
            path,
            _file: file,
        })
    }

    /// Tries to take over lease `id` (recorded on an issuance or a batch job).
    pub fn probe(home: &Home, id: &str) -> Result<Probe> {
        let path = lease_path(home, id);
        let file = open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Probe::Taken(Lease {
                id: id.to_owned(),
                owner: owner(),
                path,
                _file: file,
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
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_cannot_be_taken_and_a_dropped_one_can() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
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
