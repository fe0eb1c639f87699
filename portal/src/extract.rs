//! What a portal handler takes from its request: the session (found by its cookie, made on
//! first use, its cookie set on the answer by [`sessions`]), a form post with its CSRF token
//! checked ([`Form`]: url-encoded or a streamed multipart upload), the application in the path.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hljca_core::applications::AppId;
use hyper::StatusCode;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;

use crate::Portal;
use crate::pages::{Posted, app_path, refuse};
use crate::session::{self, Session};
use crate::upload::{self, Part, UploadError};
use crate::view::Lang;
use crate::web::{self, Answered, BodyError};

/// The request's session, resolved on first use (a request that never asks, such as the
/// gateway's notification, makes none).
#[derive(Clone)]
pub(crate) struct Slot {
    cookie: Option<String>,
    got: Arc<OnceLock<(Session, bool)>>,
}

impl Slot {
    fn new(headers: &HeaderMap) -> Slot {
        Slot {
            cookie: web::cookie(headers, session::COOKIE),
            got: Arc::new(OnceLock::new()),
        }
    }

    /// The session and whether it is new.
    fn session(&self, p: &Portal) -> (Session, bool) {
        self.got
            .get_or_init(
                || match self.cookie.as_deref().and_then(|id| p.sessions.get(id)) {
                    Some(s) => (s, false),
                    None => (p.sessions.create(Lang::Zh), true),
                },
            )
            .clone()
    }
}

/// The session of the request; `fresh` when it was made for this request.
pub(crate) struct Sess {
    pub s: Session,
    pub fresh: bool,
}

impl FromRequestParts<Arc<Portal>> for Sess {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, p: &Arc<Portal>) -> Result<Sess, Infallible> {
        let slot = match parts.extensions.get::<Slot>() {
            Some(s) => s.clone(),
            None => Slot::new(&parts.headers),
        };
        let (s, fresh) = slot.session(p);
        Ok(Sess { s, fresh })
    }
}

/// The portal's middleware around every route: the session slot in, and on the way out the
/// cookie of a session made for this request (unless the answer logged in with its own) and
/// the portal's page for a body the size limit refused.
pub(crate) async fn sessions(
    State(p): State<Arc<Portal>>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = Slot::new(req.headers());
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.extensions().get::<Answered>().is_none()
    {
        // `RequestBodyLimitLayer` answered on the declared length.
        resp = too_large(&slot.session(&p).0).into_response();
    }
    if let Some((s, true)) = slot.got.get()
        && !resp.headers().contains_key(header::SET_COOKIE)
        && let Ok(v) =
            HeaderValue::from_str(&session::set_cookie(&s.id, p.cfg.secure_cookies).to_string())
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn too_large(s: &Session) -> web::Answer {
    refuse(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "上传的文件超过 10 MiB 的上限。",
        "The upload is over the 10 MiB limit.",
        "body too large",
    )
}

fn csrf_refused(s: &Session, why: &str) -> web::Answer {
    refuse(
        s,
        StatusCode::FORBIDDEN,
        "请求无效：表单缺少有效的安全令牌（CSRF），请返回页面刷新后重新提交。",
        "Refused: the form has no valid security (CSRF) token; reload the page and submit again.",
        why,
    )
}

fn unreadable(s: &Session, e: &str) -> web::Answer {
    refuse(
        s,
        StatusCode::BAD_REQUEST,
        "请求无法读取。",
        "The request could not be read.",
        e,
    )
}

/// Reads a form post of session `s`: a `multipart/form-data` upload (streamed, at most
/// [`web::MAX_UPLOAD_BYTES`]) or a url-encoded form (at most [`web::MAX_FORM_BYTES`]); then
/// its CSRF token is checked.
pub(crate) async fn posted(
    s: &Session,
    fresh: bool,
    headers: &HeaderMap,
    body: Body,
) -> Result<Posted, web::Answer> {
    if fresh {
        return Err(csrf_refused(s, "POST without a session (CSRF)"));
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let posted = match upload::boundary(ctype) {
        Some(b) => match upload::parts(body, b).await {
            Ok(parts) => {
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
            Err(UploadError::TooLarge) => return Err(too_large(s)),
            Err(UploadError::Unreadable(e)) => return Err(unreadable(s, &e)),
            Err(UploadError::Malformed) => {
                return Err(refuse(
                    s,
                    StatusCode::BAD_REQUEST,
                    "上传的内容格式不正确。",
                    "The upload is malformed.",
                    "malformed multipart body",
                ));
            }
        },
        None => match web::read(headers, body, web::MAX_FORM_BYTES).await {
            Ok(bytes) => Posted {
                fields: web::form(&bytes),
                files: Vec::new(),
            },
            Err(BodyError::TooLarge) => return Err(too_large(s)),
            Err(BodyError::Unreadable(e)) => return Err(unreadable(s, &e)),
        },
    };
    match posted.fields.get("csrf") {
        Some(t) if web::same(t, &s.csrf) => Ok(posted),
        Some(_) => Err(csrf_refused(s, "wrong CSRF token")),
        None => Err(csrf_refused(s, "POST without a CSRF token")),
    }
}

/// A form post with its session, the CSRF token checked.
pub(crate) struct Form {
    pub s: Session,
    pub posted: Posted,
}

impl Form {
    /// The posted fields.
    pub fn fields(&self) -> &HashMap<String, String> {
        &self.posted.fields
    }
}

impl FromRequest<Arc<Portal>> for Form {
    type Rejection = web::Answer;

    async fn from_request(req: Request, p: &Arc<Portal>) -> Result<Form, web::Answer> {
        let (mut parts, body) = req.into_parts();
        let Ok(Sess { s, fresh }) = Sess::from_request_parts(&mut parts, p).await;
        let posted = posted(&s, fresh, &parts.headers, body).await?;
        Ok(Form { s, posted })
    }
}

/// `/apps/{id}…`: the application and the rest of the path, when the number is one.
pub(crate) struct AppPath(pub Option<(AppId, String)>);

impl<S: Send + Sync> FromRequestParts<S> for AppPath {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<AppPath, Infallible> {
        Ok(AppPath(
            app_path(parts.uri.path()).map(|(id, tail)| (id, tail.to_owned())),
        ))
    }
}
