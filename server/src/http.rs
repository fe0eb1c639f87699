//! The HTTP side's transport: the accept loop (bounded connections, header timeouts, graceful
//! shutdown on SIGTERM or Ctrl-C), each connection served by hyper's HTTP/1.1 with the axum
//! router of its listener (`router.rs`), and what handlers share: [`Outcome`] (a response with
//! what the access log says of it) and bounded body reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::State;
use crate::worker::Job;

/// What the access log says of a response the server made (in its extensions).
#[derive(Debug, Clone, Default)]
pub(crate) struct Logged {
    /// OCSP statuses answered (`good`, `malformedRequest`, …).
    pub ocsp: Option<String>,
    /// Served from the cache of signed answers.
    pub cache: Option<bool>,
    /// Why the request was refused, for the log.
    pub refused: Option<String>,
}

/// A response on its way out, with what the access log says of it.
pub(crate) struct Outcome {
    pub resp: Response,
    /// OCSP statuses answered (`good`, `malformedRequest`, …).
    pub ocsp: Option<String>,
    /// Served from the cache of signed answers.
    pub cache: Option<bool>,
    /// Why the request was refused, for the log.
    pub refused: Option<String>,
}

impl Outcome {
    pub fn ok(resp: Response) -> Outcome {
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
        let mut resp = Response::new(Body::from(format!("{why}\n")));
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

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let mut resp = self.resp;
        resp.extensions_mut().insert(Logged {
            ocsp: self.ocsp,
            cache: self.cache,
            refused: self.refused,
        });
        resp
    }
}

/// A response with a body.
pub(crate) fn response(body: impl Into<Bytes>) -> Response {
    Response::new(Body::from(body.into()))
}

/// Sets a header (values made here are always valid; a bad one is left out).
pub(crate) fn set(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The request's Content-Type when its media type (before any parameters) is not `want`,
/// compared case-insensitively as RFC 9110 says; `None` when it is.
pub(crate) fn other_content_type(headers: &HeaderMap, want: &str) -> Option<String> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    (!essence.eq_ignore_ascii_case(want)).then(|| ctype.to_owned())
}

/// The connection's peer (a request extension, for the access log).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// The client certificate (DER) the API's TLS layer verified, if one was sent (a request
/// extension on the API listener).
#[derive(Debug, Clone)]
pub(crate) struct ClientCert(pub Option<Arc<Vec<u8>>>);

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
    let ctx = crate::router::Ctx {
        st: state.clone(),
        jobs: jobs.clone(),
    };
    let public = crate::router::public(ctx.clone());
    let api_router = crate::api::router(ctx);
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
            let (st, router, tls, builder) = (
                state.clone(),
                api_router.clone(),
                api.tls.clone(),
                builder.clone(),
            );
            st.metrics.connection(1);
            tokio::spawn(async move {
                serve_tls(stream, peer, tls, builder, watcher, &st, router).await;
                st.metrics.connection(-1);
                drop(permit);
            });
            continue;
        }
        let service = service_fn(per_connection(public.clone(), peer, None));
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
    st: &State,
    router: Router,
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
    let service = service_fn(per_connection(router, peer, Some(ClientCert(client))));
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    match conn.await {
        Ok(()) => {}
        Err(e) if e.is_timeout() || e.is_parse() || e.is_parse_too_large() => {
            tracing::warn!(target: "hljca::access", %peer, error = %e, "connection refused")
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
}

/// One connection's requests, with the peer (and on the API listener the client certificate)
/// as extensions, answered by `router` (made a service with hyper's `service_fn`).
fn per_connection(
    router: Router,
    peer: SocketAddr,
    client: Option<ClientCert>,
) -> impl Fn(Request<Incoming>) -> tower::util::Oneshot<Router, Request<Incoming>> + Clone {
    move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        if let Some(c) = &client {
            req.extensions_mut().insert(c.clone());
        }
        router.clone().oneshot(req)
    }
}

/// A body over `max` bytes (read, or declared and refused by the body limit layer).
pub(crate) fn too_large(max: usize) -> Outcome {
    Outcome::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {max} bytes"),
    )
}

/// Reads a request body of at most `max` bytes within the request timeout.
pub(crate) async fn body(req: Request, st: &State) -> Result<Bytes, Outcome> {
    use hljca_portal::BodyError;
    let max = st.limits.max_body_bytes;
    let too_large = || too_large(max);
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
