//! Certificate profiles: how a policy and an applicant become rcgen parameters.
//!
//! End-entity profile (RFC 5280 section 4.2 references in brackets):
//! - subject `C=CN, ST=黑龙江省, L=<city>, O=<organisation>, OU=<optional>, CN=<name>`, UTF8String
//!   except `C` (PrintableString, 4.1.2.4);
//! - basicConstraints CA:FALSE critical (4.2.1.9), keyUsage critical from the policy (4.2.1.3),
//!   extendedKeyUsage from the policy (4.2.1.12), SKI (4.2.1.2) and AKI (4.2.1.1);
//! - certificatePolicies `<policy_arc>.<suffix>` (4.2.1.4), CRL distribution point (4.2.1.13),
//!   authorityInfoAccess OCSP (when `urls.ocsp` is set) and caIssuers (4.2.2.1);
//! - identifiers in the GM/T 0015 extensions, non-critical, never in CN:
//!   `1.2.156.10260.4.1.4` organisation code (the USCC or registration number, PrintableString) and
//!   `1.2.156.10260.4.1.1` IdentifyCode `[0] IMPLICIT PrintableString` (resident ID number).

use der::Encode;
use der::asn1::{Ia5String, ObjectIdentifier, PrintableString};
use hljca_policies::{CertProfile, ExtKeyUsage, KeyUsage, Policy, ValidatedApplicant};
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SerialNumber,
};

use x509_cert::ext::pkix::certpolicy::{CertificatePolicies, PolicyInformation};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use crate::config::Config;
use crate::error::{CoreError, Result};

/// The province in every subject.
pub const PROVINCE: &str = "黑龙江省";
/// The CA operator's legal name.
pub const CA_ORGANIZATION: &str = "黑龙江省数字证书认证有限公司";

/// GM/T 0015 organisation code extension (the USCC in practice).
pub const OID_GMT_ORG_CODE: &[u64] = &[1, 2, 156, 10260, 4, 1, 4];
/// GM/T 0015 personal identity number extension.
pub const OID_GMT_IDENTIFY_CODE: &[u64] = &[1, 2, 156, 10260, 4, 1, 1];
const OID_CERT_POLICIES: &[u64] = &[2, 5, 29, 32];
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const OID_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
const OID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// A random, positive, 16-byte serial number (first byte 0x01..=0x7f: positive and minimal).
pub fn random_serial() -> [u8; 16] {
    let mut s: [u8; 16] = rand::random();
    s[0] = (s[0] & 0x7f).max(1);
    s
}

/// A subject DN for the CA itself.
pub fn ca_subject(cn: &str) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("CN")?);
    dn.push(
        DnType::StateOrProvinceName,
        DnValue::Utf8String(PROVINCE.into()),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(CA_ORGANIZATION.into()),
    );
    dn.push(DnType::CommonName, DnValue::Utf8String(cn.into()));
    Ok(dn)
}

fn printable(s: &str) -> Result<DnValue> {
    Ok(DnValue::PrintableString(s.try_into().map_err(
        |e: rcgen::Error| CoreError::Encoding {
            what: "PrintableString",
            reason: e.to_string(),
        },
    )?))
}

/// The subject of an end-entity certificate and its one-line text form.
pub fn subject(policy: &Policy, a: &ValidatedApplicant) -> Result<(DistinguishedName, String)> {
    let mut dn = DistinguishedName::new();
    let mut text = vec!["C=CN".to_owned(), format!("ST={PROVINCE}")];
    dn.push(DnType::CountryName, printable("CN")?);
    dn.push(
        DnType::StateOrProvinceName,
        DnValue::Utf8String(PROVINCE.into()),
    );
    let parts = [
        (DnType::LocalityName, "L"),
        (DnType::OrganizationName, "O"),
        (DnType::OrganizationalUnitName, "OU"),
        (DnType::CommonName, "CN"),
    ];
    for (ty, short) in parts {
        if let Some(v) = policy
            .subject_value(a, &short.to_ascii_lowercase())
            .filter(|v| !v.is_empty())
        {
            text.push(format!("{short}={v}"));
            dn.push(ty, DnValue::Utf8String(v));
        }
    }
    Ok((dn, text.join(", ")))
}

/// Everything that varies per certificate besides the subject.
#[derive(Debug)]
pub struct EeParams<'a> {
    /// The serial.
    pub serial: [u8; 16],
    /// Key usage etc.
    pub profile: &'a CertProfile,
    /// Validity (from [`crate::validity`]).
    pub validity: crate::validity::Validity,
    /// Organisation identifier for the GM/T 0015 extension.
    pub org_id: Option<&'a str>,
    /// Resident ID number for the GM/T 0015 extension.
    pub resident_id: Option<&'a str>,
}

/// rcgen parameters for an end-entity certificate.
pub fn end_entity(
    config: &Config,
    dn: DistinguishedName,
    p: &EeParams<'_>,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&p.serial));
    params.not_before = p.validity.not_before;
    params.not_after = p.validity.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = p.profile.key_usage.iter().map(|k| key_usage(*k)).collect();
    params.extended_key_usages = p
        .profile
        .extended_key_usage
        .iter()
        .map(ext_key_usage)
        .collect();
    revocation_pointers(config, &mut params)?;
    let policy_oid = format!("{}.{}", config.policy_arc, p.profile.policy_oid_suffix);
    params.custom_extensions.push(ext(
        OID_CERT_POLICIES,
        certificate_policies(&policy_oid)?,
        false,
    ));
    if let Some(id) = p.org_id {
        let v = PrintableString::new(id).map_err(enc("organisation code"))?;
        params.custom_extensions.push(ext(
            OID_GMT_ORG_CODE,
            v.to_der().map_err(enc("organisation code"))?,
            false,
        ));
    }
    if let Some(id) = p.resident_id {
        params
            .custom_extensions
            .push(ext(OID_GMT_IDENTIFY_CODE, identify_code(id)?, false));
    }
    Ok(params)
}

