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

/// Checks a name or free-text value: not empty after trimming (a value of only whitespace and
/// invisible characters counts as empty), no control characters (Unicode category Cc), no
/// invisible formatting or bidirectional characters (category Cf, e.g. U+200B, U+202E, U+FEFF),
/// no line or paragraph separators, and at most `max_chars` characters (after trimming). The
/// error names `field` and says what is wrong.
///
/// The limits used by [`Policy::validate`](crate::Policy::validate) are: organisation 100,
/// person 30, city 30, free text 200.
pub fn check_name(field: &str, value: &str, max_chars: usize) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if v.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(format!(
            "`{field}` is empty: it holds only whitespace and invisible characters"
        ));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!(
            "`{field}` contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if let Some(c) = v.chars().find(|&c| is_invisible(c)) {
        return Err(format!(
            "`{field}` contains the invisible character {}; remove it (invisible, \
             bidirectional and formatting characters are not allowed)",
            describe_invisible(c)
        ));
    }
    let n = v.chars().count();
    if n > max_chars {
        return Err(format!(
            "`{field}` has {n} characters; at most {max_chars} are allowed"
        ));
    }
    Ok(())
}

/// Unicode general category Cf (format characters: zero-width, bidirectional controls, byte
/// order mark, tags...), as of Unicode 15.1, as inclusive ranges.
const FORMAT_CHARS: [(u32, u32); 22] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
    // Not Cf but as invisible in a name: LINE SEPARATOR and PARAGRAPH SEPARATOR (Zl, Zp).
    (0x2028, 0x2029),
];

/// True for a character that is invisible or reorders text: a format character (Unicode
/// general category Cf, e.g. U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE, U+FEFF)
/// or a line/paragraph separator (U+2028, U+2029).
pub fn is_invisible(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// `U+202E (RIGHT-TO-LEFT OVERRIDE)` for the common ones, `U+XXXX` for the rest.
fn describe_invisible(c: char) -> String {
    let name = match u32::from(c) {
        0x00AD => "SOFT HYPHEN",
        0x061C => "ARABIC LETTER MARK",
        0x200B => "ZERO WIDTH SPACE",
        0x200C => "ZERO WIDTH NON-JOINER",
        0x200D => "ZERO WIDTH JOINER",
        0x200E => "LEFT-TO-RIGHT MARK",
        0x200F => "RIGHT-TO-LEFT MARK",
        0x202A => "LEFT-TO-RIGHT EMBEDDING",
        0x202B => "RIGHT-TO-LEFT EMBEDDING",
        0x202C => "POP DIRECTIONAL FORMATTING",
        0x202D => "LEFT-TO-RIGHT OVERRIDE",
        0x202E => "RIGHT-TO-LEFT OVERRIDE",
        0x2028 => "LINE SEPARATOR",
        0x2029 => "PARAGRAPH SEPARATOR",
        0x2060 => "WORD JOINER",
        0x2066 => "LEFT-TO-RIGHT ISOLATE",
        0x2067 => "RIGHT-TO-LEFT ISOLATE",
        0x2068 => "FIRST STRONG ISOLATE",
        0x2069 => "POP DIRECTIONAL ISOLATE",
        0xFEFF => "ZERO WIDTH NO-BREAK SPACE / BYTE ORDER MARK",
        _ => return format!("U+{:04X}", u32::from(c)),
    };
    format!("U+{:04X} ({name})", u32::from(c))
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
    if c.is_control() || c.is_whitespace() || is_invisible(c) {
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

    #[test]
    fn invisible_and_bidi_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{061C}',
            '\u{180E}',
            '\u{2028}',
            '\u{E0041}',
            '\u{1D173}',
        ] {
            let v = format!("哈尔滨{c}某公司");
            let e = check_name("organization", &v, 100).unwrap_err();
            assert!(e.contains("`organization`"), "{e}");
            assert!(e.contains(&format!("U+{:04X}", u32::from(c))), "{e}");
            assert!(e.contains("invisible"), "{e}");
        }
        let e = check_name("rep_name", "张\u{202E}三", 30).unwrap_err();
        assert!(e.contains("RIGHT-TO-LEFT OVERRIDE"), "{e}");
        // Control characters (Cc) anywhere.
        assert!(check_name("city", "哈尔滨\u{0007}", 30).is_err());
        assert!(check_name("city", "哈尔滨\u{0085}市", 30).is_err());
        // Ordinary text with spaces and CJK punctuation passes.
        assert!(check_name("organization", "哈尔滨（龙江）建设·工程 有限公司", 100).is_ok());
        assert!(check_name("person", "Anne-Marie O'Neil", 30).is_ok());
    }

    #[test]
    fn only_invisible_characters_is_empty() {
        for v in [
            "\u{200B}",
            " \u{200B}\u{FEFF} ",
            "\u{202E}\u{3000}\u{200D}",
            "\u{3000}",
        ] {
            let e = check_name("agent_name", v, 30).unwrap_err();
            assert!(e.starts_with("`agent_name` is empty"), "{v:?}: {e}");
        }
    }

    #[test]
    fn invisible_table_matches_known_categories() {
        // Cf characters.
        for c in [
            '\u{00AD}',
            '\u{0600}',
            '\u{0605}',
            '\u{0890}',
            '\u{206F}',
            '\u{FFFB}',
            '\u{13430}',
        ] {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
        // Neighbours that are not Cf.
        for c in [
            '\u{00AC}', '\u{00AE}', '\u{0606}', '\u{200A}', '\u{2010}', '\u{2065}', 'A', '张',
            '\u{3000}',
        ] {
            assert!(!is_invisible(c), "U+{:04X}", u32::from(c));
        }
        assert_eq!(show('\u{200B}'), "U+200B");
    }
}
