//! hljca-portal: the applicant's side of online handling (线上办理, SPEC.md section 3), served by
//! `hljca serve` beside OCSP and CRL publication.
//!
//! This crate owns the portal's routes (an axum `Router`, [`Portal::router`], which the server
//! mounts) and pages (server-rendered HTML in Chinese, English on request, templates with
//! `maud`, which escapes everything interpolated), its embedded assets (CSS, the QR code of a
//! payment order), applicant sessions (server-side, HttpOnly + SameSite=Strict cookie), the
//! log-in captcha, CSRF tokens, uploads (multipart streamed with `multer`, sniffed by
//! ca-core's material check), the pre-filled application form (PDF) and the authentication of
//! the payment gateway's notifications (HMAC-SHA256).
//!
//! It owns no business rule: accounts, applications, materials, payments and delivery choices
//! are `hljca_core::Ca` methods (`applications::online` and the counter's own steps), run on
//! the server's CA worker thread through a [`CaHandle`] inside `Ca::act_for`, so the audit log
//! names the applicant account (or `payment-gateway`) and the server's operator key signs it.
#![forbid(unsafe_code)]

mod apply;
mod auth;
mod extract;
mod form_pdf;
mod gateway;
mod pages;
mod pay;
mod routes;
mod session;
mod sso;
mod status;
mod upload;
mod view;
mod web;

use std::sync::Arc;

use hljca_core::{Ca, CoreError};
use hljca_policies::PolicySet;
use zeroize::Zeroizing;

pub use web::{Answer, Answered, BodyError, body as read_body};

/// Work for the CA worker: a closure run with the CA (on the worker's thread).
pub type CaJob = Box<dyn FnOnce(&mut Ca) + Send>;

/// Errors of the portal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The CA refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The CA worker is busy or gone.
    #[error("the CA worker is unavailable")]
    Busy,
    /// The gateway or single sign-on secret could not be read.
    #[error("the portal's secret: {0}")]
    Secret(String),
}

/// Sends [`CaJob`]s to the CA worker.
pub struct CaHandle {
    send: Box<dyn Fn(CaJob) -> bool + Send + Sync>,
}

impl CaHandle {
    /// `send` hands a job to the worker; false when it cannot (queue full, worker gone).
    pub fn new(send: impl Fn(CaJob) -> bool + Send + Sync + 'static) -> CaHandle {
        CaHandle {
            send: Box::new(send),
        }
    }

    /// Runs `f` with the CA on the worker and waits for its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ca) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, PortalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: CaJob = Box::new(move |ca: &mut Ca| {
            let _ = tx.send(f(ca));
        });
        if !(self.send)(job) {
            return Err(PortalError::Busy);
        }
        match rx.await {
            Ok(r) => r.map_err(PortalError::Core),
            Err(_) => Err(PortalError::Busy),
        }
    }
}

/// What the portal is configured with.
pub struct PortalConfig {
    /// The certificate types in force (names, fees, fields, materials, seal).
    pub policies: PolicySet,
    /// The payment gateway's HMAC-SHA256 secret; without one notifications are refused.
    pub gateway_secret: Option<Zeroizing<Vec<u8>>>,
    /// Mark the session cookie `Secure`.
    pub secure_cookies: bool,
    /// The CJK font for the application form PDF.
    pub font: Option<std::path::PathBuf>,
    /// Test builds only: `GET /__test/captcha` answers the session's captcha.
    pub test_hooks: bool,
    /// The single sign-on provider and the client secret, when `[portal.sso]` is set.
    pub sso: Option<(hljca_core::config::SsoConfig, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalConfig")
            .field(
                "gateway_secret",
                &self.gateway_secret.as_ref().map(|_| "(set)"),
            )
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl PortalConfig {
    /// The configuration for `ca`: its policies, its seal font, `[portal]` of hljca.toml, the
    /// gateway secret from `HLJCA_GATEWAY_SECRET` or `[portal] gateway_secret_file`.
    pub fn from_ca(ca: &Ca) -> Result<PortalConfig, PortalError> {
        let cfg = &ca.config().portal;
        let secret = match std::env::var("HLJCA_GATEWAY_SECRET") {
            Ok(s) if !s.is_empty() => Some(Zeroizing::new(s.into_bytes())),
            _ => match &cfg.gateway_secret_file {
                Some(p) => {
                    let path = ca.home().dir().join(p);
                    let bytes = std::fs::read(&path)
                        .map_err(|e| PortalError::Secret(format!("{}: {e}", path.display())))?;
                    let text = Zeroizing::new(bytes);
                    let trimmed = text.trim_ascii().to_vec();
                    if trimmed.len() < 16 {
                        return Err(PortalError::Secret(format!(
                            "{}: at least 16 bytes",
                            path.display()
                        )));
                    }
                    Some(Zeroizing::new(trimmed))
                }
                None => None,
            },
        };
        let sso = match &cfg.sso {
            None => None,
            Some(c) => {
                let secret = match std::env::var("HLJCA_SSO_CLIENT_SECRET") {
                    Ok(v) if !v.is_empty() => Zeroizing::new(v.into_bytes()),
                    _ => {
                        let Some(f) = &c.client_secret_file else {
                            return Err(PortalError::Secret(
                                "[portal.sso] needs HLJCA_SSO_CLIENT_SECRET or client_secret_file"
                                    .into(),
                            ));
                        };
                        let path = ca.home().dir().join(f);
                        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| {
                            PortalError::Secret(format!("{}: {e}", path.display()))
                        })?);
                        Zeroizing::new(bytes.trim_ascii().to_vec())
                    }
                };
                Some((c.clone(), secret))
            }
        };
        let font = ca
            .config()
            .seal
            .font
            .as_ref()
            .map(|f| ca.home().dir().join(f));
        Ok(PortalConfig {
            policies: ca.policies().clone(),
            gateway_secret: secret,
            secure_cookies: cfg.secure_cookies,
            font,
            sso,
            test_hooks: cfg!(debug_assertions)
                && std::env::var("HLJCA_PORTAL_TEST_HOOKS").is_ok_and(|v| v == "1"),
        })
    }
}

/// The portal: its configuration, sessions and the way to the CA.
pub struct Portal {
    pub(crate) cfg: PortalConfig,
    pub(crate) sso: Option<sso::Sso>,
    pub(crate) ca: CaHandle,
    pub(crate) sessions: session::Sessions,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// A portal that reaches the CA through `ca`.
    pub fn new(cfg: PortalConfig, ca: CaHandle) -> Arc<Portal> {
        let sso = cfg.sso.as_ref().map(|(c, secret)| sso::Sso {
            cfg: c.clone(),
            secret: secret.clone(),
        });
        Arc::new(Portal {
            sso,
            cfg,
            ca,
            sessions: session::Sessions::default(),
        })
    }

    /// The portal's routes as one axum router (its own state inside) for the server to mount
    /// behind its own: the pages, their sessions and CSRF checks, uploads, the gateway's
    /// notification. Paths it has no route for fall through to the server's fallback.
    pub fn router(self: &Arc<Portal>) -> axum::Router {
        routes::router(self.clone())
    }
}
