//! Signing with a key that stays on the token, for rcgen (certificates, CRLs) and seals.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use sha2::{Digest, Sha256};

use crate::key::{KeyKind, TokenPublicKey};

/// A private key on a token (EC P-256 or RSA-2048), usable wherever rcgen wants a
/// [`rcgen::SigningKey`].
///
/// For EC, `CKM_ECDSA` signs a digest we supply and returns raw `r || s`; X.509 wants the DER
/// `Ecdsa-Sig-Value`, so we hash first and convert after. For RSA, `CKM_SHA256_RSA_PKCS` hashes
/// and pads on the token and returns the PKCS#1 v1.5 signature X.509 wants as it is.
pub struct TokenSigner<'s> {
    session: &'s Session,
    key: ObjectHandle,
    public: TokenPublicKey,
    /// [`TokenPublicKey::subject_public_key_bits`], kept to lend to rcgen.
    public_bits: Vec<u8>,
    token: String,
}

impl std::fmt::Debug for TokenSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("token", &self.token)
            .field("kind", &self.public.kind())
            .finish()
    }
}

impl<'s> TokenSigner<'s> {
    pub(crate) fn new(
        session: &'s Session,
        key: ObjectHandle,
        public: TokenPublicKey,
        token: String,
    ) -> Self {
        TokenSigner {
            session,
            key,
            public_bits: public.subject_public_key_bits(),
            public,
            token,
        }
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.public.kind()
    }

    /// The public half of the key.
    pub fn public_key(&self) -> &TokenPublicKey {
        &self.public
    }

    /// The uncompressed public point, for an EC key.
    pub fn public_point(&self) -> Option<&[u8]> {
        self.public.ec_point()
    }
}

impl TokenSigner<'_> {
    /// Signs a SHA-256 digest computed elsewhere, for documents too large to hand over whole
    /// (a streamed CRL): `CKM_ECDSA` on the digest (DER `Ecdsa-Sig-Value` out), or `CKM_RSA_PKCS`
    /// over the DigestInfo, which is what `CKM_SHA256_RSA_PKCS` signs after hashing.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, rcgen::Error> {
        let failed = |e: cryptoki::error::Error| {
            tracing::error!(token = %self.token, error = %e, "C_Sign failed");
            rcgen::Error::RemoteKeyError
        };
        match self.public.kind() {
            KeyKind::EcP256 => {
                let raw = self
                    .session
                    .sign(&Mechanism::Ecdsa, self.key, digest)
                    .map_err(failed)?;
                ecdsa_der(&raw, &self.token)
            }
            KeyKind::Rsa2048 => {
                let mut info = SHA256_DIGEST_INFO.to_vec();
                info.extend_from_slice(digest);
                let sig = self
                    .session
                    .sign(&Mechanism::RsaPkcs, self.key, &info)
                    .map_err(failed)?;
                rsa_checked(sig, &self.token)
            }
        }
    }
}

/// The DER DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Raw `r || s` from the token as the DER `Ecdsa-Sig-Value` X.509 wants.
fn ecdsa_der(raw: &[u8], token: &str) -> Result<Vec<u8>, rcgen::Error> {
    let sig = p256::ecdsa::Signature::from_slice(raw).map_err(|e| {
        tracing::error!(token = %token, error = %e, "token returned a malformed ECDSA signature");
        rcgen::Error::RemoteKeyError
    })?;
    Ok(sig.to_der().as_bytes().to_vec())
}

/// An RSA signature, refused unless it is as long as the modulus.
fn rsa_checked(sig: Vec<u8>, token: &str) -> Result<Vec<u8>, rcgen::Error> {
    if sig.len() != crate::key::RSA_MODULUS_BITS / 8 {
        tracing::error!(token = %token, len = sig.len(), "token returned an RSA signature of the wrong length");
        return Err(rcgen::Error::RemoteKeyError);
    }
    Ok(sig)
}

impl rcgen::PublicKeyData for TokenSigner<'_> {
    /// The EC point, or the DER `RSAPublicKey`.
    fn der_bytes(&self) -> &[u8] {
        &self.public_bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.public.rcgen_algorithm()
    }
}

impl rcgen::SigningKey for TokenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let failed = |e: cryptoki::error::Error| {
            tracing::error!(token = %self.token, error = %e, "C_Sign failed");
            rcgen::Error::RemoteKeyError
        };
        match self.public.kind() {
            KeyKind::EcP256 => {
                let digest = Sha256::digest(msg);
                let raw = self
                    .session
                    .sign(&Mechanism::Ecdsa, self.key, &digest)
                    .map_err(failed)?;
                ecdsa_der(&raw, &self.token)
            }
            KeyKind::Rsa2048 => {
                let sig = self
                    .session
                    .sign(&Mechanism::Sha256RsaPkcs, self.key, msg)
                    .map_err(failed)?;
                rsa_checked(sig, &self.token)
            }
        }
    }
}
