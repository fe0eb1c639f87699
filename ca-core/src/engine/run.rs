//! The stages of one issuance, in order (see the table in `mod.rs`).

use crate::Rule;
use hljca_policies::{KeyAlgorithm, Policy, ValidatedApplicant};
use hljca_token::{KeyId, KeyKind, TokenSession};
use sha2::{Digest, Sha256};

use super::commit::{self, Made};
use super::{Engine, IssueOutcome, IssueParams, KeySource, failpoint, refuse_ca_token};
use crate::applications::{AppEventKind, AppId, AppState, move_in, state_in};
use crate::csr::CSR_TOKEN_LABEL;
use crate::eligibility::{Eligible, Request, Step};
use crate::error::{CoreError, Result};
use crate::profile::{EeParams, SubjectKey, end_entity, random_serial, subject};
use crate::seal::{SealContent, SealPicture, build_and_sign};
use crate::store::{self, CertRole, IssuanceKind, NewIssuance, NewPending, Stage};
use crate::{Ca, audit};

/// Everything checked before the first write.
pub(super) struct Prepared {
    pub policy: Policy,
    pub validated: ValidatedApplicant,
    pub org_id: Option<String>,
    renewed_not_after: Option<time::OffsetDateTime>,
    picture: Option<SealPicture>,
    pub dn: rcgen::DistinguishedName,
    pub subject_text: String,
    pub applicant_json: String,
    pub token_label: String,
    token_serial: String,
}

/// One certificate of the issuance as it goes through the stages.
pub(super) struct Planned {
    pub role: CertRole,
    pub serial: String,
    pub serial_bytes: [u8; 16],
    pub key_id: KeyId,
    pub key: Option<SubjectKey>,
    pub der: Option<Vec<u8>>,
    pub seal: Option<Vec<u8>>,
}

/// The issuance as reserved.
pub(super) struct Plan {
    pub id: i64,
    pub stage: Stage,
    pub rows: Vec<Planned>,
}

pub(super) fn key_kind(alg: KeyAlgorithm) -> KeyKind {
    match alg {
        KeyAlgorithm::EcP256 => KeyKind::EcP256,
        KeyAlgorithm::Rsa2048 => KeyKind::Rsa2048,
    }
}

pub(super) fn run(
    ca: &mut Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    p: &IssueParams,
) -> Result<IssueOutcome> {
    let prep = prepare(ca, engine, holder, p)?;
    let mut plan = reserve(ca, engine, p, &prep)?;
    let advanced =
        failpoint("reserved").and_then(|()| advance(ca, engine, holder, p, &prep, &mut plan));
    match advanced {
        Ok(outcome) => Ok(outcome),
        Err(e) if plan.stage == Stage::Committed => Err(e),
        Err(e) => {
            commit::abandon(
                ca,
                holder,
                plan.id,
                plan.stage,
                &plan
                    .rows
                    .iter()
                    .map(|r| r.key_id.clone())
                    .collect::<Vec<_>>(),
                &e.to_string(),
            );
            Err(e)
        }
    }
}

pub(super) fn prepare(
    ca: &Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    p: &IssueParams,
) -> Result<Prepared> {
    let (token_label, token_serial) = match (&p.source, holder) {
        (KeySource::Token, Some(session)) => {
            let info = session.info();
            refuse_ca_token(ca, engine.ca_token.as_ref(), info, &info.label)?;
            (info.label.clone(), info.serial.clone())
        }
        (KeySource::Token, None) => {
            return Err(CoreError::refuse(
                Rule::Internal,
                "issuance onto a token needs the holder's token session",
            ));
        }
        (KeySource::Csr(csr), _) => {
            if csr.cert_type() != p.cert_type {
                return Err(CoreError::refuse_on(
                    Rule::Csr,
                    "csr",
                    format!(
                        "the CSR was checked for {}, not {}",
                        csr.cert_type(),
                        p.cert_type
                    ),
                ));
            }
            (CSR_TOKEN_LABEL.to_owned(), String::new())
        }
    };
    let application = p
        .application_id
        .map(|id| ca.application(AppId(id)))
        .transpose()?;
    let Eligible {
        policy,
        validated,
        org_id,
        renewed,
        ..
    } = ca.eligible(
        Step::Issue,
        &Request {
            cert_type: p.cert_type,
            applicant: &p.applicant,
            renewal_of: p.renewal_of.as_deref(),
            application: application.as_ref(),
            token_serial: (!token_serial.is_empty()).then_some(token_serial.as_str()),
        },
    )?;
    if let Some(old) = &renewed
        && old.token_serial != token_serial
    {
        return Err(CoreError::refuse_on(
            Rule::RenewalSame,
            "token",
            format!(
                "certificate {} is renewed onto the same USBKEY `{}` (serial {}) that holds it, not `{token_label}`",
                old.serial, old.token_label, old.token_serial
            ),
        ));
    }
    let picture = match (&policy.seal, &p.seal_image, &p.source) {
        (Some(_), _, KeySource::Csr(_)) => None,
        (Some(sp), Some(img), _) => Some(SealPicture::from_image(
            img.clone(),
            sp.width_mm,
            sp.height_mm,
        )?),
        (Some(sp), None, _) => {
            let name = validated.get(&sp.name_field).unwrap_or_default();
            // A relative [seal] font is relative to the home, like the other configured paths.
            let cfg = &ca.config().seal;
            let font = cfg.font.as_ref().map(|f| ca.home().dir().join(f));
            Some(SealPicture::generate(
                name,
                sp.width_mm,
                sp.height_mm,
                cfg.picture.as_deref(),
                font.as_deref(),
            )?)
        }
        (None, Some(_), _) => {
            return Err(CoreError::refuse_on(
                Rule::SealImage,
                "seal-image",
                format!(
                    "--seal-image given but a {} certificate has no electronic seal",
                    p.cert_type
                ),
            ));
        }
        (None, None, _) => None,
    };
    let (dn, subject_text) = subject(&policy, &validated)?;
    let applicant_json = Ca::applicant_json(&validated)?;
    Ok(Prepared {
        policy,
        validated,
        org_id,
        renewed_not_after: renewed.and_then(|r| r.not_after),
        picture,
        dn,
        subject_text,
        applicant_json,
        token_label,
        token_serial,
    })
}

