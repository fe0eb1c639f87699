//! The CA's signing keys: on the CA HSM token (default) or in encrypted PKCS#8 files (development).

use crate::Rule;
use std::path::Path;

use hljca_token::{KeyId, Module, Pin, TokenSelector, TokenSession, TokenSigner};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use zeroize::Zeroizing;

use crate::config::{Config, KeyStore};
use crate::error::{CoreError, Result};
use crate::home::Home;

/// Which CA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyRole {
    /// The self-signed root.
    Root,
    /// The issuing CA: signs end-entity certificates and CRLs, nothing else.
    Issuing,
    /// The seal maker (an end-entity key certified by the issuing CA): signs electronic seals
    /// and audit anchors.
    SealMaker,
    /// The OCSP responder (an end-entity key certified by the issuing CA, id-kp-OCSPSigning):
    /// signs OCSP responses, nothing else.
    OcspSigner,
}

impl CaKeyRole {
    /// File stem / token label part.
    pub fn name(self) -> &'static str {
        match self {
            CaKeyRole::Root => "root",
            CaKeyRole::Issuing => "issuing",
            CaKeyRole::SealMaker => "seal-maker",
            CaKeyRole::OcspSigner => "ocsp-signer",
        }
    }
}

/// Secrets a command may need; each comes from the environment, a file or a prompt (never argv).
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    /// `HLJCA_CA_PIN`: user PIN of the CA HSM token.
    pub ca_pin: Option<Pin>,
    /// `HLJCA_USER_PIN`: user PIN of the holder's USBKEY.
    pub user_pin: Option<Pin>,
    /// `HLJCA_SO_PIN`: security officer PIN.
    pub so_pin: Option<Pin>,
    /// `HLJCA_CA_PASSPHRASE`: passphrase of the CA key files (key_store = file).
    pub ca_passphrase: Option<Pin>,
}

impl Secrets {
    /// The CA PIN or a clear error.
    pub fn ca_pin(&self) -> Result<&Pin> {
        self.ca_pin.as_ref().ok_or(CoreError::MissingSecret {
            what: "the CA HSM token PIN",
            env: "HLJCA_CA_PIN",
            file_flag: Some("--ca-pin-file"),
        })
    }
    /// The user PIN or a clear error.
    pub fn user_pin(&self) -> Result<&Pin> {
        self.user_pin.as_ref().ok_or(CoreError::MissingSecret {
            what: "the USBKEY user PIN",
            env: "HLJCA_USER_PIN",
            file_flag: Some("--user-pin-file"),
        })
    }
    /// The SO PIN or a clear error.
    pub fn so_pin(&self) -> Result<&Pin> {
        self.so_pin.as_ref().ok_or(CoreError::MissingSecret {
            what: "the security officer PIN",
            env: "HLJCA_SO_PIN",
            file_flag: Some("--so-pin-file"),
        })
    }
    /// The CA key passphrase or a clear error.
    pub fn ca_passphrase(&self) -> Result<&Pin> {
        self.ca_passphrase.as_ref().ok_or(CoreError::MissingSecret {
            what: "the CA key file passphrase",
            env: "HLJCA_CA_PASSPHRASE",
            file_flag: None,
        })
    }
}

/// Open access to the CA keys for the length of one command.
#[allow(clippy::large_enum_variant)] // one value per command, never stored in bulk
pub enum CaKeys {
    /// Logged in to the CA HSM token.
    Hsm {
        /// The session.
        session: TokenSession,
        /// Root key id.
        root: KeyId,
        /// Issuing key id.
        issuing: KeyId,
        /// Seal maker key id (absent in homes made before it existed).
        seal_maker: Option<KeyId>,
        /// OCSP signer key id (absent until `hljca serve` first makes it).
        ocsp_signer: Option<KeyId>,
    },
    /// Decrypted key files (development only).
    File {
        /// Root key.
        root: Box<rcgen::KeyPair>,
        /// Issuing key.
        issuing: Box<rcgen::KeyPair>,
        /// Seal maker key.
        seal_maker: Option<Box<rcgen::KeyPair>>,
        /// OCSP signer key.
        ocsp_signer: Option<Box<rcgen::KeyPair>>,
        /// The passphrase, to encrypt a seal maker key made later.
        pass: Pin,
    },
}

impl std::fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKeys::Hsm { session, .. } => write!(f, "CaKeys::Hsm({session:?})"),
            CaKeys::File { .. } => f.write_str("CaKeys::File(<redacted>)"),
        }
    }
}

