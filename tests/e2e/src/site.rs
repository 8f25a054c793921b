//! The site under test: a copy of `dist/www` plus bundles under `/bundles/<name>/`,
//! served by the test receiver (which also takes the ingest API on the same origin),
//! on a loopback port that stays the same across [`Site::stop`] / [`Site::start`].
//! Bundles are signed with [`site_key`], which the copied shell's
//! `trusted-keys.json` trusts (like a head-office server's `/app/trusted-keys.json`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edetail_authoring::{CompileOptions, Compiled};
use edetail_format::Bundle;
use edetail_format::signature::{SecretKey, TRUSTED_KEYS_JSON, TrustedKeysJson, crypto};
use edetail_test_receiver::read_events;
use serde_json::Value;

use crate::browser::workspace_root;

/// `dist/www`, checked to hold a built runtime.
pub fn dist_www() -> Result<PathBuf> {
    let dir = std::env::var_os("EDETAIL_DIST_WWW")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("dist").join("www"));
    for f in [
        "index.html",
        "edetail_runtime.js",
        "edetail_runtime_bg.wasm",
        "sw.js",
    ] {
        if !dir.join(f).is_file() {
            bail!(
                "{} has no {f}: build the runtime first (`cargo xtask runtime`)",
                dir.display()
            );
        }
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Compile a deck folder of `content-samples/` (today's date).
pub fn compile_sample(name: &str) -> Result<Compiled> {
    let dir = workspace_root().join("content-samples").join(name);
    compile_dir(&dir)
}

pub fn compile_dir(dir: &Path) -> Result<Compiled> {
    let c = edetail_authoring::compile(dir, &CompileOptions::new(edetail_authoring::today_utc()))?;
    if c.bundle.is_none() {
        bail!(
            "{} does not compile:\n{}",
            dir.display(),
            edetail_authoring::render_human(&c.diagnostics, false)
        );
    }
    Ok(c)
}

/// The e2e site's signing key (a fixed TEST key: its seed is right here).
pub fn site_key() -> SecretKey {
    SecretKey(*b"edetail e2e site key - tests!!!!")
}

pub struct Site {
    root: tempfile::TempDir,
    addr: Option<SocketAddr>,
    receiver: Option<Child>,
    out: PathBuf,
    bin: PathBuf,
}

impl Site {
    /// A fresh site root with the runtime copied in (not yet serving). `receiver_bin`
    /// is the `e2e-receiver` binary (`env!("CARGO_BIN_EXE_e2e-receiver")` in tests).
    pub fn new_with(receiver_bin: &Path) -> Result<Site> {
        let root = tempfile::tempdir()?;
        copy_dir(&dist_www()?, &root.path().join("www"))?;
        std::fs::write(
            root.path().join("www").join(TRUSTED_KEYS_JSON),
            TrustedKeysJson::from_keys(&[site_key().public_key()]).to_json(),
        )?;
        let out = root.path().join("events.jsonl");
        Ok(Site {
            root,
            addr: None,
            receiver: None,
            out,
            bin: receiver_bin.to_path_buf(),
        })
    }

    pub fn www(&self) -> PathBuf {
        self.root.path().join("www")
    }

    /// Write a bundle to `/bundles/<name>/`, signed with [`site_key`]; returns its hash.
    pub fn add_bundle(&self, name: &str, bundle: &Bundle, c: &Compiled) -> Result<String> {
        self.add_bundle_signed(name, bundle, c, |h| {
            Some(crypto::sign(&site_key(), h).to_json())
        })
    }

    /// Write a bundle to `/bundles/<name>/` with the `bundle.sig` that `sign` returns
    /// for its hash (None: unsigned); returns its hash.
    pub fn add_bundle_signed(
        &self,
        name: &str,
        bundle: &Bundle,
        c: &Compiled,
        sign: impl FnOnce(&str) -> Option<Vec<u8>>,
    ) -> Result<String> {
        let dir = self.bundle_dir(name);
        std::fs::create_dir_all(&dir)?;
        Ok(edetail_authoring::write_bundle_dir_signed(
            bundle, &c.assets, &dir, sign,
        )?)
    }

    pub fn bundle_dir(&self, name: &str) -> PathBuf {
        self.www().join("bundles").join(name)
    }

    /// Start serving (on the same port as before, if it served before).
    pub fn start(&mut self) -> Result<()> {
        if self.receiver.is_some() {
            return Ok(());
        }
        let port = self.addr.map(|a| a.port()).unwrap_or(0);
        let mut last = String::new();
        // The port was ours a moment ago; a rebind can race with the old sockets.
        for _ in 0..50 {
            let mut child = Command::new(&self.bin)
                .arg(port.to_string())
                .arg(self.www())
                .arg(&self.out)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", self.bin.display()))?;
            let stdout = child.stdout.take().context("receiver stdout")?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
            if let Some(url) = line.trim().strip_prefix("listening on http://")
                && let Ok(addr) = url.parse::<SocketAddr>()
            {
                self.addr = Some(addr);
                self.receiver = Some(child);
                return Ok(());
            }
            let _ = child.kill();
            let _ = child.wait();
            last = line;
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("cannot start the receiver on port {port}: {last}")
    }

    /// Stop serving (the receiver process is killed: every connection closes).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.receiver.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn origin(&self) -> String {
        match self.addr {
            Some(a) => format!("http://{a}"),
            None => "http://127.0.0.1:0".into(),
        }
    }

    /// The player URL for bundle `name` with extra query (`mode=mr` …).
    pub fn player_url(&self, name: &str, query: &str) -> String {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}/?bundle=/bundles/{name}/{sep}{query}", self.origin())
    }

    /// Every event the receiver stored (each id once).
    pub fn events(&self) -> Result<Vec<Value>> {
        Ok(read_events(&self.out)?)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}
