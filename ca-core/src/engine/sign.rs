//! The one signing path. Every certificate the CA makes — a holder's identity and seal
//! certificates, an operator's, the OCSP signer's, the API's TLS server certificate, the seal
//! maker's, the CA certificates themselves — is signed by [`sign_with`]; everything signed by
//! the issuing CA goes through [`Authority::sign`] (signed, then checked), and each one gets a
//! `certificates` row with its role ([`record_made`] for the CA's own working certificates; the
//! engine's stages for a holder's), so the CRL and OCSP know every certificate the CA issued.

use rcgen::{CertificateParams, Issuer, PublicKeyData, SigningKey};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Authority;
use crate::error::{CoreError, Result};
use crate::store::{CertRole, NewMade, Tx, insert_made};

/// Signs `params` for the subject key `key` with `issuer`: the only `signed_by` of the CA.
pub(crate) fn sign_with<S: SigningKey>(
    params: &CertificateParams,
    key: &impl PublicKeyData,
    issuer: &Issuer<'_, S>,
    what: impl Into<String>,
) -> Result<Vec<u8>> {
    params
        .signed_by(key, issuer)
        .map(|c| c.der().to_vec())
        .map_err(CoreError::cert(what))
}

impl Authority<'_> {
    /// Signs `params` for `key` with the issuing CA and checks the certificate (serial, issuer,
    /// subject key, signature) before it is returned.
    pub fn sign(
        &self,
        params: &CertificateParams,
        key: &impl PublicKeyData,
        what: impl Into<String>,
    ) -> Result<Vec<u8>> {
        let der = sign_with(params, key, self.issuer(), what)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default();
        self.signed_check().check(&der, &serial, key.der_bytes())?;
        Ok(der)
    }
}

/// The token label recorded for a key of the CA kept in the home's key files (development
/// homes, `key_store = "file"`).
pub const CA_KEY_FILES: &str = "(CA key files)";

/// Where the private key of a CA-made certificate lives.
#[derive(Debug, Clone, Copy)]
pub struct KeyHome<'a> {
    /// Token label (`ca-key-file` for a key file, `tls/api.key` for the API's TLS key).
    pub token_label: &'a str,
    /// Token serial (empty when the key is a file).
    pub token_serial: &'a str,
    /// `CKA_ID` (hex), or empty.
    pub key_id: &'a str,
}

/// Records a certificate the CA made for its own work (operator, OCSP signer, TLS, seal maker)
/// as an issued `certificates` row with `role`, inside the write that records its audit row.
/// Returns its serial (lower-case hex).
pub(crate) fn record_made(
    tx: &Tx<'_>,
    role: CertRole,
    der: &[u8],
    home: KeyHome<'_>,
) -> Result<String> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CoreError::Parse {
        what: format!("{} certificate", role.as_str()),
        reason: e.to_string(),
    })?;
    let validity = crate::validity::of_certificate(&c);
    let serial = hex::encode(c.raw_serial());
    insert_made(
        tx,
        &NewMade {
            serial: &serial,
            role,
            subject: &c.subject().to_string(),
            der,
            spki: c.public_key().subject_public_key.data.as_ref(),
            not_before: validity.not_before,
            not_after: validity.not_after,
            token_label: home.token_label,
            token_serial: home.token_serial,
            key_id: home.key_id,
        },
    )?;
    Ok(serial)
}
