//! A logged-in session on one token: key generation, objects, and the PIN.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;

use crate::Result;
use crate::error::TokenError;
use crate::module::TokenInfo;
use crate::objects::{KeyId, ObjectKind, ObjectSummary};
use crate::pin::Pin;
use crate::signer::TokenSigner;

/// DER of the named curve OID prime256v1 (1.2.840.10045.3.1.7), as `CKA_EC_PARAMS` wants it.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Application name stored on data objects written by hljca.
pub const DATA_APPLICATION: &str = "hljca e-seal (GM/T 0031-2014)";

/// A key pair just generated on the token.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The `CKA_ID` of both halves.
    pub id: KeyId,
    /// The uncompressed EC point (65 bytes, `04 || x || y`).
    pub public_point: Vec<u8>,
}

/// A read-write session, logged in as the token's user. Logs out and closes when dropped.
pub struct TokenSession<'m> {
    session: Session,
    info: TokenInfo,
    _module: std::marker::PhantomData<&'m ()>,
}

impl std::fmt::Debug for TokenSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("label", &self.info.label)
            .field("serial", &self.info.serial)
            .finish()
    }
}

impl Drop for TokenSession<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.session.logout() {
            tracing::debug!(token = %self.info.label, error = %e, "logout on drop");
        }
    }
}

impl<'m> TokenSession<'m> {
    pub(crate) fn new(session: Session, info: TokenInfo) -> Self {
        TokenSession {
            session,
            info,
            _module: std::marker::PhantomData,
        }
    }

    /// The token this session is on.
    pub fn info(&self) -> &TokenInfo {
        &self.info
    }

