//! Eligibility: the one check of whether a certificate may be issued to an applicant, run at
//! `apply`, `submit`, `review approve`, `pay` and again at issuance (the engine), so that no fee
//! is taken for what cannot be issued.
//!
//! It covers the policy's field rules, the holder (the organisation's USCC, or the person's
//! resident ID for a type without one), the enterprise-secondary rule (a valid enterprise
//! certificate with the same USCC), a renewal (the renewed certificate issued, inside its
//! window, and held by the same holder), the materials (complete from `submit` on) and the
//! USBKEY (free, or already bound to the same holder; never the CA's own token).

use crate::Rule;
pub use crate::store::vocab::{Holder, HolderKind};
use hljca_policies::{Applicant, CertType, Policy, ValidatedApplicant};

use crate::Ca;
use crate::applications::Application;
use crate::error::{CoreError, Result};
use crate::store::vocab::one_holder;
use crate::store::{CertRecord, CertRole, CertStatus};
use crate::time_fmt::ts;

/// Where in the workflow the check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `apply`.
    Apply,
    /// `submit`.
    Submit,
    /// `review approve`.
    Approve,
    /// `pay`.
    Pay,
    /// Issuance (`issue`, `issue APP`, `renew`, batch rows).
    Issue,
}

/// The holder an applicant's data names under `policy`: the USCC when the type has one, else
/// the resident ID.
pub fn holder_of(
    policy: &Policy,
    fields: &std::collections::BTreeMap<String, String>,
) -> Option<Holder> {
    let get = |f: &Option<String>| {
        f.as_deref()
            .and_then(|f| fields.get(f))
            .filter(|v| !v.is_empty())
    };
    let name = policy
        .seal
        .as_ref()
        .map(|s| s.name_field.clone())
        .and_then(|f| fields.get(&f).cloned())
        .or_else(|| fields.get("organization").cloned())
        .unwrap_or_default();
    if let Some(uscc) = get(&policy.extensions.uscc_field) {
        let org = fields.get("organization").cloned().unwrap_or(name);
        return Some(Holder {
            kind: HolderKind::Uscc,
            id: uscc.clone(),
            name: org,
        });
    }
    get(&policy.extensions.resident_id_field).map(|id| Holder {
        kind: HolderKind::ResidentId,
        id: id.clone(),
        name,
    })
}

/// An applicant found eligible.
#[derive(Debug, Clone)]
pub struct Eligible {
    /// The type's policy.
    pub policy: Policy,
    /// The validated applicant data.
    pub validated: ValidatedApplicant,
    /// The organisation identifier (USCC) when the type has one.
    pub org_id: Option<String>,
    /// The holder.
    pub holder: Holder,
    /// The certificate renewed, when this is a renewal.
    pub renewed: Option<CertRecord>,
}

/// What the check is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The type.
    pub cert_type: CertType,
    /// Raw applicant data.
    pub applicant: &'a Applicant,
    /// The certificate renewed.
    pub renewal_of: Option<&'a str>,
    /// The application, from `submit` on.
    pub application: Option<&'a Application>,
    /// The holder's USBKEY serial, at issuance onto a token.
    pub token_serial: Option<&'a str>,
}

impl Ca {
    /// The one eligibility check (see the module documentation), as of the CA's clock.
    pub fn eligible(&self, step: Step, req: &Request<'_>) -> Result<Eligible> {
        let policy = self.policies.get(req.cert_type).clone();
        let validated = policy
            .validate(req.applicant)
            .map_err(|errors| CoreError::Applicant {
                cert_type: req.cert_type,
                errors,
            })?;
        let org_id = policy
            .extensions
            .uscc_field
            .as_deref()
            .and_then(|f| validated.get(f))
            .map(str::to_owned);
        let holder = holder_of(&policy, &validated.fields).ok_or_else(|| {
            CoreError::refuse(Rule::HolderNamed, format!(
                "a {} certificate names no holder: its policy has neither a USCC nor a resident ID field",
                req.cert_type
            ))
        })?;
        if req.cert_type == CertType::EnterpriseSecondary {
            self.require_primary_enterprise(org_id.as_deref())?;
        }
        let renewed = match req.renewal_of {
            Some(serial) => Some(self.renewal_by(serial, req.cert_type, &holder)?),
            None => None,
        };
        if let Some(app) = req.application
            && step >= Step::Submit
        {
            let missing = self.missing_materials(app)?;
            if !missing.is_empty() {
                return Err(CoreError::refuse(
                    Rule::MaterialsRequired,
                    format!(
                        "{} is missing required materials: {} (add them with `materials add {} KIND FILE`)",
                        app.id,
                        missing.join(", "),
                        app.id
                    ),
                ));
            }
        }
        if let Some(serial) = req.token_serial {
            self.usbkey_fits(serial, &holder, None)?;
        }
        Ok(Eligible {
            policy,
            validated,
            org_id,
            holder,
            renewed,
        })
    }

