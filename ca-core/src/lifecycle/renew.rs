//! Renewal before expiry: new keys on the same token, the annual fee, the old certificates superseded.

use hljca_policies::{Applicant, CertType};
use hljca_token::{KeyId, Module, TokenSelector};
use rusqlite::params;
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::issue::{IssueOutcome, IssueRequest};
use crate::keys::Secrets;
use crate::seal::parse as parse_seal;
use crate::store::{CertRecord, CertRole, CertStatus};
use crate::time_fmt::{now, ts};
use crate::{Ca, audit};

/// How a renewal was paid.
#[derive(Debug, Clone)]
pub struct Payment {
    /// qr-wechat, qr-alipay, cash, card, bank-transfer.
    pub method: String,
    /// The payment reference (QR transaction id, receipt number).
    pub reference: Option<String>,
}

/// What a renewal did.
#[derive(Debug, Clone, Serialize)]
pub struct RenewReport {
    /// The certificate renewed.
    pub old_serial: String,
    /// The new certificates (identity first, then seal).
    pub issued: IssueOutcome,
    /// Old certificates now superseded.
    pub superseded: Vec<String>,
    /// Old token objects removed after the new ones were written.
    pub removed_objects: usize,
    /// The annual fee paid, in fen.
    pub fee_fen: u64,
}

