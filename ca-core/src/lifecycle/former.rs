//! The former (Daqing) platform's CA, as configured once in `hljca.toml` (`[binding]`): its CA
//! certificates are the only anchors a bound certificate may chain to, and its CRLs (when
//! configured) say whether the former CA revoked it.

use crate::Rule;
use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::Ca;
use crate::error::{CoreError, Result};
use crate::time_fmt::ts;

/// What the check found out about a certificate to bind.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    /// Subject of the former CA certificate it chains to.
    pub anchor: String,
    /// How many of the configured CRLs were that CA's and were checked.
    pub crls_checked: usize,
}

/// Largest certificate or CRL file read (a CRL of a large CA fits comfortably).
const MAX_DER_FILE: u64 = 64 * 1024 * 1024;

/// The bytes of `p`, at most `max` (see [`crate::home::read_limited`]).
pub(super) fn read_bounded(p: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    crate::home::read_limited(p, max, what)
}

/// DER of a PEM or DER file.
pub(super) fn read_der(p: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = read_bounded(p, MAX_DER_FILE, what)?;
    if bytes.starts_with(b"-----BEGIN") {
        let pem = pem::parse(&bytes).map_err(|e| CoreError::Parse {
            what: format!("{what} {}", p.display()),
            reason: e.to_string(),
        })?;
        Ok(pem.into_contents())
    } else {
        Ok(bytes)
    }
}

impl Ca {
    /// Checks `cert` against the configured former platform CA: issued and signed by one of its
    /// CA certificates, both valid now, and not on a configured CRL of that CA.
    pub(super) fn verify_former(&self, cert: &X509Certificate<'_>) -> Result<Verified> {
        let cfg = &self.config.binding;
        if cfg.former_ca.is_empty() {
            return Err(CoreError::refuse(
                Rule::FormerCa,
                "binding needs the former platform's CA certificate(s): list them once in hljca.toml, \
                 [binding] former_ca = [\"former/daqing-ca.pem\"] (paths relative to the home)",
            ));
        }
        let now = self.now();
        let serial = hex::encode(cert.raw_serial());
        let anchors: Vec<Vec<u8>> = cfg
            .former_ca
            .iter()
            .map(|p| read_der(&self.home.dir().join(p), "former CA certificate"))
            .collect::<Result<_>>()?;
        let mut names = Vec::new();
        for der in &anchors {
            let (_, ca) = X509Certificate::from_der(der).map_err(|e| CoreError::Parse {
                what: "a configured former CA certificate".into(),
                reason: e.to_string(),
            })?;
            names.push(ca.subject().to_string());
            if ca.subject() != cert.issuer()
                || cert.verify_signature(Some(ca.public_key())).is_err()
            {
                continue;
            }
            let (nb, na) = (
                ca.validity().not_before.to_datetime(),
                ca.validity().not_after.to_datetime(),
            );
            if now < nb || now > na {
                return Err(CoreError::refuse(
                    Rule::FormerCa,
                    format!(
                        "the former CA `{}` is not valid now ({} .. {}): its certificates cannot be bound",
                        ca.subject(),
                        ts(nb),
                        ts(na)
                    ),
                ));
            }
            let mut crls_checked = 0;
            for p in &cfg.former_crl {
                let crl_der = read_der(&self.home.dir().join(p), "former CA CRL")?;
                let (_, crl) = CertificateRevocationList::from_der(&crl_der).map_err(|e| {
                    CoreError::Parse {
                        what: format!("CRL {}", p.display()),
                        reason: e.to_string(),
                    }
                })?;
                if crl.issuer() != ca.subject() {
                    continue;
                }
                crl.verify_signature(ca.public_key()).map_err(|_| {
                    CoreError::refuse(
                        Rule::FormerCa,
                        format!(
                            "CRL {} does not verify with the former CA `{}`",
                            p.display(),
                            ca.subject()
                        ),
                    )
                })?;
                if let Some(next) = crl.next_update().map(|t| t.to_datetime())
                    && next < now
                {
                    return Err(CoreError::refuse(
                        Rule::FormerCa,
                        format!(
                            "CRL {} of the former CA is out of date (nextUpdate {}); fetch a current one first",
                            p.display(),
                            ts(next)
                        ),
                    ));
                }
                if let Some(r) = crl
                    .iter_revoked_certificates()
                    .find(|r| r.raw_serial() == cert.raw_serial())
                {
                    return Err(CoreError::refuse_on(
                        Rule::FormerCa,
                        "serial",
                        format!(
                            "certificate {serial} was revoked by the former CA on {}{}",
                            ts(r.revocation_date.to_datetime()),
                            r.reason_code()
                                .map(|(_, c)| format!(" ({c})"))
                                .unwrap_or_default()
                        ),
                    ));
                }
                crls_checked += 1;
            }
            return Ok(Verified {
                anchor: ca.subject().to_string(),
                crls_checked,
            });
        }
        Err(CoreError::refuse_on(
            Rule::FormerCa,
            "serial",
            format!(
                "certificate {serial} (issuer `{}`) is not issued by a configured former platform CA ({})",
                cert.issuer(),
                names.join("; ")
            ),
        ))
    }
}
