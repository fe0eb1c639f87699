//! Routing: the session of each request, the CSRF check of every form post, and the front page.

use std::collections::HashMap;

use hljca_core::CoreError;
use hljca_ra::applications::AppId;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use maud::html;

use crate::session::{self, Session};
use crate::view::{Lang, page};
use crate::web::{self, Answer, BodyError, Part};
use crate::{Portal, PortalError};

/// The portal's style sheet, embedded.
const CSS: &str = include_str!("../assets/portal.css");

/// Paths the portal answers.
pub(crate) fn owns(path: &str) -> bool {
    path == "/"
        || [
            "/static/",
            "/lang/",
            "/register",
            "/login",
            "/logout",
            "/apps",
            "/apply",
            "/pay/",
            "/renew",
            "/types",
            "/sso/",
            "/__test/",
        ]
        .iter()
        .any(|p| path.starts_with(p))
}

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
        PortalError::Core(CoreError::Refused(m) | CoreError::BadInput(m)) => refuse(
            s,
            StatusCode::CONFLICT,
            &format!("无法办理：{m}"),
            &format!("Cannot be done: {m}"),
            &m,
        ),
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
fn app_path(path: &str) -> Option<(AppId, &str)> {
    let rest = path.strip_prefix("/apps/")?;
    let (num, tail) = rest.split_once('/').map_or((rest, ""), |(n, t)| (n, t));
    let id = num.parse::<i64>().ok().filter(|n| *n > 0)?;
    Some((AppId(id), tail))
}

pub(crate) async fn route(p: &Portal, req: Request<Incoming>) -> Answer {
    let existing = web::cookie(&req, session::COOKIE).and_then(|id| p.sessions.get(&id));
    let fresh = existing.is_none();
    let s = existing.unwrap_or_else(|| p.sessions.create(Lang::Zh));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut a = if method == Method::GET || method == Method::HEAD {
        get(p, &s, &path, req).await
    } else if method == Method::POST {
        if path == "/pay/notify" {
            crate::gateway::notify(p, req).await
        } else {
            post(p, &s, fresh, &path, req).await
        }
    } else {
        refuse(
            &s,
            StatusCode::METHOD_NOT_ALLOWED,
            "不支持该请求方式。",
            "Method not allowed.",
            "method not allowed",
        )
        .with(header::ALLOW, "GET, HEAD, POST")
    };
    // A new visitor gets the session cookie (unless the answer logged in with its own).
    if fresh && path != "/pay/notify" && !a.resp.headers().contains_key(header::SET_COOKIE) {
        a = a.with(
            header::SET_COOKIE,
            &session::set_cookie(&s.id, p.cfg.secure_cookies),
        );
    }
    a
}

async fn get(p: &Portal, s: &Session, path: &str, req: Request<Incoming>) -> Answer {
    let q = web::query(&req);
    match path {
        "/" | "/types" => front(p, s),
        "/static/portal.css" => Answer::new(StatusCode::OK, "text/css; charset=utf-8", CSS)
            .with(header::CACHE_CONTROL, "public, max-age=3600"),
        "/lang/en" | "/lang/zh" => {
            let lang = if path.ends_with("en") {
                Lang::En
            } else {
                Lang::Zh
            };
            p.sessions.update(&s.id, |x| x.lang = lang);
            Answer::redirect("/")
        }
        "/register" => crate::auth::register_page(s, None, &HashMap::new()),
        "/login" => crate::auth::login_page(p, s, None),
        "/apps" => crate::status::list(p, s).await,
        "/apply" => crate::apply::department(s),
        "/apply/type" => crate::apply::types(p, s),
        "/apply/form" => crate::apply::form_page(p, s, q.get("type").map(String::as_str)),
        "/renew" => crate::pay::renewals(p, s).await,
        "/sso/login" => crate::sso::login(p, s),
        "/sso/callback" => crate::sso::callback(p, s, &q).await,
        #[cfg(debug_assertions)]
        "/__test/captcha" if p.cfg.test_hooks => {
            let answer = p
                .sessions
                .get(&s.id)
                .and_then(|x| x.captcha)
                .map(|(_, a)| a);
            Answer::new(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                answer.map(|n| n.to_string()).unwrap_or_default(),
            )
        }
        _ => match app_path(path) {
            Some((id, "")) => crate::status::show(p, s, id).await,
            Some((id, "form.pdf")) => crate::form_pdf::download(p, s, id).await,
            Some((id, "pay")) => crate::pay::pay_page(p, s, id).await,
            Some((id, tail)) if tail.starts_with("materials/") => {
                match tail["materials/".len()..].parse::<i64>() {
                    Ok(mid) => crate::status::material(p, s, id, mid).await,
                    Err(_) => not_found(s, "bad material number"),
                }
            }
            _ => not_found(s, "no such page"),
        },
    }
}

