//! Automated jobs (issue 6): batch issuance from a JSON Lines or CSV file, recovery of issuances
//! interrupted by a crash, and issuance from a PKCS#10 request for systems that keep their keys.
//!
//! A batch is validated as a whole first — every bad row is reported at once and no token is
//! touched — then issued row by row through [`Ca::issue`], which is all or nothing per row.
//! Each row carries an external id that is recorded on its certificates, so a rerun of the same
//! file skips the rows already issued; rows left `pending` by a crash are finished or voided by
//! [`Ca::recover`] first. Every row goes through the issuance engine ([`hljca_core::engine`]).

use bulk::BulkSteps;
use hljca_core::Rule;
mod bulk;
mod file;
mod plan;

/// The one CSR check lives with the CA (the engine issues from it); a batch row uses it too.
pub use hljca_core::csr;

use std::collections::HashMap;
use std::path::PathBuf;

use hljca_policies::CertType;
use hljca_token::{Module, TokenError, TokenSelector, TokenSession};
use serde::Serialize;

use hljca_core::engine::{Engine, IssueParams, Lease, Probe};
use hljca_core::keys::Secrets;
use hljca_core::store::jobs;
use hljca_core::{Ca, audit};
use hljca_core::{CoreError, Result};

pub use bulk::BULK_GROUP;
pub use csr::{CSR_TOKEN_LABEL, CheckedCsr, CsrOutcome, CsrRejected, check_csr};
pub use file::{BatchFile, FileFormat, RawRow, RowError, read};
pub use hljca_core::engine::{RecoverAction, RecoverReport, RecoveredIssuance};
pub use plan::{BatchPlan, BatchPlanning, PlannedRow};

/// Column holding the caller's id of a row.
pub const EXTERNAL_ID: &str = "external_id";
/// Column holding the certificate type key.
pub const TYPE: &str = "type";
/// Column holding the target token (label or serial).
pub const TOKEN: &str = "token";
/// Column holding a PKCS#10 request file (relative to the batch file): the row is issued from
/// it, onto no token.
pub const CSR: &str = "csr";

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Certificates issued now.
    Issued,
    /// Already issued by an earlier run (same external id).
    Skipped,
    /// Not issued; see the error.
    Failed,
}

impl RowStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RowStatus::Issued => "issued",
            RowStatus::Skipped => "skipped",
            RowStatus::Failed => "failed",
        }
    }
}

/// The outcome of one row.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// Line in the file.
    pub line: u64,
    /// The caller's id.
    pub external_id: String,
    /// Certificate type.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// Target token.
    pub token: String,
    /// Outcome.
    pub status: RowStatus,
    /// Serials issued now (issued) or earlier (skipped), identity first.
    pub serials: Vec<String>,
    /// Why the row failed.
    pub error: Option<String>,
}

/// The outcome of a batch run.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// Row id in `batch_jobs`.
    pub job_id: i64,
    /// The file.
    pub file: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Rows in the file.
    pub rows: usize,
    /// Rows issued now.
    pub issued: usize,
    /// Rows already issued before.
    pub skipped: usize,
    /// Rows that failed.
    pub failed: usize,
    /// The run was stopped (Ctrl-C) after a row; the rest were not attempted.
    pub interrupted: bool,
    /// Rows not attempted because of the interruption.
    pub not_attempted: usize,
    /// Per-row outcomes in file order.
    pub results: Vec<RowResult>,
}

pub(crate) enum ExternalState {
    None,
    Pending(Vec<String>),
    Issued(Vec<String>),
}

/// Batch issuance on [`Ca`].
pub trait Batch {
    /// Issues a validated batch row by row. Rows whose external id already has an issued
    /// certificate are skipped; a row that fails is reported and the others go on. The job is
    /// recorded in `batch_jobs`/`batch_rows` and audited (`batch.start`, `batch.finish`).
    /// `on_row` is called after each row (for a progress bar); when it breaks (Ctrl-C), the run
    /// stops cleanly after that row and the job is recorded as interrupted.
    fn batch_issue(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        plan: &BatchPlan,
        on_row: &mut dyn FnMut(&RowResult) -> std::ops::ControlFlow<()>,
    ) -> Result<BatchReport>;
}

