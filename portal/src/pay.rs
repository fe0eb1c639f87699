//! 去付款 (a payment order with the policy's amount and its QR code), 邮寄 or 自取, and 续费
//! (renewal of a certificate inside its window, paid the same way).

use hljca_ra::prelude::*;
use std::collections::HashMap;

use base64::Engine;
use hljca_core::operators::Role;
use hljca_core::store::{CertFilter, CertStatus};
use hljca_policies::{Applicant, Fen, Mobile};
use hljca_ra::applications::{AppId, AppState, Channel, NewApplication, OnlineDelivery, Site};
use hyper::StatusCode;
use maud::{Markup, html};

use crate::Portal;
use crate::pages::{account, failed, not_found, refuse};
use crate::session::{Session, below, token};
use crate::status::owned;
use crate::view::{csrf, message, page};
use crate::web::Answer;

/// A new payment order number: `HLJ` and 20 random digits.
fn order_no() -> String {
    let mut s = String::from("HLJ");
    for _ in 0..20 {
        s.push(char::from(b'0' + below(10) as u8));
    }
    s
}

/// The QR code of a payment order as a PNG-free SVG data URI.
fn qr_data_uri(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// 去付款: opens (or finds) the order and shows it.
pub(crate) async fn open_order(p: &Portal, s: &Session, id: AppId) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let actor = format!("applicant:{login}");
    let no = order_no();
    let done =
        p.ca.run(move |ca| {
            if owned(ca, id, acct)?.is_none() {
                return Ok(None);
            }
            ca.act_for(&actor, &[], |ca| ca.online_pay_order(id, acct, &no))
                .map(Some)
        })
        .await;
    match done {
        Ok(Some(o)) => {
            tracing::info!(application = %id, order = %o.order_no, "payment order open");
            Answer::redirect(&format!("/apps/{}/pay", id.0))
        }
        Ok(None) => not_found(s, &format!("{id} is not this account's")),
        Err(e) => failed(s, e),
    }
}

/// The payment page: order number, amount, QR code.
pub(crate) async fn pay_page(p: &Portal, s: &Session, id: AppId) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let v = match crate::status::load(p, acct, id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(s, &format!("{id} is not this account's")),
        Err(e) => return failed(s, e),
    };
    let l = s.lang;
    let open = v.orders.iter().find(|o| o.paid_order_id.is_none());
    let paid = v.orders.iter().find(|o| o.paid_order_id.is_some());
    let body = html! {
        @if let Some(o) = paid {
            (message(false, &format!("{}{}（{}）", l.t("已付款，订单号：", "Paid, order "), o.order_no, Fen(o.amount_fen))))
            p { a class="button" href={ "/apps/" (id.0) } { (l.t("返回服务申办，选择邮寄或自取", "Back: choose mail or pickup")) } }
        } @else if let Some(o) = open {
            dl class="facts" {
                dt { (l.t("订单号", "Order")) } dd class="order-no" { (o.order_no) }
                dt { (l.t("应付金额", "Amount")) } dd class="amount" { (Fen(o.amount_fen)) }
            }
            @if let Some(uri) = qr_data_uri(&format!("hljca-pay:{}:{}", o.order_no, o.amount_fen)) {
                p { img class="qr" src=(uri) width="220" height="220" alt=(l.t("付款二维码（订单号见上）", "Payment QR code (order number above)")); }
            }
            p { (l.t("请使用微信或支付宝扫描二维码支付。支付完成后刷新本页。", "Scan the QR code with WeChat Pay or Alipay. Reload this page once paid.")) }
            p { a class="button secondary" href={ "/apps/" (id.0) "/pay" } { (l.t("我已支付，刷新", "I have paid: reload")) } }
        } @else if v.app.state == AppState::Approved {
            form method="post" action={ "/apps/" (id.0) "/pay" } {
                (csrf(s))
                p { (l.t("应付金额：", "Amount: ")) (v.fee) }
                button type="submit" { (l.t("确认下单", "Place the order")) }
            }
        } @else {
            (message(true, l.t("该申请当前无需付款。", "Nothing to pay for this application now.")))
        }
    };
    Answer::html(StatusCode::OK, page(s, l.t("去付款", "Pay"), body))
}

/// The form for 邮寄 or 自取.
pub(crate) fn delivery_form(s: &Session, id: AppId) -> Markup {
    let l = s.lang;
    html! {
        h2 { (l.t("选择领取方式", "Mail or pickup")) }
        form method="post" action={ "/apps/" (id.0) "/delivery" } {
            (csrf(s))
            fieldset {
                legend { (l.t("邮寄", "By mail")) }
                label { input type="radio" name="method" value="mail" required; " " (l.t("邮寄", "Mail")) }
                label for="recipient" { (l.t("收件人", "Recipient")) }
                input id="recipient" name="recipient" maxlength="32";
                label for="phone" { (l.t("联系电话（手机）", "Phone (mobile)")) }
                input id="phone" name="phone" type="tel" inputmode="numeric";
                label for="address" { (l.t("邮寄地址", "Postal address")) }
                input id="address" name="address" maxlength="200";
            }
            fieldset {
                legend { (l.t("自取", "Pickup")) }
                @for site in Site::ALL {
                    label { input type="radio" name="method" value={ "pickup-" (site.as_str()) }; " " (site.address()) "（0451-55918888）" }
                }
            }
            button type="submit" { (l.t("提交办理方式", "Submit")) }
        }
    }
}

