//! PEM copies of bulk issuances, written on threads of their own.

use std::path::PathBuf;

use super::Engine;
use crate::Ca;
use crate::ca::pem_cert;

/// Writes the `certs/<serial>.pem` copies of committed certificates on threads of their own
/// (conveniences: the database holds the DER, durable already), renamed into place and not
/// synced one by one. Dropping it waits for the files. Several threads: creating a file costs
/// an inode allocation, which on ext4 can scan past recently deleted inodes for a long while,
/// mostly in the kernel; more than one allocation in flight hides that wait.
#[derive(Debug, Default)]
pub(super) struct Exports {
    worker: std::cell::OnceCell<ExportWorkers>,
}

/// How many threads write PEM copies.
const EXPORT_THREADS: usize = 3;

/// The queue of the export threads and the threads.
type ExportWorkers = (
    std::sync::mpsc::Sender<(PathBuf, String)>,
    Vec<std::thread::JoinHandle<()>>,
);

impl Exports {
    /// Queues `pem` for `path`.
    fn send(&self, path: PathBuf, pem: String) {
        let (tx, _) = self.worker.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<(PathBuf, String)>();
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            let handles = (0..EXPORT_THREADS)
                .map(|_| {
                    let rx = std::sync::Arc::clone(&rx);
                    std::thread::spawn(move || {
                        loop {
                            // The lock is held only to take the next file, not to write it.
                            let next = match rx.lock() {
                                Ok(q) => q.recv(),
                                Err(_) => return,
                            };
                            let Ok((path, pem)) = next else { return };
                            if let Err(e) = write_export(&path, &pem) {
                                tracing::warn!(file = %path.display(), error = %e, "PEM copy not written; `hljca cert export` gives it");
                            }
                        }
                    })
                })
                .collect();
            (tx, handles)
        });
        let _ = tx.send((path, pem));
    }
}

impl Drop for Exports {
    fn drop(&mut self) {
        if let Some((tx, handles)) = self.worker.take() {
            drop(tx);
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

fn write_export(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per thread: two threads never write the same serial, but keep the names apart.
    let tmp = path.with_extension(format!(
        "tmp{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(pem.as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

/// The path of `certs/<serial>.pem`, its copy queued.
pub(super) fn export(engine: &Engine<'_>, ca: &Ca, serial: &str, der: &[u8]) -> PathBuf {
    let path = ca.home.cert_pem(serial);
    engine.exports.send(path.clone(), pem_cert(der));
    path
}
