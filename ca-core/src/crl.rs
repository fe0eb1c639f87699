//! CRLs: v2, signed by the issuing CA, with a CRL number that only goes up, reason codes and AKI,
//! published as DER and PEM.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use time::Duration;

use hljca_token::Module;

use crate::engine::Authority;
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::Secrets;
use crate::revoke::Reason;
use crate::time_fmt::{now, parse_ts, ts};
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
        let keys = self.ca_keys(module, secrets)?;
        let auth = Authority::new(self, &keys)?;
        let aki = subject_key_id(auth.issuing_der())?;
        let op = &self.operator;
        let (number, this_update, next_update, n_revoked, der) =
            self.store.write("generate CRL", |tx| {
                let last: Option<i64> = tx
                    .query_row("SELECT max(number) FROM crls", [], |r| r.get(0))
                    .optional()
                    .map_err(CoreError::db("last CRL number"))?
                    .flatten();
                let number = last.unwrap_or(0) + 1;
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
                let crl = params.signed_by(auth.issuer()).map_err(CoreError::cert("CRL"))?;
                let der = crl.der().to_vec();
                tx.execute(
                    "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![number, ts(this_update), ts(next_update), n_revoked as i64, der],
                )
                .map_err(CoreError::db("record CRL"))?;
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
        self.store
            .conn
            .query_row(
                "SELECT number, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(CoreError::db("last CRL"))
    }
}

fn revoked_entries(conn: &rusqlite::Connection) -> Result<Vec<RevokedCertParams>> {
    let mut stmt = conn
        .prepare("SELECT serial, revoked_at, revocation_reason FROM certificates WHERE status = 'revoked' ORDER BY revoked_at")
        .map_err(CoreError::db("revoked list"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(CoreError::db("revoked list"))?;
    let mut out = Vec::new();
    for row in rows {
        let (serial, at, reason) = row.map_err(CoreError::db("revoked list"))?;
        let bytes = hex::decode(&serial).map_err(|e| CoreError::Parse {
            what: format!("stored serial {serial}"),
            reason: e.to_string(),
        })?;
        let reason: Option<Reason> = reason.and_then(|r| r.parse().ok());
        out.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: at.as_deref().and_then(parse_ts).unwrap_or_else(now),
            reason_code: reason.map(Reason::rcgen),
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
