//! The order of the stages (see the table in `mod.rs`): one issuance (onto a token or from a
//! request) and a group of requests go through the same stages of `stages.rs`; a group is
//! reserved and committed in one transaction each.

use super::commit;
use super::exports::export;
use super::prepare::prepare;
use super::stages::{self, Job};
use super::{Engine, IssueOutcome, IssueParams, IssuedCert, KeySource, failpoint};
use crate::Ca;
use crate::error::Result;
use crate::store::Stage;
use crate::time_fmt::ts;
use hljca_token::TokenSession;

/// What became of one request of a bulk group: its certificate, or why it was not issued.
pub type BulkOutcome = std::result::Result<IssuedCert, String>;

/// One issuance, all or nothing: a failure before the commit destroys what it made on the
/// token and voids it at once; a crash leaves it to `recover`.
pub(super) fn run(
    ca: &Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    p: &IssueParams,
) -> Result<IssueOutcome> {
    let prep = prepare(ca, engine, holder, p)?;
    let mut jobs = [Job::new(p, prep)];
    stages::reserve(ca, engine, &mut jobs)?;
    let [job] = &mut jobs;
    let advanced = failpoint("reserved").and_then(|()| advance(ca, engine, holder, job));
    match advanced {
        Ok(outcome) => Ok(outcome),
        Err(e) if job.stage == Stage::Committed => Err(e),
        Err(e) => {
            commit::abandon(
                ca,
                holder,
                job.id(),
                job.stage,
                &job.key_ids(),
                &e.to_string(),
            );
            Err(e)
        }
    }
}

fn advance(
    ca: &Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    job: &mut Job<'_>,
) -> Result<IssueOutcome> {
    let session = match (&job.params.source, holder) {
        (KeySource::Token, Some(s)) => Some(s),
        _ => None,
    };
    if let Some(s) = session {
        stages::keys(ca, s, job)?;
    }
    stages::sign(ca, engine, std::slice::from_mut(job));
    if let Some(e) = job.failed.take() {
        return Err(e);
    }
    if let Some(s) = session {
        stages::record_signed(ca, job)?;
        stages::write(ca, s, job)?;
    }
    stages::commit(ca, std::slice::from_mut(job), "cert.issue")?;
    failpoint("committed")?;
    let mut outcome = commit::outcome(ca, job.id())?;
    outcome.superseded = std::mem::take(&mut job.superseded);
    if let Some(v) = job.validity.filter(|v| v.clamped) {
        outcome.warning = Some(format!(
            "the {} days of the {} policy would outlive the issuing CA: notAfter cut to {}",
            job.prep.policy.validity_days,
            job.params.cert_type,
            ts(v.not_after)
        ));
    }
    if let (Some(old), Some(s)) = (&job.params.renewal_of, session) {
        outcome.removed_objects = commit::remove_renewed(ca, s, old);
    }
    Ok(outcome)
}

impl Engine<'_> {
    /// Issues a group of CSR requests (every `items[i].source` a [`KeySource::Csr`]) through
    /// the stages of a single issuance, reserved in one transaction and committed in one;
    /// returns one outcome per item, in order. A request that fails its checks or its signing
    /// is voided with the commit; an `Err` is a failure of the group as a whole (the database),
    /// its reserved issuances then left for `recover`.
    pub fn issue_csr_bulk(&self, ca: &Ca, items: &[IssueParams]) -> Result<Vec<BulkOutcome>> {
        let mut out: Vec<Option<BulkOutcome>> = items.iter().map(|_| None).collect();
        let mut jobs = Vec::with_capacity(items.len());
        let mut index = Vec::with_capacity(items.len());
        for (i, params) in items.iter().enumerate() {
            if !matches!(params.source, KeySource::Csr(_)) {
                out[i] = Some(Err("bulk issuance takes CSR requests only".into()));
                continue;
            }
            match prepare(ca, self, None, params) {
                Ok(prep) => {
                    jobs.push(Job::new(params, prep));
                    index.push(i);
                }
                Err(e) => out[i] = Some(Err(e.to_string())),
            }
        }
        if !jobs.is_empty() {
            stages::reserve(ca, self, &mut jobs)?;
            failpoint("bulk-reserved")?;
            stages::sign(ca, self, &mut jobs);
            stages::commit(ca, &mut jobs, "cert.issue")?;
            failpoint("bulk-committed")?;
        }
        for (i, job) in index.into_iter().zip(jobs) {
            out[i] = Some(match (job.failed, job.rows.first(), job.validity) {
                (None, Some(row), Some(v)) => Ok(IssuedCert {
                    serial: row.serial.clone(),
                    cert_type: job.params.cert_type,
                    role: row.role,
                    pem: export(
                        self,
                        ca,
                        &row.serial,
                        row.der.as_deref().unwrap_or_default(),
                    ),
                    key_id: row.key_id.to_hex(),
                    subject: job.prep.subject_text,
                    token_label: job.prep.token_label,
                    token_serial: String::new(),
                    not_after: ts(v.not_after),
                }),
                (Some(why), _, _) => Err(why.to_string()),
                _ => Err("not signed".into()),
            });
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err("not attempted".into())))
            .collect())
    }
}
