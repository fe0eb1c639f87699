//! Enrolling, changing and revoking operators.

use crate::Rule;
use hljca_token::{KeyId, Module, Pin, TokenSelector};
use rcgen::{
    CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SerialNumber,
};

use super::{OPERATOR_LABEL, Role};
use crate::applications::Site;
use crate::engine::{Authority, KeyHome, record_made};
use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::profile::{SubjectKey, ca_subject, random_serial, revocation_pointers};

use crate::revoke::Reason;
use crate::store::{CertRole, OperatorRecord, crls, normalize_serial, operators};
use crate::time_fmt::ts;
use crate::{Ca, audit};

/// Who to enrol.
#[derive(Debug, Clone)]
pub struct NewOperator {
    /// The staff member's name (CN of the operator certificate).
    pub name: String,
    /// Their site (OU).
    pub site: Site,
    /// Their roles.
    pub roles: Vec<Role>,
    /// Their USBKEY (initialised, blank).
    pub token: TokenSelector,
    /// Break glass: the CA key custodian (the CA PIN) enrols a new ca-admin because no
    /// administrator's USBKEY can be used (lost, blocked). Witnessed by a logged-in operator
    /// when any operator who is not a ca-admin is active; the custodian alone otherwise.
    pub break_glass: bool,
}

pub(super) fn check_name(name: &str) -> Result<()> {
    let n = name.trim();
    if n.is_empty()
        || n.chars().count() > 64
        || n.chars()
            .any(|c| c.is_control() || hljca_policies::is_invisible(c))
    {
        return Err(CoreError::refuse_on(
            Rule::OperatorName,
            "name",
            format!(
                "--name `{}`: 1 to 64 visible characters [rule: the operator's name is the certificate's CN]",
                name.escape_default()
            ),
        ));
    }
    Ok(())
}

/// The operator certificate: clientAuth, the staff member's name and site, three calendar years
/// at most and never past the issuing CA.
fn operator_params(
    name: &str,
    site: Site,
    serial: [u8; 16],
    validity: crate::validity::Validity,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = ca_subject(name)?;
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::Utf8String(format!("operator {}", site.as_str())),
    );
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = validity.not_before;
    p.not_after = validity.not_after;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

