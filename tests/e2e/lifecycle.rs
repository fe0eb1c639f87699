//! Issue 5 (first slice): revocation, CRLs checked by openssl, the audit chain.

use std::path::Path;

use crate::support::*;

#[test]
fn revocation_reaches_the_crl_and_openssl_rejects_the_certificate() {
    let env = Env::new();
    env.init_ca();
    env.token("crl-a");
    env.token("crl-b");
    let a = env.issue("medical", "crl-a");
    let b = env.issue("medical", "crl-b");
    let pem_a = a["certificates"][0]["pem"].as_str().unwrap().to_owned();
    let pem_b = b["certificates"][0]["pem"].as_str().unwrap().to_owned();
    let first = env.json(&["crl", "generate"]);
    assert_eq!(first["revoked"], 0);
    env.ok(&[
        "revoke",
        a["certificates"][0]["serial"].as_str().unwrap(),
        "--reason",
        "keyCompromise",
        "--remove-from-token",
    ]);
    assert_eq!(
        count(&env.objects("crl-a", USER_PIN), "Object"),
        0,
        "token objects removed on request"
    );
    let second = env.json(&["crl", "generate"]);
    assert_eq!(
        second["number"].as_i64().unwrap(),
        first["number"].as_i64().unwrap() + 1
    );
    assert_eq!(second["revoked"], 1);
    let crl = second["pem"].as_str().unwrap();
    let v = openssl(&[
        "crl",
        "-in",
        crl,
        "-CAfile",
        env.issuing().to_str().unwrap(),
        "-verify",
        "-noout",
        "-text",
    ]);
    let text = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
    assert!(v.status.success() && text.contains("verify OK"), "{text}");
    assert!(
        text.contains("Key Compromise")
            && text.contains("CRL Number")
            && text.contains("Authority Key Identifier"),
        "{text}"
    );
    let bundle = env.dir.path().join("bundle.pem");
    let mut all = std::fs::read(env.root()).unwrap();
    all.extend(std::fs::read(env.issuing()).unwrap());
    all.extend(std::fs::read(crl).unwrap());
    std::fs::write(&bundle, all).unwrap();
    let check = |pem: &str| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            bundle.to_str().unwrap(),
            pem,
        ])
    };
    let r = check(&pem_a);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("revoked")
            || String::from_utf8_lossy(&r.stderr).contains("revoked")
    );
    assert!(check(&pem_b).status.success());
    // Revoking twice is refused with the state named.
    let err = env.fails(
        &["revoke", a["certificates"][0]["serial"].as_str().unwrap()],
        1,
    );
    assert!(err.contains("revoked"), "{err}");
    assert!(Path::new(env.home.join("crl/issuing.crl").as_path()).exists());
}

#[test]
fn audit_chain_detects_changed_deleted_and_reordered_rows() {
    let env = Env::new();
    env.init_ca();
    env.token("audit-a");
    let a = env.issue("expert", "audit-a");
    env.ok(&["revoke", a["certificates"][0]["serial"].as_str().unwrap()]);
    env.ok(&["crl", "generate"]);
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["intact"], true);
    let actions: Vec<String> = env.json(&["audit", "list"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "ca.init",
        "token.init",
        "cert.issue",
        "cert.revoke",
        "crl.generate",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
    let db = env.db();
    let copy = env.dir.path().join("pristine.db");
    env.sql("pragma wal_checkpoint(TRUNCATE)");
    std::fs::copy(&db, &copy).unwrap();
    let tamper = |sql: &str| {
        std::fs::copy(&copy, &db).unwrap();
        env.sql(sql);
        let o = env.run(&["audit", "verify"]);
        assert_eq!(o.status.code(), Some(1), "audit verify missed: {sql}");
    };
    tamper("update audit_log set details = details || ' ' where seq = 2");
    tamper("update audit_log set operator = 'mallory' where seq = 1");
    tamper("delete from audit_log where seq = 2");
    tamper(
        "update audit_log set seq = seq + 100 where seq = 1; update audit_log set seq = 1 where seq = 2; update audit_log set seq = 2 where seq = 101",
    );
}
