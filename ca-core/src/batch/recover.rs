//! `recover`: finishing or voiding issuances a crash left `pending`.
//!
//! A pending row means the key pair was made on the token and a serial reserved, but the
//! process stopped before the row was marked issued. Rows of one issuance (identity and seal)
//! are handled together, all or nothing: if every certificate is on the token, parses, carries
//! the row's serial, matches the token's public key and verifies against the issuing CA (and a
//! seal row's seal data object is there), the rows are marked issued; otherwise every object
//! with their key ids is destroyed and the rows are voided. A token that is not present leaves
//! its rows pending. Never run it while another `hljca issue` or `batch issue` is running.

use std::collections::BTreeMap;

use hljca_policies::CertType;
use hljca_token::{KeyId, Module, ObjectKind, TokenSelector, TokenSession};
use rusqlite::params;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{issuing_der, pem_cert};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::Secrets;
use crate::store::{CertFilter, CertRecord, CertRole, CertStatus, Store};
use crate::time_fmt::{now, ts};
use crate::{Ca, audit};

/// What recover did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoverAction {
    /// The certificate was on the token and valid: the row is now issued.
    Finished,
    /// The issuance was incomplete: its token objects were destroyed and the row voided.
    Voided,
    /// Left pending (token absent, PIN refused, or cleanup failed).
    Left,
}

/// One pending row and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredRow {
    /// Serial.
    pub serial: String,
    /// Type key.
    #[serde(rename = "type")]
    pub cert_type: String,
    /// identity or seal.
    pub role: CertRole,
    /// Token label.
    pub token_label: String,
    /// Token serial.
    pub token_serial: String,
    /// Key id (hex).
    pub key_id: String,
    /// The batch row's external id, when any.
    pub external_id: Option<String>,
    /// What was done.
    pub action: RecoverAction,
    /// Why.
    pub reason: String,
}

/// A key pair left on a holder's token by a crash between "key generated" and "pending row
/// committed": it has no certificate and no live row, so no `pending` row points at it.
#[derive(Debug, Clone, Serialize)]
pub struct OrphanKey {
    /// Token label.
    pub token_label: String,
    /// Token serial.
    pub token_serial: String,
    /// `CKA_ID` (hex).
    pub key_id: String,
    /// `CKA_LABEL` of the key.
    pub label: String,
    /// Destroyed, or left (see `reason`).
    pub destroyed: bool,
    /// Why.
    pub reason: String,
}

/// The outcome of `recover`.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    /// Rows marked issued.
    pub finished: usize,
    /// Rows voided.
    pub voided: usize,
    /// Rows left pending.
    pub left: usize,
    /// Every pending row found.
    pub rows: Vec<RecoveredRow>,
    /// Batch jobs whose process is gone, now marked `interrupted`.
    pub interrupted_jobs: Vec<i64>,
    /// Keys made by hljca on holders' tokens that no certificate or live row accounts for.
    pub orphan_keys: Vec<OrphanKey>,
}

/// What a pending row's token holds, when it is complete.
struct Found {
    der: Vec<u8>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    seal: Option<Vec<u8>>,
}

impl Ca {
    /// Finishes or voids every `pending` certificate row (see the module documentation).
    /// `module` may be `None` when no PKCS#11 module can be loaded: token rows are then left.
    pub fn recover(&mut self, module: Option<&Module>, secrets: &Secrets) -> Result<RecoverReport> {
        let interrupted_jobs = self.interrupted_jobs()?;
        let mut pending = self.store.certs(&CertFilter {
            status: Some(CertStatus::Pending),
            ..CertFilter::default()
        })?;
        pending.reverse(); // oldest first
        // Group the rows of one issuance: a seal row goes with its identity row.
        let mut groups: BTreeMap<String, Vec<CertRecord>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for r in pending {
            let key = r
                .identity_serial
                .clone()
                .unwrap_or_else(|| r.serial.clone());
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().push(r);
        }
        let issuing = issuing_der(&self.home)?;
        let mut out = Vec::new();
        for key in order {
            let Some(group) = groups.remove(&key) else {
                continue;
            };
            let done = self.recover_group(module, secrets, &issuing, &group)?;
            out.extend(done);
        }
        let orphan_keys = match module {
            Some(m) => self.sweep_orphans(m, secrets)?,
            None => Vec::new(),
        };
        let count = |a: RecoverAction| out.iter().filter(|r| r.action == a).count();
        Ok(RecoverReport {
            orphan_keys,
            finished: count(RecoverAction::Finished),
            voided: count(RecoverAction::Voided),
            left: count(RecoverAction::Left),
            rows: out,
            interrupted_jobs,
        })
    }

