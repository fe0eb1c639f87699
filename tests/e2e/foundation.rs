//! Issue 3: the CA, tokens, issuance of an enterprise certificate, the store, the demo.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::*;

#[test]
fn demo_issues_a_certificate_outside_tools_accept() {
    let env = Env::new();
    let home = env.dir.path().join("demo-home");
    let o = Command::new(env!("CARGO_BIN_EXE_hljca"))
        .args(["demo", "--home", home.to_str().unwrap(), "--json"])
        .env_remove("SOFTHSM2_CONF")
        .env_remove("HLJCA_HOME")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "home",
        "softhsm2_conf",
        "pkcs11_module",
        "token_label",
        "token_serial",
        "user_pin",
        "ca_pin",
        "ca_root",
        "ca_issuing",
    ] {
        assert!(d[k].is_string(), "demo JSON lacks {k}: {d}");
    }
    let c = &d["certificates"][0];
    assert_eq!(c["type"], "enterprise");
    assert_eq!(c["role"], "identity");
    let pem = c["pem"].as_str().unwrap();
    let v = openssl(&[
        "verify",
        "-CAfile",
        d["ca_root"].as_str().unwrap(),
        "-untrusted",
        d["ca_issuing"].as_str().unwrap(),
        pem,
    ]);
    assert!(
        v.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    // The key on the token: sensitive, never extractable, same public key as the certificate.
    let conf = d["softhsm2_conf"].as_str().unwrap();
    let label = d["token_label"].as_str().unwrap();
    let list = Command::new("pkcs11-tool")
        .args([
            "--module",
            &env.module,
            "--token-label",
            label,
            "--login",
            "--pin",
            USER_PIN,
            "--list-objects",
        ])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let private = list
        .split("Private Key Object")
        .nth(1)
        .expect("a private key on the token");
    let private = private.split("Object;").next().unwrap();
    assert!(private.contains("sensitive"), "{private}");
    assert!(private.contains("never extractable"), "{private}");
    let pubder = env.dir.path().join("pub.der");
    let r = Command::new("pkcs11-tool")
        .args([
            "--module",
            &env.module,
            "--token-label",
            label,
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            c["key_id"].as_str().unwrap(),
            "-o",
            pubder.to_str().unwrap(),
        ])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let from_token = openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        pubder.to_str().unwrap(),
        "-outform",
        "DER",
    ])
    .stdout;
    let from_cert_pem = openssl(&["x509", "-in", pem, "-noout", "-pubkey"]).stdout;
    let p = env.dir.path().join("certpub.pem");
    std::fs::write(&p, from_cert_pem).unwrap();
    let from_cert = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        p.to_str().unwrap(),
        "-outform",
        "DER",
    ])
    .stdout;
    assert!(!from_token.is_empty());
    assert_eq!(
        from_token, from_cert,
        "certificate public key differs from the token's"
    );

    // Every other command works on that home given SOFTHSM2_CONF and the PINs.
    let list = Command::new(env!("CARGO_BIN_EXE_hljca"))
        .args(["--home", home.to_str().unwrap(), "cert", "list", "--json"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let serials: Vec<&str> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert!(serials.contains(&c["serial"].as_str().unwrap()));

    // Running the demo again on the same home reuses the CA and issues onto a new token.
    let root_before = std::fs::read(d["ca_root"].as_str().unwrap()).unwrap();
    let o2 = Command::new(env!("CARGO_BIN_EXE_hljca"))
        .args(["demo", "--home", home.to_str().unwrap(), "--json"])
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap();
    assert!(
        o2.status.success(),
        "second demo: {}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let d2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(d2["reused_ca"], true);
    assert_ne!(d2["token_label"], d["token_label"]);
    assert_eq!(
        std::fs::read(d["ca_root"].as_str().unwrap()).unwrap(),
        root_before,
        "the CA must not change"
    );
    let v = openssl(&[
        "verify",
        "-CAfile",
        d["ca_root"].as_str().unwrap(),
        "-untrusted",
        d["ca_issuing"].as_str().unwrap(),
        d2["certificates"][0]["pem"].as_str().unwrap(),
    ]);
    assert!(v.status.success());
}

#[test]
fn ca_certificates_profile_and_ca_key_stays_in_the_hsm() {
    let env = Env::new();
    env.init_ca();
    for (pem, pathlen) in [(env.root(), None), (env.issuing(), Some("pathlen:0"))] {
        let text = String::from_utf8(
            openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"]).stdout,
        )
        .unwrap();
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("Subject Key Identifier"), "{text}");
        if let Some(p) = pathlen {
            assert!(text.contains(p), "{text}");
            assert!(text.contains("Authority Key Identifier"), "{text}");
        }
        // UTF8String Chinese subject.
        let subj = String::from_utf8(
            openssl(&[
                "x509",
                "-in",
                pem.to_str().unwrap(),
                "-noout",
                "-subject",
                "-nameopt",
                "utf8,sep_comma_plus",
            ])
            .stdout,
        )
        .unwrap();
        assert!(subj.contains("黑龙江省数字证书认证有限公司"), "{subj}");
    }
    let v = openssl(&[
        "verify",
        "-CAfile",
        env.root().to_str().unwrap(),
        env.issuing().to_str().unwrap(),
    ]);
    assert!(v.status.success());
    // The CA keys (root, issuing, seal maker) are on the CA token, sensitive and never
    // extractable; reading one fails.
    let objs = env.objects("hljca-ca", CA_PIN);
    assert_eq!(count(&objs, "Private Key Object"), 3, "{objs}");
    assert_eq!(count(&objs, "never extractable"), 3, "{objs}");
    let id = objs
        .split("Private Key Object")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.trim_start().starts_with("ID:")))
        .map(|l| l.trim().trim_start_matches("ID:").trim().to_owned())
        .unwrap();
    let out = env.dir.path().join("stolen.der");
    let r = Command::new("pkcs11-tool")
        .args([
            "--module",
            &env.module,
            "--token-label",
            "hljca-ca",
            "--login",
            "--pin",
            CA_PIN,
            "--read-object",
            "--type",
            "privkey",
            "--id",
            &id,
            "-o",
            out.to_str().unwrap(),
        ])
        .env("SOFTHSM2_CONF", &env.conf)
        .output()
        .unwrap();
    assert!(
        !r.status.success()
            || std::fs::metadata(&out)
                .map(|m| m.len() == 0)
                .unwrap_or(true),
        "the CA private key was exported"
    );
    // A second init on the same home is refused and changes nothing.
    let before = std::fs::read(env.root()).unwrap();
    let err = env.fails(&["init"], 1);
    assert!(err.contains("already holds a CA"), "{err}");
    assert_eq!(std::fs::read(env.root()).unwrap(), before);
}

