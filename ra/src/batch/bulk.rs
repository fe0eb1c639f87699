//! Batch rows with a `csr`: issued a group at a time through the engine's bulk path
//! ([`Engine::issue_csr_bulk`]), many certificates per transaction, and recorded in
//! `batch_rows` a group at a time.

use super::BatchSteps;
use super::{ExternalState, PlannedRow, RowResult, RowStatus};
use hljca_core::Result;
use hljca_core::engine::{Engine, Fee, IssueParams, KeySource};
use hljca_core::store::jobs;
use hljca_core::{Ca, audit};

/// Requests signed and committed per group (two transactions each).
pub const BULK_GROUP: usize = 1000;

/// The group size: [`BULK_GROUP`], or in test builds `HLJCA_BULK_GROUP` (small groups for the
/// crash tests).
pub(super) fn group_size() -> usize {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("HLJCA_BULK_GROUP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    BULK_GROUP
}

/// The steps behind [`BulkBatch`].
pub(crate) trait BulkSteps {
    /// Issues a run of CSR rows (at most [`BULK_GROUP`]) and records their outcomes; rows
    /// issued by an earlier run are skipped, rows left pending by a crash fail (recover first).
    fn batch_csr_group(
        &mut self,
        job_id: i64,
        engine: &Engine<'_>,
        rows: &[PlannedRow],
    ) -> Result<Vec<RowResult>>;
}

impl BulkSteps for Ca {
    fn batch_csr_group(
        &mut self,
        job_id: i64,
        engine: &Engine<'_>,
        rows: &[PlannedRow],
    ) -> Result<Vec<RowResult>> {
        let mut results: Vec<RowResult> = rows
            .iter()
            .map(|row| RowResult {
                line: row.line,
                external_id: row.external_id.clone(),
                cert_type: row.cert_type,
                token: row.token_label.clone(),
                status: RowStatus::Failed,
                serials: Vec::new(),
                error: None,
            })
            .collect();
        let mut todo = Vec::new();
        let mut params = Vec::new();
        for (k, row) in rows.iter().enumerate() {
            let result = &mut results[k];
            let Some(csr) = &row.checked_csr else {
                result.error = Some("not a CSR row".into());
                continue;
            };
            match self.external_id_state(&row.external_id) {
                Err(e) => result.error = Some(e.to_string()),
                Ok(ExternalState::Issued(serials)) => {
                    result.status = RowStatus::Skipped;
                    result.serials = serials;
                }
                Ok(ExternalState::Pending(serials)) => {
                    result.error = Some(format!(
                        "an earlier run was interrupted while issuing this row (pending serial {}); \
                         run `hljca recover`, then run this batch again",
                        serials.join(", ")
                    ));
                }
                Ok(ExternalState::None) => {
                    let mut p = IssueParams::new(row.cert_type, row.applicant.clone());
                    p.source = KeySource::Csr(csr.clone());
                    p.external_id = Some(row.external_id.clone());
                    // Batches are invoiced: each row's first-time fee is booked against the job.
                    p.fee = Some(Fee {
                        fen: self.policies().get(row.cert_type).fees.first.0,
                        method: "invoice".into(),
                        reference: Some(format!("batch-{job_id}:{}", row.external_id)),
                    });
                    todo.push(k);
                    params.push(p);
                }
            }
        }
        if !params.is_empty() {
            match engine.issue_csr_bulk(self, &params) {
                Ok(outcomes) => {
                    for (k, outcome) in todo.iter().zip(outcomes) {
                        match outcome {
                            Ok(cert) => {
                                results[*k].status = RowStatus::Issued;
                                results[*k].serials = vec![cert.serial];
                            }
                            Err(why) => results[*k].error = Some(why),
                        }
                    }
                }
                Err(e) => {
                    let why = format!(
                        "{e}; the group's reserved issuances are voided by `hljca recover`"
                    );
                    for k in &todo {
                        results[*k].error = Some(why.clone());
                    }
                }
            }
        }
        let op = &self.operator();
        self.write("record batch rows", |tx| {
            for r in &results {
                jobs::insert_row(
                    tx,
                    job_id,
                    &jobs::JobRow {
                        line: r.line,
                        external_id: &r.external_id,
                        cert_type: r.cert_type.key(),
                        token: &r.token,
                        outcome: r.status.as_str(),
                        serials: &r.serials,
                        error: r.error.as_deref(),
                    },
                )?;
            }
            audit::append(
                tx,
                op,
                "batch.rows",
                &format!("batch-{job_id}"),
                &serde_json::json!({
                    "rows": results.iter().map(|r| serde_json::json!({
                        "line": r.line, "external_id": r.external_id, "outcome": r.status.as_str(),
                        "serials": r.serials, "error": r.error,
                    })).collect::<Vec<_>>(),
                }),
            )
        })?;
        Ok(results)
    }
}
