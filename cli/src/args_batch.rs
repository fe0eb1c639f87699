//! Arguments of automated jobs (issue 6): batch issuance and recovery.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Automation commands (flattened into the top level: `hljca batch …`, `hljca recover`).
#[derive(Debug, Subcommand)]
pub enum BatchCmd {
    /// Automated issuance from a file of applications.
    #[command(subcommand)]
    Batch(BatchSub),
    /// Finish or void issuances a crash left open (kill -9, power cut, token pulled out).
    ///
    /// Only issuances whose lease nobody holds are touched (a running `issue` or batch holds
    /// its lease, so recover can run beside it). By the stage the issuance reached: before
    /// signing, its recorded keys are destroyed and it is voided; signed, its recorded
    /// certificates are written to the token and it is recorded as issued; written, it is
    /// recorded as issued when the token holds them. Nothing is touched whose key id is not on
    /// record. Each holder token is logged in to with its own PIN: with --token, HLJCA_USER_PIN
    /// (or --user-pin-file) for that token only; with --pin-dir DIR, the file DIR/SERIAL
    /// or DIR/LABEL (the token's serial or label); else a prompt per token at a terminal.
    ///
    /// Exit codes: 0 nothing left open, 1 some issuances left open, 2 bad usage.
    Recover(RecoverArgs),
}

/// `recover` options.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Only the issuances on this token (label or serial), with HLJCA_USER_PIN as its PIN.
    #[arg(long)]
    pub token: Option<String>,
    /// A directory of PIN files named by token serial or label (mode 0600).
    #[arg(long, value_name = "DIR", conflicts_with = "token")]
    pub pin_dir: Option<PathBuf>,
}

/// `batch` subcommands.
#[derive(Debug, Subcommand)]
pub enum BatchSub {
    /// Issue every application in a JSON Lines (.jsonl/.json) or CSV (.csv) file.
    ///
    /// Each row: the applicant fields of examples/applicants/*.json plus `external_id`
    /// (required, unique in the file), `type` (certificate type key) and `token` (label or
    /// serial; optional with --tokens). A row with `csr` (a PKCS#10 request file, PEM or DER,
    /// relative to the batch file) is issued from that request onto no token (identity
    /// certificate only), many per transaction; a file of such rows needs no --tokens and no
    /// user PIN. Every row is validated first and all bad rows are
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
