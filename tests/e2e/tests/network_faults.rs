//! Issue #5, faults in a real browser (Chromium and WebKit): an MR-led session on the
//! Korean sample (keys, swipes, overview jumps, a popup, a quiz answer) during which the
//! network to the site and its ingest endpoint is cut and restored 20 times (the test
//! receiver process is killed: every connection drops, new ones are refused; then it
//! comes back on the same port and JSONL file) and the page is reloaded 5 times (3 of
//! them while the network is cut: the service worker serves the app). In the end the
//! receiver holds exactly the events the page produced: every id the runtime emitted
//! (`window.__edetailEvents`, read before each reload and at the end) is stored, no id
//! twice, the sequence numbers of every session are gap-free, and the only stored
//! events the hook did not list are those emitted while a page unloaded (after its last
//! read), of the session the test drove.
//!
//! The schedule is deterministic (no random waits); the CI version makes 20 cuts and 5
//! reloads per browser. `EDETAIL_FAULT_LONG=1` makes 100 cuts and 20 reloads.
//!
//! ```sh
//! cargo xtask runtime && cargo test -p edetail-e2e --test network_faults
//! EDETAIL_FAULT_LONG=1 cargo test -p edetail-e2e --test network_faults
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use edetail_e2e::browser::Session;
use edetail_e2e::harness::{check_sequences, emitted, ids, settle};
use edetail_e2e::in_both_browsers;
use edetail_e2e::player::{self, WAIT, wait_current};
use edetail_e2e::site::{Site, compile_sample};
use edetail_e2e::webdriver::{PointerKind, WebDriver, keys};
use serde_json::{Value, json};

in_both_browsers!(cut_and_reload_deliver_exactly_the_events_produced);

