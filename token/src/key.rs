//! The kinds of key pair hljca makes on a token, and their public halves in the DER forms that
//! X.509 (and rcgen) want.

use serde::Serialize;

/// DER of the named curve OID prime256v1 (1.2.840.10045.3.1.7): `CKA_EC_PARAMS`, and the
/// algorithm parameters of an EC SubjectPublicKeyInfo.
pub(crate) const P256_PARAMS: [u8; 10] =
    [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// DER of id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// DER of rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA_ENCRYPTION: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// DER NULL, the parameters of rsaEncryption.
const DER_NULL: [u8; 2] = [0x05, 0x00];

/// The RSA public exponent hljca generates keys with (65537), big-endian.
pub(crate) const RSA_PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// The RSA modulus size hljca generates, in bits.
pub(crate) const RSA_MODULUS_BITS: usize = 2048;

/// A kind of key pair hljca generates on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeyKind {
    /// EC on NIST P-256 (prime256v1); signs ECDSA with SHA-256.
    #[serde(rename = "ec-p256")]
    EcP256,
    /// RSA with a 2048-bit modulus and public exponent 65537; signs PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

impl KeyKind {
    /// A stable lower-case name: `ec-p256` or `rsa-2048` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "ec-p256",
            KeyKind::Rsa2048 => "rsa-2048",
        }
    }

    /// The rcgen signature algorithm of keys of this kind.
    pub fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyKind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::EcP256 => "EC P-256",
            KeyKind::Rsa2048 => "RSA-2048",
        })
    }
}

/// The public half of a key pair on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenPublicKey {
    /// An EC P-256 public key.
    EcP256 {
        /// The uncompressed point (65 bytes, `04 || x || y`).
        point: Vec<u8>,
    },
    /// An RSA-2048 public key.
    Rsa2048 {
        /// The modulus, big-endian unsigned, without leading zero bytes (256 bytes).
        modulus: Vec<u8>,
        /// The public exponent, big-endian unsigned, without leading zero bytes.
        exponent: Vec<u8>,
    },
}

impl TokenPublicKey {
    /// Checks an EC point read from a token: uncompressed, 65 bytes.
    pub(crate) fn ec_p256(point: Vec<u8>) -> Result<TokenPublicKey, &'static str> {
        if point.len() != 65 || point[0] != 0x04 {
            return Err("not an uncompressed P-256 point");
        }
        Ok(TokenPublicKey::EcP256 { point })
    }

    /// Checks an RSA modulus and exponent read from a token: a 2048-bit modulus, an odd
    /// exponent greater than 1.
    pub(crate) fn rsa_2048(modulus: &[u8], exponent: &[u8]) -> Result<TokenPublicKey, String> {
        let modulus = strip_leading_zeros(modulus);
        let exponent = strip_leading_zeros(exponent);
        let bits = bit_len(modulus);
        if bits != RSA_MODULUS_BITS {
            return Err(format!(
                "RSA modulus is {bits} bits, expected {RSA_MODULUS_BITS}"
            ));
        }
        if exponent.len() > 8 || exponent.last().is_none_or(|b| b & 1 == 0) || exponent == [1] {
            return Err("RSA public exponent is not an odd number above 1".into());
        }
        Ok(TokenPublicKey::Rsa2048 {
            modulus: modulus.to_vec(),
            exponent: exponent.to_vec(),
        })
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        match self {
            TokenPublicKey::EcP256 { .. } => KeyKind::EcP256,
            TokenPublicKey::Rsa2048 { .. } => KeyKind::Rsa2048,
        }
    }

    /// The uncompressed EC point, for EC keys.
    pub fn ec_point(&self) -> Option<&[u8]> {
        match self {
            TokenPublicKey::EcP256 { point } => Some(point),
            TokenPublicKey::Rsa2048 { .. } => None,
        }
    }

    /// The content of the SubjectPublicKeyInfo's `subjectPublicKey` BIT STRING, which is also
    /// what [`rcgen::PublicKeyData::der_bytes`] returns: the EC point, or the DER
    /// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017).
    pub fn subject_public_key_bits(&self) -> Vec<u8> {
        match self {
            TokenPublicKey::EcP256 { point } => point.clone(),
            TokenPublicKey::Rsa2048 { modulus, exponent } => {
                let mut content = der_uint(modulus);
                content.extend(der_uint(exponent));
                tlv(0x30, &content)
            }
        }
    }

    /// The full DER `SubjectPublicKeyInfo` (RFC 5280): id-ecPublicKey with prime256v1
    /// parameters, or rsaEncryption with NULL parameters, and the key bits.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut alg = Vec::new();
        match self {
            TokenPublicKey::EcP256 { .. } => {
                alg.extend_from_slice(&OID_EC_PUBLIC_KEY);
                alg.extend_from_slice(&P256_PARAMS);
            }
            TokenPublicKey::Rsa2048 { .. } => {
                alg.extend_from_slice(&OID_RSA_ENCRYPTION);
                alg.extend_from_slice(&DER_NULL);
            }
        }
        let mut bits = vec![0x00]; // no unused bits
        bits.extend(self.subject_public_key_bits());
        let mut content = tlv(0x30, &alg);
        content.extend(tlv(0x03, &bits));
        tlv(0x30, &content)
    }

    /// The rcgen signature algorithm the token signs with for this key:
    /// [`rcgen::PKCS_ECDSA_P256_SHA256`] or [`rcgen::PKCS_RSA_SHA256`].
    pub fn rcgen_algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.kind().rcgen_algorithm()
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Bits in a big-endian unsigned number without leading zero bytes.
fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&top) => (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// DER tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let be = n.to_be_bytes();
        let len = strip_leading_zeros(&be);
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
    out.extend_from_slice(content);
    out
}

