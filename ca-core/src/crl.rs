//! CRLs: v2, signed by the issuing CA, with a CRL number that only goes up, reason codes and AKI,
//! published as DER and PEM.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde::Serialize;
use time::Duration;

use hljca_token::Module;

use crate::engine::Authority;
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::Secrets;
use crate::revoke::Reason;
use crate::store::crls;
use crate::time_fmt::{now, ts};
use crate::{Ca, audit};

/// What `crl generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CrlReport {
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: String,
    /// nextUpdate.
    pub next_update: String,
    /// Revoked entries.
    pub revoked: usize,
    /// DER file.
    pub der: std::path::PathBuf,
    /// PEM file.
    pub pem: std::path::PathBuf,
}

impl Ca {
    /// Generates and publishes the next CRL. Its number is allocated, the CRL signed and
    /// recorded, and the audit head anchored, in one IMMEDIATE transaction, so concurrent runs
    /// get distinct, increasing numbers; `issuing.crl` is only ever replaced by a newer CRL.
    pub fn generate_crl(
        &mut self,
        module: Option<&Module>,
        secrets: &Secrets,
    ) -> Result<CrlReport> {
        self.require(crate::operators::Role::CaAdmin, "crl generate")?;
        let keys = self.ca_keys(module, secrets)?;
        let auth = Authority::new(self, &keys)?;
        let aki = subject_key_id(auth.issuing_der())?;
        let op = &self.operator;
        let (number, this_update, next_update, n_revoked, der) =
            self.store.write("generate CRL", |tx| {
                let number = crls::next_number(tx)?;
                let revoked = revoked_entries(tx)?;
                let this_update = crate::validity::ca(now(), 0).0;
                let next_update =
                    this_update + Duration::hours(i64::from(self.config.crl.next_update_hours));
                let params = CertificateRevocationListParams {
                    this_update,
                    next_update,
                    crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
                    issuing_distribution_point: None,
                    revoked_certs: revoked,
                    // AKI = the issuing certificate's own SKI, whatever method made it.
                    key_identifier_method: KeyIdMethod::PreSpecified(aki.clone()),
                };
                let n_revoked = params.revoked_certs.len();
                let crl = params
                    .signed_by(auth.issuer())
                    .map_err(CoreError::cert("CRL"))?;
                let der = crl.der().to_vec();
                crls::insert(tx, number, this_update, next_update, n_revoked, &der)?;
                audit::append(
                    tx,
                    op,
                    "crl.generate",
                    &number.to_string(),
                    &serde_json::json!({ "revoked": n_revoked, "next_update": ts(next_update) }),
                )?;
                // The audit head is signed with every CRL (by the seal maker), so a log cut
                // later shows (`audit verify`).
                audit::anchor(tx, auth.seal_signer())?;
                Ok((number, this_update, next_update, n_revoked, der))
            })?;
        // Published after the commit: the database holds every CRL, so a failed write can be
        // republished, while a file for an unrecorded CRL number could never be explained.
        let dir = self.home.dir().join(&self.config.crl.publish_dir);
        let der_path = dir.join(format!("issuing-{number}.crl"));
        let pem_path = dir.join(format!("issuing-{number}.pem"));
        let pem_text = pem::encode(&pem::Pem::new("X509 CRL", der.clone()));
        write_file(&der_path, &der, 0o644)?;
        write_file(&pem_path, pem_text.as_bytes(), 0o644)?;
        publish_latest(&dir, number, &der, &pem_text)?;
        Ok(CrlReport {
            number,
            this_update: ts(this_update),
            next_update: ts(next_update),
            revoked: n_revoked,
            der: der_path,
            pem: pem_path,
        })
    }

    /// The newest CRL's number, thisUpdate and nextUpdate.
    pub fn last_crl(&self) -> Result<Option<(i64, String, String)>> {
        self.store.last_crl()
    }
}

fn revoked_entries(conn: &crate::store::Db) -> Result<Vec<RevokedCertParams>> {
    let mut out = Vec::new();
    for r in crls::revoked(conn)? {
        let bytes = hex::decode(&r.serial).map_err(|e| CoreError::Parse {
            what: format!("stored serial {}", r.serial),
            reason: e.to_string(),
        })?;
        out.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: r.at.unwrap_or_else(now),
            reason_code: r.reason.map(Reason::rcgen),
            invalidity_date: None,
        });
    }
    Ok(out)
}

/// Replaces `issuing.crl`/`issuing.pem` with CRL `number` unless a newer one is already
/// there. Publishers take an exclusive lock on the directory's lock file first, so two runs
/// finishing in either order leave the newest CRL published.
fn publish_latest(dir: &std::path::Path, number: i64, der: &[u8], pem_text: &str) -> Result<()> {
    let lock_path = dir.join(".publish.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(CoreError::io("opening", &lock_path))?;
    lock.lock().map_err(CoreError::io("locking", &lock_path))?;
    let latest = dir.join("issuing.crl");
    let current = std::fs::read(&latest).ok().and_then(|d| crl_number(&d));
    if current.is_none_or(|c| c < number) {
        write_file(&latest, der, 0o644)?;
        write_file(&dir.join("issuing.pem"), pem_text.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// The CRL number of a DER CRL.
fn crl_number(der: &[u8]) -> Option<i64> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    let n = crl.crl_number()?;
    i64::try_from(n).ok()
}

/// The subjectKeyIdentifier of a CA certificate.
fn subject_key_id(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CoreError::Parse {
        what: "issuing CA certificate".into(),
        reason: e.to_string(),
    })?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| CoreError::Parse {
            what: "issuing CA certificate".into(),
            reason: "no subjectKeyIdentifier".into(),
        })
}
