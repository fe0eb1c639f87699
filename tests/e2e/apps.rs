//! Issue 5: application to delivery — the state machine, four eyes, materials, payment,
//! issuance from an application, delivery, the SMS outbox and expiry reminders.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sha2::Digest;

use crate::support::*;

/// Runs as another operator (`tester` is the CA administrator of `init`).
fn run_as(env: &Env, op: &str, args: &[&str]) -> Output {
    if op == "tester" {
        return env.run(args);
    }
    env.cmd_as(op, args).output().unwrap()
}

/// Runs as another operator with --json and requires success.
pub(crate) fn json_as(env: &Env, op: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = run_as(env, op, &a);
    assert!(
        o.status.success(),
        "hljca {args:?} as {op} failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fails_as(env: &Env, op: &str, args: &[&str], code: i32) -> String {
    let o = run_as(env, op, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "hljca {args:?} as {op}: expected exit {code}, stderr:\n{err}"
    );
    err
}

fn pdf(env: &Env, name: &str, body: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, format!("%PDF-1.4\n% {body}\n%%EOF\n")).unwrap();
    p
}

fn png(env: &Env, name: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    let f = std::fs::File::create(&p).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 8, 8);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(&[0x80; 8 * 8 * 4]).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `apply` with the example applicant; returns the application number.
pub(crate) fn apply(env: &Env, ty: &str, extra: &[&str]) -> i64 {
    let app = example(ty);
    let mut args = vec!["apply", "--type", ty, "--applicant", s(&app)];
    args.extend_from_slice(extra);
    let v = env.json(&args);
    assert_eq!(v["state"], "draft", "{v}");
    v["id"].as_i64().unwrap()
}

