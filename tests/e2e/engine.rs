//! Issue 9: one issuance engine and a CA that cannot be misdirected — the CA token is never a
//! holder token, no silent new database, every certificate checked against the issuing CA,
//! applications claimed before keys are made, leases instead of process ids, crash safety at
//! every stage (failpoints), concurrent writers with a clean audit chain, the seal maker, key
//! algorithms and validity.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::apps::paid;
use crate::support::*;

fn ca_token_objects(env: &Env) -> usize {
    count(&env.objects("hljca-ca", CA_PIN), "Object;")
}

fn holder_objects(env: &Env, label: &str) -> usize {
    count(&env.objects(label, USER_PIN), "Object;")
}

fn issue_args<'a>(ty: &'a str, token: &'a str, app: &'a str) -> Vec<&'a str> {
    vec!["issue", "--type", ty, "--token", token, "--applicant", app]
}

fn spawn(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut c = env.cmd(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn the_ca_token_is_never_a_holder_token_and_a_wrong_pin_always_fails() {
    let env = Env::new();
    env.init_ca();
    let before = ca_token_objects(&env);
    let app = example("enterprise");
    let app = app.to_str().unwrap();
    let serial = env.sql("select 1").len(); // the database is there
    assert_eq!(serial, 1);
    let ca_serial = env.json(&["token", "list"]);
    let ca_serial = ca_serial
        .as_array()
        .or_else(|| ca_serial["tokens"].as_array())
        .unwrap()
        .iter()
        .find(|t| t["label"] == "hljca-ca")
        .map(|t| t["serial"].as_str().unwrap().to_owned())
        .unwrap();
    // Wrong user PIN (the CA session is logged in first in the same process), right PIN, by
    // label, by serial: always refused, nothing written to the CA token.
    for (sel, pin) in [
        ("hljca-ca", "00000000"),
        ("hljca-ca", USER_PIN),
        (ca_serial.as_str(), "00000000"),
        (ca_serial.as_str(), CA_PIN),
    ] {
        let o = env
            .cmd(&issue_args("enterprise", sel, app))
            .env("HLJCA_USER_PIN", pin)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--token {sel}: {err}");
        assert!(err.contains("CA's HSM token"), "{err}");
    }
    assert_eq!(ca_token_objects(&env), before);
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
    assert_eq!(env.sql("select count(*) from issuances"), "0");
    // Renewal, revocation clean-up and batch name the holder token the same way.
    let batch = env.dir.path().join("b.jsonl");
    let line = std::fs::read_to_string(example("medical")).unwrap();
    let mut row: Value = serde_json::from_str(&line).unwrap();
    row["external_id"] = "r1".into();
    row["type"] = "medical".into();
    row["token"] = "hljca-ca".into();
    std::fs::write(&batch, format!("{row}\n")).unwrap();
    let o = env.run(&["batch", "issue", batch.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(ca_token_objects(&env), before);
    // A holder token with a wrong PIN fails even though the CA session is logged in.
    env.token("holder");
    let o = env
        .cmd(&issue_args(
            "medical",
            "holder",
            &example("medical").to_string_lossy(),
        ))
        .env("HLJCA_USER_PIN", "00000000")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("PIN"));
    assert_eq!(holder_objects(&env, "holder"), 0);
    assert_eq!(
        env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status != 'void'"),
        "0"
    );
}

#[test]
fn a_missing_or_empty_database_is_refused_never_recreated() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    env.issue("medical", "k1");
    let db = env.db();
    let kept = env.dir.path().join("kept.db");
    std::fs::rename(&db, &kept).unwrap();
    for args in [
        vec!["cert", "list"],
        vec!["audit", "verify"],
        vec!["status"],
        issue_args("medical", "k1", &example("medical").to_string_lossy()).clone(),
    ] {
        let o = env.run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} ran without its database");
        assert!(
            err.contains("hljca.db") && err.contains("missing"),
            "{args:?}: {err}"
        );
        assert!(!db.exists(), "{args:?} created a new database");
    }
    // Truncated to 0 bytes: refused, left as it is.
    std::fs::write(&db, b"").unwrap();
    let err = env.fails(&["cert", "list"], 1);
    assert!(err.contains("empty"), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    // `init` never overwrites a home; the restored database works again.
    std::fs::rename(&kept, &db).unwrap();
    env.fails(&["init"], 1);
    assert_eq!(
        env.json(&["cert", "list"])
            .as_array()
            .map(Vec::len)
            .unwrap_or(1),
        1
    );
    env.audit_intact();
}

#[test]
fn a_swapped_issuing_certificate_signs_nothing() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let keep = env.dir.path().join("issuing.keep");
    std::fs::copy(env.issuing(), &keep).unwrap();
    self_signed_ec(
        &env.dir.path().join("other.key"),
        &env.issuing(),
        "/CN=Not The Issuing CA",
        "2",
    );
    let o = env.run(&issue_args(
        "medical",
        "k1",
        &example("medical").to_string_lossy(),
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("issuing"), "{err}");
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
    assert_eq!(holder_objects(&env, "k1"), 0);
    // Nor a CRL.
    assert!(!env.run(&["crl", "generate"]).status.success());
    std::fs::copy(&keep, env.issuing()).unwrap();
    let v = env.issue("medical", "k1");
    let pem = v["certificates"][0]["pem"].as_str().unwrap();
    assert!(
        env.openssl_verify(std::path::Path::new(pem))
            .status
            .success()
    );
}

#[test]
fn two_issues_of_one_application_at_once_issue_it_once() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    env.token("k2");
    let id = paid(&env, "medical", &[]);
    let n = id.to_string();
    // Both start together; the first to reserve holds the claim while it makes keys.
    let a = spawn(
        &env,
        &["issue", &n, "--token", "k1"],
        &[("HLJCA_FAILPOINT", "keys:sleep=1500")],
    );
    let b = spawn(
        &env,
        &["issue", &n, "--token", "k2"],
        &[("HLJCA_FAILPOINT", "keys:sleep=1500")],
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok,
        1,
        "exactly one issue succeeds:\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.success() { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("issuing") || err.contains("in progress"),
        "{err}"
    );
    assert_eq!(
        env.sql(&format!(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and application_id = {id}"
        )),
        "1",
        "keys made for one issuance only"
    );
    assert_eq!(
        holder_objects(&env, "k1") + holder_objects(&env, "k2"),
        3,
        "key pair + certificate"
    );
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "issued"
    );
    env.audit_intact();
}

