//! A deck opened before shows its first slide at once, from the copy of its first view
//! the player kept (the runtime's `snapshot` module, `www/boot.js`), in Chromium and
//! WebKit:
//!
//! - the first open shows no copy and keeps one: only the current slide, no dialogs,
//!   live region, ids, test ids or blob URLs, with the bundle's approval window;
//! - the next open shows it (`performance.mark("edetail:snapshot")`), and the player
//!   replaces it: no copy left, one current slide, the player's own;
//! - no copy outside the approval window (either side), for another shell build, from
//!   unreadable stored data, nor at another window size;
//! - a player that cannot start (no wasm): boot.js's error screen replaces the copy;
//! - a bundle that now fails its hash check: the copy is replaced by the refusal and
//!   forgotten (the next open shows none).
//!
//! Needs dist/www (`cargo xtask runtime`); `cargo test -p edetail-e2e --test snapshot`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use edetail_e2e::browser::Session;
use edetail_e2e::player;
use edetail_e2e::site::{Site, compile_sample};
use edetail_e2e::webdriver::WebDriver;
use serde_json::{Value, json};

use edetail_e2e::in_both_browsers;

in_both_browsers!(a_deck_opened_before_shows_its_first_slide_at_once);

/// This page's stored entry, if any.
const ENTRY: &str = "const all = JSON.parse(localStorage.getItem('edetail.snapshots') || 'null');
    const page = location.pathname + location.search;
    return (all && all.entries.find(e => e.page === page)) || null;";

/// Whether boot.js showed a copy on this page load.
fn shown(wd: &WebDriver) -> Result<bool> {
    Ok(wd
        .js(
            "return performance.getEntriesByName('edetail:snapshot').length > 0",
            vec![],
        )?
        .as_bool()
        == Some(true))
}

/// No copy is left in the page (the player's view or an error screen replaced it).
fn no_copy_left(wd: &WebDriver) -> Result<()> {
    let left = wd.js(
        "return document.querySelectorAll('#edetail-snapshot').length",
        vec![],
    )?;
    ensure!(left == json!(0), "the copy is still in the page: {left}");
    Ok(())
}

/// Open `url` and wait for the player (or a refusal); then no copy may be left.
fn open(wd: &WebDriver, url: &str) -> Result<bool> {
    player::open(wd, url)?;
    no_copy_left(wd)?;
    shown(wd)
}

/// Wait for this page load's player to write this page's entry after its first paint
/// (`edetail:snapshot-saved`): then it is for this window size and shell, inside its
/// approval window (an entry the test changed, or one of another size, is replaced).
fn wait_entry(wd: &WebDriver) -> Result<Value> {
    wd.wait_js(
        "the player to keep a copy of its first view",
        &format!(
            "(() => {{ if (!performance.getEntriesByName('edetail:snapshot-saved').length) return null;
               const e = (() => {{ {ENTRY} }})(); const today = new Date().toISOString().slice(0, 10);
               return e && e.w === innerWidth && e.h === innerHeight && e.shell === window.__edetailShell
                 && e.from <= today && today <= e.until && e; }})()"
        ),
        Duration::from_secs(10),
    )
}

/// Rewrite this page's stored entry (`field` = `value`).
fn set_field(wd: &WebDriver, field: &str, value: &str) -> Result<()> {
    wd.js(
        "const all = JSON.parse(localStorage.getItem('edetail.snapshots'));
         const page = location.pathname + location.search;
         for (const e of all.entries) if (e.page === page) e[arguments[0]] = arguments[1];
         localStorage.setItem('edetail.snapshots', JSON.stringify(all));",
        vec![json!(field), json!(value)],
    )?;
    Ok(())
}