impl Batch for Ca {
    fn batch_issue(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        plan: &BatchPlan,
        on_row: &mut dyn FnMut(&RowResult) -> std::ops::ControlFlow<()>,
    ) -> Result<BatchReport> {
        self.require(hljca_core::operators::Role::Issuer, "batch issue")?;
        if !plan.errors.is_empty() {
            return Err(CoreError::refuse(
                Rule::BatchRows,
                format!(
                    "{} has {} bad row(s); fix them first",
                    plan.file.display(),
                    plan.errors.len()
                ),
            ));
        }
        let token_rows = plan.rows.iter().any(|r| r.checked_csr.is_none());
        if token_rows {
            secrets.user_pin()?;
        }
        // Log in to the CA once up front: a wrong CA PIN fails here, once, rather than on every
        // row (and does not use up the token's PIN tries).
        // The same CA session then signs every row, and each holder token is logged in to once:
        // fewer logins, fewer PIN tries, and fewer token-file writes a crash could interrupt.
        let keys = self.ca_keys(Some(module), secrets)?;
        let engine = Engine::new(self, &keys)?;
        let mut sessions: HashMap<String, TokenSession> = HashMap::new();
        let file_name = plan.file.display().to_string();
        // One batch at a time: two runs of one file could both find a row unissued. The check
        // and the job row are one IMMEDIATE transaction, so two starts cannot both pass it; a
        // running job whose lease is free belongs to a process that is gone.
        let op = &self.operator();
        let space = self.lease_space();
        let job_id = self.write("begin batch job", |tx| {
            for (id, lease) in jobs::running(tx)? {
                if let Some(l) = lease
                    && matches!(Lease::probe(&space, &l)?, Probe::Held)
                {
                    return Err(CoreError::InProgress(format!(
                        "batch job {id} is still running (lease {l}); wait for it to finish before starting another"
                    )));
                }
            }
            let job_id = jobs::insert(
                tx,
                &jobs::NewJob {
                    file_name: &file_name,
                    sha256: &plan.sha256,
                    operator: op,
                    rows: plan.rows.len(),
                    lease: engine.lease_id(),
                },
            )?;
            audit::append(
                tx,
                op,
                "batch.start",
                &format!("batch-{job_id}"),
                &serde_json::json!({ "file": file_name, "sha256": plan.sha256, "rows": plan.rows.len() }),
            )?;
            Ok(job_id)
        })?;

        let mut results = Vec::with_capacity(plan.rows.len());
        // Tokens whose user PIN was refused: trying again would only use up the PIN's tries.
        let mut refused_tokens: HashMap<String, String> = HashMap::new();
        let mut next = 0;
        while next < plan.rows.len() {
            let row = &plan.rows[next];
            if row.checked_csr.is_some() {
                // A run of CSR rows: a group at a time, many certificates per transaction.
                let end = plan.rows[next..]
                    .iter()
                    .take(bulk::group_size())
                    .take_while(|r| r.checked_csr.is_some())
                    .count()
                    + next;
                let group = self.batch_csr_group(job_id, &engine, &plan.rows[next..end])?;
                next = end;
                let mut stop = false;
                for result in group {
                    stop |= on_row(&result).is_break();
                    results.push(result);
                }
                if stop {
                    break;
                }
                continue;
            }
            next += 1;
            let result = self.batch_row(
                job_id,
                module,
                secrets,
                &engine,
                &mut sessions,
                row,
                &mut refused_tokens,
            );
            let op = &self.operator();
            self.write("record batch row", |tx| {
                jobs::insert_row(
                    tx,
                    job_id,
                    &jobs::JobRow {
                        line: row.line,
                        external_id: &row.external_id,
                        cert_type: row.cert_type.key(),
                        token: &row.token,
                        outcome: result.status.as_str(),
                        serials: &result.serials,
                        error: result.error.as_deref(),
                    },
                )?;
                audit::append(
                    tx,
                    op,
                    "batch.row",
                    &format!("batch-{job_id}"),
                    &serde_json::json!({
                        "line": row.line, "external_id": row.external_id, "outcome": result.status.as_str(),
                        "serials": result.serials, "error": result.error,
                    }),
                )
            })?;
            let flow = on_row(&result);
            results.push(result);
            if flow.is_break() {
                break;
            }
        }
        let not_attempted = plan.rows.len() - results.len();
        let status = if not_attempted > 0 {
            "interrupted"
        } else {
            "finished"
        };
        let count = |s: RowStatus| results.iter().filter(|r| r.status == s).count();
        let (issued, skipped, failed) = (
            count(RowStatus::Issued),
            count(RowStatus::Skipped),
            count(RowStatus::Failed),
        );
        let op = &self.operator();
        self.write("finish batch job", |tx| {
        jobs::finish(tx, job_id, status, (issued, skipped, failed))?;
        audit::append(
            tx,
            op,
            "batch.finish",
            &format!("batch-{job_id}"),
            &serde_json::json!({
                "file": file_name, "sha256": plan.sha256, "rows": plan.rows.len(),
                "issued": issued, "skipped": skipped, "failed": failed, "not_attempted": not_attempted,
            }),
        )
        })?;
        Ok(BatchReport {
            job_id,
            file: plan.file.clone(),
            sha256: plan.sha256.clone(),
            rows: plan.rows.len(),
            issued,
            skipped,
            failed,
            interrupted: not_attempted > 0,
            not_attempted,
            results,
        })
    }
}