    /// The certificate `serial` if it may be renewed now by `holder` as a `cert_type`.
    fn renewal_by(&self, serial: &str, cert_type: CertType, holder: &Holder) -> Result<CertRecord> {
        let old = self.renewable(serial)?;
        let old_type = old.holder_type()?;
        if old_type != cert_type {
            return Err(CoreError::refuse_on(
                Rule::RenewalSame,
                "renewal-of",
                format!(
                    "--renewal-of {}: it is a {old_type} certificate, not {cert_type}",
                    old.serial
                ),
            ));
        }
        let fields: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&old.applicant_json).map_err(|e| CoreError::Parse {
                what: format!("stored applicant data of {}", old.serial),
                reason: e.to_string(),
            })?;
        let old_holder = holder_of(self.policies.get(old_type), &fields);
        if old_holder.as_ref().map(|h| &h.id) != Some(&holder.id) {
            return Err(CoreError::refuse_on(
                Rule::RenewalSame,
                "renewal-of",
                format!(
                    "certificate {} is held by {}; a renewal keeps the holder, this one is for {holder} \
                 [rule: a renewal is for the same holder; another holder applies afresh]",
                    old.serial,
                    old_holder.map_or_else(|| "an unknown holder".into(), |h| h.to_string())
                ),
            ));
        }
        Ok(old)
    }

    /// The issued identity certificate `serial`, if it may be renewed now (by the CA's clock):
    /// not a seal certificate, issued, not expired (then a new application is needed), and
    /// inside the renewal window before its expiry.
    pub fn renewable(&self, serial: &str) -> Result<CertRecord> {
        let old = self.store.cert(serial)?;
        if old.role != CertRole::Identity {
            return Err(CoreError::refuse_on(
                Rule::RenewalSame,
                "renewal-of",
                format!(
                    "{} is a seal certificate: renew its identity certificate {} (the seal is renewed with it)",
                    old.serial,
                    old.identity_serial.as_deref().unwrap_or_default()
                ),
            ));
        }
        if old.status != CertStatus::Issued {
            return Err(CoreError::BadState {
                status: old.status.to_string(),
                serial: old.summary.serial,
                what: "only an issued certificate can be renewed".into(),
            });
        }
        let t = self.now();
        let not_after = old.not_after.ok_or_else(|| {
            CoreError::refuse(Rule::Internal, format!("{} has no validity", old.serial))
        })?;
        if t > not_after {
            return Err(CoreError::refuse_on(
                Rule::RenewalWindow,
                "renewal-of",
                format!(
                    "certificate {} expired on {}: renewal is only possible before expiry; apply for a new \
                 certificate instead (first-time application, `hljca apply`)",
                    old.serial,
                    ts(not_after)
                ),
            ));
        }
        let window = time::Duration::days(i64::from(self.config.lifecycle.renewal_window_days));
        if t < not_after - window {
            return Err(CoreError::refuse_on(
                Rule::RenewalWindow,
                "renewal-of",
                format!(
                    "certificate {} expires on {}: renewal opens on {} ({} days before expiry)",
                    old.serial,
                    ts(not_after),
                    ts(not_after - window),
                    self.config.lifecycle.renewal_window_days
                ),
            ));
        }
        Ok(old)
    }

    /// One holder per USBKEY: the USBKEY `serial` may take a certificate for `holder` — it is
    /// blank, or already that holder's in the register, or (when a plan has put a holder on it
    /// already) `planned` is that holder.
    pub fn usbkey_fits(
        &self,
        serial: &str,
        holder: &Holder,
        planned: Option<&Holder>,
    ) -> Result<()> {
        let registered = match planned {
            Some(_) => None,
            None => self.store.token_holder(serial)?,
        };
        Ok(one_holder(serial, planned.or(registered.as_ref()), holder)?)
    }

    /// The 副锁 rule: an enterprise-secondary for USCC `org_id` needs an issued, unexpired
    /// enterprise certificate with that USCC, or (in a batch plan) `planned_enterprise(org)`: an
    /// enterprise row for it earlier in the same file.
    pub fn secondary_lock(
        &self,
        org_id: Option<&str>,
        planned_enterprise: impl Fn(&str) -> bool,
    ) -> Result<()> {
        if let Some(org) = org_id
            && planned_enterprise(org)
        {
            return Ok(());
        }
        self.require_primary_enterprise(org_id)
    }

    fn require_primary_enterprise(&self, org_id: Option<&str>) -> Result<()> {
        let org = org_id.ok_or_else(|| {
            CoreError::refuse_on(
                Rule::SecondaryLock,
                "applicant.org_id",
                "enterprise-secondary needs the USCC of its enterprise",
            )
        })?;
        if self
            .store
            .valid_for_org(CertType::Enterprise.key(), org, self.now())?
            .is_empty()
        {
            return Err(CoreError::refuse_on(
                Rule::SecondaryLock,
                "applicant.org_id",
                format!(
                    "enterprise-secondary (副锁) for USCC {org} refused: no issued, unexpired enterprise certificate \
                 with that USCC; issue the enterprise certificate first"
                ),
            ));
        }
        Ok(())
    }
}