/// The policy's material kinds of `ty`.
fn material_kinds(env: &Env, ty: &str) -> Vec<String> {
    let p = env.json(&["policy", "show", ty]);
    let list = p["materials"]
        .as_array()
        .or_else(|| p["policy"]["materials"].as_array())
        .unwrap_or_else(|| panic!("no materials in `policy show {ty}`: {p}"));
    list.iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Adds every material of the type (alternating PDF and PNG files).
pub(crate) fn add_materials(env: &Env, id: i64, ty: &str) {
    for (i, kind) in material_kinds(env, ty).iter().enumerate() {
        let f = if i % 2 == 0 {
            pdf(env, &format!("{id}-{kind}.pdf"), &format!("{ty} {kind}"))
        } else {
            png(env, &format!("{id}-{kind}.png"))
        };
        let v = env.json(&["materials", "add", &id.to_string(), kind, s(&f)]);
        assert_eq!(v["kind"], kind.as_str());
    }
}

/// apply → submit (tester) → materials → approve (reviewer) → pay; returns the number.
pub(crate) fn paid(env: &Env, ty: &str, extra: &[&str]) -> i64 {
    let id = apply(env, ty, extra);
    let n = id.to_string();
    add_materials(env, id, ty);
    env.json(&["submit", &n]);
    let v = json_as(env, "reviewer", &["review", "approve", &n]);
    assert_eq!(v["state"], "approved");
    let v = env.json(&[
        "pay",
        &n,
        "--method",
        "qr-wechat",
        "--reference",
        &format!("WX{id:08}"),
    ]);
    assert_eq!(v["application"]["state"], "paid");
    id
}

fn issued_rows(env: &Env, id: i64) -> String {
    env.sql(&format!(
        "select count(*) from certificates where application_id = {id} and status = 'issued'"
    ))
}

#[test]
fn application_to_delivery_for_enterprise_by_mail_and_medical_by_pickup() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    for (ty, label, channel, n_certs) in [
        ("enterprise", "app-ent", &["--site", "harbin"][..], 2),
        ("medical", "app-med", &["--channel", "online"][..], 1),
    ] {
        env.token(label);
        let id = paid(&env, ty, channel);
        let n = id.to_string();
        // The steps name the operators by their certificates, not by a typed name.
        let row = env.sql(&format!(
            "select state, submitted_by, reviewed_by from applications where id = {id}"
        ));
        let parts: Vec<&str> = row.split('|').collect();
        assert_eq!(parts[0], "paid");
        assert!(parts[1].starts_with("CA管理员 ("), "{row}");
        assert!(parts[2].starts_with("reviewer ("), "{row}");
        let out = env.json(&["issue", &format!("APP-{id}"), "--token", label]);
        assert_eq!(out["application"]["state"], "issued", "{out}");
        assert_eq!(out["resumed"], false);
        let certs = out["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), n_certs, "{ty}: {out}");
        for c in certs {
            let v = env.openssl_verify(Path::new(c["pem"].as_str().unwrap()));
            assert!(
                v.status.success(),
                "{ty}: {}",
                String::from_utf8_lossy(&v.stderr)
            );
        }
        assert_eq!(out["seal"].is_null(), ty == "medical", "{out}");
        assert_eq!(issued_rows(&env, id), n_certs.to_string());
        let token_serial = certs[0]["token_serial"].as_str().unwrap();
        assert_eq!(
            env.sql(&format!(
                "select state, token_label, token_serial from applications where id = {id}"
            )),
            format!("issued|{label}|{token_serial}")
        );
        let objs = env.objects(label, USER_PIN);
        assert_eq!(count(&objs, "Certificate Object"), n_certs, "{objs}");

        // Delivery: enterprise by mail, medical at the Hegang site; then collected.
        if ty == "enterprise" {
            let v = env.json(&[
                "deliver",
                &n,
                "--mail",
                "--recipient",
                "李晓梅",
                "--phone",
                "13936612087",
                "--address",
                "哈尔滨市道里区友谊路1号",
                "--tracking",
                "SF1234567890",
            ]);
            assert_eq!(v["delivery"]["method"], "mail", "{v}");
            assert_eq!(v["state"], "issued");
        } else {
            let v = env.json(&["deliver", &n, "--pickup", "hegang"]);
            assert_eq!(v["delivery"]["method"], "pickup", "{v}");
            assert!(
                v["delivery"]["address"]
                    .as_str()
                    .unwrap()
                    .contains("鹤岗市公共资源交易中心708室")
            );
        }
        let v = env.json(&["deliver", &n, "--collected"]);
        assert_eq!(v["state"], "delivered");
        assert_eq!(
            env.sql(&format!(
                "select group_concat(event, ',') from (select event from application_events \
                 where application_id = {id} order by id)"
            )),
            format!(
                "apply,{}submit,approve,pay,claim,issue,dispatch,collect",
                "material,".repeat(material_kinds(&env, ty).len())
            )
        );
        let shown = env.json(&["apps", "show", &n]);
        assert_eq!(shown["state"], "delivered");
        assert_eq!(shown["certificates"].as_array().unwrap().len(), n_certs);

        // SMS: approved, paid, then mailed / ready for pickup, to the agent's mobile.
        let mobile = if ty == "enterprise" {
            "13936612087"
        } else {
            "18646012345"
        };
        let kinds = env.sql(&format!(
            "select group_concat(kind || '>' || mobile, ',') from (select kind, mobile from outbox \
             where application_id = {id} order by id)"
        ));
        let dispatch = if ty == "enterprise" {
            "mailed"
        } else {
            "ready-for-pickup"
        };
        assert_eq!(
            kinds,
            format!("approved>{mobile},paid>{mobile},{dispatch}>{mobile}")
        );
    }
    // Materials are content-addressed blobs in the database (every site reads them), none a
    // file of the home; `materials get` gives back the bytes, into a new 0600 file.
    let (app, kind, sha, size) = {
        let row =
            env.sql("select application_id, kind, sha256, size from materials order by id limit 1");
        let f: Vec<&str> = row.split('|').collect();
        (
            f[0].to_owned(),
            f[1].to_owned(),
            f[2].to_owned(),
            f[3].parse::<u64>().unwrap(),
        )
    };
    assert!(!env.home.join("materials").exists());
    assert_eq!(
        env.sql(&format!("select size from blobs where sha256 = '{sha}'")),
        size.to_string()
    );
    let out = env.dir.path().join("material-copy");
    env.ok(&[
        "materials",
        "get",
        &app,
        &kind,
        "--out",
        out.to_str().unwrap(),
    ]);
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len() as u64, size);
    assert_eq!(hex::encode(sha2::Sha256::digest(&got)), sha);
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // An existing file is never overwritten; an unknown kind is named.
    env.fails(
        &[
            "materials",
            "get",
            &app,
            &kind,
            "--out",
            out.to_str().unwrap(),
        ],
        1,
    );
    let e = env.fails(&["materials", "get", &app, "no-such-kind", "--out", "x"], 2);
    assert!(e.contains("no-such-kind"), "{e}");
    // Fees: first application of each type, in fen.
    let orders = env.json(&["orders", "list"]);
    let got: Vec<(String, String, u64)> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["business"].as_str().unwrap().to_owned(),
                o["amount_fen"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("enterprise".into(), "first".into(), 36000),
            ("medical".into(), "first".into(), 30000)
        ]
    );
    let outbox = env.json(&["outbox", "list"]);
    assert_eq!(outbox["messages"].as_array().unwrap().len(), 6);
    env.ok(&["outbox", "list"]);
    env.ok(&["apps", "list"]);
    let listed = env.json(&["apps", "list", "--state", "delivered"]);
    assert_eq!(listed["applications"].as_array().unwrap().len(), 2);
    env.ok(&["audit", "verify"]);
    let actions =
        env.sql("select group_concat(distinct action) from audit_log where object like 'APP-%'");
    for a in [
        "app.apply",
        "app.material",
        "app.submit",
        "app.approve",
        "app.pay",
        "app.issue",
        "app.dispatch",
        "app.collect",
    ] {
        assert!(actions.contains(a), "{a} not in {actions}");
    }
}