/// DER INTEGER of a big-endian unsigned number: minimal, with a zero byte when the top bit is
/// set so it stays positive.
fn der_uint(b: &[u8]) -> Vec<u8> {
    let b = strip_leading_zeros(b);
    let mut content = Vec::with_capacity(b.len() + 1);
    if b.first().is_none_or(|&top| top & 0x80 != 0) {
        content.push(0x00);
    }
    content.extend_from_slice(b);
    tlv(0x02, &content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use p256::pkcs8::EncodePublicKey;

    fn ec_key() -> TokenPublicKey {
        let sk = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let point = sk.public_key().to_sec1_bytes(); // uncompressed by default
        TokenPublicKey::ec_p256(point.to_vec()).unwrap()
    }

    fn rsa_key() -> TokenPublicKey {
        let mut modulus = vec![0x00]; // a leading zero, as some tokens return
        modulus.extend([0xc3; 256]);
        TokenPublicKey::rsa_2048(&modulus, &[0x00, 0x01, 0x00, 0x01]).unwrap()
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x10a])[..4], [0x04, 0x82, 0x01, 0x0a]);
        assert_eq!(der_uint(&[]), [0x02, 1, 0]);
        assert_eq!(der_uint(&[0, 0, 0x7f]), [0x02, 1, 0x7f]);
        assert_eq!(der_uint(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(der_uint(&RSA_PUBLIC_EXPONENT), [0x02, 3, 1, 0, 1]);
    }

    #[test]
    fn ec_spki_matches_p256_crate() {
        let key = ec_key();
        let sk = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let expected = sk.public_key().to_public_key_der().unwrap();
        assert_eq!(key.spki_der(), expected.as_bytes());
        assert_eq!(key.kind(), KeyKind::EcP256);
        assert_eq!(key.subject_public_key_bits(), key.ec_point().unwrap());
    }

    #[test]
    fn rsa_public_key_der_by_hand() {
        let key = rsa_key();
        let TokenPublicKey::Rsa2048 { modulus, exponent } = &key else {
            panic!("not RSA")
        };
        assert_eq!(modulus.len(), 256);
        assert_eq!(exponent, &RSA_PUBLIC_EXPONENT);
        let bits = key.subject_public_key_bits();
        // SEQUENCE (266) { INTEGER (257) 00 c3.., INTEGER (3) 01 00 01 }
        assert_eq!(
            &bits[..9],
            [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00]
        );
        assert_eq!(bits[9], 0xc3);
        assert_eq!(&bits[265..], [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(bits.len(), 270);
        assert!(key.spki_der().starts_with(&[
            0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
            0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01, 0x0a
        ]));
    }

    /// rcgen parses our SPKI back to the same key bits and algorithm, and its own encoder
    /// (used when it puts a key in a certificate) produces the same bytes.
    #[test]
    fn spki_round_trips_through_rcgen() {
        use rcgen::PublicKeyData;
        for key in [ec_key(), rsa_key()] {
            let spki = key.spki_der();
            let parsed = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
            assert_eq!(parsed.der_bytes(), key.subject_public_key_bits());
            assert_eq!(parsed.algorithm(), key.rcgen_algorithm());
            assert_eq!(parsed.subject_public_key_info(), spki);
            // And the spki crate (via p256) reads it as well-formed DER.
            let decoded = p256::pkcs8::SubjectPublicKeyInfoRef::try_from(spki.as_slice()).unwrap();
            assert_eq!(
                decoded.subject_public_key.raw_bytes(),
                key.subject_public_key_bits()
            );
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(TokenPublicKey::ec_p256(vec![0x04; 33]).is_err());
        assert!(TokenPublicKey::ec_p256(vec![0x02; 65]).is_err());
        assert!(TokenPublicKey::rsa_2048(&[0x7f; 256], &RSA_PUBLIC_EXPONENT).is_err()); // 2047 bits
        assert!(TokenPublicKey::rsa_2048(&[0xff; 512], &RSA_PUBLIC_EXPONENT).is_err());
        assert!(TokenPublicKey::rsa_2048(&[0xff; 256], &[0x01, 0x00]).is_err());
        assert!(TokenPublicKey::rsa_2048(&[0xff; 256], &[0x01]).is_err());
        assert!(TokenPublicKey::rsa_2048(&[0xff; 256], &[]).is_err());
        assert_eq!(KeyKind::Rsa2048.as_str(), "rsa-2048");
        assert_eq!(KeyKind::EcP256.to_string(), "EC P-256");
    }
}
