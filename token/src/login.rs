//! Which tokens this process is logged in to, shared by a [`crate::Module`] and its sessions.
//!
//! PKCS#11 login state belongs to the application, not to a session: once one session is logged
//! in to a token, every session of the process on that token is, and `C_Login` on another
//! session answers `CKR_USER_ALREADY_LOGGED_IN` without looking at the PIN. So the module keeps
//! its own record per slot (who is logged in, how many live sessions rely on it, and a salted
//! SHA-256 digest of the PIN that logged in) to check every later PIN itself and to call
//! `C_Logout` only when the last session goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::PinRole;
use crate::pin::Pin;

/// A salted SHA-256 digest of a PIN (never the PIN itself).
pub(crate) type PinDigest = Zeroizing<[u8; 32]>;

/// The login this process holds on one token.
pub(crate) struct LoginState {
    /// Who is logged in.
    pub(crate) role: PinRole,
    /// How many live [`crate::TokenSession`]s rely on the login.
    pub(crate) sessions: usize,
    /// Digest of the PIN that logged in (updated when a session changes that PIN).
    pub(crate) pin_digest: PinDigest,
}

/// Logins by slot id, with the salt of their PIN digests.
pub(crate) struct LoginTable {
    salt: [u8; 32],
    slots: Mutex<HashMap<u64, LoginState>>,
}

/// The table as the module and its sessions share it.
pub(crate) type Logins = Arc<LoginTable>;

impl LoginTable {
    pub(crate) fn new() -> Logins {
        Arc::new(LoginTable {
            salt: rand::random(),
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Locks the table. A panic while it was held cannot leave a half-written entry (entries
    /// are replaced or counted whole), so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<u64, LoginState>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The salted digest of `pin`.
    pub(crate) fn digest(&self, pin: &Pin) -> PinDigest {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(pin.expose().as_bytes());
        Zeroizing::new(h.finalize().into())
    }
}

/// Compares two digests in constant time (no early exit on the first differing byte).
pub(crate) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_salted_and_compared_whole() {
        let (t1, t2) = (LoginTable::new(), LoginTable::new());
        let pin = Pin::new("12345678");
        assert!(digests_equal(&t1.digest(&pin), &t1.digest(&pin)));
        assert!(!digests_equal(
            &t1.digest(&pin),
            &t1.digest(&Pin::new("12345679"))
        ));
        // Another module's salt gives another digest of the same PIN.
        assert!(!digests_equal(&t1.digest(&pin), &t2.digest(&pin)));
        let mut last = [0u8; 32];
        last[31] = 1;
        assert!(!digests_equal(&[0u8; 32], &last));
    }
}