#[test]
fn recover_beside_a_running_issue_leaves_it_alone() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let app = example("enterprise");
    let running = spawn(
        &env,
        &issue_args("enterprise", "k1", app.to_str().unwrap()),
        &[("HLJCA_FAILPOINT", "keys:sleep=4000")],
    );
    // Wait until its keys are on record, then recover.
    let t0 = std::time::Instant::now();
    while env.sql("select count(*) from issuances where stage = 'keys'") != "1" {
        assert!(
            t0.elapsed().as_secs() < 30,
            "issuance never reached stage keys"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let v = env.json(&["recover", "--token", "k1"]);
    assert_eq!(v["issuances"][0]["action"], "in-progress", "{v}");
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'issued'"),
        "2"
    );
    // Keys pkcs11-tool made itself, with a label like ours, are never swept.
    env.keypairgen("k1", "99", "expert identity X");
    let before = holder_objects(&env, "k1");
    let v = env.json(&["recover", "--token", "k1"]);
    assert_eq!(v["issuances"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(holder_objects(&env, "k1"), before);
    env.audit_intact();
}

/// Crashes (abort, as SIGKILL would) right after each stage, then `recover`.
#[test]
fn a_crash_at_every_stage_is_finished_or_voided_by_recover() {
    for (stage, finished) in [
        ("reserved", false),
        ("keys", false),
        ("signed", true),
        ("written", true),
        ("committed", true),
    ] {
        let env = Env::new();
        env.init_ca();
        env.token("k1");
        let app = example("enterprise");
        let o = env
            .cmd(&issue_args("enterprise", "k1", app.to_str().unwrap()))
            .env("HLJCA_FAILPOINT", stage)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{stage}: the failpoint did not fire");
        // Every certificate that was signed has its DER on record.
        let signed = env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and der is not null");
        if stage != "reserved" && stage != "keys" {
            assert_eq!(signed, "2", "{stage}");
        }
        // A second user PIN for all tokens is not how recover works: without one it leaves it.
        let o = env
            .cmd(&["recover"])
            .env_remove("HLJCA_USER_PIN")
            .output()
            .unwrap();
        if stage != "committed" {
            assert_eq!(
                o.status.code(),
                Some(1),
                "{stage}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let v = env.json(&["recover", "--token", "k1"]);
        let action = v["issuances"][0]["action"].clone();
        match (stage, finished) {
            ("committed", _) => assert_eq!(v["issuances"].as_array().unwrap().len(), 0, "{v}"),
            (_, true) => assert_eq!(action, "finished", "{stage}: {v}"),
            (_, false) => assert_eq!(action, "voided", "{stage}: {v}"),
        }
        assert_eq!(
            env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'pending'"),
            "0"
        );
        assert_eq!(
            env.sql("select count(*) from issuances where stage not in ('committed','void')"),
            "0"
        );
        let objects = holder_objects(&env, "k1");
        if finished {
            assert_eq!(
                env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'issued'"),
                "2",
                "{stage}"
            );
            // 2 key pairs, 2 certificates, 1 seal; nothing duplicated.
            let listing = env.objects("k1", USER_PIN);
            assert_eq!(objects, 6, "{stage}: {listing}");
            assert_eq!(count(&listing, "Data object"), 1, "{stage}: {listing}");
            for serial in env.sql("select serial from certificates where role IN ('identity', 'seal', 'encryption')").lines() {
                let pem = env.home.join(format!("certs/{serial}.pem"));
                env.ok(&["cert", "export", serial, "--out", pem.to_str().unwrap()]);
                assert!(env.openssl_verify(&pem).status.success(), "{stage}");
            }
        } else {
            assert_eq!(objects, 0, "{stage}: {}", env.objects("k1", USER_PIN));
            assert_eq!(
                env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'issued'"),
                "0"
            );
            // And the token can be issued to afresh.
            env.issue("enterprise", "k1");
        }
        env.audit_intact();
    }
}

#[test]
fn a_crashed_application_issue_goes_back_to_paid_and_issues_again() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let id = paid(&env, "medical", &[]);
    let n = id.to_string();
    let o = env
        .cmd(&["issue", &n, "--token", "k1"])
        .env("HLJCA_FAILPOINT", "keys")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "issuing"
    );
    let err = env.fails(&["issue", &n, "--token", "k1"], 1);
    assert!(err.contains("issuing"), "{err}");
    env.json(&["recover", "--token", "k1"]);
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "paid"
    );
    let v = env.json(&["issue", &n, "--token", "k1"]);
    assert_eq!(v["application"]["state"], "issued", "{v}");
    assert_eq!(
        env.sql(&format!(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and application_id = {id} and status = 'issued'"
        )),
        "1"
    );
    env.audit_intact();
}

#[test]
fn concurrent_issuers_and_revokers_keep_one_audit_chain() {
    let env = Env::new();
    env.init_ca();
    let app = example("medical");
    let app = app.to_str().unwrap();
    for i in 0..4 {
        env.token(&format!("t{i}"));
        env.token(&format!("r{i}"));
    }
    let mut serials = Vec::new();
    for i in 0..4 {
        for _ in 0..3 {
            let v = env.issue("medical", &format!("r{i}"));
            serials.push(v["certificates"][0]["serial"].as_str().unwrap().to_owned());
        }
    }
    let mut children = Vec::new();
    for i in 0..4 {
        let token = format!("t{i}");
        let script = format!(
            "for j in 1 2 3; do \"$0\" issue --type medical --token {token} --applicant {app} >/dev/null || exit 1; done"
        );
        let mut c = env.cmd(&[]);
        let bin = env!("CARGO_BIN_EXE_hljca");
        c = {
            let mut sh = Command::new("sh");
            sh.args(["-c", &script, bin]);
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            sh
        };
        children.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mine: Vec<String> = serials[i * 3..i * 3 + 3].to_vec();
        let mut args = vec!["-c".to_owned(), String::new(), bin.to_owned()];
        args[1] = mine
            .iter()
            .map(|s| format!("\"$0\" revoke {s} --reason superseded --remove-from-token >/dev/null || exit 1; \"$0\" token init --label d{i}{} >/dev/null || exit 1;", &s[..4]))
            .collect::<String>();
        let mut sh = Command::new("sh");
        sh.args(&args);
        for (k, v) in env.cmd(&[]).get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        children.push(
            sh.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "a concurrent writer failed: {err}");
        assert!(!err.to_lowercase().contains("unique constraint"), "{err}");
    }
    assert_eq!(
        env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'issued'"),
        "12"
    );
    assert_eq!(
        env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status = 'revoked'"),
        "12"
    );
    assert_eq!(
        env.sql("select count(*) from audit_log where action = 'token.init'"),
        "20"
    );
    env.audit_intact();
    // Concurrent CRLs: distinct numbers, and the published one is the newest.
    let kids: Vec<Child> = (0..4)
        .map(|_| spawn(&env, &["crl", "generate"], &[]))
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        env.sql("select count(distinct number) || ' ' || max(number) from crls"),
        "4 4"
    );
    let o = openssl(&[
        "crl",
        "-in",
        env.home.join("crl/issuing.crl").to_str().unwrap(),
        "-inform",
        "DER",
        "-noout",
        "-crlnumber",
    ]);
    let number = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        number.contains("=04") || number.contains("=0x04"),
        "{number}"
    );
    env.audit_intact();
}

