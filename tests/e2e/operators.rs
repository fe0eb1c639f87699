//! Issue 11: operators are who they say they are — operator USBKEYs, login by proof of
//! possession, roles, four eyes on real identities, and audit rows the operators sign.

use std::process::Output;

use serde_json::Value;

use crate::apps::{add_materials, apply};
use crate::support::*;

/// Runs `args` logged in with operator USBKEY `token` and `pin`.
fn run_with(env: &Env, token: Option<&str>, pin: &str, args: &[&str]) -> Output {
    let mut c = env.cmd(args);
    match token {
        Some(t) => c.env("HLJCA_OPERATOR_TOKEN", t),
        None => c.env_remove("HLJCA_OPERATOR_TOKEN"),
    };
    c.env("HLJCA_OPERATOR_PIN", pin).output().unwrap()
}

fn audit_rows(env: &Env) -> String {
    env.sql("select count(*) from audit_log")
}

#[test]
fn init_enrols_the_first_administrator_and_a_typed_name_is_not_an_operator() {
    let env = Env::new();
    env.init_ca();
    let ops = env.json(&["operator", "list"]);
    let list = ops["operators"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{ops}");
    assert_eq!(list[0]["token_label"], ADMIN_TOKEN);
    assert_eq!(list[0]["roles"].as_array().unwrap().len(), 6);
    // The operator certificate: issued by the issuing CA, clientAuth, on the admin's USBKEY.
    let der = env.dir.path().join("op.der");
    std::fs::write(&der, hex_decode(&env.sql("select hex(der) from operators"))).unwrap();
    let text = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .stdout,
    )
    .into_owned();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    let pem = env.dir.path().join("op.pem");
    openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(env.openssl_verify(&pem).status.success());
    assert!(
        env.objects(ADMIN_TOKEN, USER_PIN)
            .contains("hljca-operator")
    );
    // No token: refused, exit 2, nothing written; a typed name means nothing.
    env.token("k1");
    let before = audit_rows(&env);
    let o = run_with(&env, None, USER_PIN, &["token", "init", "--label", "k2"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("HLJCA_OPERATOR_TOKEN"));
    let o = env
        .cmd(&["token", "init", "--label", "k2"])
        .env_remove("HLJCA_OPERATOR_TOKEN")
        .env("HLJCA_OPERATOR", "bob")
        .env("USER", "bob")
        .output()
        .unwrap();
    assert!(!o.status.success());
    // Wrong PIN: refused (a token failure), nothing written.
    let o = run_with(
        &env,
        Some(ADMIN_TOKEN),
        "00000000",
        &["token", "init", "--label", "k2"],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("HLJCA_OPERATOR_PIN"),
        "the hint names the operator PIN"
    );
    assert_eq!(audit_rows(&env), before);
    assert!(!env.json(&["token", "list"]).to_string().contains("\"k2\""));
    // Read-only commands need no login.
    for args in [
        &["cert", "list"][..],
        &["status"],
        &["audit", "verify"],
        &["policy", "list"],
        &["operator", "list"],
    ] {
        let o = run_with(&env, None, "", args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn roles_bound_what_each_operator_may_do() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    let serial = env.issue("medical", "k1")["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let reviewer = env.operator("张审核", "reviewer");
    let before = audit_rows(&env);
    // A reviewer cannot revoke, issue, pay or enrol operators: exit 2, naming the role.
    for (args, role) in [
        (vec!["revoke", serial.as_str()], "ca-admin"),
        (vec!["crl", "generate"], "ca-admin"),
        (vec!["token", "init", "--label", "x1"], "issuer"),
        (
            vec![
                "operator", "add", "--name", "x", "--site", "harbin", "--roles", "auditor",
                "--token", "k1",
            ],
            "ca-admin",
        ),
        (vec!["audit", "list"], "auditor"),
    ] {
        let o = run_with(&env, Some(&reviewer), USER_PIN, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(role), "{args:?}: {err}");
    }
    assert_eq!(audit_rows(&env), before, "a refused step writes nothing");
    assert_eq!(env.json(&["cert", "show", &serial])["status"], "issued");
    // Roles can be changed by a ca-admin; then the reviewer may read the audit log.
    let ser = env.json(&["operator", "list"])["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["token_label"] == reviewer.as_str())
        .unwrap()["cert_serial"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["operator", "roles", &ser, "--set", "reviewer,auditor"]);
    assert!(
        run_with(&env, Some(&reviewer), USER_PIN, &["audit", "list"])
            .status
            .success()
    );
    // Revoked: cannot log in any more.
    env.ok(&["operator", "revoke", &ser, "--reason", "left the company"]);
    let o = run_with(&env, Some(&reviewer), USER_PIN, &["audit", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("revoked"));
    // The last ca-admin cannot be revoked.
    let admin = env.sql("select cert_serial from operators where token_label = 'hljca-admin'");
    let err = env.fails(&["operator", "revoke", &admin], 1);
    assert!(err.contains("last active ca-admin"), "{err}");
    env.audit_intact();
}

#[test]
fn a_customer_usbkey_or_an_expired_certificate_is_no_operator() {
    let env = Env::new();
    env.init_ca();
    env.token("cust");
    env.issue("medical", "cust");
    // A customer's USBKEY holds no operator certificate.
    let o = run_with(
        &env,
        Some("cust"),
        USER_PIN,
        &["token", "init", "--label", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no operator certificate"));
    // An operator cannot be enrolled onto a customer's USBKEY, nor onto the CA token.
    let err = env.fails(
        &[
            "operator", "add", "--name", "x", "--site", "harbin", "--roles", "issuer", "--token",
            "cust",
        ],
        1,
    );
    assert!(err.contains("belongs to the customer"), "{err}");
    let o = env.run(&[
        "operator", "add", "--name", "x", "--site", "harbin", "--roles", "issuer", "--token",
        "hljca-ca",
    ]);
    assert!(!o.status.success());
    // Three years and a day on, the administrator's certificate has expired.
    env.days_from_now(3 * 366);
    let o = env.run(&["token", "init", "--label", "late"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid now"));
}

#[test]
fn a_counter_flow_by_four_operators_and_four_eyes_on_their_certificates() {
    let env = Env::new();
    env.init_ca();
    let registrar = env.operator("李登记", "registrar");
    let reviewer = env.operator("张审核", "reviewer");
    let cashier = env.operator("王收费", "cashier");
    let issuer = env.operator("赵发证", "issuer");
    let as_ = |tok: &str, args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = run_with(&env, Some(tok), USER_PIN, &a);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    env.token("cust");
    let app = example("medical");
    let id = as_(
        &registrar,
        &[
            "apply",
            "--type",
            "medical",
            "--applicant",
            app.to_str().unwrap(),
            "--site",
            "harbin",
        ],
    )["id"]
        .as_i64()
        .unwrap();
    let n = id.to_string();
    for (i, kind) in [
        "application-form",
        "practising-licence",
        "legal-rep-id-copy",
        "agent-id-copy",
    ]
    .iter()
    .enumerate()
    {
        let f = env.dir.path().join(format!("{i}.pdf"));
        std::fs::write(&f, format!("%PDF-1.4\n% {kind}\n%%EOF\n")).unwrap();
        let o = run_with(
            &env,
            Some(&registrar),
            USER_PIN,
            &["materials", "add", &n, kind, f.to_str().unwrap()],
        );
        if !o.status.success() {
            // Not every kind belongs to the type; the policy decides.
            continue;
        }
    }
    as_(&registrar, &["submit", &n]);
    // The registrar may not approve (no reviewer role); the reviewer may.
    let o = run_with(&env, Some(&registrar), USER_PIN, &["review", "approve", &n]);
    assert_eq!(o.status.code(), Some(2));
    as_(&reviewer, &["review", "approve", &n]);
    // The cashier takes the fee; the issuer may not.
    let o = run_with(
        &env,
        Some(&issuer),
        USER_PIN,
        &["pay", &n, "--method", "cash"],
    );
    assert_eq!(o.status.code(), Some(2));
    as_(&cashier, &["pay", &n, "--method", "cash"]);
    as_(&issuer, &["issue", &n, "--token", "cust"]);
    let row = env.sql(&format!(
        "select submitted_by || '|' || reviewed_by from applications where id = {id}"
    ));
    assert!(
        row.starts_with("李登记 (") && row.contains("|张审核 ("),
        "{row}"
    );
    // The audit rows name who did each step, by certificate, and each is signed by them.
    let who = env.sql("select group_concat(distinct operator_cert) from audit_log where operator_cert is not null");
    assert_eq!(who.split(',').count(), 5, "admin + four operators: {who}");
    env.audit_intact();
    // Four eyes on identities: an operator with both roles cannot review what they submitted.
    let both = env.operator("孙两岗", "registrar,reviewer");
    let id2 = apply(&env, "medical", &[]);
    add_materials(&env, id2, "medical");
    let n2 = id2.to_string();
    let o = run_with(&env, Some(&both), USER_PIN, &["submit", &n2]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_with(&env, Some(&both), USER_PIN, &["review", "approve", &n2]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("four eyes"));
}

#[test]
fn audit_verify_catches_altered_or_reattributed_signatures() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    env.issue("medical", "k1");
    let other = env.operator("钱其他", "issuer");
    let _ = other;
    env.audit_intact();
    let db = env.db();
    let keep = env.dir.path().join("keep.db");
    let other_cert = env.sql("select cert_serial from operators where token_label = 'op-钱其他'");
    let last = env.sql("select max(seq) from audit_log where operator_cert is not null and operator_cert != (select cert_serial from operators where token_label = 'op-钱其他')");
    for edit in [
        // Re-attributed to another operator.
        format!("update audit_log set operator_cert = '{other_cert}' where seq = {last}"),
        // Signature altered.
        format!("update audit_log set signature = randomblob(70) where seq = {last}"),
        // Signature stripped.
        format!("update audit_log set signature = NULL, operator_cert = NULL where seq = {last}"),
    ] {
        std::fs::copy(&db, &keep).unwrap();
        env.sql(&edit);
        let err = env.fails(&["audit", "verify"], 1);
        assert!(
            err.contains("signature") || err.contains("signed"),
            "{edit}: {err}"
        );
        std::fs::copy(&keep, &db).unwrap();
        let _ = std::fs::remove_file(env.home.join("hljca.db-wal"));
        let _ = std::fs::remove_file(env.home.join("hljca.db-shm"));
    }
    env.audit_intact();
}

#[test]
fn direct_issuance_books_its_fee_or_says_why_it_is_free() {
    let env = Env::new();
    env.init_ca();
    env.token("k1");
    env.token("k2");
    let app = example("medical");
    let v = env.json(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "k1",
        "--applicant",
        app.to_str().unwrap(),
        "--method",
        "qr-alipay",
        "--reference",
        "ALI-9",
    ]);
    let serial = v["certificates"][0]["serial"].as_str().unwrap();
    assert_eq!(
        env.sql(&format!("select business || '|' || amount_fen || '|' || method || '|' || reference from orders where cert_serial = '{serial}'")),
        "first|30000|qr-alipay|ALI-9"
    );
    env.fails(
        &[
            "issue",
            "--type",
            "medical",
            "--token",
            "k2",
            "--applicant",
            app.to_str().unwrap(),
            "--free",
        ],
        2,
    );
    let v = env.json(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "k2",
        "--applicant",
        app.to_str().unwrap(),
        "--free",
        "--reason",
        "replacement for a faulty USBKEY",
    ]);
    let serial = v["certificates"][0]["serial"].as_str().unwrap();
    assert_eq!(
        env.sql(&format!("select amount_fen || '|' || method || '|' || reference from orders where cert_serial = '{serial}'")),
        "0|free|replacement for a faulty USBKEY"
    );
    // Only a ca-admin issues without an application.
    let issuer = env.operator("赵发证", "issuer");
    env.token("k3");
    let o = run_with(
        &env,
        Some(&issuer),
        USER_PIN,
        &[
            "issue",
            "--type",
            "medical",
            "--token",
            "k3",
            "--applicant",
            app.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ca-admin"));
}
