//! A logged-in session on one token: key generation, objects, and the PIN.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;

use crate::Result;
use crate::error::TokenError;
use crate::key::{KeyKind, P256_PARAMS, RSA_MODULUS_BITS, RSA_PUBLIC_EXPONENT, TokenPublicKey};
use crate::login::Logins;
use crate::module::TokenInfo;
use crate::objects::{KeyId, ObjectKind, ObjectSummary};
use crate::pin::Pin;
use crate::signer::TokenSigner;

/// Application name stored on data objects written by hljca.
pub const DATA_APPLICATION: &str = "hljca e-seal (GM/T 0031-2014)";

/// A key pair just generated on the token.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The `CKA_ID` of both halves.
    pub id: KeyId,
    /// The public half.
    pub public: TokenPublicKey,
    /// For an EC P-256 key, the uncompressed EC point (65 bytes, `04 || x || y`); empty for an
    /// RSA key. Kept for callers of [`TokenSession::generate_p256`]; prefer
    /// [`GeneratedKey::public`].
    pub public_point: Vec<u8>,
}

/// A read-write session, logged in as the token's user (or SO). Closes when dropped, and logs
/// the token out when it is the last live session of its module relying on that login.
pub struct TokenSession {
    session: Session,
    info: TokenInfo,
    logins: Logins,
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("label", &self.info.label)
            .field("serial", &self.info.serial)
            .finish()
    }
}

impl Drop for TokenSession {
    fn drop(&mut self) {
        // Held across C_Logout so that no login on this token can start in between.
        let mut logins = self.logins.lock();
        let last = match logins.get_mut(&self.info.slot_id) {
            Some(held) => {
                held.sessions = held.sessions.saturating_sub(1);
                held.sessions == 0
            }
            None => {
                tracing::warn!(token = %self.info.label, "session dropped without a recorded login");
                false
            }
        };
        if last {
            logins.remove(&self.info.slot_id);
            if let Err(e) = self.session.logout() {
                tracing::debug!(token = %self.info.label, error = %e, "logout on drop");
            }
        }
    }
}

