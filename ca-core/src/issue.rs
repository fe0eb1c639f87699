//! Issuance onto a USBKEY, the counter's everyday case: log in to the CA and the holder's
//! token, then hand the request to the issuance engine ([`crate::engine`]), which does the
//! rest all or nothing. Also the applicant check every path shares.

use hljca_policies::{Applicant, CertType, Policy, ValidatedApplicant};
use hljca_token::{Module, TokenSelector};
use x509_parser::prelude::FromDer;

use crate::Ca;
use crate::engine::{Engine, IssueParams};
use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::time_fmt::now;

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
        self.check_applicant(params.cert_type, &params.applicant)?;
        let user_pin = secrets.user_pin()?;
        self.holder_token(module, token)?;
        let keys = self.ca_keys(Some(module), secrets)?;
        let engine = Engine::new(self, &keys)?;
        let session = module.login(token, user_pin)?;
        params.issue(self, &engine, Some(&session))
    }

    /// Validates applicant data against its type's policy, including the rule that a secondary
    /// lock needs a valid enterprise certificate with the same USCC. Returns the policy, the
    /// validated data and the organisation identifier (when the type has one).
    pub fn check_applicant(
        &self,
        cert_type: CertType,
        applicant: &Applicant,
    ) -> Result<(Policy, ValidatedApplicant, Option<String>)> {
        let policy = self.policies.get(cert_type).clone();
        let validated = policy
            .validate(applicant)
            .map_err(|errors| CoreError::Applicant { cert_type, errors })?;
        let org_id = policy
            .extensions
            .uscc_field
            .as_deref()
            .and_then(|f| validated.get(f))
            .map(str::to_owned);
        if cert_type == CertType::EnterpriseSecondary {
            self.require_primary_enterprise(org_id.as_deref())?;
        }
        Ok((policy, validated, org_id))
    }

    /// Applicant data as stored with each certificate row.
    pub(crate) fn applicant_json(validated: &ValidatedApplicant) -> Result<String> {
        serde_json::to_string(&validated.fields).map_err(|e| CoreError::Encoding {
            what: "applicant JSON",
            reason: e.to_string(),
        })
    }

    fn require_primary_enterprise(&self, org_id: Option<&str>) -> Result<()> {
        let org = org_id.ok_or_else(|| {
            CoreError::Refused("enterprise-secondary needs the USCC of its enterprise".into())
        })?;
        if self
            .store
            .valid_for_org(CertType::Enterprise.key(), org, now())?
            .is_empty()
        {
            return Err(CoreError::Refused(format!(
                "enterprise-secondary (副锁) for USCC {org} refused: no issued, unexpired enterprise certificate \
                 with that USCC; issue the enterprise certificate first"
            )));
        }
        Ok(())
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
