//! `cargo xtask <task>`: build/run/test orchestration.
//!
//! - `setup`            install what a fresh machine lacks (browsers, wasm tools)
//! - `runtime [--dev]`  build the Yew runtime to wasm (wasm-bindgen, wasm-opt) and
//!   assemble the static app in `dist/www/` (see `runtime.rs`)
//! - `test`             every test: fmt, clippy, unit/integration (SQLite and
//!   PostgreSQL), wasm tests in Chromium and WebKit, browser end-to-end tests
//! - `demo`             the full loop: build, serve, publish the samples, simulate a month
//! - `fuzz [--runs N]`   the long fuzz run: every cargo-fuzz target for N executions (see `fuzz.rs`)

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

mod demo;
mod fuzz;
mod imports;
mod runtime;
mod setup;
mod test;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!("usage: cargo xtask <setup|runtime|test|demo|fuzz> [options]");
    };
    let rest = &args[1..];
    match task.as_str() {
        "setup" => setup::run(true),
        "runtime" => runtime::run(rest),
        "test" => test::run(rest),
        "demo" => demo::run(rest),
        "fuzz" => fuzz::run(rest),
        other => bail!("unknown task `{other}`"),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// Run a program in the workspace root, failing on a non-zero exit.
pub fn cmd(program: &str, args: &[&str]) -> Result<()> {
    cmd_env(program, args, &[])
}

/// Like [`cmd`] with extra environment variables.
pub fn cmd_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("starting `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
