//! Money, kept exactly as an integer number of fen (分, 1/100 yuan).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in fen. Serialises as a plain integer; displays as yuan, e.g. `360.00 元`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub u64);

impl Fen {
    /// Zero fen.
    pub const ZERO: Fen = Fen(0);

    /// Whole yuan as fen, or `None` on overflow.
    pub fn from_yuan(yuan: u64) -> Option<Fen> {
        yuan.checked_mul(100).map(Fen)
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} 元", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_yuan() {
        assert_eq!(Fen(36000).to_string(), "360.00 元");
        assert_eq!(Fen(5).to_string(), "0.05 元");
        assert_eq!(Fen(12345).to_string(), "123.45 元");
        assert_eq!(Fen::from_yuan(300), Some(Fen(30000)));
        assert_eq!(Fen::from_yuan(u64::MAX), None);
        assert_eq!(Fen(1).checked_add(Fen(2)), Some(Fen(3)));
    }

    #[test]
    fn serde_is_a_plain_integer() {
        assert_eq!(serde_json::to_string(&Fen(20000)).unwrap(), "20000");
        assert_eq!(serde_json::from_str::<Fen>("100").unwrap(), Fen(100));
    }
}
