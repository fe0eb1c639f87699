//! Applicant data, raw and validated, and the errors validation reports.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cert_type::CertType;
use crate::error::PolicyError;

/// Raw applicant data: a flat JSON object of strings (also what a CSV row becomes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Applicant(pub BTreeMap<String, String>);

impl Applicant {
    /// Reads a flat JSON object whose values are all strings. A value of any other JSON type is
    /// an error naming its key, and so is a key given twice (JSON parsers differ on which of
    /// the two values wins, so neither is taken).
    pub fn from_json(text: &str) -> Result<Applicant, PolicyError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PolicyError::ApplicantJson {
                reason: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(PolicyError::ApplicantJson {
                reason: format!("expected a JSON object, found {}", json_kind(&value)),
            });
        };
        if let Some(key) = Applicant::duplicate_key(text) {
            return Err(PolicyError::ApplicantJson {
                reason: format!("the key `{key}` is given more than once; give each field once"),
            });
        }
        let mut fields = BTreeMap::new();
        for (key, v) in map {
            match v {
                serde_json::Value::String(s) => {
                    fields.insert(key, s);
                }
                other => {
                    return Err(PolicyError::ApplicantJson {
                        reason: format!(
                            "the value of `{key}` is {}, not a string",
                            json_kind(&other)
                        ),
                    });
                }
            }
        }
        Ok(Applicant(fields))
    }
}

impl Applicant {
    /// The first key given twice in the top-level object of the JSON text `text`, if any
    /// (`serde_json` silently keeps the last value of a repeated key). `None` also when `text`
    /// is not a JSON object; parse it to learn why.
    pub fn duplicate_key(text: &str) -> Option<String> {
        serde_json::from_str::<FirstDuplicate>(text).ok()?.0
    }
}

/// The first repeated key of a JSON object (values are skipped, not kept).
struct FirstDuplicate(Option<String>);

impl<'de> serde::Deserialize<'de> for FirstDuplicate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = FirstDuplicate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FirstDuplicate, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut first = None;
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if first.is_none() && !seen.insert(key.clone()) {
                        first = Some(key);
                    }
                }
                Ok(FirstDuplicate(first))
            }
        }
        d.deserialize_map(Keys)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Applicant data checked against a policy. Values are normalised only where the meaning cannot
/// change: trimmed, mobile without `+86`. (A lower-case USCC or resident ID `x` is refused, not
/// upper-cased.) Optional fields left empty are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedApplicant {
    /// The type it was checked against.
    pub cert_type: CertType,
    /// Field name to normalised value.
    pub fields: BTreeMap<String, String>,
}

impl ValidatedApplicant {
    /// The normalised value of a field, if present.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// One problem with one applicant field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's name (the key in the applicant data).
    pub field: String,
    /// The field's Chinese label; empty for keys that are not fields of the type.
    pub label_zh: String,
    /// What is wrong.
    pub problem: String,
    /// The rule broken.
    pub rule: String,
}

impl fmt::Display for FieldError {
    /// E.g. ``field `uscc` (统一社会信用代码): check character is '3' but should be 'Y' [rule: …]``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`", self.field)?;
        if !self.label_zh.is_empty() {
            write!(f, " ({})", self.label_zh)?;
        }
        write!(f, ": {} [rule: {}]", self.problem, self.rule)
    }
}

/// All problems found in one applicant's data, in field order, unknown keys last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The error for a field, if it has one.
    pub fn for_field(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    /// One line per error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_takes_strings_only() {
        let a =
            Applicant::from_json(r#"{"organization":"哈尔滨某公司","city":"哈尔滨市"}"#).unwrap();
        assert_eq!(a.0.len(), 2);
        let e = Applicant::from_json(r#"{"organization":"x","age":42}"#).unwrap_err();
        assert!(e.to_string().contains("`age` is a number"), "{e}");
        let e = Applicant::from_json(r#"{"x":null}"#).unwrap_err();
        assert!(e.to_string().contains("`x` is null"), "{e}");
        let e = Applicant::from_json("[1]").unwrap_err();
        assert!(e.to_string().contains("an array"), "{e}");
        assert!(Applicant::from_json("{").is_err());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = Applicant::from_json(
            r#"{"organization":"甲公司","city":"哈尔滨市","organization":"乙公司"}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`organization` is given more than once"),
            "{e}"
        );
        // The same key spelt with an escape is the same key.
        let e = Applicant::from_json(r#"{"city":"a","\u0063ity":"b"}"#).unwrap_err();
        assert!(e.to_string().contains("`city`"), "{e}");
        assert_eq!(
            Applicant::duplicate_key(r#"{"a":"1","b":{"a":1,"a":2}}"#),
            None
        );
        assert_eq!(
            Applicant::duplicate_key(r#"{"a":"1","b":"2","b":"3","a":"4"}"#).as_deref(),
            Some("b")
        );
        assert_eq!(Applicant::duplicate_key("[1,1]"), None);
    }

    #[test]
    fn field_error_display() {
        let e = FieldError {
            field: "uscc".into(),
            label_zh: "统一社会信用代码".into(),
            problem: "check character is '3' but should be 'Y'".into(),
            rule: "GB 32100-2015 mod-31 check character".into(),
        };
        assert_eq!(
            e.to_string(),
            "field `uscc` (统一社会信用代码): check character is '3' but should be 'Y' \
             [rule: GB 32100-2015 mod-31 check character]"
        );
        let all = ValidationErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
