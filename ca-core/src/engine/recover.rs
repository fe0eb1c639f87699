//! `recover`: the only code that reads issuance stages back. For each issuance left open
//! whose lease nobody holds (its process is gone), it finishes or voids deterministically:
//!
//! | stage | token issuance | CSR issuance |
//! |---|---|---|
//! | reserved, keys | destroy the recorded key ids, void | void |
//! | signed | write the recorded certificates and seal beside their keys, commit (void when a key is gone or not the recorded one) | commit |
//! | written | commit when the token holds the recorded certificates, else destroy and void | commit |
//!
//! It never touches an object whose key id is not recorded on the issuance, never an issuance
//! whose lease is held, and logs in to each holder token with that token's own PIN.

use crate::Rule;
use hljca_token::{KeyId, Module, Pin, TokenError, TokenInfo, TokenSelector, TokenSession};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::commit::{self, Made};
use super::lease::{Lease, Probe};
use crate::ca::issuing_der;
use crate::error::{CoreError, Result};
use crate::store::{self, CertRecord, IssuanceKind, IssuanceRow, Stage, jobs};
use crate::{Ca, audit};

/// What recover did with an issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoverAction {
    /// Completed and recorded as issued.
    Finished,
    /// Its token objects destroyed and its rows voided.
    Voided,
    /// Left open (token absent, no PIN, PIN refused, cleanup failed).
    Left,
    /// Another process holds its lease: it is not abandoned.
    InProgress,
}

/// One issuance and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredIssuance {
    /// Issuance id.
    pub issuance: i64,
    /// The stage it was found at.
    pub stage: Stage,
    /// Certificate type.
    pub cert_type: String,
    /// Token label (`None` for a CSR).
    pub token_label: Option<String>,
    /// Token serial.
    pub token_serial: Option<String>,
    /// Its serials, identity first.
    pub serials: Vec<String>,
    /// Batch external id.
    pub external_id: Option<String>,
    /// Application.
    pub application_id: Option<i64>,
    /// What was done.
    pub action: RecoverAction,
    /// Why.
    pub reason: String,
}

/// What `recover` did.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    /// Batch jobs whose process was gone, now marked interrupted.
    pub batch_jobs_interrupted: Vec<i64>,
    /// Every open issuance looked at.
    pub issuances: Vec<RecoveredIssuance>,
}

impl RecoverReport {
    /// Issuances with `action`.
    pub fn count(&self, action: RecoverAction) -> usize {
        self.issuances.iter().filter(|i| i.action == action).count()
    }
}

/// Gives the user PIN of one holder token, or `None` when there is none for it.
pub type PinSource<'a> = dyn FnMut(&TokenInfo) -> Option<Pin> + 'a;

impl Ca {
    /// Finishes or voids every abandoned issuance (only those of token `only` when given).
    pub fn recover(
        &mut self,
        module: Option<&Module>,
        pins: &mut PinSource<'_>,
        only: Option<&TokenSelector>,
    ) -> Result<RecoverReport> {
        self.require(crate::operators::Role::Issuer, "recover")?;
        let batch_jobs_interrupted = self.interrupted_jobs()?;
        let only_serial = match (only, module) {
            (Some(sel), Some(m)) => Some(m.find(sel)?.serial),
            (Some(sel), None) => {
                return Err(CoreError::refuse_on(
                    Rule::Pkcs11Module,
                    "token",
                    format!("--token {sel}: no PKCS#11 module could be loaded"),
                ));
            }
            _ => None,
        };
        let mut issuances = Vec::new();
        let mut sessions: Vec<(String, std::result::Result<TokenSession, String>)> = Vec::new();
        for iss in self.store.open_issuances()? {
            if let Some(s) = &only_serial
                && iss.token_serial.as_deref() != Some(s.as_str())
            {
                continue;
            }
            let rows = self.store.rows_of_issuance(iss.id)?;
            let mut report = RecoveredIssuance {
                issuance: iss.id,
                stage: iss.stage,
                cert_type: iss.cert_type.clone(),
                token_label: iss.token_label.clone(),
                token_serial: iss.token_serial.clone(),
                serials: rows.iter().map(|r| r.serial.clone()).collect(),
                external_id: iss.external_id.clone(),
                application_id: iss.application_id,
                action: RecoverAction::Left,
                reason: String::new(),
            };
            let lease = match Lease::probe(&self.lease_space(), &iss.lease)? {
                Probe::Held => {
                    report.action = RecoverAction::InProgress;
                    report.reason = format!(
                        "in progress: process {} holds its lease {}; not touched",
                        iss.owner, iss.lease
                    );
                    issuances.push(report);
                    continue;
                }
                Probe::Taken(l) => l,
            };
            // Re-read under the lease: it may have committed between the listing and the lock.
            let iss = store::issuance_in(&self.store.conn, iss.id)?;
            if matches!(iss.stage, Stage::Committed | Stage::Void) {
                drop(lease);
                continue;
            }
            let session = match iss.kind {
                IssuanceKind::Csr => None,
                IssuanceKind::Token => {
                    let serial = iss.token_serial.clone().unwrap_or_default();
                    if !sessions.iter().any(|(s, _)| *s == serial) {
                        let opened = open_holder(self, module, &serial, pins);
                        sessions.push((serial.clone(), opened));
                    }
                    match sessions.iter().find(|(s, _)| *s == serial).map(|(_, r)| r) {
                        Some(Ok(s)) => Some(s),
                        Some(Err(why)) => {
                            report.reason = why.clone();
                            issuances.push(report);
                            continue;
                        }
                        None => None,
                    }
                }
            };
            let (action, reason) = self.recover_one(&iss, &rows, session)?;
            report.action = action;
            report.reason = reason;
            issuances.push(report);
            drop(lease);
        }
        Ok(RecoverReport {
            batch_jobs_interrupted,
            issuances,
        })
    }

