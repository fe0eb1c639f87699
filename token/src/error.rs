//! The one error type of the token crate.

use std::path::PathBuf;

use crate::pin::PinState;

/// Which PIN an operation used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRole {
    /// The token user's PIN (`HLJCA_USER_PIN`, or `HLJCA_CA_PIN` for the CA token).
    User,
    /// The security officer's PIN (`HLJCA_SO_PIN`).
    SecurityOfficer,
}

impl std::fmt::Display for PinRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinRole::User => "user PIN",
            PinRole::SecurityOfficer => "SO PIN",
        })
    }
}

/// Everything that can go wrong talking to a PKCS#11 token.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No PKCS#11 module was given and none was found in the usual places.
    #[error(
        "no PKCS#11 module found (tried {tried:?}); install SoftHSM2 (./softhsm-setup.sh) or set HLJCA_PKCS11_MODULE"
    )]
    ModuleNotFound {
        /// The paths that were tried.
        tried: Vec<PathBuf>,
    },
    /// The module file exists but could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {source}")]
    ModuleLoad {
        /// Module path.
        path: PathBuf,
        /// Underlying error.
        source: cryptoki::error::Error,
    },
    /// The SoftHSM store lock could not be taken (see `pkcs11_quirks`).
    #[error(
        "SoftHSM store lock {path}: {reason}; hljca serialises SoftHSM logins between processes \
         with it (pkcs11_quirks = \"none\" in hljca.toml for a real HSM)"
    )]
    StoreLock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {op} failed on token `{token}`: {source}")]
    Pkcs11 {
        /// The operation.
        op: &'static str,
        /// Token label (or slot) concerned.
        token: String,
        /// Underlying error.
        source: cryptoki::error::Error,
    },
    /// No token matches the label or serial given.
    #[error("no initialised token with label or serial `{selector}` (present: {present})")]
    TokenNotFound {
        /// What the caller asked for.
        selector: String,
        /// Labels/serials of the tokens present, for the message.
        present: String,
    },
    /// More than one token carries the label.
    #[error("label `{selector}` names {count} tokens; select the token by serial instead")]
    Ambiguous {
        /// The label asked for.
        selector: String,
        /// How many tokens carry it.
        count: usize,
    },
    /// No slot has an uninitialised token left.
    #[error(
        "no free slot with an uninitialised token; insert a blank USBKEY (SoftHSM always offers one)"
    )]
    NoFreeSlot,
    /// The label is already used by another token.
    #[error("a token labelled `{label}` already exists (serial {serial})")]
    LabelInUse {
        /// The label.
        label: String,
        /// Serial of the token that has it.
        serial: String,
    },
    /// The label is not usable on a token.
    #[error("token label `{label}` is invalid: {rule}")]
    BadLabel {
        /// The label.
        label: String,
        /// Which rule it breaks.
        rule: &'static str,
    },
    /// A PIN was wrong.
    #[error("wrong {role} for token `{token}` ({state}); check the PIN and try again")]
    PinIncorrect {
        /// Token label.
        token: String,
        /// Which PIN.
        role: PinRole,
        /// The token's PIN counters after the failed attempt.
        state: PinState,
    },
    /// The PIN is locked.
    #[error("the {role} of token `{token}` is locked; unblock it with the SO PIN")]
    PinLocked {
        /// Token label.
        token: String,
        /// Which PIN.
        role: PinRole,
    },
    /// A PIN does not satisfy the token's length rule.
    #[error("{role} for token `{token}` must be {min}..={max} characters")]
    PinLength {
        /// Token label.
        token: String,
        /// Which PIN.
        role: PinRole,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
    },
    /// An expected object is not on the token.
    #[error("token `{token}` has no {what}")]
    ObjectNotFound {
        /// Token label.
        token: String,
        /// Description of the object.
        what: String,
    },
    /// The key on the token is not what was expected.
    #[error("token `{token}` returned an unusable public key: {reason}")]
    BadPublicKey {
        /// Token label.
        token: String,
        /// Why.
        reason: String,
    },
}

impl TokenError {
    pub(crate) fn pkcs11(op: &'static str, token: &str, source: cryptoki::error::Error) -> Self {
        TokenError::Pkcs11 {
            op,
            token: token.to_owned(),
            source,
        }
    }
}