/// Records 邮寄 or 自取.
pub(crate) async fn delivery(
    p: &Portal,
    s: &Session,
    id: AppId,
    f: &HashMap<String, String>,
) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let method = f.get("method").map(String::as_str).unwrap_or("");
    let choice = if method == "mail" {
        let phone: Mobile = match f.get("phone").map(|x| x.trim()).unwrap_or("").parse() {
            Ok(m) => m,
            Err(_) => {
                return refuse(
                    s,
                    StatusCode::BAD_REQUEST,
                    "字段「联系电话」：应为 11 位中国大陆手机号码。",
                    "Phone: an 11-digit mainland China mobile number.",
                    "bad delivery phone",
                );
            }
        };
        OnlineDelivery::Mail {
            recipient: f.get("recipient").cloned().unwrap_or_default(),
            phone,
            address: f.get("address").cloned().unwrap_or_default(),
        }
    } else if let Some(site) = method
        .strip_prefix("pickup-")
        .and_then(|x| x.parse::<Site>().ok())
    {
        OnlineDelivery::Pickup(site)
    } else {
        return refuse(
            s,
            StatusCode::BAD_REQUEST,
            "请选择邮寄或三个自取地点之一。",
            "Choose mail or one of the three pickup sites.",
            "bad delivery method",
        );
    };
    let actor = format!("applicant:{login}");
    let done =
        p.ca.run(move |ca| {
            if owned(ca, id, acct)?.is_none() {
                return Ok(None);
            }
            ca.act_for(&actor, &[], |ca| ca.online_choose_delivery(id, &choice))
                .map(Some)
        })
        .await;
    match done {
        Ok(Some(())) => Answer::redirect(&format!("/apps/{}", id.0)),
        Ok(None) => not_found(s, &format!("{id} is not this account's")),
        Err(e) => failed(s, e),
    }
}

/// 续费: the account's certificates inside the renewal window.
pub(crate) async fn renewals(p: &Portal, s: &Session) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let l = s.lang;
    let due =
        p.ca.run(move |ca| {
            let window = time::Duration::days(i64::from(ca.config().lifecycle.renewal_window_days));
            let now = ca.now();
            let mut out = Vec::new();
            for app in ca.online_applications(acct)? {
                for c in ca.cert_summaries(&CertFilter {
                    application_id: Some(app.id.0),
                    status: Some(CertStatus::Issued),
                    ..CertFilter::default()
                })? {
                    let in_window = c.not_after.is_some_and(|t| t > now && t - now <= window);
                    if in_window && c.identity_serial.is_none() {
                        out.push((c, ca.policies().get(app.cert_type).fees.annual));
                    }
                }
            }
            Ok(out)
        })
        .await;
    let due = match due {
        Ok(d) => d,
        Err(e) => return failed(s, e),
    };
    let body = html! {
        p { (l.t("证书有效期为 1 年，请在到期前办理续费。以下是进入续费期的证书：", "Certificates are valid for one year; renew before they expire. These are inside the renewal window:")) }
        @if due.is_empty() {
            p { (l.t("暂无需要续费的证书。", "No certificate is due for renewal.")) }
        }
        ul { @for (c, fee) in &due {
            li {
                (c.subject) " — " (c.serial) " — " (l.t("到期：", "expires ")) (c.not_after.map(|t| t.date().to_string()).unwrap_or_default())
                " — " (l.t("年费 ", "annual fee ")) (fee)
                form method="post" action="/renew" class="inline" {
                    (csrf(s))
                    input type="hidden" name="serial" value=(c.serial);
                    input type="hidden" name="form" value=(token());
                    button type="submit" { (l.t("续费", "Renew")) }
                }
            }
        } }
    };
    Answer::html(StatusCode::OK, page(s, l.t("续费", "Renewal"), body))
}

/// Opens a renewal application for one of the account's certificates: the counter's `apply`
/// with `renewal_of` (the eligibility check refuses outside the window), then the same path:
/// review, 去付款 with the annual fee, and the counter renews onto the same USBKEY.
pub(crate) async fn renew(p: &Portal, s: &Session, f: &HashMap<String, String>) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let serial = f.get("serial").cloned().unwrap_or_default();
    let actor = format!("applicant:{login}");
    let done =
        p.ca.run(move |ca| {
            let Ok(cert) = ca.cert(&serial) else {
                return Ok(None);
            };
            let Some(app_id) = cert.summary.application_id.map(AppId) else {
                return Ok(None);
            };
            let Some(app) = owned(ca, app_id, acct)? else {
                return Ok(None);
            };
            let new = NewApplication {
                cert_type: app.cert_type,
                applicant: Applicant(app.applicant.clone()),
                channel: Channel::Online,
                site: None,
                renewal_of: Some(cert.summary.serial.clone()),
            };
            ca.act_for(&actor, &[Role::Registrar], |ca| ca.online_apply(acct, &new))
                .map(Some)
        })
        .await;
    match done {
        Ok(Some(app)) => Answer::redirect(&format!("/apps/{}", app.id.0)),
        Ok(None) => not_found(s, "renewal of a certificate not this account's"),
        Err(e) => failed(s, e),
    }
}
