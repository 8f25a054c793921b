//! Installs what a fresh machine lacks, idempotently: Debian packages for the
//! browser tests, the wasm32 target, and wasm-bindgen-cli at exactly the version
//! in Cargo.lock. (wasm-opt comes from the npm package `binaryen`, installed by
//! `runtime.rs` into `.tools/`.)

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cmd, workspace_root};

/// Debian packages and a binary each provides (or, for data packages, an absolute path
/// to a file it installs).
const APT: &[(&str, &str)] = &[
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
    ("webkit2gtk-driver", "WebKitWebDriver"),
    ("xvfb", "xvfb-run"),
    ("xauth", "xauth"),
    // Korean glyphs for the browser tests and screenshots of the Korean sample deck
    // (without a CJK font, Hangul renders as empty boxes).
    (
        "fonts-nanum",
        "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    ),
];

pub fn on_path(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn run(browsers: bool) -> Result<()> {
    if browsers {
        apt_packages()?;
    }
    wasm_target()?;
    wasm_bindgen_cli()?;
    Ok(())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(_, bin)| {
            if bin.starts_with('/') {
                !std::path::Path::new(bin).exists()
            } else {
                !on_path(bin)
            }
        })
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages {missing:?}");
    let sudo = if is_root() { "" } else { "sudo " };
    let script = format!(
        "{sudo}apt-get update -q && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -q {}",
        missing.join(" ")
    );
    cmd("sh", &["-c", &script])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&out.stdout).contains("wasm32-unknown-unknown") {
        cmd("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

/// The `wasm-bindgen` version pinned in Cargo.lock.
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
        .context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(v.trim_matches('"').to_string());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

fn wasm_bindgen_cli() -> Result<()> {
    let want = locked_wasm_bindgen_version()?;
    let have = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if have == format!("wasm-bindgen {want}") {
        return Ok(());
    }
    eprintln!(
        "setup: installing wasm-bindgen-cli {want} (found `{have}`); this compiles for ~10 minutes"
    );
    // `--locked` fails on this registry mirror (a dependency version is missing).
    cmd(
        "cargo",
        &[
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={want}"),
        ],
    )
}
