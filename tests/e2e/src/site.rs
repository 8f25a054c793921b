//! The site under test: a copy of `dist/www` plus bundles under `/bundles/<name>/`,
//! served by the test receiver (which also takes the ingest API on the same origin),
//! on a loopback port that stays the same across [`Site::stop`] / [`Site::start`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edetail_authoring::{CompileOptions, Compiled};
use edetail_format::Bundle;
use edetail_test_receiver::{Config, Receiver, read_events};
use serde_json::Value;

use crate::browser::workspace_root;

/// `dist/www`, checked to hold a built runtime.
pub fn dist_www() -> Result<PathBuf> {
    let dir = std::env::var_os("EDETAIL_DIST_WWW")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("dist").join("www"));
    for f in ["index.html", "edetail_runtime.js", "edetail_runtime_bg.wasm", "sw.js"] {
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
    let c = edetail_authoring::compile(
        dir,
        &CompileOptions::new(edetail_authoring::today_utc()),
    )?;
    if c.bundle.is_none() {
        bail!(
            "{} does not compile:\n{}",
            dir.display(),
            edetail_authoring::render_human(&c.diagnostics, false)
        );
    }
    Ok(c)
}

pub struct Site {
    root: tempfile::TempDir,
    addr: Option<SocketAddr>,
    receiver: Option<Receiver>,
    out: PathBuf,
}

impl Site {
    /// A fresh site root with the runtime copied in (not yet serving).
    pub fn new() -> Result<Site> {
        let root = tempfile::tempdir()?;
        copy_dir(&dist_www()?, &root.path().join("www"))?;
        let out = root.path().join("events.jsonl");
        Ok(Site {
            root,
            addr: None,
            receiver: None,
            out,
        })
    }

    pub fn www(&self) -> PathBuf {
        self.root.path().join("www")
    }

    /// Write a bundle to `/bundles/<name>/`; returns its hash.
    pub fn add_bundle(&self, name: &str, bundle: &Bundle, c: &Compiled) -> Result<String> {
        let dir = self.bundle_dir(name);
        std::fs::create_dir_all(&dir)?;
        Ok(edetail_authoring::write_bundle_dir(bundle, &c.assets, &dir)?)
    }

    pub fn bundle_dir(&self, name: &str) -> PathBuf {
        self.www().join("bundles").join(name)
    }

    /// Start serving (on the same port as before, if it served before).
    pub fn start(&mut self) -> Result<()> {
        if self.receiver.is_some() {
            return Ok(());
        }
        let addr = self
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut last = None;
        // The port was ours a moment ago; a rebind can race with the old sockets.
        for _ in 0..50 {
            match Receiver::start(Config {
                addr,
                dir: Some(self.www()),
                out: self.out.clone(),
                token: None,
            }) {
                Ok(r) => {
                    self.addr = Some(r.addr());
                    self.receiver = Some(r);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        bail!("cannot start the receiver on {addr}: {last:?}")
    }

    /// Stop serving: every request is refused until [`Site::start`].
    pub fn stop(&mut self) {
        if let Some(r) = self.receiver.take() {
            r.stop();
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
