//! The online portal on `hljca serve` (issue 14), over HTTP with curl: the whole applicant
//! journey beside the counter's commands, and the front page, headers and OCSP at `POST /`.

use crate::portal_client::*;
use crate::support::*;

fn state_of(page: &Page) -> String {
    let t = page.text();
    let key = "class=\"state\"><strong>";
    let i = t.find(key).unwrap_or_else(|| panic!("no state in:\n{t}"));
    let rest = &t[i + key.len()..];
    rest[..rest.find('<').unwrap()].to_owned()
}

#[test]
fn the_front_page_names_the_seven_types_with_fees_and_safe_headers() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "visitor");
    let p = b.get("/");
    assert_eq!(p.code, 200);
    let csp = p.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        p.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(p.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(p.header("referrer-policy").as_deref(), Some("no-referrer"));
    let cookie = p.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let t = p.text();
    assert!(t.contains("<html lang=\"zh-CN\">"));
    // Every type with the policy's fees, formatted in yuan, and whether a seal comes with it.
    for name in [
        "企业机构数字证书",
        "法人数字证书",
        "医疗机构数字证书",
        "专家数字证书",
        "采购单位数字证书",
        "企业证书（副锁）",
        "法人授权代表数字证书",
    ] {
        let row = t
            .split("<tr>")
            .find(|r| r.contains(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        let seal = if name.starts_with("医疗") || name.contains("副锁") {
            "不含电子印章"
        } else {
            "含电子印章"
        };
        assert!(row.contains(seal), "{name}: {row}");
    }
    for fee in ["360.00 元", "300.00 元", "200.00 元", "100.00 元"] {
        assert!(t.contains(fee), "{fee}");
    }
    // The English switch.
    assert_eq!(b.get("/lang/en").code, 303);
    let en = b.get("/").text();
    assert!(en.contains("<html lang=\"en\">") && en.contains("Certificate types and fees"));
    // The style sheet is embedded; nothing comes from elsewhere.
    let css = b.get("/static/portal.css");
    assert_eq!(css.code, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(
        !t.contains("http://") && !t.contains("https://"),
        "no outside asset"
    );
    // POST / with an OCSP request is still OCSP.
    let o = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{content_type}",
            "-H",
            "content-type: application/ocsp-request",
            "--data-binary",
            "garbage",
        ])
        .arg(server.url("/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "application/ocsp-response"
    );
    // /types is the same table; /lang/zh switches back; other methods are refused.
    assert!(
        b.get("/types")
            .text()
            .contains("Certificate types and fees")
    );
    assert_eq!(b.get("/lang/zh").code, 303);
    assert!(b.get("/types").text().contains("证书类型与收费标准"));
    let put = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(server.url("/apps"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&put.stdout), "405");
    // The test hook answers nothing useful to a session without a captcha.
    assert_eq!(b.get("/__test/captcha").text(), "");
    // Paths that are neither the portal's nor the CA's are still 404.
    assert_eq!(b.get("/nothing-here").code, 404);
}

#[test]
fn an_applicant_applies_online_and_the_counter_issues_it() {
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "applicant");
    let r = b.register("13800138000", "哈尔滨北方康复医院", "correct horse 1");
    assert_eq!(r.code, 200, "{}", r.text());
    assert!(r.text().contains("注册成功"));
    let l = b.login("13800138000", "correct horse 1");
    assert_eq!(l.code, 303, "{}", l.text());
    assert_eq!(l.header("location").as_deref(), Some("/apps"));
    assert!(l.header("set-cookie").unwrap().contains("HttpOnly"));
    assert!(b.get("/apps").text().contains("服务申办"));
    // 新办 → business department → type → form.
    assert!(b.get("/apply").text().contains("黑龙江省公共资源交易平台"));
    assert!(
        b.get("/apply/type?dept=hlj-ggzy")
            .text()
            .contains("/apply/form?type=medical")
    );
    let made = b.apply("medical");
    assert_eq!(made.code, 303, "{}", made.text());
    let id = app_of(&made);
    let app = format!("APP-{id}");
    // The pre-filled application form.
    let pdf = b.get(&format!("/apps/{id}/form.pdf"));
    assert_eq!(pdf.code, 200, "{}", pdf.text());
    assert!(pdf.body.starts_with(b"%PDF-1.4"));
    assert!(pdf.text().contains(&format!("/Subject ({app})")));
    assert!(pdf.text().trim_end().ends_with("%%EOF"));
    // One upload per material the policy lists; then 确认申请.
    let status = b.get(&format!("/apps/{id}"));
    assert_eq!(state_of(&status), "待确认（草稿）");
    let kinds = material_kinds(&status);
    assert_eq!(kinds.len(), 4, "medical lists four materials");
    let csrf = status.input("csrf");
    for k in &kinds {
        let f = pdf_file(&env, &format!("{k}.pdf"));
        let u = b.upload(
            &format!("/apps/{id}/materials"),
            &[("csrf", &csrf), ("kind", k)],
            &f,
        );
        assert_eq!(u.code, 303, "{k}: {}", u.text());
    }
    let s = b.post(&format!("/apps/{id}/submit"), &[("csrf", &csrf)]);
    assert_eq!(s.code, 303, "{}", s.text());
    assert_eq!(state_of(&b.get(&format!("/apps/{id}"))), "待审核");
    // The counter sees it, with its materials, and approves it.
    let listed = env.json(&["apps", "list"]);
    let row = listed
        .as_array()
        .or_else(|| listed["applications"].as_array())
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(row["channel"], "online");
    let shown = env.ok(&["apps", "show", &app]);
    for k in &kinds {
        assert!(shown.contains(k.as_str()), "apps show names {k}:\n{shown}");
    }
    env.ok(&["review", "approve", &app]);
    assert_eq!(state_of(&b.get(&format!("/apps/{id}"))), "已通过（待付款）");
    let sms = env.ok(&["outbox", "list"]);
    assert!(sms.contains(&app) && sms.contains("已审核通过"), "{sms}");
    // 去付款: an order with the policy's amount and a QR code.
    assert_eq!(
        b.post(&format!("/apps/{id}/pay"), &[("csrf", &csrf)]).code,
        303
    );
    let pay = b.get(&format!("/apps/{id}/pay"));
    let t = pay.text();
    assert!(
        t.contains("300.00 元") && t.contains("data:image/svg+xml;base64,"),
        "{t}"
    );
    let order = {
        let k = "class=\"order-no\">";
        let i = t.find(k).unwrap() + k.len();
        t[i..i + t[i..].find('<').unwrap()].to_owned()
    };
    // The gateway's signed notification pays it.
    let (code, body) = notify(
        &server,
        &notification("N-1", "nonce-1", &order, 30000, "WX-1"),
        SECRET,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(state_of(&b.get(&format!("/apps/{id}"))), "已付款（待制证）");
    assert_eq!(env.sql(&format!("SELECT amount_fen || ' ' || method || ' ' || reference FROM orders WHERE application_id = {id}")).trim(), "30000 qr-wechat WX-1");
    // 自取 at Harbin; the counter issues onto a USBKEY and hands it over there.
    let d = b.post(
        &format!("/apps/{id}/delivery"),
        &[("csrf", &csrf), ("method", "pickup-harbin")],
    );
    assert_eq!(d.code, 303, "{}", d.text());
    env.token("portal-usbkey");
    env.ok(&["issue", &app, "--token", "portal-usbkey"]);
    let issued = b.get(&format!("/apps/{id}"));
    assert_eq!(state_of(&issued), "已签发");
    assert!(issued.text().contains("自取：哈尔滨市南岗区中山路181号"));
    let serial = env.sql(&format!(
        "SELECT serial FROM certificates WHERE application_id = {id} AND status = 'issued'"
    ));
    assert!(
        issued.text().contains(serial.trim()),
        "the status page names the certificate"
    );
    env.ok(&["deliver", &app, "--pickup", "harbin"]);
    assert!(
        b.get(&format!("/apps/{id}"))
            .text()
            .contains("USBKEY 已制作完成，可以领取")
    );
    // The audit log names the applicant and the gateway, and still verifies.
    let actors = env.sql(&format!(
        "SELECT DISTINCT operator FROM audit_log WHERE object = '{app}' ORDER BY operator"
    ));
    assert!(actors.contains("applicant:13800138000"), "{actors}");
    assert!(actors.contains("payment-gateway"), "{actors}");
    env.audit_intact();
    // Log out: the session is gone.
    assert_eq!(b.post("/logout", &[("csrf", &csrf)]).code, 303);
    assert_eq!(b.get("/apps").code, 303);
}
