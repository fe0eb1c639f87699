//! The CA worker: the one thread that holds the CA (database connection, operator login) and
//! the CA token session, which are not for async tasks. Request handlers send it [`Job`]s over
//! a bounded channel; between jobs it watches the store (revocations, new certificates, CRLs
//! made by other commands), regenerates the CRL, renews the OCSP signing certificate and
//! signs OCSP answers ahead of requests.

mod tls;
mod watch;

use hljca_core::Rule;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hljca_core::keys::{CaKeyRole, CaKeys, CaSigner};
use hljca_core::ocsp::feed::CrlDoc;
use hljca_core::ocsp::{Query, Request, Responder, Status};
use hljca_core::{Ca, CoreError, Secrets};
use hljca_token::Module;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::State;
use crate::api::calls::{ApiAnswer, ApiCall};
use crate::api::error::ApiError;
use crate::cache::Entry;
use crate::docs::etag;

/// Rows changed this long before the last one seen are looked at again: another process may
/// commit a row stamped a little before one already seen.
const CHANGE_WINDOW: time::Duration = time::Duration::minutes(2);
/// Answers signed ahead in one go before the worker looks for requests again.
const PRECOMPUTE_BATCH: usize = 32;
/// Wait before trying a failed CRL generation again.
const CRL_RETRY: Duration = Duration::from_secs(60);
/// Signing failures in a row after which the CA token session is opened again.
const REOPEN_AFTER: u32 = 3;

/// Work for the CA worker.
pub enum Job {
    /// Sign an answer to this request.
    Answer {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Reply, String>>,
    },
    /// Check the CA token and the database.
    Health {
        /// Where the report goes.
        reply: oneshot::Sender<Health>,
    },
    /// Work for the applicant portal (reads and writes through the CA's own methods).
    Portal(hljca_portal::CaJob),
    /// A call of the client-certificate API.
    Api {
        /// The client certificate (DER) the TLS layer verified.
        client: Vec<u8>,
        /// The call (boxed: a job stays small on the channel).
        call: Box<ApiCall>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ApiAnswer, ApiError>>,
    },
    /// Stop (the server has shut down).
    Stop,
}

/// A signed answer.
#[derive(Debug)]
pub struct Reply {
    /// The DER OCSPResponse.
    pub der: Bytes,
    /// The status of each certificate asked about.
    pub statuses: Vec<&'static str>,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// What `/healthz` reports.
#[derive(Debug)]
pub struct Health {
    /// The CA token answered (its label), or why not.
    pub token: Result<String, String>,
    /// The database took its write lock, or why not.
    pub database: Result<(), String>,
    /// The CRL being served: number and nextUpdate.
    pub crl: Option<(i64, OffsetDateTime)>,
    /// The OCSP signing certificate's notAfter.
    pub signer_not_after: OffsetDateTime,
}

/// How the inner loop ended.
enum Exit {
    Stop,
    Reopen,
}

/// The CA side of the server.
pub struct Worker {
    ca: Ca,
    module: Option<Arc<Module>>,
    secrets: Secrets,
    state: Arc<State>,
    responder: Responder,
    issuing_der: Vec<u8>,
    serve: hljca_core::config::ServeConfig,
    crl: Option<CrlDoc>,
    crl_dirty: bool,
    crl_retry_at: Option<Instant>,
    data_version: i64,
    watermark: String,
    recent: HashMap<String, String>,
    backlog: VecDeque<Query>,
    queued: HashSet<Vec<u8>>,
    failures: u32,
    api_tls: Option<tls::ApiTls>,
}

fn validity(serve: &hljca_core::config::ServeConfig) -> time::Duration {
    time::Duration::hours(i64::from(serve.ocsp_validity_hours))
}

impl Worker {
    /// Opens the CA keys (once, for the life of the server), checks the issuing CA against
    /// them, makes or renews the OCSP signer, and makes sure a current CRL is published.
    /// Returns the worker, the keys it runs with and a responder to read requests with.
    pub fn open(
        mut ca: Ca,
        module: Option<Arc<Module>>,
        secrets: Secrets,
        state: Arc<State>,
    ) -> Result<(Worker, CaKeys, Responder), CoreError> {
        let serve = ca.config().serve.clone();
        let mut keys = ca.ca_keys(module.as_deref(), &secrets)?;
        drop(hljca_core::engine::Authority::new(&ca, &keys)?);
        ca.ocsp_signer_key(&mut keys)?;
        let signer = ca.ocsp_signer(&keys, serve.ocsp_signer_days)?;
        let issuing_der = hljca_core::ca::issuing_der(ca.home())?;
        state
            .metrics
            .signer_not_after
            .store(signer.not_after().unix_timestamp(), Ordering::Relaxed);
        let responder = Responder::new(&issuing_der, signer, validity(&serve))?;
        let data_version = ca.data_version()?;
        let watermark = hljca_core::time_fmt::ts(OffsetDateTime::now_utc() - CHANGE_WINDOW);
        let mut w = Worker {
            ca,
            module,
            secrets,
            state,
            responder,
            issuing_der,
            serve,
            crl: None,
            crl_dirty: true,
            crl_retry_at: None,
            data_version,
            watermark,
            recent: HashMap::new(),
            backlog: VecDeque::new(),
            queued: HashSet::new(),
            failures: 0,
            api_tls: None,
        };
        w.load_crl()?;
        w.maintain_crl()?;
        if w.crl.is_none() {
            return Err(CoreError::refuse(
                Rule::Internal,
                "no CRL could be generated; `hljca serve` publishes one from the start",
            ));
        }
        if w.serve.precompute {
            for serial in w.ca.ocsp_serials()? {
                w.enqueue(w.responder.sha1_cert_id(&serial)?);
            }
        }
        let parser = w.responder.clone();
        Ok((w, keys, parser))
    }

