//! The worker's part of the API's TLS: the server certificate from the issuing CA, issued at
//! start and renewed (with a new key) once half of its life has passed, swapped into the
//! running TLS configuration.

use std::sync::Arc;

use hljca_core::api::ApiTlsCert;
use hljca_core::keys::CaKeys;
use hljca_core::{Ca, CoreError};
use time::OffsetDateTime;

use super::Worker;
use crate::api::tls::ServerCert;

/// The API's TLS server certificate from the issuing CA, renewed by the worker.
pub(super) struct ApiTls {
    resolver: Arc<ServerCert>,
    hosts: Vec<String>,
    days: u32,
    cert: ApiTlsCert,
}

impl Worker {
    /// The CA.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// Issues the API's TLS server certificate (or takes the current one from the home) for
    /// `hosts`; the worker renews it from then on into `resolver`'s place.
    pub fn api_tls_cert(
        &self,
        keys: &CaKeys,
        hosts: &[String],
        days: u32,
    ) -> Result<ApiTlsCert, CoreError> {
        self.ca.api_tls_cert(keys, hosts, days)
    }

    /// Keeps `cert` renewed into `resolver` (see [`Worker::api_tls_cert`]).
    pub fn renew_api_tls_into(
        &mut self,
        resolver: Arc<ServerCert>,
        hosts: Vec<String>,
        days: u32,
        cert: ApiTlsCert,
    ) {
        self.api_tls = Some(ApiTls {
            resolver,
            hosts,
            days,
            cert,
        });
    }

    pub(super) fn renew_api_tls(&mut self, keys: &CaKeys, now: OffsetDateTime) {
        let Some(t) = &mut self.api_tls else {
            return;
        };
        if !t.cert.needs_renewal(now) {
            return;
        }
        match self.ca.api_tls_cert(keys, &t.hosts, t.days) {
            Ok(cert) => match t.resolver.replace(&cert) {
                Ok(()) => {
                    tracing::info!(not_after = %hljca_core::time_fmt::ts(cert.not_after), "API TLS certificate renewed");
                    t.cert = cert;
                }
                Err(e) => tracing::error!(error = %e, "renewed API TLS certificate not usable"),
            },
            Err(e) => tracing::error!(error = %e, "API TLS certificate not renewed"),
        }
    }
}
