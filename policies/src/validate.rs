//! Checking raw applicant data against a policy.

use std::collections::BTreeMap;

use crate::applicant::{Applicant, FieldError, ValidatedApplicant, ValidationErrors};
use crate::ids::{Mobile, OrgId, ResidentId, check_name};
use crate::policy::{FieldKind, FieldSpec, Policy};

/// Longest organisation name, in characters.
const MAX_ORG: usize = 100;
/// Longest person name, in characters.
const MAX_PERSON: usize = 30;
/// Longest city name, in characters.
const MAX_CITY: usize = 30;
/// Longest free text, in characters.
const MAX_TEXT: usize = 200;

/// RFC 5280 (appendix A.1) upper bounds of the subject attributes an applicant field can fill:
/// the attribute (as in the subject template), its bound in characters, and the bound's name.
const SUBJECT_BOUNDS: [(&str, usize, &str); 4] = [
    ("cn", 64, "ub-common-name"),
    ("o", 64, "ub-organization-name"),
    ("ou", 64, "ub-organizational-unit-name"),
    ("l", 128, "ub-locality-name"),
];

impl Policy {
    /// Checks an applicant's data against this policy and normalises it.
    ///
    /// Every field is checked and every problem is reported at once: missing required fields,
    /// values that break their kind's rule, values longer than the RFC 5280 bound of the subject
    /// attribute they fill (CN, O, OU 64 characters), and keys that are not fields of this type.
    /// Optional fields given as empty strings count as absent.
    pub fn validate(&self, a: &Applicant) -> Result<ValidatedApplicant, ValidationErrors> {
        let mut errors = Vec::new();
        let mut fields = BTreeMap::new();
        for spec in &self.fields {
            let value = a.0.get(&spec.name).map(|v| v.trim()).unwrap_or_default();
            if value.is_empty() {
                if spec.required {
                    let problem = if a.0.contains_key(&spec.name) {
                        "is empty"
                    } else {
                        "is missing"
                    };
                    errors.push(field_error(spec, problem.to_owned(), "required field"));
                }
                continue;
            }
            match check(spec, value).and_then(|v| self.check_subject_bound(spec, v)) {
                Ok(v) => {
                    fields.insert(spec.name.clone(), v);
                }
                Err((problem, rule)) => errors.push(field_error(spec, problem, rule)),
            }
        }
        for key in a.0.keys().filter(|k| self.field(k).is_none()) {
            errors.push(FieldError {
                field: key.clone(),
                label_zh: String::new(),
                problem: format!(
                    "unknown field; {} takes: {}",
                    self.cert_type,
                    self.fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                rule: format!("not a field of {}", self.cert_type),
            });
        }
        if errors.is_empty() {
            Ok(ValidatedApplicant {
                cert_type: self.cert_type,
                fields,
            })
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Refuses a value longer than the RFC 5280 upper bound of a subject attribute its field
    /// fills (CN, O, OU: 64 characters; L: 128), counting characters, not bytes.
    fn check_subject_bound(
        &self,
        spec: &FieldSpec,
        value: String,
    ) -> Result<String, (String, String)> {
        let n = value.chars().count();
        let over: Vec<&(&str, usize, &str)> = SUBJECT_BOUNDS
            .iter()
            .filter(|(attr, max, _)| {
                self.subject.field_for(attr) == Some(spec.name.as_str()) && n > *max
            })
            .collect();
        let Some(&&(_, max, _)) = over.iter().min_by_key(|(_, max, _)| *max) else {
            return Ok(value);
        };
        let attrs: Vec<String> = over
            .iter()
            .map(|(a, _, _)| a.to_ascii_uppercase())
            .collect();
        let bounds: Vec<String> = over.iter().map(|(_, m, b)| format!("{b} = {m}")).collect();
        Err((
            format!(
                "`{}` has {n} characters; it goes into the certificate subject ({}), which \
                 allows at most {max}",
                spec.name,
                attrs.join(", ")
            ),
            format!("RFC 5280 upper bound: {}", bounds.join(", ")),
        ))
    }

    /// The value of a subject attribute — `cn`, `o`, `ou` or `l` (any case) — for a validated
    /// applicant: the value of the applicant field the subject template names for it. `None`
    /// when the template has no field for the attribute or the (optional) field is absent.
    pub fn subject_value(&self, v: &ValidatedApplicant, field: &str) -> Option<String> {
        let name = self.subject.field_for(field)?;
        v.get(name).map(str::to_owned)
    }
}

fn field_error(spec: &FieldSpec, problem: String, rule: impl Into<String>) -> FieldError {
    FieldError {
        field: spec.name.clone(),
        label_zh: spec.label_zh.clone(),
        problem,
        rule: rule.into(),
    }
}

/// Checks one non-empty, trimmed value; returns it normalised, or the problem and rule.
fn check(spec: &FieldSpec, value: &str) -> Result<String, (String, String)> {
    let name = |max: usize, rule: &str| {
        check_name(&spec.name, value, max)
            .map(|()| value.to_owned())
            .map_err(|p| {
                (
                    p,
                    format!("{rule}: at most {max} characters, no control or invisible characters"),
                )
            })
    };
    let id = |e: crate::ids::IdError| (e.problem, e.rule.to_owned());
    match spec.kind {
        FieldKind::OrgName => name(MAX_ORG, "organisation name"),
        FieldKind::PersonName => name(MAX_PERSON, "person name"),
        FieldKind::City => name(MAX_CITY, "city"),
        FieldKind::Text => name(MAX_TEXT, "text"),
        FieldKind::OrgId => value.parse::<OrgId>().map(String::from).map_err(id),
        FieldKind::ResidentId => value.parse::<ResidentId>().map(String::from).map_err(id),
        FieldKind::Mobile => value.parse::<Mobile>().map(String::from).map_err(id),
    }
}
