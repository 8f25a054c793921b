//! `cargo xtask runtime [--dev] [--no-opt] [--names]`: build the player and assemble
//! `dist/www/` (or `$EDETAIL_DIST_WWW`, the directory the e2e tests and the benchmark
//! read, so engineers sharing a checkout need not overwrite each other's build).
//! `--names` keeps the wasm function names (a larger file, for CPU profiles).
//!
//! 1. `cargo build -p edetail-runtime --target wasm32-unknown-unknown --profile release-wasm`
//!    (`--dev`: the dev profile, no wasm-opt; for quick iterations).
//! 2. `wasm-bindgen --target web --no-typescript` — the CLI must be exactly the version of
//!    the `wasm-bindgen` crate in Cargo.lock (checked, with install instructions).
//! 3. `wasm-opt -Oz` from the npm package `binaryen` (pinned [`BINARYEN_VERSION`]),
//!    installed into `.tools/` on first use (Debian's wasm-opt is too old); then the
//!    wasm's imports get short names in the wasm and its JS glue (`imports.rs`; not with
//!    `--names`, whose profiles keep the glue's descriptive names).
//! 4. Copy the static shell from `www/` (index.html, style.css, manifest, icons, sw.js);
//!    release builds minify the JS glue, `boot.js` and `style.css` with esbuild (pinned
//!    [`ESBUILD_VERSION`], npm, `.tools/esbuild/`); write `precache.json` for the service
//!    worker, and print gzipped sizes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// binaryen release providing `wasm-opt`.
pub const BINARYEN_VERSION: &str = "132.0.0";
/// esbuild release minifying the JS glue, the boot script and the stylesheet.
pub const ESBUILD_VERSION: &str = "0.24.2";
/// Shell files minified in release builds (their sources in `www/` stay readable).
const MINIFIED: &[&str] = &["edetail_runtime.js", "boot.js", "style.css"];
const CRATE: &str = "edetail_runtime";
const TARGET: &str = "wasm32-unknown-unknown";

