//! hljca-core: the Heilongjiang CA itself.
//!
//! This crate owns the CA hierarchy (root → issuing CA, keys on an HSM token or in encrypted
//! files), issuance onto USBKEYs from a policy, the GM/T 0031 electronic seal, revocation and
//! CRLs, the hash-chained audit log and the SQLite store. It never prints or reads the terminal:
//! the `hljca` binary does that.
#![forbid(unsafe_code)]

pub mod actor;
pub mod api;
pub mod applications;
pub use hljca_store::audit;
pub mod backup;
pub mod ca;
pub mod config;
pub mod crl;
pub mod csr;
pub mod eligibility;
pub mod engine;
mod error;
pub mod home;
pub mod issue;
pub mod keys;
pub mod lifecycle;
pub mod ocsp;
pub mod operators;
pub mod profile;
pub mod revoke;
pub use hljca_pki::seal;
pub mod seal_check;
pub mod sites;
/// The rules a request can break and the typed refusal (re-exported from `hljca-rules`).
pub use hljca_rules as rules;
pub use hljca_rules::{Class, Refusal, Rule};
pub use hljca_store as store;

#[cfg(test)]
#[path = "../../tests/pg_cluster.rs"]
pub(crate) mod pg_cluster;
pub use hljca_pki::validity;
pub use hljca_store::time_fmt;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hljca_policies::PolicySet;
use hljca_token::Module;

pub use actor::Actor;
pub use config::{Config, KeyStore};
pub use error::{CoreError, Result};
pub use home::Home;
pub use keys::Secrets;
pub use store::Store;

/// Loads the PKCS#11 module, shared through an `Arc` by everything that uses it (PKCS#11
/// allows one `C_Initialize` per process; the module is finalised when the last user drops
/// it). `home` decides the SoftHSM store lock (its `run/pkcs11.lock`) and `quirks` whether
/// the SoftHSM workarounds apply; without a home the lock is beside `SOFTHSM2_CONF`.
pub fn load_module(
    path: Option<&Path>,
    home: Option<&Home>,
    quirks: hljca_token::QuirksMode,
) -> Result<Arc<Module>> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => Module::discover()?,
    };
    let lock = home.map_or_else(|| hljca_token::default_lock_path(&path), Home::pkcs11_lock);
    let options = hljca_token::ModuleOptions {
        quirks,
        ..hljca_token::ModuleOptions::with_lock(lock)
    };
    Ok(Arc::new(Module::open_with(Some(&path), &options)?))
}

/// A handle on an opened CA home, acting as one [`Actor`]: configuration, database and
/// policies (shared by every handle of the process, see [`Ca::act_for`]) and who acts. Its
/// parts are private: callers act through its methods, and only the store writes the database.
#[derive(Debug)]
pub struct Ca {
    parts: std::rc::Rc<Parts>,
    actor: Actor,
}

/// What every handle of one opened CA shares.
#[derive(Debug)]
pub struct Parts {
    home: Home,
    config: Config,
    store: Store,
    policies: PolicySet,
    clock: std::cell::Cell<Option<time::OffsetDateTime>>,
    operator_session: Option<operators::OperatorSession>,
    module: std::cell::OnceCell<Arc<Module>>,
    location: store::Location,
}

impl std::ops::Deref for Ca {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Ca {
    /// Opens an initialised home. Its database must be there: a missing or empty one is an
    /// error naming the file, never a silent new history.
    pub fn open(home: Home, operator: impl Into<String>) -> Result<Ca> {
        home.require_initialized()?;
        let config = Config::load(&home.config())?;
        let location = store::Location::resolve(home.dir(), home.db(), config.database.as_deref())?;
        let store = Store::open(&location, home.dir())?;
        store
            .conn
            .set_site(Self::configured_site(config.site.as_deref())?);
        let policy_dir = home.dir().join(&config.policy_dir);
        let policies = PolicySet::load(Some(&policy_dir))?;
        Ok(Ca {
            parts: std::rc::Rc::new(Parts {
                home,
                config,
                store,
                policies,
                clock: std::cell::Cell::new(None),
                operator_session: None,
                module: std::cell::OnceCell::new(),
                location,
            }),
            actor: Actor::anonymous(operator),
        })
    }

