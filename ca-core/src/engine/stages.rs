//! The stages, each written for a group of issuances: one issuance is a group of one, a
//! bulk run of requests a group of many. Reserve and commit are one transaction for the whole
//! group with one audit row (an audit row per certificate for a group of one); the stages
//! that touch a holder's USBKEY (keys, signed, written) are for a single issuance onto a token.

use crate::Rule;
use hljca_token::{KeyId, TokenSession};
use sha2::{Digest, Sha256};

use super::commit::{self, Made};
use super::prepare::{Prepared, key_kind, short};
use super::{Engine, IssueParams, KeySource, failpoint};
use crate::applications::{AppEventKind, AppId, AppState, move_in, state_in};
use crate::error::{CoreError, Result};
use crate::profile::{EeParams, SubjectKey, end_entity, random_serial};
use crate::seal::{SealContent, build_and_sign};
use crate::store::{self, CertRole, IssuanceKind, IssuanceRow, NewIssuance, NewPending, Stage};
use crate::validity::Validity;
use crate::{Ca, audit};

/// One certificate of an issuance as it goes through the stages.
pub(super) struct Planned {
    pub role: CertRole,
    pub serial: String,
    pub serial_bytes: [u8; 16],
    pub key_id: KeyId,
    pub key: Option<SubjectKey>,
    pub der: Option<Vec<u8>>,
    pub seal: Option<Vec<u8>>,
}

/// One issuance on its way: what it was asked and checked to be, its certificates, its row
/// once reserved, the stage it is at, and why it failed when it did.
pub(super) struct Job<'p> {
    pub params: &'p IssueParams,
    pub prep: Prepared,
    pub rows: Vec<Planned>,
    pub iss: Option<IssuanceRow>,
    pub stage: Stage,
    pub validity: Option<Validity>,
    pub failed: Option<CoreError>,
    pub superseded: Vec<String>,
}

impl<'p> Job<'p> {
    /// The job for `params`, its serials drawn and its key ids chosen: the SHA-256 of a
    /// request's key, or random for keys to be made on the token (an identity certificate, and
    /// a seal certificate for a type with a seal).
    pub fn new(params: &'p IssueParams, prep: Prepared) -> Job<'p> {
        let csr = matches!(params.source, KeySource::Csr(_));
        let with_seal = prep.policy.seal.is_some() && !csr;
        let mut rows = Vec::new();
        for role in [CertRole::Identity, CertRole::Seal] {
            if role == CertRole::Seal && !with_seal {
                continue;
            }
            let serial_bytes = random_serial();
            let (key_id, key) = match &params.source {
                KeySource::Csr(c) => (
                    KeyId(Sha256::digest(c.spki_der()).to_vec()),
                    Some(c.subject_key()),
                ),
                KeySource::Token => (KeyId::random(), None),
            };
            rows.push(Planned {
                role,
                serial: hex::encode(serial_bytes),
                serial_bytes,
                key_id,
                key,
                der: None,
                seal: None,
            });
        }
        Job {
            params,
            prep,
            rows,
            iss: None,
            stage: Stage::Reserved,
            validity: None,
            failed: None,
            superseded: Vec::new(),
        }
    }

    /// The issuance id (0 before it is reserved).
    pub fn id(&self) -> i64 {
        self.iss.as_ref().map_or(0, |i| i.id)
    }

    /// The key ids of its certificates.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.rows.iter().map(|r| r.key_id.clone()).collect()
    }

    fn on_token(&self) -> bool {
        matches!(self.params.source, KeySource::Token)
    }

    fn row_of(&self) -> Result<&IssuanceRow> {
        self.iss.as_ref().ok_or_else(|| {
            CoreError::refuse(Rule::Internal, "an issuance stage before its reservation")
        })
    }