#[test]
fn illegal_transitions_are_refused_naming_the_state() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    let draft = apply(&env, "medical", &[]).to_string();
    let err = env.fails(&["pay", &draft, "--method", "cash"], 1);
    assert!(
        err.contains(&format!(
            "application {draft} is draft: `pay` needs approved; next: submit, cancel"
        )),
        "{err}"
    );
    let err = env.fails(&["deliver", &draft, "--collected"], 1);
    assert!(err.contains("is draft"), "{err}");
    let err = fails_as(&env, "reviewer", &["review", "approve", &draft], 1);
    assert!(
        err.contains("is draft") && err.contains("needs submitted"),
        "{err}"
    );

    // Rejected: final; a rejection stores its reason.
    let rejected_id = apply(&env, "medical", &[]);
    add_materials(&env, rejected_id, "medical");
    let rejected = rejected_id.to_string();
    env.ok(&["submit", &rejected]);
    env.fails(&["submit", &rejected], 1);
    let err = fails_as(
        &env,
        "reviewer",
        &["review", "reject", &rejected, "--reason", "  "],
        2,
    );
    assert!(err.contains("reason"), "{err}");
    json_as(
        &env,
        "reviewer",
        &[
            "review",
            "reject",
            &rejected,
            "--reason",
            "营业执照复印件不清晰",
        ],
    );
    assert_eq!(
        env.sql(&format!(
            "select state, rejection_reason from applications where id = {rejected}"
        )),
        "rejected|营业执照复印件不清晰"
    );
    let err = fails_as(&env, "reviewer", &["review", "approve", &rejected], 1);
    assert!(err.contains("is rejected"), "{err}");
    let err = env.fails(&["cancel", &rejected], 1);
    assert!(err.contains("is rejected"), "{err}");

    // Approved but unpaid: issue refused; deliver before issue refused.
    let approved = apply(&env, "medical", &[]);
    add_materials(&env, approved, "medical");
    let approved = approved.to_string();
    env.ok(&["submit", &approved]);
    json_as(&env, "reviewer", &["review", "approve", &approved]);
    env.token("never-used");
    let err = env.fails(&["issue", &approved, "--token", "never-used"], 1);
    assert!(
        err.contains(&format!(
            "application {approved} is approved: `issue` needs paid"
        )),
        "{err}"
    );
    let err = env.fails(&["deliver", &approved, "--pickup", "harbin"], 1);
    assert!(
        err.contains("is approved") && err.contains("needs issued"),
        "{err}"
    );
    assert_eq!(count(&env.objects("never-used", USER_PIN), "Object"), 0);
    // Cancel from approved is allowed; nothing follows.
    let v = env.json(&["cancel", &approved, "--reason", "applicant withdrew"]);
    assert_eq!(v["state"], "cancelled");
    let err = env.fails(&["pay", &approved, "--method", "cash"], 1);
    assert!(
        err.contains("is cancelled") && err.contains("final"),
        "{err}"
    );

    // Unknown application, bad numbers: exit 2.
    env.fails(&["submit", "APP-999"], 2);
    env.fails(&["submit", "seven"], 2);
    // Nothing changed state behind the refusals.
    assert_eq!(
        env.sql(
            "select group_concat(state, ',') from (select state from applications order by id)"
        ),
        "draft,rejected,cancelled"
    );
    env.ok(&["audit", "verify"]);
}

