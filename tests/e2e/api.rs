//! Issue 13: the client-certificate API of `hljca serve` for automated jobs, called from
//! outside with `curl --cert/--key` as a job would: operators enrolled from the job's own CSR
//! (`operator add --csr`), roles, revoked operators and foreign certificates refused, issuance
//! from a CSR (checked with `openssl verify`) with idempotency keys, get, revoke (then
//! `cert show` and OCSP say revoked), list expiring, JSON errors naming the field.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::serve::Server;
use crate::support::*;

/// A job's credentials: certificate and key files.
struct Job {
    cert: PathBuf,
    key: PathBuf,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Enrols job operator `name` with `roles` from a CSR for a key made by openssl.
fn enrol_job(env: &Env, name: &str, roles: &str) -> (Job, String) {
    let d = env.dir.path();
    let (key, csr, cert) = (
        d.join(format!("{name}.key")),
        d.join(format!("{name}.csr")),
        d.join(format!("{name}.pem")),
    );
    openssl_csr(&key, &csr, "/CN=whatever the job asks for");
    let v = env.json(&[
        "operator",
        "add",
        "--name",
        name,
        "--site",
        "harbin",
        "--roles",
        roles,
        "--csr",
        s(&csr),
        "--out",
        s(&cert),
    ]);
    assert_eq!(v["token_label"], "(csr)", "{v}");
    // The operator certificate: the job's key, the CA's chain, clientAuth, CN from --name.
    assert!(env.openssl_verify(&cert).status.success());
    let text = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-in",
            s(&cert),
            "-noout",
            "-text",
            "-nameopt",
            "utf8",
        ])
        .stdout,
    )
    .into_owned();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(
        text.contains(&format!("CN={name}")) || text.contains(&format!("CN = {name}")),
        "{text}"
    );
    assert!(!text.contains("whatever the job asks for"), "{text}");
    let cert_pub = openssl(&["x509", "-in", s(&cert), "-noout", "-pubkey"]).stdout;
    let csr_pub = openssl(&["req", "-in", s(&csr), "-noout", "-pubkey"]).stdout;
    assert_eq!(cert_pub, csr_pub);
    (
        Job { cert, key },
        v["cert_serial"].as_str().unwrap().to_owned(),
    )
}

/// One curl call: (HTTP status, body); status 0 when no HTTP answer came (TLS refused).
fn call(
    env: &Env,
    server: &Server,
    job: Option<&Job>,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let out = env.dir.path().join("answer.out");
    let _ = std::fs::remove_file(&out);
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "30",
        "-X",
        method,
        "-o",
        s(&out),
        "-w",
        "%{http_code}",
    ])
    .args(["--cacert", s(&env.root())]);
    if let Some(j) = job {
        c.args(["--cert", s(&j.cert), "--key", s(&j.key)]);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        let f = env.dir.path().join("body.json");
        std::fs::write(&f, b).unwrap();
        c.args(["--data-binary", &format!("@{}", s(&f))]);
    }
    c.arg(format!("{}{path}", server.api.as_deref().unwrap()));
    let o = c.output().expect("curl is needed: run ./softhsm-setup.sh");
    let code = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read_to_string(&out).unwrap_or_default())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

const JSON: &str = "Content-Type: application/json";

/// An issuance request for a medical certificate, for a fresh key of the holder.
fn issue_body(env: &Env, name: &str) -> String {
    let d = env.dir.path();
    openssl_csr(
        &d.join(format!("{name}.k")),
        &d.join(format!("{name}.csr")),
        "/CN=x",
    );
    let csr = std::fs::read_to_string(d.join(format!("{name}.csr"))).unwrap();
    let applicant: Value =
        serde_json::from_str(&std::fs::read_to_string(example("medical")).unwrap()).unwrap();
    serde_json::json!({ "type": "medical", "applicant": applicant, "csr": csr }).to_string()
}

