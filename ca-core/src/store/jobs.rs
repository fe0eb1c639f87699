//! Batch jobs and their rows; the external ids batch rows carry on certificate rows.

use crate::store::db::{Db, Tx, params};

use super::Store;
use crate::error::{CoreError, Result};
use crate::time_fmt::{now, ts};

/// A new batch job.
#[derive(Debug, Clone)]
pub(crate) struct NewJob<'a> {
    pub file_name: &'a str,
    pub sha256: &'a str,
    pub operator: &'a str,
    pub rows: usize,
    pub lease: &'a str,
}

/// One handled row of a batch job.
#[derive(Debug, Clone)]
pub(crate) struct JobRow<'a> {
    pub line: u64,
    pub external_id: &'a str,
    pub cert_type: &'a str,
    pub token: &'a str,
    pub outcome: &'a str,
    pub serials: &'a [String],
    pub error: Option<&'a str>,
}

/// Jobs marked running, with their lease.
pub(crate) fn running(conn: &Db) -> Result<Vec<(i64, Option<String>)>> {
    conn.query_vec(
        "SELECT id, lease FROM batch_jobs WHERE status = 'running' ORDER BY id",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(CoreError::db("running batch jobs"))
}

/// Inserts a running job; returns its id.
pub(crate) fn insert(tx: &Tx<'_>, j: &NewJob<'_>) -> Result<i64> {
    tx.query_row(
        "INSERT INTO batch_jobs (file_name, file_sha256, operator, pid, started_at, status, rows_total, lease) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7) RETURNING id",
        params![
            j.file_name,
            j.sha256,
            j.operator,
            i64::from(std::process::id()),
            ts(now()),
            j.rows as i64,
            j.lease
        ],
        |r| r.get(0),
    )
    .map_err(CoreError::db("insert batch job"))
}

/// Records one handled row.
pub(crate) fn insert_row(tx: &Tx<'_>, job: i64, r: &JobRow<'_>) -> Result<()> {
    super::exec(
        tx,
        "INSERT INTO batch_rows (job_id, line, external_id, cert_type, token, outcome, serials, error, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            job,
            r.line as i64,
            r.external_id,
            r.cert_type,
            r.token,
            r.outcome,
            r.serials.join(","),
            r.error,
            ts(now())
        ],
    )
    .map_err(CoreError::db("insert batch row"))?;
    Ok(())
}

/// Ends a job as `status` (finished, interrupted) with its counts.
pub(crate) fn finish(
    tx: &Tx<'_>,
    job: i64,
    status: &str,
    (issued, skipped, failed): (usize, usize, usize),
) -> Result<()> {
    super::exec(
        tx,
        "UPDATE batch_jobs SET status = ?6, finished_at = ?2, issued = ?3, skipped = ?4, failed = ?5 WHERE id = ?1",
        params![job, ts(now()), issued as i64, skipped as i64, failed as i64, status],
    )
    .map_err(CoreError::db("finish batch job"))?;
    Ok(())
}

/// Marks a running job interrupted (its process is gone); false when it was not running.
pub(crate) fn mark_interrupted(tx: &Tx<'_>, job: i64) -> Result<bool> {
    super::exec(
        tx,
        "UPDATE batch_jobs SET status = 'interrupted', finished_at = ?2 WHERE id = ?1 AND status = 'running'",
        params![job, ts(now())],
    )
    .map(|n| n == 1)
    .map_err(CoreError::db("mark batch job interrupted"))
}

impl Store {
    /// The serials and statuses recorded with `external_id` (pending or live), oldest first.
    pub(crate) fn by_external_id(&self, external_id: &str) -> Result<Vec<(String, String)>> {
        self.conn
            .query_vec(
                "SELECT serial, status FROM certificates WHERE external_id = ?1 \
                 AND status IN ('pending', 'issued', 'revoked', 'superseded') ORDER BY id",
                params![external_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(CoreError::db("external id lookup"))
    }
}
