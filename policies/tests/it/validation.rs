//! Validating applicant data against a policy.

use hljca_policies::{Applicant, CertType, PolicySet};

use crate::example;

#[test]
fn unknown_field_is_reported() {
    let set = PolicySet::builtin().unwrap();
    let mut a = example(CertType::Expert);
    a.0.insert("uscc".into(), "91350100M000100Y43".into());
    let e = set.get(CertType::Expert).validate(&a).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "uscc");
    assert_eq!(e.0[0].rule, "not a field of expert");
}

#[test]
fn all_missing_required_fields_are_reported_at_once() {
    let set = PolicySet::builtin().unwrap();
    let p = set.get(CertType::Enterprise);
    let e = p.validate(&Applicant::default()).unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
    let required: Vec<&str> = p
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fields, required);
    assert!(!fields.contains(&"department"));
    assert_eq!(e.to_string().lines().count(), required.len());
    assert!(
        e.0.iter()
            .all(|f| f.problem == "is missing" && !f.label_zh.is_empty())
    );
}

#[test]
fn every_problem_is_collected() {
    let set = PolicySet::builtin().unwrap();
    let mut a = example(CertType::Enterprise);
    a.0.insert("uscc".into(), "91230103MA1CXK7R50".into());
    a.0.insert("agent_id".into(), "230102199902301527".into());
    a.0.insert("agent_mobile".into(), "12345".into());
    a.0.insert("city".into(), "  ".into());
    a.0.insert("colour".into(), "red".into());
    let e = set.get(CertType::Enterprise).validate(&a).unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        ["uscc", "city", "agent_id", "agent_mobile", "colour"]
    );
    let uscc = e.for_field("uscc").unwrap();
    assert_eq!(
        uscc.to_string(),
        "field `uscc` (统一社会信用代码): check character is '0' but should be '1' \
         [rule: GB 32100-2015 mod-31 check character]"
    );
    assert_eq!(e.for_field("city").unwrap().problem, "is empty");
}

#[test]
fn values_are_normalised() {
    let set = PolicySet::builtin().unwrap();
    let p = set.get(CertType::Enterprise);
    let mut a = example(CertType::Enterprise);
    a.0.insert("uscc".into(), " 91230103MA1CXK7R51 ".into());
    a.0.insert("agent_id".into(), "23010319720611402X".into());
    a.0.insert("agent_mobile".into(), "+86 13936612087".into());
    a.0.insert(
        "organization".into(),
        "  哈尔滨龙江建设工程有限公司\n".into(),
    );
    a.0.insert("department".into(), "".into());
    let v = p.validate(&a).unwrap();
    assert_eq!(v.get("uscc"), Some("91230103MA1CXK7R51"));
    assert_eq!(v.get("agent_id"), Some("23010319720611402X"));
    assert_eq!(v.get("agent_mobile"), Some("13936612087"));
    assert_eq!(v.get("organization"), Some("哈尔滨龙江建设工程有限公司"));
    assert_eq!(v.get("department"), None);
    assert_eq!(p.subject_value(&v, "ou"), None);
    assert_eq!(
        p.subject_value(&v, "CN").as_deref(),
        Some("哈尔滨龙江建设工程有限公司")
    );
    assert_eq!(p.subject_value(&v, "l").as_deref(), Some("哈尔滨市"));
    assert_eq!(p.subject_value(&v, "serialNumber"), None);
}

#[test]
fn registration_number_fallback_is_accepted() {
    let set = PolicySet::builtin().unwrap();
    let mut a = example(CertType::Enterprise);
    a.0.insert("uscc".into(), "230100000123459".into());
    let v = set.get(CertType::Enterprise).validate(&a).unwrap();
    assert_eq!(v.get("uscc"), Some("230100000123459"));
    a.0.insert("uscc".into(), "230100000123458".into());
    assert!(set.get(CertType::Enterprise).validate(&a).is_err());
}

#[test]
fn person_types_subject_is_the_person() {
    let set = PolicySet::builtin().unwrap();
    for (t, field) in [
        (CertType::LegalPerson, "legal_rep_name"),
        (CertType::AuthorizedRep, "rep_name"),
        (CertType::Expert, "expert_name"),
    ] {
        let p = set.get(t);
        let v = p.validate(&example(t)).unwrap();
        assert_eq!(p.subject_value(&v, "cn").as_deref(), v.get(field), "{t}");
    }
}