    /// Runs until [`Job::Stop`] or every sender is gone. `keys` stays open all along; the
    /// token session is opened again after repeated signing failures.
    pub fn run(mut self, mut keys: CaKeys, jobs: Receiver<Job>) {
        loop {
            let exit = match keys.signer(CaKeyRole::OcspSigner) {
                Ok(signer) => self.serve_jobs(&keys, &signer, &jobs),
                Err(e) => {
                    tracing::error!(error = %e, "OCSP signer key unavailable");
                    Exit::Reopen
                }
            };
            match exit {
                Exit::Stop => return,
                Exit::Reopen => {
                    drop(keys);
                    keys = match self.reopen(&jobs) {
                        Some(k) => k,
                        None => return,
                    };
                }
            }
        }
    }

    /// Opens the CA keys again, answering jobs with an error while it cannot.
    fn reopen(&mut self, jobs: &Receiver<Job>) -> Option<CaKeys> {
        let pause = Duration::from_secs(self.serve.poll_seconds.max(1));
        loop {
            match self.ca.ca_keys(self.module.as_deref(), &self.secrets) {
                Ok(k) => {
                    tracing::info!("CA token session opened again");
                    self.failures = 0;
                    return Some(k);
                }
                Err(e) => tracing::error!(error = %e, "CA token unavailable"),
            }
            let until = Instant::now() + pause;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match jobs.recv_timeout(left) {
                    Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
                    Ok(Job::Answer { reply, .. }) => {
                        let _ = reply.send(Err("the CA token is unavailable".into()));
                    }
                    Ok(Job::Health { reply }) => {
                        let _ = reply.send(self.health(None));
                    }
                    // The portal needs the database only, not the CA token.
                    Ok(Job::Portal(f)) => self.portal(f),
                    Ok(Job::Api { reply, .. }) => {
                        let _ = reply.send(Err(ApiError::new(
                            hyper::StatusCode::SERVICE_UNAVAILABLE,
                            None,
                            "unavailable",
                            "the CA token is unavailable; try again",
                        )));
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
        }
    }

    fn serve_jobs(&mut self, keys: &CaKeys, signer: &CaSigner<'_>, jobs: &Receiver<Job>) -> Exit {
        let poll = Duration::from_secs(self.serve.poll_seconds.max(1));
        let mut next_maintenance = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_maintenance {
                self.maintain(keys);
                next_maintenance = now + poll;
            }
            let wait = if self.backlog.is_empty() {
                next_maintenance.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match jobs.recv_timeout(wait) {
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return Exit::Stop,
                Ok(Job::Answer { request, reply }) => {
                    let answer = self.answer(signer, &request);
                    if let Err(e) = &answer {
                        tracing::error!(error = %e, "OCSP answer not signed");
                        self.failures += 1;
                    } else {
                        self.failures = 0;
                    }
                    let _ = reply.send(answer.map_err(|e| e.to_string()));
                    if self.failures >= REOPEN_AFTER {
                        return Exit::Reopen;
                    }
                }
                Ok(Job::Health { reply }) => {
                    let _ = reply.send(self.health(Some(keys)));
                }
                Ok(Job::Portal(f)) => self.portal(f),
                Ok(Job::Api {
                    client,
                    call,
                    reply,
                }) => {
                    // A panic in one API call answers that call with an error; the worker
                    // (OCSP, CRL, every other caller) goes on.
                    let ca = &mut self.ca;
                    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        crate::api::calls::run(ca, keys, &client, *call)
                    }))
                    .unwrap_or_else(|_| {
                        tracing::error!("an API call panicked");
                        Err(
                            CoreError::refuse(Rule::Internal, "internal error: the call failed")
                                .into(),
                        )
                    });
                    let _ = reply.send(answer);
                }
                Err(RecvTimeoutError::Timeout) => self.precompute(signer),
            }
        }
    }