#[test]
fn seals_and_anchors_are_signed_by_the_seal_maker_not_the_issuing_key() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let maker = env.home.join("ca/seal-maker.pem");
    assert!(maker.is_file(), "init makes the seal maker");
    // The issuing CA may sign certificates and CRLs only; the seal maker may sign, not certify.
    let text = |p: &std::path::Path| {
        String::from_utf8_lossy(
            &openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-text"]).stdout,
        )
        .into_owned()
    };
    let issuing = text(&env.issuing());
    assert!(
        issuing.contains("Certificate Sign, CRL Sign") && !issuing.contains("Digital Signature"),
        "{issuing}"
    );
    let m = text(&maker);
    assert!(
        m.contains("Digital Signature")
            && !m.contains("Certificate Sign")
            && m.contains("CA:FALSE"),
        "{m}"
    );
    assert!(env.openssl_verify(&maker).status.success());
    let v = env.issue("enterprise", "k1");
    let seal_serial = v["seal"]["seal_cert_serial"].as_str().unwrap();
    env.ok(&["seal", "verify", "--serial", seal_serial, "--from-token"]);
    env.ok(&["crl", "generate"]);
    assert_eq!(env.sql("select signer from audit_anchors"), "seal-maker");
    env.audit_intact();
    // The seal embeds the seal maker's certificate.
    let seal = std::fs::read(v["seal"]["file"].as_str().unwrap()).unwrap();
    let der_path = env.dir.path().join("maker.der");
    openssl_ok(&[
        "x509",
        "-in",
        maker.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der_path.to_str().unwrap(),
    ]);
    let maker_der = std::fs::read(&der_path).unwrap();
    assert!(
        seal.windows(maker_der.len())
            .any(|w| w == maker_der.as_slice())
    );
}

