//! `cargo xtask <task>`: build/run/test orchestration.
//!
//! - `runtime [--dev]`  build the Yew runtime to wasm, run wasm-bindgen and wasm-opt,
//!   and assemble the static app in `dist/www/` (see `runtime.rs`).

use anyhow::{Result, bail};

mod runtime;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!("usage: cargo xtask <runtime> [options]");
    };
    match task.as_str() {
        "runtime" => runtime::run(&args[1..]),
        other => bail!("unknown task `{other}`"),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}
