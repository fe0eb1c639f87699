//! Sites of one CA: what a site needs that the founding home made (the CA's certificates and
//! shared configuration) is kept in the database as documents, so `hljca site join` makes a
//! working site home from the shared database alone. A site home then holds only its own
//! configuration (its site, its database URL) and its local token configuration
//! (`hljca_ra::sites::join` makes one).

use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::store::blobs::documents;
use crate::{Ca, Config, audit};

/// The documents a site home is made of, with the mode each file gets.
pub const FILES: [(&str, u32); 4] = [
    (documents::ROOT, 0o644),
    (documents::ISSUING, 0o644),
    (documents::CHAIN, 0o644),
    (documents::SEAL_MAKER, 0o644),
];

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
