//! A site joining the CA: a working site home made from the shared database alone (the CA's
//! certificates and shared configuration that `hljca_core::sites` keeps there), holding only
//! the site's own configuration and its token configuration.

use std::path::{Path, PathBuf};

use hljca_core::config::KeyStore;
use hljca_core::home::{Home, write_file};
use hljca_core::sites::FILES;
use hljca_core::store::blobs::documents;
use hljca_core::store::{Location, Store};
use hljca_core::{Ca, Config, CoreError, Result, Rule};
use serde::Serialize;

/// What `site join` made.
#[derive(Debug, Clone, Serialize)]
pub struct Joined {
    /// The new home.
    pub home: PathBuf,
    /// Its site.
    pub site: String,
    /// The database (without its password).
    pub database: String,
    /// The files written from the database.
    pub files: Vec<String>,
    /// The SoftHSM configuration the home uses when `SOFTHSM2_CONF` is unset.
    pub softhsm2_conf: Option<PathBuf>,
}

/// Makes a site home at `home` (new or empty) for `site` from the database at `db` alone: the
/// CA's certificates and shared configuration, the site's own site code and database, and
/// `softhsm_conf` (the site's HSM, holding a copy of the CA token) as its token configuration.
pub fn join(db: &Location, site: &str, home: &Path, softhsm_conf: Option<&Path>) -> Result<Joined> {
    let Location::Postgres(url) = db else {
        return Err(CoreError::refuse_on(
            Rule::DatabaseUrl,
            "--database",
            "sites share one PostgreSQL database: give its postgresql://… URL (a SQLite file \
             belongs to one home)",
        ));
    };
    if let Ok(mut entries) = std::fs::read_dir(home)
        && entries.next().is_some()
    {
        return Err(CoreError::refuse_on(
            Rule::NoOverwrite,
            "--home",
            format!(
                "{} is not empty; a site joins into a new or empty directory",
                home.display()
            ),
        ));
    }
    let site = Ca::site_code(site)?;
    let store = Store::open(db, home)?;
    let read = |name: &str| -> Result<Vec<u8>> {
        documents::get(&store.conn, name)?.ok_or_else(|| {
            CoreError::refuse(
                Rule::Schema,
                format!(
                    "the database {} has no `{name}` of its CA: run `hljca site publish` at the \
                     CA's first home, then join again",
                    db.display()
                ),
            )
        })
    };
    let config_text =
        String::from_utf8(read(documents::CONFIG)?).map_err(|e| CoreError::Parse {
            what: "the shared configuration".into(),
            reason: e.to_string(),
        })?;
    let mut config: Config = toml::from_str(&config_text).map_err(|e| CoreError::Parse {
        what: "the shared configuration".into(),
        reason: e.to_string(),
    })?;
    if config.ca.key_store == KeyStore::File {
        return Err(CoreError::refuse(
            Rule::Schema,
            "this CA keeps its keys in files of its first home; sites share a CA whose keys are \
             on an HSM (each site's HSM holding a copy of the CA token)",
        ));
    }
    let mut files = Vec::new();
    let h = Home::new(home);
    let made = (|| -> Result<Option<PathBuf>> {
        h.create_dirs()?;
        for (name, mode) in FILES {
            write_file(&home.join(name), &read(name)?, mode)?;
            files.push(name.to_owned());
        }
        let issuing = hljca_core::ca::read_pem_cert(&h.issuing_pem())?;
        write_file(&hljca_core::ca::issuing_cer(&h), &issuing, 0o644)?;
        let conf = match softhsm_conf {
            Some(src) => {
                let text = std::fs::read(src).map_err(CoreError::io("reading", src))?;
                let to = home.join("softhsm").join("softhsm2.conf");
                write_file(&to, &text, 0o600)?;
                Some(to)
            }
            None => None,
        };
        config.site = Some(site.clone());
        config.database = Some(url.clone());
        // Written last: its presence is what marks the home as made.
        write_file(&h.config(), config.to_toml()?.as_bytes(), 0o600)?;
        Ok(conf)
    })();
    let conf = match made {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(home);
            return Err(e);
        }
    };
    Ok(Joined {
        home: home.to_path_buf(),
        site,
        database: db.display(),
        files,
        softhsm2_conf: conf,
    })
}
