//! The last stage and the way back, shared by the engine (single and grouped issuances) and
//! `recover`: commit (rows issued, application issued, renewal superseded with its fee) and
//! void (keys destroyed first, then rows void, application back to paid), each written inside
//! the caller's transaction ([`commit_in`], [`void_in`]) or in one of its own.

use hljca_token::{KeyId, TokenSession};

use super::{IssueOutcome, IssuedCert, SealLocation};
use crate::applications::{AppEventKind, AppId, move_in, record_token};
use crate::ca::pem_cert;
use crate::eligibility::{Holder, holder_of};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::store::{self, CertRole, IssuanceRow, Stage, Tx};
use crate::time_fmt::ts;
use crate::validity::Validity;
use crate::{Ca, audit};

/// A certificate of the issuance, as the commit records it.
#[derive(Debug, Clone)]
pub(super) struct Made {
    pub serial: String,
    pub role: CertRole,
    pub key_id: String,
    pub has_seal: bool,
    /// The DER and validity when the commit records them itself (an issuance that went from
    /// reserved straight to the commit: nothing it signed left the process before).
    pub unrecorded: Option<(Vec<u8>, Validity)>,
}

/// What a commit wrote besides the rows, for its audit rows.
pub(super) struct Committed {
    /// The certificates a renewal superseded.
    pub superseded: Vec<String>,
    /// One audit entry per certificate: its serial and details.
    pub certs: Vec<(String, serde_json::Value)>,
    /// The renewal's audit entry: the old serial and details.
    pub renewal: Option<(String, serde_json::Value)>,
}

/// Commits issuance `iss` (at stage `from`) inside `tx`: the USBKEY bound to its holder, each
/// certificate issued, the stage committed, the API key linked, the application issued, the
/// fee booked or the renewal superseded. The caller writes the audit rows it returns.
pub(super) fn commit_in(
    tx: &Tx<'_>,
    op: &str,
    iss: &IssuanceRow,
    from: Stage,
    made: &[Made],
    holder: Option<&Holder>,
) -> Result<Committed> {
    let label = iss.token_label.clone().unwrap_or_default();
    let serial = iss.token_serial.clone().unwrap_or_default();
    // The USBKEY belongs to this holder from its first issuance on.
    if let Some(h) = holder {
        store::bind_token(tx, &serial, &label, h, op)?;
    }
    let mut certs = Vec::with_capacity(made.len());
    for m in made {
        match &m.unrecorded {
            Some((der, v)) => store::record_issued(tx, &m.serial, der, v.not_before, v.not_after)?,
            None => store::mark_issued(tx, &m.serial)?,
        }
        certs.push((
            m.serial.clone(),
            serde_json::json!({
                "type": iss.cert_type, "role": m.role.as_str(), "issuance": iss.id,
                "token_label": label, "token_serial": serial, "key_id": m.key_id,
                "seal": m.has_seal, "external_id": iss.external_id,
                "source": match iss.kind { store::IssuanceKind::Csr => "csr", store::IssuanceKind::Token => "token" },
            }),
        ));
    }
    store::set_stage(tx, iss.id, from, Stage::Committed)?;
    // An API request's idempotency key gets its serial in the same transaction.
    if let (Some(ext), Some(first)) = (&iss.external_id, made.first()) {
        store::api::link(tx, ext, &first.serial)?;
    }
    if let Some(app) = iss.application_id {
        record_token(tx, AppId(app), &label, &serial)?;
        move_in(
            tx,
            AppId(app),
            AppEventKind::Complete,
            op,
            &serde_json::json!({
                "issuance": iss.id, "token_label": label, "token_serial": serial,
                "certificates": made.iter().map(|m| &m.serial).collect::<Vec<_>>(),
            }),
        )?;
    }
    let mut superseded = Vec::new();
    let mut renewal = None;
    if iss.renewal_of.is_none()
        && iss.application_id.is_none()
        && let Some(first) = made.first()
    {
        // Direct issuance (no application): its fee is booked with it.
        store::direct_order(tx, iss, &first.serial, op)?;
    }
    if let Some(old) = &iss.renewal_of {
        let new_serial = made.first().map(|m| m.serial.as_str()).unwrap_or_default();
        superseded = store::supersede_renewed(tx, iss, old, new_serial, op)?;
        renewal = Some((
            old.clone(),
            serde_json::json!({
                "new": made.iter().map(|m| &m.serial).collect::<Vec<_>>(), "superseded": superseded,
                "fee_fen": iss.fee_fen, "method": iss.pay_method, "issuance": iss.id,
            }),
        ));
    }
    Ok(Committed {
        superseded,
        certs,
        renewal,
    })
}