#[test]
fn key_algorithms_follow_the_policy_and_validity_stops_at_the_issuing_ca() {
    let env = Env::new();
    env.ok(&["init", "--root-years", "1", "--issuing-years", "1"]);
    env.token("k1");
    // Calendar years: notAfter is the same day of the month, a year on.
    let dates = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-in",
            env.root().to_str().unwrap(),
            "-noout",
            "-startdate",
            "-enddate",
        ])
        .stdout,
    )
    .into_owned();
    let parts: Vec<&str> = dates
        .lines()
        .map(|l| l.split_once('=').unwrap().1)
        .collect();
    let (nb, na) = (parts[0], parts[1]);
    let year = |s: &str| s.split_whitespace().nth(3).unwrap().parse::<i32>().unwrap();
    assert_eq!(year(na), year(nb) + 1, "{dates}");
    assert_eq!(&na[..6], &nb[..6], "{dates}");
    // RSA-2048 by policy: generated on the token, certified, verified by openssl.
    let policies = env.home.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let medical = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/types/medical.toml"),
    )
    .unwrap();
    std::fs::write(
        policies.join("medical.toml"),
        medical.replace(
            "key_algorithm = \"ec-p256\"",
            "key_algorithm = \"rsa-2048\"",
        ),
    )
    .unwrap();
    // A second later than the CA, the 365 days end after it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = env.run(&issue_args(
        "medical",
        "k1",
        &example("medical").to_string_lossy(),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let serial = env.sql("select serial from certificates where role IN ('identity', 'seal', 'encryption') and status = 'issued'");
    let pem = env.home.join(format!("certs/{serial}.pem"));
    assert!(env.openssl_verify(&pem).status.success());
    let t = String::from_utf8_lossy(
        &openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"]).stdout,
    )
    .into_owned();
    assert!(t.contains("rsaEncryption") && t.contains("2048 bit"), "{t}");
    let objs = env.objects("k1", USER_PIN);
    assert!(objs.contains("RSA 2048"), "{objs}");
    // The 365-day policy would outlive the 1-year issuing CA: cut to it, with a warning.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("issuing CA"),
        "{err}"
    );
    let end = |p: &std::path::Path| {
        String::from_utf8_lossy(
            &openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-enddate"]).stdout,
        )
        .into_owned()
    };
    assert_eq!(end(&pem), end(&env.issuing()));
    // A policy naming an algorithm the engine cannot do is refused when the policies load.
    std::fs::write(
        policies.join("medical.toml"),
        medical.replace("key_algorithm = \"ec-p256\"", "key_algorithm = \"sm2\""),
    )
    .unwrap();
    let err = env.fails(
        &issue_args("medical", "k1", &example("medical").to_string_lossy()),
        2,
    );
    assert!(
        err.contains("key_algorithm") || err.contains("sm2"),
        "{err}"
    );
}

