//! The one PKCS#10 check: a request in PEM or DER, nothing after it, its self-signature
//! verified (proof of possession), its key described and the CA-like extensions it asks for
//! noted. What a request may be used for (a holder's certificate of a policy's key algorithm,
//! an operator's P-256 key) is decided by the caller from this one parse.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_SM2: &str = "1.2.156.10197.1.301";

/// Why a request cannot be used as a PKCS#10 request at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs10Error {
    /// Not a PKCS#10 request in PEM or DER.
    #[error("the CSR is not a PKCS#10 request (PEM or DER): {0}")]
    Parse(String),
    /// The self-signature does not verify.
    #[error(
        "the CSR's signature does not verify ({0}) [rule: a PKCS#10 request is signed by its own key]"
    )]
    Signature(String),
}

/// A request parsed and its self-signature verified.
#[derive(Debug, Clone)]
pub struct Pkcs10 {
    /// The SubjectPublicKeyInfo (DER).
    pub spki_der: Vec<u8>,
    /// The subject public key's bits (for EC, the point).
    pub key_bits: Vec<u8>,
    /// The key, in words: `EC P-256`, `RSA 2048-bit`, `EC on curve …`.
    pub key: String,
    /// The subject the request asks for (informational: the CA names the subject itself).
    pub subject: String,
    /// What CA-like extension it asks for, if any (`basicConstraints CA:TRUE`, `keyCertSign or
    /// cRLSign`).
    pub asks_for_ca: Option<&'static str>,
}

impl Pkcs10 {
    /// True when the key is an uncompressed EC P-256 point.
    pub fn is_uncompressed_p256(&self) -> bool {
        self.key == "EC P-256" && self.key_bits.len() == 65 && self.key_bits.first() == Some(&0x04)
    }
}

/// Parses `bytes` (PEM `CERTIFICATE REQUEST` or DER) and verifies its self-signature.
pub fn parse_pkcs10(bytes: &[u8]) -> Result<Pkcs10, Pkcs10Error> {
    let der = match pem::parse(bytes) {
        Ok(p) if p.tag().contains("CERTIFICATE REQUEST") => p.into_contents(),
        Ok(p) => {
            return Err(Pkcs10Error::Parse(format!(
                "PEM block is `{}`, not `CERTIFICATE REQUEST`",
                p.tag()
            )));
        }
        Err(_) => bytes.to_vec(),
    };
    let (rest, req) =
        X509CertificationRequest::from_der(&der).map_err(|e| Pkcs10Error::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Pkcs10Error::Parse(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    req.verify_signature()
        .map_err(|e| Pkcs10Error::Signature(e.to_string()))?;
    let info = &req.certification_request_info;
    let spki = &info.subject_pki;
    let mut asks_for_ca = None;
    for ext in req.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                asks_for_ca = Some("basicConstraints CA:TRUE");
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                asks_for_ca = asks_for_ca.or(Some("keyCertSign or cRLSign"));
            }
            _ => {}
        }
    }
    Ok(Pkcs10 {
        spki_der: spki.raw.to_vec(),
        key_bits: spki.subject_public_key.data.to_vec(),
        key: describe(spki),
        subject: info.subject.to_string(),
        asks_for_ca,
    })
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
