//! The issuing CA, checked before it signs anything: the certificate in `ca/issuing.pem` must
//! carry the issuing key's public key and verify under `ca/root.pem`, whose key must be the root
//! key. Every certificate signed is checked against it before it is recorded; seals and audit
//! anchors are signed by the seal maker, never by the issuing key.

use crate::validity;
use hljca_token::Module;
use rcgen::Issuer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{pem_cert, read_pem_cert, seal_maker_params};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::{CaKeyRole, CaKeys, CaSigner, Secrets};
use crate::profile::SubjectKey;
use crate::{Ca, audit};

/// The verified issuing CA and the seal maker, ready to sign for one command.
pub struct Authority<'k> {
    issuer: Issuer<'static, CaSigner<'k>>,
    issuing_der: Vec<u8>,
    issuing_subject: Vec<u8>,
    issuing_not_after: OffsetDateTime,
    maker: CaSigner<'k>,
    maker_der: Vec<u8>,
}

impl std::fmt::Debug for Authority<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CoreError::IssuerMismatch(format!("{what} does not parse: {e}")))
}

impl<'k> Authority<'k> {
    /// Checks the home's CA certificates against the keys and makes the authority.
    pub fn new(ca: &Ca, keys: &'k CaKeys) -> Result<Authority<'k>> {
        let home = &ca.home;
        let root_der = read_pem_cert(&home.root_pem())?;
        let issuing_der = read_pem_cert(&home.issuing_pem())?;
        let maker_der = read_pem_cert(&home.seal_maker_pem())?;
        let root = parse(&root_der, "ca/root.pem")?;
        let issuing = parse(&issuing_der, "ca/issuing.pem")?;
        let maker_cert = parse(&maker_der, "ca/seal-maker.pem")?;
        let root_signer = keys.signer(CaKeyRole::Root)?;
        let issuing_signer = keys.signer(CaKeyRole::Issuing)?;
        let maker = keys.signer(CaKeyRole::SealMaker)?;
        let key_bits = |c: &X509Certificate<'_>| c.public_key().subject_public_key.data.to_vec();
        if key_bits(&root) != rcgen::PublicKeyData::der_bytes(&root_signer) {
            return Err(CoreError::IssuerMismatch(format!(
                "{} does not hold the root key of this CA's key store",
                home.root_pem().display()
            )));
        }
        if key_bits(&issuing) != rcgen::PublicKeyData::der_bytes(&issuing_signer) {
            return Err(CoreError::IssuerMismatch(format!(
                "{} (subject `{}`) does not hold the issuing key of this CA's key store; \
                 restore the CA's own issuing certificate",
                home.issuing_pem().display(),
                issuing.subject()
            )));
        }
        issuing
            .verify_signature(Some(root.public_key()))
            .map_err(|e| {
                CoreError::IssuerMismatch(format!(
                    "{} is not signed by {}: {e}",
                    home.issuing_pem().display(),
                    home.root_pem().display()
                ))
            })?;
        check_issued_by(&maker_cert, &issuing, "ca/seal-maker.pem")?;
        if key_bits(&maker_cert) != rcgen::PublicKeyData::der_bytes(&maker) {
            return Err(CoreError::IssuerMismatch(format!(
                "{} does not hold the seal maker key",
                home.seal_maker_pem().display()
            )));
        }
        let issuing_subject = issuing.tbs_certificate.subject.as_raw().to_vec();
        let issuing_not_after = validity::of_certificate(&issuing).not_after;
        let issuer = Issuer::from_ca_cert_der(&issuing_der.as_slice().into(), issuing_signer)
            .map_err(CoreError::cert("issuing CA (loading)"))?;
        Ok(Authority {
            issuer,
            issuing_der,
            issuing_subject,
            issuing_not_after,
            maker,
            maker_der,
        })
    }

    /// The issuer to sign certificates and CRLs with.
    pub fn issuer(&self) -> &Issuer<'static, CaSigner<'k>> {
        &self.issuer
    }

    /// The issuing CA's subject Name (DER): the issuer of what it signs.
    pub fn issuing_subject(&self) -> &[u8] {
        &self.issuing_subject
    }

    /// The issuing CA certificate (DER).
    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing_der
    }

    /// The issuing CA's notAfter: no certificate it signs outlives it.
    pub fn issuing_not_after(&self) -> OffsetDateTime {
        self.issuing_not_after
    }

    /// The seal maker's key (signs seals and audit anchors).
    pub fn seal_signer(&self) -> &CaSigner<'k> {
        &self.maker
    }

    /// The seal maker's certificate (DER), embedded in every seal.
    pub fn seal_maker_der(&self) -> &[u8] {
        &self.maker_der
    }

    /// Checks a certificate just signed: it parses, has the serial and the subject key asked
    /// for, names the issuing CA as issuer and verifies with the issuing CA's key.
    pub fn check_signed(&self, der: &[u8], serial: &[u8], key: &SubjectKey) -> Result<()> {
        self.signed_check().check(der, serial, &key.bits)
    }

    /// The check of [`Authority::check_signed`] on its own (no key inside: it can go to
    /// another thread while this one signs).
    pub fn signed_check(&self) -> SignedCheck {
        SignedCheck {
            issuing_der: self.issuing_der.clone(),
            issuing_subject: self.issuing_subject.clone(),
        }
    }
}

