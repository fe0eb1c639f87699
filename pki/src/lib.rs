//! The pure PKI layer of the Heilongjiang CA: what is X.509 and ASN.1 and nothing else — no
//! database, no token, no home. It owns the GM/T 0031 electronic seal (its ASN.1, picture and
//! verification), the one validity computation, revocation reasons and the streamed CRL
//! encoder. The layers above (`hljca-store`, `hljca-core`) give it keys as signing closures.

pub mod crl_stream;
pub mod csr;
mod error;
mod reason;
pub mod seal;
pub mod validity;

pub use error::{PkiError, Result};
pub use reason::Reason;
