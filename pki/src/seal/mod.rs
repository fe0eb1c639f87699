//! Electronic seals in the GM/T 0031-2014 `SESeal` layout (the 2-element outer SEQUENCE).
//!
//! ```text
//! SESeal        ::= SEQUENCE { esealInfo SES_SealInfo, signInfo SES_SignInfo }
//! SES_SealInfo  ::= SEQUENCE { header, esID IA5String, property, picture, extDatas OPTIONAL }
//! SES_SignInfo  ::= SEQUENCE { cert OCTET STRING, signatureAlgorithm OID, signData BIT STRING }
//! ```
//!
//! The seal maker (our issuing CA) signs the DER of
//! `SEQUENCE { esealInfo, cert, signatureAlgorithm }`.
//!
//! **Non-standard algorithm choice:** GM/T 0031-2014 assumes SM2-with-SM3
//! (`1.2.156.10197.1.501`). Until SM2 is supported we sign with ECDSA P-256 +
//! SHA-256 (`ecdsa-with-SHA256`, [`ECDSA_SHA256_OID`]); `signData` holds the DER
//! `Ecdsa-Sig-Value SEQUENCE { r, s }`. Seals signed this way are structurally
//! GM/T 0031 seals, but verifiers that only know SM2 will not accept them.
//!
//! The GB/T 38540-2020 layout (4-element outer SEQUENCE, version 4) is not
//! produced and is rejected by [`parse`].

mod asn1;
mod build;
mod dates;
mod error;
mod font;
mod picture;
mod round_png;
mod svg;
mod verify;

#[cfg(test)]
mod tests;

pub use build::{SealContent, build_and_sign};
pub use error::SealError;
pub use font::{DEFAULT_FONT_PATHS, find_font};
pub use picture::{MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MIN_IMAGE_PIXELS, PictureKind, SealPicture};
pub use round_png::{PRINT_DPI, SEAL_RED_RGB};
pub use svg::SEAL_RED;
pub use verify::{ParsedSeal, parse};

/// `SES_Header.version` written by this implementation (GM/T 0031-2014).
pub const SEAL_VERSION: i64 = 2;

/// `SES_Header.id`: always "ES".
pub const SEAL_HEADER_ID: &str = "ES";

/// `ecdsa-with-SHA256`, the (non-standard) seal signature algorithm used here.
pub const ECDSA_SHA256_OID: &str = "1.2.840.10045.4.3.2";
