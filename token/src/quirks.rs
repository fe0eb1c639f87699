//! Workarounds for SoftHSM2's file store, behind an explicit switch.
//!
//! SoftHSM keeps each token as files that `C_Login`, `C_InitToken` and `C_InitPIN` rewrite in
//! place; two processes doing so at once can read a half-written token (`CKR_USER_PIN_NOT_
//! INITIALIZED`, `CKR_GENERAL_ERROR`). With the SoftHSM quirks on, hljca serialises those calls
//! between its processes with a lock file (taken within a timeout, or a clear error — never
//! skipped) and asks a login that got one of those answers again a few times. A real HSM or
//! USBKEY serialises itself and gets neither: a `CKR_GENERAL_ERROR` from it is an error.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Result, TokenError};

/// Whether the SoftHSM workarounds apply (`pkcs11_quirks` in `hljca.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuirksMode {
    /// On when the module is SoftHSM2 (its file is named `libsofthsm2…`), off otherwise.
    #[default]
    Auto,
    /// Always on.
    SoftHsm,
    /// Never: a real HSM or USBKEY.
    None,
}

impl std::str::FromStr for QuirksMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<QuirksMode, String> {
        match s.trim() {
            "auto" => Ok(QuirksMode::Auto),
            "softhsm" => Ok(QuirksMode::SoftHsm),
            "none" => Ok(QuirksMode::None),
            other => Err(format!(
                "pkcs11 quirks `{other}` is not one of auto, softhsm, none"
            )),
        }
    }
}

/// How a module is opened: its quirks and, when they are on, where the lock lives.
#[derive(Debug, Clone)]
pub struct ModuleOptions {
    /// The switch.
    pub quirks: QuirksMode,
    /// The lock file (a home's `run/pkcs11.lock`; see [`default_lock_path`] without a home).
    pub lock: PathBuf,
    /// How long to wait for the lock before failing.
    pub lock_timeout: Duration,
}

impl ModuleOptions {
    /// Automatic quirks with the lock at `lock`, waiting up to 60 s.
    pub fn with_lock(lock: PathBuf) -> ModuleOptions {
        ModuleOptions {
            quirks: QuirksMode::Auto,
            lock,
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// The SoftHSM workarounds for `module`, or none.
    pub(crate) fn softhsm(&self, module: &Path) -> Option<SoftHsm> {
        let on = match self.quirks {
            QuirksMode::SoftHsm => true,
            QuirksMode::None => false,
            QuirksMode::Auto => module
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libsofthsm2")),
        };
        on.then(|| SoftHsm {
            lock: self.lock.clone(),
            timeout: self.lock_timeout,
        })
    }
}

/// The lock file used without a home (`hljca token` outside one): beside `SOFTHSM2_CONF` when
/// its folder is writable, else in the temporary directory, named after the module and the
/// configuration.
pub fn default_lock_path(module: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    if let Some(conf) = std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from)
        && let Some(dir) = conf.parent()
        && std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
        && let Some(name) = conf.file_name()
    {
        let mut lock = name.to_os_string();
        lock.push(".hljca.lock");
        return dir.join(lock);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    module.hash(&mut h);
    std::env::var_os("SOFTHSM2_CONF").hash(&mut h);
    std::env::temp_dir().join(format!("hljca-pkcs11-{:016x}.lock", h.finish()))
}

/// The SoftHSM workarounds in force for one module.
#[derive(Debug, Clone)]
pub(crate) struct SoftHsm {
    lock: PathBuf,
    timeout: Duration,
}

/// How many times a SoftHSM login that read a half-written token is asked again.
pub(crate) const LOGIN_RETRIES: u32 = 20;

impl SoftHsm {
    /// Takes the lock file, waiting up to the timeout.
    pub(crate) fn take(&self) -> Result<File> {
        let fail = |reason: String| TokenError::StoreLock {
            path: self.lock.clone(),
            reason,
        };
        if let Some(dir) = self.lock.parent()
            && !dir.is_dir()
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|e| fail(e.to_string()))?;
        }
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&self.lock)
                .map_err(|e| fail(e.to_string()))?
        };
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < self.timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(fail(format!(
                        "another process has held it for more than {} s",
                        self.timeout.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(fail(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_decides_and_auto_knows_softhsm_by_its_file() {
        let lock = PathBuf::from("/tmp/x.lock");
        let soft = Path::new("/usr/lib/softhsm/libsofthsm2.so");
        let real = Path::new("/usr/lib/libeTPkcs11.so");
        let cases = [
            (QuirksMode::Auto, soft, true),
            (QuirksMode::Auto, real, false),
            (QuirksMode::SoftHsm, real, true),
            (QuirksMode::None, soft, false),
        ];
        for (mode, module, on) in cases {
            let o = ModuleOptions {
                quirks: mode,
                ..ModuleOptions::with_lock(lock.clone())
            };
            assert_eq!(o.softhsm(module).is_some(), on, "{mode:?} {module:?}");
        }
        assert_eq!("none".parse::<QuirksMode>(), Ok(QuirksMode::None));
        assert!("sometimes".parse::<QuirksMode>().is_err());
    }

    #[test]
    fn a_held_lock_times_out_with_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let q = SoftHsm {
            lock: dir.path().join("run").join("pkcs11.lock"),
            timeout: Duration::from_millis(100),
        };
        let held = q.take().unwrap_or_else(|e| panic!("{e}"));
        // A second open file description: flock conflicts even within one process.
        let err = q.take().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("pkcs11.lock") && err.contains("held"), "{err}");
        drop(held);
        assert!(q.take().is_ok());
    }

    #[test]
    fn an_unusable_lock_file_is_an_error_not_a_skip() {
        let q = SoftHsm {
            lock: PathBuf::from("/proc/hljca-no-such/pkcs11.lock"),
            timeout: Duration::from_millis(10),
        };
        assert!(matches!(q.take(), Err(TokenError::StoreLock { .. })));
    }
}
