//! Input hygiene (issue 10, item 12): identifiers are refused rather than silently changed,
//! invisible and bidirectional characters are refused in every text field, subject attributes
//! keep to their RFC 5280 bounds, and applicant JSON may not repeat a key.

use hljca_policies::{Applicant, CertType, FieldKind, PolicySet};

use crate::example;

#[test]
fn lower_case_uscc_is_refused_naming_field_and_rule() {
    let set = PolicySet::builtin().unwrap();
    let mut a = example(CertType::Enterprise);
    a.0.insert("uscc".into(), "91230103ma1cxk7r51".into());
    let e = set.get(CertType::Enterprise).validate(&a).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let f = e.for_field("uscc").unwrap();
    assert!(f.problem.contains("lower case"), "{f}");
    assert!(f.rule.contains("GB 32100-2015"), "{f}");
    assert!(
        f.to_string().starts_with("field `uscc` (统一社会信用代码)"),
        "{f}"
    );
    // The upper-case code is taken exactly as given.
    a.0.insert("uscc".into(), "91230103MA1CXK7R51".into());
    let v = set.get(CertType::Enterprise).validate(&a).unwrap();
    assert_eq!(v.get("uscc"), Some("91230103MA1CXK7R51"));
}

#[test]
fn lower_case_resident_id_x_is_refused() {
    let set = PolicySet::builtin().unwrap();
    let mut a = example(CertType::Enterprise);
    a.0.insert("agent_id".into(), "23010319720611402x".into());
    let e = set.get(CertType::Enterprise).validate(&a).unwrap_err();
    let f = e.for_field("agent_id").unwrap();
    assert!(f.problem.contains("'X'"), "{f}");
    assert!(f.rule.contains("GB 11643-1999"), "{f}");
}

/// Every text field (name, organisation, city, free text) of every type.
fn text_fields(set: &PolicySet) -> Vec<(CertType, String)> {
    let mut out = Vec::new();
    for t in CertType::ALL {
        for f in &set.get(t).fields {
            if matches!(
                f.kind,
                FieldKind::OrgName | FieldKind::PersonName | FieldKind::City | FieldKind::Text
            ) {
                out.push((t, f.name.clone()));
            }
        }
    }
    out
}

#[test]
fn invisible_and_bidi_characters_are_refused_in_every_text_field() {
    let set = PolicySet::builtin().unwrap();
    let fields = text_fields(&set);
    assert!(fields.len() >= 20, "{fields:?}");
    for (t, field) in fields {
        for c in [
            '\u{200B}', '\u{202E}', '\u{FEFF}', '\u{2066}', '\u{00AD}', '\u{0007}',
        ] {
            let mut a = example(t);
            a.0.insert(field.clone(), format!("张{c}三"));
            let e = set.get(t).validate(&a).unwrap_err();
            let f = e
                .for_field(&field)
                .unwrap_or_else(|| panic!("{t}.{field} with U+{:04X}: {e}", u32::from(c)));
            assert!(
                f.problem.contains(&format!("U+{:04X}", u32::from(c))),
                "{t}.{field}: {f}"
            );
            assert!(f.problem.contains(&format!("`{field}`")), "{f}");
        }
        // Only invisible characters (and spaces): refused as empty, even when optional.
        let mut a = example(t);
        a.0.insert(field.clone(), " \u{200B}\u{FEFF}\u{200D} ".into());
        let e = set.get(t).validate(&a).unwrap_err();
        let f = e.for_field(&field).unwrap();
        assert!(f.problem.contains("is empty"), "{t}.{field}: {f}");
    }
}

#[test]
fn subject_fields_keep_to_the_rfc_5280_bound_of_64_characters() {
    let set = PolicySet::builtin().unwrap();
    // Enterprise: organization (org-name, at most 100) fills CN and O.
    let p = set.get(CertType::Enterprise);
    let mut a = example(CertType::Enterprise);
    a.0.insert("organization".into(), "龙".repeat(64));
    assert!(p.validate(&a).is_ok(), "64 characters (192 bytes) fit");
    a.0.insert("organization".into(), "龙".repeat(65));
    let e = p.validate(&a).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let f = e.for_field("organization").unwrap();
    assert!(f.problem.contains("65 characters"), "{f}");
    assert!(f.problem.contains("CN, O"), "{f}");
    assert!(f.problem.contains("at most 64"), "{f}");
    assert!(f.rule.contains("RFC 5280"), "{f}");
    assert!(f.rule.contains("ub-common-name = 64"), "{f}");
    assert!(f.rule.contains("ub-organization-name = 64"), "{f}");
    // 100 characters: the org-name limit and the subject bound are both broken; one error.
    a.0.insert("organization".into(), "x".repeat(100));
    let e = p.validate(&a).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    // The department (free text, at most 200) fills OU: bound 64 too.
    let mut a = example(CertType::Enterprise);
    a.0.insert("department".into(), "d".repeat(65));
    let f = p.validate(&a).unwrap_err();
    let f = f.for_field("department").unwrap();
    assert!(f.rule.contains("ub-organizational-unit-name = 64"), "{f}");
    // Expert: organization fills O only; the expert's name fills CN.
    let p = set.get(CertType::Expert);
    let mut a = example(CertType::Expert);
    a.0.insert("organization".into(), "o".repeat(65));
    let e = p.validate(&a).unwrap_err();
    let f = e.for_field("organization").unwrap();
    assert!(f.problem.contains("(O)"), "{f}");
    assert!(!f.rule.contains("ub-common-name"), "{f}");
}

#[test]
fn a_text_field_outside_the_subject_keeps_its_own_limit() {
    let set = PolicySet::builtin().unwrap();
    for t in CertType::ALL {
        let p = set.get(t);
        for f in &p.fields {
            let in_subject = ["cn", "o", "ou", "l"]
                .iter()
                .any(|attr| p.subject.field_for(attr) == Some(f.name.as_str()));
            if in_subject || f.kind != FieldKind::Text {
                continue;
            }
            let mut a = example(t);
            a.0.insert(f.name.clone(), "t".repeat(150));
            assert!(p.validate(&a).is_ok(), "{t}.{}", f.name);
        }
    }
}

#[test]
fn applicant_json_with_a_repeated_key_is_refused() {
    let e = Applicant::from_json(
        r#"{"organization":"哈尔滨甲公司","uscc":"91230103MA1CXK7R51","uscc":"91230103MA1CXK7R51"}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`uscc` is given more than once"),
        "{e}"
    );
}
