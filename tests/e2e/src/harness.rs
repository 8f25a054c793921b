//! Shared browser-test harness (`tests/runtime.rs`, `tests/signing.rs`,
//! `tests/network_faults.rs`, `tests/xss_browser.rs`): one browser at a time, a
//! screenshot on failure, event-log checks.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::browser::{Browser, LaunchOptions, Session, launch, require};
use crate::webdriver::WebDriver;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Run `f` with a fresh browser of kind `b` (skipped outside CI if it is missing); on
/// failure, panic with the error and keep a screenshot in the temp dir.
pub fn with_browser(b: Browser, test: &str, f: impl FnOnce(&Session) -> Result<()>) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = require(b) else { return };
    let t0 = Instant::now();
    let session = launch(b, &LaunchOptions::default())
        .unwrap_or_else(|e| panic!("{}: cannot start: {e:#}", b.name()));
    let r = f(&session);
    if let Err(e) = r {
        let shot =
            std::env::temp_dir().join(format!("edetail-e2e-failure-{test}-{}.png", b.name()));
        if let Ok(png) = session.wd.screenshot() {
            let _ = std::fs::write(&shot, png);
        }
        panic!(
            "{} failed after {:?}: {e:#}\n(screenshot: {})",
            b.name(),
            t0.elapsed(),
            shot.display()
        );
    }
    eprintln!("{test}: {} passed in {:?}", b.name(), t0.elapsed());
}

/// Navigate with a 45 s page-load limit and one retry. Chromium's first navigation of
/// a fresh session in the XSS tests now and then never reaches its load event (the page
/// has parsed and shows "Loading…"; seen in about 1 run of 5, on a loaded and on a quiet
/// machine; cause not found); a second navigation has loaded. Each attempt is a fresh
/// page, so what a test checks afterwards is unaffected.
pub fn goto_retrying(wd: &WebDriver, url: &str) -> Result<()> {
    wd.cmd(
        "POST",
        "/timeouts",
        Some(serde_json::json!({ "pageLoad": 45_000 })),
    )?;
    match wd.goto(url) {
        Ok(()) => Ok(()),
        Err(first) => {
            eprintln!("navigation to {url} did not finish ({first:#}); retrying once");
            wd.goto(url)
                .with_context(|| format!("second navigation to {url} (first: {first:#})"))
        }
    }
}

/// `in_both_browsers!(f, g)` makes `f::chromium`, `f::webkit`, … tests that call
/// `f(&Session)` through [`with_browser`].
#[macro_export]
macro_rules! in_both_browsers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn chromium() {
                $crate::harness::with_browser(
                    $crate::browser::Browser::Chromium,
                    stringify!($name),
                    super::$name,
                );
            }
            #[test]
            fn webkit() {
                $crate::harness::with_browser(
                    $crate::browser::Browser::WebKit,
                    stringify!($name),
                    super::$name,
                );
            }
        }
    )*};
}

/// Two animation frames and a short pause: enough for a Yew render after an input.
pub fn settle(wd: &WebDriver) -> Result<()> {
    wd.js_async(
        "const done = arguments[arguments.length - 1];
         requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => done(true), 80)));",
        vec![],
    )?;
    Ok(())
}

/// Every id once; per session, seq numbers 0..n without gaps or repeats.
pub fn check_sequences(events: &[Value]) -> Result<()> {
    let mut ids = HashSet::new();
    let mut by_session: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<(String, u64), String> = BTreeMap::new();
    for e in events {
        let id = e["id"].as_str().context("event without id")?;
        ensure!(ids.insert(id.to_string()), "event id {id} stored twice");
        let sid = e["session_id"].as_str().unwrap_or("").to_string();
        let seq = e["seq"].as_u64().context("event without seq")?;
        kinds.insert(
            (sid.clone(), seq),
            e["type"].as_str().unwrap_or("?").to_string(),
        );
        by_session.entry(sid).or_default().push(seq);
    }
    for (sid, mut seqs) in by_session {
        seqs.sort_unstable();
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        let listing: Vec<String> = kinds
            .range((sid.clone(), 0)..(sid.clone(), u64::MAX))
            .map(|((_, q), t)| format!("{q}:{t}"))
            .collect();
        ensure!(
            seqs == expected,
            "session {sid}: seq numbers have gaps or repeats: {listing:?}"
        );
    }
    Ok(())
}

/// The `id`s of events (JSON objects).
pub fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

/// The page's `window.__edetailEvents` test hook: `{id, seq, type, session_id}` of every
/// event the runtime emitted in this document.
pub fn emitted(wd: &WebDriver) -> Result<Vec<Value>> {
    let v = wd.js("return window.__edetailEvents || []", vec![])?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// The `edetail` binary: `EDETAIL_BIN`, or built next to this test binary.
pub fn edetail_bin() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("EDETAIL_BIN") {
        return Ok(std::path::PathBuf::from(p));
    }
    // <target>/debug/deps/<test>-<hash> -> <target>
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(std::path::Path::parent)
        .and_then(std::path::Path::parent)
        .context("target dir")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "edetail"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(crate::browser::workspace_root())
        .status()
        .context("building edetail")?;
    ensure!(st.success(), "cargo build -p edetail failed");
    Ok(target.join("debug").join("edetail"))
}