    /// The certificates as the commit records them.
    fn made(&self) -> Vec<Made> {
        // Whatever was not durable at a signed stage is recorded by the commit itself.
        let unrecorded = self.stage == Stage::Reserved;
        self.rows
            .iter()
            .map(|r| Made {
                serial: r.serial.clone(),
                role: r.role,
                key_id: r.key_id.to_hex(),
                has_seal: r.seal.is_some(),
                unrecorded: match (unrecorded, &r.der, self.validity) {
                    (true, Some(der), Some(v)) => Some((der.clone(), v)),
                    _ => None,
                },
            })
            .collect()
    }
}

/// `issuances-A-B`: a group's first and last issuance ids.
fn group_name(jobs: &[Job<'_>]) -> String {
    let first = jobs.first().map_or(0, Job::id);
    let last = jobs.last().map_or(0, Job::id);
    format!("issuances-{first}-{last}")
}

/// Stage 1, one transaction for the group: each application claimed `paid → issuing`, each
/// renewed certificate checked, each issuance reserved with its serials and key ids.
pub(super) fn reserve(ca: &Ca, engine: &Engine<'_>, jobs: &mut [Job<'_>]) -> Result<()> {
    let op = ca.actor.name();
    ca.write("reserve issuance", |tx| {
        let mut entries = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            entries.push(reserve_in(tx, engine, op, job)?);
        }
        let written = match (&*jobs, entries.pop()) {
            ([one], Some(details)) => audit::append(
                tx,
                op,
                "issuance.reserve",
                &format!("issuance-{}", one.id()),
                &details,
            ),
            (_, last) => {
                entries.extend(last);
                audit::append(
                    tx,
                    op,
                    "issuance.reserve-bulk",
                    &group_name(jobs),
                    &serde_json::json!({ "lease": engine.lease.id(), "issuances": entries }),
                )
            }
        };
        Ok(written?)
    })
}

fn reserve_in(
    tx: &store::Tx<'_>,
    engine: &Engine<'_>,
    op: &str,
    job: &mut Job<'_>,
) -> Result<serde_json::Value> {
    let (p, prep) = (job.params, &job.prep);
    let csr = !job.on_token();
    if let Some(app) = p.application_id {
        let id = AppId(app);
        let state = state_in(tx, id)?;
        if state != AppState::Paid {
            return Err(CoreError::InProgress(format!(
                "application {id} is {state}, not paid: {}",
                if state == AppState::Issuing {
                    "another `hljca issue` is working on it (or crashed: run `hljca recover`)"
                } else {
                    "only a paid application is issued"
                }
            )));
        }
    }
    if let Some(old) = &p.renewal_of {
        let status = store::status_in(tx, old)?;
        if status != "issued" {
            return Err(CoreError::BadState {
                serial: old.clone(),
                status,
                what: "only an issued certificate can be renewed".into(),
            });
        }
    }
    let type_key = p.cert_type.key();
    let iss = store::insert_issuance(
        tx,
        &NewIssuance {
            lease: engine.lease.id(),
            owner: engine.lease.owner(),
            kind: if csr {
                IssuanceKind::Csr
            } else {
                IssuanceKind::Token
            },
            cert_type: type_key,
            token_label: (!csr).then_some(prep.token_label.as_str()),
            token_serial: (!csr).then_some(prep.token_serial.as_str()),
            application_id: p.application_id,
            renewal_of: p.renewal_of.as_deref(),
            fee: p
                .fee
                .as_ref()
                .map(|f| (f.fen, f.method.as_str(), f.reference.as_deref())),
            external_id: p.external_id.as_deref(),
            operator: op,
        },
    )?;
    let id = iss.id;
    if let Some(app) = p.application_id {
        move_in(
            tx,
            AppId(app),
            AppEventKind::Issue,
            op,
            &serde_json::json!({ "issuance": id, "token_label": prep.token_label, "token_serial": prep.token_serial }),
        )?;
    }
    let identity = job.rows.first().map(|r| r.serial.as_str());
    for r in &job.rows {
        store::insert_pending(
            tx,
            &NewPending {
                serial: &r.serial,
                cert_type: type_key,
                role: r.role,
                identity_serial: identity.filter(|_| r.role == CertRole::Seal),
                subject: &prep.subject_text,
                org_id: prep.org_id.as_deref(),
                applicant_json: &prep.applicant_json,
                token_label: &prep.token_label,
                token_serial: &prep.token_serial,
                key_id: &r.key_id.to_hex(),
                external_id: p.external_id.as_deref(),
                application_id: p.application_id,
                issuance_id: id,
            },
        )?;
    }
    let details = serde_json::json!({
        "issuance": id, "type": type_key, "subject": prep.subject_text,
        "source": if csr { "csr" } else { "token" },
        "token_label": prep.token_label, "token_serial": prep.token_serial,
        "serials": job.rows.iter().map(|r| &r.serial).collect::<Vec<_>>(),
        "key_ids": job.rows.iter().map(|r| r.key_id.to_hex()).collect::<Vec<_>>(),
        "application": p.application_id, "renewal_of": p.renewal_of, "external_id": p.external_id,
        "lease": engine.lease.id(),
    });
    job.iss = Some(iss);
    Ok(details)
}

