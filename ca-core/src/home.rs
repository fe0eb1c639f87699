//! The home directory: where the configuration, database, CA certificates and CRLs live.

use crate::Rule;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};

/// Paths inside a home directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// A home at `dir` (not created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `hljca.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("hljca.toml")
    }
    /// `hljca.db`.
    pub fn db(&self) -> PathBuf {
        self.dir.join("hljca.db")
    }
    /// The SoftHSM store lock of this home's processes (`run/pkcs11.lock`).
    pub fn pkcs11_lock(&self) -> PathBuf {
        self.dir.join("run").join("pkcs11.lock")
    }
    /// The root CA certificate (PEM).
    pub fn root_pem(&self) -> PathBuf {
        self.dir.join("ca").join("root.pem")
    }
    /// The issuing CA certificate (PEM).
    pub fn issuing_pem(&self) -> PathBuf {
        self.dir.join("ca").join("issuing.pem")
    }
    /// The seal maker's certificate (PEM), issued by the issuing CA.
    pub fn seal_maker_pem(&self) -> PathBuf {
        self.dir.join("ca").join("seal-maker.pem")
    }
    /// The chain issuing + root (PEM).
    pub fn chain_pem(&self) -> PathBuf {
        self.dir.join("ca").join("chain.pem")
    }
    /// Encrypted PKCS#8 CA key (key_store = file).
    pub fn key_file(&self, which: &str) -> PathBuf {
        self.dir.join("ca").join(format!("{which}.key.p8"))
    }
    /// Where issued certificates are exported as PEM.
    pub fn cert_pem(&self, serial: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{serial}.pem"))
    }
    /// Where a seal is exported.
    pub fn seal_file(&self, serial: &str) -> PathBuf {
        self.dir.join("seals").join(format!("{serial}.seal.der"))
    }

    /// True when `hljca.toml` exists.
    pub fn is_initialized(&self) -> bool {
        self.config().is_file()
    }

    /// Errors unless initialised.
    pub fn require_initialized(&self) -> Result<()> {
        if self.is_initialized() {
            Ok(())
        } else {
            Err(CoreError::NotInitialized {
                home: self.dir.clone(),
            })
        }
    }

    /// Creates the home and its sub-directories (0700).
    pub fn create_dirs(&self) -> Result<()> {
        for d in [
            self.dir.clone(),
            self.dir.join("ca"),
            self.dir.join("certs"),
            self.dir.join("seals"),
        ] {
            create_private_dir(&d)?;
        }
        Ok(())
    }
}

/// Creates `dir` (and parents) with mode 0700 on the last component.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    create_dir_mode(dir, 0o700)
}

/// Creates `dir` with `mode` and any missing parents with 0700, whatever the process umask
/// (each directory this creates gets its mode set explicitly). An existing `dir` gets `mode`
/// too; existing parents are left as they are.
pub fn create_dir_mode(dir: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        create_dir_mode(parent, 0o700)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            // A read-only home is read, never changed: leave a directory that has its mode.
            let has = std::fs::metadata(dir)
                .map(|m| m.permissions().mode() & 0o7777)
                .map_err(CoreError::io("reading", dir))?;
            if has == mode {
                return Ok(());
            }
        }
        Err(e) => return Err(CoreError::io("creating directory", dir)(e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(CoreError::io("setting permissions on", dir))
}

/// Writes `bytes` to `path` atomically (temp file + rename) with `mode`.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent()
        && !parent.is_dir()
    {
        create_dir_mode(parent, 0o700)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(CoreError::io("creating", &tmp))?;
    // The umask may have taken bits away (or, at 000, added none): the mode is set as asked.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(CoreError::io("setting permissions on", &tmp))?;
    f.write_all(bytes).map_err(CoreError::io("writing", &tmp))?;
    f.sync_all().map_err(CoreError::io("syncing", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(CoreError::io("renaming into place", path))
}

/// Reads all of `path` (`what` names it in errors), refusing a file larger than `limit` bytes
/// as bad input. The bound holds while reading (at most `limit + 1` bytes are read), so a pipe,
/// a device or a growing file cannot get past it; a regular file is refused by its size first.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_big = || {
        CoreError::refuse(
            Rule::FileTooLarge,
            format!(
                "{what} {} is larger than the limit of {limit} bytes",
                path.display()
            ),
        )
    };
    let file = std::fs::File::open(path).map_err(CoreError::io("reading", path))?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(CoreError::io("reading", path))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Writes a new file that must not exist yet (mode `mode`).
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(CoreError::io("creating", path))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(CoreError::io("setting permissions on", path))?;
    f.write_all(bytes).map_err(CoreError::io("writing", path))?;
    f.sync_all().map_err(CoreError::io("syncing", path))
}
