//! hljca-core: the Heilongjiang CA itself.
#![forbid(unsafe_code)]

pub mod seal;
