//! The old 15-digit business-licence registration number (工商注册号), the seed's fallback for
//! units without a USCC.
//!
//! Layout (SAIC rule GS 15-2006): 6-digit registration-authority region code, 8-digit sequence,
//! 1 check digit. The check digit follows the ISO/IEC 7064 MOD 11,10 hybrid system, which China
//! adopts as GB/T 17710:
//!
//! ```text
//! p = 10
//! for each of the 15 digits d:      s = (p + d) mod 10; if s == 0 { s = 10 }; p = (2·s) mod 11
//! valid iff the last s == 1
//! ```
//! Equivalently, with `p` after the first 14 digits, the check digit is `(11 − p) mod 10`.
//! Known valid numbers: `110108000000016`, `440301103097413`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{IdError, digit_values};

const RULE_FORMAT: &str = "business-licence registration number: 15 digits (GS 15-2006)";
const RULE_CHECK: &str = "registration number check digit, ISO 7064 MOD 11,10 (GB/T 17710)";

/// A checked 15-digit business-licence registration number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegistrationNumber(String);

impl RegistrationNumber {
    /// The number, 15 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Computes the check digit for the first 14 digits of a number.
    pub fn check_digit(body: &str) -> Result<char, IdError> {
        let digits = digits(body, 14)?;
        let p = digits.iter().fold(10, |p, &d| step(p, d));
        Ok(char::from(b'0' + ((11 - p) % 10) as u8))
    }
}

/// One ISO 7064 MOD 11,10 step: the new product from the previous one and the next digit.
fn step(p: u32, d: u32) -> u32 {
    let s = match (p + d) % 10 {
        0 => 10,
        s => s,
    };
    (2 * s) % 11
}

/// The digits of `s`, which must be exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Result<Vec<u32>, IdError> {
    let n = s.chars().count();
    if n != len {
        return Err(IdError::new(
            RULE_FORMAT,
            format!("has {n} characters; expected {len} digits"),
        ));
    }
    digit_values(s, RULE_FORMAT)
}

impl FromStr for RegistrationNumber {
    type Err = IdError;

    /// Parses a number; surrounding spaces are trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        digits(s, 15)?;
        let (body, last) = s.split_at(14);
        let expected = RegistrationNumber::check_digit(body)?;
        let given = last.chars().next().unwrap_or_default();
        if given != expected {
            return Err(IdError::new(
                RULE_CHECK,
                format!("check digit is '{given}' but should be '{expected}'"),
            ));
        }
        Ok(RegistrationNumber(s.to_owned()))
    }
}

string_newtype!(RegistrationNumber);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid() {
        for s in ["110108000000016", "440301103097413"] {
            assert_eq!(s.parse::<RegistrationNumber>().unwrap().as_str(), s);
        }
        assert_eq!(
            RegistrationNumber::check_digit("11010800000001").unwrap(),
            '6'
        );
    }

    #[test]
    fn algorithm_matches_iso7064_vectors() {
        // Croatian OIBs use the same ISO 7064 MOD 11,10 system (11 digits).
        for oib in ["33392005961", "94577403194"] {
            let d = digits(oib, 11).unwrap();
            let p = d[..10].iter().fold(10, |p, &x| step(p, x));
            assert_eq!((11 - p) % 10, d[10], "{oib}");
        }
    }

    #[test]
    fn errors() {
        let e = "110108000000017".parse::<RegistrationNumber>().unwrap_err();
        assert_eq!(e.rule, RULE_CHECK);
        assert_eq!(e.problem, "check digit is '7' but should be '6'");
        let e = "11010800000001".parse::<RegistrationNumber>().unwrap_err();
        assert_eq!(e.rule, RULE_FORMAT);
        let e = "11010800000001A".parse::<RegistrationNumber>().unwrap_err();
        assert!(e.problem.contains("position 15"), "{e}");
    }
}