pub fn run(args: &[String]) -> Result<()> {
    let mut dev = false;
    let mut opt = true;
    let mut names = false;
    for a in args {
        match a.as_str() {
            "--dev" => {
                dev = true;
                opt = false;
            }
            "--no-opt" => opt = false,
            "--names" => names = true,
            other => {
                bail!(
                    "unknown option `{other}` (usage: cargo xtask runtime [--dev] [--no-opt] [--names])"
                )
            }
        }
    }
    let root = workspace_root();
    let wb_version = check_wasm_bindgen(&root)?;
    let profile = if dev { "dev" } else { "release-wasm" };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target_dir = if target_dir.is_relative() {
        root.join(target_dir)
    } else {
        target_dir
    };

    eprintln!("==> cargo build ({profile}, {TARGET})");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "-p",
            "edetail-runtime",
            "--lib",
            "--target",
            TARGET,
            "--profile",
            profile,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Keep the `target_features` section for wasm-bindgen; wasm-opt strips the rest.
        .env("CARGO_PROFILE_RELEASE_WASM_STRIP", "false")
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the runtime failed");
    }
    let wasm_in = target_dir
        .join(TARGET)
        .join(if dev { "debug" } else { profile })
        .join(format!("{CRATE}.wasm"));

    let dist = match std::env::var_os("EDETAIL_DIST_WWW") {
        Some(d) => PathBuf::from(d),
        None => root.join("dist").join("www"),
    };
    let dist = if dist.is_relative() {
        root.join(dist)
    } else {
        dist
    };
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("clearing {}", dist.display()))?;
    }
    std::fs::create_dir_all(&dist)?;
    // dist/ is build output: keep it out of git without touching the shared .gitignore.
    if dist.starts_with(root.join("dist")) {
        std::fs::write(root.join("dist").join(".gitignore"), "*\n")?;
    }

    eprintln!("==> wasm-bindgen {wb_version}");
    let status = Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(&dist)
        .arg(&wasm_in)
        .status()
        .context("running wasm-bindgen")?;
    if !status.success() {
        bail!("wasm-bindgen failed");
    }
    let wasm_out = dist.join(format!("{CRATE}_bg.wasm"));
    if opt {
        let wasm_opt = ensure_wasm_opt(&root)?;
        eprintln!("==> wasm-opt -Oz --converge (binaryen {BINARYEN_VERSION})");
        let status = Command::new(&wasm_opt)
            .args(["-Oz", "--converge"])
            // Rust's wasm linker puts the stack at the bottom of memory and data above
            // it, so nothing lives in the low 1 KiB: lets wasm-opt fold address offsets.
            .arg("--low-memory-unused")
            .args([
                "--enable-bulk-memory",
                "--enable-sign-ext",
                "--enable-nontrapping-float-to-int",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
                "--strip-producers",
            ])
            // `-g` keeps the names section for profiles; releases strip it.
            .arg(if names { "-g" } else { "--strip-debug" })
            .arg(&wasm_out)
            .arg("-o")
            .arg(&wasm_out)
            .status()
            .context("running wasm-opt")?;
        if !status.success() {
            bail!("wasm-opt failed");
        }
        // Profiling builds keep the glue's descriptive function names.
        if !names {
            let js_out = dist.join(format!("{CRATE}.js"));
            let (wasm, js, n) = crate::imports::shorten(
                &std::fs::read(&wasm_out)?,
                &std::fs::read_to_string(&js_out)?,
            )
            .context("shortening the wasm's import names")?;
            std::fs::write(&wasm_out, wasm)?;
            std::fs::write(&js_out, js)?;
            eprintln!("==> shortened {n} import names (wasm and JS glue)");
        }
    }

    eprintln!("==> assembling {}", dist.display());
    let www = root.join("www");
    copy_tree(&www, &dist)?;
    for required in ["index.html", "style.css", "manifest.webmanifest"] {
        if !dist.join(required).exists() {
            bail!("www/{required} is missing");
        }
    }
    if !dist.join("sw.js").exists() {
        eprintln!("warning: www/sw.js is missing: the app will not work offline");
    }
    stamp_shell(&dist)?;
    if opt {
        // Its own prefix: npm would prune binaryen from a shared one as extraneous.
        let esbuild = ensure_npm_tool(
            &root,
            ".tools/esbuild",
            "esbuild",
            ESBUILD_VERSION,
            &["bin", "esbuild"],
        )?;
        eprintln!(
            "==> esbuild --minify {} (esbuild {ESBUILD_VERSION})",
            MINIFIED.join(" ")
        );
        for f in MINIFIED {
            let path = dist.join(f);
            let mut cmd = Command::new(&esbuild);
            cmd.arg(&path).arg("--minify").arg("--log-level=warning");
            if f.ends_with(".js") {
                cmd.arg("--format=esm");
            }
            let out = cmd
                .output()
                .with_context(|| format!("running esbuild on {f}"))?;
            if !out.status.success() {
                bail!(
                    "esbuild failed on {f}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::fs::write(&path, out.stdout)?;
        }
    }
    let files = write_precache(&dist)?;
    precompress(&dist)?;
    report_sizes(&dist, &files)?;
    eprintln!(
        "done: serve {} at /app/ (see docs/runtime.md)",
        dist.display()
    );
    Ok(())
}

/// The `wasm-bindgen` crate version Cargo.lock resolves, compared with the CLI's.
fn check_wasm_bindgen(root: &Path) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let locked = locked_version(&lock, "wasm-bindgen")
        .context("Cargo.lock has no `wasm-bindgen` package: run `cargo check -p edetail-runtime --target wasm32-unknown-unknown` first")?;
    let install =
        format!("install it with: cargo install wasm-bindgen-cli --version ={locked} --locked");
    let out = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .with_context(|| format!("wasm-bindgen is not installed; {install}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cli = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    if cli != locked {
        bail!(
            "wasm-bindgen CLI is {} but Cargo.lock has wasm-bindgen {locked}; {install}",
            if cli.is_empty() { "unknown" } else { &cli }
        );
    }
    Ok(cli)
}

/// `version` of the package `name` in a Cargo.lock text.
pub fn locked_version(lock: &str, name: &str) -> Option<String> {
    let want = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == want {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

fn ensure_wasm_opt(root: &Path) -> Result<PathBuf> {
    ensure_npm_tool(
        root,
        ".tools",
        "binaryen",
        BINARYEN_VERSION,
        &["bin", "wasm-opt"],
    )
}

/// `<prefix>/node_modules/<package>/<bin...>` of npm package `package` at exactly
/// `version`, installed on first use (`prefix` is under the ignored `.tools/`).
fn ensure_npm_tool(
    root: &Path,
    prefix: &str,
    package: &str,
    version: &str,
    bin: &[&str],
) -> Result<PathBuf> {
    let tools = root.join(prefix);
    let pkg = tools.join("node_modules").join(package);
    let exe = bin.iter().fold(pkg.clone(), |p, part| p.join(part));
    let have = std::fs::read_to_string(pkg.join("package.json"))
        .ok()
        .is_some_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    if !(have && exe.exists()) {
        eprintln!("==> npm install --prefix {prefix} {package}@{version}");
        std::fs::create_dir_all(&tools)?;
        std::fs::write(root.join(".tools").join(".gitignore"), "*\n")?;
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&tools)
            .arg(format!("{package}@{version}"))
            .status()
            .with_context(|| {
                format!("running npm (needed once to fetch {package}; install Node.js)")
            })?;
        if !status.success() || !exe.exists() {
            bail!("could not install {package} {version} with npm into {prefix}/");
        }
    }
    Ok(exe)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let src = entry.path();
        let dst = to.join(&name);
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_tree(&src, &dst)?;
        } else if !name.to_string_lossy().starts_with('.') {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// Every shell file (relative, sorted), excluding the service worker and the list itself.
fn shell_files(dist: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(base, &p, out)?;
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dist, dist, &mut files)?;
    files.retain(|f| {
        f != "sw.js" && f != "precache.json" && !f.starts_with('.') && !f.ends_with(".gz")
    });
    files.sort();
    Ok(files)
}

fn write_precache(dist: &Path) -> Result<Vec<String>> {
    let files = shell_files(dist)?;
    let mut all = Vec::new();
    for f in &files {
        all.extend(f.as_bytes());
        all.extend(std::fs::read(dist.join(f))?);
    }
    let version = edetail_format::sha256_hex(&all);
    let mut listed = vec!["./".to_string()];
    listed.extend(files.iter().cloned());
    let json = serde_json::json!({ "version": version, "files": listed });
    std::fs::write(
        dist.join("precache.json"),
        serde_json::to_vec_pretty(&json)?,
    )?;
    Ok(files)
}

/// The placeholder in `www/boot.js` replaced by the build's shell id.
const SHELL_PLACEHOLDER: &str = "__EDETAIL_SHELL__";

/// Stamp `boot.js` with this build's shell id: the sha256 (first 16 hex digits) of the
/// files the player's markup and look come from (the wasm, its JS glue, index.html and
/// style.css). The player keeps it in the first-view copies it saves, and boot.js shows
/// only copies of its own build (see the runtime's `snapshot` module).
fn stamp_shell(dist: &Path) -> Result<()> {
    let mut all = Vec::new();
    for f in [
        format!("{CRATE}_bg.wasm"),
        format!("{CRATE}.js"),
        "index.html".into(),
        "style.css".into(),
    ] {
        all.extend(f.as_bytes());
        all.extend(std::fs::read(dist.join(&f)).with_context(|| format!("reading {f}"))?);
    }
    let id = &edetail_format::sha256_hex(&all)[..16];
    let boot = dist.join("boot.js");
    let text = std::fs::read_to_string(&boot).context("reading boot.js")?;
    if !text.contains(SHELL_PLACEHOLDER) {
        bail!("www/boot.js has no {SHELL_PLACEHOLDER} to stamp");
    }
    std::fs::write(&boot, text.replace(SHELL_PLACEHOLDER, id))?;
    eprintln!("==> shell id {id} (boot.js)");
    Ok(())
}

/// The build's own text outputs, which get a precompressed `.gz` sibling. Files that
/// deployments write or replace later (`trusted-keys.json`, bundles) never do, so a
/// `.gz` can never be stale.
const PRECOMPRESSED: &[&str] = &[
    "index.html",
    "boot.js",
    "edetail_runtime.js",
    "edetail_runtime_bg.wasm",
    "style.css",
    "manifest.webmanifest",
    "sw.js",
    "precache.json",
];

/// Write `<file>.gz` for [`PRECOMPRESSED`]: gzip made by zopfli, which every browser
/// decodes and which is smaller than `gzip -9`. The servers (`edetail serve`, the test
/// receiver) send it with `Content-Encoding: gzip` to clients that accept gzip, so these
/// are the bytes a device downloads.
fn precompress(dist: &Path) -> Result<()> {
    eprintln!("==> zopfli: precompressed .gz files");
    for f in PRECOMPRESSED {
        let src = dist.join(f);
        if !src.is_file() {
            continue;
        }
        let raw = std::fs::read(&src)?;
        let mut out = Vec::new();
        zopfli::compress(
            zopfli::Options::default(),
            zopfli::Format::Gzip,
            raw.as_slice(),
            &mut out,
        )
        .with_context(|| format!("compressing {f}"))?;
        std::fs::write(dist.join(format!("{f}.gz")), out)?;
    }
    Ok(())
}

/// Bytes a client that accepts gzip downloads for `path`: its `.gz` when there is one.
fn transfer_len(path: &Path) -> Result<u64> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = Path::new(&gz);
    Ok(std::fs::metadata(if gz.is_file() { gz } else { path })?.len())
}

/// Print raw and transfer sizes (the precompressed `.gz` a browser is sent; raw for
/// files without one); the first-slide transfer is index.html + its boot script + the
/// bindgen JS + wasm + CSS.
fn report_sizes(dist: &Path, files: &[String]) -> Result<()> {
    let first = [
        "index.html".to_string(),
        "boot.js".to_string(),
        format!("{CRATE}.js"),
        format!("{CRATE}_bg.wasm"),
        "style.css".to_string(),
    ];
    eprintln!("{:<36} {:>10} {:>10}", "file", "bytes", "sent (.gz)");
    let (mut raw_total, mut gz_total) = (0, 0);
    for f in files {
        let p = dist.join(f);
        let raw = std::fs::metadata(&p)?.len();
        let gz = transfer_len(&p)?;
        let mark = if first.contains(f) {
            raw_total += raw;
            gz_total += gz;
            "*"
        } else {
            ""
        };
        eprintln!("{:<36} {raw:>10} {gz:>10} {mark}", f);
    }
    eprintln!(
        "first-slide shell transfer (*): {raw_total} bytes raw, {gz_total} bytes gzipped ({:.1} KiB; budget 250 KB)",
        gz_total as f64 / 1024.0
    );
    if gz_total > 250_000 {
        eprintln!("warning: over the 250 KB first-slide budget");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_locked_versions() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n\n[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.1\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(
            locked_version(lock, "wasm-bindgen-futures").as_deref(),
            Some("0.4.1")
        );
        assert_eq!(locked_version(lock, "yew"), None);
        assert_eq!(locked_version("name = \"x\"", "x"), None);
    }
}