#[test]
fn issue_enterprise_records_what_is_on_the_token() {
    let env = Env::new();
    env.init_ca();
    env.token("holder-1");
    let out = env.issue("enterprise", "holder-1");
    let id = &out["certificates"][0];
    let serial = id["serial"].as_str().unwrap();
    let pem = std::path::PathBuf::from(id["pem"].as_str().unwrap());
    assert!(env.openssl_verify(&pem).status.success());
    // Serial: 16 bytes, positive.
    assert_eq!(serial.len(), 32);
    assert!(u8::from_str_radix(&serial[..2], 16).unwrap() < 0x80);
    // The database row holds the same DER as the certificate, and the token serial.
    let der = openssl(&["x509", "-in", pem.to_str().unwrap(), "-outform", "DER"]).stdout;
    let row_hex = env.sql(&format!(
        "select hex(der) from certificates where serial = '{serial}'"
    ));
    assert_eq!(row_hex.to_lowercase(), hex(&der));
    let token_serial = env.json(&["token", "info", "--token", "holder-1"])["token"]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(env.sql(&format!("select token_serial || '|' || status || '|' || key_id from certificates where serial = '{serial}'")),
        format!("{token_serial}|issued|{}", id["key_id"].as_str().unwrap()));
    // The certificate object on the token carries the key's CKA_ID.
    let objs = env.objects("holder-1", USER_PIN);
    let key_id = id["key_id"].as_str().unwrap();
    let paired = objs
        .split("Certificate Object")
        .skip(1)
        .any(|o| o.split("Object;").next().unwrap().contains(key_id));
    assert!(paired, "no certificate object with ID {key_id}: {objs}");
    // cert show / export agree.
    let shown = env.json(&["cert", "show", serial]);
    assert_eq!(shown["status"], "issued");
    let exported = env.dir.path().join("x.der");
    env.ok(&[
        "cert",
        "export",
        serial,
        "--der",
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&exported).unwrap(), der);
    // SQLite: WAL, foreign keys, schema version, mode 0600.
    assert_eq!(env.sql("pragma journal_mode"), "wal");
    assert!(env.sql("pragma user_version").parse::<i64>().unwrap() >= 1);
    assert_eq!(
        std::fs::metadata(env.db()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(env.home.join("hljca.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Identifiers are in the GM/T 0015 extension, not the CN.
    let text = String::from_utf8(
        openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"]).stdout,
    )
    .unwrap();
    assert!(text.contains("1.2.156.10260.4.1.4"), "{text}");
    assert!(
        text.contains("CRL Distribution Points") && text.contains("CA Issuers"),
        "{text}"
    );
}

#[test]
fn token_list_init_info_and_pin_state() {
    let env = Env::new();
    let list = env.json(&["token", "list"]);
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["initialized"] == false)
    );
    env.token("usbkey-a");
    let dup = env.fails(&["token", "init", "--label", "usbkey-a"], 1);
    assert!(dup.contains("already exists"), "{dup}");
    let list = env.json(&["token", "list"]);
    let t = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "usbkey-a")
        .unwrap()
        .clone();
    assert_eq!(t["user_pin"]["locked"], false);
    // By serial too.
    let info = env.json(&["token", "info", "--token", t["serial"].as_str().unwrap()]);
    assert_eq!(info["token"]["label"], "usbkey-a");
    // A wrong PIN is refused and the PIN state is reported.
    let err = env
        .cmd(&["token", "info", "--token", "usbkey-a"])
        .env("HLJCA_USER_PIN", "00000000")
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(
        msg.contains("wrong user PIN") && msg.contains("usbkey-a"),
        "{msg}"
    );
}

#[test]
fn file_key_store_for_development() {
    let env = Env::new();
    let o = env
        .cmd(&["init", "--key-store", "file"])
        .env("HLJCA_CA_PASSPHRASE", "correct horse battery")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = env.home.join("ca/issuing.key.p8");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Encrypted PKCS#8: openssl cannot read it without the passphrase.
    let r = openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        key.to_str().unwrap(),
        "-passin",
        "pass:wrong",
        "-noout",
    ]);
    assert!(!r.status.success());
    env.token("dev-key");
    let app = example("enterprise");
    let o = env
        .cmd(&[
            "issue",
            "--token",
            "dev-key",
            "--applicant",
            app.to_str().unwrap(),
            "--json",
        ])
        .env("HLJCA_CA_PASSPHRASE", "correct horse battery")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        env.openssl_verify(std::path::Path::new(
            v["certificates"][0]["pem"].as_str().unwrap()
        ))
        .status
        .success()
    );
    // Wrong passphrase: clear error, nothing on the token.
    env.token("dev-key-2");
    let o = env
        .cmd(&[
            "issue",
            "--token",
            "dev-key-2",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env("HLJCA_CA_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("passphrase"));
    assert_eq!(count(&env.objects("dev-key-2", USER_PIN), "Object"), 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_reporting_command_speaks_json() {
    let env = Env::new();
    env.init_ca();
    env.token("json-key");
    let out = env.issue("enterprise", "json-key");
    let serial = out["certificates"][0]["serial"].as_str().unwrap();
    env.json(&["crl", "generate"]);
    for args in [
        vec!["status"],
        vec!["config", "show"],
        vec!["ca", "show"],
        vec!["crl", "show"],
        vec!["cert", "list"],
        vec!["cert", "show", serial],
        vec!["token", "list"],
        vec!["token", "info", "--token", "json-key"],
        vec!["policy", "list"],
        vec!["policy", "show", "expert"],
        vec!["audit", "list"],
        vec!["audit", "verify"],
        vec!["bindings", "list"],
        vec!["apps", "list"],
        vec!["orders", "list"],
        vec!["outbox", "list"],
        vec!["ca", "export"],
        vec!["cert", "export", serial],
    ] {
        let v = env.json(&args);
        assert!(v.is_object() || v.is_array(), "{args:?}: {v}");
    }
    let status = env.json(&["status"]);
    assert_eq!(status["certificates"]["issued"], 2);
    assert_eq!(status["last_crl"]["number"], 1);
    // Completions for people's shells; help documents the exit codes.
    for shell in ["bash", "zsh", "fish"] {
        assert!(env.ok(&["completions", shell]).contains("hljca"));
    }
    assert!(
        env.ok(&["--help"])
            .contains("Exit codes: 0 ok, 1 operation failed, 2 bad usage or bad input")
    );
    // Bad usage is exit 2.
    env.fails(&["no-such-command"], 2);
}

#[test]
fn issued_certificates_parse_cleanly_in_x509_parser() {
    use x509_parser::prelude::*;
    let env = Env::new();
    env.init_ca();
    for ty in ["enterprise", "legal-person", "expert"] {
        let label = format!("xp-{ty}");
        env.token(&label);
        let out = env.issue(ty, &label);
        for c in out["certificates"].as_array().unwrap() {
            let pem = std::fs::read(c["pem"].as_str().unwrap()).unwrap();
            let (_, p) = parse_x509_pem(&pem).unwrap();
            let (rest, cert) = X509Certificate::from_der(&p.contents).unwrap();
            assert!(rest.is_empty());
            assert_eq!(cert.version(), X509Version::V3);
            assert!(!cert.is_ca());
            for ext in cert.extensions() {
                // Every extension we write parses; only basicConstraints and keyUsage are critical.
                if ext.critical {
                    assert!(matches!(
                        ext.parsed_extension(),
                        ParsedExtension::BasicConstraints(_) | ParsedExtension::KeyUsage(_)
                    ));
                }
                assert!(
                    !matches!(ext.parsed_extension(), ParsedExtension::ParseError { .. }),
                    "{ty}: {:?}",
                    ext.oid
                );
            }
            // Identifiers are never stuffed into the CN.
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                !cn.chars().any(|ch| ch.is_ascii_digit()),
                "{ty}: CN `{cn}` carries an identifier"
            );
        }
    }
}

#[test]
fn softhsm_quirks_are_a_switch_with_the_lock_in_the_home() {
    let env = Env::new();
    env.init_ca();
    env.token("quirk-a");
    env.ok(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "quirk-a",
        "--applicant",
        example("medical").to_str().unwrap(),
    ]);
    // SoftHSM2 is recognised (auto): its store lock is the home's, not a machine-wide file.
    assert!(env.home.join("run").join("pkcs11.lock").is_file());
    let config = env.home.join("hljca.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    // A value that is not a switch position: refused, naming the setting.
    assert!(original.contains("pkcs11_quirks = \"auto\""), "{original}");
    let set = |v: &str| {
        let text = original.replace(
            "pkcs11_quirks = \"auto\"",
            &format!("pkcs11_quirks = \"{v}\""),
        );
        std::fs::write(&config, text).unwrap()
    };
    set("sometimes");
    let err = env.fails(&["status"], 1);
    assert!(
        err.contains("pkcs11_quirks") || err.contains("sometimes"),
        "{err}"
    );
    // Switched off (as for a real HSM): one process still works on SoftHSM without the lock.
    std::fs::remove_file(env.home.join("run").join("pkcs11.lock")).unwrap();
    set("none");
    env.token("quirk-b");
    env.ok(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "quirk-b",
        "--applicant",
        example("medical").to_str().unwrap(),
    ]);
    assert!(!env.home.join("run").join("pkcs11.lock").exists());
}
