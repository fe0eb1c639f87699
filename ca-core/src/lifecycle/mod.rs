//! Renewal before expiry, and cross-platform binding (跨平台CA绑定) of certificates from the
//! former Daqing platform.

mod bind;
mod former;
mod renew;

pub use bind::{BIND_MATERIALS, BindMaterial, BindSource, Binding};
pub use renew::{Payment, RenewReport};
