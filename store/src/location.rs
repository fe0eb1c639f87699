//! Where a CA's database is: the home's SQLite file, or a PostgreSQL URL
//! (`HLJCA_DATABASE_URL`, else `database` in hljca.toml).

use super::db;
use crate::error::{Result, StoreError};
use hljca_rules::Rule;

/// Where a CA's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The SQLite file of the home (`<home>/hljca.db`).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database (`postgres://…`), shared by the sites.
    Postgres(String),
}

impl Location {
    /// The database of a home: `HLJCA_DATABASE_URL` when set, else `database` in hljca.toml,
    /// else the home's SQLite file `home_db`; a relative `sqlite:` path is under `home_dir`.
    pub fn resolve(
        home_dir: &std::path::Path,
        home_db: std::path::PathBuf,
        configured: Option<&str>,
    ) -> Result<Location> {
        let env = std::env::var("HLJCA_DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty());
        match env.as_deref().or(configured) {
            Some(url) => Location::parse(url, home_dir),
            None => Ok(Location::Sqlite(home_db)),
        }
    }

    /// A database URL: `postgres://…`/`postgresql://…`, or `sqlite:PATH` (a file).
    pub fn parse(url: &str, home_dir: &std::path::Path) -> Result<Location> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = std::path::PathBuf::from(path);
            Ok(Location::Sqlite(if path.is_relative() {
                home_dir.join(path)
            } else {
                path
            }))
        } else {
            Err(StoreError::refuse(
                Rule::DatabaseUrl,
                format!(
                    "database URL `{}` is neither postgres://… nor sqlite:PATH",
                    redact(url)
                ),
            ))
        }
    }

    /// The location for people: the file, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(u) => redact(u),
        }
    }

    /// Which backend.
    pub fn backend(&self) -> db::Backend {
        match self {
            Location::Sqlite(_) => db::Backend::Sqlite,
            Location::Postgres(_) => db::Backend::Postgres,
        }
    }
}

/// A URL with the password (`user:password@`) replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
