//! Issuance onto a USBKEY: key pairs born on the token, certificates signed by the issuing CA,
//! the electronic seal where the type has one, and the records — all or nothing.
//!
//! Order (DESIGN.md's crash-safety rule): validate everything first; log in to the CA and the
//! user token; generate the key pair(s); commit a `pending` row per serial; sign; write the
//! certificates (and the seal) to the token; then mark the rows `issued` with the audit entry in
//! one transaction. Any failure before that last commit destroys what was made on the token and
//! voids the pending rows, so no orphan key and no unrecorded certificate is left.

use hljca_policies::{Applicant, CertType, Policy, ValidatedApplicant};
use hljca_token::{KeyId, Module, TokenSelector, TokenSession};
use rcgen::Issuer;
use serde::Serialize;
use x509_parser::prelude::FromDer;

use crate::ca::{issuer, pem_cert};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::{CaKeys, CaSigner, Secrets};
use crate::profile::{EeParams, TokenPublicKey, end_entity, random_serial, subject};
use crate::seal::{SealContent, SealPicture, build_and_sign};
use crate::store::{CertRole, NewPending, Store};
use crate::time_fmt::now;
use crate::{Ca, audit};

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The certificate type.
    pub cert_type: CertType,
    /// Raw applicant data.
    pub applicant: Applicant,
    /// The holder's USBKEY.
    pub token: TokenSelector,
    /// A seal picture supplied with the application (PNG or JPEG).
    pub seal_image: Option<Vec<u8>>,
    /// The caller's id for this issuance (a batch row's external id), recorded on every row.
    pub external_id: Option<String>,
    /// The application this issuance fulfils.
    pub application_id: Option<i64>,
}

/// One certificate made.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCert {
    /// Serial (hex).
    pub serial: String,
    /// Type key.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// identity or seal.
    pub role: CertRole,
    /// Exported PEM.
    pub pem: std::path::PathBuf,
    /// `CKA_ID` (hex) on the token.
    pub key_id: String,
    /// Subject DN.
    pub subject: String,
    /// Token label.
    pub token_label: String,
    /// Token serial.
    pub token_serial: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
}

/// Where the seal went.
#[derive(Debug, Clone, Serialize)]
pub struct SealLocation {
    /// Token label.
    pub token_label: String,
    /// Label of the data object on the token.
    pub object_label: String,
    /// A copy in the home.
    pub file: std::path::PathBuf,
    /// Serial of the seal certificate.
    pub seal_cert_serial: String,
}

/// What an issuance made.
#[derive(Debug, Clone, Serialize)]
pub struct IssueOutcome {
    /// The certificates, identity first.
    pub certificates: Vec<IssuedCert>,
    /// The seal, for types that have one.
    pub seal: Option<SealLocation>,
}

/// The checked inputs of one issuance.
struct Prepared {
    policy: Policy,
    validated: ValidatedApplicant,
    org_id: Option<String>,
    picture: Option<SealPicture>,
}

struct Planned {
    role: CertRole,
    key_id: KeyId,
    public_point: Vec<u8>,
    serial: String,
    serial_bytes: [u8; 16],
    der: Option<Vec<u8>>,
    seal: Option<Vec<u8>>,
}

impl Ca {
    /// Validates and issues, all or nothing.
    pub fn issue(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        req: &IssueRequest,
    ) -> Result<IssueOutcome> {
        let prepared = self.prepare_issue(req)?;
        let user_pin = secrets.user_pin()?;
        let keys = CaKeys::open(&self.config, &self.home, Some(module), secrets)?;
        let session = module.login(&req.token, user_pin)?;
        self.issue_prepared(&keys, &session, req, prepared)
    }

    /// As [`Ca::issue`], with the CA keys and the holder's token already open (a batch opens
    /// each once). `session` must be the token `req.token` names.
    pub fn issue_on(
        &mut self,
        keys: &CaKeys<'_>,
        session: &TokenSession<'_>,
        req: &IssueRequest,
    ) -> Result<IssueOutcome> {
        let prepared = self.prepare_issue(req)?;
        self.issue_prepared(keys, session, req, prepared)
    }

