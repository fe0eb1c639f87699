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
    let serial_a = a["certificates"][0]["serial"].as_str().unwrap();
    assert_eq!(
        env.sql(&format!("select amount_fen || '|' || method from orders where business = 'revocation' and cert_serial = '{serial_a}'")),
        "0|free",
        "revocation is free of charge and recorded"
    );
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
    // Cutting the newest rows leaves a valid chain, but the head signed with the CRL is gone.
    let cut = |sql: &str, why: &str| {
        std::fs::copy(&copy, &db).unwrap();
        env.sql(sql);
        let o = env.run(&["audit", "verify"]);
        assert_eq!(o.status.code(), Some(1), "audit verify missed: {sql}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{sql}: {err}");
    };
    cut(
        "delete from audit_log where seq = (select max(seq) from audit_log)",
        "the log was cut",
    );
    cut(
        "update audit_anchors set at = '2000-01-01T00:00:00Z'",
        "anchor",
    );
    // Untouched, the anchors verify.
    std::fs::copy(&copy, &db).unwrap();
    let v = env.json(&["audit", "verify"]);
    assert!(v["anchors"].as_u64().unwrap() >= 1, "{v}");
}

fn set_window(env: &Env, days: u32) {
    let cfg = env.home.join("hljca.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = regex_replace_window(&text, days);
    std::fs::write(&cfg, text).unwrap();
}

fn regex_replace_window(text: &str, days: u32) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("renewal_window_days") {
                format!("renewal_window_days = {days}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn renewal_window_edges_fee_and_token_objects() {
    let env = Env::new();
    env.init_ca();
    env.token("renew-me");
    let first = env.issue("enterprise", "renew-me");
    let old = first["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_seal = first["certificates"][1]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    // Default window (90 days) on a fresh one-year certificate: refused, naming the opening date.
    let err = env.fails(&["renew", &old, "--method", "cash"], 1);
    assert!(err.contains("renewal opens on"), "{err}");
    // One payment rule for pay and renew: a QR payment needs its reference (exit 2).
    let err = env.fails(&["renew", &old, "--method", "qr-wechat"], 2);
    assert!(err.contains("--reference"), "{err}");
    // A window one day shorter than the remaining validity: still refused; one day longer: allowed.
    set_window(&env, 364);
    env.fails(&["renew", &old, "--method", "cash"], 1);
    set_window(&env, 366);
    let r = env.json(&["renew", &old, "--method", "cash", "--reference", "R-1"]);
    assert_eq!(r["fee_fen"], 30000, "enterprise annual fee");
    let new = r["issued"]["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(
        r["issued"]["certificates"].as_array().unwrap().len(),
        2,
        "the seal is renewed too"
    );
    for c in r["issued"]["certificates"].as_array().unwrap() {
        assert!(
            env.openssl_verify(Path::new(c["pem"].as_str().unwrap()))
                .status
                .success()
        );
    }
    assert_eq!(
        env.sql(&format!(
            "select status from certificates where serial in ('{old}', '{old_seal}')"
        )),
        "superseded\nsuperseded"
    );
    assert_eq!(env.sql(&format!("select amount_fen || '|' || business || '|' || method from orders where cert_serial = '{old}'")), "30000|renewal|cash");
    // The days paid for are kept: the new year runs on from the old notAfter (issue 10).
    assert_eq!(
        env.sql(&format!(
            "select cast(round(julianday(n.not_after) - julianday(o.not_after)) as integer) \
             from certificates n, certificates o where n.serial = '{new}' and o.serial = '{old}'"
        )),
        "365"
    );
    // Same token, old objects gone, new ones there.
    let objs = env.objects("renew-me", USER_PIN);
    assert_eq!(count(&objs, "Private Key Object"), 2, "{objs}");
    assert!(
        !objs.contains(first["certificates"][0]["key_id"].as_str().unwrap()),
        "{objs}"
    );
    assert!(
        objs.contains(r["issued"]["certificates"][0]["key_id"].as_str().unwrap()),
        "{objs}"
    );
    // A superseded certificate cannot be renewed again; an expired one is refused with what to do.
    let err = env.fails(&["renew", &old, "--method", "cash"], 1);
    assert!(err.contains("superseded"), "{err}");
    // Two years and more on (the CA's clock), the new one has expired: refused, saying what to do;
    // it reads as expired, not issued.
    env.days_from_now(800);
    let err = env.fails(&["renew", &new, "--method", "cash"], 1);
    assert!(err.contains("expired") && err.contains("apply"), "{err}");
    assert_eq!(env.json(&["cert", "show", &new])["status"], "expired");
    let st = env.json(&["status"]);
    assert_eq!(st["certificates"]["expired"], 2, "{st}");
    // Expiry queries: 20 days before it ends.
    env.days_from_now(710);
    let soon = env.json(&["cert", "list", "--expiring-within", "30d"]);
    let serials: Vec<&str> = soon["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert!(serials.contains(&new.as_str()), "{soon}");
    assert!(!serials.contains(&old.as_str()));
    assert!(env.json(&["audit", "verify"])["intact"] == true);
}

/// A "former Daqing platform" CA and a leaf certificate it issued, made with openssl.
fn foreign_cert(dir: &Path, days: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    self_signed_ec(
        &dir.join("dq.key"),
        &dir.join("dq.pem"),
        "/CN=Daqing Platform CA",
        "365",
    );
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("leaf.key"),
        "-subj",
        "/O=Daqing Oilfield Supplies/CN=Daqing Oilfield Supplies",
        "-out",
        &p("leaf.csr"),
    ]);
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("dq.pem"),
        "-CAkey",
        &p("dq.key"),
        "-CAcreateserial",
        "-days",
        days,
        "-out",
        &p("leaf.pem"),
    ]);
    (dir.join("leaf.pem"), dir.join("dq.pem"))
}

