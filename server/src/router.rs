//! The route tables: one axum [`Router`] for the public listener — OCSP (POST, and GET with
//! the request in the path), the CRL and both CA certificates at the paths of the configured
//! URLs, `/healthz`, `/metrics`, and the portal's router behind them — and the API's
//! (`api::router`), both under the same tower layers ([`layers`]): the request timeout
//! (tower-http `TimeoutLayer`), `CatchPanicLayer` (a panicking handler is a 500; the server
//! goes on), `TraceLayer`, and the access log with the metrics. Request bodies are bounded by
//! tower-http's `RequestBodyLimitLayer` on the routes that take one.

use std::any::Any;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use hljca_portal::Answered;
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};
use tower::ServiceExt;
use tower::util::{BoxCloneSyncService, MapRequestLayer};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::State;
use crate::api::error::ApiError;
use crate::http::{Logged, Outcome, Peer, other_content_type, set, too_large};
use crate::metrics::Route;
use crate::worker::Job;
use crate::{ocsp_http, pages};

/// What every handler has: the shared state and the way to the CA worker.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub st: Arc<State>,
    pub jobs: SyncSender<Job>,
}

/// The route a request took, for the metrics: set by the route as the request passes.
#[derive(Clone)]
struct RouteCell(Arc<AtomicUsize>);

impl RouteCell {
    fn new(r: Route) -> RouteCell {
        RouteCell(Arc::new(AtomicUsize::new(r.index())))
    }

    fn get(&self) -> Route {
        Route::from_index(self.0.load(Ordering::Relaxed))
    }
}

/// A layer naming the route of the requests through it.
pub(crate) fn tag(
    route: Route,
) -> MapRequestLayer<impl Fn(Request) -> Request + Clone + Send + Sync + 'static> {
    MapRequestLayer::new(move |req: Request| {
        if let Some(c) = req.extensions().get::<RouteCell>() {
            c.0.store(route.index(), Ordering::Relaxed);
        }
        req
    })
}

/// 405 with `Allow`: `method` is not one of `allow`.
fn not_allowed(method: &Method, allow: &[Method]) -> Outcome {
    let names: Vec<&str> = allow.iter().map(Method::as_str).collect();
    let mut o = Outcome::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed here"),
    );
    set(&mut o.resp, header::ALLOW, &names.join(", "));
    o
}

const GET_HEAD: [Method; 2] = [Method::GET, Method::HEAD];

/// A GET (and HEAD) route; other methods get 405.
fn gets<H, T>(h: H) -> MethodRouter<Ctx>
where
    H: axum::handler::Handler<T, Ctx>,
    T: 'static,
{
    get(h).fallback(|m: Method| async move { not_allowed(&m, &GET_HEAD) })
}

/// A configured path as an axum route: literal (braces escaped).
fn literal(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
}

async fn health(AxState(c): AxState<Ctx>) -> Outcome {
    pages::health(&c.jobs).await
}

async fn metrics(AxState(c): AxState<Ctx>) -> Outcome {
    pages::metrics(&c.st)
}

async fn crl(AxState(c): AxState<Ctx>, h: HeaderMap) -> Outcome {
    match c.st.crl.read().ok().and_then(|d| d.clone()) {
        Some(doc) => pages::doc(&h, &doc),
        None => Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "no CRL yet"),
    }
}

async fn issuing(AxState(c): AxState<Ctx>, h: HeaderMap) -> Outcome {
    pages::doc(&h, &c.st.issuing)
}

async fn root(AxState(c): AxState<Ctx>, h: HeaderMap) -> Outcome {
    pages::doc(&h, &c.st.root)
}

async fn ocsp_post(AxState(c): AxState<Ctx>, req: Request) -> Outcome {
    ocsp_http::post(req, &c.st, &c.jobs).await
}

async fn ocsp_get(AxState(c): AxState<Ctx>, req: Request) -> Outcome {
    ocsp_http::get(req, &c.st, &c.jobs).await
}

