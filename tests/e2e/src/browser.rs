//! Start a browser behind its WebDriver: Chromium via chromedriver (headless), WebKit
//! via WebKitGTK's WebKitWebDriver (MiniBrowser, on an Xvfb display we start when there
//! is no `DISPLAY`). Every process started here is killed when the [`Session`] drops.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::webdriver::WebDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    WebKit,
}

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver"];
const WEBKITDRIVER: &[&str] = &["/usr/bin/WebKitWebDriver"];
const MINIBROWSER: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    "/usr/libexec/webkit2gtk-4.1/MiniBrowser",
];

fn first_existing(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    pub const ALL: [Browser; 2] = [Browser::Chromium, Browser::WebKit];

    pub fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::WebKit => "webkit",
        }
    }

    /// Why this browser cannot run here, if it cannot.
    pub fn missing(self) -> Option<String> {
        match self {
            Browser::Chromium => {
                if first_existing("EDETAIL_CHROMIUM", CHROMIUM).is_none() {
                    return Some("chromium not found (EDETAIL_CHROMIUM)".into());
                }
                if first_existing("CHROMEDRIVER", CHROMEDRIVER).is_none() {
                    return Some("chromedriver not found (CHROMEDRIVER)".into());
                }
                None
            }
            Browser::WebKit => {
                if first_existing("WEBKIT_WEBDRIVER", WEBKITDRIVER).is_none() {
                    return Some("WebKitWebDriver not found (WEBKIT_WEBDRIVER)".into());
                }
                if first_existing("EDETAIL_MINIBROWSER", MINIBROWSER).is_none() {
                    return Some("WebKitGTK MiniBrowser not found (EDETAIL_MINIBROWSER)".into());
                }
                if std::env::var_os("DISPLAY").is_none() && which("Xvfb").is_none() {
                    return Some("no DISPLAY and no Xvfb".into());
                }
                None
            }
        }
    }

    /// Whether real W3C touch pointer actions reach the page as touch. WebKitWebDriver
    /// (WebKitGTK 2.50) accepts `pointerType: "touch"` actions but delivers them as
    /// mouse pointer events (`pointerType == "mouse"`, plus `mousedown`; no touch
    /// events), so WebKit finger swipes are dispatched as script PointerEvents with
    /// `pointerType: "touch"`. Its pen and mouse actions are real (`pen` / `mouse`).
    pub fn native_touch(self) -> bool {
        matches!(self, Browser::Chromium)
    }
}

pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

/// Whether a missing browser must fail the test (CI) rather than skip it.
pub fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `None` (and a note on stderr) when the browser is missing outside CI; panics in CI.
pub fn require(b: Browser) -> Option<Browser> {
    match b.missing() {
        None => Some(b),
        Some(why) if must_run() => panic!("{}: {why} (CI=true: browsers are required)", b.name()),
        Some(why) => {
            eprintln!("SKIPPED {}: {why}", b.name());
            None
        }
    }
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, what: &str, child: &mut Child) -> Result<()> {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            bail!("{what} exited before listening ({st})");
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A started Xvfb on a display it picked itself.
struct Xvfb {
    child: Child,
    display: String,
}

fn start_xvfb() -> Result<Xvfb> {
    let bin = which("Xvfb").ok_or_else(|| anyhow!("Xvfb not found"))?;
    let mut child = Command::new(bin)
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1920x1200x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Xvfb")?;
    let out = child.stdout.take().ok_or_else(|| anyhow!("Xvfb stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) if !line.trim().is_empty() => Ok(Xvfb {
            child,
            display: format!(":{}", line.trim()),
        }),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Xvfb did not report a display")
        }
    }
}

/// A browser session and the processes behind it.
pub struct Session {
    pub browser: Browser,
    pub wd: WebDriver,
    driver: Child,
    xvfb: Option<Xvfb>,
    _profile: tempfile::TempDir,
}

/// Options for [`launch`].
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Extra Chromium command-line flags (ignored for WebKit).
    pub chromium_args: Vec<String>,
}

pub fn launch(browser: Browser, opts: &LaunchOptions) -> Result<Session> {
    if let Some(why) = browser.missing() {
        bail!("{}: {why}", browser.name());
    }
    let profile = tempfile::tempdir()?;
    let port = free_port()?;
    let (mut driver, xvfb, caps) = match browser {
        Browser::Chromium => {
            let bin = first_existing("EDETAIL_CHROMIUM", CHROMIUM).unwrap_or_default();
            let drv = first_existing("CHROMEDRIVER", CHROMEDRIVER).unwrap_or_default();
            let child = Command::new(&drv)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", drv.display()))?;
            let mut args: Vec<String> = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1024,768",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            args.extend(opts.chromium_args.iter().cloned());
            let caps = json!({
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": bin.display().to_string(), "args": args }
            });
            (child, None, caps)
        }
        Browser::WebKit => {
            let drv = first_existing("WEBKIT_WEBDRIVER", WEBKITDRIVER).unwrap_or_default();
            let mini = first_existing("EDETAIL_MINIBROWSER", MINIBROWSER).unwrap_or_default();
            let xvfb = if std::env::var_os("DISPLAY").is_none() {
                Some(start_xvfb()?)
            } else {
                None
            };
            let mut cmd = Command::new(&drv);
            cmd.arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Keep MiniBrowser's data in the temp profile.
                .env("XDG_DATA_HOME", profile.path().join("data"))
                .env("XDG_CACHE_HOME", profile.path().join("cache"))
                .env("XDG_CONFIG_HOME", profile.path().join("config"));
            if let Some(x) = &xvfb {
                cmd.env("DISPLAY", &x.display);
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", drv.display()))?;
            let caps = json!({
                "webkitgtk:browserOptions": {
                    "binary": mini.display().to_string(),
                    "args": ["--automation"]
                }
            });
            (child, xvfb, caps)
        }
    };
    if let Err(e) = wait_port(port, browser.name(), &mut driver) {
        let _ = driver.kill();
        let _ = driver.wait();
        return Err(e);
    }
    match WebDriver::connect(&format!("http://127.0.0.1:{port}"), caps) {
        Ok(wd) => Ok(Session {
            browser,
            wd,
            driver,
            xvfb,
            _profile: profile,
        }),
        Err(e) => {
            let _ = driver.kill();
            let _ = driver.wait();
            if let Some(mut x) = xvfb {
                let _ = x.child.kill();
                let _ = x.child.wait();
            }
            Err(e)
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.wd.quit();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(x) = &mut self.xvfb {
            let _ = x.child.kill();
            let _ = x.child.wait();
        }
    }
}

/// Path helper: the workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
