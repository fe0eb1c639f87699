//! 续费 online: a holder whose certificate is inside the renewal window sees it on the portal,
//! opens a renewal, pays the annual fee through the gateway, and the counter renews it onto
//! the same USBKEY.

use crate::portal_client::*;
use crate::support::*;

/// Uploads every material of `id`, confirms, has the counter approve, opens the payment order
/// and pays it through the gateway; returns the order's amount in fen.
fn through_payment(
    env: &Env,
    server: &crate::serve::Server,
    b: &Browser,
    id: i64,
    n: &str,
) -> String {
    let page = b.get(&format!("/apps/{id}"));
    let csrf = page.input("csrf");
    for k in material_kinds(&page) {
        let f = pdf_file(env, &format!("{n}-{k}.pdf"));
        let u = b.upload(
            &format!("/apps/{id}/materials"),
            &[("csrf", &csrf), ("kind", &k)],
            &f,
        );
        assert_eq!(u.code, 303, "{}", u.text());
    }
    assert_eq!(
        b.post(&format!("/apps/{id}/submit"), &[("csrf", &csrf)])
            .code,
        303
    );
    env.ok(&["review", "approve", &format!("APP-{id}")]);
    assert_eq!(
        b.post(&format!("/apps/{id}/pay"), &[("csrf", &csrf)]).code,
        303
    );
    let (order, fen) = {
        let row = env.sql(&format!(
            "SELECT order_no || ' ' || amount_fen FROM portal_pay_orders WHERE application_id = {id}"
        ));
        let (o, f) = row.split_once(' ').unwrap();
        (o.to_owned(), f.to_owned())
    };
    let (code, body) = notify(
        server,
        &notification(
            &format!("N-{n}"),
            &format!("nonce-{n}"),
            &order,
            fen.parse().unwrap(),
            &format!("WX-{n}"),
        ),
        SECRET,
    );
    assert_eq!(code, 200, "{body}");
    let d = b.post(
        &format!("/apps/{id}/delivery"),
        &[("csrf", &csrf), ("method", "pickup-qiqihar")],
    );
    assert_eq!(d.code, 303, "{}", d.text());
    fen
}

#[test]
fn a_holder_renews_online_inside_the_window() {
    let env = Env::new();
    env.init_ca();
    let first = {
        let server = portal_server(&env);
        let b = Browser::new(&env, &server, "holder");
        b.register("13800138009", "哈尔滨北方康复医院", "holder password");
        assert_eq!(b.login("13800138009", "holder password").code, 303);
        let id = app_of(&b.apply("medical"));
        assert_eq!(through_payment(&env, &server, &b, id, "first"), "30000");
        env.token("holder-usbkey");
        env.ok(&["issue", &format!("APP-{id}"), "--token", "holder-usbkey"]);
        // Not yet inside the window: nothing to renew.
        let r = b.get("/renew");
        assert_eq!(r.code, 200);
        assert!(r.text().contains("暂无需要续费的证书"));
        id
    };
    let serial = env.sql(&format!(
        "SELECT serial FROM certificates WHERE application_id = {first} AND status = 'issued'"
    ));
    // 300 days on: inside the 90-day window.
    env.days_from_now(300);
    let server = portal_server(&env);
    let b = Browser::new(&env, &server, "holder-later");
    assert_eq!(b.login("13800138009", "holder password").code, 303);
    let r = b.get("/renew");
    let t = r.text();
    assert!(t.contains(serial.trim()), "{t}");
    assert!(t.contains("200.00 元"), "the annual fee: {t}");
    let csrf = r.input("csrf");
    let made = b.post("/renew", &[("csrf", &csrf), ("serial", serial.trim())]);
    assert_eq!(made.code, 303, "{}", made.text());
    let id = app_of(&made);
    assert_eq!(
        env.sql(&format!(
            "SELECT renewal_of FROM applications WHERE id = {id}"
        )),
        serial.trim()
    );
    // Another account cannot renew this holder's certificate.
    let other = Browser::new(&env, &server, "other");
    other.register("13800138010", "别的单位", "other password");
    other.login("13800138010", "other password");
    let oc = other.csrf();
    assert_eq!(
        other
            .post("/renew", &[("csrf", &oc), ("serial", serial.trim())])
            .code,
        404
    );
    // The annual fee, paid the same way; the counter renews onto the same USBKEY.
    assert_eq!(through_payment(&env, &server, &b, id, "renewal"), "20000");
    env.ok(&["issue", &format!("APP-{id}"), "--token", "holder-usbkey"]);
    assert_eq!(
        env.sql(&format!(
            "SELECT status FROM certificates WHERE serial = '{}'",
            serial.trim()
        )),
        "superseded"
    );
    let page = b.get(&format!("/apps/{id}"));
    assert!(page.text().contains("已签发"));
    env.audit_intact();
}
