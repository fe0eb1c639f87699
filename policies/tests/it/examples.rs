//! The example applicants in `examples/applicants/` are valid and fit the outside checks.

use std::collections::BTreeMap;

use hljca_policies::{CertType, OrgId, PolicySet, ResidentId, Uscc};

use crate::example;

#[test]
fn every_example_validates_against_its_policy() {
    let set = PolicySet::builtin().unwrap();
    for t in CertType::ALL {
        let v = set
            .get(t)
            .validate(&example(t))
            .unwrap_or_else(|e| panic!("{t}:\n{e}"));
        assert_eq!(v.cert_type, t);
        // Every field the example gives is kept, and all values are already normal.
        assert_eq!(v.fields, example(t).0, "{t} example is not in normal form");
        let cn = set.get(t).subject_value(&v, "cn");
        assert!(cn.is_some_and(|cn| !cn.is_empty()), "{t} has no CN");
    }
}

#[test]
fn the_uscc_is_the_only_uscc_looking_value_in_enterprise() {
    // The outside check breaks "the first 18-char value of USCC shape that is not digits+X".
    let a = example(CertType::Enterprise);
    let uscc_like = |v: &str| {
        v.len() == 18
            && v.bytes()
                .all(|b| b"0123456789ABCDEFGHJKLMNPQRTUWXY".contains(&b))
            && !(v[..17].bytes().all(|b| b.is_ascii_digit())
                && (v.as_bytes()[17].is_ascii_digit() || v.as_bytes()[17] == b'X'))
    };
    let hits: Vec<&String> = a.0.keys().filter(|k| uscc_like(&a.0[*k])).collect();
    assert_eq!(hits, ["uscc"]);
    let u: Uscc = a.0["uscc"].parse().unwrap();
    assert!(u.region().starts_with("23"), "not a Heilongjiang USCC");
}

#[test]
fn enterprise_and_its_secondary_lock_share_the_uscc() {
    let a = example(CertType::Enterprise);
    let b = example(CertType::EnterpriseSecondary);
    assert_eq!(a.0["uscc"], b.0["uscc"]);
}

#[test]
fn identifiers_are_heilongjiang_and_otherwise_distinct() {
    let set = PolicySet::builtin().unwrap();
    // value -> (type, field) of first use
    let mut seen: BTreeMap<String, (CertType, String)> = BTreeMap::new();
    for t in CertType::ALL {
        let v = set.get(t).validate(&example(t)).unwrap();
        for spec in &set.get(t).fields {
            let Some(value) = v.get(&spec.name) else {
                continue;
            };
            let value = value.to_owned();
            match spec.kind {
                hljca_policies::FieldKind::ResidentId => {
                    assert!(
                        value
                            .parse::<ResidentId>()
                            .unwrap()
                            .region()
                            .starts_with("23")
                    );
                }
                hljca_policies::FieldKind::OrgId => {
                    let OrgId::Uscc(u) = value.parse::<OrgId>().unwrap() else {
                        panic!("{t}: examples use USCCs");
                    };
                    assert!(u.region().starts_with("23"));
                }
                hljca_policies::FieldKind::Mobile => {}
                _ => continue,
            }
            if let Some((t0, f0)) = seen.get(&value) {
                let shared_lock = *t0 == CertType::Enterprise
                    && t == CertType::EnterpriseSecondary
                    && (spec.name == "uscc" || spec.name == "legal_rep_id");
                assert!(shared_lock, "{t}.{} repeats {t0}.{f0}: {value}", spec.name);
            } else {
                seen.insert(value, (t, spec.name.clone()));
            }
        }
    }
}