fn a_deck_opened_before_shows_its_first_slide_at_once(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let mut site = Site::new_with(std::path::Path::new(env!("CARGO_BIN_EXE_e2e-receiver")))?;
    let c = compile_sample("en-dosing-guide")?;
    let b = c.bundle.clone().context("bundle")?;
    site.add_bundle("deck", &b, &c)?;
    site.start()?;
    let url = site.player_url("deck", "mode=self");

    // First open: nothing to show yet; the player keeps its first view.
    ensure!(!open(wd, &url)?, "a copy was shown on the very first open");
    let first = player::current(wd)?;
    let entry = wait_entry(wd)?;
    let parts = wd.js(
        "const d = document.createElement('div'); d.innerHTML = arguments[0];
         return {
           slides: [...d.querySelectorAll('.slide')].map(s => s.getAttribute('data-slide-id') + (s.classList.contains('is-current') ? '*' : '')),
           ids: d.querySelectorAll('[id],[data-testid]').length,
           left_out: d.querySelectorAll('.overlay,[role=dialog],[aria-live],.tray,video source').length,
           blobs: d.querySelectorAll('[src^=\"blob:\"],[poster^=\"blob:\"]').length,
           bar: d.querySelectorAll('nav.bar').length,
         };",
        vec![entry["html"].clone()],
    )?;
    ensure!(
        parts
            == json!({"slides": [format!("{first}*")], "ids": 0, "left_out": 0, "blobs": 0, "bar": 1}),
        "the copy holds more or less than the first view: {parts}"
    );
    ensure!(
        entry["from"] == json!(b.approval.valid_from)
            && entry["until"] == json!(b.approval.valid_until),
        "the copy's approval window is not the bundle's: {} .. {}",
        entry["from"],
        entry["until"]
    );

    // The next open shows it at once; the player takes over from it.
    ensure!(open(wd, &url)?, "the second open showed no copy");
    ensure!(
        player::current(wd)? == first,
        "the player does not start on the first slide"
    );
    let current = wd.js(
        "return document.querySelectorAll('.slide.is-current').length",
        vec![],
    )?;
    ensure!(
        current == json!(1),
        "{current} current slides after the copy"
    );

    // Outside the approval window, on either side: not shown (the player still checks
    // the bundle itself; its window is valid, so it presents and keeps a new copy).
    for (field, value) in [("until", "2000-01-01"), ("from", "2999-01-01")] {
        wait_entry(wd)?;
        set_field(wd, field, value)?;
        ensure!(
            !open(wd, &url)?,
            "a copy was shown with {field} = {value}, outside its approval window"
        );
    }
    // A copy of another shell build: not shown.
    wait_entry(wd)?;
    set_field(wd, "shell", "another-build")?;
    ensure!(!open(wd, &url)?, "a copy of another shell build was shown");

    // Unreadable stored data: no copy, the player starts, and it writes a readable list.
    wait_entry(wd)?;
    wd.js(
        "localStorage.setItem('edetail.snapshots', '{not json')",
        vec![],
    )?;
    ensure!(!open(wd, &url)?, "a copy was shown from unreadable data");

    // Another window size: not shown (the canvas scale is in the copy).
    wait_entry(wd)?;
    wd.set_viewport(810, 1080)?;
    ensure!(!open(wd, &url)?, "a copy was shown at another window size");
    wd.set_viewport(1024, 768)?;
    open(wd, &url)?;
    wait_entry(wd)?;

    // The player cannot start (its wasm is missing, in a copy of the shell under
    // /broken/): boot.js's error screen replaces the copy.
    let broken = site.www().join("broken");
    std::fs::create_dir_all(&broken)?;
    for f in ["index.html", "boot.js", "edetail_runtime.js", "style.css"] {
        std::fs::copy(site.www().join(f), broken.join(f))?;
    }
    wd.js(
        "const all = JSON.parse(localStorage.getItem('edetail.snapshots'));
         const e = all.entries.find(e => e.page === location.pathname + location.search);
         all.entries.push(Object.assign({}, e, { page: '/broken/' + location.search }));
         localStorage.setItem('edetail.snapshots', JSON.stringify(all));",
        vec![],
    )?;
    wd.goto(&url.replacen("/?", "/broken/?", 1))?;
    wd.wait_js(
        "the error screen of a player that could not start",
        "document.querySelector('#boot.refusal') && document.getElementById('boot').textContent.includes('could not start')",
        Duration::from_secs(20),
    )?;
    ensure!(shown(wd)?, "no copy was shown on the broken page");
    no_copy_left(wd)?;

    // The bundle now fails its hash check (served network-first): the copy shows, the
    // refusal replaces it, and the copy is forgotten.
    let file = site.bundle_dir("deck").join("bundle.json");
    let text = std::fs::read_to_string(&file)?;
    let tampered = text.replacen(&b.deck.title, &format!("{} (edited)", b.deck.title), 1);
    ensure!(tampered != text, "could not tamper with the bundle");
    std::fs::write(&file, tampered)?;
    ensure!(open(wd, &url)?, "no copy was shown before the check failed");
    let reason = wd.js(
        "const r = document.querySelector('[data-testid=refusal]'); return r && r.getAttribute('data-reason');",
        vec![],
    )?;
    ensure!(
        reason == json!("integrity"),
        "a tampered bundle after a copy: {reason}, not the integrity refusal"
    );
    let entry = wd.js(ENTRY, vec![])?;
    ensure!(entry.is_null(), "the refused bundle's copy was kept");
    ensure!(
        !open(wd, &url)?,
        "a copy was shown after its bundle was refused"
    );
    Ok(())
}
