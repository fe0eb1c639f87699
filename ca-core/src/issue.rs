//! Issuance onto a USBKEY, the counter's everyday case: log in to the CA and the holder's
//! token, then hand the request to the issuance engine ([`crate::engine`]), which does the
//! rest all or nothing. Also the applicant check every path shares.

use crate::Rule;
use hljca_policies::ValidatedApplicant;
use hljca_token::{Module, TokenSelector};
use x509_parser::prelude::FromDer;

use crate::Ca;
use crate::applications::AppId;
use crate::eligibility::{Request, Step};
use crate::engine::{Engine, IssueParams};
use crate::error::{CoreError, Result};
use crate::keys::Secrets;

pub use crate::engine::{IssueOutcome, IssuedCert, SealLocation};

/// How a direct issuance (no application) is paid.
#[derive(Debug, Clone)]
pub enum DirectFee {
    /// The policy's first-time fee, taken at the counter.
    Paid(crate::applications::Payment),
    /// Free of charge, with the reason (recorded as a zero-amount order).
    Free {
        /// Why.
        reason: String,
    },
}

impl DirectFee {
    /// The fee to book for a `cert_type` certificate.
    pub(crate) fn fee(
        &self,
        ca: &Ca,
        cert_type: hljca_policies::CertType,
    ) -> Result<crate::engine::Fee> {
        Ok(match self {
            DirectFee::Paid(p) => crate::engine::Fee {
                fen: ca.policies.get(cert_type).fees.first.0,
                method: p.method.as_str().to_owned(),
                reference: p.reference.clone(),
            },
            DirectFee::Free { reason } => {
                let reason = reason.trim();
                if reason.is_empty() {
                    return Err(CoreError::refuse_on(
                        Rule::FreeNeedsReason,
                        "reason",
                        "--free needs --reason: why the certificate is issued without a fee",
                    ));
                }
                crate::engine::Fee {
                    fen: 0,
                    method: "free".into(),
                    reference: Some(reason.to_owned()),
                }
            }
        })
    }
}

impl Ca {
    /// Direct issuance onto a USBKEY, without an application (ca-admin): the fee is booked
    /// with it (`fee`).
    pub fn issue_direct(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        token: &TokenSelector,
        params: &IssueParams,
        fee: &DirectFee,
    ) -> Result<IssueOutcome> {
        self.require(
            crate::operators::Role::CaAdmin,
            "direct issuance (no application)",
        )?;
        let mut params = params.clone();
        params.fee = Some(fee.fee(self, params.cert_type)?);
        self.issue(module, secrets, token, &params)
    }

    /// Issues `params` onto the holder's token `token`: the CA token is refused before any
    /// login, then the CA keys are opened and checked, the holder logged in, and the engine
    /// runs.
    pub fn issue(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        token: &TokenSelector,
        params: &IssueParams,
    ) -> Result<IssueOutcome> {
        // Everything that can be refused is refused before any login.
        let user_pin = secrets.user_pin()?;
        let info = self.holder_token(module, token)?;
        let application = params
            .application_id
            .map(|id| self.application(AppId(id)))
            .transpose()?;
        self.eligible(
            Step::Issue,
            &Request {
                cert_type: params.cert_type,
                applicant: &params.applicant,
                renewal_of: params.renewal_of.as_deref(),
                application: application.as_ref(),
                token_serial: Some(&info.serial),
            },
        )?;
        let keys = self.ca_keys(Some(module), secrets)?;
        let engine = Engine::new(self, &keys)?;
        let session = module.login(token, user_pin)?;
        params.issue(self, &engine, Some(&session))
    }

    /// Applicant data as stored with each certificate row.
    pub(crate) fn applicant_json(validated: &ValidatedApplicant) -> Result<String> {
        serde_json::to_string(&validated.fields).map_err(|e| CoreError::Encoding {
            what: "applicant JSON",
            reason: e.to_string(),
        })
    }
}

/// The DER of a certificate's subject Name, for `CKA_SUBJECT`.
pub fn subject_der(cert_der: &[u8]) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).map_err(|e| {
        CoreError::Parse {
            what: "certificate just signed".into(),
            reason: e.to_string(),
        }
    })?;
    Ok(cert.tbs_certificate.subject.as_raw().to_vec())
}