/// Moves one issuance's stage forward in one transaction with its audit row.
fn step(
    ca: &Ca,
    job: &mut Job<'_>,
    to: Stage,
    details: serde_json::Value,
    f: impl FnOnce(&store::Tx<'_>) -> Result<()>,
) -> Result<()> {
    let (id, from) = (job.id(), job.stage);
    ca.write("issuance stage", |tx| {
        f(tx)?;
        store::set_stage(tx, id, from, to)?;
        audit::append(
            tx,
            ca.actor.name(),
            &format!("issuance.{to}"),
            &format!("issuance-{id}"),
            &details,
        )
    })?;
    job.stage = to;
    failpoint(to.as_str())
}

/// Stage 2 (onto a token): the key pairs, born on the token with the ids already on record.
pub(super) fn keys(ca: &Ca, session: &TokenSession, job: &mut Job<'_>) -> Result<()> {
    let kind = key_kind(job.prep.policy.key_algorithm);
    let type_key = job.params.cert_type.key();
    for r in job.rows.iter_mut() {
        let label = format!(
            "{} {} {}",
            type_key,
            r.role.as_str(),
            short(&job.prep.subject_text)
        );
        let key = session.generate_with_id(kind, &label, &r.key_id)?;
        r.key = Some(SubjectKey {
            bits: key.public.subject_public_key_bits(),
            alg: key.public.rcgen_algorithm(),
        });
    }
    let keys: Vec<(String, Vec<u8>)> = job
        .rows
        .iter()
        .map(|r| {
            let bits = r.key.as_ref().map(|k| k.bits.clone()).unwrap_or_default();
            (r.serial.clone(), bits)
        })
        .collect();
    let details = serde_json::json!({ "algorithm": format!("{:?}", kind) });
    step(ca, job, Stage::Keys, details, |tx| {
        for (serial, bits) in &keys {
            store::record_key(tx, serial, bits)?;
        }
        Ok(())
    })
}

/// What the checker thread is given: which certificate, its DER, the serial and key it must
/// carry.
type ToCheck = ((usize, usize), Vec<u8>, [u8; 16], Vec<u8>);

/// Stage 3 for the group: every certificate signed through the CA session (this thread) while
/// a second thread checks each against the issuing CA (serial, issuer, key, signature), and
/// the seal made. A job that fails is marked; nothing it signed has left the process.
pub(super) fn sign(ca: &Ca, engine: &Engine<'_>, jobs: &mut [Job<'_>]) {
    let auth = engine.authority();
    let check = auth.signed_check();
    let (to_check, inbox) = std::sync::mpsc::channel::<ToCheck>();
    let verdicts = std::thread::scope(|scope| {
        let checker = scope.spawn(move || {
            inbox
                .into_iter()
                .filter_map(|(at, der, serial, bits)| {
                    check.check(&der, &serial, &bits).err().map(|e| (at, e))
                })
                .collect::<Vec<_>>()
        });
        for (j, job) in jobs.iter_mut().enumerate() {
            if job.failed.is_none()
                && let Err(e) = sign_one(ca, engine, job, |r, der, serial, bits| {
                    // A checker gone (it panicked) leaves the certificate unchecked: see below.
                    let _ = to_check.send(((j, r), der.to_vec(), serial, bits.to_vec()));
                })
            {
                job.failed = Some(e);
            }
        }
        drop(to_check);
        checker.join()
    });
    match verdicts {
        Ok(bad) => {
            for ((j, _), e) in bad {
                if let Some(job) = jobs.get_mut(j)
                    && job.failed.is_none()
                {
                    job.failed = Some(e);
                }
            }
        }
        Err(_) => {
            for job in jobs.iter_mut().filter(|j| j.failed.is_none()) {
                job.failed = Some(CoreError::refuse(
                    Rule::Internal,
                    "the signed certificates were not checked (the checker stopped)",
                ));
            }
        }
    }
}

