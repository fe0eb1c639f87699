//! Mainland China mobile numbers.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{IdError, show};

const RULE: &str = "mainland mobile number: 11 digits, 1 then 3-9 (^1[3-9]\\d{9}$)";

/// A mainland mobile number, 11 digits starting `13`-`19`, without country code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mobile(String);

impl Mobile {
    /// The 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Mobile {
    type Err = IdError;

    /// Parses a number; surrounding spaces are trimmed and a `+86` prefix (optionally followed
    /// by a space or `-`) is stripped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = s.trim();
        if let Some(rest) = m.strip_prefix("+86") {
            m = rest.strip_prefix([' ', '-']).unwrap_or(rest);
        }
        if let Some((i, c)) = m.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(IdError::new(
                RULE,
                format!("character {} at position {} is not a digit", show(c), i + 1),
            ));
        }
        if m.len() != 11 {
            return Err(IdError::new(
                RULE,
                format!("has {} digits; a mobile number has 11", m.len()),
            ));
        }
        let b = m.as_bytes();
        if b.first() != Some(&b'1') || !matches!(b.get(1), Some(b'3'..=b'9')) {
            return Err(IdError::new(RULE, format!("{m} does not start with 13-19")));
        }
        Ok(Mobile(m.to_owned()))
    }
}

string_newtype!(Mobile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        for s in [
            "13945101234",
            " 13945101234 ",
            "+8613945101234",
            "+86 13945101234",
            "+86-19945101234",
        ] {
            let m: Mobile = s.parse().unwrap();
            assert_eq!(m.as_str().len(), 11, "{s}");
        }
        assert_eq!(
            "+86 13945101234".parse::<Mobile>().unwrap().to_string(),
            "13945101234"
        );
    }

    #[test]
    fn rejects() {
        for s in [
            "12945101234",
            "1394510123",
            "139451012345",
            "1394510123a",
            "",
            "23945101234",
            "139 4510 1234",
        ] {
            let e = s.parse::<Mobile>().unwrap_err();
            assert_eq!(e.rule, RULE, "{s}");
        }
    }
}
