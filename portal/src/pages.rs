//! What every page shares: refusals (with their status and log line), the logged-in account,
//! application paths, and the front page. The routes are `routes.rs`.

use std::collections::HashMap;

use hljca_core::CoreError;
use hljca_ra::applications::AppId;
use hyper::StatusCode;
use maud::html;

use crate::session::Session;
use crate::upload::Part;
use crate::view::{Lang, page};
use crate::web::Answer;
use crate::{Portal, PortalError};

/// The portal's style sheet, embedded.
pub(crate) const CSS: &str = include_str!("../assets/portal.css");

/// A form post, its CSRF token checked.
pub(crate) struct Posted {
    pub fields: HashMap<String, String>,
    pub files: Vec<Part>,
}

/// Why a request is refused: the page to show and the log line.
pub(crate) fn refuse(s: &Session, code: StatusCode, zh: &str, en: &str, log: &str) -> Answer {
    let l = s.lang;
    let title = match code {
        StatusCode::NOT_FOUND => l.t("未找到", "Not found"),
        StatusCode::FORBIDDEN => l.t("请求被拒绝", "Refused"),
        _ => l.t("无法办理", "Cannot be done"),
    };
    Answer::html(
        code,
        page(
            s,
            title,
            html! {
                p class="error" role="alert" { (l.t(zh, en)) }
                p { a href="/" { (l.t("返回首页", "Back to the front page")) } }
            },
        ),
    )
    .refused(log.to_owned())
}

/// Not found (also: another applicant's application or material).
pub(crate) fn not_found(s: &Session, log: &str) -> Answer {
    refuse(
        s,
        StatusCode::NOT_FOUND,
        "未找到该页面或申请。",
        "No such page or application.",
        log,
    )
}

/// A CA error as the applicant sees it.
pub(crate) fn failed(s: &Session, e: PortalError) -> Answer {
    match e {
        PortalError::Core(CoreError::Refused(r)) if r.class() != hljca_core::Class::Internal => {
            let m = &r.message;
            refuse(
                s,
                StatusCode::CONFLICT,
                &format!("无法办理：{m}"),
                &format!("Cannot be done: {m}"),
                m,
            )
        }
        PortalError::Core(e @ CoreError::Applicant { .. }) => {
            let m = e.to_string();
            refuse(
                s,
                StatusCode::BAD_REQUEST,
                &format!("填写有误：{m}"),
                &format!("Invalid data: {m}"),
                &m,
            )
        }
        e => {
            tracing::error!(error = %e, "portal request failed");
            refuse(
                s,
                StatusCode::SERVICE_UNAVAILABLE,
                "系统暂时无法处理，请稍后再试。",
                "The service cannot handle this now; try again later.",
                &e.to_string(),
            )
        }
    }
}

/// The logged-in account, or the log-in page.
pub(crate) fn account(s: &Session) -> Result<(i64, String), Box<Answer>> {
    s.account
        .clone()
        .ok_or_else(|| Box::new(Answer::redirect("/login")))
}

/// `/apps/{id}…`: the application number and the rest of the path.
pub(crate) fn app_path(path: &str) -> Option<(AppId, &str)> {
    let rest = path.strip_prefix("/apps/")?;
    let (num, tail) = rest.split_once('/').map_or((rest, ""), |(n, t)| (n, t));
    let id = num.parse::<i64>().ok().filter(|n| *n > 0)?;
    Some((AppId(id), tail))
}

/// The front page: the service, the seven types with their fees and seals, the way in.
pub(crate) fn front(p: &Portal, s: &Session) -> Answer {
    let l = s.lang;
    let body = html! {
        p { (l.t("黑龙江省数字证书认证有限公司为黑龙江省公共资源交易平台用户提供数字证书和电子印章的线上办理：注册、登录、新办、填写信息、上传材料、确认申请、审核、付款、邮寄或自取。",
                 "Heilongjiang CA issues certificates and electronic seals for users of the Heilongjiang public resource trading platform online: register, log in, apply, fill in the form, upload the materials, confirm, wait for review, pay, then choose mail or pickup.")) }
        p class="actions" {
            @if s.account.is_some() {
                a class="button" href="/apply" { (l.t("新办", "New application")) }
                " "
                a class="button secondary" href="/apps" { (l.t("服务申办", "My applications")) }
            } @else {
                a class="button" href="/login" { (l.t("我要办理（登录）", "Start (log in)")) }
                " "
                a class="button secondary" href="/register" { (l.t("注册用户", "Register")) }
            }
        }
        h2 { (l.t("证书类型与收费标准", "Certificate types and fees")) }
        div class="table-wrap" {
            table {
                caption { (l.t("首次办理含 USBKEY 介质；证书及电子印章有效期为 1 年。", "The first application includes the USBKEY; certificates and seals are valid for one year.")) }
                thead { tr {
                    th scope="col" { (l.t("证书类型", "Type")) }
                    th scope="col" { (l.t("首次办理", "First application")) }
                    th scope="col" { (l.t("年费（续费）", "Annual fee (renewal)")) }
                    th scope="col" { (l.t("电子印章", "Electronic seal")) }
                } }
                tbody {
                    @for pol in p.cfg.policies.iter() {
                        tr {
                            th scope="row" { (pol.name_zh) @if l == Lang::En { br; small { (pol.name_en) } } }
                            td { (pol.fees.first) }
                            td { (pol.fees.annual) (l.t("/年", "/year")) }
                            td { @if pol.seal.is_some() { (l.t("含电子印章", "Seal included")) } @else { (l.t("不含电子印章", "No seal")) } }
                        }
                    }
                }
            }
        }
        h2 { (l.t("线下受理服务地址", "Service sites")) }
        ul {
            @for site in hljca_ra::applications::Site::ALL {
                li { (site.address()) }
            }
        }
    };
    Answer::html(
        StatusCode::OK,
        page(s, l.t("数字证书线上办理", "Certificates online"), body),
    )
}
