//! Issue 4: the seven types, identifiers, and electronic seals on the token.

use std::path::Path;

use crate::support::*;

#[test]
fn every_type_issues_with_the_objects_its_policy_says() {
    let env = Env::new();
    env.init_ca();
    for ty in TYPES {
        let label = format!("t-{ty}");
        env.token(&label);
        let out = env.issue(ty, &label);
        let certs = out["certificates"].as_array().unwrap();
        let has_seal = !matches!(ty, "medical" | "enterprise-secondary");
        assert_eq!(certs.len(), if has_seal { 2 } else { 1 }, "{ty}: {out}");
        assert_eq!(certs[0]["role"], "identity");
        for c in certs {
            let pem = Path::new(c["pem"].as_str().unwrap());
            let v = env.openssl_verify(pem);
            assert!(
                v.status.success(),
                "{ty}: {}",
                String::from_utf8_lossy(&v.stderr)
            );
        }
        let objs = env.objects(&label, USER_PIN);
        let n = if has_seal { 2 } else { 1 };
        assert_eq!(count(&objs, "Private Key Object"), n, "{ty}: {objs}");
        assert_eq!(count(&objs, "Certificate Object"), n, "{ty}: {objs}");
        assert_eq!(
            count(&objs, "Data object"),
            usize::from(has_seal),
            "{ty}: {objs}"
        );
        if has_seal {
            assert_eq!(certs[1]["role"], "seal");
            let seal = out["seal"]["file"].as_str().unwrap();
            let parsed = openssl(&["asn1parse", "-inform", "DER", "-in", seal]);
            assert!(parsed.status.success(), "{ty}: asn1parse failed");
            let text = String::from_utf8_lossy(&parsed.stdout);
            assert!(
                text.contains(":ES")
                    && text.contains("UTF8STRING")
                    && text.contains("ecdsa-with-SHA256"),
                "{text}"
            );
            // Seal certificate: digitalSignature + nonRepudiation, distinct from the identity key.
            let seal_text = String::from_utf8(
                openssl(&[
                    "x509",
                    "-in",
                    certs[1]["pem"].as_str().unwrap(),
                    "-noout",
                    "-text",
                ])
                .stdout,
            )
            .unwrap();
            assert!(
                seal_text.contains("Digital Signature, Non Repudiation"),
                "{seal_text}"
            );
            assert_ne!(certs[0]["key_id"], certs[1]["key_id"]);
            let shown = env.json(&[
                "seal",
                "verify",
                "--serial",
                certs[1]["serial"].as_str().unwrap(),
                "--from-token",
            ]);
            assert_eq!(shown["valid"], true);
        }
        // Identifiers go in the GM/T 0015 extensions.
        let text = String::from_utf8(
            openssl(&[
                "x509",
                "-in",
                certs[0]["pem"].as_str().unwrap(),
                "-noout",
                "-text",
            ])
            .stdout,
        )
        .unwrap();
        let has_uscc = ty != "expert";
        assert_eq!(
            text.contains("1.2.156.10260.4.1.4"),
            has_uscc,
            "{ty}: {text}"
        );
        let has_person = matches!(ty, "legal-person" | "expert" | "authorized-rep");
        assert_eq!(
            text.contains("1.2.156.10260.4.1.1"),
            has_person,
            "{ty}: {text}"
        );
    }
}

#[test]
fn seal_verification_fails_on_a_changed_byte_and_a_revoked_certificate() {
    let env = Env::new();
    env.init_ca();
    env.token("seal-holder");
    let out = env.issue("legal-person", "seal-holder");
    let file = out["seal"]["file"].as_str().unwrap();
    let ok = env.json(&["seal", "verify", "--file", file]);
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["header_id"], "ES");
    assert_eq!(
        ok["seal_type"], 2,
        "a legal person's seal is a personal seal"
    );
    let bytes = std::fs::read(file).unwrap();
    // Every 97th byte and the last 40 (the signature) changed one at a time must fail.
    let changed = env.dir.path().join("changed.seal");
    let positions: Vec<usize> = (0..bytes.len())
        .step_by(97)
        .chain(bytes.len() - 40..bytes.len())
        .collect();
    for i in positions {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        std::fs::write(&changed, &b).unwrap();
        let o = env.run(&["seal", "verify", "--file", changed.to_str().unwrap()]);
        assert!(
            !o.status.success(),
            "a seal with byte {i} changed was accepted"
        );
    }
    // Revoking the identity certificate revokes the seal certificate; the seal no longer verifies.
    let identity = out["certificates"][0]["serial"].as_str().unwrap();
    let r = env.json(&["revoke", identity, "--reason", "cessationOfOperation"]);
    assert_eq!(r["revoked"].as_array().unwrap().len(), 2);
    let err = env.fails(&["seal", "verify", "--file", file], 1);
    assert!(err.contains("revoked"), "{err}");
}

