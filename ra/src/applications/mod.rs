//! The counter and online workflow (issue 5, SPEC.md sections 3-5): applications move through
//! `draft → submitted → approved | rejected → paid → issued → delivered` by the one state table
//! ([`hljca_core::applications::transition`]); each step checks, changes, records its event,
//! queues its SMS and appends its audit row in one transaction of the CA's store.

mod fulfil;
mod notify;
mod online;
mod ops;

pub use hljca_core::applications::*;

pub use fulfil::{Fulfil, delivery_summary};
pub use notify::{Notify, OutboxEntry, RemindOutcome, Reminder};
pub use online::{
    AccountKind, GatewayPaid, LOCK_MINUTES, LoginCheck, MAX_LOGIN_FAILURES, NewAccount, Online,
    OnlineDelivery,
};
pub use ops::{AppIssueOutcome, Counter, NewApplication};

pub(crate) use fulfil::FulfilSteps;
pub(crate) use ops::CounterSteps;
