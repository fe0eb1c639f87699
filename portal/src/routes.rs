//! The portal's route table: one axum [`Router`] the server mounts behind its own routes.
//! Every page takes its session ([`Sess`]); every form post its CSRF-checked fields
//! ([`Form`]); a path of one of the portal's areas that names nothing, and a method a page
//! does not take, get the portal's own answers ([`other`]).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode, Uri};
use tower_http::limit::RequestBodyLimitLayer;

use crate::extract::{AppPath, Form, Sess, posted, sessions};
use crate::pages::{self, not_found, refuse};
use crate::view::Lang;
use crate::web::{self, Answer, Answered};
use crate::{Portal, session};

type St = axum::extract::State<Arc<Portal>>;

/// The portal's areas: a path under one of them that no route names is the portal's 404
/// (under `/apps/{id}/`; `/apps/{id}` itself takes any one segment).
const AREAS: [&str; 12] = [
    "/static",
    "/lang",
    "/register",
    "/login",
    "/logout",
    "/apps/{id}",
    "/apply",
    "/pay",
    "/renew",
    "/types",
    "/sso",
    "/__test",
];

/// The portal's routes, with their state.
pub(crate) fn router(p: Arc<Portal>) -> Router {
    let mut pages = Router::new()
        .route("/", get(front))
        .route("/types", get(front))
        .route("/static/portal.css", get(css))
        .route("/lang/en", get(lang_en))
        .route("/lang/zh", get(lang_zh))
        .route("/register", get(register_page).post(register))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/apps", get(list))
        .route("/apps/{id}", get(show))
        .route("/apps/{id}/", get(show))
        .route("/apps/{id}/form.pdf", get(form_pdf))
        .route("/apps/{id}/pay", get(pay_page).post(open_order))
        .route("/apps/{id}/materials", post(upload))
        .route("/apps/{id}/materials/{mid}", get(material))
        .route("/apps/{id}/submit", post(submit))
        .route("/apps/{id}/delivery", post(delivery))
        .route("/apply", get(department))
        .route("/apply/type", get(types))
        .route("/apply/form", get(form_page).post(create))
        .route("/renew", get(renewals).post(renew))
        .route("/sso/login", get(sso_login))
        .route("/sso/callback", get(sso_callback));
    #[cfg(debug_assertions)]
    if p.cfg.test_hooks {
        pages = pages
            .route("/__test/captcha", get(test_captcha))
            .route("/__test/panic", get(test_panic))
            .route("/__test/panic-acting", get(test_panic_acting));
    }
    for area in AREAS {
        pages = pages.route(&format!("{area}/{{*rest}}"), any(other));
    }
    // Uploads are the largest bodies; a form's own limit is checked as it is read.
    let pages = pages
        .method_not_allowed_fallback(other)
        .layer(RequestBodyLimitLayer::new(web::MAX_UPLOAD_BYTES));
    let gateway = Router::new()
        .route(
            "/pay/notify",
            post(notify)
                .layer(RequestBodyLimitLayer::new(web::MAX_FORM_BYTES))
                .layer(map_response(gateway_limit)),
        )
        .method_not_allowed_fallback(other);
    pages
        .merge(gateway)
        .layer(from_fn_with_state(p.clone(), sessions))
        .with_state(p)
}

