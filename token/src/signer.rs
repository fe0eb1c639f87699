//! Signing with a key that stays on the token, for rcgen (certificates, CRLs) and seals.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use sha2::{Digest, Sha256};

/// An EC P-256 private key on a token, usable wherever rcgen wants a [`rcgen::SigningKey`].
///
/// `CKM_ECDSA` signs a digest we supply and returns raw `r || s`; X.509 wants the DER
/// `Ecdsa-Sig-Value`, so we hash first and convert after.
pub struct TokenSigner<'s> {
    session: &'s Session,
    key: ObjectHandle,
    public_point: Vec<u8>,
    token: String,
}

impl std::fmt::Debug for TokenSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("token", &self.token)
            .finish()
    }
}

impl<'s> TokenSigner<'s> {
    pub(crate) fn new(
        session: &'s Session,
        key: ObjectHandle,
        public_point: Vec<u8>,
        token: String,
    ) -> Self {
        TokenSigner {
            session,
            key,
            public_point,
            token,
        }
    }

    /// The uncompressed public point.
    pub fn public_point(&self) -> &[u8] {
        &self.public_point
    }
}

impl rcgen::PublicKeyData for TokenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public_point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TokenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = Sha256::digest(msg);
        let raw = self
            .session
            .sign(&Mechanism::Ecdsa, self.key, &digest)
            .map_err(|e| {
                tracing::error!(token = %self.token, error = %e, "C_Sign failed");
                rcgen::Error::RemoteKeyError
            })?;
        let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|e| {
            tracing::error!(token = %self.token, error = %e, "token returned a malformed ECDSA signature");
            rcgen::Error::RemoteKeyError
        })?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}
