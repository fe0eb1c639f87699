//! OCSP (RFC 6960, in the RFC 5019 lightweight profile): the responder's side that needs the
//! CA — its delegated signing certificate, reading requests, looking certificate status up in
//! the store, and signed responses. The HTTP server (`hljca-server`) calls these; the ASN.1 is
//! RustCrypto's `x509-ocsp`, nothing is hand-built DER.
//!
//! - [`signer`]: the OCSP signing certificate (id-kp-OCSPSigning, id-pkix-ocsp-nocheck, a few
//!   days' validity, renewed at half of it), its key beside the CA keys.
//! - [`Responder`]: which requests are ours (issuerNameHash/issuerKeyHash of the issuing CA, in
//!   SHA-1 or SHA-2), [`Responder::parse`] and [`Responder::sign`] (in `response.rs`).
//! - [`feed`]: what the responder reads from the store: one certificate's status, what changed
//!   since a moment, the newest CRL and whether it still lists what the store has revoked.

pub mod feed;
mod response;
pub mod signer;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_ocsp::{CertId, OcspRequest};

use crate::error::{CoreError, Result};
use crate::revoke::Reason;

pub use response::{Signed, error_response};
pub use signer::SignerCert;
pub use x509_ocsp::OcspResponseStatus;

/// id-pkix-ocsp-nonce (RFC 6960 section 4.4.1).
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// Most single requests one OCSP request may carry.
pub const MAX_REQUESTS: usize = 16;
/// Longest nonce accepted (RFC 8954 section 2.1: 1 to 32 octets).
pub const MAX_NONCE: usize = 32;

/// A CertID hash algorithm the responder can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];
    fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            HashAlg::Sha1 => "1.3.14.3.2.26",
            HashAlg::Sha256 => "2.16.840.1.101.3.4.2.1",
            HashAlg::Sha384 => "2.16.840.1.101.3.4.2.2",
            HashAlg::Sha512 => "2.16.840.1.101.3.4.2.3",
        })
    }
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// Why a request gets no signed answer: its OCSPResponseStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an OCSP request, or one this responder will not read (`malformedRequest`).
    Malformed(String),
    /// Asks about certificates of another issuer (`unauthorized`).
    Unauthorized(String),
}

impl Refusal {
    /// The OCSPResponseStatus to answer with.
    pub fn status(&self) -> OcspResponseStatus {
        match self {
            Refusal::Malformed(_) => OcspResponseStatus::MalformedRequest,
            Refusal::Unauthorized(_) => OcspResponseStatus::Unauthorized,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "malformedRequest: {why}"),
            Refusal::Unauthorized(why) => write!(f, "unauthorized: {why}"),
        }
    }
}

/// One certificate asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The CertID as asked (echoed in the answer).
    pub cert_id: CertId,
    /// Its DER: with the nonce absent, the key of a cached answer.
    pub cert_id_der: Vec<u8>,
    /// The serial as stored (lower-case hex, no leading zero bytes).
    pub serial: String,
}

/// A request this responder answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The certificates asked about, in order.
    pub queries: Vec<Query>,
    /// The nonce extension, echoed as sent (RFC 8954).
    pub nonce: Option<Extension>,
}

impl Request {
    /// With one certificate and no nonce the answer is the same for every asker: cacheable.
    pub fn cacheable(&self) -> bool {
        self.nonce.is_none() && self.queries.len() == 1
    }
}

/// A certificate's status as OCSP tells it (RFC 6960 section 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked (superseded and expired certificates included).
    Good,
    /// Revoked (or on hold: reason certificateHold).
    Revoked {
        /// revocationTime.
        at: OffsetDateTime,
        /// The reason, when one was given.
        reason: Option<Reason>,
    },
    /// Never issued by this CA.
    Unknown,
}

impl Status {
    /// `good`, `revoked` or `unknown` (metrics and logs).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Revoked { .. } => "revoked",
            Status::Unknown => "unknown",
        }
    }
}

/// The issuing CA as an OCSP responder knows it: the hashes requests name it by, and the
/// delegated signing certificate its answers carry.
#[derive(Debug, Clone)]
pub struct Responder {
    /// (algorithm, issuerNameHash, issuerKeyHash) for each algorithm accepted.
    issuer_hashes: Vec<(HashAlg, Vec<u8>, Vec<u8>)>,
    signer: SignerCert,
    validity: time::Duration,
}