impl Ca {
    /// Enrols an operator onto their USBKEY: a P-256 key born on it, an operator certificate
    /// from the issuing CA written beside it, the operator row and its audit row. The first
    /// operator of a CA is enrolled by the CA key custodian alone (the CA PIN opens the CA
    /// keys); every later one by a logged-in ca-admin.
    pub fn enrol_operator(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        new: &NewOperator,
        token_pin: &Pin,
    ) -> Result<OperatorRecord> {
        let active: Vec<OperatorRecord> = self
            .store
            .operators()?
            .into_iter()
            .filter(|o| o.status == "active")
            .collect();
        let first = active.is_empty();
        let witness = if new.break_glass {
            if !new.roles.contains(&Role::CaAdmin) {
                return Err(CoreError::refuse_on(
                    Rule::OperatorRoles,
                    "roles",
                    "--break-glass enrols a new administrator: --roles must include ca-admin",
                ));
            }
            let others = active
                .iter()
                .any(|o| !o.roles.iter().any(|r| r == Role::CaAdmin.as_str()));
            let logged_in = self.operator_session.is_some();
            if others && !logged_in {
                return Err(CoreError::refuse_on(
                    Rule::OperatorLogin,
                    "HLJCA_OPERATOR_TOKEN",
                    "--break-glass needs a second person: log in with another active operator's \
                     USBKEY as witness (with none but administrators left, the CA PIN alone does)",
                ));
            }
            logged_in.then(|| self.actor.name().to_owned())
        } else {
            if !first {
                self.require(Role::CaAdmin, "operator add")?;
            }
            None
        };
        let custodian = first || new.break_glass;
        check_name(&new.name)?;
        if new.roles.is_empty() {
            return Err(CoreError::refuse_on(
                Rule::OperatorRoles,
                "roles",
                "--roles needs at least one role",
            ));
        }
        let info = self.holder_token(module, &new.token)?;
        if let Some(h) = self.store.token_holder(&info.serial)? {
            return Err(CoreError::refuse_on(
                Rule::OperatorUsbkey,
                "token",
                format!(
                    "USBKEY `{}` belongs to the customer {h}; an operator needs a USBKEY of their own",
                    info.label
                ),
            ));
        }
        if let Some(o) = self
            .store
            .operators()?
            .iter()
            .find(|o| o.token_serial == info.serial && o.status == "active")
        {
            return Err(CoreError::refuse_on(
                Rule::OperatorUsbkey,
                "token",
                format!(
                    "USBKEY `{}` already holds operator {} ({})",
                    info.label, o.name, o.cert_serial
                ),
            ));
        }
        let keys = self.ca_keys(Some(module), secrets)?;
        let auth = Authority::new(self, &keys)?;
        let session = module.login(&new.token, token_pin)?;
        let key_id = KeyId::random();
        let key =
            session.generate_p256_with_id(&format!("{OPERATOR_LABEL} {}", new.name), &key_id)?;
        let made = (|| -> Result<OperatorRecord> {
            let subject_key = SubjectKey {
                bits: key.public.subject_public_key_bits(),
                alg: key.public.rcgen_algorithm(),
            };
            let (serial_hex, der, not_after) =
                self.sign_operator_cert(&auth, &new.name, new.site, &subject_key)?;
            let subject_der = crate::issue::subject_der(&der)?;
            session.store_certificate(
                &key_id,
                &format!("{OPERATOR_LABEL} {serial_hex}"),
                &der,
                &subject_der,
            )?;
            Ok(OperatorRecord {
                cert_serial: serial_hex,
                name: new.name.trim().to_owned(),
                site: new.site.as_str().to_owned(),
                roles: new.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                token_label: info.label.clone(),
                token_serial: info.serial.clone(),
                key_id: key_id.to_hex(),
                der,
                status: "active".into(),
                not_after: ts(not_after),
                enrolled_at: ts(crate::time_fmt::now()),
                enrolled_by: if custodian {
                    "(CA key custodian)".into()
                } else {
                    self.actor.name().to_owned()
                },
            })
        })();
        let rec = match made {
            Ok(r) => r,
            Err(e) => {
                let _ = session.destroy_by_id(&key_id);
                return Err(e);
            }
        };
        // The custodian writes without an operator's signature on the audit row (there is no
        // usable one): only the first operator and a break-glass enrolment do.
        if first || (new.break_glass && witness.is_none()) {
            self.store.set_bootstrap(true);
        }
        let op = if custodian {
            "(CA key custodian)".to_owned()
        } else {
            self.actor.name().to_owned()
        };
        let details = if new.break_glass {
            serde_json::json!({ "first": first, "break_glass": true, "witness": witness })
        } else {
            serde_json::json!({ "first": first })
        };
        let written = self.record_operator(&op, &rec, details);
        self.store.set_bootstrap(false);
        if let Err(e) = written {
            let _ = session.destroy_by_id(&key_id);
            return Err(e);
        }
        Ok(rec)
    }

    /// Signs an operator certificate for `key` with the issuing CA: (serial hex, DER, notAfter).
    pub(super) fn sign_operator_cert(
        &self,
        auth: &Authority<'_>,
        name: &str,
        site: Site,
        key: &SubjectKey,
    ) -> Result<(String, Vec<u8>, time::OffsetDateTime)> {
        let serial = random_serial();
        let start = self.now();
        let until = crate::validity::add_years(start, 3);
        let days = (until - start).whole_days() as u32;
        let validity = crate::validity::end_entity(start, days, auth.issuing_not_after());
        let mut params = operator_params(name, site, serial, validity)?;
        revocation_pointers(&self.config, &mut params)?;
        let der = auth.sign(&params, key, "operator certificate")?;
        Ok((hex::encode(serial), der, validity.not_after))
    }

