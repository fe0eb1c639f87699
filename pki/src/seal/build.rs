//! Building and signing a GM/T 0031-2014 `SESeal`.

use der::Encode;
use der::asn1::{BitString, Ia5String, OctetString};
use time::OffsetDateTime;

use super::asn1::{
    SesEsPictrueInfo, SesEsPropertyInfo, SesHeader, SesSeal, SesSealInfo, SesSignInfo,
    SesSignedData,
};
use super::dates::to_utc_time;
use super::error::SealError;
use super::picture::SealPicture;
use super::verify::{ecdsa_sha256_oid, verify_with_cert};
use super::{SEAL_HEADER_ID, SEAL_VERSION};

/// Everything that goes into `SES_SealInfo`.
#[derive(Debug, Clone)]
pub struct SealContent<'a> {
    /// Header `vid` (vendor id), e.g. "HLJCA". IA5 only.
    pub vendor_id: &'a str,
    /// `esID`, e.g. "HLJCA-" + hex serial. IA5 only.
    pub es_id: &'a str,
    /// Seal type: 1 organisation seal, 2 personal seal.
    pub seal_type: i64,
    /// Seal name (UTF-8), e.g. the organisation name.
    pub name: &'a str,
    /// DER certificates allowed to use the seal (we put the seal certificate).
    pub cert_list: Vec<Vec<u8>>,
    /// `createDate`.
    pub create_date: OffsetDateTime,
    /// `validStart`.
    pub valid_start: OffsetDateTime,
    /// `validEnd`.
    pub valid_end: OffsetDateTime,
    /// The seal picture.
    pub picture: &'a SealPicture,
}

fn ia5(s: &str, what: &'static str) -> Result<Ia5String, SealError> {
    Ia5String::new(s).map_err(|source| SealError::Encode { what, source })
}

fn octets(bytes: Vec<u8>, what: &'static str) -> Result<OctetString, SealError> {
    OctetString::new(bytes).map_err(|source| SealError::Encode { what, source })
}

fn check_content(content: &SealContent<'_>) -> Result<(), SealError> {
    if content.vendor_id.is_empty() {
        return Err(SealError::content("vendor id is empty"));
    }
    if content.es_id.is_empty() {
        return Err(SealError::content("esID is empty"));
    }
    if content.name.trim().is_empty() {
        return Err(SealError::content("seal name is empty"));
    }
    if !matches!(content.seal_type, 1 | 2) {
        return Err(SealError::content(format!(
            "seal type {} is neither 1 (organisation) nor 2 (personal)",
            content.seal_type
        )));
    }
    if content.valid_end <= content.valid_start {
        return Err(SealError::content("validEnd is not after validStart"));
    }
    if content.picture.data.is_empty() {
        return Err(SealError::content("seal picture is empty"));
    }
    Ok(())
}

/// Builds the unsigned `SES_SealInfo` from `content`.
fn seal_info(content: &SealContent<'_>) -> Result<SesSealInfo, SealError> {
    check_content(content)?;
    let cert_list = content
        .cert_list
        .iter()
        .map(|c| octets(c.clone(), "certList"))
        .collect::<Result<Vec<_>, _>>()?;
    let pic = content.picture;
    Ok(SesSealInfo {
        header: SesHeader {
            id: ia5(SEAL_HEADER_ID, "header id")?,
            version: SEAL_VERSION,
            vid: ia5(content.vendor_id, "header vid")?,
        },
        es_id: ia5(content.es_id, "esID")?,
        property: SesEsPropertyInfo {
            seal_type: content.seal_type,
            name: content.name.to_owned(),
            cert_list,
            create_date: to_utc_time(content.create_date, "createDate")?,
            valid_start: to_utc_time(content.valid_start, "validStart")?,
            valid_end: to_utc_time(content.valid_end, "validEnd")?,
        },
        picture: SesEsPictrueInfo {
            kind: ia5(pic.kind.as_str(), "picture type")?,
            data: octets(pic.data.clone(), "picture data")?,
            width: i64::from(pic.width_mm),
            height: i64::from(pic.height_mm),
        },
        ext_datas: None,
    })
}

/// Brings the signer's output to canonical DER `Ecdsa-Sig-Value`; accepts DER or
/// raw 64-byte `r‖s` (what a bare PKCS#11 `CKM_ECDSA` returns).
fn canonical_ecdsa_der(sig: &[u8]) -> Result<Vec<u8>, SealError> {
    use p256::ecdsa::Signature;
    let parsed = match Signature::from_der(sig) {
        Ok(s) => s,
        Err(_) if sig.len() == 64 => Signature::from_slice(sig)
            .map_err(|e| SealError::signer(format!("raw r||s signature is invalid: {e}")))?,
        Err(e) => {
            return Err(SealError::signer(format!(
                "signer returned {} bytes that are not an ECDSA signature: {e}",
                sig.len()
            )));
        }
    };
    Ok(parsed.to_der().as_bytes().to_vec())
}

/// Builds `SES_SealInfo`, signs `DER(SEQUENCE { esealInfo, makerCert, alg })` with
/// `signer` and returns the DER of the whole `SESeal`.
///
/// `signer` is the issuing CA key; its algorithm must be
/// `rcgen::PKCS_ECDSA_P256_SHA256`. `maker_cert_der` is the seal maker's (CA's)
/// certificate; the fresh signature is checked against its public key, so a key
/// that does not belong to the certificate is reported as a
/// [`SealError::Signer`] instead of producing an unverifiable seal.
pub fn build_and_sign(
    content: &SealContent<'_>,
    maker_cert_der: &[u8],
    signer: &impl rcgen::SigningKey,
) -> Result<Vec<u8>, SealError> {
    if signer.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(SealError::signer(format!(
            "seal signing needs an ECDSA P-256 SHA-256 key, got {:?}",
            signer.algorithm()
        )));
    }
    let eseal_info = seal_info(content)?;
    let cert = octets(maker_cert_der.to_vec(), "maker certificate")?;
    let alg = ecdsa_sha256_oid();
    let tbs = SesSignedData {
        eseal_info: eseal_info.clone(),
        cert: cert.clone(),
        signature_algorithm: alg,
    }
    .to_der()
    .map_err(|source| SealError::Encode {
        what: "signed data",
        source,
    })?;
    let raw = signer
        .sign(&tbs)
        .map_err(|e| SealError::signer(format!("signing failed: {e}")))?;
    let sig = canonical_ecdsa_der(&raw)?;
    verify_with_cert(maker_cert_der, &tbs, &sig).map_err(|e| {
        SealError::signer(format!(
            "the signature does not verify with the maker certificate \
             (is the signer the certificate's key?): {e}"
        ))
    })?;
    let sign_data = BitString::from_bytes(&sig).map_err(|source| SealError::Encode {
        what: "signData",
        source,
    })?;
    SesSeal {
        eseal_info,
        sign_info: SesSignInfo {
            cert,
            signature_algorithm: alg,
            sign_data,
        },
    }
    .to_der()
    .map_err(|source| SealError::Encode {
        what: "SESeal",
        source,
    })
}
