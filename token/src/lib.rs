//! hljca-token: access to PKCS#11 USBKEYs (and the CA's HSM token) over `cryptoki`.
//!
//! This crate owns everything that touches a PKCS#11 module: finding the module, listing slots
//! and tokens with their PIN state, initialising a token, logging in, generating EC P-256 or
//! RSA-2048 key pairs that never leave the token, writing and reading certificate and data objects, and
//! signing with a token key through [`rcgen::SigningKey`] so that the CA core can sign
//! certificates, CRLs and seals without knowing cryptoki types. It knows nothing of SQLite or
//! certificate policy.
#![forbid(unsafe_code)]

mod error;
mod key;
mod login;
mod module;
mod objects;
mod pin;
mod quirks;
mod session;
mod signer;

pub use error::{PinRole, TokenError};
pub use key::{KeyKind, TokenPublicKey};
pub use module::{Module, TokenInfo, TokenSelector, default_module_candidates};
pub use objects::{KeyId, ObjectKind, ObjectSummary};
pub use pin::{Pin, PinState};
pub use quirks::{ModuleOptions, QuirksMode, default_lock_path};
pub use session::{GeneratedKey, TokenSession};
pub use signer::TokenSigner;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TokenError>;