fn long() -> bool {
    std::env::var("EDETAIL_FAULT_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

const HCP: &str = "h-e2e-faults";

/// The slides of the Korean sample's first sections, in flow order.
const FLOW: &[&str] = &[
    "title",
    "burden",
    "unmet-need",
    "moa",
    "quiz-moa",
    "efficacy-section",
];

fn go_to(wd: &WebDriver, slide: &str) -> Result<()> {
    if player::current(wd)? != slide {
        player::overview_jump(wd, slide)?;
    }
    Ok(())
}

/// One scripted interaction, chosen by the cycle number.
fn interact(s: &Session, i: usize, answered: &mut bool) -> Result<()> {
    let wd = &s.wd;
    let here = player::current(wd)?;
    let pos = FLOW.iter().position(|x| *x == here);
    match i % 5 {
        0 => {
            // Forward by key (back to the start at the end of our flow).
            match pos {
                Some(p) if p + 1 < FLOW.len() => {
                    wd.press(keys::ARROW_RIGHT)?;
                    wait_current(wd, FLOW[p + 1])?;
                }
                _ => {
                    wd.press(keys::HOME)?;
                    wait_current(wd, FLOW[0])?;
                }
            }
        }
        1 => {
            // A finger swipe forward (or back from the last slide of our flow).
            match pos {
                Some(p) if p + 1 < FLOW.len() => {
                    player::swipe(wd, s.browser, PointerKind::Touch, true)?;
                    wait_current(wd, FLOW[p + 1]).context("swipe forward")?;
                }
                Some(p) if p > 0 => {
                    player::swipe(wd, s.browser, PointerKind::Touch, false)?;
                    wait_current(wd, FLOW[p - 1]).context("swipe back")?;
                }
                _ => {
                    wd.press(keys::ARROW_RIGHT)?;
                    settle(wd)?;
                }
            }
        }
        2 => {
            // The pharmacokinetics popup on the mechanism slide.
            go_to(wd, "moa")?;
            player::open_popup(wd, "pk")?;
            settle(wd)?;
            wd.press(keys::ESCAPE)?;
            wd.wait_js(
                "the popup to close",
                "!document.querySelector('[data-testid=popup]')",
                WAIT,
            )?;
        }
        3 => {
            // The quiz, answered once.
            go_to(wd, "quiz-moa")?;
            if !*answered {
                wd.click_css(
                    ".slide.is-current [data-component=q-moa] .ed-option[data-option=gastric]",
                )?;
                wd.wait_js(
                    "quiz feedback",
                    "document.querySelector('.slide.is-current [data-component=q-moa].answered')",
                    WAIT,
                )?;
                *answered = true;
            }
        }
        _ => {
            // Back by key.
            match pos {
                Some(p) if p > 0 => {
                    wd.press(keys::ARROW_LEFT)?;
                    wait_current(wd, FLOW[p - 1])?;
                }
                _ => {
                    wd.press(keys::ARROW_RIGHT)?;
                    settle(wd)?;
                }
            }
        }
    }
    Ok(())
}

/// Record what this document emitted, reload, resume the call.
fn reload(wd: &WebDriver, produced: &mut BTreeMap<String, Value>) -> Result<()> {
    for e in emitted(wd)? {
        if let Some(id) = e["id"].as_str() {
            produced.insert(id.to_string(), e);
        }
    }
    wd.refresh()?;
    player::wait_loaded(wd)?;
    ensure!(
        wd.js(
            "return !!document.querySelector('[data-testid=player]')",
            vec![]
        )? == json!(true),
        "the reload did not show the player: {}",
        wd.js("return document.body.innerText.slice(0, 300)", vec![])?
    );
    // MR-led: the start-call screen; the same call resumes.
    player::enter(wd, HCP)?;
    Ok(())
}

fn cut_and_reload_deliver_exactly_the_events_produced(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let (cuts, reloads) = if long() { (100, 20) } else { (20, 5) };
    let mut site = Site::new_with(std::path::Path::new(env!("CARGO_BIN_EXE_e2e-receiver")))?;
    let c = compile_sample("ko-zentara-launch")?;
    site.add_bundle("ko", c.bundle.as_ref().context("bundle")?, &c)?;
    site.start()?;
    wd.set_viewport(1024, 768)?;
    player::open(wd, &site.player_url("ko", "mode=mr"))?;
    player::enter(wd, HCP)?;
    // The bundle was fetched before the service worker existed: one online reload
    // puts it in the worker's cache, so that reloads while cut work (NEEDS.md #4).
    player::wait_controlled(wd, Duration::from_secs(20))?;
    let mut produced: BTreeMap<String, Value> = BTreeMap::new();
    reload(wd, &mut produced)?;

    // Reloads spread evenly over the cycles: the k-th in cycle k*every + every/2,
    // while cut for even k (the service worker serves the app), online for odd k.
    let every = cuts / reloads;
    let mut answered = false;
    let mut reloads_done = 0;
    let mut offline_reloads = 0;
    for i in 0..cuts {
        let reload_k = (i % every == every / 2).then_some(i / every);
        site.stop();
        interact(s, i, &mut answered).with_context(|| format!("cut {i}"))?;
        if let Some(k) = reload_k
            && k % 2 == 0
        {
            reload(wd, &mut produced).with_context(|| format!("offline reload in cut {i}"))?;
            reloads_done += 1;
            offline_reloads += 1;
        }
        interact(s, i + 2, &mut answered).with_context(|| format!("cut {i}"))?;
        site.start()?;
        // Online for a moment: the tracker may deliver part of its outbox.
        wd.js(
            "window.dispatchEvent(new Event('online')); return true;",
            vec![],
        )?;
        interact(s, i + 4, &mut answered).with_context(|| format!("after cut {i}"))?;
        if let Some(k) = reload_k
            && k % 2 == 1
        {
            reload(wd, &mut produced).with_context(|| format!("online reload after cut {i}"))?;
            reloads_done += 1;
        }
        settle(wd)?;
    }
    ensure!(
        reloads_done == reloads,
        "schedule: {reloads_done} reloads, want {reloads}"
    );
    ensure!(answered, "the quiz was never answered");

    // Everything delivered: wait for an empty outbox, then compare.
    wd.js(
        "window.dispatchEvent(new Event('online')); return true;",
        vec![],
    )?;
    player::wait_outbox_empty(wd, Duration::from_secs(60))?;
    for e in emitted(wd)? {
        if let Some(id) = e["id"].as_str() {
            produced.insert(id.to_string(), e);
        }
    }
    // The last document's pending unload events are not in play: the page stays.
    let stored_events = site.events()?;
    check_sequences(&stored_events)?;
    let stored = ids(&stored_events);
    ensure!(
        stored.len() == stored_events.len(),
        "duplicate ids in the store"
    );
    let produced_ids: BTreeSet<String> = produced.keys().cloned().collect();
    let lost: Vec<_> = produced_ids.difference(&stored).collect();
    ensure!(
        lost.is_empty(),
        "{} events the page emitted were never stored: {:?}",
        lost.len(),
        lost.iter()
            .map(|id| produced[id.as_str()].to_string())
            .collect::<Vec<_>>()
    );
    // Stored but never listed: only unload-time events (emitted after the last read of
    // a document, delivered by the next), of our sessions.
    let sessions: HashSet<&str> = produced
        .values()
        .filter_map(|e| e["session_id"].as_str())
        .collect();
    let extra: Vec<&Value> = stored_events
        .iter()
        .filter(|e| !produced_ids.contains(e["id"].as_str().unwrap_or("")))
        .collect();
    for e in &extra {
        ensure!(
            sessions.contains(e["session_id"].as_str().unwrap_or("")),
            "stored event of an unknown session: {e}"
        );
        let ty = e["type"].as_str().unwrap_or("");
        ensure!(
            matches!(ty, "slide_view" | "visibility" | "session_end"),
            "stored event the page never listed that is not an unload event: {e}"
        );
    }
    // Each reload (the scheduled ones and the first online one) leaves at most a
    // closing slide_view, a visibility change and a session end.
    ensure!(
        extra.len() <= 3 * (reloads_done + 1),
        "{} unlisted events for {} reloads",
        extra.len(),
        reloads_done + 1
    );
    let answers: Vec<&Value> = stored_events
        .iter()
        .filter(|e| e["type"] == "answer")
        .collect();
    ensure!(answers.len() == 1, "answers stored: {answers:?}");
    ensure!(
        stored_events.iter().any(|e| e["type"] == "popup_open"),
        "no popup_open stored"
    );
    eprintln!(
        "{}: {cuts} cuts, {reloads_done} reloads ({offline_reloads} offline): {} events stored, {} emitted-and-listed, {} unload events; {} sessions",
        s.browser.name(),
        stored_events.len(),
        produced_ids.len(),
        extra.len(),
        sessions.len()
    );
    Ok(())
}