#[test]
fn four_eyes_materials_and_input_checks() {
    let env = Env::new();
    env.init_ca();
    // Input checks at apply: the field is named, exit 2.
    let bad = env.dir.path().join("bad.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(example("enterprise")).unwrap()).unwrap();
    v["uscc"] = Value::String("91230103MA1CXK7R5X".into());
    std::fs::write(&bad, v.to_string()).unwrap();
    let err = env.fails(
        &["apply", "--type", "enterprise", "--applicant", s(&bad)],
        2,
    );
    assert!(err.contains("uscc"), "{err}");
    let app = example("enterprise");
    let err = env.fails(
        &[
            "apply",
            "--type",
            "enterprise",
            "--applicant",
            s(&app),
            "--channel",
            "counter",
        ],
        2,
    );
    assert!(err.contains("--site"), "{err}");
    let err = env.fails(
        &[
            "apply",
            "--type",
            "enterprise",
            "--applicant",
            s(&app),
            "--site",
            "daqing",
        ],
        2,
    );
    assert!(err.contains("harbin, hegang, qiqihar"), "{err}");
    env.fails(
        &[
            "apply",
            "--type",
            "enterprise",
            "--applicant",
            s(&app),
            "--renewal-of",
            "00ff",
        ],
        2,
    );
    assert_eq!(env.sql("select count(*) from applications"), "0");

    let id = apply(&env, "enterprise", &["--site", "qiqihar"]);
    let n = id.to_string();
    // Materials: unknown kind, wrong type, too big.
    let form = pdf(&env, "form.pdf", "application form");
    let err = env.fails(&["materials", "add", &n, "tax-certificate", s(&form)], 2);
    assert!(
        err.contains("application-form") && err.contains("business-licence"),
        "{err}"
    );
    let txt = env.dir.path().join("notes.txt");
    std::fs::write(&txt, "just text").unwrap();
    let err = env.fails(&["materials", "add", &n, "application-form", s(&txt)], 2);
    assert!(err.contains("PDF, PNG or JPEG"), "{err}");
    let big = env.dir.path().join("big.pdf");
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(10 * 1024 * 1024 + 1, b' ');
    std::fs::write(&big, &bytes).unwrap();
    let err = env.fails(&["materials", "add", &n, "application-form", s(&big)], 2);
    assert!(err.contains("10 MiB"), "{err}");
    assert_eq!(env.sql("select count(*) from materials"), "0");
    env.ok(&["materials", "add", &n, "application-form", s(&form)]);
    env.fails(&["materials", "add", &n, "application-form", s(&form)], 1);
    let lic = png(&env, "licence.png");
    env.ok(&["materials", "add", &n, "business-licence", s(&lic)]);
    let listed = env.json(&["materials", "list", &n]);
    assert_eq!(
        listed["missing"],
        serde_json::json!(["legal-rep-id-copy", "agent-id-copy"])
    );
    assert_eq!(listed["materials"][1]["media_type"], "image/png");
    env.ok(&["materials", "list", &n]);

    // Submit is refused while a required material is missing; it names them (issue 10: the
    // eligibility check runs at every step, not only at approval).
    let err = env.fails(&["submit", &n], 1);
    assert!(
        err.contains("legal-rep-id-copy") && err.contains("agent-id-copy"),
        "{err}"
    );
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "draft"
    );
    env.ok(&[
        "materials",
        "add",
        &n,
        "legal-rep-id-copy",
        s(&pdf(&env, "lr.pdf", "lr")),
    ]);
    env.ok(&[
        "materials",
        "add",
        &n,
        "agent-id-copy",
        s(&png(&env, "agent.png")),
    ]);
    // Four eyes: the submitter may not review.
    env.ok(&["submit", &n]);
    let err = env.fails(&["review", "approve", &n], 1);
    assert!(err.contains("four eyes"), "{err}");
    let err = env.fails(&["review", "reject", &n, "--reason", "x"], 1);
    assert!(err.contains("four eyes"), "{err}");
    json_as(&env, "reviewer", &["review", "approve", &n]);
    env.fails(
        &[
            "materials",
            "add",
            &n,
            "agent-id-copy",
            s(&pdf(&env, "late.pdf", "late")),
        ],
        1,
    );
    // Payment: method checked, reference needed except for cash; mobile checked at delivery.
    env.fails(&["pay", &n, "--method", "bitcoin"], 2);
    env.fails(&["pay", &n, "--method", "qr-alipay"], 2);
    assert_eq!(env.sql("select count(*) from orders"), "0");
    env.ok(&["pay", &n, "--method", "cash"]);
    env.fails(&["issue", &n], 2);
    env.ok(&["audit", "verify"]);
}

