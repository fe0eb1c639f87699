//! Renewal before expiry: new keys on the same token, the annual fee, the old certificates superseded.

use hljca_policies::Applicant;
use hljca_token::{Module, TokenSelector};
use serde::Serialize;

use crate::Ca;
use crate::engine::{Fee, IssueOutcome, IssueParams};
use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::seal::parse as parse_seal;

pub use crate::applications::Payment;

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
    /// Renews an issued identity certificate onto the same token through the issuance engine:
    /// new key pair(s), certificate(s) and seal; when it commits, the old certificates become
    /// superseded and the annual fee is recorded in the same transaction; the old token objects
    /// are removed only after that.
    pub fn renew(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        serial: &str,
        payment: &Payment,
    ) -> Result<RenewReport> {
        self.require(crate::operators::Role::Issuer, "renew (the issuance)")?;
        self.require(crate::operators::Role::Cashier, "renew (the annual fee)")?;
        let old = self.renewable(serial)?;
        let cert_type = old.holder_type()?;
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
        let mut params = IssueParams::new(cert_type, Applicant(applicant));
        params.seal_image = seal_image;
        params.application_id = None;
        params.renewal_of = Some(old.serial.clone());
        params.fee = Some(Fee {
            fen: fee.0,
            method: payment.method.as_str().to_owned(),
            reference: payment.reference.clone(),
        });
        let issued = self.issue(
            module,
            secrets,
            &TokenSelector(old.token_serial.clone()),
            &params,
        )?;
        Ok(RenewReport {
            old_serial: old.summary.serial,
            superseded: issued.superseded.clone(),
            removed_objects: issued.removed_objects,
            issued,
            fee_fen: fee.0,
        })
    }
}
