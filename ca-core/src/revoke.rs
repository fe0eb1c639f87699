//! Revocation (free of charge): an identity certificate takes its seal certificate with it.

use crate::store::crls;
use hljca_token::{KeyId, Module, TokenSelector};
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::store::{CertRole, CertStatus};
use crate::time_fmt::now;
use crate::{Ca, audit};

/// RFC 5280 section 5.3.1 reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5): the organisation dissolved or stopped using the certificate.
    CessationOfOperation,
    /// certificateHold (6)
    CertificateHold,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
}

impl Reason {
    /// Every reason, for help text.
    pub const ALL: [Reason; 7] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
    ];
    /// The RFC 5280 name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
    /// rcgen's form.
    pub fn rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
            Reason::CertificateHold => R::CertificateHold,
            Reason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Reason, String> {
        let want = s.replace(['-', '_'], "").to_ascii_lowercase();
        Reason::ALL
            .into_iter()
            .find(|r| r.name().to_ascii_lowercase() == want)
            .ok_or_else(|| {
                let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "unknown revocation reason `{s}` (RFC 5280: {})",
                    names.join(", ")
                )
            })
    }
}

/// What a revocation did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    /// Serials revoked (the certificate, then its seal certificates).
    pub revoked: Vec<String>,
    /// Token objects removed, when asked.
    pub removed_objects: usize,
}

impl Ca {
    /// Revokes `serial` (and its seal certificates). With `remove_from`, also deletes the token
    /// objects (needs the token and the user PIN).
    pub fn revoke(
        &mut self,
        serial: &str,
        reason: Reason,
        remove_from: Option<(&Module, &Secrets)>,
    ) -> Result<RevokeReport> {
        let cert = self.store.cert(serial)?;
        if cert.status != CertStatus::Issued && cert.status != CertStatus::Superseded {
            return Err(CoreError::BadState {
                serial: cert.serial,
                status: cert.status.to_string(),
                what: "only an issued certificate can be revoked".into(),
            });
        }
        let mut targets = vec![cert.clone()];
        if cert.role == CertRole::Identity {
            targets.extend(
                self.store.seals_of(&cert.serial)?.into_iter().filter(|s| {
                    s.status == CertStatus::Issued || s.status == CertStatus::Superseded
                }),
            );
        }
        let at = now();
        let op = &self.operator;
        self.store.write("revoke", |tx| {
            for t in &targets {
                // Compare-and-set: a concurrent revocation of the same certificate changes nothing.
                let changed = crls::revoke(tx, &t.serial, at, reason)?;
                if !changed && t.serial == cert.serial {
                    return Err(CoreError::BadState {
                        serial: t.serial.clone(),
                        status: "revoked".into(),
                        what: "it was revoked meanwhile by another command".into(),
                    });
                }
                audit::append(
                    tx,
                    op,
                    "cert.revoke",
                    &t.serial,
                    &serde_json::json!({ "reason": reason.name(), "role": t.role.as_str(), "via": cert.serial }),
                )?;
            }
            // Revocation is free of charge; the zero-amount order keeps the business record complete.
            crls::revocation_order(tx, cert.application_id, &cert.serial, cert.cert_type.key(), op, at)
        })?;
        let mut removed = 0;
        if let Some((module, secrets)) = remove_from {
            let sel = TokenSelector(cert.token_serial.clone());
            self.holder_token(module, &sel)?;
            let session = module.login(&sel, secrets.user_pin()?)?;
            for t in &targets {
                if let Some(id) = KeyId::from_hex(&t.key_id) {
                    removed += session.destroy_by_id(&id)?;
                }
            }
            self.audit(
                "token.remove-objects",
                &cert.token_serial,
                serde_json::json!({ "serials": targets.iter().map(|t| &t.serial).collect::<Vec<_>>(), "objects": removed }),
            )?;
        }
        Ok(RevokeReport {
            revoked: targets.into_iter().map(|t| t.serial).collect(),
            removed_objects: removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_by_rfc_name_in_any_case() {
        for r in Reason::ALL {
            assert_eq!(r.name().parse::<Reason>().unwrap(), r);
            assert_eq!(r.name().to_uppercase().parse::<Reason>().unwrap(), r);
        }
        assert_eq!(
            "key-compromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        let err = "lost".parse::<Reason>().unwrap_err();
        assert!(err.contains("keyCompromise"), "{err}");
    }
}
