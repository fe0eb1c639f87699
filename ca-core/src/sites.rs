//! Sites of one CA: what a site needs that the founding home made (the CA's certificates and
//! shared configuration) is kept in the database as documents, so `hljca site join` makes a
//! working site home from the shared database alone. A site home then holds only its own
//! configuration (its site, its database URL) and its local token configuration.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::home::{Home, write_file};
use crate::store::blobs::documents;
use crate::store::{Location, Store};
use crate::{Ca, Config, Rule, audit};

/// The documents a site home is made of, with the mode each file gets.
const FILES: [(&str, u32); 4] = [
    (documents::ROOT, 0o644),
    (documents::ISSUING, 0o644),
    (documents::CHAIN, 0o644),
    (documents::SEAL_MAKER, 0o644),
];

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

/// The configuration every site shares: this home's, without its own site and database.
fn shared_config(config: &Config) -> Result<String> {
    let mut shared = config.clone();
    shared.site = None;
    shared.database = None;
    shared.to_toml()
}

impl Ca {
    /// Records the CA's certificates and shared configuration in the database, where `site
    /// join` reads them (`hljca init` does this; `hljca site publish` for a CA made before).
    pub fn share_documents(&self) -> Result<Vec<String>> {
        let mut docs: Vec<(&str, Vec<u8>)> = Vec::new();
        for (name, _) in FILES {
            let path = self.home.dir().join(name);
            let bytes = std::fs::read(&path).map_err(CoreError::io("reading", &path))?;
            docs.push((name, bytes));
        }
        docs.push((documents::CONFIG, shared_config(&self.config)?.into_bytes()));
        let listed: Vec<serde_json::Value> = docs
            .iter()
            .map(
                |(n, b)| serde_json::json!({ "name": n, "sha256": hex::encode(Sha256::digest(b)) }),
            )
            .collect();
        self.write("share CA documents", |tx| {
            for (name, bytes) in &docs {
                documents::set(tx, name, bytes)?;
            }
            audit::append(
                tx,
                self.actor.name(),
                "ca.documents",
                "ca",
                &serde_json::json!({ "documents": listed }),
            )
        })?;
        Ok(docs.iter().map(|(n, _)| (*n).to_owned()).collect())
    }
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
    if config.ca.key_store == crate::config::KeyStore::File {
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
        let issuing = crate::ca::read_pem_cert(&h.issuing_pem())?;
        write_file(&crate::ca::issuing_cer(&h), &issuing, 0o644)?;
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
