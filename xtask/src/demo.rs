//! `cargo xtask demo`: the whole loop on this machine.
//!
//! Builds the runtime and the `edetail` binary, creates a signing key
//! (`edetail keygen` into `out/demo/keys/`), builds and signs every sample deck into an
//! archive, starts `edetail serve` on embedded SQLite (fresh data dir under
//! `out/demo/`) trusting that key, publishes the samples, runs the simulator (which imports a physician directory
//! and sends a month of engagement through the real ingest API), and prints
//! the URLs of the MR app, a self-serve link and the insights dashboard. The server
//! keeps running until Ctrl-C.
//!
//! Options: `--port N` (default 8080), `--reps N` (20), `--hcps N` (300), `--days N` (30).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cmd, setup, workspace_root};

fn opt(args: &[String], name: &str, default: &str) -> String {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .unwrap_or_else(|| default.to_string())
}

/// Kills the server when the demo ends early (error or Ctrl-C before the wait).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let port = opt(args, "--port", "8080");
    let reps = opt(args, "--reps", "20");
    let hcps = opt(args, "--hcps", "300");
    let days = opt(args, "--days", "30");
    let root = workspace_root();

    setup::run(false)?;
    crate::runtime::run(&[])?;
    cmd("cargo", &["build", "-p", "edetail"])?;
    let edetail = target_dir(&root).join("debug/edetail");

    let out = root.join("out/demo");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("bundles"))?;

    // 1. A signing key for this demo, then build and sign every sample deck.
    let keys = out.join("keys");
    run_edetail(&edetail, &["keygen", "--out", &s(&keys), "--name", "demo"])?;
    let sign_key = s(&keys.join("demo.key"));
    let trusted = s(&keys.join("demo.pub"));
    let mut archives = Vec::new();
    for entry in std::fs::read_dir(root.join("content-samples"))? {
        let deck = entry?.path();
        if !deck.join("deck.toml").is_file() {
            continue;
        }
        let name = deck
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let dest = out.join("bundles").join(&name);
        run_edetail(
            &edetail,
            &[
                "build",
                &s(&deck),
                "-o",
                &s(&dest),
                "--archive",
                "--sign-key",
                &sign_key,
            ],
        )?;
        archives.push(find_archive(&dest)?);
    }
    archives.sort();

    // 2. Start the server on embedded SQLite.
    let data = out.join("data");
    let base = format!("http://127.0.0.1:{port}");
    eprintln!(
        "+ edetail serve --port {port} --data-dir {} --trusted-keys {trusted}",
        data.display()
    );
    let child = Command::new(&edetail)
        .args(["serve", "--port", &port, "--data-dir", &s(&data)])
        .args(["--trusted-keys", &trusted, "--www"])
        .arg(root.join("dist/www"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("server.log"))?)
        .spawn()
        .context("starting edetail serve")?;
    let mut server = Server(child);
    wait_healthy(&base, &mut server.0)?;

    let conn = ["--server", &base, "--token-dir", &s(&data)];
    // 3. Publish the samples.
    for a in &archives {
        let mut v = vec!["publish", a.as_str()];
        v.extend(conn);
        run_edetail(&edetail, &v)?;
    }
    // 4. A month of simulated engagement through the real ingest API.
    let mut v = vec![
        "simulate", "--reps", &reps, "--hcps", &hcps, "--days", &days,
    ];
    v.extend(conn);
    run_edetail(&edetail, &v)?;

    // 5. Links for people.
    let mut v = vec![
        "token",
        "create",
        "--rep",
        "rep-demo",
        "--territory",
        "seoul-1",
    ];
    v.extend(conn);
    let device = capture(&edetail, &v)?;
    let mut v = vec![
        "share",
        "--deck",
        "zentara-dosing-guide-en",
        "--hcp",
        "HCP-DEMO-1",
        "--expires",
        "30d",
    ];
    v.extend(conn);
    let share = capture(&edetail, &v).unwrap_or_else(|e| format!("(share link failed: {e:#})"));
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap_or_default();

    println!();
    println!(
        "edetail demo is running (server log: {}):",
        out.join("server.log").display()
    );
    println!(
        "  MR app (device token):  {base}/app/?mode=mr&deck=zentara-launch-ko&token={}",
        device.trim()
    );
    println!("  self-serve share link:  {}", share.trim());
    println!(
        "  insights dashboard:     {base}/insights   (admin token: {})",
        admin.trim()
    );
    println!(
        "  CLI insights:           {} insights --server {base} --token-dir {}",
        edetail.display(),
        data.display()
    );
    println!("Press Ctrl-C to stop.");
    let status = server.0.wait()?;
    bail!("server exited: {status}")
}

fn s(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn find_archive(dir: &Path) -> Result<String> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "edetail") {
            return Ok(s(&p));
        }
    }
    // Archive may be written beside the directory.
    let sib = dir.with_extension("edetail");
    if sib.is_file() {
        return Ok(s(&sib));
    }
    bail!("no .edetail archive written under {}", dir.display())
}

fn run_edetail(bin: &Path, args: &[&str]) -> Result<()> {
    cmd(&s(bin), args)
}

fn capture(bin: &Path, args: &[&str]) -> Result<String> {
    let o = Command::new(bin).args(args).output()?;
    if !o.status.success() {
        bail!(
            "edetail {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).to_string())
}

fn wait_healthy(base: &str, child: &mut Child) -> Result<()> {
    let addr = base.trim_start_matches("http://");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait()? {
            bail!("edetail serve exited early ({status}); see out/demo/server.log");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = write!(s, "GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.contains(" 200 ") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("edetail serve did not become healthy within 30 s")
}
