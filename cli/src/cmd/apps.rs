//! The counter workflow commands (issue 5): placeholder until written.

use crate::Failure;
use crate::args::{Cli, IssueArgs};
use crate::args_apps::AppsCmd;

pub fn run(_cli: &Cli, _c: &AppsCmd) -> Result<(), Failure> {
    Err(Failure::input(anyhow::anyhow!("not implemented yet")))
}

pub fn issue_application(_cli: &Cli, app: &str, _a: &IssueArgs) -> Result<(), Failure> {
    Err(Failure::input(anyhow::anyhow!(
        "issuing application {app}: not implemented yet"
    )))
}
