//! Authors' commands: `new`, `check`, `build`.
//!
//! Exit codes: 0 ok, 1 diagnostics with errors (or warnings with `--deny-warnings`),
//! 2 usage or I/O error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edetail_authoring::{CompileOptions, Compiled, compile, render_human};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The deck folder (holding deck.toml).
    pub deck: PathBuf,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Accept an approval window that is expired or not yet valid (reported as
    /// warnings) and mark the bundle as a preview.
    #[arg(long)]
    pub preview: bool,
    /// The date to check the approval window against (YYYY-MM-DD, UTC); default today.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub today: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Scaffold a new deck that uses every feature.
    New {
        /// Folder to create (must be absent or empty).
        dir: PathBuf,
    },
    /// Check a deck and report problems with file:line:col.
    Check(CheckArgs),
    /// Check and build a deck into a verified bundle.
    Build {
        #[command(flatten)]
        check: CheckArgs,
        /// Output folder for the bundle directory (with --archive: the archive file,
        /// or a folder to put `<deck-id>-<version>.edetail` in).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Write a single-file `.edetail` archive instead of a directory.
        #[arg(long)]
        archive: bool,
    },
}

fn parse_date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a date in YYYY-MM-DD form"))
    }
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::New { dir } => new(&dir),
        Command::Check(args) => {
            let compiled = compile_deck(&args)?;
            Ok(report(&args, &compiled, None))
        }
        Command::Build {
            check,
            out,
            archive,
        } => build(&check, &out, archive),
    }
}

fn new(dir: &Path) -> anyhow::Result<ExitCode> {
    let today = edetail_authoring::today_utc();
    edetail_authoring::scaffold::write(dir, &today)?;
    println!("created deck in {}", dir.display());
    println!(
        "next: edetail check {0}   then   edetail build {0} -o out/",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn compile_deck(args: &CheckArgs) -> anyhow::Result<Compiled> {
    let today = args
        .today
        .clone()
        .unwrap_or_else(edetail_authoring::today_utc);
    let opts = CompileOptions {
        today,
        preview: args.preview,
    };
    Ok(compile(&args.deck, &opts)?)
}

fn failed(args: &CheckArgs, c: &Compiled) -> bool {
    c.error_count() > 0 || (args.deny_warnings && c.warning_count() > 0)
}

/// Print diagnostics (and the bundle location) and choose the exit code.
fn report(args: &CheckArgs, c: &Compiled, built: Option<(&Path, &str)>) -> ExitCode {
    let fail = failed(args, c);
    match args.format {
        Format::Json => {
            let mut v = serde_json::json!({
                "ok": !fail,
                "errors": c.error_count(),
                "warnings": c.warning_count(),
                "diagnostics": c.diagnostics,
            });
            if let Some((path, hash)) = built {
                v["bundle"] =
                    serde_json::json!({ "path": path.display().to_string(), "hash": hash });
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Human => {
            if !c.diagnostics.is_empty() {
                let color =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                eprint!("{}", render_human(&c.diagnostics, color));
            }
            if let Some((path, hash)) = built {
                println!("bundle: {}", path.display());
                println!("hash:   {hash}");
            } else if !fail {
                println!(
                    "ok: {} ({} warning{})",
                    args.deck.display(),
                    c.warning_count(),
                    if c.warning_count() == 1 { "" } else { "s" }
                );
            }
            if fail && args.deny_warnings && c.error_count() == 0 {
                eprintln!("warnings denied (--deny-warnings)");
            }
        }
    }
    if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn build(args: &CheckArgs, out: &Path, archive: bool) -> anyhow::Result<ExitCode> {
    let compiled = compile_deck(args)?;
    let bundle = match &compiled.bundle {
        Some(b) if !failed(args, &compiled) => b,
        _ => return Ok(report(args, &compiled, None)),
    };
    let (path, hash) = if archive {
        let file = if out.extension().is_some_and(|e| e == "edetail") {
            out.to_path_buf()
        } else {
            out.join(format!(
                "{}-{}.edetail",
                bundle.deck.id, bundle.deck.version
            ))
        };
        let hash = edetail_authoring::write_archive(bundle, &compiled.assets, &file)
            .with_context(|| format!("writing {}", file.display()))?;
        (file, hash)
    } else {
        let hash = edetail_authoring::write_bundle_dir(bundle, &compiled.assets, out)
            .with_context(|| format!("writing {}", out.display()))?;
        (out.to_path_buf(), hash)
    };
    Ok(report(args, &compiled, Some((&path, &hash))))
}
