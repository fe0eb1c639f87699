//! Resident identity card number (公民身份号码), GB 11643-1999.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use super::{IdError, digit_values, show};

/// Weights of positions 1-17 (2^(18-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder of the weighted sum mod 11.
const CHECK: &[u8; 11] = b"10X98765432";
/// Province-level codes (first two digits of the region code).
const PROVINCES: [u8; 35] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];
/// Code 91 is also accepted (used for numbers issued abroad in some registries).
const EXTRA_PROVINCE: u8 = 91;

const RULE_FORMAT: &str = "GB 11643-1999 format: 17 digits and a digit or X";
const RULE_REGION: &str = "GB 11643-1999 region code (GB/T 2260 province)";
const RULE_DATE: &str = "GB 11643-1999 birth date (a real date from 1900 on, not in the future)";
const RULE_CHECK: &str = "GB 11643-1999 mod-11 check character";
const RULE_CHECK_CASE: &str = "GB 11643-1999 check character: a digit or upper-case X";

/// A checked resident ID number: 6-digit region, 8-digit birth date, 3-digit sequence (odd for
/// men, even for women) and the mod-11 check character (`X` for 10, always upper case here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResidentId(String);

impl ResidentId {
    /// The number, 18 characters, `X` upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit region code.
    pub fn region(&self) -> &str {
        self.0.get(..6).unwrap_or_default()
    }

    /// The birth date encoded in positions 7-14.
    pub fn birth_date(&self) -> Date {
        // The number was checked on construction, so this cannot fail; fall back to the
        // earliest accepted date rather than panic.
        birth_date(&self.0).unwrap_or(Date::MIN)
    }

    /// Computes the check character for the first 17 digits of a number.
    pub fn check_char(body: &str) -> Result<char, IdError> {
        let digits = digits17(body)?;
        let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        Ok(char::from(CHECK[(sum % 11) as usize]))
    }

    /// Parses a number as [`FromStr`] does, judging "in the future" against `today`.
    pub fn parse_at(s: &str, today: Date) -> Result<ResidentId, IdError> {
        let id = s.trim();
        let n = id.chars().count();
        if n != 18 {
            return Err(IdError::new(
                RULE_FORMAT,
                format!("has {n} characters; a resident ID number has 18"),
            ));
        }
        let chars: Vec<char> = id.chars().collect();
        let Some((&given, body)) = chars.split_last() else {
            return Err(IdError::new(RULE_FORMAT, "is empty"));
        };
        if given == 'x' {
            return Err(IdError::new(
                RULE_CHECK_CASE,
                "check character is a lower-case 'x'; write it as upper-case 'X'",
            ));
        }
        let expected = ResidentId::check_char(&body.iter().collect::<String>())?;
        if !(given.is_ascii_digit() || given == 'X') {
            return Err(IdError::new(
                RULE_FORMAT,
                format!(
                    "character {} at position 18 is not a digit or X",
                    show(given)
                ),
            ));
        }
        let province = id.get(..2).and_then(|p| p.parse::<u8>().ok()).unwrap_or(0);
        if !(PROVINCES.contains(&province) || province == EXTRA_PROVINCE) {
            return Err(IdError::new(
                RULE_REGION,
                format!(
                    "region code {} has no province {province:02}",
                    id.get(..6).unwrap_or_default()
                ),
            ));
        }
        let date = birth_date(id)?;
        if date > today {
            return Err(IdError::new(
                RULE_DATE,
                format!("birth date {date} is in the future"),
            ));
        }
        if given != expected {
            return Err(IdError::new(
                RULE_CHECK,
                format!("check character is '{given}' but should be '{expected}'"),
            ));
        }
        Ok(ResidentId(id.to_owned()))
    }
}

/// The 17 digits of a number body.
fn digits17(body: &str) -> Result<Vec<u32>, IdError> {
    let n = body.chars().count();
    if n != 17 {
        return Err(IdError::new(
            RULE_FORMAT,
            format!("a number body has 17 digits, not {n}"),
        ));
    }
    digit_values(body, RULE_FORMAT)
}