use std::path::Path;

#[test]
fn a_token_write_failing_halfway_abandons_the_issuance_with_its_der_on_record() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let id = paid(&env, "enterprise", &[]);
    let n = id.to_string();
    let o = env
        .cmd(&["issue", &n, "--token", "k1"])
        .env("HLJCA_FAILPOINT", "writing:error")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Both certificates were signed: both are on record, void, with their DER; nothing of
    // them is left on the token; the application is paid again.
    assert_eq!(
        env.sql("select status, der is not null from certificates where role IN ('identity', 'seal', 'encryption') order by role"),
        "void|1\nvoid|1"
    );
    assert_eq!(env.sql("select stage from issuances"), "void");
    assert_eq!(
        holder_objects(&env, "k1"),
        0,
        "{}",
        env.objects("k1", USER_PIN)
    );
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "paid"
    );
    assert!(
        env.sql("select group_concat(action) from audit_log")
            .contains("issuance.void")
    );
    // Then it issues cleanly.
    let v = env.json(&["issue", &n, "--token", "k1"]);
    assert_eq!(v["application"]["state"], "issued");
    for c in v["certificates"].as_array().unwrap() {
        assert!(
            env.openssl_verify(Path::new(c["pem"].as_str().unwrap()))
                .status
                .success()
        );
    }
    env.audit_intact();
}
