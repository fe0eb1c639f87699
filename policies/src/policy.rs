//! The shape of one certificate type's policy, as read from `types/<key>.toml`.

use serde::{Deserialize, Serialize};

use crate::cert_type::CertType;
use crate::fen::Fen;

/// One certificate type's policy: everything the CA needs to take an application of this type
/// and issue its certificate(s).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The type; `type = "<key>"` in TOML, and it must match the file name.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// Chinese name, e.g. `企业机构数字证书`.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// The applicant fields this type takes, in form order.
    pub fields: Vec<FieldSpec>,
    /// Which applicant fields make up the subject DN.
    pub subject: SubjectTemplate,
    /// Algorithm of the key pair(s) generated on the token.
    pub key_algorithm: KeyAlgorithm,
    /// Profile of the identity (signing/authentication) certificate.
    pub identity: CertProfile,
    /// Validity of issued certificates, in days.
    pub validity_days: u32,
    /// The electronic seal issued with this type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealProfile>,
    /// First-time and annual fees.
    pub fees: Fees,
    /// Materials to hand in at the counter or upload.
    pub materials: Vec<Material>,
    /// Which applicant fields go into the GM/T 0015 identifier extensions.
    pub extensions: IdentifierExtensions,
}

impl Policy {
    /// The field spec with this name, if the type has that field.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One applicant field of a certificate type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Key in the applicant data, e.g. `uscc`.
    pub name: String,
    /// Chinese label as on the form, e.g. `统一社会信用代码`.
    pub label_zh: String,
    /// English label.
    pub label_en: String,
    /// What kind of value it holds, which decides how it is checked.
    pub kind: FieldKind,
    /// Whether the applicant must supply it (default `true`).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// The kind of an applicant field, deciding its check and normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// An organisation's name (at most 100 characters).
    OrgName,
    /// A person's name (at most 30 characters).
    PersonName,
    /// A USCC, or the 15-digit business-licence registration number as a fallback.
    OrgId,
    /// A resident ID number (GB 11643-1999).
    ResidentId,
    /// A mainland mobile number.
    Mobile,
    /// A city name (at most 30 characters).
    City,
    /// Free text (at most 200 characters).
    Text,
}

/// Subject DN template: each value is the NAME of an applicant field whose value fills the
/// attribute. `C=CN` and `ST=黑龙江省` are fixed and added by the issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectTemplate {
    /// Field for commonName.
    pub cn: String,
    /// Field for organizationName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<String>,
    /// Field for organizationalUnitName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ou: Option<String>,
    /// Field for localityName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<String>,
}

impl SubjectTemplate {
    /// The applicant field behind a subject attribute (`cn`, `o`, `ou` or `l`, any case).
    pub fn field_for(&self, attr: &str) -> Option<&str> {
        match attr.to_ascii_lowercase().as_str() {
            "cn" => Some(self.cn.as_str()),
            "o" => self.o.as_deref(),
            "ou" => self.ou.as_deref(),
            "l" => self.l.as_deref(),
            _ => None,
        }
    }
}

/// Algorithm of a key pair generated on the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (used by all seven types today).
    #[serde(rename = "ec-p256")]
    EcP256,
    /// RSA with a 2048-bit modulus (kept for tokens without EC support).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

/// Key usages, extended key usages and policy OID of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProfile {
    /// keyUsage bits (RFC 5280 section 4.2.1.3).
    pub key_usage: Vec<KeyUsage>,
    /// extKeyUsage purposes (RFC 5280 section 4.2.1.12).
    pub extended_key_usage: Vec<ExtKeyUsage>,
    /// Appended to the configured CA policy arc to form the certificatePolicies OID, e.g. `1.1`.
    pub policy_oid_suffix: String,
}

