//! DER types of the GM/T 0031-2014 `SESeal` (the 2-element outer SEQUENCE layout).
//!
//! Field order, types and optionality follow GM/T 0031-2014 exactly (including the
//! standard's spelling "Pictrue"). Everything is encoded and decoded through the
//! `der` crate's derive macros; there is no hand-written DER here.

use der::Sequence;
use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString, UtcTime};

/// `SESeal ::= SEQUENCE { esealInfo SES_SealInfo, signInfo SES_SignInfo }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesSeal {
    /// `esealInfo`: the content the seal maker signs.
    pub eseal_info: SesSealInfo,
    /// `signInfo`: maker certificate, algorithm and signature.
    pub sign_info: SesSignInfo,
}

/// `SES_SealInfo ::= SEQUENCE { header, esID, property, picture, extDatas OPTIONAL }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesSealInfo {
    /// `header SES_Header`
    pub header: SesHeader,
    /// `esID IA5String`: the seal identifier.
    pub es_id: Ia5String,
    /// `property SES_ESPropertyInfo`
    pub property: SesEsPropertyInfo,
    /// `picture SES_ESPictrueInfo`
    pub picture: SesEsPictrueInfo,
    /// `extDatas ExtensionDatas OPTIONAL`
    #[asn1(optional = "true")]
    pub ext_datas: Option<Vec<ExtensionData>>,
}

/// `SES_Header ::= SEQUENCE { id IA5String ("ES"), version INTEGER, vid IA5String }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesHeader {
    /// `id`: always "ES".
    pub id: Ia5String,
    /// `version`: 2 for this layout.
    pub version: i64,
    /// `vid`: vendor identifier.
    pub vid: Ia5String,
}

/// `SES_ESPropertyInfo ::= SEQUENCE { type, name, certList, createDate, validStart, validEnd }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesEsPropertyInfo {
    /// `type INTEGER`: 1 organisation seal, 2 personal seal.
    pub seal_type: i64,
    /// `name UTF8String`
    pub name: String,
    /// `certList SEQUENCE OF OCTET STRING`: DER certificates allowed to use the seal.
    pub cert_list: Vec<OctetString>,
    /// `createDate UTCTime`
    pub create_date: UtcTime,
    /// `validStart UTCTime`
    pub valid_start: UtcTime,
    /// `validEnd UTCTime`
    pub valid_end: UtcTime,
}

/// `SES_ESPictrueInfo ::= SEQUENCE { type IA5String, data OCTET STRING, width INTEGER, height INTEGER }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesEsPictrueInfo {
    /// `type`: "PNG", "JPG", "GIF", "BMP" or "SVG".
    pub kind: Ia5String,
    /// `data`: the image file.
    pub data: OctetString,
    /// `width` in millimetres.
    pub width: i64,
    /// `height` in millimetres.
    pub height: i64,
}

/// One element of `ExtensionDatas ::= SEQUENCE OF SEQUENCE { extnID, critical, extnValue }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct ExtensionData {
    /// `extnID OBJECT IDENTIFIER`
    pub extn_id: ObjectIdentifier,
    /// `critical BOOLEAN DEFAULT FALSE`
    #[asn1(default = "Default::default")]
    pub critical: bool,
    /// `extnValue OCTET STRING`
    pub extn_value: OctetString,
}

/// `SES_SignInfo ::= SEQUENCE { cert OCTET STRING, signatureAlgorithm OID, signData BIT STRING }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesSignInfo {
    /// `cert`: the seal maker's certificate (DER).
    pub cert: OctetString,
    /// `signatureAlgorithm`
    pub signature_algorithm: ObjectIdentifier,
    /// `signData`: DER `Ecdsa-Sig-Value` (or SM2 signature) as the bit string content.
    pub sign_data: BitString,
}

/// The seal maker's signature input:
/// `SEQUENCE { esealInfo SES_SealInfo, cert OCTET STRING, signatureAlgorithm OID }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SesSignedData {
    /// `esealInfo`
    pub eseal_info: SesSealInfo,
    /// `cert`: the seal maker's certificate (DER).
    pub cert: OctetString,
    /// `signatureAlgorithm`
    pub signature_algorithm: ObjectIdentifier,
}
