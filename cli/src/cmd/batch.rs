//! Automation commands (issue 6): placeholder until written.

use std::path::Path;

use crate::Failure;
use crate::args::{Cli, IssueArgs};
use crate::args_batch::BatchCmd;

pub fn run(_cli: &Cli, _c: &BatchCmd) -> Result<(), Failure> {
    Err(Failure::input(anyhow::anyhow!("not implemented yet")))
}

pub fn issue_csr(_cli: &Cli, csr: &Path, _a: &IssueArgs) -> Result<(), Failure> {
    Err(Failure::input(anyhow::anyhow!(
        "issuing from {}: not implemented yet",
        csr.display()
    )))
}