/// The steps behind [`Batch`].
pub(crate) trait BatchSteps {
    #[allow(clippy::too_many_arguments)] // one caller; each piece is a distinct borrow
    fn batch_row(
        &mut self,
        job_id: i64,
        module: &Module,
        secrets: &Secrets,
        engine: &Engine<'_>,
        sessions: &mut HashMap<String, TokenSession>,
        row: &PlannedRow,
        refused_tokens: &mut HashMap<String, String>,
    ) -> RowResult;

    /// Where an external id stands: issued before (its serials), pending, or unused.
    fn external_id_state(&self, external_id: &str) -> Result<ExternalState>;
}

impl BatchSteps for Ca {
    fn batch_row(
        &mut self,
        job_id: i64,
        module: &Module,
        secrets: &Secrets,
        engine: &Engine<'_>,
        sessions: &mut HashMap<String, TokenSession>,
        row: &PlannedRow,
        refused_tokens: &mut HashMap<String, String>,
    ) -> RowResult {
        let mut result = RowResult {
            line: row.line,
            external_id: row.external_id.clone(),
            cert_type: row.cert_type,
            token: row.token.clone(),
            status: RowStatus::Failed,
            serials: Vec::new(),
            error: None,
        };
        match self.external_id_state(&row.external_id) {
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
            Ok(ExternalState::Issued(serials)) => {
                result.status = RowStatus::Skipped;
                result.serials = serials;
                return result;
            }
            Ok(ExternalState::Pending(serials)) => {
                result.error = Some(format!(
                    "an earlier run was interrupted while issuing this row (pending serial {}); \
                     run `hljca recover`, then run this batch again",
                    serials.join(", ")
                ));
                return result;
            }
            Ok(ExternalState::None) => {}
        }
        if let Some(why) = refused_tokens.get(&row.token) {
            result.error = Some(format!("not tried: {why}"));
            return result;
        }
        let mut params = IssueParams::new(row.cert_type, row.applicant.clone());
        params.external_id = Some(row.external_id.clone());
        // Batches are invoiced: each row's first-time fee is booked against the job.
        params.fee = Some(hljca_core::engine::Fee {
            fen: self.policies().get(row.cert_type).fees.first.0,
            method: "invoice".into(),
            reference: Some(format!("batch-{job_id}:{}", row.external_id)),
        });
        let sel = TokenSelector(row.token.clone());
        let issued = match sessions.entry(row.token.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => {
                params.issue(self, engine, Some(e.get()))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                match self.holder_token(module, &sel).and_then(|_| {
                    secrets
                        .user_pin()
                        .and_then(|pin| Ok(module.login(&sel, pin)?))
                }) {
                    Ok(session) => {
                        let session = v.insert(session);
                        params.issue(self, engine, Some(session))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if matches!(issued, Err(CoreError::Token(TokenError::Pkcs11 { .. }))) {
            // The token may have been pulled out: log in afresh for its next row.
            sessions.remove(&row.token);
        }
        match issued {
            Ok(outcome) => {
                result.status = RowStatus::Issued;
                result.serials = outcome.certificates.into_iter().map(|c| c.serial).collect();
            }
            Err(e) => {
                if matches!(
                    e,
                    CoreError::Token(
                        TokenError::PinIncorrect { .. } | TokenError::PinLocked { .. }
                    )
                ) {
                    refused_tokens.insert(
                        row.token.clone(),
                        format!(
                            "the user PIN of token `{}` was refused earlier in this batch",
                            row.token
                        ),
                    );
                }
                result.error = Some(e.to_string());
            }
        }
        result
    }

    fn external_id_state(&self, external_id: &str) -> Result<ExternalState> {
        let rows = self.store().by_external_id(external_id)?;
        let pending: Vec<String> = rows
            .iter()
            .filter(|(_, s)| s == "pending")
            .map(|(serial, _)| serial.clone())
            .collect();
        if !pending.is_empty() {
            return Ok(ExternalState::Pending(pending));
        }
        if rows.is_empty() {
            return Ok(ExternalState::None);
        }
        Ok(ExternalState::Issued(
            rows.into_iter().map(|(serial, _)| serial).collect(),
        ))
    }
}
