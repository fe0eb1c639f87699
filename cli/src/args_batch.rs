//! Arguments of automated jobs (issue 6): batch issuance and recovery.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Automation commands (flattened into the top level: `hljca batch …`, `hljca recover`).
#[derive(Debug, Subcommand)]
pub enum BatchCmd {
    /// Automated issuance from a file of applications.
    #[command(subcommand)]
    Batch(BatchSub),
    /// Finish or void issuances a crash left pending (kill -9, power cut, token pulled out).
    ///
    /// For each pending certificate row: log in to its token (by serial, HLJCA_USER_PIN); if the
    /// certificate with the row's key id is there, carries the row's serial and verifies against
    /// the issuing CA, the row is marked issued; otherwise every object with that key id is
    /// destroyed and the row voided (a batch rerun then issues it afresh). Rows whose token is
    /// absent stay pending. Do not run it while an issuance is in progress.
    ///
    /// Exit codes: 0 nothing left pending, 1 some rows left pending, 2 bad usage.
    Recover,
}

/// `batch` subcommands.
#[derive(Debug, Subcommand)]
pub enum BatchSub {
    /// Issue every application in a JSON Lines (.jsonl/.json) or CSV (.csv) file.
    ///
    /// Each row: the applicant fields of examples/applicants/*.json plus `external_id`
    /// (required, unique in the file), `type` (certificate type key) and `token` (label or
    /// serial; optional with --tokens). Every row is validated first and all bad rows are
    /// reported at once (exit 2) before any token is touched. Rows whose external_id already
    /// has an issued certificate are skipped, so rerunning a file (after an interruption and
    /// `hljca recover`) issues only the rest.
    ///
    /// Exit codes: 0 every row issued or skipped, 1 some row failed, 2 bad rows or usage.
    Issue(BatchIssueArgs),
}

/// `batch issue` options.
#[derive(Debug, Args)]
pub struct BatchIssueArgs {
    /// The applications: .jsonl/.json (one JSON object per line) or .csv (header row).
    pub file: PathBuf,
    /// Validate and print the plan; touch no token and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Tokens (labels or serials, comma-separated) to spread rows without a `token` over,
    /// round-robin; several certificates may go onto one token.
    #[arg(long, value_delimiter = ',')]
    pub tokens: Vec<String>,
}