#[test]
fn fees_follow_the_type_and_the_business() {
    let env = Env::new();
    env.init_ca();
    env.token("renew-me");
    let old = env.issue("legal-person", "renew-me");
    let serial = old["certificates"][0]["serial"].as_str().unwrap();
    let seal_serial = old["certificates"][1]["serial"].as_str().unwrap();
    // Renewal of a seal certificate, or of another type, is refused.
    env.fails(
        &[
            "apply",
            "--type",
            "legal-person",
            "--applicant",
            s(&example("legal-person")),
            "--renewal-of",
            seal_serial,
        ],
        1,
    );
    env.fails(
        &[
            "apply",
            "--type",
            "expert",
            "--applicant",
            s(&example("expert")),
            "--renewal-of",
            serial,
        ],
        1,
    );
    // A renewal outside its window is refused at apply, before any fee (issue 10).
    let err = env.fails(
        &[
            "apply",
            "--type",
            "legal-person",
            "--applicant",
            s(&example("legal-person")),
            "--renewal-of",
            serial,
        ],
        1,
    );
    assert!(err.contains("renewal opens on"), "{err}");
    let first = paid(&env, "legal-person", &[]);
    // Inside the window: accepted.
    env.days_from_now(300);
    let renewal = paid(&env, "legal-person", &["--renewal-of", serial]);
    let expert = paid(&env, "expert", &["--site", "harbin"]);
    let procurement = paid(&env, "procurement", &[]);
    let orders = env.json(&["orders", "list"]);
    let rows: Vec<(i64, String, u64, Value)> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["application_id"].as_i64().unwrap_or(0),
                o["business"].as_str().unwrap().to_owned(),
                o["amount_fen"].as_u64().unwrap(),
                o["cert_serial"].clone(),
            )
        })
        .collect();
    let rows: Vec<_> = rows.into_iter().filter(|r| r.0 != 0).collect();
    assert_eq!(
        rows,
        vec![
            (first, "first".into(), 20000, Value::Null),
            (
                renewal,
                "renewal".into(),
                10000,
                Value::String(serial.into())
            ),
            (expert, "first".into(), 20000, Value::Null),
            (procurement, "first".into(), 36000, Value::Null),
        ]
    );
    let one = env.json(&["orders", "list", "--app", &format!("APP-{renewal}")]);
    assert_eq!(one["orders"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.sql("select sum(amount_fen) from orders where application_id is not null"),
        (20000 + 10000 + 20000 + 36000).to_string()
    );
    env.ok(&["orders", "list"]);
}

