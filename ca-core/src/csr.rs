//! Issuance from a PKCS#10 request, for systems that keep their own keys.
//!
//! The request's self-signature proves possession of the key; its key algorithm is checked
//! against the policy. Its subject and extensions are not trusted: the subject comes from the
//! policy and the applicant data, exactly as for a key on a USBKEY. Only the identity
//! certificate is issued (a seal needs its key on a token). The issuance engine does the rest
//! (token `(csr)`, key id = SHA-256 of the SPKI).

use std::path::Path;

use hljca_pki::csr::{Pkcs10Error, parse_pkcs10};
use hljca_policies::{Applicant, CertType, KeyAlgorithm, Policy};
use hljca_token::Module;
use serde::Serialize;

use crate::Ca;
use crate::eligibility::{Request, Step};
use crate::engine::{Engine, Fee, IssueOutcome, IssueParams, IssuedCert, KeySource};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::{CaKeys, Secrets};
use crate::profile::SubjectKey;

/// Token label recorded on certificate rows issued from a CSR.
pub const CSR_TOKEN_LABEL: &str = "(csr)";

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
    key: SubjectKey,
    /// The subject the request asked for (informational; not used).
    pub requested_subject: String,
}

impl CheckedCsr {
    /// The type whose policy the request was checked against.
    pub fn cert_type(&self) -> CertType {
        self.cert_type
    }
    /// The request's SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }
    /// The request's key, as the certificate will carry it.
    pub fn subject_key(&self) -> SubjectKey {
        self.key.clone()
    }
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

/// Parses a PKCS#10 request (PEM or DER), checks its self-signature (the one check,
/// [`hljca_pki::csr::parse_pkcs10`]), and checks its key algorithm against the policy of
/// `policy.cert_type`.
pub fn check_csr(bytes: &[u8], policy: &Policy) -> std::result::Result<CheckedCsr, CsrRejected> {
    let req = parse_pkcs10(bytes).map_err(|e| match e {
        Pkcs10Error::Parse(m) => CsrRejected::Parse(m),
        Pkcs10Error::Signature(m) => CsrRejected::Signature(m),
    })?;
    let (wanted, rule) = match policy.key_algorithm {
        KeyAlgorithm::EcP256 => ("EC P-256", "ec-p256"),
        KeyAlgorithm::Rsa2048 => ("RSA 2048-bit", "rsa-2048"),
    };
    if req.key != wanted {
        return Err(CsrRejected::KeyAlgorithm {
            cert_type: policy.cert_type,
            found: req.key,
            wanted,
            rule,
        });
    }
    let alg = match policy.key_algorithm {
        KeyAlgorithm::EcP256 => {
            if !req.is_uncompressed_p256() {
                return Err(CsrRejected::KeyAlgorithm {
                    cert_type: policy.cert_type,
                    found: "EC P-256 with a compressed or malformed point".into(),
                    wanted: "an uncompressed EC P-256 point",
                    rule,
                });
            }
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
        KeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    };
    Ok(CheckedCsr {
        cert_type: policy.cert_type,
        spki_der: req.spki_der,
        key: SubjectKey {
            bits: req.key_bits,
            alg,
        },
        requested_subject: req.subject,
    })
}

/// Largest request file a batch row may name, in bytes.
pub const MAX_CSR_BYTES: u64 = 64 * 1024;

/// Reads and checks the request a batch row names (`name`, relative to `base`, the batch
/// file's folder); the problem in words when it cannot be used.
pub fn read_row_csr(
    base: &Path,
    name: &str,
    policy: &Policy,
) -> std::result::Result<CheckedCsr, String> {
    use std::io::Read;
    let path = base.join(name);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CSR_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_CSR_BYTES {
        return Err(format!(
            "{} is larger than {MAX_CSR_BYTES} bytes",
            path.display()
        ));
    }
    check_csr(&bytes, policy).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads and checks the requests of many batch rows (`(line, name, policy)`) on every core;
/// each line's request or problem, as [`read_row_csr`] gives it.
pub fn read_row_csrs(
    base: &Path,
    jobs: &[(u64, String, &Policy)],
) -> std::collections::HashMap<u64, std::result::Result<CheckedCsr, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(line, name, policy)| (*line, read_row_csr(base, name, policy)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .flatten()
            .collect()
    })
}

impl Ca {
    /// Issues the identity certificate of `csr.cert_type` for the key in a checked CSR, with the
    /// subject from the policy and `applicant`, through the issuance engine. Writes
    /// `certs/<serial>.pem`, and `out` when given.
    pub fn issue_csr(
        &mut self,
        module: Option<&Module>,
        secrets: &Secrets,
        csr: &CheckedCsr,
        applicant: &Applicant,
        out: Option<&Path>,
        fee: &crate::issue::DirectFee,
    ) -> Result<CsrOutcome> {
        self.require(
            crate::operators::Role::CaAdmin,
            "direct issuance from a CSR",
        )?;
        // Refused before any login; the engine checks again under its lease.
        self.eligible(
            Step::Issue,
            &Request {
                cert_type: csr.cert_type,
                applicant,
                renewal_of: None,
                application: None,
                token_serial: None,
            },
        )?;
        let keys = self.ca_keys(module, secrets)?;
        let fee = fee.fee(self, csr.cert_type)?;
        let issued = self.issue_checked_csr(&keys, csr, applicant, fee, None)?;
        if let (Some(o), Some(c)) = (out, issued.certificates.first()) {
            let pem_text = std::fs::read(&c.pem).map_err(CoreError::io("reading", &c.pem))?;
            write_file(o, &pem_text, 0o644)?;
        }
        let note = self.policies.get(csr.cert_type).seal.as_ref().map(|_| {
            format!(
                "a {} certificate normally comes with an electronic seal, whose key must be \
                 generated on a USBKEY; --csr issued the identity certificate only (issue onto a \
                 token with --token for the seal)",
                csr.cert_type.key()
            )
        });
        Ok(CsrOutcome {
            certificates: issued.certificates,
            out: out.map(Path::to_path_buf),
            note,
        })
    }
}

impl Ca {
    /// The one CSR issuance path (`issue --csr` and the server's API): the engine (which runs
    /// the eligibility check) with `keys` (the command's or the server's open CA keys), the fee
    /// booked with it and `external_id` recorded on the rows. Role checks are the caller's.
    pub(crate) fn issue_checked_csr(
        &mut self,
        keys: &CaKeys,
        csr: &CheckedCsr,
        applicant: &Applicant,
        fee: Fee,
        external_id: Option<&str>,
    ) -> Result<IssueOutcome> {
        let engine = Engine::new(self, keys)?;
        let mut params = IssueParams::new(csr.cert_type, applicant.clone());
        params.source = KeySource::Csr(csr.clone());
        params.fee = Some(fee);
        params.external_id = external_id.map(str::to_owned);
        params.issue(self, &engine, None)
    }
}
