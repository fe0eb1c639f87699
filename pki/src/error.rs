//! The error type of the pure PKI layer (the electronic seal keeps its own, [`crate::seal::SealError`]).

use std::path::PathBuf;

/// What can go wrong encoding or writing a PKI structure.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
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
    /// DER encoding failed.
    #[error("encoding {what}: {reason}")]
    Encoding {
        /// Which structure.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A value could not be read.
    #[error("parsing {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why.
        reason: String,
    },
    /// A spool file changed while it was read back.
    #[error("{what} {path} changed while it was read ({seen} of {expected} bytes)")]
    Changed {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Bytes read.
        seen: u64,
        /// Bytes expected.
        expected: u64,
    },
}

impl PkiError {
    /// Maps an I/O error of `action` on `path`.
    pub fn io<'p>(
        action: &'static str,
        path: &'p std::path::Path,
    ) -> impl Fn(std::io::Error) -> PkiError + 'p {
        move |source| PkiError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Maps a DER encoding error of `what`.
    pub fn der(what: &'static str) -> impl Fn(der::Error) -> PkiError {
        move |e| PkiError::Encoding {
            what,
            reason: e.to_string(),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;