#[test]
fn a_failed_issue_leaves_the_application_paid_and_a_second_issue_is_refused() {
    let env = Env::new();
    env.init_ca();
    env.token("crash-key");
    let id = paid(&env, "enterprise", &[]);
    let n = id.to_string();
    // Wrong PIN: refused, nothing half-written.
    let o = env
        .cmd(&["issue", &n, "--token", "crash-key"])
        .env("HLJCA_USER_PIN", "00000000")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "paid"
    );
    assert_eq!(issued_rows(&env, id), "0");
    assert_eq!(count(&env.objects("crash-key", USER_PIN), "Object"), 0);
    // A token that does not exist: the same.
    env.fails(&["issue", &n, "--token", "no-such-token"], 1);
    assert_eq!(
        env.sql(&format!("select state from applications where id = {id}")),
        "paid"
    );

    let out = env.json(&["issue", &n, "--token", "crash-key"]);
    assert_eq!(out["resumed"], false);
    assert_eq!(out["application"]["state"], "issued");
    assert_eq!(issued_rows(&env, id), "2");
    // The certificates and the application's move are one commit (the issuance engine), so
    // no run can leave certificates issued for an application that is still paid.
    assert_eq!(
        env.sql(&format!(
            "select count(*) from issuances where application_id = {id} and stage = 'committed'"
        )),
        "1"
    );
    assert_eq!(
        count(&env.objects("crash-key", USER_PIN), "Certificate Object"),
        2
    );
    // Issued: a second issue is refused; delivery needs its arrangement before --collected.
    let err = env.fails(&["issue", &n, "--token", "crash-key"], 1);
    assert!(err.contains("is issued"), "{err}");
    let err = env.fails(&["deliver", &n, "--collected"], 1);
    assert!(err.contains("not arranged"), "{err}");
    env.fails(&["deliver", &n, "--pickup", "daqing"], 2);
    env.fails(
        &[
            "deliver",
            &n,
            "--mail",
            "--recipient",
            "x",
            "--phone",
            "12345",
            "--address",
            "a",
            "--tracking",
            "t",
        ],
        2,
    );
    env.fails(&["deliver", &n, "--mail", "--recipient", "x"], 2);
    env.ok(&["deliver", &n, "--pickup", "qiqihar"]);
    let err = env.fails(&["deliver", &n, "--pickup", "harbin"], 1);
    assert!(err.contains("already arranged"), "{err}");
    env.ok(&["deliver", &n, "--collected"]);
    env.ok(&["audit", "verify"]);
    assert_eq!(
        env.sql(&format!(
            "select count(*) from application_events where application_id = {id} and event = 'issue'"
        )),
        "1"
    );
}

