//! Identifiers the application forms carry, as checked newtypes, and the plain-name check.

/// The conversions every checked identifier newtype shares: parse from a `String` (serde's
/// `try_from`), give back its `String` (serde's `into`), and display as its text.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

mod mobile;
mod org_id;
mod regno;
mod resident;
mod uscc;

use std::fmt;

pub use mobile::Mobile;
pub use org_id::OrgId;
pub use regno::RegistrationNumber;
pub use resident::ResidentId;
pub use uscc::Uscc;

/// Why an identifier was rejected: what is wrong, and the rule (standard and clause) it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    /// What is wrong, e.g. `check character is '3' but should be 'Y'`.
    pub problem: String,
    /// The rule broken, e.g. `GB 32100-2015 mod-31 check character`.
    pub rule: &'static str,
}

impl IdError {
    pub(crate) fn new(rule: &'static str, problem: impl Into<String>) -> IdError {
        IdError {
            problem: problem.into(),
            rule,
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [rule: {}]", self.problem, self.rule)
    }
}

impl std::error::Error for IdError {}

/// Checks a name or free-text value: not empty after trimming, at most `max_chars` characters
/// (after trimming), and no control characters. The error names `field` and says what is wrong.
///
/// The limits used by [`Policy::validate`](crate::Policy::validate) are: organisation 100,
/// person 30, city 30, free text 200.
pub fn check_name(field: &str, value: &str, max_chars: usize) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    let n = v.chars().count();
    if n > max_chars {
        return Err(format!(
            "`{field}` has {n} characters; at most {max_chars} are allowed"
        ));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!(
            "`{field}` contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    Ok(())
}

/// The values of the characters of `s`, which must all be decimal digits; the error names the
/// first character that is not, and its position, under `rule`.
pub(crate) fn digit_values(s: &str, rule: &'static str) -> Result<Vec<u32>, IdError> {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            c.to_digit(10).ok_or_else(|| {
                IdError::new(
                    rule,
                    format!("character {} at position {} is not a digit", show(c), i + 1),
                )
            })
        })
        .collect()
}

/// Describes a character for messages: `'A'`, or `U+0009` for invisible ones.
pub(crate) fn show(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("'{c}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("organization", "  哈尔滨龙江建设工程有限公司 ", 100).is_ok());
        assert_eq!(
            check_name("organization", "   ", 100).unwrap_err(),
            "`organization` is empty"
        );
        let long = "张".repeat(31);
        assert!(
            check_name("agent_name", &long, 30)
                .unwrap_err()
                .contains("31 characters")
        );
        assert!(check_name("agent_name", &"张".repeat(30), 30).is_ok());
        assert!(
            check_name("city", "哈尔滨\t市", 30)
                .unwrap_err()
                .contains("U+0009")
        );
    }
}
