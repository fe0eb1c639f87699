//! Bad input: a clear error, a non-zero exit code, and nothing half-written.

use crate::support::*;

fn rows(env: &Env) -> String {
    env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption')")
}

#[test]
fn wrong_user_pin_leaves_nothing() {
    let env = Env::new();
    env.init_ca();
    env.token("pin-test");
    let app = example("enterprise");
    let o = env
        .cmd(&[
            "issue",
            "--token",
            "pin-test",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env("HLJCA_USER_PIN", "99999999")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong user PIN for token `pin-test`"), "{err}");
    assert!(err.contains("PIN"), "the PIN state is reported: {err}");
    assert_eq!(rows(&env), "0");
    assert_eq!(count(&env.objects("pin-test", USER_PIN), "Object"), 0);
}

#[test]
fn wrong_ca_pin_leaves_nothing() {
    let env = Env::new();
    env.init_ca();
    env.token("ca-pin-test");
    let app = example("enterprise");
    let o = env
        .cmd(&[
            "issue",
            "--token",
            "ca-pin-test",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env("HLJCA_CA_PIN", "99999999")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hljca-ca"));
    assert_eq!(rows(&env), "0");
    assert_eq!(count(&env.objects("ca-pin-test", USER_PIN), "Object"), 0);
}

#[test]
fn invalid_applicant_names_the_field_and_leaves_nothing() {
    let env = Env::new();
    env.init_ca();
    env.token("bad-app");
    let mut app: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("enterprise")).unwrap()).unwrap();
    app["legal_rep_id"] = "230103197805142015".into(); // wrong check digit
    app["agent_mobile"] = "12345".into();
    let f = env.dir.path().join("bad.json");
    std::fs::write(&f, app.to_string()).unwrap();
    let err = env.fails(
        &[
            "issue",
            "--token",
            "bad-app",
            "--applicant",
            f.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("legal_rep_id") && err.contains("agent_mobile"),
        "every bad field is named: {err}"
    );
    assert!(err.contains("GB 11643"), "the rule is named: {err}");
    assert_eq!(rows(&env), "0");
    assert_eq!(count(&env.objects("bad-app", USER_PIN), "Object"), 0);
}

#[test]
fn missing_things_give_clear_errors() {
    let env = Env::new();
    // Missing home.
    let err = env.fails(&["cert", "list"], 1);
    assert!(err.contains("not initialised"), "{err}");
    env.init_ca();
    // Missing token.
    let app = example("enterprise");
    let err = env.fails(
        &[
            "issue",
            "--token",
            "no-such-token",
            "--applicant",
            app.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("no-such-token"), "{err}");
    assert_eq!(rows(&env), "0");
    // Missing PKCS#11 module.
    let o = env
        .cmd(&["token", "list"])
        .env("HLJCA_PKCS11_MODULE", "/nonexistent/libpkcs11.so")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/libpkcs11.so"));
    // Unknown type and missing applicant file: bad input, exit 2.
    let err = env.fails(
        &[
            "issue",
            "--type",
            "nonsense",
            "--token",
            "x",
            "--applicant",
            app.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("nonsense"), "{err}");
    env.fails(
        &["issue", "--token", "x", "--applicant", "/nonexistent.json"],
        2,
    );
    // Unknown serial.
    let err = env.fails(&["cert", "show", "00ff"], 2);
    assert!(err.contains("00ff"), "{err}");
    // Missing user PIN with no terminal: says which variable to set.
    let o = env
        .cmd(&[
            "issue",
            "--token",
            "x",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env_remove("HLJCA_USER_PIN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HLJCA_USER_PIN"));
}