/// A keyUsage bit (RFC 5280 section 4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyUsage {
    /// digitalSignature (bit 0).
    DigitalSignature,
    /// nonRepudiation / contentCommitment (bit 1).
    NonRepudiation,
    /// keyEncipherment (bit 2); RSA keys only.
    KeyEncipherment,
    /// dataEncipherment (bit 3).
    DataEncipherment,
    /// keyAgreement (bit 4); EC keys.
    KeyAgreement,
}

/// An extended key usage purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtKeyUsage {
    /// id-kp-clientAuth, 1.3.6.1.5.5.7.3.2.
    ClientAuth,
    /// id-kp-emailProtection, 1.3.6.1.5.5.7.3.4.
    EmailProtection,
    /// id-kp-documentSigning (RFC 9336), 1.3.6.1.5.5.7.3.36.
    DocumentSigning,
}

impl ExtKeyUsage {
    /// The purpose's OID, dotted.
    pub fn oid(&self) -> &'static str {
        match self {
            ExtKeyUsage::ClientAuth => "1.3.6.1.5.5.7.3.2",
            ExtKeyUsage::EmailProtection => "1.3.6.1.5.5.7.3.4",
            ExtKeyUsage::DocumentSigning => "1.3.6.1.5.5.7.3.36",
        }
    }
}

/// The electronic seal issued with a certificate type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealProfile {
    /// Organisation or personal seal.
    pub seal_type: SealType,
    /// The applicant field whose value is the seal's name.
    pub name_field: String,
    /// Picture width in millimetres.
    pub width_mm: u32,
    /// Picture height in millimetres.
    pub height_mm: u32,
    /// Profile of the seal (signing) certificate.
    pub cert: CertProfile,
}

/// Seal type of GM/T 0031 `SES_ESPropertyInfo.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SealType {
    /// Organisation seal (单位印章), type 1.
    Organization,
    /// Personal seal (个人印章), type 2.
    Personal,
}

impl SealType {
    /// The GM/T 0031 type code: 1 organisation, 2 personal.
    pub fn code(&self) -> i64 {
        match self {
            SealType::Organization => 1,
            SealType::Personal => 2,
        }
    }
}

/// Fees of a certificate type (SPEC.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fees {
    /// First application, USBKEY included.
    pub first: Fen,
    /// Each annual renewal.
    pub annual: Fen,
}

/// A material the applicant hands in (SPEC.md section 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// Short key, e.g. `application-form`.
    pub kind: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Whether it is required (default `true`).
    #[serde(default = "yes")]
    pub required: bool,
}

/// Which applicant fields go into the GM/T 0015 identifier extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierExtensions {
    /// Field (of kind `org-id`) for the organisation code extension 1.2.156.10260.4.1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc_field: Option<String>,
    /// Field (of kind `resident-id`) for the personal ID extension 1.2.156.10260.4.1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_id_field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_serde_names() {
        assert_eq!(j(&KeyAlgorithm::EcP256), "\"ec-p256\"");
        assert_eq!(j(&KeyAlgorithm::Rsa2048), "\"rsa-2048\"");
        assert_eq!(j(&KeyUsage::NonRepudiation), "\"non-repudiation\"");
        assert_eq!(j(&ExtKeyUsage::DocumentSigning), "\"document-signing\"");
        assert_eq!(j(&FieldKind::ResidentId), "\"resident-id\"");
        assert_eq!(j(&FieldKind::OrgId), "\"org-id\"");
        assert_eq!(j(&SealType::Organization), "\"organization\"");
    }

    #[test]
    fn codes_and_oids() {
        assert_eq!(SealType::Organization.code(), 1);
        assert_eq!(SealType::Personal.code(), 2);
        assert_eq!(ExtKeyUsage::DocumentSigning.oid(), "1.3.6.1.5.5.7.3.36");
        assert_eq!(ExtKeyUsage::ClientAuth.oid(), "1.3.6.1.5.5.7.3.2");
        assert_eq!(ExtKeyUsage::EmailProtection.oid(), "1.3.6.1.5.5.7.3.4");
    }

    fn j<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }
}
