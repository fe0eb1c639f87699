//! Errors produced while building, parsing and verifying electronic seals.

/// Everything that can go wrong with a seal: its image, its encoding, its signature.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A field could not be DER-encoded (for example a non-IA5 `esID`, or a
    /// date outside the 1950-2049 range that `UTCTime` can express).
    #[error("seal: cannot encode {what}: {source}")]
    Encode {
        /// The field (or structure) that failed to encode.
        what: &'static str,
        /// The underlying `der` error.
        #[source]
        source: der::Error,
    },
    /// The bytes are not a well-formed GM/T 0031-2014 `SESeal` in strict DER.
    #[error("seal: cannot decode: {reason}")]
    Decode {
        /// What was wrong with the input.
        reason: String,
    },
    /// The seal picture was rejected.
    #[error("{reason}")]
    Image {
        /// What was wrong with the image; starts with "seal image:".
        reason: String,
    },
    /// A seal picture could not be generated: no usable CJK font, a name the
    /// font cannot set, an unknown `[seal] picture` choice, an encoding failure.
    #[error("seal picture: {reason}")]
    Picture {
        /// What went wrong, naming the font file or setting involved.
        reason: String,
    },
    /// The content handed to the builder is unacceptable (empty name, bad type,
    /// validity window that ends before it starts, ...).
    #[error("seal: invalid content: {reason}")]
    Content {
        /// Which field is wrong and why.
        reason: String,
    },
    /// The signing key is unsuitable or failed to sign.
    #[error("seal: signer: {reason}")]
    Signer {
        /// What went wrong with the signer.
        reason: String,
    },
    /// The seal maker's signature does not verify.
    #[error("seal: signature invalid: {reason}")]
    SignatureInvalid {
        /// Why verification failed.
        reason: String,
    },
    /// The maker certificate embedded in the seal is not the trusted one.
    #[error("seal: maker certificate in the seal is not the trusted seal-maker certificate")]
    MakerMismatch,
    /// The seal uses a signature algorithm this implementation does not support.
    #[error("seal: unsupported signature algorithm {oid}")]
    UnsupportedAlgorithm {
        /// Dotted OID found in the seal.
        oid: String,
    },
}

impl SealError {
    /// Shorthand for a [`SealError::Decode`].
    pub(crate) fn decode(reason: impl Into<String>) -> Self {
        Self::Decode {
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`SealError::Image`]; prefixes "seal image: ".
    pub(crate) fn image(reason: impl std::fmt::Display) -> Self {
        Self::Image {
            reason: format!("seal image: {reason}"),
        }
    }

    /// Shorthand for a [`SealError::Picture`].
    pub(crate) fn picture(reason: impl Into<String>) -> Self {
        Self::Picture {
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`SealError::Content`].
    pub(crate) fn content(reason: impl Into<String>) -> Self {
        Self::Content {
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`SealError::Signer`].
    pub(crate) fn signer(reason: impl Into<String>) -> Self {
        Self::Signer {
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`SealError::SignatureInvalid`].
    pub(crate) fn bad_signature(reason: impl Into<String>) -> Self {
        Self::SignatureInvalid {
            reason: reason.into(),
        }
    }
}