    /// The site named by `HLJCA_SITE`, else by `site` in hljca.toml; `None` when neither is set.
    fn configured_site(configured: Option<&str>) -> Result<Option<String>> {
        let env = std::env::var("HLJCA_SITE")
            .ok()
            .filter(|s| !s.trim().is_empty());
        let Some(site) = env.as_deref().or(configured) else {
            return Ok(None);
        };
        Ok(Some(Self::site_code(site)?))
    }

    /// A site's code, checked: one of the CA's sites.
    pub fn site_code(site: &str) -> Result<String> {
        let site = site.trim().to_ascii_lowercase();
        if !applications::Site::ALL.iter().any(|s| s.as_str() == site) {
            return Err(CoreError::refuse_on(
                Rule::UnknownSite,
                "site",
                format!(
                    "site `{site}` is not one of harbin, hegang, qiqihar [field: site / HLJCA_SITE]"
                ),
            ));
        }
        Ok(site)
    }

    /// Opens the PKCS#11 module: `explicit` (from `HLJCA_PKCS11_MODULE`), else the configured
    /// one, else SoftHSM2 from its usual places.
    ///
    /// A process loads the module once (PKCS#11 allows one `C_Initialize`); it then lives as
    /// long as the process, which holds the operator's session on it.
    pub fn module(&self, explicit: Option<&Path>) -> Result<Arc<Module>> {
        if let Some(m) = self.module.get() {
            return Ok(Arc::clone(m));
        }
        let path: Option<PathBuf> = explicit
            .map(Path::to_path_buf)
            .or_else(|| self.config.pkcs11_module.clone());
        let m = load_module(path.as_deref(), Some(&self.home), self.config.pkcs11_quirks)?;
        Ok(Arc::clone(self.module.get_or_init(|| m)))
    }

    /// Uses `module` (already loaded by the caller) for every token operation of this `Ca`.
    pub fn use_module(&self, module: Arc<Module>) {
        let _ = self.module.set(module);
    }

    /// Creates what `hljca init` leaves after the CA keys: the init audit row, the seal maker
    /// and the first CA administrator (every role) on `admin.token`, in the key ceremony, with
    /// the CA PIN as the only authority (no operator exists yet).
    pub fn complete_init(
        &mut self,
        secrets: &Secrets,
        report: &ca::InitReport,
        admin: &operators::NewOperator,
        admin_pin: &hljca_token::Pin,
        module: Arc<Module>,
    ) -> Result<store::OperatorRecord> {
        self.use_module(Arc::clone(&module));
        self.store.set_bootstrap(true);
        let made = (|| -> Result<()> {
            self.write("init", |tx| {
                let details = serde_json::to_value(report).map_err(|e| CoreError::Encoding {
                    what: "init report",
                    reason: e.to_string(),
                })?;
                audit::append(tx, "(CA key custodian)", "ca.init", "issuing-ca", &details)
            })?;
            drop(self.ca_keys(Some(&module), secrets)?);
            self.share_documents()?;
            Ok(())
        })();
        self.store.set_bootstrap(false);
        made?;
        self.enrol_operator(&module, secrets, admin, admin_pin)
    }