async fn not_found(req: Request) -> Outcome {
    if let Some(c) = req.extensions().get::<RouteCell>() {
        c.0.store(Route::Other.index(), Ordering::Relaxed);
    }
    Outcome::error(StatusCode::NOT_FOUND, "not found")
}

type Svc = BoxCloneSyncService<Request, Response, Infallible>;

/// The public listener's router. The server's own routes come first (in the order below when
/// configured paths coincide); every other path goes to the portal's router, whose fallback
/// is 404. `POST /` with an OCSP request is OCSP (RFC 6960 clients post to the base URL);
/// everything else at `/` is the portal's. With OCSP at the root of the host (an `ocsp` URL
/// without a path), every other path is an OCSP GET, as RFC 6960 appendix A has it.
pub(crate) fn public(ctx: Ctx) -> Router {
    let st = ctx.st.clone();
    let r = st.routes.clone();
    let ocsp_post: MethodRouter = post(ocsp_post)
        .fallback(|m: Method| async move { not_allowed(&m, &[Method::POST]) })
        .layer::<_, Infallible>(RequestBodyLimitLayer::new(st.limits.max_body_bytes))
        .layer(tag(Route::OcspPost))
        .with_state(ctx.clone());
    let ocsp_get: MethodRouter = gets(ocsp_get)
        .layer(tag(Route::OcspGet))
        .with_state(ctx.clone());
    let rest: Svc = if r.ocsp.is_empty() {
        BoxCloneSyncService::new(ocsp_get.clone())
    } else {
        BoxCloneSyncService::new(
            st.portal
                .router()
                .layer(tag(Route::Portal))
                .fallback(not_found),
        )
    };
    let mut table: Vec<(String, MethodRouter)> = vec![
        (
            "/healthz".into(),
            gets(health)
                .layer(tag(Route::Health))
                .with_state(ctx.clone()),
        ),
        (
            "/metrics".into(),
            gets(metrics)
                .layer(tag(Route::Metrics))
                .with_state(ctx.clone()),
        ),
        (
            literal(&r.crl),
            gets(crl).layer(tag(Route::Crl)).with_state(ctx.clone()),
        ),
        (
            literal(&r.issuing),
            gets(issuing)
                .layer(tag(Route::CaCert))
                .with_state(ctx.clone()),
        ),
        (
            literal(&r.root),
            gets(root).layer(tag(Route::CaCert)).with_state(ctx.clone()),
        ),
    ];
    if !r.ocsp.is_empty() {
        let at = literal(&r.ocsp);
        table.push((at.clone(), ocsp_post.clone()));
        table.push((format!("{at}/"), ocsp_get.clone()));
        table.push((format!("{at}/{{*request}}"), ocsp_get));
    }
    let mut router = Router::new().without_v07_checks();
    let mut taken = HashSet::new();
    for (path, route) in table {
        if path.starts_with('/') && taken.insert(path.clone()) {
            router = router.route(&path, route);
        }
    }
    if taken.insert("/".into()) {
        let (ocsp, other) = (ocsp_post, rest.clone());
        router = router.route(
            "/",
            any(move |req: Request| {
                let is_ocsp = req.method() == Method::POST
                    && other_content_type(req.headers(), ocsp_http::REQUEST_TYPE).is_none();
                let (ocsp, other) = (ocsp.clone(), other.clone());
                async move {
                    let answered = if is_ocsp {
                        ocsp.oneshot(req).await
                    } else {
                        other.oneshot(req).await
                    };
                    match answered {
                        Ok(resp) => resp,
                        Err(e) => match e {},
                    }
                }
            }),
        );
    }
    layers(router.fallback_service(rest), st, Side::Public)
}

/// Which listener a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// OCSP, CRL, CA certificates, health, metrics, the portal (plain HTTP).
    Public,
    /// The client-certificate API (HTTPS).
    Api,
}

