//! Strict parsing of a GM/T 0031-2014 `SESeal` and verification of the maker's signature.

use der::asn1::{Any, ObjectIdentifier};
use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use time::OffsetDateTime;

use super::asn1::{SesSeal, SesSignedData};
use super::dates::from_utc_time;
use super::error::SealError;
use super::{ECDSA_SHA256_OID, SEAL_HEADER_ID};

/// `ecdsa-with-SHA256` as an [`ObjectIdentifier`].
pub(crate) const fn ecdsa_sha256_oid() -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(ECDSA_SHA256_OID)
}

/// A decoded seal. Fields mirror the ASN.1; the signed bytes are kept privately.
#[derive(Debug, Clone)]
pub struct ParsedSeal {
    /// Header `id` (always "ES" after a successful parse).
    pub header_id: String,
    /// Header `version`.
    pub version: i64,
    /// Header `vid` (vendor id).
    pub vendor_id: String,
    /// `esID`.
    pub es_id: String,
    /// Property `type`: 1 organisation, 2 personal.
    pub seal_type: i64,
    /// Property `name`.
    pub name: String,
    /// Property `certList`: DER certificates allowed to use the seal.
    pub cert_list: Vec<Vec<u8>>,
    /// Property `createDate` (UTC).
    pub create_date: OffsetDateTime,
    /// Property `validStart` (UTC).
    pub valid_start: OffsetDateTime,
    /// Property `validEnd` (UTC).
    pub valid_end: OffsetDateTime,
    /// Picture `type`, e.g. "PNG", "JPG", "SVG".
    pub picture_kind: String,
    /// Picture `data`.
    pub picture: Vec<u8>,
    /// Picture `width` in millimetres.
    pub width_mm: i64,
    /// Picture `height` in millimetres.
    pub height_mm: i64,
    /// `signInfo.cert`: the seal maker's certificate (DER).
    pub maker_cert: Vec<u8>,
    /// `signInfo.signatureAlgorithm`, dotted.
    pub signature_algorithm: String,
    /// `signInfo.signData` content (DER `Ecdsa-Sig-Value` for ECDSA).
    pub signature: Vec<u8>,
    /// DER of `SEQUENCE { esealInfo, cert, signatureAlgorithm }`, re-encoded from the parts.
    signed_bytes: Vec<u8>,
}

/// Parses strictly: DER only (the input must re-encode to itself), a 2-element
/// outer SEQUENCE (GM/T 0031-2014; the 4-element GB/T 38540 layout is rejected),
/// header id "ES", no trailing bytes, no critical extensions, a byte-aligned
/// `signData`.
pub fn parse(der: &[u8]) -> Result<ParsedSeal, SealError> {
    let outer = Vec::<Any>::from_der(der)
        .map_err(|e| SealError::decode(format!("not a DER SEQUENCE: {e}")))?;
    if outer.len() != 2 {
        return Err(SealError::decode(format!(
            "outer SEQUENCE has {} elements, expected 2 (GM/T 0031-2014){}",
            outer.len(),
            if outer.len() == 4 {
                "; this looks like the GB/T 38540-2020 layout, which is not supported"
            } else {
                ""
            }
        )));
    }
    let seal = SesSeal::from_der(der).map_err(|e| SealError::decode(format!("SESeal: {e}")))?;
    let again = seal
        .to_der()
        .map_err(|e| SealError::decode(format!("SESeal does not re-encode: {e}")))?;
    if again != der {
        return Err(SealError::decode("SESeal is not in canonical DER"));
    }
    let SesSeal {
        eseal_info: info,
        sign_info,
    } = seal;
    if info.header.id.to_string() != SEAL_HEADER_ID {
        return Err(SealError::decode(format!(
            "header id is {:?}, expected \"ES\"",
            info.header.id.to_string()
        )));
    }
    if let Some(ext) = info.ext_datas.iter().flatten().find(|ext| ext.critical) {
        return Err(SealError::decode(format!(
            "unsupported critical extension {}",
            ext.extn_id
        )));
    }
    let signature = sign_info
        .sign_data
        .as_bytes()
        .ok_or_else(|| SealError::decode("signData has unused bits"))?
        .to_vec();
    let signed_bytes = SesSignedData {
        eseal_info: info.clone(),
        cert: sign_info.cert.clone(),
        signature_algorithm: sign_info.signature_algorithm,
    }
    .to_der()
    .map_err(|e| SealError::decode(format!("signed data does not re-encode: {e}")))?;
    let prop = info.property;
    Ok(ParsedSeal {
        header_id: info.header.id.to_string(),
        version: info.header.version,
        vendor_id: info.header.vid.to_string(),
        es_id: info.es_id.to_string(),
        seal_type: prop.seal_type,
        name: prop.name,
        cert_list: prop.cert_list.into_iter().map(|c| c.into_bytes()).collect(),
        create_date: from_utc_time(&prop.create_date, "createDate")?,
        valid_start: from_utc_time(&prop.valid_start, "validStart")?,
        valid_end: from_utc_time(&prop.valid_end, "validEnd")?,
        picture_kind: info.picture.kind.to_string(),
        picture: info.picture.data.into_bytes(),
        width_mm: info.picture.width,
        height_mm: info.picture.height,
        maker_cert: sign_info.cert.into_bytes(),
        signature_algorithm: sign_info.signature_algorithm.to_string(),
        signature,
        signed_bytes,
    })
}