    /// Copies this CA's database into the empty database `to` (`hljca db copy`), verified
    /// before it commits.
    ///
    /// The source is then retired: marked moved (every command on it refuses, naming the new
    /// database) in a transaction that first checks nothing was written to it during the copy.
    pub fn copy_database(&self, to: &store::Location) -> Result<store::copy::CopyReport> {
        self.require(operators::Role::CaAdmin, "db copy")?;
        let report = store::copy::copy(&self.store, to)?;
        let target = to.display();
        self.write("retire the copied database", |tx| {
            let head = store::audit_log::head_seq(tx)?;
            if usize::try_from(head).ok() != Some(report.audit_rows) {
                return Err(CoreError::refuse(
                    Rule::DatabaseMoved,
                    format!(
                        "{} audit rows were written here while copying ({} copied): this \
                         database stays in use; copy again into a new empty database",
                        head - report.audit_rows as i64,
                        report.audit_rows
                    ),
                ));
            }
            store::blobs::documents::set(tx, store::blobs::documents::MOVED_TO, target.as_bytes())?;
            audit::append(
                tx,
                self.actor.name(),
                "db.moved",
                "database",
                &serde_json::json!({ "to": target, "audit_rows": report.audit_rows }),
            )?;
            Ok(())
        })?;
        Ok(report)
    }

