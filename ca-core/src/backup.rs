//! Backups and restores of a whole CA. `backup` writes into an empty directory: the database
//! as one consistent snapshot taken while the CA runs (a SQLite file: `VACUUM INTO` of a SQLite
//! CA, or a copy of a PostgreSQL CA read in one REPEATABLE READ snapshot), the CA
//! certificates, keys and configuration of the home, and — where the CA key is on SoftHSM —
//! the token directory, copied while holding the token store lock; then `manifest.json` with
//! the SHA-256 of every file. `restore` checks the manifest and builds a new home from it (the
//! database into `HLJCA_DATABASE_URL` when set, else the home's SQLite file).

use crate::Rule;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::home::{Home, create_private_dir};
use crate::store::{Location, Store};

/// The manifest's name in a backup.
pub const MANIFEST: &str = "manifest.json";
/// The database snapshot's name in a backup.
const DB_FILE: &str = "hljca.db";
/// Where a backup keeps the SoftHSM token directory.
const TOKENS: &str = "softhsm/tokens";

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format of this manifest.
    pub format: u32,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The backend the CA ran on (`sqlite`, `postgres`).
    pub source_backend: String,
    /// Schema version of the snapshot.
    pub schema_version: i64,
    /// Audit rows in the snapshot.
    pub audit_rows: i64,
    /// Whether the SoftHSM token directory is included.
    pub softhsm_tokens: bool,
    /// Every file (path relative to the backup) and its SHA-256.
    pub files: BTreeMap<String, String>,
}

fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(CoreError::io("reading", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(CoreError::io("reading", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Copies the tree `from` into `to` (files keep their permission bits), skipping `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    create_private_dir(to)?;
    let entries = std::fs::read_dir(from).map_err(CoreError::io("reading", from))?;
    for e in entries {
        let e = e.map_err(CoreError::io("reading", from))?;
        let src = e.path();
        if skip(&src) {
            continue;
        }
        let dst = to.join(e.file_name());
        let ft = e.file_type().map_err(CoreError::io("reading", &src))?;
        if ft.is_dir() {
            copy_tree(&src, &dst, skip)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).map_err(CoreError::io("copying", &src))?;
        }
    }
    Ok(())
}

/// Every file under `dir`, relative, sorted.
fn list_files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(CoreError::io("reading", dir))? {
        let e = e.map_err(CoreError::io("reading", dir))?;
        let p = e.path();
        if p.is_dir() {
            list_files(&p, base, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_path_buf());
        }
    }
    out.sort();
    Ok(())
}

/// The SoftHSM token directory of `conf` (`directories.tokendir`).
pub fn softhsm_tokendir(conf: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "directories.tokendir").then(|| PathBuf::from(v.trim()))
    })
}

fn refuse_non_empty(dir: &Path, what: &str) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(CoreError::refuse(
            Rule::NoOverwrite,
            format!(
                "{what} {} is not empty; choose a new or empty directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes a backup of the CA (`store`, `home`) into `dir`, which must be new or empty.
/// `softhsm_conf` is the SoftHSM configuration whose token directory holds the CA token
/// (none for a CA whose keys are in files); its files are copied holding the home's SoftHSM
/// store lock.
pub fn backup(
    store: &Store,
    home: &Home,
    dir: &Path,
    softhsm_conf: Option<&Path>,
) -> Result<Manifest> {
    refuse_non_empty(dir, "backup directory")?;
    create_private_dir(dir)?;
    let result = write_backup(store, home, dir, softhsm_conf);
    if result.is_err() {
        // Nothing half-written stays behind.
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn write_backup(
    store: &Store,
    home: &Home,
    dir: &Path,
    softhsm_conf: Option<&Path>,
) -> Result<Manifest> {
    let db_path = dir.join(DB_FILE);
    store.snapshot_into(&db_path)?;
    let snap = Store::connect(&Location::Sqlite(db_path.clone()))?;
    let schema_version = snap.schema_version()?;
    let audit_rows = crate::store::audit_log::head_seq(&snap.conn)?;
    drop(snap);
    // The home: configuration, CA certificates and key files, policies, issued files.
    let home_dir = home.dir().to_path_buf();
    let skip = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        p.parent() == Some(home_dir.as_path())
            && (name.starts_with("hljca.db") || name == "run" || name == "softhsm")
    };
    copy_tree(home.dir(), &dir.join("home"), &skip)?;
    // The token directory, while no hljca process initialises or logs in to a token.
    let mut tokens = false;
    if let Some(conf) = softhsm_conf
        && let Some(tokendir) = softhsm_tokendir(conf)
        && tokendir.is_dir()
    {
        let lock_path = home.pkcs11_lock();
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(CoreError::io("creating", dir))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(CoreError::io("opening the token store lock", &lock_path))?;
        lock.lock()
            .map_err(CoreError::io("locking the token store", &lock_path))?;
        let copied = copy_tree(&tokendir, &dir.join(TOKENS), &|_| false);
        drop(lock);
        copied?;
        tokens = true;
    }
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    let mut hashes = BTreeMap::new();
    for f in files {
        hashes.insert(f.display().to_string(), sha256_file(&dir.join(&f))?);
    }
    let manifest = Manifest {
        format: 1,
        created_at: crate::time_fmt::ts(crate::time_fmt::now()),
        source_backend: match store.backend() {
            crate::store::db::Backend::Sqlite => "sqlite".into(),
            crate::store::db::Backend::Postgres => "postgres".into(),
        },
        schema_version,
        audit_rows,
        softhsm_tokens: tokens,
        files: hashes,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| CoreError::Encoding {
        what: "backup manifest",
        reason: e.to_string(),
    })?;
    crate::home::write_file(&dir.join(MANIFEST), text.as_bytes(), 0o600)?;
    Ok(manifest)
}

/// Reads a backup's manifest and checks every file against it (and that nothing was added).
pub fn check(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(CoreError::io("reading", &path))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| CoreError::Parse {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut present = Vec::new();
    list_files(dir, dir, &mut present)?;
    for f in &present {
        let name = f.display().to_string();
        if name != MANIFEST && !manifest.files.contains_key(&name) {
            return Err(CoreError::refuse(
                Rule::BackupIntact,
                format!("backup {}: {name} is not in the manifest", dir.display()),
            ));
        }
    }
    for (name, want) in &manifest.files {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(CoreError::refuse(
                Rule::BackupIntact,
                format!(
                    "backup {}: {name} is in the manifest but missing",
                    dir.display()
                ),
            ));
        }
        if &sha256_file(&p)? != want {
            return Err(CoreError::refuse(
                Rule::BackupIntact,
                format!(
                    "backup {}: {name} does not match its SHA-256 in the manifest",
                    dir.display()
                ),
            ));
        }
    }
    Ok(manifest)
}

/// What a restore built.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The new home.
    pub home: PathBuf,
    /// Where its database is (a file, or the URL without password).
    pub database: String,
    /// The SoftHSM configuration that holds the restored CA token, when the backup had one.
    pub softhsm2_conf: Option<PathBuf>,
    /// Audit rows verified.
    pub audit_rows: usize,
}

/// Builds a new home `new_home` (new or empty) from the backup in `dir`, its database at `db`
/// (which must be empty).
pub fn restore(dir: &Path, new_home: &Path, db: &Location) -> Result<Restored> {
    let manifest = check(dir)?;
    refuse_non_empty(new_home, "new home")?;
    let result = (|| {
        copy_tree(&dir.join("home"), new_home, &|_| false)?;
        let home = Home::new(new_home);
        // The configuration names the new database (or none: the home's SQLite file).
        let mut config = crate::Config::load(&home.config())?;
        config.database = match db {
            Location::Postgres(url) => Some(url.clone()),
            Location::Sqlite(_) => None,
        };
        crate::home::write_file(&home.config(), config.to_toml()?.as_bytes(), 0o600)?;
        let snap = Store::connect(&Location::Sqlite(dir.join(DB_FILE)))?;
        let report = crate::store::copy::copy(&snap, db)?;
        let mut conf_out = None;
        if manifest.softhsm_tokens {
            let soft = new_home.join("softhsm");
            copy_tree(&dir.join(TOKENS), &soft.join("tokens"), &|_| false)?;
            let conf = soft.join("softhsm2.conf");
            crate::home::write_file(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                    soft.join("tokens").display()
                )
                .as_bytes(),
                0o600,
            )?;
            conf_out = Some(conf);
        }
        Ok(Restored {
            home: new_home.to_path_buf(),
            database: db.display(),
            softhsm2_conf: conf_out,
            audit_rows: report.audit_rows,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(new_home);
    }
    result
}
