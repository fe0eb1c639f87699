//! The HTTP side: the accept loop (bounded connections, header and request timeouts, graceful
//! shutdown on SIGTERM or Ctrl-C) and the routes. Every request ends in one access log line;
//! refused input also logs why.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::State;
use crate::metrics::Route;
use crate::ocsp_http;
use crate::worker::Job;

/// A response on its way out, with what the access log says of it.
pub(crate) struct Outcome {
    pub resp: Response<Full<Bytes>>,
    /// OCSP statuses answered (`good`, `malformedRequest`, …).
    pub ocsp: Option<String>,
    /// Served from the cache of signed answers.
    pub cache: Option<bool>,
    /// Why the request was refused, for the log.
    pub refused: Option<String>,
}

impl Outcome {
    pub fn ok(resp: Response<Full<Bytes>>) -> Outcome {
        Outcome {
            resp,
            ocsp: None,
            cache: None,
            refused: None,
        }
    }

    /// A plain-text error.
    pub fn error(code: StatusCode, why: impl Into<String>) -> Outcome {
        let why = why.into();
        let mut resp = Response::new(Full::new(Bytes::from(format!("{why}\n"))));
        *resp.status_mut() = code;
        set(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
        Outcome {
            resp,
            ocsp: None,
            cache: None,
            refused: Some(why),
        }
    }
}

/// Sets a header (values made here are always valid; a bad one is left out).
pub(crate) fn set(resp: &mut Response<Full<Bytes>>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The request's Content-Type when its media type (before any parameters) is not `want`,
/// compared case-insensitively as RFC 9110 says; `None` when it is.
pub(crate) fn other_content_type<B>(req: &Request<B>, want: &str) -> Option<String> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    (!essence.eq_ignore_ascii_case(want)).then(|| ctype.to_owned())
}

/// Waits for SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Which listener a connection came in on.
#[derive(Clone)]
enum Side {
    /// OCSP, CRL, CA certificates, health, metrics (plain HTTP).
    Public,
    /// The client-certificate API (HTTPS), with the verified client certificate if one was sent.
    Api(Option<Arc<Vec<u8>>>),
}

/// The API listener and its TLS configuration.
pub(crate) struct ApiListener {
    pub listener: TcpListener,
    pub tls: tokio_rustls::TlsAcceptor,
}

/// Accepts on `l`, or never when there is none.
async fn accept_api(l: Option<&ApiListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections until a signal; then lets requests in flight finish (for the grace
/// period) and stops the CA worker.
pub(crate) async fn serve(
    listener: TcpListener,
    api: Option<ApiListener>,
    state: Arc<State>,
    jobs: SyncSender<Job>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.request_timeout)
        .max_headers(64)
        .keep_alive(true);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (accepted, is_api) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => (r, false),
            r = accept_api(api.as_ref()) => (r, true),
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let (true, Some(api)) = (is_api, api.as_ref()) {
            let watcher = graceful.watcher();
            let (st, tx, tls, builder) = (
                state.clone(),
                jobs.clone(),
                api.tls.clone(),
                builder.clone(),
            );
            st.metrics.connection(1);
            tokio::spawn(async move {
                serve_tls(stream, peer, tls, builder, watcher, st.clone(), tx).await;
                st.metrics.connection(-1);
                drop(permit);
            });
            continue;
        }
        let st = state.clone();
        let tx = jobs.clone();
        let service = service_fn(move |req| {
            let st = st.clone();
            let tx = tx.clone();
            async move { Ok::<_, Infallible>(handle(req, st, tx, peer, Side::Public).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let st = state.clone();
        st.metrics.connection(1);
        tokio::spawn(async move {
            match conn.await {
                Ok(()) => {}
                // A client too slow with its headers, or not speaking HTTP: hyper answered
                // (408/400/431) or closed; say so once.
                Err(e) if e.is_timeout() || e.is_parse() || e.is_parse_too_large() => {
                    tracing::warn!(target: "hljca::access", %peer, error = %e, "connection refused")
                }
                Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
            }
            st.metrics.connection(-1);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("no new connections; waiting for requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(state.limits.shutdown_grace) => {
            tracing::warn!("grace period over; closing the connections left");
        }
    }
    // The channel may be full while the worker is busy: wait off the async threads.
    let _ = tokio::task::spawn_blocking(move || jobs.send(Job::Stop)).await;
}

/// One API connection: the TLS handshake (within the request timeout; a client certificate
/// that does not chain to the issuing CA ends it here), then HTTP/1.1 as on the public side.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    st: Arc<State>,
    jobs: SyncSender<Job>,
) {
    let stream = match tokio::time::timeout(st.limits.request_timeout, tls.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(target: "hljca::access", %peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(target: "hljca::access", %peer, "TLS handshake not finished in time");
            return;
        }
    };
    let client = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.to_vec()));
    let service = service_fn(move |req| {
        let (st, tx, client) = (st.clone(), jobs.clone(), client.clone());
        async move { Ok::<_, Infallible>(handle(req, st, tx, peer, Side::Api(client)).await) }
    });
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    match conn.await {
        Ok(()) => {}
        Err(e) if e.is_timeout() || e.is_parse() || e.is_parse_too_large() => {
            tracing::warn!(target: "hljca::access", %peer, error = %e, "connection refused")
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
}

/// Which route a path names.
fn route_of(path: &str, st: &State) -> Route {
    let r = &st.routes;
    if path == "/healthz" {
        Route::Health
    } else if path == "/metrics" {
        Route::Metrics
    } else if path == r.crl {
        Route::Crl
    } else if path == r.issuing || path == r.root {
        Route::CaCert
    } else if path == r.ocsp {
        Route::OcspPost
    } else if path.len() > r.ocsp.len()
        && path.starts_with(&r.ocsp)
        && path.as_bytes()[r.ocsp.len()] == b'/'
    {
        Route::OcspGet
    } else if hljca_portal::Portal::owns(path) {
        Route::Portal
    } else {
        Route::Other
    }
}

/// `POST /` with an OCSP request is OCSP (RFC 6960 clients post to the base URL); everything
/// else at `/` is the portal's front page.
fn is_ocsp_post(req: &Request<Incoming>) -> bool {
    req.method() == Method::POST && other_content_type(req, ocsp_http::REQUEST_TYPE).is_none()
}

fn allowed(method: &Method, allow: &[Method]) -> Option<Outcome> {
    if allow.contains(method) {
        return None;
    }
    let names: Vec<&str> = allow.iter().map(Method::as_str).collect();
    let mut o = Outcome::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed here"),
    );
    set(&mut o.resp, header::ALLOW, &names.join(", "));
    Some(o)
}

async fn dispatch(
    req: Request<Incoming>,
    route: Route,
    st: &State,
    jobs: &SyncSender<Job>,
) -> Outcome {
    let get = [Method::GET, Method::HEAD];
    match route {
        Route::Health => match allowed(req.method(), &get) {
            Some(o) => o,
            None => crate::pages::health(jobs).await,
        },
        Route::Metrics => allowed(req.method(), &get).unwrap_or_else(|| crate::pages::metrics(st)),
        Route::Crl => allowed(req.method(), &get).unwrap_or_else(|| {
            match st.crl.read().ok().and_then(|c| c.clone()) {
                Some(doc) => crate::pages::doc(&req, &doc),
                None => Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "no CRL yet"),
            }
        }),
        Route::CaCert => allowed(req.method(), &get).unwrap_or_else(|| {
            let doc = if req.uri().path() == st.routes.root {
                &st.root
            } else {
                &st.issuing
            };
            crate::pages::doc(&req, doc)
        }),
        Route::OcspPost => match allowed(req.method(), &[Method::POST]) {
            Some(o) => o,
            None => ocsp_http::post(req, st, jobs).await,
        },
        Route::OcspGet => match allowed(req.method(), &get) {
            Some(o) => o,
            None => ocsp_http::get(req, st, jobs).await,
        },
        Route::Portal => {
            let a = st.portal.handle(req).await;
            Outcome {
                resp: a.resp,
                ocsp: None,
                cache: None,
                refused: a.refused,
            }
        }
        Route::Other | Route::Api => Outcome::error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<State>,
    jobs: SyncSender<Job>,
    peer: SocketAddr,
    side: Side,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (route, client) = match side {
        // `POST /` with an OCSP request is OCSP; everything else at `/` is the portal's.
        Side::Public if path == "/" && is_ocsp_post(&req) => (Route::OcspPost, None),
        Side::Public => (route_of(&path, &st), None),
        Side::Api(c) => (Route::Api, Some(c)),
    };
    let work = async {
        match client {
            Some(c) => crate::api::handle(req, &st, &jobs, c).await,
            None => dispatch(req, route, &st, &jobs).await,
        }
    };
    let outcome = match tokio::time::timeout(st.limits.request_timeout, work).await {
        Ok(o) => o,
        Err(_) if route == Route::Api => crate::api::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "request-timeout",
            "the call did not finish in time; with an Idempotency-Key, send it again",
        )
        .outcome(),
        Err(_) => Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
    };
    let took = started.elapsed();
    let code = outcome.resp.status().as_u16();
    st.metrics.request(route, code, took);
    let shown: String = path.chars().take(80).collect();
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    match &outcome.refused {
        Some(why) => tracing::warn!(
            target: "hljca::access", %peer, %method, path = %shown, status = code,
            ocsp = outcome.ocsp.as_deref().unwrap_or("-"), micros, refused = %why,
            "request refused"
        ),
        None => tracing::info!(
            target: "hljca::access", %peer, %method, path = %shown, status = code,
            ocsp = outcome.ocsp.as_deref().unwrap_or("-"),
            cache = outcome.cache.map(|h| if h { "hit" } else { "miss" }).unwrap_or("-"),
            micros, "request"
        ),
    }
    outcome.resp
}

/// Reads a request body of at most `max` bytes within the request timeout.
pub(crate) async fn body(req: Request<Incoming>, st: &State) -> Result<Bytes, Outcome> {
    use hljca_portal::BodyError;
    let max = st.limits.max_body_bytes;
    let too_large = || {
        Outcome::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max} bytes"),
        )
    };
    match tokio::time::timeout(st.limits.request_timeout, hljca_portal::read_body(req, max)).await {
        Err(_) => Err(Outcome::error(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Err(BodyError::TooLarge)) => Err(too_large()),
        Ok(Err(BodyError::Unreadable(e))) => Err(Outcome::error(
            StatusCode::BAD_REQUEST,
            format!("request body unreadable: {e}"),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}