fn materials(dir: &Path) -> Vec<String> {
    ["business-licence", "legal-rep-id-copy", "agent-id-copy"]
        .iter()
        .map(|k| {
            let f = dir.join(format!("{k}.pdf"));
            std::fs::write(&f, format!("%PDF-1.4\n% {k}\n")).unwrap();
            format!("{k}={}", f.display())
        })
        .collect()
}

#[test]
fn cross_platform_binding() {
    let env = Env::new();
    env.init_ca();
    let dir = env.dir.path();
    let (leaf, dq) = foreign_cert(dir, "30");
    let mats = materials(dir);
    let mut args = vec![
        "bind",
        "--pem",
        leaf.to_str().unwrap(),
        "--issuer-ca",
        dq.to_str().unwrap(),
    ];
    // Materials are required.
    let err = env.fails(&args, 1);
    assert!(err.contains("business-licence"), "{err}");
    for m in &mats {
        args.push("--material");
        args.push(m);
    }
    let b = env.json(&args);
    assert_eq!(b["status"], "active");
    assert!(b["issuer"].as_str().unwrap().contains("Daqing"));
    // Not twice.
    let err = env.fails(&args, 1);
    assert!(err.contains("already bound"), "{err}");
    // From a token: the certificate written there by the other CA's tooling.
    let der = dir.join("leaf2.der");
    let (leaf2, _) = foreign_cert(&dir.join("second").tap_mkdir(), "30");
    openssl_ok(&[
        "x509",
        "-in",
        leaf2.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    env.token("daqing-key");
    let w = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            &env.module,
            "--token-label",
            "daqing-key",
            "--login",
            "--pin",
            USER_PIN,
            "--write-object",
            der.to_str().unwrap(),
            "--type",
            "cert",
            "--id",
            "01",
            "--label",
            "daqing",
        ])
        .env("SOFTHSM2_CONF", &env.conf)
        .output()
        .unwrap();
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let mut targs = vec!["bind", "--token", "daqing-key"];
    for m in &mats {
        targs.push("--material");
        targs.push(m);
    }
    let t = env.json(&targs);
    assert_eq!(t["source"], "token");
    assert_eq!(
        env.json(&["bindings", "list"])["bindings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A certificate signed by someone else than the named CA is refused.
    let (other, _) = foreign_cert(&dir.join("third").tap_mkdir(), "30");
    let mut bad = vec![
        "bind",
        "--pem",
        other.to_str().unwrap(),
        "--issuer-ca",
        dq.to_str().unwrap(),
    ];
    for m in &mats {
        bad.push("--material");
        bad.push(m);
    }
    let err = env.fails(&bad, 1);
    assert!(err.contains("not signed"), "{err}");
    // An expired certificate is refused.
    let (old, _) = foreign_cert(&dir.join("fourth").tap_mkdir(), "0");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut exp = vec!["bind", "--pem", old.to_str().unwrap()];
    for m in &mats {
        exp.push("--material");
        exp.push(m);
    }
    let err = env.fails(&exp, 1);
    assert!(err.contains("validity"), "{err}");
    // One of our own certificates needs no binding.
    env.token("ours");
    let ours = env.issue("medical", "ours");
    let mut own = vec![
        "bind",
        "--pem",
        ours["certificates"][0]["pem"].as_str().unwrap(),
    ];
    for m in &mats {
        own.push("--material");
        own.push(m);
    }
    let err = env.fails(&own, 1);
    assert!(err.contains("issued by this CA"), "{err}");
    assert!(
        env.json(&["audit", "list"])["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "binding.activate")
    );
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn seal_of_an_expired_certificate_does_not_verify() {
    let env = Env::new();
    env.init_ca();
    env.token("exp-seal");
    let out = env.issue("expert", "exp-seal");
    let file = out["seal"]["file"].as_str().unwrap();
    assert_eq!(
        env.json(&[
            "seal",
            "verify",
            "--file",
            file,
            "--at",
            "2027-01-01T00:00:00Z"
        ])["valid"],
        true
    );
    let err = env.fails(
        &[
            "seal",
            "verify",
            "--file",
            file,
            "--at",
            "2030-01-01T00:00:00Z",
        ],
        1,
    );
    assert!(err.contains("validity") || err.contains("expired"), "{err}");
}

#[test]
fn pin_change_and_unblock_are_audited() {
    let env = Env::new();
    env.init_ca();
    env.token("pins");
    let o = env
        .cmd(&["token", "change-pin", "--token", "pins"])
        .env("HLJCA_NEW_USER_PIN", "13572468")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.objects("pins", "13572468");
    let o = env
        .cmd(&["token", "unblock", "--token", "pins"])
        .env("HLJCA_NEW_USER_PIN", USER_PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.objects("pins", USER_PIN);
    let actions: Vec<String> = env.json(&["audit", "list"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"token.change-pin".to_owned())
            && actions.contains(&"token.unblock".to_owned()),
        "{actions:?}"
    );
}
