//! Runtime benchmark in headless Chromium on localhost:
//!
//! `cargo run --release -p edetail-e2e --example runtime_bench [-- --runs N]`
//!
//! 1. First slide: navigation start -> the current slide is in the DOM (a
//!    MutationObserver injected at the top of index.html, `performance.now()` is
//!    relative to navigation start) and -> the next animation frame after it (painted),
//!    plus first-contentful-paint. Cold: a fresh browser profile per run (no HTTP cache,
//!    no service worker). From the service-worker cache: same browser, the server
//!    stopped, page reloaded (everything comes from the SW caches).
//! 2. Slide changes: a 200-change walk (ArrowRight) through a synthetic deck. Per
//!    change: main-thread work from the keydown (capture listener) to the end of the
//!    task and its microtasks, where the Yew render runs (a MessageChannel message
//!    posted from the keydown), and keydown -> next animation frame. Long tasks
//!    (PerformanceObserver `longtask`, > 50 ms) over the walk.
//! 3. JS heap growth over the walk (`performance.memory.usedJSHeapSize` with
//!    `--enable-precise-memory-info`, after `gc()` from `--js-flags=--expose-gc`), and
//!    the wasm linear memory size before/after.
//!
//! Prints medians (and spread) with the budgets; it measures, it does not assert.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edetail_e2e::browser::{Browser, LaunchOptions, Session, launch};
use edetail_e2e::player;
use edetail_e2e::site::{Site, compile_dir};
use edetail_e2e::webdriver::keys;
use serde_json::Value;

const PROBE: &str = r#"<script>
(() => {
  window.__bench = { slide: null, painted: null, fcp: null };
  const seen = () => {
    if (window.__bench.slide === null && document.querySelector('.slide.is-current')) {
      window.__bench.slide = performance.now();
      requestAnimationFrame(() => { window.__bench.painted = performance.now(); });
      return true;
    }
    return false;
  };
  const mo = new MutationObserver(() => { if (seen()) mo.disconnect(); });
  mo.observe(document.documentElement, { childList: true, subtree: true });
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.name === 'first-contentful-paint') window.__bench.fcp = e.startTime; })
      .observe({ type: 'paint', buffered: true });
  } catch (e) {}
})();
</script>"#;

fn receiver_bin() -> Result<std::path::PathBuf> {
    // The example is built next to the `e2e-receiver` binary of this package.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("target dir")?;
    let bin = dir.join("e2e-receiver");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p edetail-e2e --bins)",
            bin.display()
        );
    }
    Ok(bin)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn chromium() -> Result<Session> {
    launch(
        Browser::Chromium,
        &LaunchOptions {
            chromium_args: vec![
                "--enable-precise-memory-info".into(),
                "--js-flags=--expose-gc".into(),
            ],
        },
    )
}

/// Load and wait for the probe's numbers: (slide in DOM, next frame, FCP) in ms.
fn first_slide(s: &Session, url: &str, reload: bool) -> Result<(f64, f64, f64)> {
    if reload {
        s.wd.refresh()?;
    } else {
        s.wd.goto(url)?;
    }
    let v = s.wd.wait_js(
        "the probe",
        "window.__bench && window.__bench.painted !== null && window.__bench",
        Duration::from_secs(30),
    )?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok((f("slide"), f("painted"), f("fcp")))
}