async fn post(p: &Portal, s: &Session, fresh: bool, path: &str, req: Request<Incoming>) -> Answer {
    let csrf_refused = |why: &str| {
        refuse(
            s,
            StatusCode::FORBIDDEN,
            "请求无效：表单缺少有效的安全令牌（CSRF），请返回页面刷新后重新提交。",
            "Refused: the form has no valid security (CSRF) token; reload the page and submit again.",
            why,
        )
    };
    if fresh {
        return csrf_refused("POST without a session (CSRF)");
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let upload = web::boundary(&ctype);
    let max = if upload.is_some() {
        web::MAX_UPLOAD_BYTES
    } else {
        web::MAX_FORM_BYTES
    };
    let bytes = match web::body(req, max).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return refuse(
                s,
                StatusCode::PAYLOAD_TOO_LARGE,
                "上传的文件超过 10 MiB 的上限。",
                "The upload is over the 10 MiB limit.",
                "body too large",
            );
        }
        Err(BodyError::Unreadable(e)) => {
            return refuse(
                s,
                StatusCode::BAD_REQUEST,
                "请求无法读取。",
                "The request could not be read.",
                &e,
            );
        }
    };
    let posted = match upload {
        Some(b) => match web::multipart(&bytes, &b) {
            Some(parts) => {
                let (files, fields): (Vec<Part>, Vec<Part>) =
                    parts.into_iter().partition(|x| x.file_name.is_some());
                Posted {
                    fields: fields
                        .into_iter()
                        .map(|x| (x.name, String::from_utf8_lossy(&x.data).into_owned()))
                        .collect(),
                    files,
                }
            }
            None => {
                return refuse(
                    s,
                    StatusCode::BAD_REQUEST,
                    "上传的内容格式不正确。",
                    "The upload is malformed.",
                    "malformed multipart body",
                );
            }
        },
        None => Posted {
            fields: web::form(&bytes),
            files: Vec::new(),
        },
    };
    match posted.fields.get("csrf") {
        Some(t) if web::same(t, &s.csrf) => {}
        Some(_) => return csrf_refused("wrong CSRF token"),
        None => return csrf_refused("POST without a CSRF token"),
    }
    match path {
        "/register" => crate::auth::register(p, s, &posted.fields).await,
        "/login" => crate::auth::login(p, s, &posted.fields).await,
        "/logout" => {
            p.sessions.remove(&s.id);
            Answer::redirect("/").with(
                header::SET_COOKIE,
                &format!(
                    "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                    session::COOKIE
                ),
            )
        }
        "/apply/form" => crate::apply::create(p, s, &posted.fields).await,
        "/renew" => crate::pay::renew(p, s, &posted.fields).await,
        _ => match app_path(path) {
            Some((id, "materials")) => crate::status::upload(p, s, id, posted).await,
            Some((id, "submit")) => crate::status::submit(p, s, id).await,
            Some((id, "pay")) => crate::pay::open_order(p, s, id).await,
            Some((id, "delivery")) => crate::pay::delivery(p, s, id, &posted.fields).await,
            _ => not_found(s, "no such form"),
        },
    }
}

/// The front page: the service, the seven types with their fees and seals, the way in.
fn front(p: &Portal, s: &Session) -> Answer {
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
