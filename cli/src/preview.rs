//! Placeholder: replaced by the owner of this module.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Not yet implemented.
    #[command(name = "todo-preview")]
    Todo,
}

pub fn run(_c: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
