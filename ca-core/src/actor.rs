//! Who acts: a value every handle of the CA carries, never a field set and restored.
//!
//! A [`Ca`](crate::Ca) handle acts as one [`Actor`]: the logged-in operator (its roles from
//! the operator USBKEY's record), or — for one call of `hljca serve` — an API client acting for
//! an operator, an applicant's portal account, the payment gateway. [`Ca::act_for`](crate::Ca::act_for) makes a
//! *new* handle on the same CA for that actor and gives it to the call; the server's own handle
//! is never changed, so whatever the call does (return, fail, panic) the next call starts from
//! the server's own identity. Audit rows and row bindings name the handle's actor; every row is
//! still signed by the logged-in operator's key (the process's).

use crate::operators::Role;

/// Who acts, and the roles they may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    roles: Option<Vec<Role>>,
    delegated: bool,
}

impl Actor {
    /// A command's actor before any operator logs in (reads only; a write needs a login).
    pub fn anonymous(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            roles: None,
            delegated: false,
        }
    }

    /// The logged-in operator `name` with `roles`.
    pub fn operator(name: impl Into<String>, roles: Vec<Role>) -> Actor {
        Actor {
            name: name.into(),
            roles: Some(roles),
            delegated: false,
        }
    }

    /// Someone the logged-in operator's process acts for (an API client, an applicant, the
    /// payment gateway), with only `roles`.
    pub fn delegated(name: impl Into<String>, roles: &[Role]) -> Actor {
        Actor {
            name: name.into(),
            roles: Some(roles.to_vec()),
            delegated: true,
        }
    }

    /// How audit rows name them.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Their roles; `None` when no operator is logged in.
    pub fn roles(&self) -> Option<&[Role]> {
        self.roles.as_deref()
    }

    /// True for an actor the process acts for (not its own operator).
    pub fn is_delegated(&self) -> bool {
        self.delegated
    }
}