    fn recover_one(
        &self,
        iss: &IssuanceRow,
        rows: &[CertRecord],
        session: Option<&TokenSession>,
    ) -> Result<(RecoverAction, String)> {
        let key_ids: Vec<KeyId> = rows
            .iter()
            .filter_map(|r| KeyId::from_hex(&r.key_id))
            .collect();
        let void = |why: String| -> Result<(RecoverAction, String)> {
            let mut destroyed = 0;
            if let Some(s) = session {
                for k in &key_ids {
                    match s.destroy_by_id(k) {
                        Ok(n) => destroyed += n,
                        Err(e) => {
                            return Ok((
                                RecoverAction::Left,
                                format!("could not remove key {k} from the token: {e}"),
                            ));
                        }
                    }
                }
            }
            let reason = format!("{why}; {destroyed} token object(s) destroyed");
            commit::void(self, iss, iss.stage, &reason, destroyed)?;
            Ok((RecoverAction::Voided, reason))
        };
        let finish = |why: &str| -> Result<(RecoverAction, String)> {
            let made: Vec<Made> = rows
                .iter()
                .map(|r| Made {
                    serial: r.serial.clone(),
                    role: r.role,
                    key_id: r.key_id.clone(),
                    has_seal: r.seal.is_some(),
                    unrecorded: None,
                })
                .collect();
            commit::commit(self, iss, iss.stage, &made, "cert.recover-finish")?;
            commit::outcome(self, iss.id)?;
            if let (Some(old), Some(s)) = (&iss.renewal_of, session) {
                commit::remove_renewed(self, s, old);
            }
            Ok((RecoverAction::Finished, why.to_owned()))
        };
        match (iss.kind, iss.stage, session) {
            (IssuanceKind::Csr, Stage::Reserved | Stage::Keys, _) => {
                void("CSR issuance stopped before it was signed".into())
            }
            (IssuanceKind::Csr, _, _) => {
                finish("CSR issuance signed and on record; recorded as issued")
            }
            (_, Stage::Reserved | Stage::Keys, _) => {
                void(format!("stopped at stage {}", iss.stage))
            }
            (_, Stage::Signed, Some(s)) => {
                for r in rows {
                    if let Err(why) = key_matches(s, r) {
                        return void(format!("signed, but {why}"));
                    }
                }
                for r in rows {
                    let id = KeyId::from_hex(&r.key_id).unwrap_or(KeyId(Vec::new()));
                    commit::write_objects(
                        s,
                        r.holder_type()?.key(),
                        r.role,
                        &r.serial,
                        &id,
                        r.der.as_deref().unwrap_or_default(),
                        r.seal.as_deref(),
                    )?;
                }
                finish("signed and on record: written to the token and recorded as issued")
            }
            (_, Stage::Written, Some(s)) => {
                let issuing = issuing_der(&self.home)?;
                for r in rows {
                    match on_token(s, r, &issuing) {
                        // A row from before the engine has no DER: take the verified one.
                        Ok(Some(f)) => self.write("record recovered certificate", |tx| {
                            store::record_signed(
                                tx,
                                &r.serial,
                                &f.der,
                                f.not_before,
                                f.not_after,
                                f.seal.as_deref(),
                            )?;
                            let details = serde_json::json!({ "issuance": iss.id });
                            audit::append(
                                tx,
                                self.actor.name(),
                                "cert.recover-der",
                                &r.serial,
                                &details,
                            )
                        })?,
                        Ok(None) => {}
                        Err(why) => {
                            return void(format!(
                                "incomplete on the token ({} {}: {why})",
                                r.role.as_str(),
                                r.serial
                            ));
                        }
                    }
                }
                finish("the token holds every certificate of the issuance; recorded as issued")
            }
            (_, _, None) => Ok((RecoverAction::Left, "holder token not open".into())),
            _ => Ok((
                RecoverAction::Left,
                format!("stage {} needs no recovery", iss.stage),
            )),
        }
    }