    fn err(&self, op: &'static str) -> impl Fn(cryptoki::error::Error) -> TokenError + '_ {
        move |e| TokenError::pkcs11(op, &self.info.label, e)
    }

    /// Generates an EC P-256 key pair on the token: private half sensitive, never extractable.
    pub fn generate_p256(&self, label: &str) -> Result<GeneratedKey> {
        self.generate_p256_with_id(label, &KeyId::random())
    }

    /// As [`Self::generate_p256`] with a `CKA_ID` chosen by the caller, who can record it
    /// (e.g. in a pending database row) before the key exists, so a crash never leaves a key
    /// nobody knows about.
    pub fn generate_p256_with_id(&self, label: &str, id: &KeyId) -> Result<GeneratedKey> {
        let id = id.clone();
        let label = label.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label),
        ];
        let (pub_h, _priv_h) = self
            .session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(self.err("C_GenerateKeyPair"))?;
        let point = match self.read_point(pub_h) {
            Ok(p) => p,
            Err(e) => {
                // Leave no orphan half-made key behind.
                let _ = self.destroy_by_id(&id);
                return Err(e);
            }
        };
        Ok(GeneratedKey {
            id,
            public_point: point,
        })
    }

    /// The uncompressed EC point of the public key with this id.
    pub fn public_point(&self, id: &KeyId) -> Result<Vec<u8>> {
        let h = self.find_one(ObjectClass::PUBLIC_KEY, id, "public key")?;
        self.read_point(h)
    }

    fn read_point(&self, h: ObjectHandle) -> Result<Vec<u8>> {
        let attrs = self
            .session
            .get_attributes(h, &[AttributeType::EcPoint])
            .map_err(self.err("C_GetAttributeValue(CKA_EC_POINT)"))?;
        let raw = attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| self.bad_key("no CKA_EC_POINT"))?;
        // SoftHSM (and the standard) wrap the point in a DER OCTET STRING; some tokens do not.
        let point = if raw.len() == 67 && raw[0] == 0x04 && raw[1] == 65 {
            raw[2..].to_vec()
        } else {
            raw
        };
        if point.len() != 65 || point[0] != 0x04 {
            return Err(self.bad_key("not an uncompressed P-256 point"));
        }
        Ok(point)
    }

    fn bad_key(&self, reason: &str) -> TokenError {
        TokenError::BadPublicKey {
            token: self.info.label.clone(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn find_one(
        &self,
        class: ObjectClass,
        id: &KeyId,
        what: &str,
    ) -> Result<ObjectHandle> {
        self.find_first(
            &[Attribute::Class(class), Attribute::Id(id.0.clone())],
            &format!("{what} with id {id}"),
        )
    }

    /// The first object matching `template`, or an error naming `what` is missing.
    fn find_first(&self, template: &[Attribute], what: &str) -> Result<ObjectHandle> {
        let found = self
            .session
            .find_objects(template)
            .map_err(self.err("C_FindObjects"))?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| TokenError::ObjectNotFound {
                token: self.info.label.clone(),
                what: what.to_owned(),
            })
    }

    /// Writes an X.509 certificate beside the key with the same `CKA_ID`.
    pub fn store_certificate(
        &self,
        id: &KeyId,
        label: &str,
        der: &[u8],
        subject_der: &[u8],
    ) -> Result<()> {
        let template = [
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(subject_der.to_vec()),
            Attribute::Value(der.to_vec()),
        ];
        self.session
            .create_object(&template)
            .map_err(self.err("C_CreateObject(certificate)"))?;
        Ok(())
    }

    /// The DER of the certificate with this id.
    pub fn certificate(&self, id: &KeyId) -> Result<Vec<u8>> {
        let h = self.find_one(ObjectClass::CERTIFICATE, id, "certificate")?;
        self.value(h)
    }

    /// The DER of the first certificate object on the token (for tokens from other CAs).
    pub fn first_certificate(&self) -> Result<Vec<u8>> {
        let h = self.find_first(&[Attribute::Class(ObjectClass::CERTIFICATE)], "certificate")?;
        self.value(h)
    }

    /// Writes a data object (the electronic seal) labelled for the key `id`.
    pub fn store_data(&self, id: &KeyId, value: &[u8]) -> Result<()> {
        let template = [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(id.data_label().into_bytes()),
            Attribute::Application(DATA_APPLICATION.as_bytes().to_vec()),
            Attribute::Value(value.to_vec()),
        ];
        self.session
            .create_object(&template)
            .map_err(self.err("C_CreateObject(data)"))?;
        Ok(())
    }

    /// The value of the data object (the seal) belonging to key `id`.
    pub fn data(&self, id: &KeyId) -> Result<Vec<u8>> {
        let h = self.find_first(
            &[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Label(id.data_label().into_bytes()),
            ],
            &format!("seal data object {}", id.data_label()),
        )?;
        self.value(h)
    }

    fn value(&self, h: ObjectHandle) -> Result<Vec<u8>> {
        let attrs = self
            .session
            .get_attributes(h, &[AttributeType::Value])
            .map_err(self.err("C_GetAttributeValue(CKA_VALUE)"))?;
        attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| TokenError::ObjectNotFound {
                token: self.info.label.clone(),
                what: "object value".into(),
            })
    }

    /// Removes every object of key `id`: both key halves, its certificate and its seal data.
    /// Returns how many objects were destroyed.
    pub fn destroy_by_id(&self, id: &KeyId) -> Result<usize> {
        let mut handles = self
            .session
            .find_objects(&[Attribute::Id(id.0.clone())])
            .map_err(self.err("C_FindObjects"))?;
        handles.extend(
            self.session
                .find_objects(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Label(id.data_label().into_bytes()),
                ])
                .map_err(self.err("C_FindObjects"))?,
        );
        let n = handles.len();
        for h in handles {
            self.session
                .destroy_object(h)
                .map_err(self.err("C_DestroyObject"))?;
        }
        Ok(n)
    }

    /// Every object visible to the logged-in user.
    pub fn list_objects(&self) -> Result<Vec<ObjectSummary>> {
        let handles = self
            .session
            .find_objects(&[])
            .map_err(self.err("C_FindObjects"))?;
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let attrs = self.session.get_attributes(
                h,
                &[
                    AttributeType::Class,
                    AttributeType::Label,
                    AttributeType::Id,
                ],
            );
            // A crash while the module wrote an object can leave one whose attributes cannot be
            // read: list it as unreadable rather than failing the whole token.
            let attrs = match attrs {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(token = %self.info.label, error = %e, "unreadable object on token");
                    out.push(ObjectSummary {
                        kind: ObjectKind::Other,
                        label: "(unreadable)".into(),
                        id: String::new(),
                        sensitive: None,
                        extractable: None,
                    });
                    continue;
                }
            };
            let mut s = ObjectSummary {
                kind: ObjectKind::Other,
                label: String::new(),
                id: String::new(),
                sensitive: None,
                extractable: None,
            };
            for a in attrs {
                match a {
                    Attribute::Class(c) => s.kind = ObjectKind::from_class(c),
                    Attribute::Label(l) => s.label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => s.id = hex::encode(i),
                    _ => {}
                }
            }
            if s.kind == ObjectKind::PrivateKey {
                let flags = self
                    .session
                    .get_attributes(h, &[AttributeType::Sensitive, AttributeType::Extractable])
                    .unwrap_or_default();
                for a in flags {
                    match a {
                        Attribute::Sensitive(v) => s.sensitive = Some(v),
                        Attribute::Extractable(v) => s.extractable = Some(v),
                        _ => {}
                    }
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    /// A signer for the private key `id` (EC P-256, ECDSA with SHA-256).
    pub fn signer(&self, id: &KeyId) -> Result<TokenSigner<'_>> {
        let key = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        let kt = self
            .session
            .get_attributes(key, &[AttributeType::KeyType])
            .map_err(self.err("C_GetAttributeValue(CKA_KEY_TYPE)"))?;
        if !kt
            .iter()
            .any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::EC))
        {
            return Err(self.bad_key("signing key is not an EC key"));
        }
        let point = self.public_point(id)?;
        Ok(TokenSigner::new(
            &self.session,
            key,
            point,
            self.info.label.clone(),
        ))
    }

    /// Changes the user PIN.
    pub fn change_pin(&self, old: &Pin, new: &Pin) -> Result<()> {
        self.session
            .set_pin(&old.auth(), &new.auth())
            .map_err(self.err("C_SetPIN"))
    }

    /// Sets a new user PIN (needs a session logged in as SO): unblocks a locked PIN.
    pub fn init_user_pin(&self, new: &Pin) -> Result<()> {
        self.session
            .init_pin(&new.auth())
            .map_err(self.err("C_InitPIN"))
    }
}