#[test]
fn supplied_seal_images_are_validated() {
    let env = Env::new();
    env.init_ca();
    env.token("img-ok");
    let png = env.dir.path().join("seal.png");
    write_png(&png, 128, 128);
    let app = example("enterprise");
    let out = env.json(&[
        "issue",
        "--token",
        "img-ok",
        "--applicant",
        app.to_str().unwrap(),
        "--seal-image",
        png.to_str().unwrap(),
    ]);
    let shown = env.json(&[
        "seal",
        "show",
        "--file",
        out["seal"]["file"].as_str().unwrap(),
    ]);
    assert_eq!(shown["picture_type"], "PNG");
    // A GIF is refused before the token is touched.
    env.token("img-bad");
    let gif = env.dir.path().join("seal.gif");
    std::fs::write(&gif, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    let o = env.run(&[
        "issue",
        "--token",
        "img-bad",
        "--applicant",
        app.to_str().unwrap(),
        "--seal-image",
        gif.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .to_lowercase()
            .contains("image")
    );
    assert_eq!(count(&env.objects("img-bad", USER_PIN), "Object"), 0);
}

#[test]
fn secondary_lock_needs_a_valid_enterprise_certificate() {
    let env = Env::new();
    env.init_ca();
    env.token("secondary-first");
    let err = env.fails(
        &[
            "issue",
            "--type",
            "enterprise-secondary",
            "--token",
            "secondary-first",
            "--applicant",
            example("enterprise-secondary").to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("副锁") && err.contains("enterprise"), "{err}");
    assert_eq!(
        count(&env.objects("secondary-first", USER_PIN), "Object"),
        0
    );
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
    env.token("primary");
    let primary = env.issue("enterprise", "primary");
    env.issue("enterprise-secondary", "secondary-first");
    // Once the enterprise certificate is revoked, no further secondary lock.
    env.ok(&[
        "revoke",
        primary["certificates"][0]["serial"].as_str().unwrap(),
    ]);
    env.token("secondary-2");
    env.fails(
        &[
            "issue",
            "--type",
            "enterprise-secondary",
            "--token",
            "secondary-2",
            "--applicant",
            example("enterprise-secondary").to_str().unwrap(),
        ],
        1,
    );
}

#[test]
fn bad_uscc_is_refused_cleanly() {
    let env = Env::new();
    env.init_ca();
    env.token("bad-uscc");
    let mut app: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("enterprise")).unwrap()).unwrap();
    let good = app["uscc"].as_str().unwrap().to_owned();
    let last = if good.ends_with('0') { '1' } else { '0' };
    app["uscc"] = format!("{}{last}", &good[..17]).into();
    let f = env.dir.path().join("bad.json");
    std::fs::write(&f, app.to_string()).unwrap();
    let err = env.fails(
        &[
            "issue",
            "--token",
            "bad-uscc",
            "--applicant",
            f.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("uscc") && err.contains("GB 32100"), "{err}");
    assert_eq!(count(&env.objects("bad-uscc", USER_PIN), "Object"), 0);
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
}

#[test]
fn policy_list_shows_the_seven_types_and_fees() {
    let env = Env::new();
    let v = env.json(&["policy", "list"]);
    let ps = v["policies"].as_array().unwrap();
    assert_eq!(ps.len(), 7);
    let fee = |t: &str| {
        let p = ps.iter().find(|p| p["type"] == t).unwrap();
        (
            p["fees"]["first"].as_u64().unwrap(),
            p["fees"]["annual"].as_u64().unwrap(),
        )
    };
    assert_eq!(fee("enterprise"), (36000, 30000));
    assert_eq!(fee("legal-person"), (20000, 10000));
    assert_eq!(fee("medical"), (30000, 20000));
    assert_eq!(fee("expert"), (20000, 10000));
    assert_eq!(fee("procurement"), (36000, 30000));
    assert_eq!(fee("enterprise-secondary"), (20000, 10000));
    assert_eq!(fee("authorized-rep"), (20000, 10000));
    let table = env.ok(&["policy", "list"]);
    assert!(
        table.contains("360.00") && table.contains("企业机构数字证书"),
        "{table}"
    );
    let show = env.json(&["policy", "show", "medical"]);
    assert!(show.get("seal").is_none() || show["seal"].is_null());
}

fn write_png(path: &Path, w: u32, h: u32) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    let data: Vec<u8> = (0..w * h).flat_map(|_| [0xd7, 0, 0x0f, 0xff]).collect();
    wr.write_image_data(&data).unwrap();
}