/// Commits one issuance in a transaction of its own, an audit row `action` per certificate
/// (and `cert.renew` for a renewal); returns the certificates a renewal superseded.
pub(super) fn commit(
    ca: &Ca,
    iss: &IssuanceRow,
    from: Stage,
    made: &[Made],
    action: &str,
) -> Result<Vec<String>> {
    let op = ca.actor.name();
    let holder = holder_of_issuance(ca, iss)?;
    ca.write("commit issuance", |tx| {
        let done = commit_in(tx, op, iss, from, made, holder.as_ref())?;
        for (serial, details) in &done.certs {
            audit::append(tx, op, action, serial, details)?;
        }
        if let Some((old, details)) = &done.renewal {
            audit::append(tx, op, "cert.renew", old, details)?;
        }
        Ok(done.superseded)
    })
}

/// The holder of a token issuance, from its identity row's applicant data.
pub(super) fn holder_of_issuance(ca: &Ca, iss: &IssuanceRow) -> Result<Option<Holder>> {
    if iss.kind != store::IssuanceKind::Token {
        return Ok(None);
    }
    let rows = ca.store.rows_of_issuance(iss.id)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let fields: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&first.applicant_json).map_err(|e| CoreError::Parse {
            what: format!("stored applicant data of {}", first.serial),
            reason: e.to_string(),
        })?;
    Ok(holder_of(ca.policies.get(first.holder_type()?), &fields))
}

/// Voids issuance `iss` at stage `from` inside `tx`: rows void (a signed DER stays on
/// record), application back to paid; returns the audit details.
pub(super) fn void_in(
    tx: &Tx<'_>,
    op: &str,
    iss: &IssuanceRow,
    from: Stage,
    reason: &str,
    destroyed: usize,
) -> Result<serde_json::Value> {
    let rows = store::void_rows(tx, iss.id)?;
    store::set_stage(tx, iss.id, from, Stage::Void)?;
    if let Some(app) = iss.application_id {
        move_in(
            tx,
            AppId(app),
            AppEventKind::Release,
            op,
            &serde_json::json!({ "issuance": iss.id, "reason": reason }),
        )?;
    }
    Ok(serde_json::json!({
        "issuance": iss.id, "stage": from, "rows": rows, "objects_destroyed": destroyed,
        "reason": reason, "token_serial": iss.token_serial,
    }))
}

/// Voids issuance `iss` at stage `from` after its token objects are gone, in a transaction of
/// its own with its audit row.
pub(super) fn void(
    ca: &Ca,
    iss: &IssuanceRow,
    from: Stage,
    reason: &str,
    destroyed: usize,
) -> Result<()> {
    let op = ca.actor.name();
    ca.write("void issuance", |tx| {
        let details = void_in(tx, op, iss, from, reason, destroyed)?;
        audit::append(
            tx,
            op,
            "issuance.void",
            &format!("issuance-{}", iss.id),
            &details,
        )?;
        Ok(())
    })
}