#[test]
fn api_serves_jobs_by_role_with_idempotent_issuance() {
    let env = Env::new();
    env.init_ca();
    let (issuer, issuer_serial) = enrol_job(&env, "ci-issuer", "issuer");
    let (reader, _) = enrol_job(&env, "ci-reader", "auditor");
    let (admin, _) = enrol_job(&env, "ci-admin", "ca-admin");
    let server = Server::start_with(&env, &["--api-listen", "127.0.0.1:0"]);
    let base = "/api/v1/certificates";

    // Issue from a CSR with an idempotency key: 201, a certificate openssl verifies.
    let body = issue_body(&env, "h1");
    let key = "Idempotency-Key: order-4711";
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, key],
        Some(&body),
    );
    assert_eq!(code, 201, "{out}\n{}", server.logs());
    let v = json(&out);
    let serial = v["serial"].as_str().unwrap().to_owned();
    assert_eq!(v["status"], "issued");
    assert_eq!(v["replayed"], false);
    let pem = env.dir.path().join("h1.pem");
    std::fs::write(&pem, v["pem"].as_str().unwrap()).unwrap();
    let verified = env.openssl_verify(&pem);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let cert_pub = openssl(&["x509", "-in", s(&pem), "-noout", "-pubkey"]).stdout;
    let csr_pub = openssl(&[
        "req",
        "-in",
        s(&env.dir.path().join("h1.csr")),
        "-noout",
        "-pubkey",
    ])
    .stdout;
    assert_eq!(cert_pub, csr_pub, "the certificate carries the CSR's key");

    // The same key and body again: the same certificate, nothing new issued.
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, key],
        Some(&body),
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(json(&out)["serial"], serial.as_str());
    assert_eq!(json(&out)["replayed"], true);
    // The same key with another request: 409, nothing issued.
    let other = issue_body(&env, "h2");
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, key],
        Some(&other),
    );
    assert_eq!(code, 409, "{out}");
    assert_eq!(json(&out)["error"]["field"], "Idempotency-Key");
    assert_eq!(
        env.sql("select count(*) from certificates where role IN ('identity', 'seal', 'encryption') and status <> 'void'"),
        "1",
        "one certificate for one key"
    );
    assert_eq!(
        env.sql("select serial from api_idempotency where idem_key = 'order-4711'"),
        serial
    );
    // A request refused for its applicant data does not use up its key.
    let fix = "Idempotency-Key: fix-1";
    let mut wrong = json(&other);
    wrong["applicant"]["uscc"] = "52230103MJ6H4B2W1X".into();
    let wrong = wrong.to_string();
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, fix],
        Some(&wrong),
    );
    assert_eq!(code, 400, "{out}");
    assert_eq!(json(&out)["error"]["field"], "applicant.uscc");
    // A business rule's refusal: status, rule code and field come from the typed refusal (the
    // 副锁 needs an issued enterprise certificate of its USCC; there is none).
    let mut secondary = json(&issue_body(&env, "h3"));
    secondary["type"] = "enterprise-secondary".into();
    secondary["applicant"] =
        serde_json::from_str(&std::fs::read_to_string(example("enterprise-secondary")).unwrap())
            .unwrap();
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, "Idempotency-Key: secondary-1"],
        Some(&secondary.to_string()),
    );
    assert_eq!(code, 409, "{out}");
    assert_eq!(
        (&json(&out)["error"]["rule"], &json(&out)["error"]["field"]),
        (
            &Value::from("secondary-needs-enterprise"),
            &Value::from("applicant.org_id")
        ),
        "{out}"
    );
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON, fix],
        Some(&other),
    );
    assert_eq!(code, 201, "{out}");
    let second = json(&out)["serial"].as_str().unwrap().to_owned();
    assert_ne!(second, serial);
    // Without a key: another certificate each time.
    let third_body = issue_body(&env, "h4");
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON],
        Some(&third_body),
    );
    assert_eq!(code, 201, "{out}");
    let third = json(&out)["serial"].as_str().unwrap().to_owned();

    // Any operator may read one; PEM on request.
    let path = format!("{base}/{serial}");
    let (code, out) = call(&env, &server, Some(&reader), "GET", &path, &[], None);
    assert_eq!(code, 200, "{out}");
    assert_eq!(json(&out)["serial"], serial.as_str());
    let accept = "Accept: application/x-pem-file";
    let (code, out) = call(&env, &server, Some(&reader), "GET", &path, &[accept], None);
    assert_eq!(code, 200);
    assert_eq!(out, std::fs::read_to_string(&pem).unwrap());
    let (code, out) = call(
        &env,
        &server,
        Some(&reader),
        "GET",
        &format!("{base}/0badc0de"),
        &[],
        None,
    );
    assert_eq!(code, 404, "{out}");

    // Roles: the reader may not issue or revoke; 403 naming the role, nothing changed.
    let audit_before = env.sql("select count(*) from audit_log");
    let (code, out) = call(
        &env,
        &server,
        Some(&reader),
        "POST",
        base,
        &[JSON],
        Some(&issue_body(&env, "h3")),
    );
    assert_eq!(code, 403, "{out}");
    assert_eq!(json(&out)["error"]["rule"], "role issuer");
    let revoke = format!("{path}/revoke");
    let reason = r#"{"reason": "keyCompromise"}"#;
    let (code, out) = call(
        &env,
        &server,
        Some(&reader),
        "POST",
        &revoke,
        &[JSON],
        Some(reason),
    );
    assert_eq!(code, 403, "{out}");
    let (code, _) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        &revoke,
        &[JSON],
        Some(reason),
    );
    assert_eq!(code, 403, "revoke needs ca-admin, as `hljca revoke`");
    assert_eq!(env.sql("select count(*) from audit_log"), audit_before);

    // Revoke as the ca-admin job: cert show and OCSP say revoked.
    let (code, out) = call(
        &env,
        &server,
        Some(&admin),
        "POST",
        &revoke,
        &[JSON],
        Some(reason),
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(json(&out)["status"], "revoked");
    let shown = env.json(&["cert", "show", &serial]);
    assert_eq!(shown["status"], "revoked");
    assert_eq!(shown["revocation_reason"], "keyCompromise");
    let mut revoked_over_ocsp = false;
    for _ in 0..100 {
        let o = Command::new("openssl")
            .args([
                "ocsp",
                "-issuer",
                s(&env.issuing()),
                "-CAfile",
                s(&env.root()),
            ])
            .args(["-cert", s(&pem), "-url", &server.url("/ocsp")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).contains(": revoked") {
            revoked_over_ocsp = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(revoked_over_ocsp, "OCSP never said revoked");

    // List expiring: the revoked one is not there, the issued one is; paged.
    let (code, out) = call(
        &env,
        &server,
        Some(&reader),
        "GET",
        &format!("{base}?expiring_within=3650d"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{out}");
    let listed: Vec<String> = json(&out)["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        vec![second.clone(), third.clone()],
        "soonest expiry first"
    );
    // Paged: one at a time, `next` names where the next page starts.
    let page = format!("{base}?expiring_within=3650d&limit=1");
    let (_, out) = call(&env, &server, Some(&reader), "GET", &page, &[], None);
    let v = json(&out);
    assert_eq!(v["certificates"][0]["serial"], second.as_str());
    assert_eq!(v["next"], second.as_str());
    let (_, out) = call(
        &env,
        &server,
        Some(&reader),
        "GET",
        &format!("{page}&after={second}"),
        &[],
        None,
    );
    assert_eq!(
        json(&out)["certificates"][0]["serial"],
        third.as_str(),
        "{out}"
    );
    let (_, out) = call(
        &env,
        &server,
        Some(&reader),
        "GET",
        &format!("{base}?expiring_within=1d"),
        &[],
        None,
    );
    assert_eq!(
        json(&out)["certificates"].as_array().unwrap().len(),
        0,
        "{out}"
    );
    let (code, out) = call(
        &env,
        &server,
        Some(&reader),
        "GET",
        &format!("{base}?limit=0"),
        &[],
        None,
    );
    assert_eq!(
        (code, json(&out)["error"]["field"].clone()),
        (400, Value::from("limit"))
    );

    // The audit rows name the job operators (signed by the server's own operator).
    let issued_by = env.sql(&format!(
        "select operator from audit_log where action = 'cert.issue' and object = '{serial}'"
    ));
    assert_eq!(issued_by, format!("ci-issuer ({issuer_serial}) via api"));
    let revoked_by = env.sql(&format!(
        "select operator from audit_log where action = 'cert.revoke' and object = '{serial}'"
    ));
    assert!(
        revoked_by.starts_with("ci-admin (") && revoked_by.ends_with("via api"),
        "{revoked_by}"
    );
    env.audit_intact();
}

#[test]
fn api_refuses_bad_callers_and_bad_input_and_keeps_answering() {
    let env = Env::new();
    env.init_ca();
    let (issuer, issuer_serial) = enrol_job(&env, "job", "issuer");
    let (spare, spare_serial) = enrol_job(&env, "spare", "auditor");
    let server = Server::start_with(&env, &["--api-listen", "127.0.0.1:0"]);
    let base = "/api/v1/certificates";
    let good = issue_body(&env, "g");

    // The server's TLS certificate: from the issuing CA, serverAuth, for 127.0.0.1 and
    // localhost; its key private to the home's owner; recorded in the audit log.
    let tls = env.home.join("tls");
    let mode = std::fs::metadata(tls.join("api.key"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(env.openssl_verify(&tls.join("api.pem")).status.success());
    let text = String::from_utf8_lossy(
        &openssl(&["x509", "-in", s(&tls.join("api.pem")), "-noout", "-text"]).stdout,
    )
    .into_owned();
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(
        text.contains("IP Address:127.0.0.1") && text.contains("DNS:localhost"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert_eq!(
        env.sql("select count(*) from audit_log where action = 'serve.api-tls-cert'"),
        "1"
    );

    // No client certificate: a JSON 401.
    let (code, out) = call(&env, &server, None, "GET", base, &[], None);
    assert_eq!(code, 401, "{out}");
    assert_eq!(json(&out)["error"]["field"], "client certificate");
    // A certificate of another CA: refused in the TLS handshake, no HTTP answer.
    let d = env.dir.path();
    self_signed_ec(&d.join("x.key"), &d.join("x.pem"), "/CN=job", "30");
    let stranger = Job {
        cert: d.join("x.pem"),
        key: d.join("x.key"),
    };
    let (code, _) = call(&env, &server, Some(&stranger), "GET", base, &[], None);
    assert_eq!(code, 0, "a foreign certificate must not get an HTTP answer");

    // Bad input: 400 naming the field, 415, 413; nothing issued.
    let bad = |headers: &[&str], body: &str| {
        let (code, out) = call(
            &env,
            &server,
            Some(&issuer),
            "POST",
            base,
            headers,
            Some(body),
        );
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        (code, v["error"]["field"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(bad(&[JSON], "{not json"), (400, "body".into()));
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v.as_object_mut().unwrap().remove("csr");
    assert_eq!(bad(&[JSON], &v.to_string()), (400, "csr".into()));
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["applicant"]["uscc"] = "52230103MJ6H4B2W1X".into();
    assert_eq!(bad(&[JSON], &v.to_string()), (400, "applicant.uscc".into()));
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["validity_days"] = 3650.into();
    assert_eq!(bad(&[JSON], &v.to_string()), (400, "validity_days".into()));
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["type"] = "platinum".into();
    assert_eq!(bad(&[JSON], &v.to_string()), (400, "type".into()));
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["csr"] =
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into();
    assert_eq!(bad(&[JSON], &v.to_string()), (400, "csr".into()));
    assert_eq!(
        bad(&["Content-Type: text/plain"], &good),
        (415, "Content-Type".into())
    );
    let huge = format!(r#"{{"type": "medical", "csr": "{}"}}"#, "A".repeat(100_000));
    assert_eq!(bad(&[JSON], &huge), (413, "body".into()));
    let (code, _) = call(
        &env,
        &server,
        Some(&issuer),
        "GET",
        "/api/v1/nothing",
        &[],
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );

    // A revoked operator is refused; the others still work.
    env.ok(&[
        "operator",
        "revoke",
        &issuer_serial,
        "--reason",
        "job retired",
    ]);
    let (code, out) = call(
        &env,
        &server,
        Some(&issuer),
        "POST",
        base,
        &[JSON],
        Some(&good),
    );
    assert_eq!(code, 401, "{out}");
    assert_eq!(json(&out)["error"]["rule"], "operator-revoked");
    let (code, out) = call(&env, &server, Some(&spare), "GET", base, &[], None);
    assert_eq!(code, 200, "{out}\n{}", server.logs());
    assert_eq!(
        env.sql(
            "select count(*) from certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
    assert!(!spare_serial.is_empty());
    let logs = server.logs();
    assert!(logs.contains("TLS handshake refused"), "{logs}");
    assert!(logs.contains("operator-revoked"), "{logs}");
}

#[test]
fn operator_add_csr_refuses_ca_requests_and_bad_signatures() {
    let env = Env::new();
    env.init_ca();
    let d = env.dir.path();
    openssl_req_new(
        &d.join("ca.key"),
        &d.join("ca.csr"),
        "/CN=sub-ca",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let add = |csr: &Path| {
        env.fails(
            &[
                "operator",
                "add",
                "--name",
                "j",
                "--site",
                "harbin",
                "--roles",
                "issuer",
                "--csr",
                s(csr),
            ],
            2,
        )
    };
    let err = add(&d.join("ca.csr"));
    assert!(err.contains("never a CA"), "{err}");
    // A request whose signature does not match its content.
    openssl_csr(&d.join("k.key"), &d.join("r.csr"), "/CN=j");
    openssl_ok(&[
        "req",
        "-in",
        s(&d.join("r.csr")),
        "-outform",
        "DER",
        "-out",
        s(&d.join("r.der")),
    ]);
    let mut der = std::fs::read(d.join("r.der")).unwrap();
    let n = der.len();
    der[n - 3] ^= 0x55;
    std::fs::write(d.join("bad.der"), &der).unwrap();
    let err = add(&d.join("bad.der"));
    assert!(
        err.contains("signature") || err.contains("PKCS#10"),
        "{err}"
    );
    // An RSA key.
    openssl_req_new(
        &d.join("rsa.key"),
        &d.join("rsa.csr"),
        "/CN=j",
        &["-newkey", "rsa:2048"],
        &[],
    );
    let err = add(&d.join("rsa.csr"));
    assert!(err.contains("P-256"), "{err}");
    assert_eq!(env.sql("select count(*) from operators"), "1");
    // The same key twice: refused.
    let req = d.join("r.csr");
    let ok = [
        "operator",
        "add",
        "--name",
        "j",
        "--site",
        "harbin",
        "--roles",
        "issuer",
        "--csr",
        s(&req),
    ];
    env.ok(&ok);
    let err = env.fails(&ok, 1);
    assert!(err.contains("already belongs"), "{err}");
}
