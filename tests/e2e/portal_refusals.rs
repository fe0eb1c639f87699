//! The portal's refusals, each with a Chinese message, a log line and nothing partial left:
//! captcha, password and lockout, CSRF, another applicant's application and material,
//! disguised and oversized uploads, script in fields, double submission, and forged, replayed
//! and wrong-amount payment notifications.

use crate::portal_client::*;
use crate::support::*;

const BAD_LOGIN: &str = "账号或密码错误";

fn count(env: &Env, sql: &str) -> i64 {
    env.sql(sql).trim().parse().unwrap()
}

#[test]
fn log_in_refusals_captcha_same_message_and_lockout() {
    if crate::support::sqlite_only() {
        return;
    }
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "a");
    assert_eq!(
        b.register("13900139000", "测试单位", "right password").code,
        200
    );
    // A second registration of the same mobile is refused.
    let again = b.register("13900139000", "测试单位", "right password");
    assert_eq!(again.code, 400);
    assert!(again.text().contains("该手机号码已注册"));
    assert_eq!(count(&env, "SELECT count(*) FROM portal_accounts"), 1);
    // A bad mobile names the field and rule.
    let bad = b.register("12345", "测试单位", "right password");
    assert!(bad.text().contains("字段「手机号码」"), "{}", bad.text());
    // Wrong captcha: refused before the password is looked at.
    let page = b.get("/login");
    let (csrf, captcha_id) = (page.input("csrf"), page.input("captcha_id"));
    let answer: u32 = b.captcha().parse().unwrap();
    let p = b.post(
        "/login",
        &[
            ("csrf", &csrf),
            ("login", "13900139000"),
            ("password", "right password"),
            ("captcha", &(answer + 1).to_string()),
            ("captcha_id", &captcha_id),
        ],
    );
    assert_eq!(p.code, 401);
    assert!(p.text().contains("验证码错误"));
    // The captcha is single use: the right answer given twice works once only (the form names
    // its captcha, so a replay fails even when the next question has the same answer).
    let page = b.get("/login");
    let (csrf, captcha_id) = (page.input("csrf"), page.input("captcha_id"));
    let answer = b.captcha();
    let fields = [
        ("csrf", csrf.as_str()),
        ("login", "13900139000"),
        ("password", "wrong"),
        ("captcha", answer.as_str()),
        ("captcha_id", captcha_id.as_str()),
    ];
    assert!(b.post("/login", &fields).text().contains(BAD_LOGIN));
    assert!(b.post("/login", &fields).text().contains("验证码错误"));
    // Unknown account and wrong password: the same message.
    let unknown = b.login("13700137000", "whatever1");
    let wrong = b.login("13900139000", "not the password");
    assert_eq!(unknown.code, 401);
    assert_eq!(wrong.code, 401);
    assert!(unknown.text().contains(BAD_LOGIN) && wrong.text().contains(BAD_LOGIN));
    // Five failures in a row lock the account: then even the right password is refused.
    for _ in 0..3 {
        assert!(
            b.login("13900139000", "still wrong")
                .text()
                .contains(BAD_LOGIN)
        );
    }
    let locked = env.sql("SELECT locked_until IS NOT NULL FROM portal_accounts");
    assert_eq!(locked.trim(), "1");
    let r = b.login("13900139000", "right password");
    assert_eq!(r.code, 401, "a locked account is refused");
    assert!(r.text().contains(BAD_LOGIN));
    let audit = env
        .sql("SELECT action FROM audit_log WHERE operator = 'applicant:13900139000' ORDER BY seq");
    assert!(
        audit.contains("portal.lock") && audit.contains("portal.login-locked"),
        "{audit}"
    );
    assert!(server.logs().contains("log-in: account locked"));
    // A session never logged in cannot reach applications.
    assert_eq!(b.get("/apps").header("location").as_deref(), Some("/login"));
}

