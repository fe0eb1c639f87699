//! Revocation (free of charge): an identity certificate takes its seal certificate with it.

use crate::Rule;
use crate::store::crls;
pub use crate::store::vocab::Reason;
use hljca_policies::CertType;
use hljca_token::{KeyId, Module, TokenSelector};
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::store::{CertRecord, CertRole, CertStatus};
use crate::{Ca, audit};

/// What a revocation did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    /// Serials revoked (the certificate, then its seal certificates).
    pub revoked: Vec<String>,
    /// Enterprise-secondary (副锁) certificates revoked with the last enterprise certificate of
    /// their USCC (and their seals).
    pub secondary_revoked: Vec<String>,
    /// Enterprise-secondary certificates left issued although their primary is gone
    /// (`--keep-secondary`): listed so the operator sees them.
    pub secondary_kept: Vec<String>,
    /// A hold made final: the certificates were on hold and now carry this reason.
    pub hold_made_final: bool,
    /// Token objects removed, when asked.
    pub removed_objects: usize,
}

/// What a release from hold did.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// Serials back to issued (they leave the next CRL).
    pub released: Vec<String>,
}

/// How to revoke.
#[derive(Debug, Clone, Copy)]
pub struct RevokeOptions {
    /// The reason.
    pub reason: Reason,
    /// Keep (and report) the enterprise-secondary certificates of the last enterprise
    /// certificate of a USCC instead of revoking them with it.
    pub keep_secondary: bool,
}

impl Ca {
    /// Revokes `serial` and its seal certificates in one transaction. A certificate on hold may
    /// be revoked for a final reason (the hold becomes that revocation). When it is the last
    /// valid enterprise certificate of its USCC, the enterprise-secondary certificates of that
    /// USCC go with it (unless `keep_secondary`). With `remove_from`, also deletes the token
    /// objects (needs the token and the user PIN).
    pub fn revoke(
        &mut self,
        serial: &str,
        opts: RevokeOptions,
        remove_from: Option<(&Module, &Secrets)>,
    ) -> Result<RevokeReport> {
        self.require(crate::operators::Role::CaAdmin, "revoke")?;
        let reason = opts.reason;
        let cert = self.store.cert(serial)?;
        if !cert.role.is_holder() {
            return Err(CoreError::refuse_on(
                Rule::CaCertificate,
                "serial",
                match cert.role {
                    CertRole::Operator => format!(
                        "certificate {} is an operator certificate: revoke it with `hljca operator revoke {}` \
                     (which also ends the operator's login) [rule: operators are revoked as operators]",
                        cert.serial, cert.serial
                    ),
                    role => format!(
                        "certificate {} is the CA's {} certificate: the CA replaces it itself \
                     [rule: revoke takes a holder's certificate]",
                        cert.serial,
                        role.as_str()
                    ),
                },
            ));
        }
        let on_hold = cert.status == CertStatus::Revoked
            && cert.revocation_reason == Some(Reason::CertificateHold);
        let live = |c: &CertRecord| {
            matches!(c.status, CertStatus::Issued | CertStatus::Superseded)
                || (on_hold
                    && c.status == CertStatus::Revoked
                    && c.revocation_reason == Some(Reason::CertificateHold))
        };
        if !live(&cert) {
            return Err(CoreError::BadState {
                status: cert.status.to_string(),
                serial: cert.summary.serial,
                what: "only an issued certificate (or one on hold) can be revoked".into(),
            });
        }
        if on_hold && reason == Reason::CertificateHold {
            return Err(CoreError::BadState {
                serial: cert.summary.serial,
                status: "on hold".into(),
                what: "it is already on hold: release it (`hljca release`) or revoke it for a final reason".into(),
            });
        }
        let mut targets = vec![cert.clone()];
        if cert.role == CertRole::Identity {
            targets.extend(self.store.seals_of(&cert.serial)?.into_iter().filter(live));
        }
        // The last valid enterprise certificate of a USCC takes its 副锁 with it.
        let mut secondary = Vec::new();
        if cert.cert_type == Some(CertType::Enterprise)
            && cert.role == CertRole::Identity
            && reason != Reason::CertificateHold
            && let Some(org) = &cert.org_id
        {
            let others = self
                .store
                .valid_for_org(CertType::Enterprise.key(), org, self.now())?
                .into_iter()
                .filter(|c| c.serial != cert.serial)
                .count();
            if others == 0 {
                for s in self.store.valid_for_org(
                    CertType::EnterpriseSecondary.key(),
                    org,
                    self.now(),
                )? {
                    let seals = self.store.seals_of(&s.serial)?;
                    secondary.push(s);
                    secondary.extend(seals.into_iter().filter(|x| x.status == CertStatus::Issued));
                }
            }
        }
        let (secondary_revoked, secondary_kept): (Vec<CertRecord>, Vec<CertRecord>) =
            if opts.keep_secondary {
                (Vec::new(), secondary)
            } else {
                (secondary, Vec::new())
            };
        let at = self.now();
        let op = self.actor.name();
        self.write("revoke", |tx| {
            for t in targets.iter().chain(&secondary_revoked) {
                // Compare-and-set: a concurrent revocation of the same certificate changes nothing.
                let changed = if on_hold && t.status == CertStatus::Revoked {
                    crls::make_hold_final(tx, &t.serial, reason)?
                } else {
                    // Never before the certificate's notBefore, whatever the clock says.
                    let at = t.summary.not_before.map_or(at, |nb| at.max(nb));
                    crls::revoke(tx, &t.serial, at, reason)?
                };
                if !changed && t.serial == cert.serial {
                    return Err(CoreError::BadState {
                        serial: t.serial.clone(),
                        status: "revoked".into(),
                        what: "it was revoked meanwhile by another command".into(),
                    });
                }
                let via_secondary = secondary_revoked.iter().any(|x| x.serial == t.serial);
                audit::append(
                    tx,
                    op,
                    "cert.revoke",
                    &t.serial,
                    &serde_json::json!({
                        "reason": reason.name(), "role": t.role.as_str(), "via": cert.serial,
                        "hold_made_final": on_hold,
                        "cause": if via_secondary { Some("the last enterprise certificate of its USCC was revoked") } else { None },
                    }),
                )?;
            }
            if !secondary_kept.is_empty() {
                audit::append(
                    tx,
                    op,
                    "cert.secondary-kept",
                    &cert.serial,
                    &serde_json::json!({ "kept": secondary_kept.iter().map(|c| &c.serial).collect::<Vec<_>>() }),
                )?;
            }
            // Revocation is free of charge; the zero-amount order keeps the business record complete.
            Ok(crls::revocation_order(tx, cert.application_id, &cert.serial, cert.holder_type()?.key(), op, at)?)
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
            revoked: targets.into_iter().map(|t| t.summary.serial).collect(),
            secondary_revoked: secondary_revoked
                .into_iter()
                .map(|t| t.summary.serial)
                .collect(),
            secondary_kept: secondary_kept
                .into_iter()
                .map(|t| t.summary.serial)
                .collect(),
            hold_made_final: on_hold,
            removed_objects: removed,
        })
    }