    /// Looks on every present holder token that hljca has issued onto for keys with an hljca
    /// label (`<type> identity|seal …`) but no certificate object with their `CKA_ID`, and no
    /// certificate row that is pending, issued, revoked or superseded with that key id: a crash
    /// right after key generation leaves such a key before its pending row exists. They are
    /// destroyed (audit `token.orphan-destroy`). Keys of other software are never touched.
    fn sweep_orphans(&mut self, module: &Module, secrets: &Secrets) -> Result<Vec<OrphanKey>> {
        let used: Vec<String> = {
            let mut stmt = self
                .store
                .conn
                .prepare(
                    "SELECT DISTINCT token_serial FROM certificates WHERE token_serial != '' ORDER BY 1",
                )
                .map_err(CoreError::db("token lookup"))?;
            stmt.query_map([], |r| r.get(0))
                .map_err(CoreError::db("token lookup"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CoreError::db("token lookup"))?
        };
        let ca_serial = self.config.ca.token_serial.clone();
        let tokens: Vec<_> = module
            .tokens()?
            .into_iter()
            .filter(|t| {
                t.initialized && used.contains(&t.serial) && Some(&t.serial) != ca_serial.as_ref()
            })
            .collect();
        let mut out = Vec::new();
        for t in tokens {
            let session = match module.login(&TokenSelector(t.serial.clone()), secrets.user_pin()?)
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(token = %t.label, error = %e, "orphan key check skipped");
                    continue;
                }
            };
            let objects = match session.list_objects() {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(token = %t.label, error = %e, "orphan key check skipped");
                    continue;
                }
            };
            let with_cert: std::collections::HashSet<&str> = objects
                .iter()
                .filter(|o| o.kind == ObjectKind::Certificate)
                .map(|o| o.id.as_str())
                .collect();
            let mut seen = std::collections::HashSet::new();
            for o in &objects {
                if !matches!(o.kind, ObjectKind::PrivateKey | ObjectKind::PublicKey)
                    || o.id.is_empty()
                    || with_cert.contains(o.id.as_str())
                    || !hljca_label(&o.label)
                    || !seen.insert(o.id.clone())
                {
                    continue;
                }
                let live: i64 = self
                    .store
                    .conn
                    .query_row(
                        "SELECT COUNT(*) FROM certificates WHERE token_serial = ?1 AND key_id = ?2 \
                         AND status != 'void'",
                        params![t.serial, o.id],
                        |r| r.get(0),
                    )
                    .map_err(CoreError::db("key lookup"))?;
                let mut k = OrphanKey {
                    token_label: t.label.clone(),
                    token_serial: t.serial.clone(),
                    key_id: o.id.clone(),
                    label: o.label.clone(),
                    destroyed: false,
                    reason: String::new(),
                };
                if live > 0 {
                    k.reason = "a certificate row uses this key but its certificate object is \
                                missing from the token; left for an operator"
                        .into();
                    out.push(k);
                    continue;
                }
                let Some(id) = KeyId::from_hex(&o.id) else {
                    continue;
                };
                match session.destroy_by_id(&id) {
                    Ok(n) => {
                        k.destroyed = true;
                        k.reason = format!(
                            "no certificate and no certificate row: key made by an issuance that \
                             crashed before recording it; {n} object(s) destroyed"
                        );
                        self.audit(
                            "token.orphan-destroy",
                            &t.serial,
                            serde_json::json!({
                                "token_label": t.label, "key_id": o.id, "label": o.label, "objects": n,
                            }),
                        )?;
                    }
                    Err(e) => k.reason = format!("could not destroy: {e}"),
                }
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Refuses while a batch job's process is still alive (its pending rows are in flight);
    /// marks the jobs whose process is gone `interrupted`.
    fn interrupted_jobs(&mut self) -> Result<Vec<i64>> {
        let running: Vec<(i64, i64)> = {
            let mut stmt = self
                .store
                .conn
                .prepare("SELECT id, pid FROM batch_jobs WHERE status = 'running' ORDER BY id")
                .map_err(CoreError::db("running batch jobs"))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(CoreError::db("running batch jobs"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CoreError::db("running batch jobs"))?
        };
        let own = i64::from(std::process::id());
        if let Some((id, pid)) = running
            .iter()
            .find(|(_, pid)| *pid != own && process_alive(*pid))
        {
            return Err(CoreError::Refused(format!(
                "batch job {id} is still running (process {pid}); recover now would void the rows it is \
                 issuing — wait for it to finish or stop it, then run `hljca recover`"
            )));
        }
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(CoreError::db("begin recover"))?;
        for (id, pid) in &running {
            tx.execute(
                "UPDATE batch_jobs SET status = 'interrupted', finished_at = ?2 WHERE id = ?1",
                params![id, ts(now())],
            )
            .map_err(CoreError::db("mark batch job interrupted"))?;
            audit::append(
                &tx,
                &self.operator,
                "batch.interrupted",
                &format!("batch-{id}"),
                &serde_json::json!({ "pid": pid }),
            )?;
        }
        tx.commit().map_err(CoreError::db("commit recover"))?;
        Ok(running.into_iter().map(|(id, _)| id).collect())
    }

    fn recover_group(
        &mut self,
        module: Option<&Module>,
        secrets: &Secrets,
        issuing: &[u8],
        group: &[CertRecord],
    ) -> Result<Vec<RecoveredRow>> {
        let first = &group[0];
        let report = |r: &CertRecord, action: RecoverAction, reason: &str| RecoveredRow {
            serial: r.serial.clone(),
            cert_type: r.cert_type.clone(),
            role: r.role,
            token_label: r.token_label.clone(),
            token_serial: r.token_serial.clone(),
            key_id: r.key_id.clone(),
            external_id: r.external_id.clone(),
            action,
            reason: reason.to_owned(),
        };
        let all = |action: RecoverAction, reason: &str| -> Vec<RecoveredRow> {
            group.iter().map(|r| report(r, action, reason)).collect()
        };
        if first.token_serial.is_empty() {
            // Issuance from a CSR: nothing is on any token, and the certificate is only handed
            // out after the row is marked issued, so an unrecorded one was never seen.
            let reason =
                "issuance from a CSR interrupted before it was recorded; nothing was handed out";
            self.void_group(group, reason, 0)?;
            return Ok(all(RecoverAction::Voided, reason));
        }
        let Some(module) = module else {
            return Ok(all(
                RecoverAction::Left,
                "no PKCS#11 module could be loaded; rerun `hljca recover` where the token's module is",
            ));
        };
        let present = module
            .tokens()?
            .into_iter()
            .any(|t| t.initialized && t.serial == first.token_serial);
        if !present {
            return Ok(all(
                RecoverAction::Left,
                &format!(
                    "token `{}` (serial {}) is not present; insert it and rerun `hljca recover`",
                    first.token_label, first.token_serial
                ),
            ));
        }
        let session = match module.login(
            &TokenSelector(first.token_serial.clone()),
            secrets.user_pin()?,
        ) {
            Ok(s) => s,
            Err(e) => return Ok(all(RecoverAction::Left, &e.to_string())),
        };
        let mut found = Vec::new();
        let mut why_not: Option<String> = None;
        for r in group {
            match check_row(&session, r, issuing) {
                Ok(f) => found.push(f),
                Err(reason) => {
                    why_not = Some(format!("{} {}: {reason}", r.role.as_str(), r.serial));
                    break;
                }
            }
        }
        if let Some(reason) = why_not {
            // Incomplete: remove every object of the issuance, then void its rows. If the crash
            // comes between the two, the rows stay pending and the next recover voids them.
            let mut destroyed = 0usize;
            for r in group {
                let Some(id) = KeyId::from_hex(&r.key_id) else {
                    continue;
                };
                match session.destroy_by_id(&id) {
                    Ok(n) => destroyed += n,
                    Err(e) => {
                        return Ok(all(
                            RecoverAction::Left,
                            &format!("could not remove the token objects: {e}"),
                        ));
                    }
                }
            }
            let reason = format!("incomplete issuance ({reason}); token objects removed");
            self.void_group(group, &reason, destroyed)?;
            return Ok(all(RecoverAction::Voided, &reason));
        }
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(CoreError::db("begin recover"))?;
        for (r, f) in group.iter().zip(&found) {
            Store::mark_issued_tx(
                &tx,
                &r.serial,
                &f.der,
                f.not_before,
                f.not_after,
                f.seal.as_deref(),
            )?;
            audit::append(
                &tx,
                &self.operator,
                "cert.recover-finish",
                &r.serial,
                &serde_json::json!({
                    "type": r.cert_type, "role": r.role.as_str(), "subject": r.subject,
                    "token_label": r.token_label, "token_serial": r.token_serial,
                    "key_id": r.key_id, "seal": f.seal.is_some(), "external_id": r.external_id,
                }),
            )?;
        }
        tx.commit().map_err(CoreError::db("commit recover"))?;
        for (r, f) in group.iter().zip(&found) {
            write_file(
                &self.home.cert_pem(&r.serial),
                pem_cert(&f.der).as_bytes(),
                0o644,
            )?;
            if let Some(seal) = &f.seal {
                write_file(&self.home.seal_file(&r.serial), seal, 0o644)?;
            }
        }
        Ok(all(
            RecoverAction::Finished,
            "certificate found on the token, verified against the issuing CA",
        ))
    }

    fn void_group(&mut self, group: &[CertRecord], reason: &str, destroyed: usize) -> Result<()> {
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(CoreError::db("begin recover"))?;
        for r in group {
            tx.execute(
                "UPDATE certificates SET status = 'void', updated_at = ?2 WHERE serial = ?1 AND status = 'pending'",
                params![r.serial, ts(now())],
            )
            .map_err(CoreError::db("void certificate"))?;
            audit::append(
                &tx,
                &self.operator,
                "cert.recover-void",
                &r.serial,
                &serde_json::json!({
                    "type": r.cert_type, "role": r.role.as_str(),
                    "token_label": r.token_label, "token_serial": r.token_serial,
                    "key_id": r.key_id, "external_id": r.external_id,
                    "objects_destroyed": destroyed, "reason": reason,
                }),
            )?;
        }
        tx.commit().map_err(CoreError::db("commit recover"))?;
        Ok(())
    }
}

/// True for labels hljca gives the keys it generates: `<type key> identity|seal <name>`.
fn hljca_label(label: &str) -> bool {
    let mut words = label.split(' ');
    let ty = words.next().unwrap_or_default();
    let role = words.next().unwrap_or_default();
    CertType::ALL.iter().any(|t| t.key() == ty) && matches!(role, "identity" | "seal")
}

/// True when `pid` is a live (not zombie) hljca process (Linux `/proc`; elsewhere: false).
pub(super) fn process_alive(pid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("hljca"))
        .unwrap_or(false)
}

/// Checks that the token holds a complete, valid certificate for row `r`.
fn check_row(
    session: &TokenSession<'_>,
    r: &CertRecord,
    issuing: &[u8],
) -> std::result::Result<Found, String> {
    let id =
        KeyId::from_hex(&r.key_id).ok_or_else(|| format!("key id `{}` is not hex", r.key_id))?;
    let der = session
        .certificate(&id)
        .map_err(|_| "no certificate object with its key id on the token".to_owned())?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let (_, ca) = X509Certificate::from_der(issuing)
        .map_err(|e| format!("issuing CA certificate does not parse: {e}"))?;
    let serial = hex::encode(cert.raw_serial());
    if serial != r.serial {
        return Err(format!("certificate on the token has serial {serial}"));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| format!("certificate does not verify against the issuing CA: {e}"))?;
    let point = session
        .public_point(&id)
        .map_err(|e| format!("no public key with its key id: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() != point.as_slice() {
        return Err("certificate's public key is not the token's key".into());
    }
    let seal = if r.role == CertRole::Seal {
        Some(
            session
                .data(&id)
                .map_err(|_| "seal data object missing on the token".to_owned())?,
        )
    } else {
        None
    };
    let to_time = |t: x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| format!("validity out of range: {e}"))
    };
    Ok(Found {
        not_before: to_time(cert.validity().not_before)?,
        not_after: to_time(cert.validity().not_after)?,
        der,
        seal,
    })
}
