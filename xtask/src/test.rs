//! `cargo xtask test`: every test the project has, in the order that fails fastest.
//!
//! Options: `--quick` skips the wasm build, wasm tests and browser end-to-end tests.

use anyhow::Result;

use crate::{cmd, cmd_env, setup};

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    setup::run(!quick)?;
    cmd("cargo", &["fmt", "--all", "--check"])?;
    cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--exclude",
            "edetail-runtime",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cmd(
        "cargo",
        &[
            "clippy",
            "-p",
            "edetail-runtime",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Native tests of every default member. Server tests run on SQLite and on the
    // PostgreSQL at 127.0.0.1:5432 (required when CI=true).
    cmd_env(
        "cargo",
        &[
            "test",
            "--workspace",
            "--exclude",
            "edetail-runtime",
            "--exclude",
            "edetail-e2e",
        ],
        &[("EDETAIL_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")],
    )?;
    // Runtime logic that is plain Rust also runs natively.
    cmd("cargo", &["test", "-p", "edetail-runtime", "--lib"])?;
    if quick {
        return Ok(());
    }
    crate::runtime::run(&[])?;
    cmd("bash", &["runtime/run-wasm-tests.sh"])?;
    // Browser end-to-end tests (Chromium and WebKit) against dist/www.
    cmd("cargo", &["test", "-p", "edetail-e2e"])?;
    Ok(())
}