/// A CA signing key: a token key or an in-memory key from a file.
pub enum CaSigner<'a> {
    /// On the CA HSM token.
    Token(TokenSigner<'a>),
    /// From an encrypted PKCS#8 file.
    File(&'a rcgen::KeyPair),
}

impl rcgen::PublicKeyData for CaSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaSigner::Token(t) => t.der_bytes(),
            CaSigner::File(k) => k.der_bytes(),
        }
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaSigner::Token(t) => t.algorithm(),
            CaSigner::File(k) => k.algorithm(),
        }
    }
}

impl CaSigner<'_> {
    /// Signs a SHA-256 digest computed elsewhere (a streamed CRL): DER ECDSA for the P-256 CA
    /// keys, PKCS#1 v1.5 for an RSA token key.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        match self {
            CaSigner::Token(t) => t
                .sign_digest(digest)
                .map_err(CoreError::cert("signing a digest")),
            CaSigner::File(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                use p256::pkcs8::DecodePrivateKey;
                let key =
                    p256::ecdsa::SigningKey::from_pkcs8_der(&k.serialize_der()).map_err(|e| {
                        CoreError::refuse(
                            Rule::Internal,
                            format!("the CA key file is not a P-256 key: {e}"),
                        )
                    })?;
                let sig: p256::ecdsa::Signature = key.sign_prehash(digest).map_err(|e| {
                    CoreError::refuse(Rule::Internal, format!("signing a digest: {e}"))
                })?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

impl rcgen::SigningKey for CaSigner<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        match self {
            CaSigner::Token(t) => t.sign(msg),
            CaSigner::File(k) => k.sign(msg),
        }
    }
}

impl CaKeys {
    /// Opens the CA keys configured in `config`.
    pub fn open(
        config: &Config,
        home: &Home,
        module: Option<&Module>,
        secrets: &Secrets,
    ) -> Result<CaKeys> {
        match config.ca.key_store {
            KeyStore::Hsm => {
                let module = module.ok_or_else(|| {
                    CoreError::refuse(
                        Rule::Pkcs11Module,
                        "the CA keys are on an HSM token but no PKCS#11 module is open",
                    )
                })?;
                let sel = config
                    .ca
                    .token_serial
                    .clone()
                    .or_else(|| config.ca.token_label.clone())
                    .unwrap_or_default();
                let session = match module.login(&TokenSelector(sel), secrets.ca_pin()?) {
                    Err(hljca_token::TokenError::TokenNotFound { present, .. }) => {
                        return Err(CoreError::refuse(
                            Rule::Pkcs11Module,
                            format!(
                                "the CA token (label {}, serial {}) is not in this HSM (tokens \
                                 present: {present}); SOFTHSM2_CONF or the PKCS#11 module must \
                                 name the HSM that holds the CA keys",
                                config.ca.token_label.as_deref().unwrap_or("?"),
                                config.ca.token_serial.as_deref().unwrap_or("?"),
                            ),
                        ));
                    }
                    other => other?,
                };
                let id = |v: &Option<String>, which: &str| {
                    v.as_deref()
                        .and_then(KeyId::from_hex)
                        .ok_or_else(|| CoreError::Config {
                            path: home.config(),
                            reason: format!("ca.{which}_key_id is missing or not hex"),
                        })
                };
                let seal_maker = match &config.ca.seal_maker_key_id {
                    Some(_) => Some(id(&config.ca.seal_maker_key_id, "seal_maker")?),
                    None => None,
                };
                let ocsp_signer = match &config.ca.ocsp_signer_key_id {
                    Some(_) => Some(id(&config.ca.ocsp_signer_key_id, "ocsp_signer")?),
                    None => None,
                };
                Ok(CaKeys::Hsm {
                    root: id(&config.ca.root_key_id, "root")?,
                    issuing: id(&config.ca.issuing_key_id, "issuing")?,
                    seal_maker,
                    ocsp_signer,
                    session,
                })
            }
            KeyStore::File => {
                let pass = secrets.ca_passphrase()?;
                let maker = home.key_file(CaKeyRole::SealMaker.name());
                let ocsp = home.key_file(CaKeyRole::OcspSigner.name());
                Ok(CaKeys::File {
                    root: Box::new(load_key_file(&home.key_file("root"), pass)?),
                    issuing: Box::new(load_key_file(&home.key_file("issuing"), pass)?),
                    seal_maker: match maker.exists() {
                        true => Some(Box::new(load_key_file(&maker, pass)?)),
                        false => None,
                    },
                    ocsp_signer: match ocsp.exists() {
                        true => Some(Box::new(load_key_file(&ocsp, pass)?)),
                        false => None,
                    },
                    pass: pass.clone(),
                })
            }
        }
    }

