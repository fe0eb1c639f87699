//! The one error type of the store. Its variants keep the names of the CA's own (`CoreError`
//! in `hljca-core` converts each to its namesake), so a refusal reads and exits the same
//! whichever layer noticed it.

use std::path::PathBuf;

/// Everything that can go wrong in the store, with the object it concerns.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    /// A write was attempted without an operator logged in.
    #[error(
        "this changes the CA's records: log in with your operator USBKEY (HLJCA_OPERATOR_TOKEN = its label \
         or serial, HLJCA_OPERATOR_PIN or --operator-pin-file) [rule: every change is made by a named, \
         authenticated operator]"
    )]
    NotLoggedIn,
    /// An issuance is being worked on by another process (its lease is held).
    #[error("{0}")]
    InProgress(String),
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
    /// The database failed.
    #[error("database {op}: {source}")]
    Db {
        /// The operation.
        op: &'static str,
        /// Underlying error.
        source: crate::db::DbError,
    },
    /// The database cannot be reached (down, wrong address or credentials).
    #[error("database {database} cannot be reached: {reason}")]
    Unreachable {
        /// The database (its URL without the password, or its file).
        database: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// A signature (an audit anchor) could not be made.
    #[error("building the {what}: {source}")]
    Certificate {
        /// Which signature.
        what: String,
        /// Underlying error.
        source: rcgen::Error,
    },
    /// A stored certificate or value could not be parsed.
    #[error("parsing {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: String,
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
    /// A rule refused the request (bad input, an unknown object, a business rule, a state).
    #[error("{0}")]
    Refused(hljca_rules::Refusal),
    /// The audit log's hash chain is broken.
    #[error("audit log broken at row {seq}: {reason}")]
    AuditBroken {
        /// The first bad row.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// An error of the layer above, raised inside a store transaction (an audit signer, a
    /// step run in the transaction) and carried through unchanged.
    #[error(transparent)]
    Caller(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Maps a database error of operation `op`.
    pub fn db(op: &'static str) -> impl Fn(crate::db::DbError) -> StoreError {
        move |source| StoreError::Db { op, source }
    }

    /// Maps an I/O error of `action` on `path`.
    pub fn io<'p>(
        action: &'static str,
        path: &'p std::path::Path,
    ) -> impl Fn(std::io::Error) -> StoreError + 'p {
        move |source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A refusal of `rule`.
    pub fn refuse(rule: hljca_rules::Rule, message: impl Into<String>) -> StoreError {
        StoreError::Refused(hljca_rules::Refusal::new(rule, message))
    }

    /// A refusal of `rule` naming `field`.
    pub fn refuse_on(
        rule: hljca_rules::Rule,
        field: &'static str,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError::Refused(hljca_rules::Refusal::new(rule, message).on(field))
    }

    /// Maps a signing error of `what`.
    pub fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Certificate { what, source }
    }
}

impl From<hljca_rules::Refusal> for StoreError {
    fn from(r: hljca_rules::Refusal) -> StoreError {
        StoreError::Refused(r)
    }
}

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<crate::db::DbError> for StoreError {
    fn from(source: crate::db::DbError) -> StoreError {
        StoreError::Db {
            op: "query",
            source,
        }
    }
}
