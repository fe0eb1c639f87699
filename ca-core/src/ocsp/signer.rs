//! The delegated OCSP signing certificate (RFC 6960 section 4.2.2.2): an end-entity
//! certificate of the issuing CA with extendedKeyUsage id-kp-OCSPSigning and the
//! id-pkix-ocsp-nocheck extension (section 4.2.2.2.1: relying parties do not ask for its own
//! status, so it lives only a few days and is renewed at half of its life).
//!
//! Its key is a P-256 key beside the CA keys (on the CA HSM token, `ca.ocsp_signer_key_id`, or
//! `ca/ocsp-signer.key.p8` with the file key store); its certificate is `ca/ocsp-signer.pem`.

use std::path::PathBuf;

use der::Decode;
use rcgen::{
    CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SerialNumber,
};
use sha1::{Digest, Sha1};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{pem_cert, read_pem_cert};
use crate::engine::{Authority, CA_KEY_FILES, KeyHome, record_made};
use crate::error::{CoreError, Result};
use crate::home::{write_file, write_new_file};
use crate::keys::{CaKeyRole, CaKeys, new_encrypted_key};
use crate::profile::{SubjectKey, ca_subject, random_serial};
use crate::store::CertRole;
use crate::{Ca, audit};

/// Common name of the OCSP signing certificate.
pub const OCSP_SIGNER_CN: &str = "黑龙江CA OCSP响应服务";
/// id-pkix-ocsp-nocheck.
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// How far notBefore is set back, for relying parties whose clocks run a little slow.
const BACKDATE: Duration = Duration::hours(1);

/// The OCSP signing certificate in use.
#[derive(Debug, Clone)]
pub struct SignerCert {
    der: Vec<u8>,
    cert: x509_cert::Certificate,
    serial: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_bits: Vec<u8>,
    key_hash: [u8; 20],
}

impl SignerCert {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<SignerCert> {
        let bad = |reason: String| CoreError::Parse {
            what: "OCSP signing certificate".into(),
            reason,
        };
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let (_, parsed) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let validity = crate::validity::of_certificate(&parsed);
        let key_bits = parsed.public_key().subject_public_key.data.to_vec();
        Ok(SignerCert {
            der: der.to_vec(),
            serial: hex::encode(parsed.raw_serial()),
            not_before: validity.not_before,
            not_after: validity.not_after,
            key_hash: Sha1::digest(&key_bits).into(),
            key_bits,
            cert,
        })
    }
    /// DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The parsed certificate (carried in every answer).
    pub fn cert(&self) -> &x509_cert::Certificate {
        &self.cert
    }
    /// Serial (hex).
    pub fn serial(&self) -> &str {
        &self.serial
    }
    /// notBefore.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }
    /// notAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    /// The public key (BIT STRING content).
    pub fn key_bits(&self) -> &[u8] {
        &self.key_bits
    }
    /// SHA-1 of the public key: the responderID byKey (RFC 6960 section 4.2.1).
    pub fn key_hash(&self) -> &[u8; 20] {
        &self.key_hash
    }
    /// True once half of its life has passed: time for a new one.
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        needs_renewal(self.not_before, self.not_after, now)
    }
}

/// True from the middle of `not_before..not_after` on (and outside it).
pub fn needs_renewal(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    now < not_before || now >= not_before + (not_after - not_before) / 2
}

/// `ca/ocsp-signer.pem` of a home.
pub fn signer_pem(ca: &Ca) -> PathBuf {
    ca.home.dir().join("ca").join("ocsp-signer.pem")
}

pub(super) fn signer_params(
    now: OffsetDateTime,
    days: u32,
    issuing_not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = ca_subject(OCSP_SIGNER_CN)?;
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    let now = now.replace_nanosecond(0).unwrap_or(now);
    p.not_before = now - BACKDATE;
    p.not_after = (now + Duration::days(i64::from(days))).min(issuing_not_after);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    p.use_authority_key_identifier_extension = true;
    // id-pkix-ocsp-nocheck ::= NULL
    p.custom_extensions.push(CustomExtension::from_oid_content(
        OID_OCSP_NOCHECK,
        vec![0x05, 0x00],
    ));
    Ok(p)
}

