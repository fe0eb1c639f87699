//! Object identities and summaries: how keys, certificates and data objects are paired on a token.

use cryptoki::object::ObjectClass;
use serde::Serialize;

/// `CKA_ID` shared by a private key, its public key and its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub Vec<u8>);

impl KeyId {
    /// 16 fresh random bytes.
    pub fn random() -> KeyId {
        KeyId(rand::random::<[u8; 16]>().to_vec())
    }

    /// Lower-case hex, as `pkcs11-tool --id` takes it.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses hex.
    pub fn from_hex(s: &str) -> Option<KeyId> {
        hex::decode(s).ok().filter(|b| !b.is_empty()).map(KeyId)
    }

    /// Label of the seal data object that belongs with this key.
    pub fn data_label(&self) -> String {
        format!("hljca-seal-{}", self.to_hex())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The kind of an object on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    /// A private key.
    PrivateKey,
    /// A public key.
    PublicKey,
    /// An X.509 certificate.
    Certificate,
    /// A data object (the electronic seal).
    Data,
    /// Anything else.
    Other,
}

impl ObjectKind {
    pub(crate) fn from_class(c: ObjectClass) -> ObjectKind {
        if c == ObjectClass::PRIVATE_KEY {
            ObjectKind::PrivateKey
        } else if c == ObjectClass::PUBLIC_KEY {
            ObjectKind::PublicKey
        } else if c == ObjectClass::CERTIFICATE {
            ObjectKind::Certificate
        } else if c == ObjectClass::DATA {
            ObjectKind::Data
        } else {
            ObjectKind::Other
        }
    }
}

/// One object on a token, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectSummary {
    /// Class.
    pub kind: ObjectKind,
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID` in hex (empty for data objects).
    pub id: String,
    /// For private keys: `CKA_SENSITIVE`.
    pub sensitive: Option<bool>,
    /// For private keys: `CKA_EXTRACTABLE`.
    pub extractable: Option<bool>,
}
