//! Issuance from a PKCS#10 request, for systems that keep their own keys.
//!
//! The request's self-signature proves possession of the key; its key algorithm is checked
//! against the policy. Its subject and extensions are not trusted: the subject comes from the
//! policy and the applicant data, exactly as for a key on a USBKEY. Only the identity
//! certificate is issued (a seal needs its key on a token). Crash-safety order as in
//! [`Ca::issue`]: pending row (token `(csr)`, key id = SHA-256 of the SPKI), sign, mark issued
//! with the audit row in one transaction, then write the PEM files.

use std::path::Path;

use hljca_policies::{Applicant, CertType, KeyAlgorithm, Policy};
use hljca_token::Module;
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::ca::{issuer, pem_cert};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::issue::IssuedCert;
use crate::keys::{CaKeys, Secrets};
use crate::profile::{EeParams, TokenPublicKey, end_entity, random_serial, subject};
use crate::store::{CertRole, NewPending, Store};
use crate::time_fmt::now;
use crate::{Ca, audit};

/// Token label recorded on certificate rows issued from a CSR.
pub const CSR_TOKEN_LABEL: &str = "(csr)";

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_SM2: &str = "1.2.156.10197.1.301";

/// Why a certificate request was refused (bad input: exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRejected {
    /// Not a PKCS#10 request in PEM or DER.
    #[error("the CSR is not a PKCS#10 request (PEM or DER): {0}")]
    Parse(String),
    /// The self-signature does not verify.
    #[error(
        "the CSR's signature does not verify ({0}) [rule: a PKCS#10 request is signed by its own key]"
    )]
    Signature(String),
    /// The key algorithm is not the policy's.
    #[error(
        "the CSR's key is {found}, but a {cert_type} certificate needs {wanted} [rule: key_algorithm = {rule} in policy {cert_type}]"
    )]
    KeyAlgorithm {
        /// The type.
        cert_type: CertType,
        /// What the request has.
        found: String,
        /// What the policy wants, in words.
        wanted: &'static str,
        /// The policy value.
        rule: &'static str,
    },
}

/// A request whose signature and key algorithm were checked; only [`check_csr`] makes one.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    cert_type: CertType,
    spki_der: Vec<u8>,
    public_point: Vec<u8>,
    /// The subject the request asked for (informational; not used).
    pub requested_subject: String,
}

/// What `issue --csr` made.
#[derive(Debug, Clone, Serialize)]
pub struct CsrOutcome {
    /// The identity certificate.
    pub certificates: Vec<IssuedCert>,
    /// The copy written to `--out`, when asked.
    pub out: Option<std::path::PathBuf>,
    /// For a type with an electronic seal: why no seal was made.
    pub note: Option<String>,
}

fn describe(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let alg = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(k)) => format!("RSA {}-bit", k.key_size()),
        Ok(PublicKey::EC(_)) if alg == OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => "EC P-256".into(),
                OID_P384 => "EC P-384".into(),
                OID_P521 => "EC P-521".into(),
                OID_SM2 => "EC SM2".into(),
                "" => "EC on an unnamed curve".into(),
                other => format!("EC on curve {other}"),
            }
        }
        Ok(PublicKey::DSA(_)) => "DSA".into(),
        _ => format!("algorithm {alg}"),
    }
}

/// Parses a PKCS#10 request (PEM or DER), checks its self-signature, and checks its key
/// algorithm against the policy of `policy.cert_type`.
pub fn check_csr(bytes: &[u8], policy: &Policy) -> std::result::Result<CheckedCsr, CsrRejected> {
    let der = match pem::parse(bytes) {
        Ok(p) if p.tag().contains("CERTIFICATE REQUEST") => p.into_contents(),
        Ok(p) => {
            return Err(CsrRejected::Parse(format!(
                "PEM block is `{}`, not `CERTIFICATE REQUEST`",
                p.tag()
            )));
        }
        Err(_) => bytes.to_vec(),
    };
    let (rest, req) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrRejected::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrRejected::Parse(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    req.verify_signature()
        .map_err(|e| CsrRejected::Signature(e.to_string()))?;
    let info = &req.certification_request_info;
    let spki = &info.subject_pki;
    let found = describe(spki);
    let (wanted, rule) = match policy.key_algorithm {
        KeyAlgorithm::EcP256 => ("EC P-256", "ec-p256"),
        KeyAlgorithm::Rsa2048 => ("RSA 2048-bit", "rsa-2048"),
    };
    // Certificates are built for EC P-256 keys only (as on the USBKEYs).
    if policy.key_algorithm != KeyAlgorithm::EcP256 || found != "EC P-256" {
        return Err(CsrRejected::KeyAlgorithm {
            cert_type: policy.cert_type,
            found,
            wanted,
            rule,
        });
    }
    let point = spki.subject_public_key.data.to_vec();
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(CsrRejected::KeyAlgorithm {
            cert_type: policy.cert_type,
            found: "EC P-256 with a compressed or malformed point".into(),
            wanted: "an uncompressed EC P-256 point",
            rule,
        });
    }
    Ok(CheckedCsr {
        cert_type: policy.cert_type,
        spki_der: spki.raw.to_vec(),
        public_point: point,
        requested_subject: info.subject.to_string(),
    })
}

