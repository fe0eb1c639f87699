//! Verifying a seal as a relying party would: our issuing CA signed it, it has not been changed,
//! and its seal certificate is ours, issued (not revoked or superseded) and within its validity.

use crate::Rule;
use serde::Serialize;
use x509_parser::prelude::FromDer;

use crate::error::{CoreError, Result};
use crate::seal::{ParsedSeal, parse};
use crate::store::CertStatus;
use crate::time_fmt::{now, ts};
use crate::{Ca, ca};

/// A seal's readable fields.
#[derive(Debug, Clone, Serialize)]
pub struct SealSummary {
    /// Header id ("ES").
    pub header_id: String,
    /// Header version.
    pub version: i64,
    /// Vendor id.
    pub vendor_id: String,
    /// esID.
    pub es_id: String,
    /// 1 organisation, 2 personal.
    pub seal_type: i64,
    /// Name on the seal.
    pub name: String,
    /// Serials of the certificates in certList.
    pub cert_serials: Vec<String>,
    /// createDate.
    pub create_date: String,
    /// validStart.
    pub valid_start: String,
    /// validEnd.
    pub valid_end: String,
    /// Picture type.
    pub picture_type: String,
    /// Picture bytes.
    pub picture_bytes: usize,
    /// Width in mm.
    pub width_mm: i64,
    /// Height in mm.
    pub height_mm: i64,
    /// Maker certificate subject.
    pub maker: String,
    /// Signature algorithm OID.
    pub signature_algorithm: String,
}

fn cert_serial_subject(
    der: &[u8],
) -> Result<(String, String, time::OffsetDateTime, time::OffsetDateTime)> {
    let (_, c) =
        x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| CoreError::Parse {
            what: "certificate inside the seal".into(),
            reason: e.to_string(),
        })?;
    Ok((
        hex::encode(c.raw_serial()),
        c.subject().to_string(),
        c.validity().not_before.to_datetime(),
        c.validity().not_after.to_datetime(),
    ))
}

/// Parses a seal into its summary.
pub fn summarize(der: &[u8]) -> Result<(ParsedSeal, SealSummary)> {
    let p = parse(der)?;
    let mut serials = Vec::new();
    for c in &p.cert_list {
        serials.push(cert_serial_subject(c)?.0);
    }
    let maker = cert_serial_subject(&p.maker_cert)
        .map(|c| c.1)
        .unwrap_or_else(|_| "(unparseable)".into());
    let s = SealSummary {
        header_id: p.header_id.clone(),
        version: p.version,
        vendor_id: p.vendor_id.clone(),
        es_id: p.es_id.clone(),
        seal_type: p.seal_type,
        name: p.name.clone(),
        cert_serials: serials,
        create_date: ts(p.create_date),
        valid_start: ts(p.valid_start),
        valid_end: ts(p.valid_end),
        picture_type: p.picture_kind.clone(),
        picture_bytes: p.picture.len(),
        width_mm: p.width_mm,
        height_mm: p.height_mm,
        maker,
        signature_algorithm: p.signature_algorithm.clone(),
    };
    Ok((p, s))
}

impl Ca {
    /// Verifies a seal now; returns its summary when every check passes.
    pub fn verify_seal(&self, der: &[u8]) -> Result<SealSummary> {
        self.verify_seal_at(der, now())
    }

    /// Verifies a seal as of `t`.
    pub fn verify_seal_at(&self, der: &[u8], t: time::OffsetDateTime) -> Result<SealSummary> {
        let (p, summary) = summarize(der)?;
        // Seals are made by the seal maker; seals made before it existed by the issuing CA.
        let maker = ca::read_pem_cert(&self.home.seal_maker_pem()).ok();
        match maker {
            Some(m) if p.maker_cert == m => p.verify_signature(&m)?,
            _ => p.verify_signature(&ca::issuing_der(&self.home)?)?,
        }
        if !p.is_valid_at(t) {
            return Err(CoreError::refuse(
                Rule::SealValidity,
                format!(
                    "seal `{}` is outside its validity ({} .. {})",
                    p.es_id, summary.valid_start, summary.valid_end
                ),
            ));
        }
        if p.cert_list.is_empty() {
            return Err(CoreError::refuse(
                Rule::SealCertificates,
                "seal has an empty certList",
            ));
        }
        for der in &p.cert_list {
            let (serial, _, nb, na) = cert_serial_subject(der)?;
            if t < nb || t > na {
                return Err(CoreError::refuse(
                    Rule::SealValidity,
                    format!("seal certificate {serial} is expired or not yet valid"),
                ));
            }
            let rec = self.store.cert(&serial).map_err(|_| {
                CoreError::refuse(
                    Rule::SealCertificates,
                    format!("seal certificate {serial} was not issued by this CA"),
                )
            })?;
            if rec.der.as_deref() != Some(der.as_slice()) {
                return Err(CoreError::refuse(
                    Rule::SealCertificates,
                    format!("seal certificate {serial} differs from the one this CA issued"),
                ));
            }
            if rec.status != CertStatus::Issued {
                return Err(CoreError::BadState {
                    serial,
                    status: rec.status.to_string(),
                    what: "the seal's certificate is no longer valid, so the seal is not".into(),
                });
            }
        }
        Ok(summary)
    }
}
