//! The seven certificate types the Heilongjiang CA issues (SPEC.md section 2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// A certificate type. Its key (`enterprise`, `legal-person`, …) names its policy file and is its
/// serde and display form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertType {
    /// 企业机构数字证书: enterprise certificate, with an organisation seal.
    Enterprise,
    /// 法人数字证书: legal representative's certificate, with a personal seal.
    LegalPerson,
    /// 医疗机构数字证书: medical institution certificate, no seal.
    Medical,
    /// 专家数字证书: bid-evaluation expert's certificate, with a personal seal.
    Expert,
    /// 采购单位数字证书: procuring (public) unit certificate, with an organisation seal.
    Procurement,
    /// 企业证书（副锁）: the enterprise certificate's secondary lock, no seal.
    EnterpriseSecondary,
    /// 法人授权代表数字证书: authorised representative's certificate, with a personal seal.
    AuthorizedRep,
}

impl CertType {
    /// All seven types, in the order of the fee table (and of [`PolicySet::iter`](crate::PolicySet::iter)).
    pub const ALL: [CertType; 7] = [
        CertType::Enterprise,
        CertType::LegalPerson,
        CertType::Medical,
        CertType::Expert,
        CertType::Procurement,
        CertType::EnterpriseSecondary,
        CertType::AuthorizedRep,
    ];

    /// The type's key, e.g. `"legal-person"`.
    pub fn key(self) -> &'static str {
        match self {
            CertType::Enterprise => "enterprise",
            CertType::LegalPerson => "legal-person",
            CertType::Medical => "medical",
            CertType::Expert => "expert",
            CertType::Procurement => "procurement",
            CertType::EnterpriseSecondary => "enterprise-secondary",
            CertType::AuthorizedRep => "authorized-rep",
        }
    }

    /// Position in [`CertType::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The keys of all types, comma-separated, for error messages.
    pub(crate) fn known_keys() -> String {
        CertType::ALL.map(CertType::key).join(", ")
    }
}

impl fmt::Display for CertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for CertType {
    type Err = PolicyError;

    /// Parses a type key. Surrounding spaces, upper case and `_` for `-` are tolerated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        CertType::ALL
            .into_iter()
            .find(|t| t.key() == wanted)
            .ok_or_else(|| PolicyError::UnknownType {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for (i, t) in CertType::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.key().parse::<CertType>().unwrap(), t);
            assert_eq!(t.to_string(), t.key());
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.key()));
            assert_eq!(serde_json::from_str::<CertType>(&json).unwrap(), t);
        }
        assert_eq!(
            " Legal_Person ".parse::<CertType>().unwrap(),
            CertType::LegalPerson
        );
    }

    #[test]
    fn unknown_type_lists_known_ones() {
        let err = "bank".parse::<CertType>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`bank`"), "{msg}");
        for t in CertType::ALL {
            assert!(msg.contains(t.key()), "{msg}");
        }
    }
}