/// A path of the portal's areas that names nothing, or a method its page does not take:
/// 404 for GET/HEAD, the CSRF check and 404 for POST, 405 for the rest.
async fn other(Sess { s, fresh }: Sess, m: Method, h: HeaderMap, b: Body) -> Answer {
    if m == Method::GET || m == Method::HEAD {
        not_found(&s, "no such page")
    } else if m == Method::POST {
        match posted(&s, fresh, &h, b).await {
            Ok(_) => not_found(&s, "no such form"),
            Err(a) => a,
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
    }
}

async fn front(State(p): St, Sess { s, .. }: Sess) -> Answer {
    pages::front(&p, &s)
}

async fn css(Sess { .. }: Sess) -> Answer {
    Answer::new(StatusCode::OK, "text/css; charset=utf-8", pages::CSS)
        .with(header::CACHE_CONTROL, "public, max-age=3600")
}

fn set_lang(p: &Portal, s: &session::Session, lang: Lang) -> Answer {
    p.sessions.update(&s.id, |x| x.lang = lang);
    Answer::redirect("/")
}

async fn lang_en(State(p): St, Sess { s, .. }: Sess) -> Answer {
    set_lang(&p, &s, Lang::En)
}

async fn lang_zh(State(p): St, Sess { s, .. }: Sess) -> Answer {
    set_lang(&p, &s, Lang::Zh)
}

async fn register_page(Sess { s, .. }: Sess) -> Answer {
    crate::auth::register_page(&s, None, &Default::default())
}

async fn register(State(p): St, f: Form) -> Answer {
    crate::auth::register(&p, &f.s, f.fields()).await
}

async fn login_page(State(p): St, Sess { s, .. }: Sess) -> Answer {
    crate::auth::login_page(&p, &s, None)
}

async fn login(State(p): St, f: Form) -> Answer {
    crate::auth::login(&p, &f.s, f.fields()).await
}

async fn logout(State(p): St, f: Form) -> Answer {
    p.sessions.remove(&f.s.id);
    Answer::redirect("/").with_cookie(&session::clear_cookie())
}

async fn list(State(p): St, Sess { s, .. }: Sess) -> Answer {
    crate::status::list(&p, &s).await
}

async fn show(State(p): St, Sess { s, .. }: Sess, AppPath(a): AppPath) -> Answer {
    match a {
        Some((id, _)) => crate::status::show(&p, &s, id).await,
        None => not_found(&s, "no such page"),
    }
}

async fn form_pdf(State(p): St, Sess { s, .. }: Sess, AppPath(a): AppPath) -> Answer {
    match a {
        Some((id, _)) => crate::form_pdf::download(&p, &s, id).await,
        None => not_found(&s, "no such page"),
    }
}

async fn pay_page(State(p): St, Sess { s, .. }: Sess, AppPath(a): AppPath) -> Answer {
    match a {
        Some((id, _)) => crate::pay::pay_page(&p, &s, id).await,
        None => not_found(&s, "no such page"),
    }
}

async fn material(State(p): St, Sess { s, .. }: Sess, AppPath(a): AppPath) -> Answer {
    let Some((id, tail)) = a else {
        return not_found(&s, "no such page");
    };
    match tail.strip_prefix("materials/").map(str::parse::<i64>) {
        Some(Ok(mid)) => crate::status::material(&p, &s, id, mid).await,
        _ => not_found(&s, "bad material number"),
    }
}

async fn open_order(State(p): St, AppPath(a): AppPath, f: Form) -> Answer {
    match a {
        Some((id, _)) => crate::pay::open_order(&p, &f.s, id).await,
        None => not_found(&f.s, "no such form"),
    }
}

async fn upload(State(p): St, AppPath(a): AppPath, f: Form) -> Answer {
    match a {
        Some((id, _)) => crate::status::upload(&p, &f.s, id, f.posted).await,
        None => not_found(&f.s, "no such form"),
    }
}

async fn submit(State(p): St, AppPath(a): AppPath, f: Form) -> Answer {
    match a {
        Some((id, _)) => crate::status::submit(&p, &f.s, id).await,
        None => not_found(&f.s, "no such form"),
    }
}

async fn delivery(State(p): St, AppPath(a): AppPath, f: Form) -> Answer {
    match a {
        Some((id, _)) => crate::pay::delivery(&p, &f.s, id, f.fields()).await,
        None => not_found(&f.s, "no such form"),
    }
}

async fn department(Sess { s, .. }: Sess) -> Answer {
    crate::apply::department(&s)
}

async fn types(State(p): St, Sess { s, .. }: Sess) -> Answer {
    crate::apply::types(&p, &s)
}

async fn form_page(State(p): St, Sess { s, .. }: Sess, uri: Uri) -> Answer {
    let q = web::query(&uri);
    crate::apply::form_page(&p, &s, q.get("type").map(String::as_str))
}

async fn create(State(p): St, f: Form) -> Answer {
    crate::apply::create(&p, &f.s, f.fields()).await
}

async fn renewals(State(p): St, Sess { s, .. }: Sess) -> Answer {
    crate::pay::renewals(&p, &s).await
}

async fn renew(State(p): St, f: Form) -> Answer {
    crate::pay::renew(&p, &f.s, f.fields()).await
}

async fn sso_login(State(p): St, Sess { s, .. }: Sess) -> Answer {
    crate::sso::login(&p, &s)
}

async fn sso_callback(State(p): St, Sess { s, .. }: Sess, uri: Uri) -> Answer {
    crate::sso::callback(&p, &s, &web::query(&uri)).await
}

/// `POST /pay/notify`: no session, no CSRF token (the gateway signs its body).
async fn notify(State(p): St, h: HeaderMap, b: Body) -> Answer {
    crate::gateway::notify(&p, &h, b).await
}

/// The gateway's own answer when the body limit refused a notification by its length.
async fn gateway_limit<B>(resp: Response<B>) -> Response
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.extensions().get::<Answered>().is_none()
    {
        return crate::gateway::too_large().into_response();
    }
    resp.into_response()
}

/// Test builds with `HLJCA_PORTAL_TEST_HOOKS=1`: the session's captcha answer.
#[cfg(debug_assertions)]
async fn test_captcha(State(p): St, Sess { s, .. }: Sess) -> Answer {
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

/// Test builds with `HLJCA_PORTAL_TEST_HOOKS=1`: a CA job that panics while the CA acts for an
/// applicant, to show the next job acts as its own actor (the worker catches the panic).
#[cfg(debug_assertions)]
async fn test_panic_acting(State(p): St) -> Answer {
    let done =
        p.ca.run(|ca| {
            ca.act_for("applicant:test-hook", &[], |_| -> hljca_core::Result<()> {
                panic!("test hook: a CA job panics while acting for an applicant")
            })
        })
        .await;
    Answer::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        format!("{done:?}"),
    )
}

/// Test builds with `HLJCA_PORTAL_TEST_HOOKS=1`: a handler that panics, to show the server
/// answers 500 and goes on serving.
#[cfg(debug_assertions)]
async fn test_panic() -> Answer {
    panic!("test hook: this handler panics")
}