    /// The signer for one CA key.
    pub fn signer(&self, role: CaKeyRole) -> Result<CaSigner<'_>> {
        let missing = || {
            CoreError::refuse(
                Rule::WorkingKey,
                "this CA has no seal maker key yet; it is made the first time a seal is needed",
            )
        };
        let no_ocsp = || {
            CoreError::refuse(
                Rule::WorkingKey,
                "this CA has no OCSP signer key yet; `hljca serve` makes it when it starts",
            )
        };
        match self {
            CaKeys::Hsm {
                session,
                root,
                issuing,
                seal_maker,
                ocsp_signer,
            } => {
                let id = match role {
                    CaKeyRole::Root => root,
                    CaKeyRole::Issuing => issuing,
                    CaKeyRole::SealMaker => seal_maker.as_ref().ok_or_else(missing)?,
                    CaKeyRole::OcspSigner => ocsp_signer.as_ref().ok_or_else(no_ocsp)?,
                };
                Ok(CaSigner::Token(session.signer(id)?))
            }
            CaKeys::File {
                root,
                issuing,
                seal_maker,
                ocsp_signer,
                ..
            } => Ok(CaSigner::File(match role {
                CaKeyRole::Root => root,
                CaKeyRole::Issuing => issuing,
                CaKeyRole::SealMaker => seal_maker.as_ref().ok_or_else(missing)?,
                CaKeyRole::OcspSigner => ocsp_signer.as_ref().ok_or_else(no_ocsp)?,
            })),
        }
    }

    /// True when the seal maker key is there.
    pub fn has_seal_maker(&self) -> bool {
        match self {
            CaKeys::Hsm { seal_maker, .. } => seal_maker.is_some(),
            CaKeys::File { seal_maker, .. } => seal_maker.is_some(),
        }
    }

    /// The token the keys are on (key_store = hsm).
    pub fn token(&self) -> Option<&hljca_token::TokenInfo> {
        match self {
            CaKeys::Hsm { session, .. } => Some(session.info()),
            CaKeys::File { .. } => None,
        }
    }

    /// Makes the seal maker key (on the CA token, or as an encrypted file) and returns its
    /// public key bits; `seal_maker_key_id` goes into the configuration for the HSM store.
    pub(crate) fn create_seal_maker(&mut self, home: &Home) -> Result<(Vec<u8>, Option<String>)> {
        match self {
            CaKeys::Hsm {
                session,
                seal_maker,
                ..
            } => {
                let key = session.generate_p256("hljca-seal-maker")?;
                let hex = key.id.to_hex();
                let point = key.public_point.clone();
                *seal_maker = Some(key.id);
                Ok((point, Some(hex)))
            }
            CaKeys::File {
                seal_maker, pass, ..
            } => {
                let (key, enc) = new_encrypted_key(pass)?;
                crate::home::write_new_file(
                    &home.key_file(CaKeyRole::SealMaker.name()),
                    &enc,
                    0o600,
                )?;
                let bits = rcgen::PublicKeyData::der_bytes(&key).to_vec();
                *seal_maker = Some(Box::new(key));
                Ok((bits, None))
            }
        }
    }
}

/// Encrypts a fresh P-256 key as PKCS#8 (PBES2, scrypt + AES-256-CBC) and returns the key and DER.
pub fn new_encrypted_key(pass: &Pin) -> Result<(rcgen::KeyPair, Vec<u8>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(CoreError::cert("CA key"))?;
    let der = Zeroizing::new(key.serialize_der());
    let info = PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| CoreError::Encoding {
        what: "PKCS#8 private key",
        reason: e.to_string(),
    })?;
    let enc = info
        .encrypt(rand_core::OsRng, pass.expose().as_bytes())
        .map_err(|e| CoreError::Encoding {
            what: "encrypted PKCS#8",
            reason: e.to_string(),
        })?;
    Ok((key, enc.as_bytes().to_vec()))
}

fn load_key_file(path: &Path, pass: &Pin) -> Result<rcgen::KeyPair> {
    let bytes = std::fs::read(path).map_err(CoreError::io("reading CA key", path))?;
    let bad = |reason: String| CoreError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let enc = EncryptedPrivateKeyInfo::try_from(bytes.as_slice())
        .map_err(|e| bad(format!("not encrypted PKCS#8: {e}")))?;
    let doc = enc
        .decrypt(pass.expose().as_bytes())
        .map_err(|_| bad("wrong passphrase (HLJCA_CA_PASSPHRASE) or damaged file".into()))?;
    rcgen::KeyPair::try_from(doc.as_bytes()).map_err(|e| bad(e.to_string()))
}
