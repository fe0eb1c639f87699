//! An organisation identifier: a USCC, or the old registration number as a fallback.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{IdError, RegistrationNumber, Uscc};

const RULE_LEN: &str =
    "organisation identifier: 18-character USCC (GB 32100-2015) or 15-digit registration number";

/// An organisation identifier as the forms carry it: the USCC, or — for units that have none —
/// the 15-digit business-licence registration number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OrgId {
    /// A Unified Social Credit Code.
    Uscc(Uscc),
    /// A 15-digit business-licence registration number.
    RegistrationNumber(RegistrationNumber),
}

impl OrgId {
    /// The identifier as a string (USCC upper case).
    pub fn as_str(&self) -> &str {
        match self {
            OrgId::Uscc(u) => u.as_str(),
            OrgId::RegistrationNumber(r) => r.as_str(),
        }
    }

    /// The USCC, if this is one.
    pub fn uscc(&self) -> Option<&Uscc> {
        match self {
            OrgId::Uscc(u) => Some(u),
            OrgId::RegistrationNumber(_) => None,
        }
    }
}

impl FromStr for OrgId {
    type Err = IdError;

    /// 18 characters parse as a [`Uscc`], 15 as a [`RegistrationNumber`]; other lengths fail.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().chars().count() {
            18 => s.parse().map(OrgId::Uscc),
            15 => s.parse().map(OrgId::RegistrationNumber),
            n => Err(IdError::new(
                RULE_LEN,
                format!(
                    "has {n} characters; expected an 18-character USCC or a 15-digit registration number"
                ),
            )),
        }
    }
}

impl TryFrom<String> for OrgId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<OrgId> for String {
    fn from(o: OrgId) -> String {
        match o {
            OrgId::Uscc(u) => u.into(),
            OrgId::RegistrationNumber(r) => r.into(),
        }
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_length() {
        let u: OrgId = "91350100M000100Y43".parse().unwrap();
        assert!(matches!(u, OrgId::Uscc(_)));
        assert_eq!(u.as_str(), "91350100M000100Y43");
        assert!(u.uscc().is_some());
        let r: OrgId = "110108000000016".parse().unwrap();
        assert!(matches!(r, OrgId::RegistrationNumber(_)));
        assert!(r.uscc().is_none());
        let e = "1234567890".parse::<OrgId>().unwrap_err();
        assert_eq!(e.rule, RULE_LEN);
        assert!(e.problem.contains("10 characters"), "{e}");
        assert!("91350100M000100Y4X".parse::<OrgId>().is_err());
        let e = "91350100m000100y43".parse::<OrgId>().unwrap_err();
        assert!(e.problem.contains("lower case"), "{e}");
    }
}
