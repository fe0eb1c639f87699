//! Arguments of automated jobs (issue 6): placeholder until written.

use clap::Subcommand;

/// Automation commands.
#[derive(Debug, Subcommand)]
pub enum BatchCmd {
    /// (placeholder)
    #[command(hide = true)]
    BatchPlaceholder,
}
