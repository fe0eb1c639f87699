//! Batch jobs and their rows; the external ids batch rows carry on certificate rows.

use crate::db::{Db, Tx, params};

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};

/// A new batch job.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The `file_name` column.
    pub file_name: &'a str,
    /// The `sha256` column.
    pub sha256: &'a str,
    /// The `operator` column.
    pub operator: &'a str,
    /// The `rows` column.
    pub rows: usize,
    /// The `lease` column.
    pub lease: &'a str,
}

/// One handled row of a batch job.
#[derive(Debug, Clone)]
pub struct JobRow<'a> {
    /// The `line` column.
    pub line: u64,
    /// The `external_id` column.
    pub external_id: &'a str,
    /// The `cert_type` column.
    pub cert_type: &'a str,
    /// The `token` column.
    pub token: &'a str,
    /// The `outcome` column.
    pub outcome: &'a str,
    /// The `serials` column.
    pub serials: &'a [String],
    /// The `error` column.
    pub error: Option<&'a str>,
}

/// Jobs marked running, with their lease.
pub fn running(conn: &Db) -> Result<Vec<(i64, Option<String>)>> {
    conn.query_vec(
        "SELECT id, lease FROM batch_jobs WHERE status = 'running' ORDER BY id",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(StoreError::db("running batch jobs"))
}

/// Inserts a running job; returns its id.
pub fn insert(tx: &Tx<'_>, j: &NewJob<'_>) -> Result<i64> {
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
    .map_err(StoreError::db("insert batch job"))
}

/// Records one handled row.
pub fn insert_row(tx: &Tx<'_>, job: i64, r: &JobRow<'_>) -> Result<()> {
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
    .map_err(StoreError::db("insert batch row"))?;
    Ok(())
}

/// Ends a job as `status` (finished, interrupted) with its counts.
pub fn finish(
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
    .map_err(StoreError::db("finish batch job"))?;
    Ok(())
}

/// Marks a running job interrupted (its process is gone); false when it was not running.
pub fn mark_interrupted(tx: &Tx<'_>, job: i64) -> Result<bool> {
    super::exec(
        tx,
        "UPDATE batch_jobs SET status = 'interrupted', finished_at = ?2 WHERE id = ?1 AND status = 'running'",
        params![job, ts(now())],
    )
    .map(|n| n == 1)
    .map_err(StoreError::db("mark batch job interrupted"))
}

impl Store {
    /// The serials and statuses recorded with `external_id` (pending or live), oldest first.
    pub fn by_external_id(&self, external_id: &str) -> Result<Vec<(String, String)>> {
        self.conn
            .query_vec(
                "SELECT serial, status FROM certificates WHERE external_id = ?1 \
                 AND status IN ('pending', 'issued', 'revoked', 'superseded') ORDER BY id",
                params![external_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(StoreError::db("external id lookup"))
    }
}
