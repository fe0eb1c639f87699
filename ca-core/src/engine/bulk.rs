//! Bulk issuance from PKCS#10 requests (batch rows with a `csr`): many certificates per
//! transaction, under the one CA login and lease of the [`Engine`].
//!
//! A group goes through two transactions. **Reserve**: an issuance row (kind csr, stage
//! reserved, its fee) and a pending certificate row per request, one `issuance.reserve-bulk`
//! audit row listing them. **Commit**, after every certificate is signed and checked against
//! the issuing CA: each DER recorded, its row issued, its issuance committed and its fee
//! booked, one `cert.issue-bulk` audit row listing the serials. The DER and the issued status
//! become durable together, so a crash leaves a group either reserved (`recover` voids it:
//! nothing it signed left the process) or committed; each transaction binds its changed rows
//! with one `state.bind` row, as every write does.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::run::{Prepared, prepare};
use super::{Engine, IssueParams, IssuedCert, KeySource, failpoint};
use crate::ca::pem_cert;
use crate::csr::{CSR_TOKEN_LABEL, CheckedCsr};
use crate::error::Result;
use crate::profile::{EeParams, end_entity, random_serial};
use crate::store::{self, CertRole, IssuanceKind, IssuanceRow, NewIssuance, NewPending, Stage};
use crate::time_fmt::ts;
use crate::validity::Validity;
use crate::{Ca, audit};

/// What became of one request of a bulk group: its certificate, or why it was not issued.
pub type BulkOutcome = std::result::Result<IssuedCert, String>;

/// One request of the group on its way through.
struct Item<'p> {
    index: usize,
    params: &'p IssueParams,
    csr: &'p CheckedCsr,
    prep: Prepared,
    serial_bytes: [u8; 16],
    serial: String,
    key_id: String,
    issuance: i64,
    signed: Option<(Vec<u8>, Validity)>,
    failed: Option<String>,
}

