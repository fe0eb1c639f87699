//! Issuance onto a USBKEY, the counter's everyday case: log in to the CA and the holder's
//! token, then hand the request to the issuance engine ([`crate::engine`]), which does the
//! rest all or nothing. Also the applicant check every path shares.

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

impl Ca {
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