#[test]
fn csrf_ownership_uploads_scripts_and_double_submission() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let alice = Browser::new(&env, &server, "alice");
    let mallory = Browser::new(&env, &server, "mallory");
    alice.register("13800138001", "甲单位", "alice password");
    mallory.register("13800138002", "乙单位", "mallory password");
    assert_eq!(alice.login("13800138001", "alice password").code, 303);
    assert_eq!(mallory.login("13800138002", "mallory password").code, 303);
    // CSRF: a post without the token, or with another session's, is refused (403, Chinese).
    let none = alice.post("/apply/form", &[("type", "medical")]);
    assert_eq!(none.code, 403);
    assert!(none.text().contains("CSRF"));
    assert!(none.text().contains("请求无效"));
    let theirs = mallory.csrf();
    assert_eq!(alice.post("/logout", &[("csrf", &theirs)]).code, 403);
    assert!(server.logs().contains("POST without a CSRF token"));
    // A post from a browser with no session at all.
    let stranger = Browser::new(&env, &server, "stranger");
    assert_eq!(
        stranger
            .post("/login", &[("login", "a"), ("password", "b")])
            .code,
        403
    );
    // Script in a field: stored as text, escaped on every page; CSP forbids scripts anyway.
    let form = alice.get("/apply/form?type=medical");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("medical")).unwrap()).unwrap();
    let mut fields: Vec<(String, String)> = data
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let script = "<script>alert(1)</script>";
    for f in fields.iter_mut() {
        if f.0 == "organization" {
            f.1 = format!("哈尔滨{script}医院");
        }
    }
    let csrf = form.input("csrf");
    let token = form.input("form");
    let mut post: Vec<(&str, &str)> = vec![("csrf", &csrf), ("type", "medical"), ("form", &token)];
    post.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let made = alice.post("/apply/form", &post);
    assert_eq!(made.code, 303, "{}", made.text());
    let id = app_of(&made);
    let shown = alice.get(&format!("/apps/{id}"));
    assert!(!shown.text().contains(script), "markup is escaped");
    assert!(
        shown
            .text()
            .contains("哈尔滨&lt;script&gt;alert(1)&lt;/script&gt;医院")
    );
    assert!(
        shown
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    // The same form token again: double submission, no second application.
    let twice = alice.post("/apply/form", &post);
    assert_eq!(twice.code, 409);
    assert!(twice.text().contains("请勿重复提交"));
    assert_eq!(count(&env, "SELECT count(*) FROM applications"), 1);
    // A field breaking its rule is named with the rule; nothing is stored.
    let form = alice.get("/apply/form?type=medical");
    let (csrf2, token2) = (form.input("csrf"), form.input("form"));
    let bad = alice.post(
        "/apply/form",
        &[
            ("csrf", &csrf2),
            ("type", "medical"),
            ("form", &token2),
            ("uscc", "91230103MA1CXK7R5X"),
        ],
    );
    assert_eq!(bad.code, 400);
    assert!(
        bad.text()
            .contains("字段「统一社会信用代码」（uscc）不符合统一社会信用代码（GB 32100-2015）"),
        "{}",
        bad.text()
    );
    assert!(bad.text().contains("规则"));
    assert_eq!(count(&env, "SELECT count(*) FROM applications"), 1);
    // Another applicant's application, form, material and actions: 404, as if absent.
    let page = alice.get(&format!("/apps/{id}"));
    let a_csrf = page.input("csrf");
    let f = pdf_file(&env, "form.pdf");
    assert_eq!(
        alice
            .upload(
                &format!("/apps/{id}/materials"),
                &[("csrf", &a_csrf), ("kind", "application-form")],
                &f
            )
            .code,
        303
    );
    let mid = env.sql(&format!(
        "SELECT id FROM materials WHERE application_id = {id}"
    ));
    assert_eq!(
        alice.get(&format!("/apps/{id}/materials/{mid}")).body,
        std::fs::read(&f).unwrap()
    );
    let m_csrf = mallory.csrf();
    for path in [
        format!("/apps/{id}"),
        format!("/apps/{id}/form.pdf"),
        format!("/apps/{id}/materials/{mid}"),
        format!("/apps/{id}/pay"),
        "/apps/999".into(),
    ] {
        let p = mallory.get(&path);
        assert_eq!(p.code, 404, "{path}");
        assert!(p.text().contains("未找到"), "{path}");
    }
    assert_eq!(
        mallory
            .post(&format!("/apps/{id}/submit"), &[("csrf", &m_csrf)])
            .code,
        404
    );
    assert_eq!(
        mallory
            .upload(
                &format!("/apps/{id}/materials"),
                &[("csrf", &m_csrf), ("kind", "practising-licence")],
                &f
            )
            .code,
        404
    );
    // Disguised upload: an HTML file named .pdf is refused by its content; nothing stored.
    let fake = env.dir.path().join("licence.pdf");
    std::fs::write(&fake, "<html><script>alert(1)</script></html>").unwrap();
    let u = alice.upload(
        &format!("/apps/{id}/materials"),
        &[("csrf", &a_csrf), ("kind", "practising-licence")],
        &fake,
    );
    assert_eq!(u.code, 409);
    assert!(u.text().contains("not a PDF, PNG or JPEG"), "{}", u.text());
    // Oversized: 10 MiB and one byte.
    let big = env.dir.path().join("big.pdf");
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(10 * 1024 * 1024 + 1, b'0');
    std::fs::write(&big, bytes).unwrap();
    let u = alice.upload(
        &format!("/apps/{id}/materials"),
        &[("csrf", &a_csrf), ("kind", "practising-licence")],
        &big,
    );
    assert!(u.code == 409 || u.code == 413, "{}", u.code);
    assert!(u.text().contains("10 MiB"), "{}", u.text());
    // A second file for a filled slot.
    let other = pdf_file(&env, "form2.pdf");
    let u = alice.upload(
        &format!("/apps/{id}/materials"),
        &[("csrf", &a_csrf), ("kind", "application-form")],
        &other,
    );
    assert_eq!(u.code, 409);
    // A kind the policy does not list.
    let u = alice.upload(
        &format!("/apps/{id}/materials"),
        &[("csrf", &a_csrf), ("kind", "passport")],
        &other,
    );
    assert_eq!(u.code, 409);
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM materials WHERE application_id = {id}")
        ),
        1
    );
    // 确认申请 with materials missing is refused; the application stays a draft.
    let s = alice.post(&format!("/apps/{id}/submit"), &[("csrf", &a_csrf)]);
    assert_eq!(s.code, 409);
    assert_eq!(
        env.sql(&format!("SELECT state FROM applications WHERE id = {id}")),
        "draft"
    );
    // Nothing was paid for a draft.
    assert_eq!(
        alice
            .post(&format!("/apps/{id}/pay"), &[("csrf", &a_csrf)])
            .code,
        409
    );
    assert_eq!(count(&env, "SELECT count(*) FROM portal_pay_orders"), 0);
    env.audit_intact();
}