    /// Backs the CA up into `dir` (new or empty): see [`backup`]. A ca-admin's; audited
    /// (`ca.backup`, with the manifest's digest) once the backup is complete.
    pub fn backup(&self, dir: &Path, softhsm_conf: Option<&Path>) -> Result<backup::Manifest> {
        self.require(operators::Role::CaAdmin, "backup")?;
        let m = backup::backup(&self.store, &self.home, dir, softhsm_conf)?;
        let manifest = dir.join(backup::MANIFEST);
        let digest = std::fs::read(&manifest)
            .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)))
            .map_err(CoreError::io("reading", &manifest))?;
        self.audit(
            "ca.backup",
            &dir.display().to_string(),
            serde_json::json!({
                "files": m.files.len(), "audit_rows": m.audit_rows,
                "manifest_sha256": digest, "softhsm_tokens": m.softhsm_tokens,
            }),
        )?;
        Ok(m)
    }

    /// Confirms a restored CA (`hljca restore`, by a logged-in ca-admin): the audit log and
    /// its anchors verify, every material and CRL the database names is there and intact, and
    /// a `ca.restore` audit row records it.
    pub fn confirm_restore(&self, from: &Path) -> Result<(usize, usize)> {
        self.require(operators::Role::CaAdmin, "restore")?;
        let (rows, anchors) = self.audit_verify()?;
        let bad = store::blobs::check_referenced(&self.store.conn)?;
        if !bad.is_empty() {
            return Err(CoreError::refuse(
                Rule::BackupIntact,
                format!(
                    "the restored database lacks or has altered {} stored file(s) (materials, CRLs): {}",
                    bad.len(),
                    bad.join(", ")
                ),
            ));
        }
        self.audit(
            "ca.restore",
            &from.display().to_string(),
            serde_json::json!({ "audit_rows": rows, "anchors": anchors }),
        )?;
        Ok((rows, anchors))
    }

    /// Where the CA's database is.
    pub fn location(&self) -> &store::Location {
        &self.location
    }

    /// Where the leases of this CA's issuances live: lock files in the home (SQLite), or
    /// advisory locks in the shared PostgreSQL database, seen by every site.
    pub fn lease_space(&self) -> engine::LeaseSpace {
        match &self.location {
            store::Location::Sqlite(_) => engine::LeaseSpace::Files(self.home.clone()),
            store::Location::Postgres(url) => engine::LeaseSpace::Postgres(url.clone()),
        }
    }

    /// The CA's "now": the system clock, or the instant set by [`Ca::set_clock`]. Business
    /// rules (renewal window, expiry, validity, reminders) read time here and nowhere else.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.get().unwrap_or_else(time_fmt::now)
    }

    /// Fixes the CA's clock at `t` (tests and what-if runs; audit timestamps stay real time).
    pub fn set_clock(&mut self, t: time::OffsetDateTime) {
        self.clock.set(Some(t));
    }

    /// Who this handle acts as.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// One write transaction for this handle's actor (the store's [`Store::write_as`]): the
    /// rows it changes are bound in an audit row naming the actor.
    pub fn write<T, E: From<store::StoreError>>(
        &self,
        what: &'static str,
        f: impl FnOnce(&store::Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.store.write_as(self.actor.name(), what, f)
    }

    /// Commits a transaction begun on the store for this handle's actor.
    pub fn commit(&self, tx: store::Tx<'_>, what: &'static str) -> Result<()> {
        Ok(self.store.commit_as(tx, self.actor.name(), what)?)
    }

    /// The shared parts, mutably: only while no other handle exists (logging in happens
    /// before the CA acts for anyone).
    fn parts_mut(&mut self) -> Result<&mut Parts> {
        std::rc::Rc::get_mut(&mut self.parts).ok_or_else(|| {
            CoreError::refuse(
                Rule::ActingTwice,
                "the CA's set-up cannot change while it acts for someone",
            )
        })
    }

    /// The store: reads outside a transaction, and [`Store::write`] for the workflow's own
    /// transactions (each with its audit row, signed by the operator).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One certificate by serial (hex, any case, colons allowed).
    pub fn cert(&self, serial: &str) -> Result<store::CertRecord> {
        Ok(self.store.cert(serial)?.as_of(self.now()))
    }

    /// Certificates matching `filter`, newest first, with expiry judged by the CA's clock.
    pub fn certs(&self, filter: &store::CertFilter) -> Result<Vec<store::CertRecord>> {
        let mut f = filter.clone();
        f.now = Some(self.now());
        Ok(self.store.certs(&f)?)
    }

    /// Certificates matching `filter` as lists show them (no DER or applicant data), newest
    /// first, paged by `filter.limit`/`filter.after`, expiry judged by the CA's clock.
    pub fn cert_summaries(&self, filter: &store::CertFilter) -> Result<Vec<store::CertSummary>> {
        let mut f = filter.clone();
        f.now = Some(self.now());
        Ok(self.store.cert_summaries(&f)?)
    }

    /// Certificate counts by status (expired by the CA's clock), with how many issued ones
    /// expire within `window`: one aggregate query.
    pub fn cert_counts(&self, window: time::Duration) -> Result<store::CertCounts> {
        let now = self.now();
        Ok(self.store.cert_counts(now, now + window)?)
    }

    /// Issuances not yet committed or voided (what `recover` would look at).
    pub fn open_issuances(&self) -> Result<Vec<store::IssuanceRow>> {
        Ok(self.store.open_issuances()?)
    }

    /// The certificate types in force.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Who is acting.
    pub fn operator(&self) -> &str {
        self.actor.name()
    }

    /// Records an event that changed nothing in the database (a token initialised, objects
    /// removed from a token): one audit row in its own write transaction.
    pub fn audit(&self, action: &str, object: &str, details: serde_json::Value) -> Result<()> {
        Ok(self.write("audit", |tx| {
            audit::append(tx, self.actor.name(), action, object, &details)
        })?)
    }

    /// Checks the audit chain, the signed anchors of its head, and the current certificates,
    /// orders, applications and USBKEY register rows against the states the log bound; returns
    /// the number of audit rows and of anchors.
    pub fn audit_verify(&self) -> Result<(usize, usize)> {
        let rows = audit::verify(&self.store.conn)?;
        audit::verify_rows(&self.store.conn)?;
        audit::verify_signatures(&self.store.conn)?;
        let maker = ca::read_pem_cert(&self.home.seal_maker_pem()).ok();
        let anchors = audit::verify_anchors(
            &self.store.conn,
            &ca::issuing_der(&self.home)?,
            maker.as_deref(),
        )?;
        Ok((rows, anchors))
    }

    /// The hash of the newest audit row (record it outside the CA to detect a cut log later).
    pub fn audit_head(&self) -> Result<Option<String>> {
        Ok(store::audit_log::tail(&self.store.conn)?.map(|(_, hash)| hash))
    }

    /// All audit rows.
    pub fn audit_list(&self) -> Result<Vec<audit::AuditEntry>> {
        Ok(audit::list(&self.store.conn)?)
    }

    /// How many audit rows there are (the head's sequence number; one indexed lookup).
    pub fn audit_count(&self) -> Result<i64> {
        Ok(store::audit_log::head_seq(&self.store.conn)?)
    }
}
