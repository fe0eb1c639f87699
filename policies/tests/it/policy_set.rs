//! The builtin policy set, and loading it with an override directory.

use hljca_policies::{
    CertType, ExtKeyUsage, Fen, KeyAlgorithm, KeyUsage, PolicyError, PolicySet, SealType,
};

#[test]
fn seven_types_in_order_with_spec_fees() {
    let set = PolicySet::builtin().unwrap();
    let types: Vec<CertType> = set.iter().map(|p| p.cert_type).collect();
    assert_eq!(types, CertType::ALL);
    let fees = [
        (CertType::Enterprise, 36000, 30000),
        (CertType::LegalPerson, 20000, 10000),
        (CertType::Medical, 30000, 20000),
        (CertType::Expert, 20000, 10000),
        (CertType::Procurement, 36000, 30000),
        (CertType::EnterpriseSecondary, 20000, 10000),
        (CertType::AuthorizedRep, 20000, 10000),
    ];
    for (t, first, annual) in fees {
        let p = set.get(t);
        assert_eq!(p.cert_type, t);
        assert_eq!(
            (p.fees.first, p.fees.annual),
            (Fen(first), Fen(annual)),
            "{t}"
        );
    }
    assert_eq!(
        set.get(CertType::Enterprise).fees.first.to_string(),
        "360.00 元"
    );
}

#[test]
fn seal_exactly_where_the_spec_says() {
    let set = PolicySet::builtin().unwrap();
    for p in set.iter() {
        let no_seal = matches!(
            p.cert_type,
            CertType::Medical | CertType::EnterpriseSecondary
        );
        assert_eq!(p.seal.is_none(), no_seal, "{}", p.cert_type);
        if let Some(seal) = &p.seal {
            let org = matches!(p.cert_type, CertType::Enterprise | CertType::Procurement);
            let expected = if org {
                (SealType::Organization, 40)
            } else {
                (SealType::Personal, 20)
            };
            assert_eq!((seal.seal_type, seal.width_mm), expected, "{}", p.cert_type);
            assert_eq!(seal.width_mm, seal.height_mm);
            assert!(p.field(&seal.name_field).is_some_and(|f| f.required));
            assert_eq!(
                seal.cert.key_usage,
                [KeyUsage::DigitalSignature, KeyUsage::NonRepudiation]
            );
            assert_eq!(seal.cert.extended_key_usage, [ExtKeyUsage::DocumentSigning]);
        }
    }
}

#[test]
fn profiles_oids_and_materials() {
    let set = PolicySet::builtin().unwrap();
    for (i, p) in set.iter().enumerate() {
        let n = i + 1;
        assert_eq!(p.key_algorithm, KeyAlgorithm::EcP256);
        assert_eq!(p.validity_days, 365);
        assert_eq!(p.identity.policy_oid_suffix, format!("1.{n}"));
        if let Some(seal) = &p.seal {
            assert_eq!(seal.cert.policy_oid_suffix, format!("2.{n}"));
        }
        assert_eq!(
            p.identity.key_usage,
            [KeyUsage::DigitalSignature, KeyUsage::NonRepudiation]
        );
        assert_eq!(
            p.identity.extended_key_usage,
            [ExtKeyUsage::ClientAuth, ExtKeyUsage::EmailProtection]
        );
        assert_eq!(p.materials[0].kind, "application-form", "{}", p.cert_type);
        assert!(p.materials[0].name_zh.contains('《'));
        assert!(p.materials.len() >= 2);
    }
    let kinds = |t| -> Vec<String> {
        set.get(t)
            .materials
            .iter()
            .map(|m| m.kind.clone())
            .collect()
    };
    assert!(kinds(CertType::Procurement).contains(&"legal-person-certificate".to_owned()));
    assert!(kinds(CertType::Medical).contains(&"practising-licence".to_owned()));
    assert_eq!(
        kinds(CertType::Expert),
        ["application-form", "expert-id-copy"]
    );
    assert!(kinds(CertType::AuthorizedRep).contains(&"rep-id-copy".to_owned()));
}

#[test]
fn policy_list_json_names_every_type() {
    let set = PolicySet::builtin().unwrap();
    let json = serde_json::to_string(&set.iter().collect::<Vec<_>>()).unwrap();
    for t in CertType::ALL {
        assert!(json.contains(&format!("\"type\":\"{t}\"")), "{t}");
    }
}

fn builtin_text(t: CertType) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("types")
        .join(format!("{}.toml", t.key()));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn override_dir_replaces_one_type() {
    let dir = tempfile::tempdir().unwrap();
    let text = builtin_text(CertType::Expert)
        .replace("first = 20000", "first = 25000")
        .replace(
            "name_zh = \"专家数字证书\"",
            "name_zh = \"评标专家数字证书\"",
        );
    std::fs::write(dir.path().join("expert.toml"), text).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let set = PolicySet::load(Some(dir.path())).unwrap();
    let p = set.get(CertType::Expert);
    assert_eq!(p.fees.first, Fen(25000));
    assert_eq!(p.name_zh, "评标专家数字证书");
    assert_eq!(set.get(CertType::Enterprise).fees.first, Fen(36000));
}

#[test]
fn missing_or_absent_dir_is_builtin() {
    let set = PolicySet::load(None).unwrap();
    assert_eq!(set.iter().count(), 7);
    let dir = tempfile::tempdir().unwrap();
    let set = PolicySet::load(Some(&dir.path().join("nope"))).unwrap();
    assert_eq!(set.get(CertType::Medical).fees.first, Fen(30000));
}

#[test]
fn override_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bank.toml"), "type = \"enterprise\"").unwrap();
    let e = PolicySet::load(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&e, PolicyError::UnknownFile { file } if file == "bank.toml"),
        "{e}"
    );
    assert!(e.to_string().contains("bank.toml"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("medical.toml"),
        builtin_text(CertType::Expert),
    )
    .unwrap();
    let e = PolicySet::load(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&e, PolicyError::Mismatch { file, declared } if file.ends_with("medical.toml") && declared == "expert"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let text = builtin_text(CertType::Expert) + "\nsurprise = 1\n";
    std::fs::write(dir.path().join("expert.toml"), text).unwrap();
    let e = PolicySet::load(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&e, PolicyError::Parse { file, .. } if file.ends_with("expert.toml")),
        "{e}"
    );
}

#[test]
fn inconsistent_override_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = builtin_text(CertType::Expert)
        .replace("cn = \"expert_name\"", "cn = \"nobody\"")
        .replace(
            "[\"digital-signature\", \"non-repudiation\"]",
            "[\"key-encipherment\"]",
        );
    std::fs::write(dir.path().join("expert.toml"), text).unwrap();
    let e = PolicySet::load(Some(dir.path())).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PolicyError::Invalid { .. }), "{msg}");
    assert!(msg.contains("`nobody`"), "{msg}");
    assert!(msg.contains("key-encipherment"), "{msg}");
}