#[derive(Clone)]
struct Access {
    st: Arc<State>,
    side: Side,
}

/// The panic's message, when it has one.
fn panic_message(err: &(dyn Any + Send)) -> &str {
    err.downcast_ref::<&str>()
        .copied()
        .or_else(|| err.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn panicked(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic_message(&*err);
    tracing::error!(panic = %what, "a request handler panicked");
    let mut o = Outcome::error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
    o.refused = Some(format!("handler panicked: {what}"));
    o.into_response()
}

fn api_panicked(err: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!(panic = %panic_message(&*err), "an API handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "internal",
        "the CA could not complete the call; see the server log",
    )
    .outcome()
    .into_response()
}

/// The layers every route of a listener is under: innermost the request timeout, then the
/// panic catcher, the trace span, and outermost the access log and metrics.
pub(crate) fn layers(router: Router, st: Arc<State>, side: Side) -> Router {
    let timeout =
        TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, st.limits.request_timeout);
    let catch = CatchPanicLayer::custom(match side {
        Side::Public => panicked as fn(Box<dyn Any + Send + 'static>) -> Response,
        Side::Api => api_panicked,
    });
    let trace =
        TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    router
        .layer(timeout)
        .layer(catch)
        .layer(trace)
        .layer(from_fn_with_state(Access { st, side }, access))
}

/// The answer for a response a layer made (no handler's mark on it): the body limit's 413 and
/// the timeout's 503, in the words and shape of the listener's own errors.
fn in_our_words(resp: Response, a: &Access) -> Response {
    let ext = resp.extensions();
    if ext.get::<Logged>().is_some() || ext.get::<Answered>().is_some() {
        return resp;
    }
    let max = a.st.limits.max_body_bytes;
    match (resp.status(), a.side) {
        (StatusCode::PAYLOAD_TOO_LARGE, Side::Public) => too_large(max).into_response(),
        (StatusCode::PAYLOAD_TOO_LARGE, Side::Api) => ApiError::from_outcome(&too_large(max))
            .outcome()
            .into_response(),
        (StatusCode::SERVICE_UNAVAILABLE, Side::Public) => {
            Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "request timed out").into_response()
        }
        (StatusCode::SERVICE_UNAVAILABLE, Side::Api) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "request-timeout",
            "the call did not finish in time; with an Idempotency-Key, send it again",
        )
        .outcome()
        .into_response(),
        _ => resp,
    }
}

/// The access log line and the metrics of every request.
async fn access(AxState(a): AxState<Access>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let peer = req
        .extensions()
        .get::<Peer>()
        .map_or_else(|| "-".to_owned(), |p| p.0.to_string());
    let cell = RouteCell::new(match a.side {
        Side::Public => Route::Other,
        Side::Api => Route::Api,
    });
    req.extensions_mut().insert(cell.clone());
    let resp = in_our_words(next.run(req).await, &a);
    let took = started.elapsed();
    let code = resp.status().as_u16();
    a.st.metrics.request(cell.get(), code, took);
    let ext = resp.extensions();
    let logged = ext.get::<Logged>().cloned().unwrap_or_default();
    let refused = logged
        .refused
        .or_else(|| ext.get::<Answered>().and_then(|x| x.refused.clone()));
    let shown: String = path.chars().take(80).collect();
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let ocsp = logged.ocsp.as_deref().unwrap_or("-");
    match &refused {
        Some(why) => tracing::warn!(
            target: "hljca::access", %peer, %method, path = %shown, status = code,
            ocsp, micros, refused = %why, "request refused"
        ),
        None => tracing::info!(
            target: "hljca::access", %peer, %method, path = %shown, status = code, ocsp,
            cache = logged.cache.map(|h| if h { "hit" } else { "miss" }).unwrap_or("-"),
            micros, "request"
        ),
    }
    resp
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