impl Ca {
    /// Issues the identity certificate of `csr.cert_type` for the key in a checked CSR, with the
    /// subject from the policy and `applicant`. Writes `certs/<serial>.pem`, and `out` when given.
    pub fn issue_csr(
        &mut self,
        module: Option<&Module>,
        secrets: &Secrets,
        csr: &CheckedCsr,
        applicant: &Applicant,
        out: Option<&Path>,
    ) -> Result<CsrOutcome> {
        let (policy, validated, org_id) = self.check_applicant(csr.cert_type, applicant)?;
        let resident_id = policy
            .extensions
            .resident_id_field
            .as_deref()
            .and_then(|f| validated.get(f));
        let (dn, subject_text) = subject(&policy, &validated)?;
        let applicant_json = Ca::applicant_json(&validated)?;
        let keys = CaKeys::open(&self.config, &self.home, module, secrets)?;
        let (issuer, _) = issuer(&self.home, &keys)?;
        let key_id = hex::encode(Sha256::digest(&csr.spki_der));
        let type_key = policy.cert_type.key();

        let mut serial_bytes = random_serial();
        for _ in 0..4 {
            if !self.store.serial_exists(&hex::encode(serial_bytes))? {
                break;
            }
            serial_bytes = random_serial();
        }
        let serial = hex::encode(serial_bytes);
        self.store.insert_pending(&NewPending {
            serial: &serial,
            cert_type: type_key,
            role: CertRole::Identity,
            identity_serial: None,
            subject: &subject_text,
            org_id: org_id.as_deref(),
            applicant_json: &applicant_json,
            token_label: CSR_TOKEN_LABEL,
            token_serial: "",
            key_id: &key_id,
            external_id: None,
            application_id: None,
        })?;
        let not_before = now();
        let not_after = not_before + time::Duration::days(i64::from(policy.validity_days));
        let signed = (|| -> Result<Vec<u8>> {
            let params = end_entity(
                &self.config,
                dn,
                &EeParams {
                    serial: serial_bytes,
                    profile: &policy.identity,
                    not_before,
                    validity_days: policy.validity_days,
                    org_id: org_id.as_deref(),
                    resident_id,
                },
            )?;
            let cert = params
                .signed_by(&TokenPublicKey(csr.public_point.clone()), &issuer)
                .map_err(CoreError::cert(format!("identity certificate {serial}")))?;
            let der = cert.der().to_vec();
            let tx = self
                .store
                .conn
                .transaction()
                .map_err(CoreError::db("begin issuance"))?;
            Store::mark_issued_tx(&tx, &serial, &der, not_before, not_after, None)?;
            audit::append(
                &tx,
                &self.operator,
                "cert.issue",
                &serial,
                &serde_json::json!({
                    "type": type_key, "role": "identity", "subject": subject_text,
                    "source": "csr", "key_id": key_id, "seal": false,
                }),
            )?;
            tx.commit().map_err(CoreError::db("commit issuance"))?;
            Ok(der)
        })();
        let der = match signed {
            Ok(d) => d,
            Err(e) => {
                if let Err(ve) = self.store.mark_void(&serial) {
                    tracing::error!(serial = %serial, error = %ve, "cleanup: could not void pending row");
                }
                return Err(e);
            }
        };
        let pem_text = pem_cert(&der);
        let pem_path = self.home.cert_pem(&serial);
        write_file(&pem_path, pem_text.as_bytes(), 0o644)?;
        if let Some(o) = out {
            write_file(o, pem_text.as_bytes(), 0o644)?;
        }
        let note = policy.seal.as_ref().map(|_| {
            format!(
                "a {type_key} certificate normally comes with an electronic seal, whose key must be \
                 generated on a USBKEY; --csr issued the identity certificate only (issue onto a \
                 token with --token for the seal)"
            )
        });
        Ok(CsrOutcome {
            certificates: vec![IssuedCert {
                serial,
                cert_type: policy.cert_type,
                role: CertRole::Identity,
                pem: pem_path,
                key_id,
                subject: subject_text,
                token_label: CSR_TOKEN_LABEL.into(),
                token_serial: String::new(),
                not_after: crate::time_fmt::ts(not_after),
            }],
            out: out.map(Path::to_path_buf),
            note,
        })
    }
}