    /// Everything checked before any token is touched: the applicant against the policy and
    /// the seal picture.
    fn prepare_issue(&self, req: &IssueRequest) -> Result<Prepared> {
        let (policy, validated, org_id) = self.check_applicant(req.cert_type, &req.applicant)?;
        let picture = match (&policy.seal, &req.seal_image) {
            (Some(sp), Some(img)) => Some(SealPicture::from_image(
                img.clone(),
                sp.width_mm,
                sp.height_mm,
            )?),
            (Some(sp), None) => {
                let name = validated.get(&sp.name_field).unwrap_or_default();
                Some(SealPicture::generate_round(name, sp.width_mm, sp.height_mm))
            }
            (None, Some(_)) => {
                return Err(CoreError::Refused(format!(
                    "--seal-image given but a {} certificate has no electronic seal",
                    req.cert_type
                )));
            }
            (None, None) => None,
        };
        Ok(Prepared {
            policy,
            validated,
            org_id,
            picture,
        })
    }

    fn issue_prepared(
        &mut self,
        keys: &CaKeys<'_>,
        session: &TokenSession<'_>,
        req: &IssueRequest,
        prepared: Prepared,
    ) -> Result<IssueOutcome> {
        let (issuer, issuing_der) = issuer(&self.home, keys)?;
        let mut plan: Vec<Planned> = Vec::new();
        let result = self.issue_inner(
            session,
            &issuer,
            &issuing_der,
            &prepared.policy,
            &prepared.validated,
            prepared.org_id.as_deref(),
            prepared.picture.as_ref(),
            req,
            &mut plan,
        );
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                for p in &plan {
                    if let Err(ce) = session.destroy_by_id(&p.key_id) {
                        tracing::error!(key = %p.key_id, error = %ce, "cleanup: could not remove token objects");
                    }
                    if let Err(ce) = self.store.mark_void(&p.serial) {
                        tracing::error!(serial = %p.serial, error = %ce, "cleanup: could not void pending row");
                    }
                }
                Err(e)
            }
        }
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

    #[allow(clippy::too_many_arguments)] // one call site; the pieces are all distinct borrows
    fn issue_inner(
        &mut self,
        session: &TokenSession<'_>,
        issuer: &Issuer<'static, CaSigner<'_>>,
        issuing_der: &[u8],
        policy: &Policy,
        validated: &ValidatedApplicant,
        org_id: Option<&str>,
        picture: Option<&SealPicture>,
        req: &IssueRequest,
        plan: &mut Vec<Planned>,
    ) -> Result<IssueOutcome> {
        let (dn, subject_text) = subject(policy, validated)?;
        let resident_id = policy
            .extensions
            .resident_id_field
            .as_deref()
            .and_then(|f| validated.get(f));
        let applicant_json = Ca::applicant_json(validated)?;
        let info = session.info().clone();
        let type_key = policy.cert_type.key();
        let mut roles = vec![(CertRole::Identity, &policy.identity)];
        if let Some(sp) = &policy.seal {
            roles.push((CertRole::Seal, &sp.cert));
        }
        // Each pending row (with its key id) is committed before the key is generated, and is
        // in `plan` before generation starts, so cleanup and `recover` always know every key.
        for (role, _) in &roles {
            let key_id = KeyId::random();
            let serial_bytes = self.unused_serial()?;
            let serial = hex::encode(serial_bytes);
            let identity_serial = plan
                .first()
                .filter(|_| *role == CertRole::Seal)
                .map(|p| p.serial.clone());
            self.store.insert_pending(&NewPending {
                serial: &serial,
                cert_type: type_key,
                role: *role,
                identity_serial: identity_serial.as_deref(),
                subject: &subject_text,
                org_id,
                applicant_json: &applicant_json,
                token_label: &info.label,
                token_serial: &info.serial,
                key_id: &key_id.to_hex(),
                external_id: req.external_id.as_deref(),
                application_id: req.application_id,
            })?;
            plan.push(Planned {
                role: *role,
                key_id: key_id.clone(),
                public_point: Vec::new(),
                serial,
                serial_bytes,
                der: None,
                seal: None,
            });
            let label = format!("{} {} {}", type_key, role.as_str(), short(&subject_text));
            let key = session.generate_p256_with_id(&label, &key_id)?;
            if let Some(p) = plan.last_mut() {
                p.public_point = key.public_point;
            }
        }
        let not_before = now();
        for (i, (_, profile)) in roles.iter().enumerate() {
            let p = &plan[i];
            let params = end_entity(
                &self.config,
                dn.clone(),
                &EeParams {
                    serial: p.serial_bytes,
                    profile,
                    not_before,
                    validity_days: policy.validity_days,
                    org_id,
                    resident_id,
                },
            )?;
            let cert = params
                .signed_by(&TokenPublicKey(p.public_point.clone()), issuer)
                .map_err(CoreError::cert(format!(
                    "{} certificate {}",
                    p.role.as_str(),
                    p.serial
                )))?;
            plan[i].der = Some(cert.der().to_vec());
        }
        let not_after = not_before + time::Duration::days(i64::from(policy.validity_days));
        if let (Some(sp), Some(pic)) = (&policy.seal, picture) {
            let seal_plan = &plan[1];
            let seal_cert = seal_plan.der.clone().unwrap_or_default();
            let name = validated.get(&sp.name_field).unwrap_or_default();
            let es_id = format!("HLJCA-{}", seal_plan.serial);
            let seal = build_and_sign(
                &SealContent {
                    vendor_id: "HLJCA",
                    es_id: &es_id,
                    seal_type: sp.seal_type.code(),
                    name,
                    cert_list: vec![seal_cert],
                    create_date: not_before,
                    valid_start: not_before,
                    valid_end: not_after,
                    picture: pic,
                },
                issuing_der,
                issuer.key(),
            )?;
            plan[1].seal = Some(seal);
        }
        // Write to the token.
        for p in plan.iter() {
            let der = p.der.as_deref().unwrap_or_default();
            let subject_der = subject_der(der)?;
            let label = format!("{} {} {}", type_key, p.role.as_str(), p.serial);
            session.store_certificate(&p.key_id, &label, der, &subject_der)?;
            if let Some(seal) = &p.seal {
                session.store_data(&p.key_id, seal)?;
            }
        }
        // Record, in one transaction with the audit entry.
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(CoreError::db("begin issuance"))?;
        for p in plan.iter() {
            Store::mark_issued_tx(
                &tx,
                &p.serial,
                p.der.as_deref().unwrap_or_default(),
                not_before,
                not_after,
                p.seal.as_deref(),
            )?;
            audit::append(
                &tx,
                &self.operator,
                "cert.issue",
                &p.serial,
                &serde_json::json!({
                    "type": type_key, "role": p.role.as_str(), "subject": subject_text,
                    "token_label": info.label, "token_serial": info.serial, "key_id": p.key_id.to_hex(),
                    "seal": p.seal.is_some(),
                }),
            )?;
        }
        tx.commit().map_err(CoreError::db("commit issuance"))?;

        // Exports are conveniences: the database and the token already hold the truth.
        let mut certificates = Vec::new();
        let mut seal_loc = None;
        for p in plan.iter() {
            let der = p.der.as_deref().unwrap_or_default();
            let pem_path = self.home.cert_pem(&p.serial);
            write_file(&pem_path, pem_cert(der).as_bytes(), 0o644)?;
            if let Some(seal) = &p.seal {
                let file = self.home.seal_file(&p.serial);
                write_file(&file, seal, 0o644)?;
                seal_loc = Some(SealLocation {
                    token_label: info.label.clone(),
                    object_label: p.key_id.data_label(),
                    file,
                    seal_cert_serial: p.serial.clone(),
                });
            }
            certificates.push(IssuedCert {
                serial: p.serial.clone(),
                cert_type: policy.cert_type,
                role: p.role,
                pem: pem_path,
                key_id: p.key_id.to_hex(),
                subject: subject_text.clone(),
                token_label: info.label.clone(),
                token_serial: info.serial.clone(),
                not_after: crate::time_fmt::ts(not_after),
            });
        }
        Ok(IssueOutcome {
            certificates,
            seal: seal_loc,
        })
    }

    fn unused_serial(&self) -> Result<[u8; 16]> {
        // 2^-120 collision odds; the UNIQUE index is the real guarantee, this just avoids a failed insert.
        for _ in 0..4 {
            let s = random_serial();
            if !self.store.serial_exists(&hex::encode(s))? {
                return Ok(s);
            }
        }
        Err(CoreError::Refused(
            "could not find an unused serial number".into(),
        ))
    }
}

fn short(s: &str) -> String {
    s.rsplit("CN=")
        .next()
        .unwrap_or(s)
        .chars()
        .take(24)
        .collect()
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