#[test]
fn forged_replayed_and_wrong_amount_notifications() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "payer");
    b.register("13800138003", "丙单位", "payer password");
    b.login("13800138003", "payer password");
    let id = app_of(&b.apply("medical"));
    let page = b.get(&format!("/apps/{id}"));
    let csrf = page.input("csrf");
    for k in material_kinds(&page) {
        let f = pdf_file(&env, &format!("{k}.pdf"));
        assert_eq!(
            b.upload(
                &format!("/apps/{id}/materials"),
                &[("csrf", &csrf), ("kind", &k)],
                &f
            )
            .code,
            303
        );
    }
    assert_eq!(
        b.post(&format!("/apps/{id}/submit"), &[("csrf", &csrf)])
            .code,
        303
    );
    env.ok(&["review", "approve", &format!("APP-{id}")]);
    // 去付款 twice (double click): one order.
    b.post(&format!("/apps/{id}/pay"), &[("csrf", &csrf)]);
    b.post(&format!("/apps/{id}/pay"), &[("csrf", &csrf)]);
    assert_eq!(count(&env, "SELECT count(*) FROM portal_pay_orders"), 1);
    let order = env.sql("SELECT order_no FROM portal_pay_orders");
    let good = notification("N-1", "nonce-1", &order, 30000, "WX-1");
    // Forged: signed with another secret, or not signed over this body.
    let (code, body) = notify(&server, &good, "not-the-gateway-secret-000");
    assert_eq!(code, 401);
    assert!(body.contains("签名验证失败"));
    // Wrong amount, unknown order, malformed.
    let (code, body) = notify(
        &server,
        &notification("N-2", "nonce-2", &order, 100, "WX-2"),
        SECRET,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("300.00 元"), "{body}");
    let (code, _) = notify(
        &server,
        &notification("N-3", "nonce-3", "HLJ000", 30000, "WX-3"),
        SECRET,
    );
    assert_eq!(code, 409);
    let (code, _) = notify(&server, r#"{"notification_id":"x"}"#, SECRET);
    assert_eq!(code, 400);
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM orders WHERE application_id = {id}")
        ),
        0
    );
    assert_eq!(
        env.sql(&format!("SELECT state FROM applications WHERE id = {id}")),
        "approved"
    );
    // The real one pays; the same notification again changes nothing (idempotent).
    let (code, body) = notify(&server, &good, SECRET);
    assert_eq!(code, 200, "{body}");
    let (code, body) = notify(&server, &good, SECRET);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("重复通知"));
    // Replays: the nonce under another id, another notification for the paid order.
    let (code, body) = notify(
        &server,
        &notification("N-4", "nonce-1", &order, 30000, "WX-4"),
        SECRET,
    );
    assert_eq!(code, 409);
    assert!(body.contains("replayed"), "{body}");
    let (code, _) = notify(
        &server,
        &notification("N-5", "nonce-5", &order, 30000, "WX-5"),
        SECRET,
    );
    assert_eq!(code, 409);
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM orders WHERE application_id = {id}")
        ),
        1
    );
    assert_eq!(count(&env, "SELECT count(*) FROM gateway_notifications"), 1);
    assert_eq!(
        env.sql(&format!("SELECT state FROM applications WHERE id = {id}")),
        "paid"
    );
    let log = server.logs();
    assert!(log.contains("gateway notification: bad signature"));
    assert!(!log.contains(SECRET), "the secret is never logged");
    // Delivery: a bad phone for mail is refused; a choice is made once.
    let d = b.post(
        &format!("/apps/{id}/delivery"),
        &[
            ("csrf", &csrf),
            ("method", "mail"),
            ("recipient", "周敏"),
            ("phone", "123"),
            ("address", "哈尔滨市"),
        ],
    );
    assert_eq!(d.code, 400);
    let d = b.post(
        &format!("/apps/{id}/delivery"),
        &[
            ("csrf", &csrf),
            ("method", "mail"),
            ("recipient", "周敏"),
            ("phone", "18646012345"),
            ("address", "哈尔滨市南岗区某路1号"),
        ],
    );
    assert_eq!(d.code, 303, "{}", d.text());
    let d = b.post(
        &format!("/apps/{id}/delivery"),
        &[("csrf", &csrf), ("method", "pickup-harbin")],
    );
    assert_eq!(d.code, 409);
    assert!(
        env.ok(&["apps", "show", &format!("APP-{id}")])
            .contains("mail to 周敏, 18646012345")
    );
    // The counter mails it with the tracking number only: the rest is the applicant's choice.
    env.token("payer-usbkey");
    env.ok(&["issue", &format!("APP-{id}"), "--token", "payer-usbkey"]);
    env.ok(&[
        "deliver",
        &format!("APP-{id}"),
        "--mail",
        "--tracking",
        "SF1234567890",
    ]);
    let t = b.get(&format!("/apps/{id}")).text();
    assert!(t.contains("快递单号：SF1234567890"), "{t}");
    assert_eq!(
        env.sql(&format!(
            "SELECT recipient || ' ' || phone || ' ' || address FROM applications WHERE id = {id}"
        )),
        "周敏 18646012345 哈尔滨市南岗区某路1号"
    );
    // A rejected application shows 已驳回 with the reviewer's reason; it cannot be paid.
    let second = app_of(&b.apply("medical"));
    let page = b.get(&format!("/apps/{second}"));
    for k in material_kinds(&page) {
        let f = pdf_file(&env, &format!("second-{k}.pdf"));
        b.upload(
            &format!("/apps/{second}/materials"),
            &[("csrf", &csrf), ("kind", &k)],
            &f,
        );
    }
    assert_eq!(
        b.post(&format!("/apps/{second}/submit"), &[("csrf", &csrf)])
            .code,
        303
    );
    env.ok(&[
        "review",
        "reject",
        &format!("APP-{second}"),
        "--reason",
        "营业执照扫描件不清晰",
    ]);
    let t = b.get(&format!("/apps/{second}")).text();
    assert!(
        t.contains("已驳回") && t.contains("营业执照扫描件不清晰"),
        "{t}"
    );
    assert_eq!(
        b.post(&format!("/apps/{second}/pay"), &[("csrf", &csrf)])
            .code,
        409
    );
    env.audit_intact();
}

