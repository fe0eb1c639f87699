//! PINs as secrets, and the PIN state a token reports.

use cryptoki::slot::TokenInfo as CkTokenInfo;
use cryptoki::types::AuthPin;
use serde::Serialize;
use zeroize::Zeroizing;

/// A PIN. Held in zeroizing memory, never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN read from the environment, a file or a prompt.
    pub fn new(pin: impl Into<String>) -> Pin {
        Pin(Zeroizing::new(pin.into()))
    }

    /// The number of characters, for length checks.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The PIN text, for passing to a KDF or a PKCS#11 call; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn auth(&self) -> AuthPin {
        AuthPin::from(self.0.as_str().to_owned())
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The user-PIN counters a token reports (`CKF_USER_PIN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PinState {
    /// An incorrect PIN has been entered at least once since the last success.
    pub count_low: bool,
    /// The next wrong PIN locks it.
    pub final_try: bool,
    /// The PIN is locked.
    pub locked: bool,
    /// The user PIN has been set at all.
    pub initialized: bool,
}

impl PinState {
    pub(crate) fn user(info: &CkTokenInfo) -> PinState {
        PinState {
            count_low: info.user_pin_count_low(),
            final_try: info.user_pin_final_try(),
            locked: info.user_pin_locked(),
            initialized: info.user_pin_initialized(),
        }
    }

    pub(crate) fn so(info: &CkTokenInfo) -> PinState {
        PinState {
            count_low: info.so_pin_count_low(),
            final_try: info.so_pin_final_try(),
            locked: info.so_pin_locked(),
            initialized: info.token_initialized(),
        }
    }

    /// A short word for tables: `ok`, `count low`, `final try`, `locked`, `not set`.
    pub fn summary(&self) -> &'static str {
        // A blank token's counters mean nothing (SoftHSM even reports its SO PIN as locked).
        if !self.initialized {
            "not set"
        } else if self.locked {
            "locked"
        } else if self.final_try {
            "final try"
        } else if self.count_low {
            "count low"
        } else {
            "ok"
        }
    }
}

impl std::fmt::Display for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.summary() {
            "locked" => f.write_str("PIN locked"),
            "final try" => f.write_str("one try left before the PIN locks"),
            "count low" => f.write_str("PIN retry count low: a wrong PIN was entered before"),
            "not set" => f.write_str("PIN not initialised"),
            _ => f.write_str("PIN counters normal"),
        }
    }
}