/// Signs the certificates of one job and makes its seal; `checked` is handed each DER.
fn sign_one(
    ca: &Ca,
    engine: &Engine<'_>,
    job: &mut Job<'_>,
    mut checked: impl FnMut(usize, &[u8], [u8; 16], &[u8]),
) -> Result<()> {
    let auth = engine.authority();
    let prep = &job.prep;
    let (days, ca_end) = (prep.policy.validity_days, auth.issuing_not_after());
    let validity = match prep.renewed_not_after {
        // A renewal keeps the days paid for: the new year starts where the old one ends.
        Some(old) => crate::validity::renewal(ca.now(), old, days, ca_end),
        None => crate::validity::end_entity(ca.now(), days, ca_end),
    };
    job.validity = Some(validity);
    let resident_id = prep
        .policy
        .extensions
        .resident_id_field
        .as_deref()
        .and_then(|f| prep.validated.get(f));
    for (i, r) in job.rows.iter_mut().enumerate() {
        let profile = match r.role {
            CertRole::Identity => &prep.policy.identity,
            CertRole::Seal => match &prep.policy.seal {
                Some(sp) => &sp.cert,
                None => &prep.policy.identity,
            },
            other => {
                return Err(CoreError::refuse(
                    Rule::Internal,
                    format!(
                        "the issuance engine makes holder certificates, not {} certificates",
                        other.as_str()
                    ),
                ));
            }
        };
        let key = r.key.as_ref().ok_or_else(|| {
            CoreError::refuse(Rule::Internal, format!("no subject key for {}", r.serial))
        })?;
        let params = end_entity(
            &ca.config,
            prep.dn.clone(),
            &EeParams {
                serial: r.serial_bytes,
                profile,
                validity,
                org_id: prep.org_id.as_deref(),
                resident_id,
            },
        )?;
        let what = format!("{} certificate {}", r.role.as_str(), r.serial);
        let der = super::sign_with(&params, key, auth.issuer(), what)?;
        checked(i, &der, r.serial_bytes, &key.bits);
        r.der = Some(der);
    }
    if let (Some(sp), Some(pic)) = (&prep.policy.seal, &prep.picture)
        && let Some(seal_row) = job.rows.iter_mut().find(|r| r.role == CertRole::Seal)
    {
        let name = prep.validated.get(&sp.name_field).unwrap_or_default();
        let es_id = format!("HLJCA-{}", seal_row.serial);
        let seal = build_and_sign(
            &SealContent {
                vendor_id: "HLJCA",
                es_id: &es_id,
                seal_type: sp.seal_type.code(),
                name,
                cert_list: vec![seal_row.der.clone().unwrap_or_default()],
                create_date: validity.not_before,
                valid_start: validity.not_before,
                valid_end: validity.not_after,
                picture: pic,
            },
            auth.seal_maker_der(),
            auth.seal_signer(),
        )?;
        seal_row.seal = Some(seal);
    }
    Ok(())
}