    /// The operator row and its `operator.enrol` audit row, one write (`extra` joins the details).
    pub(super) fn record_operator(
        &self,
        op: &str,
        rec: &OperatorRecord,
        extra: serde_json::Value,
    ) -> Result<()> {
        let mut details = serde_json::json!({
            "name": rec.name, "site": rec.site, "roles": rec.roles,
            "token_label": rec.token_label, "token_serial": rec.token_serial,
            "key_id": rec.key_id, "not_after": rec.not_after,
        });
        if let (Some(d), serde_json::Value::Object(x)) = (details.as_object_mut(), extra) {
            d.extend(x);
        }
        Ok(self.store.write_as(op, "enrol operator", |tx| {
            operators::insert(tx, rec)?;
            let home = KeyHome {
                token_label: &rec.token_label,
                token_serial: &rec.token_serial,
                key_id: &rec.key_id,
            };
            record_made(tx, CertRole::Operator, &rec.der, home)?;
            audit::append(tx, op, "operator.enrol", &rec.cert_serial, &details)
        })?)
    }

    /// Replaces an operator's roles (ca-admin).
    pub fn set_operator_roles(&mut self, serial: &str, roles: &[Role]) -> Result<OperatorRecord> {
        self.require(Role::CaAdmin, "operator roles")?;
        if roles.is_empty() {
            return Err(CoreError::refuse_on(
                Rule::OperatorRoles,
                "roles",
                "--roles needs at least one role",
            ));
        }
        let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
        self.keep_an_admin(serial, roles.iter().any(|r| r == "ca-admin"))?;
        let op = self.actor.name().to_owned();
        self.write("operator roles", |tx| {
            if !operators::set_roles(tx, serial, &roles)? {
                return Err(CoreError::refuse_on(
                    Rule::UnknownOperator,
                    "serial",
                    format!("no active operator with certificate {serial}"),
                ));
            }
            Ok(audit::append(
                tx,
                &op,
                "operator.roles",
                serial,
                &serde_json::json!({ "roles": roles }),
            )?)
        })?;
        self.store.operator(serial)?.ok_or_else(|| {
            CoreError::refuse_on(
                Rule::UnknownOperator,
                "serial",
                format!("no operator {serial}"),
            )
        })
    }

    /// Revokes an operator (ca-admin): they can no longer log in, their operator certificate is
    /// revoked (on the next CRL, `revoked` in OCSP); their signed audit rows stay verifiable.
    /// The CRL reason is `reason` when it names one (e.g. `keyCompromise` for a lost USBKEY),
    /// else privilegeWithdrawn: the staff member may no longer act for the CA.
    pub fn revoke_operator(&mut self, serial: &str, reason: &str) -> Result<OperatorRecord> {
        self.require(Role::CaAdmin, "operator revoke")?;
        self.keep_an_admin(serial, false)?;
        let op = self.actor.name().to_owned();
        let crl_reason = reason
            .trim()
            .parse::<Reason>()
            .unwrap_or(Reason::PrivilegeWithdrawn);
        let now = self.now();
        self.write("operator revoke", |tx| {
            if !operators::revoke(tx, serial)? {
                return Err(CoreError::refuse_on(Rule::UnknownOperator, "serial", format!(
                    "no active operator with certificate {serial}"
                )));
            }
            // Operators enrolled before certificates were recorded with their role have no row.
            let on_crl = crls::revoke(tx, &normalize_serial(serial), now, crl_reason)?;
            Ok(audit::append(
                tx,
                &op,
                "operator.revoke",
                serial,
                &serde_json::json!({
                    "reason": reason, "crl_reason": crl_reason.name(), "certificate_revoked": on_crl,
                }),
            )?)
        })?;
        self.store.operator(serial)?.ok_or_else(|| {
            CoreError::refuse_on(
                Rule::UnknownOperator,
                "serial",
                format!("no operator {serial}"),
            )
        })
    }

    /// Refuses a change that would leave no active ca-admin with a USBKEY (a job's operator,
    /// enrolled from a CSR, cannot log in to the CLI).
    fn keep_an_admin(&self, serial: &str, stays_admin: bool) -> Result<()> {
        let admins = self
            .store
            .operators()?
            .into_iter()
            .filter(|o| o.status == "active" && o.roles.iter().any(|r| r == "ca-admin"))
            .filter(|o| o.token_label != super::CSR_OPERATOR_TOKEN)
            .filter(|o| o.cert_serial != serial || stays_admin)
            .count();
        if admins == 0 {
            return Err(CoreError::refuse_on(
                Rule::LastCaAdmin,
                "serial",
                format!("operator {serial} is the last active ca-admin; enrol another one first"),
            ));
        }
        Ok(())
    }
}