/// The birth date in positions 7-14 of an all-digit number: a real date, year 1900 or later.
fn birth_date(id: &str) -> Result<Date, IdError> {
    let raw = id.get(6..14).unwrap_or_default();
    let bad = || IdError::new(RULE_DATE, format!("birth date {raw} is not a real date"));
    let num = |r: std::ops::Range<usize>| raw.get(r).and_then(|s| s.parse::<u16>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(4..6), num(6..8)) else {
        return Err(bad());
    };
    if y < 1900 {
        return Err(IdError::new(
            RULE_DATE,
            format!("birth date {raw} is before 1900"),
        ));
    }
    let month = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
    let (Some(month), Ok(day)) = (month, u8::try_from(d)) else {
        return Err(bad());
    };
    Date::from_calendar_date(i32::from(y), month, day).map_err(|_| bad())
}

impl FromStr for ResidentId {
    type Err = IdError;

    /// Parses a number; surrounding spaces are trimmed. A lower-case `x` check character is
    /// refused (write `X`), not upper-cased. "Not in the future" is judged against today's UTC
    /// date.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResidentId::parse_at(s, OffsetDateTime::now_utc().date())
    }
}

string_newtype!(ResidentId);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn known_valid() {
        let a: ResidentId = "11010519491231002X".parse().unwrap();
        assert_eq!(a.birth_date(), date!(1949 - 12 - 31));
        assert_eq!(a.region(), "110105");
    }

    #[test]
    fn standard_example_from_1880_fails_only_the_1900_floor() {
        // 440524188001010014 is GB 11643-1999's own example. Its check character is right,
        // but this crate refuses birth dates before 1900 (no living applicant has one).
        assert_eq!(ResidentId::check_char("44052418800101001").unwrap(), '4');
        let e = "440524188001010014".parse::<ResidentId>().unwrap_err();
        assert_eq!(e.rule, RULE_DATE);
        assert_eq!(e.problem, "birth date 18800101 is before 1900");
        // The same person born in 1980 passes (with the check character recomputed).
        let body = "44052419800101001";
        let id = format!("{body}{}", ResidentId::check_char(body).unwrap());
        assert!(id.parse::<ResidentId>().is_ok());
    }

    #[test]
    fn lowercase_x_is_refused() {
        let a: ResidentId = " 11010519491231002X".parse().unwrap();
        assert_eq!(a.as_str(), "11010519491231002X");
        let e = "11010519491231002x".parse::<ResidentId>().unwrap_err();
        assert_eq!(e.rule, RULE_CHECK_CASE);
        assert!(e.problem.contains("upper-case 'X'"), "{e}");
    }

    #[test]
    fn errors() {
        let rule = |s: &str| s.parse::<ResidentId>().unwrap_err().rule;
        assert_eq!(rule("11010519491231002"), RULE_FORMAT);
        assert_eq!(rule("1101051949123100A2"), RULE_FORMAT);
        assert_eq!(rule("11010519491231002Y"), RULE_FORMAT);
        let e = "110105199902300011".parse::<ResidentId>().unwrap_err();
        assert_eq!(e.rule, RULE_DATE);
        assert_eq!(e.problem, "birth date 19990230 is not a real date");
        assert_eq!(rule("110105199913010011"), RULE_DATE);
        let e = "990105194912310021".parse::<ResidentId>().unwrap_err();
        assert_eq!(e.rule, RULE_REGION);
        assert!(e.problem.contains("province 99"), "{e}");
        assert_eq!(rule("010105194912310021"), RULE_REGION);
        let e = "110105194912310021".parse::<ResidentId>().unwrap_err();
        assert_eq!(e.rule, RULE_CHECK);
        assert_eq!(e.problem, "check character is '1' but should be 'X'");
    }

    #[test]
    fn future_birth_date() {
        let today = date!(2024 - 06 - 01);
        let body = "23010320240602123";
        let id = format!("{body}{}", ResidentId::check_char(body).unwrap());
        let e = ResidentId::parse_at(&id, today).unwrap_err();
        assert_eq!(e.rule, RULE_DATE);
        assert!(e.problem.contains("future"), "{e}");
        assert!(ResidentId::parse_at(&id, date!(2024 - 06 - 02)).is_ok());
    }
}