/// Checks certificates just signed against the issuing CA certificate.
#[derive(Debug, Clone)]
pub struct SignedCheck {
    issuing_der: Vec<u8>,
    issuing_subject: Vec<u8>,
}

impl SignedCheck {
    /// The certificate `der` parses, has `serial` and the subject key bits `key_bits`, names
    /// the issuing CA as issuer and verifies with the issuing CA's key.
    pub fn check(&self, der: &[u8], serial: &[u8], key_bits: &[u8]) -> Result<()> {
        let bad = |why: String| CoreError::IssuerMismatch(why);
        let c = parse(der, "the certificate just signed")?;
        if c.raw_serial() != serial {
            return Err(bad(format!(
                "certificate has serial {}, not {}",
                hex::encode(c.raw_serial()),
                hex::encode(serial)
            )));
        }
        if c.tbs_certificate.issuer.as_raw() != self.issuing_subject.as_slice() {
            return Err(bad(format!(
                "certificate {} names issuer `{}`, not the issuing CA",
                hex::encode(serial),
                c.issuer()
            )));
        }
        if c.public_key().subject_public_key.data.as_ref() != key_bits {
            return Err(bad(format!(
                "certificate {} does not carry the holder's public key",
                hex::encode(serial)
            )));
        }
        let (_, issuing) = X509Certificate::from_der(&self.issuing_der)
            .map_err(|e| bad(format!("issuing CA certificate: {e}")))?;
        c.verify_signature(Some(issuing.public_key())).map_err(|e| {
            bad(format!(
                "certificate {} does not verify with the issuing CA's key: {e}",
                hex::encode(serial)
            ))
        })
    }
}

fn check_issued_by(
    c: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    what: &str,
) -> Result<()> {
    if c.tbs_certificate.issuer.as_raw() != issuer.tbs_certificate.subject.as_raw() {
        return Err(CoreError::IssuerMismatch(format!(
            "{what} is not issued by the issuing CA"
        )));
    }
    c.verify_signature(Some(issuer.public_key())).map_err(|e| {
        CoreError::IssuerMismatch(format!("{what} does not verify under the issuing CA: {e}"))
    })
}

impl Ca {
    /// Opens the CA keys for one command. A home made before the seal maker existed gets one
    /// here (a key beside the CA keys, a certificate from the issuing CA, an audit row).
    pub fn ca_keys(&mut self, module: Option<&Module>, secrets: &Secrets) -> Result<CaKeys> {
        let mut keys = CaKeys::open(&self.config, &self.home, module, secrets)?;
        if keys.has_seal_maker() && self.home.seal_maker_pem().is_file() {
            return Ok(keys);
        }
        if keys.has_seal_maker() {
            return Err(CoreError::IssuerMismatch(format!(
                "the seal maker key is configured but {} is missing",
                self.home.seal_maker_pem().display()
            )));
        }
        let issuing_der = read_pem_cert(&self.home.issuing_pem())?;
        let issuing_not_after =
            validity::of_certificate(&parse(&issuing_der, "ca/issuing.pem")?).not_after;
        let (bits, key_id) = keys.create_seal_maker(&self.home)?;
        let der = {
            let signer = keys.signer(CaKeyRole::Issuing)?;
            let issuer = Issuer::from_ca_cert_der(&issuing_der.as_slice().into(), signer)
                .map_err(CoreError::cert("issuing CA (loading)"))?;
            let key = SubjectKey {
                bits,
                alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            };
            super::sign_with(
                &seal_maker_params(issuing_not_after)?,
                &key,
                &issuer,
                "seal maker certificate",
            )?
        };
        write_file(
            &self.home.seal_maker_pem(),
            pem_cert(&der).as_bytes(),
            0o644,
        )?;
        if let Some(id) = &key_id {
            self.parts_mut()?.config.ca.seal_maker_key_id = Some(id.clone());
            write_file(
                &self.home.config(),
                self.config.to_toml()?.as_bytes(),
                0o600,
            )?;
        }
        let serial = parse(&der, "seal maker certificate")?.raw_serial_as_string();
        let ca = &self.config.ca;
        let home = super::KeyHome {
            token_label: ca.token_label.as_deref().unwrap_or(super::CA_KEY_FILES),
            token_serial: ca.token_serial.as_deref().unwrap_or(""),
            key_id: key_id.as_deref().unwrap_or(""),
        };
        self.write("record seal maker", |tx| {
            super::record_made(tx, crate::store::CertRole::SealMaker, &der, home)?;
            audit::append(
                tx,
                self.actor.name(),
                "ca.seal-maker",
                &serial,
                &serde_json::json!({
                    "certificate": self.home.seal_maker_pem(), "key_id": key_id,
                    "purpose": "signs electronic seals and audit anchors; the issuing CA key signs only certificates and CRLs",
                }),
            )
        })?;
        Ok(keys)
    }
}