    /// Releases a certificate from hold (`removeFromCRL`): it and its held seal certificates
    /// are issued again and leave the next CRL.
    pub fn release(&mut self, serial: &str) -> Result<ReleaseReport> {
        self.require(crate::operators::Role::CaAdmin, "release")?;
        let cert = self.store.cert(serial)?;
        let held = |c: &CertRecord| {
            c.status == CertStatus::Revoked && c.revocation_reason == Some(Reason::CertificateHold)
        };
        if !held(&cert) {
            return Err(CoreError::BadState {
                status: cert.status.to_string(),
                serial: cert.summary.serial,
                what: "only a certificate on hold (certificateHold) can be released".into(),
            });
        }
        let mut targets = vec![cert.clone()];
        if cert.role == CertRole::Identity {
            targets.extend(self.store.seals_of(&cert.serial)?.into_iter().filter(held));
        }
        let op = self.actor.name();
        self.write("release", |tx| {
            for t in &targets {
                if !crls::release(tx, &t.serial)? && t.serial == cert.serial {
                    return Err(CoreError::BadState {
                        serial: t.serial.clone(),
                        status: "changed".into(),
                        what: "it is no longer on hold".into(),
                    });
                }
                audit::append(
                    tx,
                    op,
                    "cert.release",
                    &t.serial,
                    &serde_json::json!({ "role": t.role.as_str(), "via": cert.serial }),
                )?;
            }
            Ok(())
        })?;
        Ok(ReleaseReport {
            released: targets.into_iter().map(|t| t.summary.serial).collect(),
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
