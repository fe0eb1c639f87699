//! The registration authority of the Heilongjiang CA: the counter and online workflow
//! (applications, materials, orders and payments, the SMS outbox, portal accounts) and batch
//! files. It reaches the CA only through `hljca-core`'s public API: each part is an extension
//! trait on [`hljca_core::Ca`] (bring them into scope with `use hljca_ra::prelude::*`).

pub mod applications;
pub mod batch;
pub mod sites;

/// Every workflow trait, for `use hljca_ra::prelude::*`.
pub mod prelude {
    pub use crate::applications::{Counter, Fulfil, Notify, Online};
    pub use crate::batch::{Batch, BatchPlanning};
}