#[test]
fn a_panicking_handler_is_a_500_and_the_server_goes_on() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "visitor");
    // `GET /__test/panic` (debug builds with HLJCA_PORTAL_TEST_HOOKS=1) panics in its handler.
    let p = b.get("/__test/panic");
    assert_eq!(p.code, 500, "{}", p.text());
    assert_eq!(p.text(), "internal server error\n");
    // The server goes on: the portal, /healthz (the CA worker answers) and /metrics.
    for _ in 0..2 {
        assert_eq!(b.get("/").code, 200);
        assert_eq!(b.get("/__test/panic").code, 500);
    }
    let health = b.get("/healthz");
    assert_eq!(health.code, 200, "{}", health.text());
    let metrics = b.get("/metrics").text();
    assert!(
        metrics.contains("hljca_http_requests_total{route=\"portal\",code=\"500\"} 3"),
        "{metrics}"
    );
    assert!(
        server.logs().contains("handler panicked"),
        "{}",
        server.logs()
    );
}

#[test]
fn after_a_job_panics_while_acting_for_an_applicant_the_next_acts_as_its_own() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "visitor");
    // A CA job panics inside `act_for` (the worker catches it, the request gets an error).
    assert_eq!(b.get("/__test/panic-acting").code, 500);
    assert!(
        server.logs().contains("a portal job panicked"),
        "{}",
        server.logs()
    );
    // The next job acts for its own applicant: before, the CA stayed "acting for" the first
    // one and refused every later `act_for` ("already acting for …").
    let p = b.register("13800138123", "某某公司", "correct horse 42");
    assert!(p.code < 400, "{} {}", p.code, p.text());
    assert!(!p.text().contains("already acting"), "{}", p.text());
    let audit = env.sql("select operator from audit_log where action like 'portal.%' order by seq");
    assert!(!audit.contains("test-hook"), "{audit}");
    assert!(
        audit.contains("13800138123"),
        "the registration is the applicant's: {audit}"
    );
    env.audit_intact();
}
