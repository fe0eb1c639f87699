//! hljca-server: `hljca serve`, the CA's one long-running process on the network side.
//!
//! This crate owns HTTP for the CA: the OCSP responder (RFC 6960 in the RFC 5019 profile,
//! POST and GET), publication of the issuing CA's CRL and of both CA certificates at the paths
//! of the URLs written into certificates, `/healthz` and `/metrics` (Prometheus text) on the
//! public listener, with the applicant portal of `hljca-portal` (`GET /` and the portal's
//! paths); and, on a listener of its own (`[serve] api_listen`), the
//! client-certificate API for automated jobs ([`api`]: JSON over HTTPS with rustls, the client
//! certificate an operator certificate). It owns no PKI logic: requests are read, statuses
//! looked up and answers signed by `hljca_core::ocsp`, CRLs made by `Ca::generate_crl`,
//! API calls run by `hljca_core` (the issuance engine, `revoke`, the operators' roles).
//!
//! Shape: the CA (database, operator login, CA token session — none of them for async
//! tasks) lives on the calling thread as the [`worker`]; on a tokio runtime, hyper 1 serves
//! each connection with the axum router of its listener (`router.rs`: one route table for the
//! public side with the portal's router behind it, one for the API; tower-http layers for
//! timeouts, body limits, tracing and panics), serves signed answers from the cache
//! (`cache.rs`) and sends the worker a job for the rest (OCSP answers to sign, health checks,
//! API calls).
#![forbid(unsafe_code)]

pub mod api;
mod cache;
mod docs;
mod http;
pub mod metrics;
mod ocsp_http;
mod pages;
mod router;
pub mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use hljca_core::ocsp::Responder;
use hljca_core::{Ca, CoreError, Secrets};
use hljca_token::Module;

pub use docs::Routes;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The CA could not be opened, checked or used.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A `[serve]` setting is out of range.
    #[error("hljca.toml [serve]: {0}")]
    Config(String),
    /// The portal could not be set up (its gateway secret).
    #[error(transparent)]
    Portal(hljca_portal::PortalError),
    /// The async runtime did not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Limits applied to every connection and request.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// What request handlers share with the CA worker.
pub struct State {
    pub(crate) cache: cache::Cache,
    pub(crate) crl: RwLock<Option<Arc<docs::Doc>>>,
    pub(crate) issuing: docs::Doc,
    pub(crate) root: docs::Doc,
    pub(crate) routes: Routes,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) limits: Limits,
    /// Reads requests (the issuer hashes never change while the server runs).
    pub(crate) parser: OnceLock<Responder>,
    /// The applicant portal (`GET /` and its pages).
    pub(crate) portal: Arc<hljca_portal::Portal>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// Where the server listens and what it publishes there.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The paths served.
    pub routes: Routes,
    /// Configured URLs not under `[serve] public_base_url` (served at their paths anyway).
    pub outside_base: Vec<String>,
    /// Where the client-certificate API listens (HTTPS), when it is on.
    pub api_addr: Option<SocketAddr>,
}

fn check(s: &hljca_core::config::ServeConfig) -> Result<(), ServerError> {
    let bad = |m: &str| Err(ServerError::Config(m.into()));
    if s.poll_seconds == 0 || s.poll_seconds > 3600 {
        return bad("poll_seconds must be 1 to 3600");
    }
    if s.ocsp_validity_hours == 0 || s.ocsp_signer_days == 0 {
        return bad("ocsp_validity_hours and ocsp_signer_days must be at least 1");
    }
    if i64::from(s.ocsp_validity_hours) > i64::from(s.ocsp_signer_days) * 12 {
        return bad("ocsp_validity_hours must be at most half of ocsp_signer_days");
    }
    if s.request_timeout_seconds == 0 || s.max_body_bytes < 512 || s.max_connections == 0 {
        return bad(
            "request_timeout_seconds and max_connections must be at least 1, max_body_bytes 512",
        );
    }
    Ok(())
}

fn cert_doc(path: &std::path::Path) -> Result<docs::Doc, ServerError> {
    let der = hljca_core::ca::read_pem_cert(path)?;
    // Last-Modified: when the certificate file was written (stable across restarts).
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(time::OffsetDateTime::from)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    Ok(docs::Doc::new(der, "application/pkix-cert", modified, None))
}

