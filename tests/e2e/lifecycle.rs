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
    if crate::support::sqlite_only() {
        return;
    }
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
    if crate::support::sqlite_only() {
        return;
    }
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
    assert_eq!(env.sql(&format!("select amount_fen || '|' || business || '|' || method from orders where cert_serial = '{old}' and business = 'renewal'")), "30000|renewal|cash");
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

/// A "former Daqing platform" CA in `dir` (dq.key, dq.pem), made with openssl once.
fn former_ca(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ca = dir.join("dq.pem");
    if !ca.exists() {
        self_signed_ec(&dir.join("dq.key"), &ca, "/CN=Daqing Platform CA", "365");
    }
    ca
}

/// A leaf certificate `name`.pem issued by the former CA in `dir`, valid for `days`.
fn former_leaf(dir: &Path, name: &str, days: &str) -> std::path::PathBuf {
    former_ca(dir);
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    openssl_csr(
        &dir.join(format!("{name}.key")),
        &dir.join(format!("{name}.csr")),
        "/O=Daqing Oilfield Supplies/CN=Daqing Oilfield Supplies",
    );
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &p(&format!("{name}.csr")),
        "-CA",
        &p("dq.pem"),
        "-CAkey",
        &p("dq.key"),
        "-CAcreateserial",
        "-days",
        days,
        "-out",
        &p(&format!("{name}.pem")),
    ]);
    dir.join(format!("{name}.pem"))
}

/// A CRL of the former CA in `dir` listing `revoked` (openssl ca), as dq.crl (PEM).
fn former_crl(dir: &Path, revoked: &[&Path]) -> std::path::PathBuf {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\ndefault_crl_days = 30\n",
            p("index.txt"),
            p("crlnumber")
        ),
    )
    .unwrap();
    for r in revoked {
        openssl_ok(&[
            "ca",
            "-config",
            &p("ca.cnf"),
            "-keyfile",
            &p("dq.key"),
            "-cert",
            &p("dq.pem"),
            "-revoke",
            r.to_str().unwrap(),
            "-crl_reason",
            "keyCompromise",
        ]);
    }
    openssl_ok(&[
        "ca",
        "-config",
        &p("ca.cnf"),
        "-keyfile",
        &p("dq.key"),
        "-cert",
        &p("dq.pem"),
        "-gencrl",
        "-out",
        &p("dq.crl"),
    ]);
    dir.join("dq.crl")
}

/// Lists the former CA (and CRL) in the home's hljca.toml ([binding]).
fn configure_former(env: &Env, ca: &Path, crl: Option<&Path>) {
    let former = env.home.join("former");
    std::fs::create_dir_all(&former).unwrap();
    std::fs::copy(ca, former.join("daqing-ca.pem")).unwrap();
    let mut section = "\n[binding]\nformer_ca = [\"former/daqing-ca.pem\"]\n".to_owned();
    if let Some(c) = crl {
        std::fs::copy(c, former.join("daqing.crl")).unwrap();
        section.push_str("former_crl = [\"former/daqing.crl\"]\n");
    }
    let cfg = env.home.join("hljca.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = match text.find("\n[binding]") {
        Some(i) => {
            let rest = &text[i + 1..];
            let end = rest.find("\n[").map(|j| i + 1 + j).unwrap_or(text.len());
            format!("{}{}{}", &text[..i], section, &text[end..])
        }
        None => format!("{text}{section}"),
    };
    std::fs::write(&cfg, text).unwrap();
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
    let dir = env.dir.path().join("daqing");
    let leaf = former_leaf(&dir, "leaf", "30");
    let mats = materials(env.dir.path());
    let with_mats = |mut args: Vec<String>| {
        for m in &mats {
            args.push("--material".into());
            args.push(m.clone());
        }
        args
    };
    let run = |args: &[String], code: i32| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.fails(&a, code)
    };
    let pem_args = |p: &Path| -> Vec<String> {
        vec![
            "bind".into(),
            "--pem".into(),
            p.display().to_string(),
            "--site".into(),
            "hegang".into(),
        ]
    };
    // No former CA configured: nothing is accepted, however it looks.
    let err = run(&with_mats(pem_args(&leaf)), 1);
    assert!(err.contains("former_ca"), "{err}");
    configure_former(&env, &dir.join("dq.pem"), None);
    // Materials are required.
    let err = run(&pem_args(&leaf), 1);
    assert!(err.contains("business-licence"), "{err}");
    let a: Vec<String> = with_mats(pem_args(&leaf));
    let b = env.json(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(b["status"], "active");
    assert_eq!(b["site"], "hegang");
    assert!(b["issuer"].as_str().unwrap().contains("Daqing"));
    // Not twice.
    let err = run(&a, 1);
    assert!(err.contains("already bound"), "{err}");
    // From a token: the certificate written there by the other CA's tooling.
    let leaf2 = former_leaf(&dir, "leaf2", "30");
    let der = dir.join("leaf2.der");
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
    let t = with_mats(vec![
        "bind".into(),
        "--token".into(),
        "daqing-key".into(),
        "--site".into(),
        "harbin".into(),
    ]);
    let t = env.json(&t.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(t["source"], "token");
    assert_eq!(
        env.json(&["bindings", "list"])["bindings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A self-signed look-alike, or a certificate of another CA with the same name: refused.
    let other = former_leaf(&env.dir.path().join("impostor"), "leaf", "30");
    let err = run(&with_mats(pem_args(&other)), 1);
    assert!(
        err.contains("not issued by a configured former platform CA"),
        "{err}"
    );
    let selfsigned = env.dir.path().join("self.pem");
    self_signed_ec(
        &env.dir.path().join("self.key"),
        &selfsigned,
        "/CN=other",
        "30",
    );
    let err = run(&with_mats(pem_args(&selfsigned)), 1);
    assert!(
        err.contains("not issued by a configured former platform CA"),
        "{err}"
    );
    // An expired certificate is refused.
    let old = former_leaf(&dir, "old", "0");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = run(&with_mats(pem_args(&old)), 1);
    assert!(err.contains("validity"), "{err}");
    // Revoked by the former CA (its CRL configured): refused; the others still bind.
    let revoked = former_leaf(&dir, "revoked", "30");
    let fine = former_leaf(&dir, "fine", "30");
    let crl = former_crl(&dir, &[&revoked]);
    configure_former(&env, &dir.join("dq.pem"), Some(&crl));
    let err = run(&with_mats(pem_args(&revoked)), 1);
    assert!(err.contains("revoked by the former CA"), "{err}");
    let f = with_mats(pem_args(&fine));
    env.json(&f.iter().map(String::as_str).collect::<Vec<_>>());
    // A bad site is bad input.
    let mut bad_site = with_mats(pem_args(&fine));
    bad_site[4] = "daqing".into();
    run(&bad_site, 2);
    // One of our own certificates needs no binding.
    env.token("ours");
    let ours = env.issue("medical", "ours");
    let own = with_mats(pem_args(Path::new(
        ours["certificates"][0]["pem"].as_str().unwrap(),
    )));
    let err = run(&own, 1);
    assert!(err.contains("issued by this CA"), "{err}");
    assert!(
        env.json(&["audit", "list"])["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "binding.activate")
    );
    env.audit_intact();
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