    fn answer(&mut self, signer: &CaSigner<'_>, request: &Request) -> Result<Reply, CoreError> {
        let now = OffsetDateTime::now_utc();
        if request.cacheable()
            && let Some(e) = self.state.cache.get(&request.queries[0].cert_id_der, now)
        {
            return Ok(Reply {
                der: e.der.clone(),
                statuses: vec![e.status],
                this_update: e.this_update,
                next_update: e.next_update,
            });
        }
        let statuses = request
            .queries
            .iter()
            .map(|q| self.ca.ocsp_status(&q.serial))
            .collect::<Result<Vec<_>, _>>()?;
        let signed = self.responder.sign(signer, request, &statuses, now)?;
        self.state.metrics.signed.fetch_add(1, Ordering::Relaxed);
        let der = Bytes::from(signed.der);
        if request.cacheable() && statuses[0] != Status::Unknown {
            let times = (signed.this_update, signed.next_update);
            self.keep(request.queries[0].clone(), &statuses[0], &der, &times);
        }
        Ok(Reply {
            der,
            statuses: statuses.iter().map(Status::name).collect(),
            this_update: signed.this_update,
            next_update: signed.next_update,
        })
    }

    fn keep(
        &self,
        query: Query,
        status: &Status,
        der: &Bytes,
        t: &(OffsetDateTime, OffsetDateTime),
    ) {
        let (this_update, next_update) = *t;
        self.state.cache.insert(Entry {
            etag: etag(der),
            der: der.clone(),
            query,
            status: status.name(),
            this_update,
            next_update,
            refresh_at: this_update + (next_update - this_update) / 2,
        });
    }

    fn enqueue(&mut self, q: Query) {
        if self.queued.insert(q.cert_id_der.clone()) {
            self.backlog.push_back(q);
        }
    }

    /// Signs a few answers from the backlog.
    fn precompute(&mut self, signer: &CaSigner<'_>) {
        let now = OffsetDateTime::now_utc();
        for _ in 0..PRECOMPUTE_BATCH {
            let Some(q) = self.backlog.pop_front() else {
                break;
            };
            self.queued.remove(&q.cert_id_der);
            if self.state.cache.is_fresh(&q.cert_id_der, now) {
                continue;
            }
            let status = match self.ca.ocsp_status(&q.serial) {
                Ok(Status::Unknown) => continue,
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(serial = %q.serial, error = %e, "status lookup failed");
                    continue;
                }
            };
            let one = Request {
                queries: vec![q.clone()],
                nonce: None,
            };
            match self.responder.sign(signer, &one, &[status], now) {
                Ok(s) => {
                    self.state.metrics.signed.fetch_add(1, Ordering::Relaxed);
                    let der = Bytes::from(s.der);
                    self.keep(q, &status, &der, &(s.this_update, s.next_update));
                }
                Err(e) => {
                    tracing::error!(error = %e, "OCSP answer not signed ahead");
                    break;
                }
            }
        }
        self.state
            .metrics
            .cache_entries
            .store(self.state.cache.len() as i64, Ordering::Relaxed);
    }

    /// Looks at the store and the clock: changed certificates, the CRL, the OCSP signer,
    /// answers due to be signed again.
    fn maintain(&mut self, keys: &CaKeys) {
        match self.ca.data_version() {
            Ok(v) if v != self.data_version => {
                self.data_version = v;
                self.crl_dirty = true;
                if let Err(e) = self.poll_changes() {
                    tracing::error!(error = %e, "reading changed certificates failed");
                }
                if let Err(e) = self.load_crl() {
                    tracing::error!(error = %e, "reading the newest CRL failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "database unreadable"),
        }
        if let Err(e) = self.maintain_crl() {
            tracing::error!(error = %e, "CRL not regenerated; trying again in a minute");
            self.crl_retry_at = Some(Instant::now() + CRL_RETRY);
        }
        let now = OffsetDateTime::now_utc();
        if self.responder.signer().needs_renewal(now) {
            self.renew_signer(keys);
        }
        for q in self.state.cache.due(now) {
            self.enqueue(q);
        }
        self.renew_api_tls(keys, now);
    }

    /// Runs a portal job; a panic in it is caught so the worker (and OCSP) goes on.
    fn portal(&mut self, f: hljca_portal::CaJob) {
        let ca = &mut self.ca;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ca))).is_err() {
            tracing::error!("a portal job panicked");
        }
    }

    fn health(&self, keys: Option<&CaKeys>) -> Health {
        let token = match keys {
            None => Err("the CA token session is closed".into()),
            Some(k) => match k.signer(CaKeyRole::OcspSigner) {
                Ok(_) => Ok(k
                    .token()
                    .map(|t| t.label.clone())
                    .unwrap_or_else(|| "file key store".into())),
                Err(e) => Err(e.to_string()),
            },
        };
        Health {
            token,
            database: self
                .ca
                .database_writable(Duration::from_secs(1))
                .map_err(|e| e.to_string()),
            crl: self.crl.as_ref().map(|c| (c.number, c.next_update)),
            signer_not_after: self.responder.signer().not_after(),
        }
    }
}