impl Ca {
    /// Renews an issued identity certificate onto the same token: new key pair(s), new
    /// certificate(s) and seal; the annual fee is recorded; the old certificates become
    /// superseded and their token objects are removed only after the new ones are on the token.
    pub fn renew(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        serial: &str,
        payment: &Payment,
    ) -> Result<RenewReport> {
        let old = self.renewable(serial)?;
        let cert_type: CertType = old.cert_type.parse()?;
        let fee = self.policies.get(cert_type).fees.annual;
        let applicant: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&old.applicant_json).map_err(|e| CoreError::Parse {
                what: format!("stored applicant data of {}", old.serial),
                reason: e.to_string(),
            })?;
        let old_seals = self.store.seals_of(&old.serial)?;
        // Keep a supplied PNG/JPEG seal picture; a generated SVG seal is generated again.
        let seal_image = old_seals
            .iter()
            .filter_map(|s| s.seal.as_deref())
            .filter_map(|d| parse_seal(d).ok())
            .find(|p| p.picture_kind != "SVG")
            .map(|p| p.picture);
        let issued = self.issue(
            module,
            secrets,
            &IssueRequest {
                cert_type,
                applicant: Applicant(applicant),
                token: TokenSelector(old.token_serial.clone()),
                seal_image,
                external_id: None,
                application_id: old.application_id,
            },
        )?;
        let order = RenewalOrder {
            cert_type,
            fee_fen: fee.0,
            payment,
        };
        let (superseded, removed) =
            self.supersede_renewed(module, secrets, &old, &issued, Some(&order))?;
        Ok(RenewReport {
            old_serial: old.serial,
            issued,
            superseded,
            removed_objects: removed,
            fee_fen: fee.0,
        })
    }

    /// The issued identity certificate `serial`, if it may be renewed now: not a seal
    /// certificate, issued, not expired (then a new application is needed), and inside the
    /// renewal window before its expiry.
    pub fn renewable(&self, serial: &str) -> Result<CertRecord> {
        let old = self.store.cert(serial)?;
        if old.role != CertRole::Identity {
            return Err(CoreError::Refused(format!(
                "{} is a seal certificate: renew its identity certificate {} (the seal is renewed with it)",
                old.serial,
                old.identity_serial.unwrap_or_default()
            )));
        }
        if old.status != CertStatus::Issued {
            return Err(CoreError::BadState {
                serial: old.serial,
                status: old.status.to_string(),
                what: "only an issued certificate can be renewed".into(),
            });
        }
        let t = now();
        let not_after = old
            .not_after
            .ok_or_else(|| CoreError::Refused(format!("{} has no validity", old.serial)))?;
        if t > not_after {
            return Err(CoreError::Refused(format!(
                "certificate {} expired on {}: renewal is only possible before expiry; apply for a new \
                 certificate instead (first-time application, `hljca apply`)",
                old.serial,
                ts(not_after)
            )));
        }
        let window = time::Duration::days(i64::from(self.config.lifecycle.renewal_window_days));
        if t < not_after - window {
            return Err(CoreError::Refused(format!(
                "certificate {} expires on {}: renewal opens on {} ({} days before expiry)",
                old.serial,
                ts(not_after),
                ts(not_after - window),
                self.config.lifecycle.renewal_window_days
            )));
        }
        Ok(old)
    }

    /// After the renewed certificates are issued and recorded: the old identity certificate and
    /// its seal certificates become superseded (with the renewal, the fee when `order` is given,
    /// and the audit row, in one transaction); only then are the old token objects removed.
    /// Idempotent: a second call for the same renewal changes nothing. Returns the superseded
    /// serials and the number of token objects removed.
    pub fn supersede_renewed(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        old: &CertRecord,
        issued: &IssueOutcome,
        order: Option<&RenewalOrder<'_>>,
    ) -> Result<(Vec<String>, usize)> {
        let old_seals = self.store.seals_of(&old.serial)?;
        let new_serial = issued
            .certificates
            .first()
            .map(|c| c.serial.clone())
            .unwrap_or_default();
        let mut superseded = vec![old.serial.clone()];
        superseded.extend(
            old_seals
                .iter()
                .filter(|s| s.status == CertStatus::Issued)
                .map(|s| s.serial.clone()),
        );
        let t = ts(now());
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(CoreError::db("begin renewal"))?;
        let mut changed = 0;
        for s in &superseded {
            changed += tx
                .execute(
                    "UPDATE certificates SET status = 'superseded', updated_at = ?2 WHERE serial = ?1 AND status = 'issued'",
                    params![s, t],
                )
                .map_err(CoreError::db("supersede"))?;
        }
        if changed == 0 {
            // Already superseded by an earlier, interrupted run.
            return Ok((Vec::new(), 0));
        }
        tx.execute(
            "INSERT INTO renewals (old_serial, new_serial, renewed_at, operator) VALUES (?1, ?2, ?3, ?4)",
            params![old.serial, new_serial, t, self.operator],
        )
        .map_err(CoreError::db("record renewal"))?;
        if let Some(o) = order {
            tx.execute(
                "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, reference, operator, paid_at) \
                 VALUES (?1, ?2, 'renewal', ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    old.application_id,
                    old.serial,
                    o.cert_type.key(),
                    o.fee_fen as i64,
                    o.payment.method,
                    o.payment.reference,
                    self.operator,
                    t
                ],
            )
            .map_err(CoreError::db("record renewal fee"))?;
        }
        audit::append(
            &tx,
            &self.operator,
            "cert.renew",
            &old.serial,
            &serde_json::json!({ "new": issued.certificates.iter().map(|c| &c.serial).collect::<Vec<_>>(),
                                  "superseded": superseded,
                                  "fee_fen": order.map(|o| o.fee_fen),
                                  "method": order.map(|o| o.payment.method.clone()) }),
        )?;
        tx.commit().map_err(CoreError::db("commit renewal"))?;
        // Only now, with the new objects on the token and recorded, remove the old ones.
        let mut removed = 0;
        let session = module.login(
            &TokenSelector(old.token_serial.clone()),
            secrets.user_pin()?,
        )?;
        for key in std::iter::once(&old.key_id).chain(old_seals.iter().map(|s| &s.key_id)) {
            if let Some(id) = KeyId::from_hex(key) {
                match session.destroy_by_id(&id) {
                    Ok(n) => removed += n,
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "renewal: old token objects not removed")
                    }
                }
            }
        }
        Ok((superseded, removed))
    }
}

/// The annual fee of a renewal paid at the counter (`hljca renew`).
#[derive(Debug, Clone)]
pub struct RenewalOrder<'a> {
    /// The certificate type.
    pub cert_type: CertType,
    /// The annual fee in fen.
    pub fee_fen: u64,
    /// How it was paid.
    pub payment: &'a Payment,
}