impl TokenSession {
    pub(crate) fn new(session: Session, info: TokenInfo, logins: Logins) -> Self {
        TokenSession {
            session,
            info,
            logins,
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
        self.generate_with_id(KeyKind::EcP256, label, &KeyId::random())
    }

    /// As [`Self::generate_p256`] with a `CKA_ID` chosen by the caller, who can record it
    /// (e.g. in a pending database row) before the key exists, so a crash never leaves a key
    /// nobody knows about.
    pub fn generate_p256_with_id(&self, label: &str, id: &KeyId) -> Result<GeneratedKey> {
        self.generate_with_id(KeyKind::EcP256, label, id)
    }

    /// Generates a key pair of `kind` on the token, both halves token objects with `CKA_ID`
    /// `id` and `CKA_LABEL` `label`; the private half sensitive, never extractable, for signing
    /// only. EC P-256 uses `CKM_EC_KEY_PAIR_GEN` on prime256v1; RSA-2048 uses
    /// `CKM_RSA_PKCS_KEY_PAIR_GEN` with a 2048-bit modulus and public exponent 65537.
    ///
    /// The caller chooses the id so it can record it (e.g. in a pending database row) before
    /// the key exists, and a crash never leaves a key nobody knows about.
    pub fn generate_with_id(&self, kind: KeyKind, label: &str, id: &KeyId) -> Result<GeneratedKey> {
        let id = id.clone();
        let label = label.as_bytes().to_vec();
        let (mechanism, mut public, mut private) = match kind {
            KeyKind::EcP256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P256_PARAMS.to_vec())],
                vec![],
            ),
            KeyKind::Rsa2048 => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits((RSA_MODULUS_BITS as u64).into()),
                    Attribute::PublicExponent(RSA_PUBLIC_EXPONENT.to_vec()),
                    // A signing key: no encryption or key wrapping with the public half, no
                    // decryption or unwrapping with the private one.
                    Attribute::Encrypt(false),
                    Attribute::Wrap(false),
                ],
                vec![Attribute::Decrypt(false), Attribute::Unwrap(false)],
            ),
        };
        public.extend([
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label.clone()),
        ]);
        private.extend([
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label),
        ]);
        let (pub_h, _priv_h) = self
            .session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(self.err("C_GenerateKeyPair"))?;
        let read = self.read_public(pub_h).and_then(|k| {
            if k.kind() == kind {
                Ok(k)
            } else {
                Err(self.bad_key(&format!("asked for {kind}, the token made {}", k.kind())))
            }
        });
        let public = match read {
            Ok(k) => k,
            Err(e) => {
                // Leave no orphan half-made key behind.
                let _ = self.destroy_by_id(&id);
                return Err(e);
            }
        };
        Ok(GeneratedKey {
            id,
            public_point: public.ec_point().map(<[u8]>::to_vec).unwrap_or_default(),
            public,
        })
    }

    /// The public key with this id, EC P-256 or RSA-2048.
    pub fn public_key(&self, id: &KeyId) -> Result<TokenPublicKey> {
        let h = self.find_one(ObjectClass::PUBLIC_KEY, id, "public key")?;
        self.read_public(h)
    }

    /// The uncompressed EC point of the (EC P-256) public key with this id.
    pub fn public_point(&self, id: &KeyId) -> Result<Vec<u8>> {
        match self.public_key(id)? {
            TokenPublicKey::EcP256 { point } => Ok(point),
            other => Err(self.bad_key(&format!("key {id} is {}, not EC", other.kind()))),
        }
    }

    fn key_type(&self, h: ObjectHandle) -> Result<KeyType> {
        self.session
            .get_attributes(h, &[AttributeType::KeyType])
            .map_err(self.err("C_GetAttributeValue(CKA_KEY_TYPE)"))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::KeyType(k) => Some(k),
                _ => None,
            })
            .ok_or_else(|| self.bad_key("no CKA_KEY_TYPE"))
    }

    fn read_public(&self, h: ObjectHandle) -> Result<TokenPublicKey> {
        let kt = self.key_type(h)?;
        if kt == KeyType::EC {
            TokenPublicKey::ec_p256(self.read_point(h)?).map_err(|r| self.bad_key(r))
        } else if kt == KeyType::RSA {
            let attrs = self
                .session
                .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])
                .map_err(self.err("C_GetAttributeValue(CKA_MODULUS, CKA_PUBLIC_EXPONENT)"))?;
            let (mut modulus, mut exponent) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => modulus = Some(m),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
                return Err(self.bad_key("no CKA_MODULUS or CKA_PUBLIC_EXPONENT"));
            };
            TokenPublicKey::rsa_2048(&modulus, &exponent).map_err(|r| self.bad_key(&r))
        } else {
            Err(self.bad_key(&format!("unsupported key type {kt}")))
        }
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

    /// A signer for the private key `id`: ECDSA with SHA-256 for EC P-256 keys, PKCS#1 v1.5
    /// with SHA-256 (`CKM_SHA256_RSA_PKCS`) for RSA-2048 keys.
    pub fn signer(&self, id: &KeyId) -> Result<TokenSigner<'_>> {
        let key = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        let kt = self.key_type(key)?;
        let kind = if kt == KeyType::EC {
            KeyKind::EcP256
        } else if kt == KeyType::RSA {
            KeyKind::Rsa2048
        } else {
            return Err(self.bad_key(&format!("signing key type {kt} is neither EC nor RSA")));
        };
        let public = self.public_key(id)?;
        if public.kind() != kind {
            return Err(self.bad_key(&format!(
                "private key {id} is {kind} but its public key is {}",
                public.kind()
            )));
        }
        Ok(TokenSigner::new(
            &self.session,
            key,
            public,
            self.info.label.clone(),
        ))
    }

    /// Changes the PIN of whoever is logged in (the user PIN, or the SO PIN in an SO session).
    /// Later logins through the same module then need the new PIN.
    pub fn change_pin(&self, old: &Pin, new: &Pin) -> Result<()> {
        // Held across C_SetPIN so no login compares against a PIN about to change.
        let mut logins = self.logins.lock();
        self.session
            .set_pin(&old.auth(), &new.auth())
            .map_err(self.err("C_SetPIN"))?;
        if let Some(held) = logins.get_mut(&self.info.slot_id) {
            held.pin_digest = self.logins.digest(new);
        }
        Ok(())
    }

    /// Sets a new user PIN (needs a session logged in as SO): unblocks a locked PIN.
    pub fn init_user_pin(&self, new: &Pin) -> Result<()> {
        self.session
            .init_pin(&new.auth())
            .map_err(self.err("C_InitPIN"))
    }
}