impl Ca {
    /// Makes the OCSP signer's key when the CA has none yet: a P-256 key on the CA HSM token
    /// (its id recorded as `ca.ocsp_signer_key_id`) or an encrypted key file, and an audit row.
    pub fn ocsp_signer_key(&mut self, keys: &mut CaKeys) -> Result<()> {
        let present = match keys {
            CaKeys::Hsm { ocsp_signer, .. } => ocsp_signer.is_some(),
            CaKeys::File { ocsp_signer, .. } => ocsp_signer.is_some(),
        };
        if present {
            return Ok(());
        }
        let key_id = match keys {
            CaKeys::Hsm {
                session,
                ocsp_signer,
                ..
            } => {
                let key = session.generate_p256("hljca-ocsp-signer")?;
                let hex = key.id.to_hex();
                *ocsp_signer = Some(key.id);
                self.parts_mut()?.config.ca.ocsp_signer_key_id = Some(hex.clone());
                write_file(
                    &self.home.config(),
                    self.config.to_toml()?.as_bytes(),
                    0o600,
                )?;
                Some(hex)
            }
            CaKeys::File {
                ocsp_signer, pass, ..
            } => {
                let (key, enc) = new_encrypted_key(pass)?;
                write_new_file(
                    &self.home.key_file(CaKeyRole::OcspSigner.name()),
                    &enc,
                    0o600,
                )?;
                *ocsp_signer = Some(Box::new(key));
                None
            }
        };
        Ok(self.write("record OCSP signer key", |tx| {
            audit::append(
                tx,
                self.actor.name(),
                "ca.ocsp-signer-key",
                CaKeyRole::OcspSigner.name(),
                &serde_json::json!({
                    "key_id": key_id,
                    "purpose": "signs OCSP responses only",
                }),
            )
        })?)
    }

    /// The OCSP signing certificate in `ca/ocsp-signer.pem` when it holds the OCSP signer key,
    /// is issued by the issuing CA and is in the first half of its life; else a new one of
    /// `days` days from the issuing CA, written there and recorded in the audit log.
    pub fn ocsp_signer(&self, keys: &CaKeys, days: u32) -> Result<SignerCert> {
        let key = keys.signer(CaKeyRole::OcspSigner)?;
        let key_bits = rcgen::PublicKeyData::der_bytes(&key).to_vec();
        let issuing_der = read_pem_cert(&self.home.issuing_pem())?;
        let (_, issuing) = X509Certificate::from_der(&issuing_der).map_err(|e| {
            CoreError::IssuerMismatch(format!("ca/issuing.pem does not parse: {e}"))
        })?;
        let now = crate::time_fmt::now();
        let path = signer_pem(self);
        if let Ok(der) = read_pem_cert(&path) {
            match current(&der, &key_bits, &issuing, now) {
                Ok(Some(cert)) => return Ok(cert),
                Ok(None) => {}
                Err(why) => tracing::warn!(
                    file = %path.display(),
                    "OCSP signing certificate replaced: {why}"
                ),
            }
        }
        let issuing_not_after = crate::validity::of_certificate(&issuing).not_after;
        let auth = Authority::new(self, keys)?;
        let subject = SubjectKey {
            bits: key_bits,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
        };
        let params = signer_params(now, days, issuing_not_after)?;
        let der = auth.sign(&params, &subject, "OCSP signing certificate")?;
        let cert = SignerCert::from_der(&der)?;
        write_file(&path, pem_cert(&der).as_bytes(), 0o644)?;
        let ca = &self.config.ca;
        let home = KeyHome {
            token_label: ca.token_label.as_deref().unwrap_or(CA_KEY_FILES),
            token_serial: ca.token_serial.as_deref().unwrap_or(""),
            key_id: ca.ocsp_signer_key_id.as_deref().unwrap_or(""),
        };
        self.write("record OCSP signing certificate", |tx| {
            record_made(tx, CertRole::OcspSigner, &der, home)?;
            audit::append(
                tx,
                self.actor.name(),
                "ca.ocsp-signer",
                cert.serial(),
                &serde_json::json!({
                    "certificate": path,
                    "not_before": crate::time_fmt::ts(cert.not_before()),
                    "not_after": crate::time_fmt::ts(cert.not_after()),
                    "purpose": "signs OCSP responses (id-kp-OCSPSigning, ocsp-nocheck)",
                }),
            )
        })?;
        Ok(cert)
    }
}

/// The stored signing certificate when it is still the one to use; `Err` says why it is not
/// usable at all, `Ok(None)` that it is due for renewal.
fn current(
    der: &[u8],
    key_bits: &[u8],
    issuing: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> std::result::Result<Option<SignerCert>, String> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    if c.public_key().subject_public_key.data.as_ref() != key_bits {
        return Err("it does not hold the OCSP signer key".into());
    }
    if c.tbs_certificate.issuer.as_raw() != issuing.tbs_certificate.subject.as_raw() {
        return Err("it is not issued by the issuing CA".into());
    }
    c.verify_signature(Some(issuing.public_key()))
        .map_err(|e| format!("it does not verify under the issuing CA: {e}"))?;
    let cert = SignerCert::from_der(der).map_err(|e| e.to_string())?;
    Ok((!cert.needs_renewal(now)).then_some(cert))
}