/// Runs the server until SIGTERM or Ctrl-C: opens the CA keys once and holds them, publishes
/// a current CRL, binds `listen` (else `[serve] listen`) and the API's `api_listen` (else
/// `[serve] api_listen`; no API when neither is set), calls `on_listening`, and answers
/// requests; in-flight requests finish before it returns.
///
/// `ca` must be able to generate CRLs (its operator holds the ca-admin role). The CA worker
/// runs on the calling thread; requests on a tokio runtime of its own.
pub fn run(
    ca: Ca,
    module: Option<Arc<Module>>,
    secrets: Secrets,
    listen: Option<&str>,
    api_listen: Option<&str>,
    on_listening: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    let config = ca.config().clone();
    let serve = &config.serve;
    check(serve)?;
    let routes = Routes::from_config(&config);
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    let portal_jobs = tx.clone();
    let portal = hljca_portal::Portal::new(
        hljca_portal::PortalConfig::from_ca(&ca).map_err(ServerError::Portal)?,
        hljca_portal::CaHandle::new(move |job| {
            portal_jobs.try_send(worker::Job::Portal(job)).is_ok()
        }),
    );
    let state = Arc::new(State {
        cache: cache::Cache::default(),
        crl: RwLock::new(None),
        issuing: cert_doc(&ca.home().issuing_pem())?,
        root: cert_doc(&ca.home().root_pem())?,
        routes: routes.clone(),
        metrics: metrics::Metrics::default(),
        limits: Limits {
            request_timeout: Duration::from_secs(serve.request_timeout_seconds),
            max_body_bytes: serve.max_body_bytes,
            max_connections: serve.max_connections,
            shutdown_grace: Duration::from_secs(serve.shutdown_grace_seconds),
        },
        parser: OnceLock::new(),
        portal,
    });
    let (mut worker, keys, responder) = worker::Worker::open(ca, module, secrets, state.clone())?;
    let _ = state.parser.set(responder);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hljca-http")
        .build()
        .map_err(ServerError::Runtime)?;
    let addr = listen.unwrap_or(&serve.listen).to_owned();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|source| ServerError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let api = match api_listen.or(serve.api_listen.as_deref()) {
        None => None,
        Some(api_addr) => {
            let issuing_der = hljca_core::ca::issuing_der(worker.ca().home())?;
            let (tls, renew) = match (&serve.tls_cert, &serve.tls_key) {
                (Some(cert), Some(key)) => {
                    let home = worker.ca().home().dir();
                    let (cert, key) = (home.join(cert), home.join(key));
                    (
                        api::tls::config(api::tls::configured(&cert, &key)?, &issuing_der)?.0,
                        None,
                    )
                }
                (None, None) => {
                    let hosts = if serve.api_hosts.is_empty() {
                        hljca_core::api::default_hosts(&serve.public_base_url)
                    } else {
                        serve.api_hosts.clone()
                    };
                    let cert = worker.api_tls_cert(&keys, &hosts, serve.api_cert_days)?;
                    let (tls, resolver) = api::tls::from_ca(&cert, &issuing_der)?;
                    (tls, Some((resolver, hosts, cert)))
                }
                _ => {
                    return Err(ServerError::Config(
                        "tls_cert and tls_key go together (or neither: a certificate from the issuing CA)".into(),
                    ));
                }
            };
            if let Some((resolver, hosts, cert)) = renew {
                worker.renew_api_tls_into(resolver, hosts, serve.api_cert_days, cert);
            }
            let listener = rt
                .block_on(tokio::net::TcpListener::bind(api_addr))
                .map_err(|source| ServerError::Listen {
                    addr: api_addr.to_owned(),
                    source,
                })?;
            Some(http::ApiListener {
                listener,
                tls: tokio_rustls::TlsAcceptor::from(tls),
            })
        }
    };
    let api_addr = api
        .as_ref()
        .map(|a| a.listener.local_addr())
        .transpose()
        .map_err(|source| ServerError::Listen {
            addr: "api".into(),
            source,
        })?;
    on_listening(&Bound {
        addr: local,
        routes,
        outside_base: Routes::outside_base(&config),
        api_addr,
    });
    tracing::info!(%local, api = ?api_addr, "listening");
    let server = rt.spawn(http::serve(listener, api, state, tx));
    worker.run(keys, rx);
    if let Err(e) = rt.block_on(server) {
        tracing::error!(error = %e, "HTTP server task failed");
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}
