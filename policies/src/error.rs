//! The crate's one error type for loading policies and reading applicant data.

use std::path::PathBuf;

use crate::cert_type::CertType;

/// Everything that can go wrong while loading policies or reading raw applicant data.
///
/// Field-level validation problems are not here: they are collected in
/// [`ValidationErrors`](crate::ValidationErrors) so that all of them can be reported at once.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A certificate type key that is not one of the seven.
    #[error(
        "unknown certificate type `{given}` (known types: {})",
        CertType::known_keys()
    )]
    UnknownType {
        /// The key as given.
        given: String,
    },
    /// A policy file that is not valid TOML or does not have the policy's shape.
    #[error("cannot parse policy file `{file}`: {source}")]
    Parse {
        /// The file (or embedded file) name.
        file: String,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// Reading the override directory or one of its files failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A policy file whose `type` differs from its file name.
    #[error("policy file `{file}` declares type `{declared}`, which does not match its name")]
    Mismatch {
        /// The file name.
        file: String,
        /// The `type` the file declares.
        declared: String,
    },
    /// A `.toml` file in the override directory whose name is not a certificate type key.
    #[error(
        "policy file `{file}` is not named after a certificate type (expected <type>.toml, types: {})",
        CertType::known_keys()
    )]
    UnknownFile {
        /// The file name.
        file: String,
    },
    /// A policy that parses but is inconsistent (e.g. its subject names a field it does not have).
    #[error("policy file `{file}` is inconsistent: {reason}")]
    Invalid {
        /// The file name.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Applicant data that is not a flat JSON object of strings.
    #[error("applicant data is not a flat JSON object of strings: {reason}")]
    ApplicantJson {
        /// What is wrong, naming the key where there is one.
        reason: String,
    },
}
