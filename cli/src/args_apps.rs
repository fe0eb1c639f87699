//! Arguments of the counter workflow (issue 5): placeholder until written.

use clap::Subcommand;

/// Counter workflow commands.
#[derive(Debug, Subcommand)]
pub enum AppsCmd {
    /// (placeholder) List applications.
    #[command(hide = true)]
    AppsPlaceholder,
}
