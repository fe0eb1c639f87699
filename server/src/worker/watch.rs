//! The CA worker's watch on the store and the clock: rows that changed (their cached answers
//! dropped), the CRL (served when newer, regenerated when due), the OCSP signing certificate
//! (renewed at half of its life).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hljca_core::CoreError;
use hljca_core::keys::CaKeys;
use hljca_core::ocsp::Responder;
use time::OffsetDateTime;

use super::{CHANGE_WINDOW, Worker, validity};
use crate::docs::Doc;

impl Worker {
    pub(super) fn renew_signer(&mut self, keys: &CaKeys) {
        let renewed = self
            .ca
            .ocsp_signer(keys, self.serve.ocsp_signer_days)
            .and_then(|s| Responder::new(&self.issuing_der, s, validity(&self.serve)));
        match renewed {
            Ok(r) => {
                let s = r.signer();
                tracing::info!(
                    serial = %s.serial(),
                    not_after = %hljca_core::time_fmt::ts(s.not_after()),
                    "OCSP signing certificate renewed"
                );
                self.state
                    .metrics
                    .signer_not_after
                    .store(s.not_after().unix_timestamp(), Ordering::Relaxed);
                self.responder = r;
            }
            Err(e) => tracing::error!(error = %e, "OCSP signing certificate not renewed"),
        }
    }

    /// Drops the cached answers of every certificate whose row changed (and signs them again
    /// ahead when precomputing).
    pub(super) fn poll_changes(&mut self) -> Result<(), CoreError> {
        let since = OffsetDateTime::parse(
            &self.watermark,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| hljca_core::time_fmt::ts(t - CHANGE_WINDOW))
        .unwrap_or_default();
        let changes = self.ca.changed_since(Some(&since))?;
        for c in changes {
            if self.recent.get(&c.serial) == Some(&c.updated_at) {
                continue;
            }
            let dropped = self.state.cache.invalidate(&c.serial);
            tracing::debug!(serial = %c.serial, dropped, "certificate changed");
            if self.serve.precompute {
                self.enqueue(self.responder.sha1_cert_id(&c.serial)?);
            }
            if c.updated_at > self.watermark {
                self.watermark = c.updated_at.clone();
            }
            self.recent.insert(c.serial, c.updated_at);
        }
        let keep_from = since;
        self.recent.retain(|_, at| *at >= keep_from);
        Ok(())
    }

    /// Serves the newest CRL in the store, if it is newer than the one being served.
    pub(super) fn load_crl(&mut self) -> Result<(), CoreError> {
        let Some(latest) = self.ca.latest_crl()? else {
            return Ok(());
        };
        if self.crl.as_ref().is_some_and(|c| c.number >= latest.number) {
            return Ok(());
        }
        let doc = Doc::new(
            latest.der.clone(),
            "application/pkix-crl",
            latest.this_update,
            Some(latest.next_update),
        );
        if let Ok(mut slot) = self.state.crl.write() {
            *slot = Some(Arc::new(doc));
        }
        let m = &self.state.metrics;
        m.crl_number.store(latest.number, Ordering::Relaxed);
        m.crl_next_update
            .store(latest.next_update.unix_timestamp(), Ordering::Relaxed);
        tracing::info!(number = latest.number, "serving CRL");
        self.crl = Some(latest);
        Ok(())
    }

    /// Generates a CRL when none is served, half of the served one's validity has passed,
    /// or it no longer lists what the store has revoked.
    pub(super) fn maintain_crl(&mut self) -> Result<(), CoreError> {
        if self.crl_retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        let why = match &self.crl {
            None => Some("none published yet"),
            Some(c) if now >= c.this_update + (c.next_update - c.this_update) / 2 => {
                Some("half of its validity passed")
            }
            Some(c) if self.crl_dirty && !self.ca.crl_is_current(c)? => Some("revocations changed"),
            Some(_) => None,
        };
        let Some(why) = why else {
            self.crl_dirty = false;
            return Ok(());
        };
        // On failure `crl_dirty` stays set: the next attempt looks at the revocations again.
        let report = self
            .ca
            .generate_crl(self.module.as_deref(), &self.secrets)?;
        self.crl_dirty = false;
        self.crl_retry_at = None;
        self.state
            .metrics
            .crl_generated
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            number = report.number,
            revoked = report.revoked,
            why,
            "CRL generated"
        );
        self.load_crl()
    }
}