impl ParsedSeal {
    /// Checks the maker's signature.
    ///
    /// Requires the algorithm to be [`ECDSA_SHA256_OID`]
    /// ([`SealError::UnsupportedAlgorithm`] otherwise), the embedded maker
    /// certificate to equal `trusted_maker_der` byte for byte
    /// ([`SealError::MakerMismatch`]), and the DER ECDSA signature to verify over
    /// SHA-256 of the signed bytes with the certificate's P-256 key. Dates and
    /// revocation are the caller's job.
    pub fn verify_signature(&self, trusted_maker_der: &[u8]) -> Result<(), SealError> {
        if self.signature_algorithm != ECDSA_SHA256_OID {
            return Err(SealError::UnsupportedAlgorithm {
                oid: self.signature_algorithm.clone(),
            });
        }
        if self.maker_cert != trusted_maker_der {
            return Err(SealError::MakerMismatch);
        }
        verify_with_cert(&self.maker_cert, &self.signed_bytes, &self.signature)
    }

    /// True when `valid_start <= t <= valid_end`.
    pub fn is_valid_at(&self, t: OffsetDateTime) -> bool {
        self.valid_start <= t && t <= self.valid_end
    }

    /// The exact DER the maker signed: `SEQUENCE { esealInfo, cert, signatureAlgorithm }`.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }
}

/// Verifies a DER ECDSA-SHA256 signature over `msg` with the P-256 key of the
/// X.509 certificate `cert_der`.
pub(crate) fn verify_with_cert(
    cert_der: &[u8],
    msg: &[u8],
    sig_der: &[u8],
) -> Result<(), SealError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| SealError::bad_signature(format!("maker certificate does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(SealError::bad_signature(
            "maker certificate has trailing bytes",
        ));
    }
    let spki = cert.tbs_certificate.subject_pki.raw;
    let key = VerifyingKey::from_public_key_der(spki).map_err(|e| {
        SealError::bad_signature(format!("maker certificate key is not EC P-256: {e}"))
    })?;
    let sig = Signature::from_der(sig_der).map_err(|e| {
        SealError::bad_signature(format!("signData is not a DER ECDSA signature: {e}"))
    })?;
    if sig.to_der().as_bytes() != sig_der {
        return Err(SealError::bad_signature("signData is not canonical DER"));
    }
    key.verify(msg, &sig)
        .map_err(|_| SealError::bad_signature("ECDSA P-256 SHA-256 verification failed"))
}
