//! Unified Social Credit Code (统一社会信用代码), GB 32100-2015.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{IdError, show};

/// The USCC alphabet; a character's value is its index. No I, O, S, V, Z.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1-17 (3^(i-1) mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

const RULE_LEN: &str = "GB 32100-2015 length 18";
const RULE_CHARS: &str = "GB 32100-2015 character set 0-9 A-Z without I, O, S, V, Z";
const RULE_CASE: &str = "GB 32100-2015 character set: letters are upper case (A-Z), never a-z";
const RULE_REGION: &str = "GB 32100-2015 region code (positions 3-8 are digits)";
const RULE_CHECK: &str = "GB 32100-2015 mod-31 check character";

/// A Unified Social Credit Code, checked and in upper case: 2 registration-authority/type
/// characters, a 6-digit region code (Heilongjiang is `23xxxx`), a 9-character organisation
/// code and the mod-31 check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uscc(String);

impl Uscc {
    /// The code, 18 characters, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit region code (positions 3-8).
    pub fn region(&self) -> &str {
        self.0.get(2..8).unwrap_or_default()
    }

    /// Computes the check character for the first 17 characters of a code (upper or lower case).
    pub fn check_char(body: &str) -> Result<char, IdError> {
        let chars: Vec<char> = body.chars().map(|c| c.to_ascii_uppercase()).collect();
        if chars.len() != 17 {
            return Err(IdError::new(
                RULE_LEN,
                format!("a code body has 17 characters, not {}", chars.len()),
            ));
        }
        let mut sum = 0u32;
        for (i, (&c, w)) in chars.iter().zip(WEIGHTS).enumerate() {
            sum += value(c, i)? * w;
        }
        let idx = (31 - sum % 31) % 31;
        Ok(char::from(ALPHABET[idx as usize]))
    }
}

/// The value of character `c` at 0-based position `i`, checking alphabet and region digits.
fn value(c: char, i: usize) -> Result<u32, IdError> {
    let pos = ALPHABET.iter().position(|&a| char::from(a) == c);
    let Some(v) = pos else {
        let why = if "IOSVZ".contains(c) {
            " (I, O, S, V and Z are not used)"
        } else {
            ""
        };
        return Err(IdError::new(
            RULE_CHARS,
            format!(
                "character {} at position {} is not allowed{why}",
                show(c),
                i + 1
            ),
        ));
    };
    if (2..8).contains(&i) && !c.is_ascii_digit() {
        return Err(IdError::new(
            RULE_REGION,
            format!("character {} at position {} is not a digit", show(c), i + 1),
        ));
    }
    Ok(v as u32)
}

impl FromStr for Uscc {
    type Err = IdError;

    /// Parses a code; surrounding spaces are trimmed. Lower-case letters are refused, not
    /// upper-cased: the code is recorded exactly as given, so it must be given as issued.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim();
        let n = code.chars().count();
        if n != 18 {
            return Err(IdError::new(
                RULE_LEN,
                format!("has {n} characters; a USCC has 18"),
            ));
        }
        if let Some((i, c)) = code
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_ascii_lowercase())
        {
            return Err(IdError::new(
                RULE_CASE,
                format!(
                    "character '{c}' at position {} is lower case; write the code in upper case \
                     ('{}')",
                    i + 1,
                    c.to_ascii_uppercase()
                ),
            ));
        }
        let chars: Vec<char> = code.chars().collect();
        let Some((&given, body)) = chars.split_last() else {
            return Err(IdError::new(RULE_LEN, "is empty"));
        };
        let expected = Uscc::check_char(&body.iter().collect::<String>())?;
        value(given, 17)?;
        if given != expected {
            return Err(IdError::new(
                RULE_CHECK,
                format!("check character is '{given}' but should be '{expected}'"),
            ));
        }
        Ok(Uscc(code.to_owned()))
    }
}

string_newtype!(Uscc);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid() {
        for s in ["91350100M000100Y43", "91310110666007217T"] {
            let u: Uscc = s.parse().unwrap();
            assert_eq!(u.as_str(), s);
            assert_eq!(u.to_string(), s);
        }
        let u: Uscc = " 91350100M000100Y43 ".parse().unwrap();
        assert_eq!(u.as_str(), "91350100M000100Y43");
        assert_eq!(u.region(), "350100");
        assert_eq!(Uscc::check_char("91310110666007217").unwrap(), 'T');
    }

    #[test]
    fn wrong_length() {
        let e = "91350100M000100Y4".parse::<Uscc>().unwrap_err();
        assert_eq!(e.rule, RULE_LEN);
        assert!(e.problem.contains("17 characters"), "{e}");
        assert!("91350100M000100Y433".parse::<Uscc>().is_err());
    }

    #[test]
    fn forbidden_letters() {
        for bad in ['I', 'O', 'S', 'V', 'Z'] {
            let s = format!("91350100{bad}000100Y43");
            let e = s.parse::<Uscc>().unwrap_err();
            assert_eq!(e.rule, RULE_CHARS, "{s}: {e}");
            assert!(e.problem.contains("position 9"), "{e}");
        }
        let e = "91350100M000100Y4-".parse::<Uscc>().unwrap_err();
        assert_eq!(e.rule, RULE_CHARS);
    }

    #[test]
    fn lower_case_is_refused_not_upper_cased() {
        let e = "91350100m000100Y43".parse::<Uscc>().unwrap_err();
        assert_eq!(e.rule, RULE_CASE);
        assert_eq!(
            e.problem,
            "character 'm' at position 9 is lower case; write the code in upper case ('M')"
        );
        let e = "91350100M000100y43".parse::<Uscc>().unwrap_err();
        assert!(e.problem.contains("position 16"), "{e}");
        assert!(e.rule.contains("upper case"), "{e}");
    }

    #[test]
    fn region_must_be_digits() {
        let e = "9135A100M000100Y43".parse::<Uscc>().unwrap_err();
        assert_eq!(e.rule, RULE_REGION);
    }

    #[test]
    fn wrong_check_names_expected() {
        let e = "91350100M000100Y4X".parse::<Uscc>().unwrap_err();
        assert_eq!(e.rule, RULE_CHECK);
        assert_eq!(e.problem, "check character is 'X' but should be '3'");
        let e = "91310110666007217Y".parse::<Uscc>().unwrap_err();
        assert_eq!(e.problem, "check character is 'Y' but should be 'T'");
    }

    #[test]
    fn serde_checks() {
        let u: Uscc = serde_json::from_str("\"91310110666007217T\"").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"91310110666007217T\"");
        assert!(serde_json::from_str::<Uscc>("\"91310110666007217A\"").is_err());
    }
}