#[test]
fn remind_queues_one_reminder_per_certificate_per_window() {
    let env = Env::new();
    env.init_ca();
    env.token("remind-a");
    env.token("remind-b");
    env.issue("enterprise", "remind-a");
    let id = paid(&env, "medical", &[]);
    env.ok(&["issue", &id.to_string(), "--token", "remind-b"]);
    let none = env.json(&["remind", "--within", "30d"]);
    assert_eq!(none["queued"].as_array().unwrap().len(), 0, "{none}");
    let r = env.json(&["remind", "--within", "400d"]);
    let queued = r["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 2, "identity certificates only: {r}");
    let mobiles: Vec<&str> = queued
        .iter()
        .map(|q| q["mobile"].as_str().unwrap())
        .collect();
    assert!(
        mobiles.contains(&"13936612087") && mobiles.contains(&"18646012345"),
        "{r}"
    );
    let again = env.json(&["remind", "--within", "400d"]);
    assert_eq!(again["queued"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_reminded"], 2);
    env.ok(&["remind", "--within", "400"]);
    assert_eq!(
        env.sql("select count(*) from outbox where kind = 'expiry'"),
        "2"
    );
    assert_eq!(env.sql("select count(*) from reminders"), "2");
    let text = env.sql("select text from outbox where kind = 'expiry' order by id limit 1");
    assert!(text.contains("到期"), "{text}");
    env.fails(&["remind", "--within", "soon"], 2);
    env.ok(&["audit", "verify"]);
    assert_eq!(
        env.sql("select count(*) from audit_log where action = 'cert.remind'"),
        "2"
    );
}

#[test]
fn full_flow_for_every_type() {
    let env = Env::new();
    env.init_ca();
    for ty in TYPES {
        let id = paid(&env, ty, &["--site", "harbin"]);
        let n = id.to_string();
        let label = format!("flow-{ty}");
        env.token(&label);
        let out = env.json(&["issue", &n, "--token", &label]);
        let certs = out["certificates"].as_array().unwrap();
        let has_seal = !matches!(ty, "medical" | "enterprise-secondary");
        assert_eq!(certs.len(), if has_seal { 2 } else { 1 }, "{ty}: {out}");
        for c in certs {
            let v = env.openssl_verify(Path::new(c["pem"].as_str().unwrap()));
            assert!(
                v.status.success(),
                "{ty}: {}",
                String::from_utf8_lossy(&v.stderr)
            );
        }
        assert_eq!(issued_rows(&env, id), certs.len().to_string(), "{ty}");
        env.json(&["deliver", &n, "--pickup", "harbin"]);
        let done = env.json(&["deliver", &n, "--collected"]);
        assert_eq!(done["state"], "delivered", "{ty}: {done}");
        let orders = env.json(&["orders", "list", "--app", &n]);
        let fee = env.json(&["policy", "show", ty])["fees"]["first"]
            .as_u64()
            .unwrap();
        assert_eq!(
            orders["orders"][0]["amount_fen"].as_u64(),
            Some(fee),
            "{ty}: {orders}"
        );
    }
    assert_eq!(env.json(&["audit", "verify"])["intact"], true);
}

#[test]
fn a_renewal_application_supersedes_the_old_certificate_on_the_same_token() {
    let env = Env::new();
    env.init_ca();
    env.token("renew-key");
    let first = env.issue("legal-person", "renew-key");
    let old = first["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_key = first["certificates"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Open the renewal window wide enough for a fresh certificate.
    let cfg = env.home.join("hljca.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("renewal_window_days = 90", "renewal_window_days = 400");
    std::fs::write(&cfg, text).unwrap();
    let id = paid(&env, "legal-person", &["--renewal-of", &old]);
    let n = id.to_string();
    let fee = env.sql(&format!(
        "select amount_fen || '|' || business from orders where application_id = {id}"
    ));
    assert_eq!(
        fee, "10000|renewal",
        "the annual fee of a legal-person certificate"
    );
    // Onto another token: refused, nothing issued.
    env.token("other-key");
    let err = fails_as(&env, "tester", &["issue", &n, "--token", "other-key"], 1);
    assert!(err.contains("same USBKEY"), "{err}");
    assert_eq!(issued_rows(&env, id), "0");
    let out = env.json(&["issue", &n, "--token", "renew-key"]);
    assert_eq!(out["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.sql(&format!(
            "select status from certificates where serial = '{old}' or identity_serial = '{old}' order by role"
        )),
        "superseded\nsuperseded"
    );
    let objs = env.objects("renew-key", USER_PIN);
    assert!(!objs.contains(&old_key), "old key removed: {objs}");
    assert_eq!(count(&objs, "Private Key Object"), 2, "{objs}");
    assert_eq!(env.json(&["audit", "verify"])["intact"], true);
}