/// In-process failure before the commit: destroy what was made on the token, then void. When
/// the token cannot be cleaned, the issuance stays as it is for `recover`.
pub(super) fn abandon(
    ca: &Ca,
    holder: Option<&TokenSession>,
    id: i64,
    from: Stage,
    key_ids: &[KeyId],
    reason: &str,
) {
    let mut destroyed = 0;
    if let Some(session) = holder {
        for k in key_ids {
            match session.destroy_by_id(k) {
                Ok(n) => destroyed += n,
                Err(e) => {
                    tracing::error!(issuance = id, key = %k, error = %e, "could not clean the token; left for `hljca recover`");
                    return;
                }
            }
        }
    }
    let done = ca
        .store
        .issuance(id)
        .map_err(CoreError::from)
        .and_then(|iss| void(ca, &iss, from, reason, destroyed));
    if let Err(e) = done {
        tracing::error!(issuance = id, error = %e, "could not void the issuance; left for `hljca recover`");
    }
}

/// Writes a certificate (and its seal) beside key `key_id`, skipping objects already there.
pub(super) fn write_objects(
    session: &TokenSession,
    type_key: &str,
    role: CertRole,
    serial: &str,
    key_id: &KeyId,
    der: &[u8],
    seal: Option<&[u8]>,
) -> Result<()> {
    if session.certificate(key_id).is_err() {
        let subject_der = crate::issue::subject_der(der)?;
        let label = format!("{} {} {}", type_key, role.as_str(), serial);
        session.store_certificate(key_id, &label, der, &subject_der)?;
    }
    if let Some(seal) = seal
        && session.data(key_id).is_err()
    {
        session.store_data(key_id, seal)?;
    }
    Ok(())
}

/// The outcome of a committed issuance, with its PEM and seal exports written (conveniences:
/// the database and the token hold the truth).
pub(super) fn outcome(ca: &Ca, issuance: i64) -> Result<IssueOutcome> {
    let rows = ca.store.rows_of_issuance(issuance)?;
    let mut certificates = Vec::new();
    let mut seal = None;
    for c in &rows {
        let der = c.der.as_deref().unwrap_or_default();
        let pem = ca.home.cert_pem(&c.serial);
        write_file(&pem, pem_cert(der).as_bytes(), 0o644)?;
        if let Some(s) = &c.seal {
            let file = ca.home.seal_file(&c.serial);
            write_file(&file, s, 0o644)?;
            seal = Some(SealLocation {
                token_label: c.token_label.clone(),
                object_label: KeyId::from_hex(&c.key_id)
                    .map(|k| k.data_label())
                    .unwrap_or_default(),
                file,
                seal_cert_serial: c.serial.clone(),
            });
        }
        certificates.push(IssuedCert {
            serial: c.serial.clone(),
            cert_type: c.holder_type()?,
            role: c.role,
            pem,
            key_id: c.key_id.clone(),
            subject: c.subject.clone(),
            token_label: c.token_label.clone(),
            token_serial: c.token_serial.clone(),
            not_after: c.not_after.map(ts).unwrap_or_default(),
        });
    }
    Ok(IssueOutcome {
        issuance,
        certificates,
        seal,
        warning: None,
        superseded: Vec::new(),
        removed_objects: 0,
    })
}

/// After a renewal committed: the old certificates' objects leave the token (the new ones are
/// on it and recorded). A failure is logged: the old certificates are superseded regardless.
pub(super) fn remove_renewed(ca: &Ca, session: &TokenSession, old: &str) -> usize {
    let mut removed = 0;
    let Ok(old_rec) = ca.store.cert(old) else {
        return 0;
    };
    let seals = ca.store.seals_of(old).unwrap_or_default();
    for key in std::iter::once(&old_rec.key_id).chain(seals.iter().map(|s| &s.key_id)) {
        if let Some(id) = KeyId::from_hex(key) {
            match session.destroy_by_id(&id) {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "renewal: old token objects not removed")
                }
            }
        }
    }
    if let Err(e) = ca.audit(
        "token.remove-objects",
        &old_rec.token_serial,
        serde_json::json!({ "renewed": old, "objects": removed }),
    ) {
        tracing::warn!(error = %e, "renewal: removal not audited");
    }
    removed
}
