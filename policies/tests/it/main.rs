//! Integration tests of `hljca-policies`, one binary with a module per topic.

// Test helpers outside `#[test]` functions panic on bad fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod examples;
mod hygiene;
mod policy_set;
mod properties;
mod validation;

use hljca_policies::{Applicant, CertType};

/// The example applicant of a type, from `examples/applicants/<key>.json`.
pub fn example(t: CertType) -> Applicant {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/applicants")
        .join(format!("{}.json", t.key()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Applicant::from_json(&text).unwrap()
}
