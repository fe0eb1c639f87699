//! What the OCSP responder and the HTTP publisher read from the store: one certificate's
//! status, which rows changed since a moment, the newest CRL and whether it still lists
//! exactly what the store has revoked. Reads only (the one write-lock probe is rolled back).
//!
//! The SQL is here rather than in `store/` while that module is being reworked; it reads the
//! `certificates` and `crls` tables only.

use crate::Rule;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::Status;
use crate::Ca;
use crate::error::{CoreError, Result};
use crate::revoke::Reason;
use crate::store::crls;
use crate::time_fmt::{now, parse_ts};
use sha2::Digest;

/// A CRL as published.
#[derive(Debug, Clone)]
pub struct CrlDoc {
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// DER.
    pub der: Vec<u8>,
}

/// One row changed at `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Serial (hex).
    pub serial: String,
    /// Its `updated_at` (RFC 3339, whole seconds: text order is time order).
    pub updated_at: String,
}

/// RFC 5280 reason code; absent and unspecified are the same on a CRL.
fn code(r: Option<Reason>) -> u8 {
    r.map_or(0, Reason::code)
}

impl Ca {
    /// The OCSP status of `serial` (hex): issued, superseded and expired certificates are
    /// good, revoked ones (certificateHold included) revoked with their time and reason, and a
    /// serial this CA never issued (no row, or only a pending or voided one) unknown.
    pub fn ocsp_status(&self, serial: &str) -> Result<Status> {
        Ok(match self.store.revocation_state(serial)? {
            Some((s, at, reason)) => match s.as_str() {
                "issued" | "superseded" | "expired" => Status::Good,
                "revoked" => Status::Revoked {
                    at: at.as_deref().and_then(parse_ts).unwrap_or_else(now),
                    reason: reason.and_then(|r| r.parse().ok()),
                },
                _ => Status::Unknown,
            },
            None => Status::Unknown,
        })
    }

    /// A number that changes whenever another connection commits (SQLite's `data_version`;
    /// on PostgreSQL the audit head, which every write moves).
    pub fn data_version(&self) -> Result<i64> {
        self.store
            .conn
            .data_version()
            .map_err(CoreError::db("data_version"))
    }

    /// Certificate rows changed at or after `since` (all of them when `None`), oldest first.
    pub fn changed_since(&self, since: Option<&str>) -> Result<Vec<Change>> {
        Ok(self
            .store
            .changed_since(since.unwrap_or(""))?
            .into_iter()
            .map(|(serial, updated_at)| Change { serial, updated_at })
            .collect())
    }

    /// Serials whose OCSP answer is good or revoked (the ones worth answering ahead).
    pub fn ocsp_serials(&self) -> Result<Vec<String>> {
        Ok(self.store.ocsp_serials()?)
    }

    /// The CRL with the highest number, from the database (whichever site made it); a CRL made
    /// before schema 14 is read from its file in the publish directory. Checked against the hash
    /// the database recorded for it.
    pub fn latest_crl(&self) -> Result<Option<CrlDoc>> {
        let Some(row) = crls::latest(&self.store.conn)? else {
            return Ok(None);
        };
        let number = row.number;
        let path = self
            .home
            .dir()
            .join(&self.config.crl.publish_dir)
            .join(&row.file);
        let stored = match &row.sha256 {
            Some(sha) => crate::store::blobs::get(&self.store.conn, sha)?,
            None => None,
        };
        let der = match stored {
            Some(der) => der,
            None => std::fs::read(&path).map_err(CoreError::io("reading CRL", &path))?,
        };
        if let Some(want) = &row.sha256 {
            let got = hex::encode(sha2::Sha256::digest(&der));
            if &got != want {
                return Err(CoreError::refuse(
                    Rule::CrlIntact,
                    format!(
                        "CRL {number} at {} does not match the SHA-256 the database recorded for it; \
                     run `hljca crl generate` to publish a new one",
                        path.display()
                    ),
                ));
            }
        }
        let time = |s: &str| {
            parse_ts(s).ok_or_else(|| CoreError::Parse {
                what: format!("CRL {number} time"),
                reason: format!("`{s}` is not RFC 3339"),
            })
        };
        Ok(Some(CrlDoc {
            number,
            this_update: time(&row.this_update)?,
            next_update: time(&row.next_update)?,
            der,
        }))
    }

    /// True when `crl` lists exactly the certificates the store has revoked, with their
    /// reasons (a release from hold, a hold made final or a new revocation make it stale).
    pub fn crl_is_current(&self, crl: &CrlDoc) -> Result<bool> {
        let mut stored: Vec<(String, u8)> = Vec::new();
        crls::for_each_revoked(&self.store.conn, |r| {
            stored.push((r.serial.to_ascii_lowercase(), code(r.reason)));
            Ok::<_, CoreError>(())
        })?;
        let (_, parsed) =
            CertificateRevocationList::from_der(&crl.der).map_err(|e| CoreError::Parse {
                what: format!("CRL {}", crl.number),
                reason: e.to_string(),
            })?;
        let mut listed: Vec<(String, u8)> = parsed
            .iter_revoked_certificates()
            .map(|r| {
                (
                    super::serial_hex(r.raw_serial()),
                    r.reason_code().map(|(_, c)| c.0).unwrap_or(0),
                )
            })
            .collect();
        stored.sort();
        listed.sort();
        Ok(stored == listed)
    }

    /// Takes the database's write lock and lets it go again (waiting at most `wait`): the
    /// health check's proof that writes would go through.
    pub fn database_writable(&self, wait: std::time::Duration) -> Result<()> {
        self.store
            .conn
            .probe_write(wait)
            .map_err(CoreError::db("write probe"))
    }
}
