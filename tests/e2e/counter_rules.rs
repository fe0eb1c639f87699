//! Issue 10: counter rules that hold — eligibility before any fee, one holder per USBKEY,
//! renewals that keep the holder, refunds, 副锁 that follow their enterprise certificate, hold
//! and release, expiry read from notAfter, and an audit log that binds the business rows.

use std::path::PathBuf;

use serde_json::Value;

use crate::apps::{add_materials, apply, json_as, paid};
use crate::support::*;

/// The example applicant of `ty` with another organisation's name and USCC.
fn other_org(env: &Env, ty: &str) -> PathBuf {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(example(ty)).unwrap()).unwrap();
    v["uscc"] = "91350100M000100Y43".into();
    v["organization"] = "福州示例建设有限公司".into();
    let p = env.dir.path().join(format!("other-{ty}.json"));
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn issue_from(
    env: &Env,
    ty: &str,
    token: &str,
    applicant: &std::path::Path,
) -> std::process::Output {
    env.run(&[
        "issue",
        "--type",
        ty,
        "--token",
        token,
        "--applicant",
        applicant.to_str().unwrap(),
    ])
}

#[test]
fn a_usbkey_holds_one_holder() {
    let env = Env::new();
    env.init_ca();
    env.token("acme");
    env.issue("enterprise", "acme");
    let before = env.objects("acme", USER_PIN);
    // Another organisation's certificate onto it: refused, naming both holders; nothing written.
    let o = issue_from(&env, "medical", "acme", &other_org(&env, "medical"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("belongs to")
            && err.contains("91230103MA1CXK7R51")
            && err.contains("91350100M000100Y43"),
        "{err}"
    );
    assert_eq!(env.objects("acme", USER_PIN), before);
    // The same organisation's other certificate: fine.
    env.issue("enterprise-secondary", "acme");
    assert_eq!(
        env.sql("select holder_id from token_holders"),
        "91230103MA1CXK7R51"
    );
    env.audit_intact();
}

#[test]
fn no_fee_is_taken_for_what_cannot_be_issued() {
    let env = Env::new();
    env.init_ca();
    // 副锁 with no enterprise certificate for its USCC: refused at apply.
    let sec = example("enterprise-secondary");
    let err = env.fails(
        &[
            "apply",
            "--type",
            "enterprise-secondary",
            "--applicant",
            sec.to_str().unwrap(),
            "--site",
            "harbin",
        ],
        1,
    );
    assert!(
        err.contains("enterprise-secondary") && err.contains("91230103MA1CXK7R51"),
        "{err}"
    );
    assert_eq!(env.sql("select count(*) from applications"), "0");
    // With the enterprise certificate it may apply; if that certificate is revoked before the
    // fee, `pay` refuses (the check runs again at every step), and no order is written.
    env.token("ent");
    let ent = env.issue("enterprise", "ent");
    let ent_serial = ent["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = apply(&env, "enterprise-secondary", &[]);
    let n = id.to_string();
    add_materials(&env, id, "enterprise-secondary");
    env.ok(&["submit", &n]);
    json_as(&env, "reviewer", &["review", "approve", &n]);
    env.ok(&["revoke", &ent_serial, "--reason", "cessationOfOperation"]);
    let err = env.fails(&["pay", &n, "--method", "cash"], 1);
    assert!(
        err.contains("副锁") || err.contains("enterprise-secondary"),
        "{err}"
    );
    assert_eq!(
        env.sql(&format!(
            "select count(*) from orders where application_id = {id}"
        )),
        "0"
    );
    env.audit_intact();
}

#[test]
fn a_paid_application_is_cancelled_with_its_refund() {
    let env = Env::new();
    env.init_ca();
    let id = paid(&env, "medical", &[]);
    let n = id.to_string();
    let err = env.fails(&["cancel", &n], 2);
    assert!(err.contains("--refund-method"), "{err}");
    env.fails(&["cancel", &n, "--refund-method", "qr-wechat"], 2);
    // Four eyes: the cashier who took the payment (the admin) may not refund it.
    let err = env.fails(
        &[
            "cancel",
            &n,
            "--refund-method",
            "qr-wechat",
            "--refund-reference",
            "RF-1",
        ],
        1,
    );
    assert!(err.contains("four eyes"), "{err}");
    let o = env
        .cmd_as(
            "cashier2",
            &[
                "cancel",
                &n,
                "--refund-method",
                "qr-wechat",
                "--refund-reference",
                "RF-1",
                "--reason",
                "applicant withdrew",
                "--json",
            ],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "cancelled", "{v}");
    let orders = env.json(&["orders", "list", "--app", &n]);
    let list = orders["orders"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{orders}");
    assert_eq!(list[1]["business"], "refund");
    assert_eq!(list[1]["amount_fen"], list[0]["amount_fen"]);
    assert_eq!(list[1]["refund_of"], list[0]["id"]);
    assert_eq!(list[1]["reference"], "RF-1");
    assert!(
        env.sql("select details from audit_log where action = 'app.cancel'")
            .contains("refund")
    );
    // Nothing was paid for a draft: a refund there is refused.
    let d = apply(&env, "medical", &[]).to_string();
    env.fails(&["cancel", &d, "--refund-method", "cash"], 2);
    env.audit_intact();
}

#[test]
fn a_renewal_keeps_its_holder() {
    let env = Env::new();
    env.init_ca();
    env.token("lp");
    let old = env.issue("legal-person", "lp");
    let serial = old["certificates"][0]["serial"].as_str().unwrap();
    env.days_from_now(300);
    let other = other_org(&env, "legal-person");
    let err = env.fails(
        &[
            "apply",
            "--type",
            "legal-person",
            "--applicant",
            other.to_str().unwrap(),
            "--renewal-of",
            serial,
            "--site",
            "harbin",
        ],
        1,
    );
    assert!(
        err.contains("same holder") || err.contains("keeps the holder"),
        "{err}"
    );
    // The holder itself, inside the window: fine.
    let app = example("legal-person");
    env.ok(&[
        "apply",
        "--type",
        "legal-person",
        "--applicant",
        app.to_str().unwrap(),
        "--renewal-of",
        serial,
        "--site",
        "harbin",
    ]);
}

#[test]
fn secondary_certificates_follow_their_last_enterprise_certificate() {
    let env = Env::new();
    env.init_ca();
    for t in ["e1", "e2", "s1"] {
        env.token(t);
    }
    let e1 = env.issue("enterprise", "e1")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let e2 = env.issue("enterprise", "e2")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let s1 = env.issue("enterprise-secondary", "s1")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    // One of two enterprise certificates: the 副锁 stays.
    let r = env.json(&["revoke", &e1, "--reason", "superseded"]);
    assert_eq!(r["secondary_revoked"], serde_json::json!([]), "{r}");
    // The last one: the 副锁 goes with it, in the same transaction, listed.
    let r = env.json(&["revoke", &e2, "--reason", "cessationOfOperation"]);
    assert_eq!(r["secondary_revoked"], serde_json::json!([s1]), "{r}");
    assert_eq!(
        env.sql(&format!(
            "select status || '|' || revocation_reason from certificates where serial = '{s1}'"
        )),
        "revoked|cessationOfOperation"
    );
    // --keep-secondary keeps and reports.
    let env2 = Env::new();
    env2.init_ca();
    env2.token("e");
    env2.token("s");
    let e = env2.issue("enterprise", "e")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = env2.issue("enterprise-secondary", "s")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = env2.json(&["revoke", &e, "--keep-secondary"]);
    assert_eq!(r["secondary_kept"], serde_json::json!([s]), "{r}");
    assert_eq!(
        env2.sql(&format!(
            "select status from certificates where serial = '{s}'"
        )),
        "issued"
    );
    env.audit_intact();
    env2.audit_intact();
}

fn crl_text(env: &Env) -> String {
    let p = env.home.join("crl/issuing.crl");
    String::from_utf8_lossy(
        &openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            p.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .stdout,
    )
    .into_owned()
}

#[test]
fn hold_can_be_released_or_made_final() {
    let env = Env::new();
    env.init_ca();
    env.token("m");
    let m = env.issue("medical", "m")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_uppercase();
    env.ok(&["revoke", &m, "--reason", "certificateHold"]);
    env.ok(&["crl", "generate"]);
    let t = crl_text(&env);
    assert!(t.contains(&m) && t.contains("Certificate Hold"), "{t}");
    // Released: issued again and off the next CRL.
    env.ok(&["release", &m]);
    assert_eq!(env.json(&["cert", "show", &m])["status"], "issued");
    env.ok(&["crl", "generate"]);
    assert!(!crl_text(&env).contains(&m));
    env.fails(&["release", &m], 1);
    // Held again, then revoked for good: the reason becomes final.
    env.ok(&["revoke", &m, "--reason", "certificateHold"]);
    let r = env.json(&["revoke", &m, "--reason", "keyCompromise"]);
    assert_eq!(r["hold_made_final"], true, "{r}");
    env.ok(&["crl", "generate"]);
    let t = crl_text(&env);
    assert!(t.contains(&m) && t.contains("Key Compromise"), "{t}");
    env.fails(&["release", &m], 1);
    env.audit_intact();
}

#[test]
fn reminders_skip_expired_certificates() {
    let env = Env::new();
    env.init_ca();
    env.token("m");
    env.issue("medical", "m");
    env.days_from_now(350);
    let v = env.json(&["remind", "--within", "30d"]);
    assert_eq!(v["queued"].as_array().unwrap().len(), 1, "{v}");
    env.days_from_now(400);
    let v = env.json(&["remind", "--within", "30d"]);
    assert_eq!(v["queued"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(
        env.json(&["cert", "list", "--status", "expired"])["certificates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The CA's own working certificates (operator, OCSP signer) are still issued.
    assert_eq!(
        holder_rows(&env.json(&["cert", "list", "--status", "issued"])).len(),
        0
    );
}

#[test]
fn audit_verify_catches_business_rows_edited_outside_hljca() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    env.token("m");
    let serial = env.issue("medical", "m")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = paid(&env, "medical", &[]);
    env.ok(&["revoke", &serial, "--reason", "keyCompromise"]);
    env.audit_intact();
    let db = env.db();
    let keep = env.dir.path().join("keep.db");
    for edit in [
        "update orders set amount_fen = 1".to_owned(),
        format!("update certificates set status = 'issued' where serial = '{serial}'"),
        format!("update applications set state = 'issued' where id = {id}"),
        "delete from orders where business = 'revocation'".to_owned(),
        "insert into orders (business, cert_type, amount_fen, method, operator, paid_at) values ('first', 'medical', 5, 'cash', 'x', 'y')".to_owned(),
        "update token_holders set holder_id = '91350100M000100Y43'".to_owned(),
    ] {
        std::fs::copy(&db, &keep).unwrap();
        env.sql(&edit);
        let err = env.fails(&["audit", "verify"], 1);
        assert!(err.contains("outside hljca"), "{edit}: {err}");
        std::fs::copy(&keep, &db).unwrap();
        let _ = std::fs::remove_file(env.home.join("hljca.db-wal"));
        let _ = std::fs::remove_file(env.home.join("hljca.db-shm"));
        env.audit_intact();
    }
}