impl Responder {
    /// A responder for `issuing_der` whose answers are signed with `signer` and valid for
    /// `validity` (never past the signing certificate's notAfter).
    pub fn new(issuing_der: &[u8], signer: SignerCert, validity: time::Duration) -> Result<Self> {
        let issuing =
            x509_cert::Certificate::from_der(issuing_der).map_err(|e| CoreError::Parse {
                what: "issuing CA certificate".into(),
                reason: e.to_string(),
            })?;
        let name = issuing
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| CoreError::Encoding {
                what: "issuing CA name",
                reason: e.to_string(),
            })?;
        let key = issuing
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let issuer_hashes = HashAlg::ALL
            .iter()
            .map(|a| (*a, a.digest(&name), a.digest(key)))
            .collect();
        Ok(Responder {
            issuer_hashes,
            signer,
            validity,
        })
    }

    /// The delegated signing certificate.
    pub fn signer(&self) -> &SignerCert {
        &self.signer
    }

    /// How long an answer is valid.
    pub fn validity(&self) -> time::Duration {
        self.validity
    }

    /// Reads a DER OCSPRequest: at most [`MAX_REQUESTS`] certificates, all of the issuing CA,
    /// named with SHA-1 or SHA-2; a nonce of 1 to [`MAX_NONCE`] octets. Signed requests are
    /// accepted and their signature ignored (RFC 5019 section 2.1.2).
    pub fn parse(&self, der: &[u8]) -> std::result::Result<Request, Refusal> {
        let req = OcspRequest::from_der(der)
            .map_err(|e| Refusal::Malformed(format!("not a DER OCSPRequest: {e}")))?;
        let list = &req.tbs_request.request_list;
        if list.is_empty() {
            return Err(Refusal::Malformed(
                "the request names no certificate".into(),
            ));
        }
        if list.len() > MAX_REQUESTS {
            return Err(Refusal::Malformed(format!(
                "{} certificates in one request (at most {MAX_REQUESTS})",
                list.len()
            )));
        }
        let nonce = match req
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == OID_NONCE)
        {
            Some(ext) => Some(check_nonce(ext)?),
            None => None,
        };
        let mut queries = Vec::with_capacity(list.len());
        for r in list {
            let id = &r.req_cert;
            self.check_issuer(id)?;
            let cert_id_der = id
                .to_der()
                .map_err(|e| Refusal::Malformed(format!("CertID: {e}")))?;
            queries.push(Query {
                serial: serial_hex(id.serial_number.as_bytes()),
                cert_id: id.clone(),
                cert_id_der,
            });
        }
        Ok(Request { queries, nonce })
    }

    fn check_issuer(&self, id: &CertId) -> std::result::Result<(), Refusal> {
        let Some((_, name, key)) = self
            .issuer_hashes
            .iter()
            .find(|(a, _, _)| a.oid() == id.hash_algorithm.oid)
        else {
            return Err(Refusal::Unauthorized(format!(
                "CertID hash algorithm {} is not one this responder checks",
                id.hash_algorithm.oid
            )));
        };
        if id.issuer_name_hash.as_bytes() != name.as_slice()
            || id.issuer_key_hash.as_bytes() != key.as_slice()
        {
            return Err(Refusal::Unauthorized(
                "the certificate's issuer is not this CA's issuing CA".into(),
            ));
        }
        Ok(())
    }

    /// The CertID (SHA-1, as most clients send it) of `serial` (hex) under the issuing CA:
    /// what precomputed answers are cached under.
    pub fn sha1_cert_id(&self, serial: &str) -> Result<Query> {
        let bad = |reason: String| CoreError::Parse {
            what: format!("stored serial {serial}"),
            reason,
        };
        let bytes = hex::decode(serial).map_err(|e| bad(e.to_string()))?;
        let serial_number =
            x509_cert::serial_number::SerialNumber::new(&bytes).map_err(|e| bad(e.to_string()))?;
        let (_, name, key) = self
            .issuer_hashes
            .iter()
            .find(|(a, _, _)| *a == HashAlg::Sha1)
            .ok_or_else(|| bad("no SHA-1 issuer hash".into()))?;
        let enc = |e: der::Error| CoreError::Encoding {
            what: "CertID",
            reason: e.to_string(),
        };
        let cert_id = CertId {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                oid: HashAlg::Sha1.oid(),
                parameters: Some(der::asn1::Null.into()),
            },
            issuer_name_hash: der::asn1::OctetString::new(name.clone()).map_err(enc)?,
            issuer_key_hash: der::asn1::OctetString::new(key.clone()).map_err(enc)?,
            serial_number,
        };
        let cert_id_der = cert_id.to_der().map_err(enc)?;
        Ok(Query {
            serial: serial_hex(&bytes),
            cert_id,
            cert_id_der,
        })
    }
}

/// RFC 8954: a nonce of 1 to 32 octets (the extension's OCTET STRING inside extnValue; a
/// client sending the bare octets is read the same way).
fn check_nonce(ext: &Extension) -> std::result::Result<Extension, Refusal> {
    let raw = ext.extn_value.as_bytes();
    let len = match der::asn1::OctetString::from_der(raw) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => raw.len(),
    };
    if len == 0 || len > MAX_NONCE {
        return Err(Refusal::Malformed(format!(
            "nonce of {len} octets (RFC 8954: 1 to {MAX_NONCE})"
        )));
    }
    Ok(ext.clone())
}

/// A serial's bytes as stored: lower-case hex without leading zero bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let hex = hex::encode(&bytes[start..]);
    if hex.is_empty() { "00".into() } else { hex }
}

#[cfg(test)]
mod tests;