fn report(name: &str, v: &mut [f64], budget: Option<f64>) {
    let m = median(v);
    let (lo, hi) = (pct(v, 0.0), pct(v, 1.0));
    let verdict = match budget {
        Some(b) if m <= b => format!("  (budget {b} ms: within)"),
        Some(b) => format!("  (budget {b} ms: OVER)"),
        None => String::new(),
    };
    println!(
        "{name:<48} median {m:8.2} ms  min {lo:8.2}  max {hi:8.2}  n={}{verdict}",
        v.len()
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    if let Some(why) = Browser::Chromium.missing() {
        bail!("Chromium is needed: {why}");
    }
    // A synthetic deck whose main flow has more than 200 slides.
    let tmp = tempfile::tempdir()?;
    let deck = tmp.path().join("deck");
    edetail_authoring::synth::write_deck(&deck, 225)?;
    let c = compile_dir(&deck)?;
    let bundle = c.bundle.clone().context("bundle")?;
    let flow: usize = bundle.flow.iter().map(|s| s.slides.len()).sum();
    let mut site = Site::new_with(&receiver_bin()?)?;
    site.add_bundle("synth", &bundle, &c)?;
    // The probe goes first in <head>, before the app's module script.
    let index = site.www().join("index.html");
    let html = std::fs::read_to_string(&index)?.replacen("<head>", &format!("<head>{PROBE}"), 1);
    std::fs::write(&index, html)?;
    site.start()?;
    let url = site.player_url("synth", "mode=self");
    println!(
        "runtime_bench: synthetic deck, {} slides ({flow} in the main flow), {runs} runs, headless Chromium, {} cores",
        bundle.slides.len(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1a. Cold: a new profile each run.
    let (mut cold_dom, mut cold_paint, mut cold_fcp) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let s = chromium()?;
        s.wd.set_viewport(1024, 768)?;
        let (d, p, f) = first_slide(&s, &url, false)?;
        cold_dom.push(d);
        cold_paint.push(p);
        cold_fcp.push(f);
    }
    // 1b. From the SW cache: install, one online reload (bundle through the SW), then
    // the server goes away and every measured load comes from the caches.
    let s = chromium()?;
    s.wd.set_viewport(1024, 768)?;
    first_slide(&s, &url, false)?;
    s.wd.wait_js(
        "the service worker",
        "navigator.serviceWorker && navigator.serviceWorker.controller",
        Duration::from_secs(20),
    )?;
    first_slide(&s, &url, true)?;
    site.stop();
    let (mut sw_dom, mut sw_paint, mut sw_fcp) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let (d, p, f) = first_slide(&s, &url, true)?;
        if !s
            .wd
            .js(
                "return !!document.querySelector('[data-testid=player]')",
                vec![],
            )?
            .as_bool()
            .unwrap_or(false)
        {
            bail!("offline reload did not present the deck");
        }
        sw_dom.push(d);
        sw_paint.push(p);
        sw_fcp.push(f);
    }
    site.start()?;

    // 2 + 3. The walk, in the same browser (online again).
    first_slide(&s, &url, true)?;
    player::enter(&s.wd, "")?;
    let wd = &s.wd;
    wd.js(
        "window.__walk = { work: [], frame: [], long: [] };
         try { new PerformanceObserver(l => { for (const e of l.getEntries()) window.__walk.long.push(e.duration); })
           .observe({ type: 'longtask' }); window.__walk.longtask = true; } catch (e) { window.__walk.longtask = false; }
         window.addEventListener('keydown', () => {
           const t0 = performance.now();
           const ch = new MessageChannel();
           ch.port1.onmessage = () => window.__walk.work.push(performance.now() - t0);
           ch.port2.postMessage(0);
           requestAnimationFrame(() => window.__walk.frame.push(performance.now() - t0));
         }, true);
         return true;",
        vec![],
    )?;
    let heap = |wd: &edetail_e2e::webdriver::WebDriver| -> Result<Value> {
        wd.js_async(
            "const done = arguments[arguments.length - 1];
             if (window.gc) { window.gc(); window.gc(); }
             setTimeout(async () => {
               let wasm = null;
               try { const m = await import('./edetail_runtime.js'); const x = await m.default(); wasm = x.memory.buffer.byteLength; } catch (e) {}
               done({ heap: performance.memory ? performance.memory.usedJSHeapSize : null, gc: !!window.gc, wasm });
             }, 200);",
            vec![],
        )
    };
    let h0 = heap(wd)?;
    let changes = 200.min(flow.saturating_sub(1));
    let mut before = player::current(wd)?;
    for i in 0..changes {
        wd.press(keys::ARROW_RIGHT)?;
        // Build steps take a press each without turning the slide: press until it turns.
        let mut turned = false;
        for _ in 0..20 {
            let now = player::current(wd)?;
            if now != before {
                before = now;
                turned = true;
                break;
            }
            wd.press(keys::ARROW_RIGHT)?;
        }
        if !turned {
            bail!("slide change {i} did not happen");
        }
    }
    wd.js_async(
        "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => setTimeout(() => done(true), 100));",
        vec![],
    )?;
    let h1 = heap(wd)?;
    let w = wd.js("return window.__walk", vec![])?;
    let nums = |k: &str| -> Vec<f64> {
        w[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (mut work, mut frame, long) = (nums("work"), nums("frame"), nums("long"));

    println!();
    report("first slide in DOM, cold", &mut cold_dom, Some(200.0));
    report(
        "first slide painted (next frame), cold",
        &mut cold_paint,
        Some(200.0),
    );
    report("first-contentful-paint, cold", &mut cold_fcp, None);
    report(
        "first slide in DOM, SW cache (server down)",
        &mut sw_dom,
        Some(100.0),
    );
    report(
        "first slide painted (next frame), SW cache",
        &mut sw_paint,
        Some(100.0),
    );
    report("first-contentful-paint, SW cache", &mut sw_fcp, None);
    println!();
    println!("walk: {changes} slide changes, {} key presses", work.len());
    report(
        "main-thread work per key press (task+render)",
        &mut work,
        Some(4.0),
    );
    println!(
        "{:<48} p90 {:8.2} ms  max {:8.2} ms",
        "",
        pct(&mut work, 0.9),
        pct(&mut work, 1.0)
    );
    report("keydown -> next animation frame", &mut frame, None);
    let max_long = long.iter().copied().fold(0.0, f64::max);
    println!(
        "long tasks (>50 ms) during the walk: {} (longest {max_long:.1} ms; observer supported: {})",
        long.len(),
        w["longtask"]
    );
    let growth =
        |k: &str| -> Option<f64> { Some((h1[k].as_f64()? - h0[k].as_f64()?) / 1_048_576.0) };
    println!(
        "JS heap: {:.2} MB -> {:.2} MB, growth {:.2} MB after gc (gc available: {}) (budget 5 MB)",
        h0["heap"].as_f64().unwrap_or(f64::NAN) / 1_048_576.0,
        h1["heap"].as_f64().unwrap_or(f64::NAN) / 1_048_576.0,
        growth("heap").unwrap_or(f64::NAN),
        h1["gc"]
    );
    println!(
        "wasm linear memory: {:.2} MB -> {:.2} MB",
        h0["wasm"].as_f64().unwrap_or(f64::NAN) / 1_048_576.0,
        h1["wasm"].as_f64().unwrap_or(f64::NAN) / 1_048_576.0
    );
    Ok(())
}