/// The signed stage (onto a token): every DER and the seal on record before any goes onto
/// the token.
pub(super) fn record_signed(ca: &Ca, job: &mut Job<'_>) -> Result<()> {
    let Some(validity) = job.validity else {
        return Err(CoreError::refuse(
            Rule::Internal,
            "the signed stage before signing",
        ));
    };
    let signed: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = job
        .rows
        .iter()
        .map(|r| {
            let der = r.der.clone().unwrap_or_default();
            (r.serial.clone(), der, r.seal.clone())
        })
        .collect();
    let details = serde_json::json!({
        "serials": signed.iter().map(|s| &s.0).collect::<Vec<_>>(),
        "not_before": crate::time_fmt::ts(validity.not_before),
        "not_after": crate::time_fmt::ts(validity.not_after),
        "clamped_to_issuing_ca": validity.clamped,
    });
    step(ca, job, Stage::Signed, details, |tx| {
        for (serial, der, seal) in &signed {
            let (nb, na) = (validity.not_before, validity.not_after);
            store::record_signed(tx, serial, der, nb, na, seal.as_deref())?;
        }
        Ok(())
    })
}

/// Stage 4 (onto a token): the certificates and the seal written beside their keys.
pub(super) fn write(ca: &Ca, session: &TokenSession, job: &mut Job<'_>) -> Result<()> {
    let type_key = job.params.cert_type.key();
    for (i, r) in job.rows.iter().enumerate() {
        if i > 0 {
            // Between two objects: a token that fails halfway through the writes.
            failpoint("writing")?;
        }
        let der = r.der.as_deref().unwrap_or_default();
        commit::write_objects(
            session,
            type_key,
            r.role,
            &r.serial,
            &r.key_id,
            der,
            r.seal.as_deref(),
        )?;
    }
    let details = serde_json::json!({ "token_serial": job.prep.token_serial });
    step(ca, job, Stage::Written, details, |_| Ok(()))
}

/// Stage 5, one transaction for the group (shared with `recover` through [`commit::commit_in`]):
/// each job that was signed committed, each that failed voided. A group of one writes an audit
/// row `action` per certificate; a larger group one `cert.issue-bulk` row.
pub(super) fn commit(ca: &Ca, jobs: &mut [Job<'_>], action: &str) -> Result<()> {
    let op = ca.actor.name();
    let mut holders = Vec::with_capacity(jobs.len());
    for job in jobs.iter() {
        holders.push(match (&job.failed, job.row_of()?.kind) {
            (None, IssuanceKind::Token) => commit::holder_of_issuance(ca, job.row_of()?)?,
            _ => None,
        });
    }
    let single = jobs.len() == 1;
    let done = ca.write("commit issuance", |tx| {
        let (mut issued, mut voided, mut stages) = (Vec::new(), Vec::new(), Vec::new());
        let mut renewals = Vec::new();
        for (job, holder) in jobs.iter().zip(&holders) {
            let iss = job.row_of()?;
            match &job.failed {
                None => {
                    let done =
                        commit::commit_in(tx, op, iss, job.stage, &job.made(), holder.as_ref())?;
                    renewals.extend(done.renewal);
                    issued.extend(done.certs);
                    stages.push((Stage::Committed, done.superseded));
                }
                Some(why) => {
                    let reason = why.to_string();
                    voided.push(commit::void_in(tx, op, iss, job.stage, &reason, 0)?);
                    stages.push((Stage::Void, Vec::new()));
                }
            }
        }
        if single && voided.is_empty() {
            for (serial, details) in &issued {
                audit::append(tx, op, action, serial, details)?;
            }
        } else {
            let issued: Vec<_> = issued
                .into_iter()
                .map(|(serial, mut d)| {
                    d["serial"] = serde_json::Value::String(serial);
                    d
                })
                .collect();
            audit::append(
                tx,
                op,
                "cert.issue-bulk",
                &group_name(jobs),
                &serde_json::json!({ "issued": issued, "voided": voided }),
            )?;
        }
        for (old, details) in &renewals {
            audit::append(tx, op, "cert.renew", old, details)?;
        }
        Ok::<_, CoreError>(stages)
    })?;
    for (job, (stage, superseded)) in jobs.iter_mut().zip(done) {
        job.stage = stage;
        job.superseded = superseded;
    }
    Ok(())
}