    /// Running batch jobs whose lease nobody holds are marked interrupted.
    fn interrupted_jobs(&mut self) -> Result<Vec<i64>> {
        let running = jobs::running(&self.store.conn)?;
        let mut out = Vec::new();
        for (id, lease) in running {
            let _taken = match &lease {
                Some(l) => match Lease::probe(&self.lease_space(), l)? {
                    Probe::Held => continue,
                    Probe::Taken(t) => Some(t),
                },
                None => None,
            };
            self.write("mark batch job interrupted", |tx| {
                if jobs::mark_interrupted(tx, id)? {
                    let details = serde_json::json!({ "lease": lease });
                    audit::append(
                        tx,
                        self.actor.name(),
                        "batch.interrupted",
                        &format!("batch-{id}"),
                        &details,
                    )?;
                }
                Ok::<_, CoreError>(())
            })?;
            out.push(id);
        }
        Ok(out)
    }
}

/// Logs in to the holder token `serial` with its own PIN.
fn open_holder(
    ca: &Ca,
    module: Option<&Module>,
    serial: &str,
    pins: &mut PinSource<'_>,
) -> std::result::Result<TokenSession, String> {
    let Some(module) = module else {
        return Err(
            "no PKCS#11 module could be loaded; rerun `hljca recover` where the token's module is"
                .into(),
        );
    };
    let sel = TokenSelector(serial.to_owned());
    let info = match module.find(&sel) {
        Ok(i) => i,
        Err(TokenError::TokenNotFound { .. }) => {
            return Err(format!(
                "token with serial {serial} is not present; insert it and rerun `hljca recover`"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    if super::refuse_ca_token(ca, None, &info, serial).is_err() {
        return Err("recorded on the CA's own token; left for an operator".into());
    }
    let Some(pin) = pins(&info) else {
        return Err(format!(
            "no user PIN for token `{}` (serial {}): run `hljca recover --token {}` with HLJCA_USER_PIN, or give --pin-dir",
            info.label, info.serial, info.label
        ));
    };
    module.login(&sel, &pin).map_err(|e| e.to_string())
}

/// The token's key for row `r` is there and is the one recorded.
fn key_matches(s: &TokenSession, r: &CertRecord) -> std::result::Result<(), String> {
    let id = KeyId::from_hex(&r.key_id).ok_or("its key id is not hex")?;
    let key = s
        .public_key(&id)
        .map_err(|_| format!("key {} is gone from the token", r.key_id))?;
    if r.spki.as_deref() != Some(key.subject_public_key_bits().as_slice()) {
        return Err(format!(
            "key {} on the token is not the recorded one",
            r.key_id
        ));
    }
    Ok(())
}

/// A certificate found on a token for a row that had none on record.
struct Found {
    der: Vec<u8>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    seal: Option<Vec<u8>>,
}

/// Checks the token holds row `r`'s certificate (and seal). Returns the certificate found when
/// the row has none on record (rows from before the engine).
fn on_token(
    s: &TokenSession,
    r: &CertRecord,
    issuing: &[u8],
) -> std::result::Result<Option<Found>, String> {
    let id = KeyId::from_hex(&r.key_id).ok_or("its key id is not hex")?;
    let der = s
        .certificate(&id)
        .map_err(|_| "no certificate object with its key id".to_owned())?;
    let seal = if r.role == store::CertRole::Seal {
        Some(
            s.data(&id)
                .map_err(|_| "seal data object missing".to_owned())?,
        )
    } else {
        None
    };
    if let Some(recorded) = &r.der {
        if *recorded != der {
            return Err("the certificate on the token is not the one recorded".into());
        }
        if r.seal.is_some() && r.seal != seal {
            return Err("the seal on the token is not the one recorded".into());
        }
        return Ok(None);
    }
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let (_, ca) =
        X509Certificate::from_der(issuing).map_err(|e| format!("issuing CA certificate: {e}"))?;
    if hex::encode(cert.raw_serial()) != r.serial {
        return Err(format!(
            "certificate on the token has serial {}",
            hex::encode(cert.raw_serial())
        ));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| format!("certificate does not verify against the issuing CA: {e}"))?;
    let key = s
        .public_key(&id)
        .map_err(|e| format!("no public key with its key id: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref()
        != key.subject_public_key_bits().as_slice()
    {
        return Err("certificate's public key is not the token's key".into());
    }
    let v = crate::validity::of_certificate(&cert);
    Ok(Some(Found {
        not_before: v.not_before,
        not_after: v.not_after,
        der,
        seal,
    }))
}