/// Where a relying party checks a certificate of the issuing CA: the CRL distribution point
/// and the AIA (OCSP responder, issuer certificate). Every end-entity certificate carries them,
/// holders' and the CA's own (operator, API TLS).
pub fn revocation_pointers(config: &Config, params: &mut CertificateParams) -> Result<()> {
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![config.urls.crl.clone()],
    }];
    params.custom_extensions.push(ext(
        OID_AIA,
        aia(&config.urls.ca_issuers, config.urls.ocsp.as_deref())?,
        false,
    ));
    Ok(())
}

fn enc(what: &'static str) -> impl Fn(der::Error) -> CoreError {
    move |e| CoreError::Encoding {
        what,
        reason: e.to_string(),
    }
}

fn ext(oid: &[u64], content: Vec<u8>, critical: bool) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(oid, content);
    e.set_criticality(critical);
    e
}

/// `IdentifyCode ::= CHOICE { residenterCardNumber [0] IMPLICIT PrintableString, ... }`.
fn identify_code(id: &str) -> Result<Vec<u8>> {
    let v = PrintableString::new(id).map_err(enc("IdentifyCode"))?;
    let inner = v.to_der().map_err(enc("IdentifyCode"))?;
    // Re-tag the PrintableString (0x13) as [0] IMPLICIT primitive (0x80); length and value stay.
    let mut out = inner;
    if let Some(first) = out.first_mut() {
        *first = 0x80;
    }
    Ok(out)
}

fn certificate_policies(oid: &str) -> Result<Vec<u8>> {
    let policy_identifier = ObjectIdentifier::new(oid).map_err(|e| CoreError::Encoding {
        what: "certificate policy OID",
        reason: format!("{oid}: {e}"),
    })?;
    CertificatePolicies(vec![PolicyInformation {
        policy_identifier,
        policy_qualifiers: None,
    }])
    .to_der()
    .map_err(enc("certificatePolicies"))
}

fn aia(url: &str, ocsp: Option<&str>) -> Result<Vec<u8>> {
    let uri = Ia5String::new(url).map_err(enc("AIA URL"))?;
    let mut access = Vec::new();
    if let Some(ocsp) = ocsp {
        access.push(AccessDescription {
            access_method: ObjectIdentifier::new_unwrap(OID_AD_OCSP),
            access_location: GeneralName::UniformResourceIdentifier(
                Ia5String::new(ocsp).map_err(enc("AIA OCSP URL"))?,
            ),
        });
    }
    access.push(AccessDescription {
        access_method: ObjectIdentifier::new_unwrap(OID_CA_ISSUERS),
        access_location: GeneralName::UniformResourceIdentifier(uri),
    });
    AuthorityInfoAccessSyntax(access)
        .to_der()
        .map_err(enc("authorityInfoAccess"))
}

fn key_usage(k: KeyUsage) -> KeyUsagePurpose {
    match k {
        KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
        KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
        KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
        KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
        KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
    }
}

fn ext_key_usage(k: &ExtKeyUsage) -> ExtendedKeyUsagePurpose {
    match k {
        ExtKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        ExtKeyUsage::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
        other => ExtendedKeyUsagePurpose::Other(
            other
                .oid()
                .split('.')
                .filter_map(|p| p.parse::<u64>().ok())
                .collect(),
        ),
    }
}

/// A public key read from a token, as rcgen wants it.
#[derive(Debug)]
pub struct TokenPublicKey(pub Vec<u8>);

/// A subject's public key as rcgen wants it: the BIT STRING content of its
/// SubjectPublicKeyInfo (an EC point, or an RSAPublicKey) and its algorithm.
#[derive(Debug, Clone)]
pub struct SubjectKey {
    /// The BIT STRING content.
    pub bits: Vec<u8>,
    /// The algorithm.
    pub alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_code_is_context_tag_zero_printable() {
        let der = identify_code("11010519491231002X").unwrap();
        assert_eq!(der[0], 0x80, "[0] IMPLICIT, primitive");
        assert_eq!(der[1] as usize, 18);
        assert_eq!(&der[2..], b"11010519491231002X");
    }

    #[test]
    fn certificate_policies_and_aia_parse_back() {
        use x509_parser::extensions::{ParsedExtension, X509Extension};
        use x509_parser::prelude::FromDer;
        let cp = certificate_policies("1.3.6.1.4.1.99999.1.1.1").unwrap();
        // Wrap as an extension and let x509-parser decode it.
        let oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.32");
        let ext = x509_cert::ext::Extension {
            extn_id: oid,
            critical: false,
            extn_value: der::asn1::OctetString::new(cp).unwrap(),
        }
        .to_der()
        .unwrap();
        let (_, parsed) = X509Extension::from_der(&ext).unwrap();
        match parsed.parsed_extension() {
            ParsedExtension::CertificatePolicies(p) => {
                assert_eq!(p[0].policy_id.to_id_string(), "1.3.6.1.4.1.99999.1.1.1")
            }
            other => panic!("{other:?}"),
        }
        assert!(aia("http://x.example/ca.cer", None).is_ok());
        assert!(aia("http://x.example/ca.cer", Some("http://x.example/ocsp")).is_ok());
        assert!(certificate_policies("not.an.oid").is_err());
    }

    #[test]
    fn serials_are_positive_sixteen_bytes() {
        for _ in 0..200 {
            let s = random_serial();
            assert!(s[0] >= 1 && s[0] <= 0x7f);
        }
    }
}