/// Stage 1: one transaction claims the application, checks the renewed certificate, and
/// reserves the issuance with its serials and key ids.
fn reserve(ca: &Ca, engine: &Engine<'_>, p: &IssueParams, prep: &Prepared) -> Result<Plan> {
    let csr = matches!(p.source, KeySource::Csr(_));
    let with_seal = prep.policy.seal.is_some() && !csr;
    let mut rows = Vec::new();
    for role in [CertRole::Identity, CertRole::Seal] {
        if role == CertRole::Seal && !with_seal {
            continue;
        }
        let serial_bytes = random_serial();
        let key_id = match &p.source {
            KeySource::Csr(c) => KeyId(Sha256::digest(c.spki_der()).to_vec()),
            KeySource::Token => KeyId::random(),
        };
        rows.push(Planned {
            role,
            serial: hex::encode(serial_bytes),
            serial_bytes,
            key_id,
            key: match &p.source {
                KeySource::Csr(c) => Some(c.subject_key()),
                KeySource::Token => None,
            },
            der: None,
            seal: None,
        });
    }
    let op = ca.actor.name();
    let type_key = p.cert_type.key();
    let id = ca.write("reserve issuance", |tx| {
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
        let id = store::insert_issuance(
            tx,
            &NewIssuance {
                lease: engine.lease.id(),
                owner: engine.lease.owner(),
                kind: if csr { IssuanceKind::Csr } else { IssuanceKind::Token },
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
        if let Some(app) = p.application_id {
            move_in(
                tx,
                AppId(app),
                AppEventKind::Issue,
                op,
                &serde_json::json!({ "issuance": id, "token_label": prep.token_label, "token_serial": prep.token_serial }),
            )?;
        }
        for r in &rows {
            let identity_serial = (r.role == CertRole::Seal).then(|| rows[0].serial.as_str());
            store::insert_pending(
                tx,
                &NewPending {
                    serial: &r.serial,
                    cert_type: type_key,
                    role: r.role,
                    identity_serial,
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
        audit::append(
            tx,
            op,
            "issuance.reserve",
            &format!("issuance-{id}"),
            &serde_json::json!({
                "type": type_key, "subject": prep.subject_text, "source": if csr { "csr" } else { "token" },
                "token_label": prep.token_label, "token_serial": prep.token_serial,
                "serials": rows.iter().map(|r| &r.serial).collect::<Vec<_>>(),
                "key_ids": rows.iter().map(|r| r.key_id.to_hex()).collect::<Vec<_>>(),
                "application": p.application_id, "renewal_of": p.renewal_of, "external_id": p.external_id,
                "lease": engine.lease.id(),
            }),
        )?;
        Ok(id)
    })?;
    Ok(Plan {
        id,
        stage: Stage::Reserved,
        rows,
    })
}

/// Moves the plan's stage forward in one transaction with its audit row.
fn step(
    ca: &Ca,
    plan: &mut Plan,
    to: Stage,
    details: serde_json::Value,
    f: impl FnOnce(&crate::store::Tx<'_>) -> Result<()>,
) -> Result<()> {
    let (id, from) = (plan.id, plan.stage);
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
    plan.stage = to;
    failpoint(to.as_str())
}

fn advance(
    ca: &mut Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    p: &IssueParams,
    prep: &Prepared,
    plan: &mut Plan,
) -> Result<IssueOutcome> {
    let type_key = p.cert_type.key();
    // Stage 2: the key pairs, born on the token with the ids already on record.
    if let (KeySource::Token, Some(session)) = (&p.source, holder) {
        let kind = key_kind(prep.policy.key_algorithm);
        for r in plan.rows.iter_mut() {
            let label = format!(
                "{} {} {}",
                type_key,
                r.role.as_str(),
                short(&prep.subject_text)
            );
            let key = session.generate_with_id(kind, &label, &r.key_id)?;
            r.key = Some(SubjectKey {
                bits: key.public.subject_public_key_bits(),
                alg: key.public.rcgen_algorithm(),
            });
        }
        let keys: Vec<(String, Vec<u8>)> = plan
            .rows
            .iter()
            .map(|r| {
                (
                    r.serial.clone(),
                    r.key.as_ref().map(|k| k.bits.clone()).unwrap_or_default(),
                )
            })
            .collect();
        step(
            ca,
            plan,
            Stage::Keys,
            serde_json::json!({ "algorithm": format!("{:?}", kind) }),
            |tx| {
                for (serial, bits) in &keys {
                    store::record_key(tx, serial, bits)?;
                }
                Ok(())
            },
        )?;
    }
    // Stage 3: sign, check each certificate against the issuing CA, make the seal; the DER is
    // on record before it goes anywhere.
    let auth = engine.authority();
    let (days, ca_end) = (prep.policy.validity_days, auth.issuing_not_after());
    let validity = match prep.renewed_not_after {
        // A renewal keeps the days paid for: the new year starts where the old one ends.
        Some(old) => crate::validity::renewal(ca.now(), old, days, ca_end),
        None => crate::validity::end_entity(ca.now(), days, ca_end),
    };
    let resident_id = prep
        .policy
        .extensions
        .resident_id_field
        .as_deref()
        .and_then(|f| prep.validated.get(f));
    for r in plan.rows.iter_mut() {
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
        let key = r.key.clone().ok_or_else(|| {
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
        r.der = Some(auth.sign(&params, &key, what)?);
    }
    if let (Some(sp), Some(pic)) = (&prep.policy.seal, &prep.picture)
        && let Some(seal_row) = plan.rows.iter_mut().find(|r| r.role == CertRole::Seal)
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
    let signed: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = plan
        .rows
        .iter()
        .map(|r| {
            (
                r.serial.clone(),
                r.der.clone().unwrap_or_default(),
                r.seal.clone(),
            )
        })
        .collect();
    step(
        ca,
        plan,
        Stage::Signed,
        serde_json::json!({
            "serials": signed.iter().map(|s| &s.0).collect::<Vec<_>>(),
            "not_before": crate::time_fmt::ts(validity.not_before),
            "not_after": crate::time_fmt::ts(validity.not_after),
            "clamped_to_issuing_ca": validity.clamped,
        }),
        |tx| {
            for (serial, der, seal) in &signed {
                store::record_signed(
                    tx,
                    serial,
                    der,
                    validity.not_before,
                    validity.not_after,
                    seal.as_deref(),
                )?;
            }
            Ok(())
        },
    )?;
    // Stage 4: onto the token.
    if let (KeySource::Token, Some(session)) = (&p.source, holder) {
        for (i, r) in plan.rows.iter().enumerate() {
            if i > 0 {
                // Between two objects: a token that fails halfway through the writes.
                failpoint("writing")?;
            }
            commit::write_objects(
                session,
                type_key,
                r.role,
                &r.serial,
                &r.key_id,
                r.der.as_deref().unwrap_or_default(),
                r.seal.as_deref(),
            )?;
        }
        step(
            ca,
            plan,
            Stage::Written,
            serde_json::json!({ "token_serial": prep.token_serial }),
            |_| Ok(()),
        )?;
    }
    // Stage 5: the commit, shared with `recover`.
    let iss = ca.store.issuance(plan.id)?;
    let made: Vec<Made> = plan
        .rows
        .iter()
        .map(|r| Made {
            serial: r.serial.clone(),
            role: r.role,
            key_id: r.key_id.to_hex(),
            has_seal: r.seal.is_some(),
        })
        .collect();
    let superseded = commit::commit(ca, &iss, plan.stage, &made, "cert.issue")?;
    plan.stage = Stage::Committed;
    failpoint("committed")?;
    let mut outcome = commit::outcome(ca, plan.id)?;
    outcome.superseded = superseded;
    if validity.clamped {
        outcome.warning = Some(format!(
            "the {} days of the {} policy would outlive the issuing CA: notAfter cut to {}",
            prep.policy.validity_days,
            p.cert_type,
            crate::time_fmt::ts(validity.not_after)
        ));
    }
    if let (Some(old), Some(session)) = (&p.renewal_of, holder) {
        outcome.removed_objects = commit::remove_renewed(ca, session, old);
    }
    Ok(outcome)
}

fn short(s: &str) -> String {
    s.rsplit("CN=")
        .next()
        .unwrap_or(s)
        .chars()
        .take(24)
        .collect()
}
