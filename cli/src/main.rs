//! `edetail`: the one binary. Subcommands live in modules by audience:
//! `author` (new, build, check), `preview` (live preview for authors) and, with the
//! default `server` feature, `head_office` (serve, publish, token, share, insights, ...).
//!
//! Exit codes: 0 ok, 1 diagnostics with errors, 2 usage or I/O error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod author;
#[cfg(feature = "server")]
mod head_office;
mod preview;

#[derive(Parser)]
#[command(
    name = "edetail",
    version,
    about = "Build, preview, publish and measure e-detail decks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Author(author::Command),
    #[command(flatten)]
    Preview(preview::Command),
    #[cfg(feature = "server")]
    #[command(flatten)]
    HeadOffice(head_office::Command),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Author(c) => author::run(c),
        Command::Preview(c) => preview::run(c),
        #[cfg(feature = "server")]
        Command::HeadOffice(c) => head_office::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
