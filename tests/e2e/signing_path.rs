//! One signing path (issue 19, item 2): every certificate the CA signs is a `certificates` row
//! with its role, so an operator's certificate revoked with `operator revoke` is on the next
//! CRL (`openssl crl`) and `revoked` in OCSP (`openssl ocsp`); operator and API TLS
//! certificates carry the CRL DP and AIA that holder certificates carry.

use std::path::Path;
use std::process::Command;

use crate::serve::Server;
use crate::support::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The `cert list --json` row of `serial` (lower-case hex).
fn row(env: &Env, serial: &str) -> serde_json::Value {
    let list = env.json(&["cert", "list"]);
    list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["serial"].as_str() == Some(serial))
        .cloned()
        .unwrap_or_else(|| panic!("no cert list row for {serial}: {list}"))
}

/// The CRL DP and OCSP URLs `openssl x509 -text` shows in a PEM certificate.
fn pointers(pem: &Path) -> (String, String) {
    let o = openssl(&["x509", "-in", p(pem), "-noout", "-text"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let find = |after: &str, prefix: &str| {
        text.split(after)
            .nth(1)
            .and_then(|t| t.split(prefix).nth(1))
            .map(|t| t.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    (
        find("CRL Distribution Points", "URI:"),
        find("Authority Information Access", "OCSP - URI:"),
    )
}

fn ocsp_status(env: &Env, server: &Server, serial: &str) -> String {
    let o = Command::new("openssl")
        .args([
            "ocsp",
            "-issuer",
            p(&env.issuing()),
            "-CAfile",
            p(&env.root()),
        ])
        .args([
            "-url",
            &server.url("/ocsp"),
            "-serial",
            &format!("0x{serial}"),
        ])
        .output()
        .expect("openssl is needed");
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| l.split_once(": ").map(|(_, s)| s.trim().to_owned()))
        .unwrap_or_else(|| format!("no answer: {out}{}", String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn operator_revoke_puts_the_operator_certificate_on_the_crl_and_ocsp_says_revoked() {
    let env = Env::new();
    env.init_ca();
    env.token("holder");
    let holder = env.issue("medical", "holder");
    let holder_pem = holder["certificates"][0]["pem"]
        .as_str()
        .unwrap()
        .to_owned();
    let (crl_dp, ocsp_url) = pointers(Path::new(&holder_pem));
    assert!(!crl_dp.is_empty() && !ocsp_url.is_empty());

    env.operator("zhao", "reviewer");
    let ops = env.json(&["operator", "list"]);
    let op = ops["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["token_label"] == "op-zhao")
        .unwrap()
        .clone();
    let serial = op["cert_serial"].as_str().unwrap().to_owned();

    // Recorded with its role; exported from the record, it carries the holder's CRL DP and AIA.
    let r = row(&env, &serial);
    assert_eq!(r["role"], "operator", "{r}");
    assert_eq!(r["status"], "issued", "{r}");
    let pem = env.dir.path().join("op.pem");
    env.ok(&["cert", "export", &serial, "--out", p(&pem)]);
    assert_eq!(pointers(&pem), (crl_dp.clone(), ocsp_url.clone()));
    let v = env.openssl_verify(&pem);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // The counter's revoke does not take it: operators are revoked as operators.
    let err = env.fails(&["revoke", &serial, "--reason", "keyCompromise"], 1);
    assert!(err.contains("operator revoke"), "{err}");

    let server = Server::start_with(&env, &["--api-listen", "127.0.0.1:0"]);
    assert_eq!(ocsp_status(&env, &server, &serial), "good");

    // The OCSP signer and the API's TLS certificate are recorded with their roles too.
    let roles: Vec<String> = env.json(&["cert", "list"])["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap().to_owned())
        .collect();
    for role in [
        "ocsp-signer",
        "tls-server",
        "seal-maker",
        "operator",
        "identity",
    ] {
        assert!(
            roles.iter().any(|r| r == role),
            "no {role} row in {roles:?}"
        );
    }
    let tls_pem = env.home.join("tls/api.pem");
    assert_eq!(pointers(&tls_pem), (crl_dp, ocsp_url));

    env.ok(&[
        "operator",
        "revoke",
        &serial,
        "--reason",
        "left the company",
    ]);
    assert_eq!(row(&env, &serial)["status"], "revoked");
    assert_eq!(
        row(&env, &serial)["revocation_reason"],
        "privilegeWithdrawn"
    );
    env.ok(&["crl", "generate"]);
    // The served CRL lists it once the server has picked the new CRL up.
    let crl = env.dir.path().join("crl.der");
    let want = format!("SERIAL NUMBER: {}", serial.to_uppercase());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let listed = loop {
        let o = Command::new("curl")
            .args(["-s", "--max-time", "30", "-o", p(&crl)])
            .arg(server.url("/crl/issuing.crl"))
            .output()
            .expect("curl is needed");
        assert!(o.status.success());
        let text = openssl(&["crl", "-inform", "DER", "-in", p(&crl), "-noout", "-text"]);
        let listed = String::from_utf8_lossy(&text.stdout).to_uppercase();
        if listed.contains(&want) || std::time::Instant::now() > until {
            break listed;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(listed.contains(&want), "{listed}");
    // The server picks the new CRL's revocations up; OCSP says revoked.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut st = ocsp_status(&env, &server, &serial);
    while st != "revoked" && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(300));
        st = ocsp_status(&env, &server, &serial);
    }
    assert_eq!(st, "revoked");
    // The revoked operator can no longer log in.
    let mut c = env.cmd(&["crl", "generate"]);
    c.env("HLJCA_OPERATOR_TOKEN", "op-zhao");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("revoked"), "{err}");
}