impl Engine<'_> {
    /// Issues a group of CSR requests (every `items[i].source` a [`KeySource::Csr`]) in two
    /// transactions; returns one outcome per item, in order. An `Err` is a failure of the group
    /// as a whole (the database); its reserved issuances are then left for `recover`.
    pub fn issue_csr_bulk(&self, ca: &Ca, items: &[IssueParams]) -> Result<Vec<BulkOutcome>> {
        let mut out: Vec<Option<BulkOutcome>> = items.iter().map(|_| None).collect();
        let mut live = Vec::with_capacity(items.len());
        for (index, params) in items.iter().enumerate() {
            let KeySource::Csr(csr) = &params.source else {
                out[index] = Some(Err("bulk issuance takes CSR requests only".into()));
                continue;
            };
            match prepare(ca, self, None, params) {
                Ok(prep) => {
                    let serial_bytes = random_serial();
                    live.push(Item {
                        index,
                        params,
                        csr,
                        prep,
                        serial_bytes,
                        serial: hex::encode(serial_bytes),
                        key_id: hex::encode(Sha256::digest(csr.spki_der())),
                        issuance: 0,
                        signed: None,
                        failed: None,
                    });
                }
                Err(e) => out[index] = Some(Err(e.to_string())),
            }
        }
        if !live.is_empty() {
            self.reserve_bulk(ca, &mut live)?;
            failpoint("bulk-reserved")?;
            self.sign_bulk(ca, &mut live);
            self.commit_bulk(ca, &live)?;
            failpoint("bulk-committed")?;
        }
        for it in live {
            out[it.index] = Some(match (it.failed, it.signed) {
                (None, Some((der, validity))) => export(self, ca, &it.serial, &der)
                    .map(|pem| IssuedCert {
                        serial: it.serial,
                        cert_type: it.params.cert_type,
                        role: CertRole::Identity,
                        pem,
                        key_id: it.key_id,
                        subject: it.prep.subject_text,
                        token_label: CSR_TOKEN_LABEL.into(),
                        token_serial: String::new(),
                        not_after: ts(validity.not_after),
                    })
                    .map_err(|e| e.to_string()),
                (Some(why), _) => Err(why),
                (None, None) => Err("not signed".into()),
            });
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err("not attempted".into())))
            .collect())
    }

    /// Transaction 1: an issuance and a pending row per request, one audit row.
    fn reserve_bulk(&self, ca: &Ca, live: &mut [Item<'_>]) -> Result<()> {
        let op = ca.actor.name();
        Ok(ca.write("reserve bulk issuance", |tx| {
            for it in live.iter_mut() {
                let p = it.params;
                let type_key = p.cert_type.key();
                it.issuance = store::insert_issuance(
                    tx,
                    &NewIssuance {
                        lease: self.lease.id(),
                        owner: self.lease.owner(),
                        kind: IssuanceKind::Csr,
                        cert_type: type_key,
                        token_label: None,
                        token_serial: None,
                        application_id: None,
                        renewal_of: None,
                        fee: p
                            .fee
                            .as_ref()
                            .map(|f| (f.fen, f.method.as_str(), f.reference.as_deref())),
                        external_id: p.external_id.as_deref(),
                        operator: op,
                    },
                )?;
                store::insert_pending(
                    tx,
                    &NewPending {
                        serial: &it.serial,
                        cert_type: type_key,
                        role: CertRole::Identity,
                        identity_serial: None,
                        subject: &it.prep.subject_text,
                        org_id: it.prep.org_id.as_deref(),
                        applicant_json: &it.prep.applicant_json,
                        token_label: &it.prep.token_label,
                        token_serial: "",
                        key_id: &it.key_id,
                        external_id: p.external_id.as_deref(),
                        application_id: None,
                        issuance_id: it.issuance,
                    },
                )?;
            }
            audit::append(
                tx,
                op,
                "issuance.reserve-bulk",
                &group_name(live),
                &serde_json::json!({
                    "source": "csr", "lease": self.lease.id(),
                    "issuances": live.iter().map(|it| serde_json::json!({
                        "issuance": it.issuance, "serial": it.serial, "type": it.params.cert_type.key(),
                        "key_id": it.key_id, "external_id": it.params.external_id,
                    })).collect::<Vec<_>>(),
                }),
            )
        })?)
    }

    /// Signs each reserved request through the CA session (this thread) while a second thread
    /// checks each certificate against the issuing CA; a request that fails is marked (its
    /// issuance is voided by the commit).
    fn sign_bulk(&self, ca: &Ca, live: &mut [Item<'_>]) {
        let auth = self.authority();
        let check = auth.signed_check();
        let wanted: Vec<([u8; 16], Vec<u8>)> = live
            .iter()
            .map(|it| (it.serial_bytes, it.csr.subject_key().bits))
            .collect();
        let (to_check, inbox) = std::sync::mpsc::channel::<(usize, Vec<u8>)>();
        let checked = std::thread::scope(|scope| {
            let checker = scope.spawn(move || {
                inbox
                    .into_iter()
                    .map(|(i, der)| {
                        let (serial, bits) = &wanted[i];
                        (
                            i,
                            check.check(&der, serial, bits).map_err(|e| e.to_string()),
                        )
                    })
                    .collect::<Vec<_>>()
            });
            for (i, it) in live.iter_mut().enumerate() {
                let policy = &it.prep.policy;
                let validity = crate::validity::end_entity(
                    ca.now(),
                    policy.validity_days,
                    auth.issuing_not_after(),
                );
                let resident_id = policy
                    .extensions
                    .resident_id_field
                    .as_deref()
                    .and_then(|f| it.prep.validated.get(f));
                let key = it.csr.subject_key();
                let signed = end_entity(
                    &ca.config,
                    it.prep.dn.clone(),
                    &EeParams {
                        serial: it.serial_bytes,
                        profile: &policy.identity,
                        validity,
                        org_id: it.prep.org_id.as_deref(),
                        resident_id,
                    },
                )
                .and_then(|params| {
                    // Checked on the checker thread, not here: signing stays on this one.
                    super::sign_with(
                        &params,
                        &key,
                        auth.issuer(),
                        format!("identity certificate {}", it.serial),
                    )
                });
                match signed {
                    Ok(der) => {
                        // A checker gone (it panicked) leaves the certificate unchecked: failed.
                        let _ = to_check.send((i, der.clone()));
                        it.signed = Some((der, validity));
                    }
                    Err(e) => it.failed = Some(e.to_string()),
                }
            }
            drop(to_check);
            checker.join()
        });
        let mut verdict: Vec<Option<std::result::Result<(), String>>> =
            live.iter().map(|_| None).collect();
        if let Ok(list) = checked {
            for (i, r) in list {
                verdict[i] = Some(r);
            }
        }
        for (it, v) in live.iter_mut().zip(verdict) {
            if it.failed.is_none() {
                match v {
                    Some(Ok(())) => {}
                    Some(Err(why)) => it.failed = Some(why),
                    None => it.failed = Some("the signed certificate was not checked".into()),
                }
            }
        }
    }

    /// Transaction 2: the DER of every signed request recorded and issued, its issuance
    /// committed and its fee booked; the others voided; one audit row.
    fn commit_bulk(&self, ca: &Ca, live: &[Item<'_>]) -> Result<()> {
        let op = ca.actor.name();
        Ok(ca.write("commit bulk issuance", |tx| {
            let mut issued = Vec::new();
            let mut voided = Vec::new();
            for it in live {
                match (&it.signed, &it.failed) {
                    (Some((der, v)), None) => {
                        store::record_issued(tx, &it.serial, der, v.not_before, v.not_after)?;
                        store::set_stage(tx, it.issuance, Stage::Reserved, Stage::Committed)?;
                        store::direct_order(tx, &issuance_row(self, ca, it), &it.serial, op)?;
                        issued.push(serde_json::json!({
                            "serial": it.serial, "issuance": it.issuance, "type": it.params.cert_type.key(),
                            "key_id": it.key_id, "external_id": it.params.external_id,
                            "not_after": ts(v.not_after),
                        }));
                    }
                    (_, why) => {
                        store::void_rows(tx, it.issuance)?;
                        store::set_stage(tx, it.issuance, Stage::Reserved, Stage::Void)?;
                        voided.push(serde_json::json!({
                            "serial": it.serial, "issuance": it.issuance, "reason": why,
                        }));
                    }
                }
            }
            audit::append(
                tx,
                op,
                "cert.issue-bulk",
                &group_name(live),
                &serde_json::json!({
                    "source": "csr", "token_label": CSR_TOKEN_LABEL,
                    "issued": issued, "voided": voided,
                }),
            )
        })?)
    }
}

/// `issuances-A-B`: the group's first and last issuance ids.
fn group_name(live: &[Item<'_>]) -> String {
    let first = live.first().map_or(0, |i| i.issuance);
    let last = live.last().map_or(0, |i| i.issuance);
    format!("issuances-{first}-{last}")
}

/// The issuance row of `it` as reserved (for booking its fee).
fn issuance_row(engine: &Engine<'_>, ca: &Ca, it: &Item<'_>) -> IssuanceRow {
    let fee = it.params.fee.as_ref();
    IssuanceRow {
        id: it.issuance,
        lease: engine.lease.id().to_owned(),
        owner: engine.lease.owner().to_owned(),
        stage: Stage::Reserved,
        kind: IssuanceKind::Csr,
        cert_type: it.params.cert_type.key().to_owned(),
        token_label: None,
        token_serial: None,
        application_id: None,
        renewal_of: None,
        fee_fen: fee.map(|f| f.fen as i64),
        pay_method: fee.map(|f| f.method.clone()),
        pay_reference: fee.and_then(|f| f.reference.clone()),
        external_id: it.params.external_id.clone(),
        operator: ca.actor.name().to_owned(),
    }
}

/// Writes the `certs/<serial>.pem` copies of committed certificates on threads of their own
/// (conveniences: the database holds the DER, durable already), renamed into place and not
/// synced one by one. Dropping it waits for the files. Several threads: creating a file costs
/// an inode allocation, which on ext4 can scan past recently deleted inodes for a long while,
/// mostly in the kernel; more than one allocation in flight hides that wait.
#[derive(Debug, Default)]
pub(super) struct Exports {
    worker: std::cell::OnceCell<ExportWorkers>,
}

/// How many threads write PEM copies.
const EXPORT_THREADS: usize = 3;

/// The queue of the export threads and the threads.
type ExportWorkers = (
    std::sync::mpsc::Sender<(PathBuf, String)>,
    Vec<std::thread::JoinHandle<()>>,
);

impl Exports {
    /// Queues `pem` for `path`.
    fn send(&self, path: PathBuf, pem: String) {
        let (tx, _) = self.worker.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<(PathBuf, String)>();
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            let handles = (0..EXPORT_THREADS)
                .map(|_| {
                    let rx = std::sync::Arc::clone(&rx);
                    std::thread::spawn(move || {
                        loop {
                            // The lock is held only to take the next file, not to write it.
                            let next = match rx.lock() {
                                Ok(q) => q.recv(),
                                Err(_) => return,
                            };
                            let Ok((path, pem)) = next else { return };
                            if let Err(e) = write_export(&path, &pem) {
                                tracing::warn!(file = %path.display(), error = %e, "PEM copy not written; `hljca cert export` gives it");
                            }
                        }
                    })
                })
                .collect();
            (tx, handles)
        });
        let _ = tx.send((path, pem));
    }
}

impl Drop for Exports {
    fn drop(&mut self) {
        if let Some((tx, handles)) = self.worker.take() {
            drop(tx);
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

fn write_export(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per thread: two threads never write the same serial, but keep the names apart.
    let tmp = path.with_extension(format!(
        "tmp{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, pem)?;
    std::fs::rename(&tmp, path)
}

/// The path of `certs/<serial>.pem`, its copy queued.
fn export(engine: &Engine<'_>, ca: &Ca, serial: &str, der: &[u8]) -> Result<PathBuf> {
    let path = ca.home.cert_pem(serial);
    engine.exports.send(path.clone(), pem_cert(der));
    Ok(path)
}
