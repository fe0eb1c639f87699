//! The one error type of the core crate.

use std::path::PathBuf;

use hljca_rules::{Class, Refusal, Rule};

/// Everything that can go wrong in the CA core, with the object it concerns.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The home directory has no CA yet.
    #[error("home {home} is not initialised (no hljca.toml); run `hljca init --home {home}` first")]
    NotInitialized {
        /// Home directory.
        home: PathBuf,
    },
    /// The home already holds a CA.
    #[error("home {home} already holds a CA; use another --home or keep using this one")]
    AlreadyInitialized {
        /// Home directory.
        home: PathBuf,
    },
    /// The database of an initialised home is missing or empty: never started afresh silently.
    #[error(
        "database {path} {reason}: the home {home} holds a CA (hljca.toml, ca/*.pem) whose history is \
         in that file; restore it from a backup (only `hljca init` creates a database)"
    )]
    DatabaseMissing {
        /// The database file.
        path: PathBuf,
        /// The home.
        home: PathBuf,
        /// missing, empty, or without the hljca schema.
        reason: &'static str,
    },
    /// The issuing CA certificate in the home does not belong to the CA key, or a certificate
    /// just signed does not verify against it.
    #[error("issuing CA check failed: {0}; nothing was recorded")]
    IssuerMismatch(String),
    /// A holder's token was named that is the CA's own HSM token.
    #[error(
        "token `{selector}` is the CA's HSM token (label `{label}`, serial {serial}): it holds the CA keys \
         and never a holder's keys or certificates; name the applicant's USBKEY"
    )]
    CaTokenAsHolder {
        /// How it was named.
        selector: String,
        /// Its label.
        label: String,
        /// Its serial.
        serial: String,
    },
    /// A command that changes the CA's records ran without an operator logged in.
    #[error(
        "this changes the CA's records: log in with your operator USBKEY (HLJCA_OPERATOR_TOKEN = its label \
         or serial, HLJCA_OPERATOR_PIN or --operator-pin-file) [rule: every change is made by a named, \
         authenticated operator]"
    )]
    NotLoggedIn,
    /// The logged-in operator lacks the role a step needs.
    #[error("operator {operator} lacks the role `{role}` that {what} needs [rule: roles]")]
    MissingRole {
        /// Who.
        operator: String,
        /// The role needed.
        role: &'static str,
        /// The step.
        what: String,
    },
    /// An issuance is being worked on by another process (its lease is held).
    #[error("{0}")]
    InProgress(String),
    /// An idempotency key was sent again with another request.
    #[error(
        "Idempotency-Key `{key}` was used before with another request [rule: one key, one request; use a new key for a new request]"
    )]
    IdempotencyConflict {
        /// The key.
        key: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The configuration file is invalid.
    #[error("configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The database failed.
    #[error("database {op}: {source}")]
    Db {
        /// The operation.
        op: &'static str,
        /// Underlying error.
        source: hljca_store::db::DbError,
    },
    /// The database cannot be reached (down, wrong address or credentials).
    #[error("database {database} cannot be reached: {reason}")]
    Unreachable {
        /// The database (its URL without the password, or its file).
        database: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// A token operation failed.
    #[error(transparent)]
    Token(#[from] hljca_token::TokenError),
    /// A policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] hljca_policies::PolicyError),
    /// The applicant data breaks the policy.
    #[error("invalid applicant data for {cert_type}:\n{errors}")]
    Applicant {
        /// The certificate type.
        cert_type: hljca_policies::CertType,
        /// Every field error.
        errors: hljca_policies::ValidationErrors,
    },
    /// A certificate could not be built or signed.
    #[error("building the {what}: {source}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Underlying error.
        source: rcgen::Error,
    },
    /// DER encoding of an extension failed.
    #[error("encoding {what}: {reason}")]
    Encoding {
        /// Which structure.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A certificate in the store or a file could not be parsed.
    #[error("parsing {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why.
        reason: String,
    },
    /// A needed secret is missing.
    #[error("{what} is needed: set {env}{}", .file_flag.map(|f| format!(" (or use {f} FILE)")).unwrap_or_default())]
    MissingSecret {
        /// Which secret.
        what: &'static str,
        /// The environment variable that carries it.
        env: &'static str,
        /// The command-line option that reads it from a file, if there is one.
        file_flag: Option<&'static str>,
    },
    /// The CA key file could not be decrypted or used.
    #[error("CA key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No certificate has this serial.
    #[error("no certificate with serial {serial}")]
    UnknownSerial {
        /// The serial asked for.
        serial: String,
    },
    /// The operation is not allowed in the certificate's current state.
    #[error("certificate {serial} is {status}: {what}")]
    BadState {
        /// The serial.
        serial: String,
        /// Its status.
        status: String,
        /// What was refused and what to do.
        what: String,
    },
    /// An electronic seal failed.
    #[error("electronic seal: {0}")]
    Seal(#[from] hljca_pki::seal::SealError),
    /// A rule refused the request: bad input, an unknown object, a business rule or a state
    /// that does not allow it. Its rule's class decides the exit code and the HTTP status.
    #[error("{0}")]
    Refused(Refusal),
    /// The audit log's hash chain is broken.
    #[error("audit log broken at row {seq}: {reason}")]
    AuditBroken {
        /// The first bad row.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

impl CoreError {
    /// A refusal of `rule`.
    pub fn refuse(rule: Rule, message: impl Into<String>) -> CoreError {
        CoreError::Refused(Refusal::new(rule, message))
    }

    /// A refusal of `rule` naming `field`.
    pub fn refuse_on(rule: Rule, field: &'static str, message: impl Into<String>) -> CoreError {
        CoreError::Refused(Refusal::new(rule, message).on(field))
    }

    /// The refusal, when this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            CoreError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// True when this is a refusal of `rule`.
    pub fn is(&self, rule: Rule) -> bool {
        self.refusal().is_some_and(|r| r.rule == rule)
    }

    /// Maps a database error of operation `op`.
    pub fn db(op: &'static str) -> impl Fn(hljca_store::db::DbError) -> CoreError {
        move |source| CoreError::Db { op, source }
    }

    /// Maps an I/O error of `action` on `path`.
    pub fn io<'p>(
        action: &'static str,
        path: &'p std::path::Path,
    ) -> impl Fn(std::io::Error) -> CoreError + 'p {
        move |source| CoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Maps a DER encoding error of `what` (x509-cert, x509-ocsp).
    pub(crate) fn der(what: &'static str) -> impl Fn(der::Error) -> CoreError {
        move |e| CoreError::Encoding {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CoreError {
        let what = what.into();
        move |source| CoreError::Certificate { what, source }
    }

    /// True when the error comes from bad input rather than a failed operation (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CoreError::Applicant { .. }
                | CoreError::Policy(_)
                | CoreError::UnknownSerial { .. }
                | CoreError::MissingSecret { .. }
                | CoreError::Parse { .. }
                | CoreError::CaTokenAsHolder { .. }
                | CoreError::NotLoggedIn
                | CoreError::MissingRole { .. }
        ) || self
            .refusal()
            .is_some_and(|r| matches!(r.class(), Class::Input | Class::NotFound))
    }
}

impl From<Refusal> for CoreError {
    fn from(r: Refusal) -> CoreError {
        CoreError::Refused(r)
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

impl From<hljca_store::db::DbError> for CoreError {
    fn from(source: hljca_store::db::DbError) -> CoreError {
        CoreError::Db {
            op: "query",
            source,
        }
    }
}

/// The store's errors read as the CA's own: each variant becomes its namesake, and an error of
/// this crate carried through a store transaction comes back as itself.
impl From<hljca_store::StoreError> for CoreError {
    fn from(e: hljca_store::StoreError) -> CoreError {
        use hljca_store::StoreError as S;
        match e {
            S::DatabaseMissing { path, home, reason } => {
                CoreError::DatabaseMissing { path, home, reason }
            }
            S::NotLoggedIn => CoreError::NotLoggedIn,
            S::InProgress(m) => CoreError::InProgress(m),
            S::Io {
                action,
                path,
                source,
            } => CoreError::Io {
                action,
                path,
                source,
            },
            S::Db { op, source } => CoreError::Db { op, source },
            S::Unreachable { database, reason } => CoreError::Unreachable { database, reason },
            S::Certificate { what, source } => CoreError::Certificate { what, source },
            S::Parse { what, reason } => CoreError::Parse { what, reason },
            S::UnknownSerial { serial } => CoreError::UnknownSerial { serial },
            S::BadState {
                serial,
                status,
                what,
            } => CoreError::BadState {
                serial,
                status,
                what,
            },
            S::Refused(r) => CoreError::Refused(r),
            S::AuditBroken { seq, reason } => CoreError::AuditBroken { seq, reason },
            S::Caller(inner) => match inner.downcast::<CoreError>() {
                Ok(core) => *core,
                Err(other) => CoreError::refuse(Rule::Internal, other.to_string()),
            },
            other => CoreError::refuse(Rule::Internal, other.to_string()),
        }
    }
}

impl From<CoreError> for hljca_store::StoreError {
    fn from(e: CoreError) -> hljca_store::StoreError {
        hljca_store::StoreError::Caller(Box::new(e))
    }
}

/// The PKI layer's errors read as the CA's own.
impl From<hljca_pki::PkiError> for CoreError {
    fn from(e: hljca_pki::PkiError) -> CoreError {
        use hljca_pki::PkiError as P;
        match e {
            P::Io {
                action,
                path,
                source,
            } => CoreError::Io {
                action,
                path,
                source,
            },
            P::Encoding { what, reason } => CoreError::Encoding { what, reason },
            P::Parse { what, reason } => CoreError::Parse { what, reason },
            other => CoreError::refuse(Rule::Internal, other.to_string()),
        }
    }
}
