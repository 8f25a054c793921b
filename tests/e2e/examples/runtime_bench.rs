//! Runtime benchmark in headless Chromium on localhost:
//!
//! `cargo run --release -p edetail-e2e --example runtime_bench [-- --runs N]`
//!
//! 1. First slide: navigation start -> the current slide is in the DOM (a
//!    MutationObserver injected at the top of index.html, `performance.now()` is
//!    relative to navigation start) and -> painted: the render time of the first
//!    largest-contentful-paint entry after that (the frame showing the slide, as
//!    presented; the next `requestAnimationFrame` callback, reported too, runs before
//!    that frame's style, layout and paint),
//!    plus first-contentful-paint. When boot.js shows the copy of the first view the
//!    player kept on an earlier open (the runtime's `snapshot` module: from the SW cache
//!    here, never cold), these are the copy's; "player's own first slide" is when the
//!    player's view replaced it (`edetail:first-slide`). Cold: a fresh browser profile per run (no HTTP cache,
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
//!
//! Options: `--runs N` (default 10), `--sample NAME` (a deck of content-samples/ instead
//! of the synthetic one), `--no-cold`, `--no-sw`, `--no-walk`, `--profile`
//! (a CPU profile of the walk through the DevTools protocol: top functions by self time;
//! wasm function names need a build with names, `cargo xtask runtime --names`),
//! `--profile-cold` (one more cold start, profiled the same way), `--trace-walk FILE`
//! (every main-thread task of 50 slide changes, the browser's rendering included, from
//! a Chromium trace: see `traced_walk`; `EDETAIL_TRACE_EXTRA=,<categories>` adds trace
//! categories, e.g. `,disabled-by-default-devtools.timeline.invalidationTracking`).
//! Also printed: where the cold start goes (resource timing of the wasm and the bundle,
//! and the runtime's `edetail:*` performance marks) and the load average before and
//! after, since the machine may be shared.

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
  window.__bench = { slide: null, raf: null, painted: null, fcp: null, errors: [] };
  addEventListener('error', (e) => window.__bench.errors.push('error: ' + e.message));
  addEventListener('unhandledrejection', (e) => window.__bench.errors.push('rejection: ' + (e.reason && (e.reason.stack || e.reason.message) || e.reason)));
  const seen = () => {
    if (window.__bench.slide === null && document.querySelector('.slide.is-current')) {
      window.__bench.slide = performance.now();
      // The next frame's callback runs before that frame's style, layout and paint.
      requestAnimationFrame(() => { window.__bench.raf = performance.now(); });
      return true;
    }
    return false;
  };
  const mo = new MutationObserver(() => { if (seen()) mo.disconnect(); });
  mo.observe(document.documentElement, { childList: true, subtree: true });
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.name === 'first-contentful-paint') window.__bench.fcp = e.startTime; })
      .observe({ type: 'paint', buffered: true });
    // Painted: the frame that shows the slide, as presented (a largest-contentful-paint
    // candidate's render time: the first one after the slide entered the DOM; the
    // slide's text outgrows the boot screen's).
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) {
        const t = e.renderTime || e.startTime;
        if (window.__bench.painted === null && window.__bench.slide !== null && t >= window.__bench.slide) {
          window.__bench.painted = t;
          // Which element that was (a slide's text, its image, a dialog...).
          const el = e.element;
          window.__bench.paintedEl = el ? el.tagName.toLowerCase() + (el.classList[0] ? '.' + el.classList[0] : '') + (el.closest('.slide') ? ' in slide' : el.closest('[role=dialog]') ? ' in dialog' : '') + ' (' + e.size + ' px²)' : '(removed) ' + e.size + ' px²';
        }
      }
    }).observe({ type: 'largest-contentful-paint', buffered: true });
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
    chromium_with(&[])
}

fn chromium_with(extra: &[String]) -> Result<Session> {
    let mut chromium_args: Vec<String> = vec![
        "--enable-precise-memory-info".into(),
        "--js-flags=--expose-gc".into(),
    ];
    chromium_args.extend(extra.iter().cloned());
    launch(Browser::Chromium, &LaunchOptions { chromium_args })
}

/// Trace categories of `--trace-sw`: main thread and service worker tasks, loading,
/// and V8's wasm compilation and code cache (`v8.wasm.moduleCacheHit`,
/// `v8.wasm.cachedModule`, `v8.wasm.compiledModule`).
const TRACE_CATEGORIES: &str = "toplevel,devtools.timeline,disabled-by-default-devtools.timeline,loading,ServiceWorker,v8,v8.wasm,disabled-by-default-v8.wasm.detailed,v8.execute,blink,blink.user_timing,navigation";
/// How long `--trace-sw` traces the browser of the SW-cache loads (from its launch).
const TRACE_SECONDS: u64 = 20;

/// Where the first slide's time went: resource timing and the runtime's marks (ms from
/// navigation start; NaN when missing).
const BREAKDOWN: &str = "const r = (re) => performance.getEntriesByType('resource').find(e => re.test(e.name));
  const m = (n) => { const e = performance.getEntriesByName(n)[0]; return e ? e.startTime : null; };
  const w = r(/edetail_runtime_bg\\.wasm/), js = r(/edetail_runtime\\.js/), b = r(/bundle\\.json/), h = r(/bundle\\.sha256/);
  const nav = performance.getEntriesByType('navigation')[0];
  return { html: nav ? nav.responseEnd : null, js: js ? js.responseEnd : null, wasm: w ? w.responseEnd : null,
    start: m('edetail:start'), sha_start: h ? h.startTime : null, bundle_start: b ? b.startTime : null,
    bundle_end: b ? b.responseEnd : null, loaded: m('edetail:loaded'), slide: m('edetail:first-slide'),
    dom: window.__bench ? window.__bench.slide : null, raf: window.__bench ? window.__bench.raf : null, painted: window.__bench ? window.__bench.painted : null,
    painted_el: window.__bench ? window.__bench.paintedEl : null,
    res: Object.fromEntries(performance.getEntriesByType('resource').concat(nav ? [nav] : []).map(e => [e.name.split('?')[0].split('/').pop() || 'index.html',
      { start: e.startTime, worker: e.workerStart || null, src: e.workerFinalSourceType || e.workerMatchedSourceType || null, conn: e.connectEnd, req: e.requestStart, resp: e.responseStart, end: e.responseEnd }])),
    marks: Object.fromEntries(performance.getEntriesByType('mark').filter(e => e.name.startsWith('edetail:')).reverse().map(e => [e.name, e.startTime])),
    shell_bytes: (nav ? nav.encodedBodySize : 0) + performance.getEntriesByType('resource')
      .filter(e => /(boot\\.js|edetail_runtime\\.js|edetail_runtime_bg\\.wasm|style\\.css)$/.test(e.name))
      .reduce((a, e) => a + e.encodedBodySize, 0) };";

/// Load and wait for the probe's numbers: (slide in DOM, next frame, FCP) in ms.
fn first_slide(s: &Session, url: &str, reload: bool) -> Result<FirstSlide> {
    if reload {
        s.wd.refresh()?;
    } else {
        s.wd.goto(url)?;
    }
    let v = match s.wd.wait_js(
        "the probe",
        "window.__bench && window.__bench.painted !== null && window.__bench",
        Duration::from_secs(30),
    ) {
        Ok(v) => v,
        Err(e) => {
            // A stalled start: what the page reported, and which requests finished.
            let why = s.wd.js(
                "return { errors: window.__bench && window.__bench.errors,
                  controlled: !!(navigator.serviceWorker && navigator.serviceWorker.controller),
                  marks: performance.getEntriesByType('mark').map(m => m.name + '@' + Math.round(m.startTime)),
                  resources: performance.getEntriesByType('resource').map(r => r.name.split('/').pop() + '@' + Math.round(r.responseEnd)) }",
                vec![],
            );
            bail!("{e}\nstalled start: {why:?}");
        }
    };
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    // The player's own first slide (`edetail:first-slide`): later than "painted" when
    // boot.js showed the copy of the first view it kept (`edetail:snapshot`). Pages
    // without the player's boot script (the floor page) have neither.
    let ready = s.wd.wait_js(
        "the player's first slide",
        "(() => { if (window.__edetailShell === undefined) return { ready: null, snapshot: false };
           const m = performance.getEntriesByName('edetail:first-slide')[0];
           return m && { ready: m.startTime, snapshot: performance.getEntriesByName('edetail:snapshot').length > 0 }; })()",
        Duration::from_secs(30),
    )?;
    Ok(FirstSlide {
        dom: f("slide"),
        painted: f("painted"),
        fcp: f("fcp"),
        ready: ready["ready"].as_f64().unwrap_or(f64::NAN),
        snapshot: ready["snapshot"].as_bool() == Some(true),
    })
}

/// One start, ms from navigation start.
struct FirstSlide {
    /// The current slide is in the DOM (the player's, or boot.js's copy).
    dom: f64,
    /// ... and presented (largest-contentful-paint render time).
    painted: f64,
    /// first-contentful-paint.
    fcp: f64,
    /// The player's own first slide is in the DOM (`edetail:first-slide`; NaN: floor).
    ready: f64,
    /// boot.js showed the copy of the first view (`edetail:snapshot`).
    snapshot: bool,
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Medians of the cold-start breakdown, in order of the boot.
fn report_breakdown(title: &str, runs: &[Value]) {
    if runs.is_empty() {
        return;
    }
    println!("{title} (medians, ms from navigation start):");
    for (k, what) in [
        ("html", "index.html received"),
        ("js", "edetail_runtime.js received"),
        ("wasm", "wasm received"),
        ("start", "wasm started (mark edetail:start)"),
        ("sha_start", "bundle.sha256 requested"),
        ("bundle_start", "bundle.json requested"),
        ("bundle_end", "bundle.json received"),
        ("loaded", "bundle verified + parsed (mark edetail:loaded)"),
        ("dom", "first slide in DOM (probe)"),
        ("raf", "next animation frame starts (probe)"),
        (
            "painted",
            "first slide presented (largest-contentful-paint)",
        ),
        ("slide", "first slide rendered (mark edetail:first-slide)"),
        ("shell_bytes", "BYTES received: index.html+boot+JS+wasm+CSS"),
    ] {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
        if v.is_empty() {
            println!("  {what:<48} -");
        } else {
            println!("  {what:<48} {:8.1}", median(&mut v));
        }
    }
    // What was painted: the element of that largest-contentful-paint entry, per run.
    let mut counted = std::collections::BTreeMap::<&str, usize>::new();
    for e in runs.iter().filter_map(|r| r["painted_el"].as_str()) {
        *counted.entry(e).or_default() += 1;
    }
    for (e, n) in counted {
        println!("  painted element: {e} in {n} of {} runs", runs.len());
    }
    // Per resource: when it was requested, when the service worker's fetch event ran
    // (0: none), the first byte and the last.
    let mut files: Vec<String> = runs
        .iter()
        .filter_map(|r| r["res"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    files.sort();
    files.dedup();
    let mut rows: Vec<(f64, String)> = files
        .into_iter()
        .map(|f| {
            let med = |k: &str| {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r["res"][&f][k].as_f64())
                    .collect();
                median(&mut v)
            };
            (
                med("start"),
                format!(
                    "  {:<32} start {:6.1}  sw {:6.1}  connected {:6.1}  req {:6.1}  first byte {:6.1}  end {:6.1}{}",
                    f,
                    med("start"),
                    med("worker"),
                    med("conn"),
                    med("req"),
                    med("resp"),
                    med("end"),
                    // Where a service worker's static router sent it (Chromium).
                    runs.iter()
                        .find_map(|r| r["res"][&f]["src"].as_str())
                        .map(|src| format!("  router: {src}"))
                        .unwrap_or_default()
                ),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, r) in rows {
        println!("{r}");
    }
    // The runtime's other `edetail:*` marks, by median.
    let known = ["edetail:start", "edetail:loaded", "edetail:first-slide"];
    let mut names: Vec<String> = runs
        .iter()
        .filter_map(|r| r["marks"].as_object())
        .flat_map(|m| m.keys().cloned())
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let mut other: Vec<(f64, String)> = names
        .into_iter()
        .map(|k| {
            let mut v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r["marks"][&k].as_f64())
                .collect();
            (median(&mut v), k)
        })
        .collect();
    other.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (t, k) in other {
        println!("  {:<48} {t:8.1}", format!("mark {k}"));
    }
}

/// A DevTools protocol command through chromedriver.
fn cdp(wd: &edetail_e2e::webdriver::WebDriver, cmd: &str, params: Value) -> Result<Value> {
    wd.cmd(
        "POST",
        "/goog/cdp/execute",
        Some(serde_json::json!({ "cmd": cmd, "params": params })),
    )
}

/// Self time per function of a `Profiler.stop` profile, top `n`.
fn print_profile(title: &str, profile: &Value, n: usize) {
    use std::collections::HashMap;
    let nodes = profile["nodes"].as_array().cloned().unwrap_or_default();
    let name_of: HashMap<i64, String> = nodes
        .iter()
        .map(|n| {
            let f = &n["callFrame"];
            let url = f["url"].as_str().unwrap_or("");
            let file = url.rsplit('/').next().unwrap_or("");
            let name = f["functionName"].as_str().unwrap_or("");
            let name = if name.is_empty() { "(anonymous)" } else { name };
            (
                n["id"].as_i64().unwrap_or(-1),
                if file.is_empty() {
                    name.to_string()
                } else {
                    format!("{name} [{file}]")
                },
            )
        })
        .collect();
    let samples = profile["samples"].as_array().cloned().unwrap_or_default();
    let deltas = profile["timeDeltas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut self_us: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    // timeDeltas[i] is the time before sample i: attribute it to sample i - 1.
    for i in 1..samples.len() {
        let dt = deltas.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        let id = samples[i - 1].as_i64().unwrap_or(-1);
        let name = name_of.get(&id).cloned().unwrap_or_default();
        total += dt;
        *self_us.entry(name).or_default() += dt;
    }
    let mut v: Vec<(String, f64)> = self_us.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "CPU profile of {title}: {:.0} ms sampled, top {n} by self time:",
        total / 1000.0
    );
    for (name, us) in v.into_iter().take(n) {
        println!(
            "  {:8.1} ms {:5.1}%  {name}",
            us / 1000.0,
            100.0 * us / total.max(1.0)
        );
    }
    // The longest stretch without an idle sample (a long task, if any), and the call
    // stacks sampled most in it.
    let parent: HashMap<i64, i64> = nodes
        .iter()
        .flat_map(|n| {
            let id = n["id"].as_i64().unwrap_or(-1);
            n["children"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |c| Some((c.as_i64()?, id)))
        })
        .collect();
    let idle = |i: usize| {
        let id = samples[i].as_i64().unwrap_or(-1);
        name_of.get(&id).is_some_and(|n| n == "(idle)")
    };
    let (mut best, mut cur, mut best_dur, mut dur) = ((0, 0), 0, 0.0, 0.0);
    for i in 1..samples.len() {
        let dt = deltas.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        if idle(i - 1) {
            cur = i;
            dur = 0.0;
        } else {
            dur += dt;
            if dur > best_dur {
                best_dur = dur;
                best = (cur, i);
            }
        }
    }
    if best_dur < 30_000.0 {
        return;
    }
    let mut stacks: HashMap<String, f64> = HashMap::new();
    for i in best.0.max(1)..=best.1 {
        let dt = deltas.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        let mut id = samples[i - 1].as_i64().unwrap_or(-1);
        let mut frames = vec![];
        while id >= 0 && frames.len() < 60 {
            let name = name_of.get(&id).cloned().unwrap_or_default();
            let short: String = name
                .split("::h")
                .next()
                .unwrap_or(&name)
                .chars()
                .take(90)
                .collect();
            frames.push(short);
            id = parent.get(&id).copied().unwrap_or(-1);
        }
        frames.reverse();
        let tail = frames[frames.len().saturating_sub(12)..].join(" > ");
        *stacks.entry(tail).or_default() += dt;
    }
    let mut v: Vec<(String, f64)> = stacks.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "longest busy stretch: {:.1} ms; stacks sampled most in it:",
        best_dur / 1000.0
    );
    for (stack, us) in v.into_iter().take(6) {
        println!("  {:8.1} ms  {stack}", us / 1000.0);
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (do_cold, do_sw, do_walk, do_profile) = (
        !flag("--no-cold"),
        !flag("--no-sw"),
        !flag("--no-walk"),
        flag("--profile"),
    );
    if let Some(why) = Browser::Chromium.missing() {
        bail!("Chromium is needed: {why}");
    }
    let load_before = loadavg();
    // A synthetic deck whose main flow has more than 200 slides, or `--sample NAME`: a
    // deck of content-samples/ (first-slide times; its walk is as long as its flow).
    let sample = args
        .iter()
        .position(|a| a == "--sample")
        .and_then(|i| args.get(i + 1));
    let tmp = tempfile::tempdir()?;
    let c = match sample {
        Some(name) => edetail_e2e::site::compile_sample(name)?,
        None => {
            let deck = tmp.path().join("deck");
            edetail_authoring::synth::write_deck(&deck, 225)?;
            compile_dir(&deck)?
        }
    };
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
    let bundle_bytes = std::fs::metadata(site.bundle_dir("synth").join("bundle.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "runtime_bench: {} deck, {} slides ({flow} in the main flow, bundle.json {bundle_bytes} B), {runs} runs, headless Chromium, {} cores, load average {load_before}",
        sample.map_or("synthetic", String::as_str),
        bundle.slides.len(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1a. Cold: a new profile each run.
    let (mut cold_dom, mut cold_paint, mut cold_fcp, mut cold_ready, mut cold_parts) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..if do_cold { runs } else { 0 } {
        let s = chromium()?;
        s.wd.set_viewport(1024, 768)?;
        let r = first_slide(&s, &url, false)?;
        cold_dom.push(r.dom);
        cold_paint.push(r.painted);
        cold_fcp.push(r.fcp);
        cold_ready.push(r.ready);
        cold_parts.push(s.wd.js(BREAKDOWN, vec![])?);
    }
    if flag("--profile-cold") {
        let s = chromium()?;
        s.wd.set_viewport(1024, 768)?;
        cdp(&s.wd, "Profiler.enable", serde_json::json!({}))?;
        cdp(
            &s.wd,
            "Profiler.setSamplingInterval",
            serde_json::json!({ "interval": 100 }),
        )?;
        cdp(&s.wd, "Profiler.start", serde_json::json!({}))?;
        let d = first_slide(&s, &url, false)?.dom;
        let p = cdp(&s.wd, "Profiler.stop", serde_json::json!({}))?;
        println!("profiled cold start: first slide in DOM at {d:.1} ms");
        print_profile("a cold start", &p["profile"], 30);
    }
    // `--screenshot FILE`: a PNG of the first slide after one more cold start.
    if let Some(file) = args
        .iter()
        .position(|a| a == "--screenshot")
        .and_then(|i| args.get(i + 1))
    {
        let s = chromium()?;
        s.wd.set_viewport(1024, 768)?;
        first_slide(&s, &url, false)?;
        // Let the entrance animations finish.
        std::thread::sleep(Duration::from_millis(800));
        std::fs::write(file, s.wd.screenshot()?)?;
        println!("first slide screenshot: {file}");
    }
    // `--trace-cold FILE`: one more cold start, traced like `--trace-sw`.
    if let Some(file) = args
        .iter()
        .position(|a| a == "--trace-cold")
        .and_then(|i| args.get(i + 1))
    {
        let launched = std::time::Instant::now();
        let secs = 6;
        let s = chromium_with(&[
            format!("--trace-startup={TRACE_CATEGORIES}"),
            format!("--trace-startup-file={file}"),
            format!("--trace-startup-duration={secs}"),
            "--trace-startup-format=json".into(),
        ])?;
        s.wd.set_viewport(1024, 768)?;
        let d = first_slide(&s, &url, false)?.dom;
        if let Some(left) = Duration::from_secs(secs + 3).checked_sub(launched.elapsed()) {
            std::thread::sleep(left);
        }
        println!("traced cold start: first slide in DOM at {d:.1} ms, trace in {file}");
    }
    // 1b. From the SW cache: install, one online reload (bundle through the SW), then
    // the server goes away and every measured load comes from the caches.
    // `--trace-sw FILE`: a Chromium trace (JSON, for chrome://tracing or Perfetto) of
    // this browser's first TRACE_SECONDS: the install, the online reload and the
    // SW-cache loads (use few runs).
    let trace = args
        .iter()
        .position(|a| a == "--trace-sw")
        .and_then(|i| args.get(i + 1));
    let launched = std::time::Instant::now();
    let s = match trace {
        Some(file) => chromium_with(&[
            format!("--trace-startup={TRACE_CATEGORIES}"),
            format!("--trace-startup-file={file}"),
            format!("--trace-startup-duration={TRACE_SECONDS}"),
            "--trace-startup-format=json".into(),
        ])?,
        None => chromium()?,
    };
    s.wd.set_viewport(1024, 768)?;
    first_slide(&s, &url, false)?;
    let (mut sw_dom, mut sw_paint, mut sw_fcp, mut sw_ready, mut sw_parts) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut sw_snapshots = 0;
    if do_sw {
        s.wd.wait_js(
            "the service worker",
            "navigator.serviceWorker && navigator.serviceWorker.controller",
            Duration::from_secs(20),
        )?;
        first_slide(&s, &url, true)?;
        site.stop();
        for _ in 0..runs {
            let r = first_slide(&s, &url, true)?;
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
            sw_dom.push(r.dom);
            sw_paint.push(r.painted);
            sw_fcp.push(r.fcp);
            sw_ready.push(r.ready);
            sw_snapshots += usize::from(r.snapshot);
            sw_parts.push(s.wd.js(BREAKDOWN, vec![])?);
        }
        site.start()?;
    }
    if let Some(file) = trace {
        let end = Duration::from_secs(TRACE_SECONDS + 3);
        if let Some(left) = end.checked_sub(launched.elapsed()) {
            std::thread::sleep(left);
        }
        println!("trace of the SW-cache browser written to {file}");
    }

    println!();
    if do_cold {
        report("first slide in DOM, cold", &mut cold_dom, Some(200.0));
        report(
            "first slide painted (LCP render time), cold",
            &mut cold_paint,
            Some(200.0),
        );
        report("first-contentful-paint, cold", &mut cold_fcp, None);
        report(
            "player's own first slide in DOM, cold",
            &mut cold_ready,
            None,
        );
    }
    if do_sw {
        report(
            "first slide in DOM, SW cache (server down)",
            &mut sw_dom,
            Some(100.0),
        );
        report(
            "first slide painted (LCP render time), SW",
            &mut sw_paint,
            Some(100.0),
        );
        report("first-contentful-paint, SW cache", &mut sw_fcp, None);
        report(
            "player's own first slide in DOM, SW cache",
            &mut sw_ready,
            None,
        );
        println!(
            "  (the copy of the first view was shown in {sw_snapshots} of {} SW-cache loads)",
            sw_ready.len()
        );
    }
    println!();
    report_breakdown("cold start", &cold_parts);
    report_breakdown("start from the SW cache", &sw_parts);
    if !do_walk {
        println!("\nload average after: {}", loadavg());
        return Ok(());
    }

    if let Some(file) = args
        .iter()
        .position(|a| a == "--trace-walk")
        .and_then(|i| args.get(i + 1))
    {
        traced_walk(&url, file, 50.min(flow.saturating_sub(1)))?;
    }
    // 2 + 3. The walk, in the same browser (online again).
    first_slide(&s, &url, true)?;
    player::enter(&s.wd, "")?;
    let wd = &s.wd;
    // Per key press, from a capturing keydown listener on window (runs first):
    // - `sync`: until a bubbling keydown listener registered after the player's (runs
    //   last): the player's handler plus Yew's render, which runs in microtasks right
    //   after the handler, and any layout the code forces;
    // - `paint`: the rendering of the next frame (style, layout, paint): from the
    //   requestAnimationFrame callback until a message posted from it runs;
    // - `work`: until a MessageChannel message posted from the keydown runs (the task,
    //   its microtasks and, when a frame is due first, that frame: an upper bound);
    // - `frame`: keydown -> next animation frame.
    wd.js(
        "window.__walk = { work: [], frame: [], sync: [], paint: [], long: [], long_at: [], t_first: null, t_last: null };
         try { new PerformanceObserver(l => { for (const e of l.getEntries()) { window.__walk.long.push(e.duration); window.__walk.long_at.push([e.startTime, window.__walk.work.length, performance.now()]); } })
           .observe({ type: 'longtask' }); window.__walk.longtask = true; } catch (e) { window.__walk.longtask = false; }
         let t0 = 0;
         window.addEventListener('keydown', () => {
           t0 = performance.now();
           if (window.__walk.t_first === null) window.__walk.t_first = t0;
           window.__walk.t_last = t0;
           const ch = new MessageChannel();
           ch.port1.onmessage = () => window.__walk.work.push(performance.now() - t0);
           ch.port2.postMessage(0);
           requestAnimationFrame(() => {
             const tf = performance.now();
             window.__walk.frame.push(tf - t0);
             const c2 = new MessageChannel();
             c2.port1.onmessage = () => window.__walk.paint.push(performance.now() - tf);
             c2.port2.postMessage(0);
           });
         }, true);
         window.addEventListener('keydown', () => { window.__walk.sync.push(performance.now() - t0); }, false);
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
    if do_profile {
        cdp(wd, "Profiler.enable", serde_json::json!({}))?;
        cdp(
            wd,
            "Profiler.setSamplingInterval",
            serde_json::json!({ "interval": 100 }),
        )?;
        cdp(wd, "Profiler.start", serde_json::json!({}))?;
    }
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
    let profile = if do_profile {
        Some(cdp(wd, "Profiler.stop", serde_json::json!({}))?)
    } else {
        None
    };
    let h1 = heap(wd)?;
    let w = wd.js("return window.__walk", vec![])?;
    let nums = |k: &str| -> Vec<f64> {
        w[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (mut work, mut frame, mut sync, mut paint, long) = (
        nums("work"),
        nums("frame"),
        nums("sync"),
        nums("paint"),
        nums("long"),
    );

    println!();
    println!("walk: {changes} slide changes, {} key presses", work.len());
    report(
        "handler + Yew render per key press (sync)",
        &mut sync,
        Some(4.0),
    );
    println!(
        "{:<48} p90 {:8.2} ms  max {:8.2} ms",
        "",
        pct(&mut sync, 0.9),
        pct(&mut sync, 1.0)
    );
    report("style + layout + paint of the next frame", &mut paint, None);
    report(
        "main-thread work per key press (task+render)",
        &mut work,
        None,
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
    println!(
        "long tasks at (start ms, key presses before it, observed at ms): {}; key presses from {} to {} ms",
        w["long_at"], w["t_first"], w["t_last"]
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
    if let Some(p) = profile {
        print_profile("the walk", &p["profile"], 25);
    }
    println!("load average before: {load_before}, after: {}", loadavg());
    Ok(())
}

/// `--trace-walk FILE`: all the main-thread work of a slide change, the browser's
/// included. A fresh Chromium, traced (`--trace-startup`, JSON in FILE), presents the
/// deck and turns `changes` slides one at a time, 450 ms apart (each change's
/// transition is over before the next key), the ArrowRight keys dispatched by the page
/// itself (no WebDriver script or input injection during the walk). Per change, from the trace: the durations of the page's main-thread tasks
/// that start within 400 ms of the change's `keydown` (its input task, the player's
/// handler and Yew render, every frame's style, layout and paint, timers), in all and
/// by kind. Prints the medians.
fn traced_walk(url: &str, file: &str, changes: usize) -> Result<()> {
    const SECS: u64 = 45;
    let launched = std::time::Instant::now();
    let s = chromium_with(&[
        format!(
            "--trace-startup=toplevel,devtools.timeline,disabled-by-default-devtools.timeline,blink.user_timing{}",
            std::env::var("EDETAIL_TRACE_EXTRA").unwrap_or_default()
        ),
        format!("--trace-startup-file={file}"),
        format!("--trace-startup-duration={SECS}"),
        "--trace-startup-format=json".into(),
    ])?;
    s.wd.set_viewport(1024, 768)?;
    first_slide(&s, url, false)?;
    player::enter(&s.wd, "")?;
    std::thread::sleep(Duration::from_millis(1500));
    let wd = &s.wd;
    // The keys are dispatched by the page itself (a timer every 450 ms), so neither
    // WebDriver's scripts nor its input injection run during the walk.
    let turned = wd.js_async(
        "const [n, done] = [arguments[0], arguments[arguments.length - 1]];
         const cur = () => { const e = document.querySelector('.slide.is-current'); return e && e.dataset.slideId; };
         let changes = 0, presses = 0, last = cur();
         const tick = () => {
           const now = cur();
           if (now !== last) { changes++; last = now; }
           if (changes >= n || presses > 3 * n) { done(changes); return; }
           presses++;
           performance.mark('edetail-walk-key');
           window.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', code: 'ArrowRight', bubbles: true }));
           setTimeout(tick, 450);
         };
         tick();",
        vec![serde_json::json!(changes)],
    )?;
    if turned.as_u64() != Some(changes as u64) {
        bail!("--trace-walk: {turned} of {changes} slide changes");
    }
    if launched.elapsed() > Duration::from_secs(SECS - 2) {
        bail!("--trace-walk: the walk outlasted the trace's {SECS} s");
    }
    if let Some(left) = Duration::from_secs(SECS + 3).checked_sub(launched.elapsed()) {
        std::thread::sleep(left);
    }
    drop(s);
    let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
    let doc: Value = serde_json::from_str(&text).context("trace JSON")?;
    let events = doc["traceEvents"]
        .as_array()
        .or_else(|| doc.as_array())
        .context("no traceEvents")?;
    // The page's main thread: the CrRendererMain of the process with the walk's marks.
    let marks: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "edetail-walk-key")
        .collect();
    let pid = marks
        .first()
        .and_then(|e| e["pid"].as_i64())
        .context("no walk marks in the trace")?;
    let tid = events
        .iter()
        .find(|e| {
            e["ph"] == "M"
                && e["name"] == "thread_name"
                && e["pid"].as_i64() == Some(pid)
                && e["args"]["name"] == "CrRendererMain"
        })
        .and_then(|e| e["tid"].as_i64())
        .context("no renderer main thread")?;
    let mut starts: Vec<f64> = marks.iter().filter_map(|e| e["ts"].as_f64()).collect();
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    let on_main: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["pid"].as_i64() == Some(pid) && e["tid"].as_i64() == Some(tid) && e["ph"] == "X"
        })
        .collect();
    let kind = |name: &str| -> Option<&'static str> {
        Some(match name {
            "ThreadControllerImpl::RunTask" | "RunTask" => "task",
            "UpdateLayoutTree" | "RecalculateStyles" => "style",
            "Layout" => "layout",
            "PrePaint" | "Paint" | "PaintImage" | "Layerize" | "UpdateLayer"
            | "CompositeLayers" | "Commit" => "paint",
            "FunctionCall" | "EventDispatch" | "TimerFire" | "FireAnimationFrame"
            | "RunMicrotasks" | "v8.callFunction" => "script",
            _ => return None,
        })
    };
    // Per change: sums by kind of events starting within 400 ms of its keydown.
    // `task` counts the outermost tasks (they contain the others); `script` the
    // outermost script events.
    let mut per: Vec<std::collections::BTreeMap<&'static str, f64>> =
        vec![Default::default(); starts.len()];
    let mut timed: Vec<(f64, f64, &'static str)> = on_main
        .iter()
        .filter_map(|e| {
            let k = kind(e["name"].as_str().unwrap_or(""))?;
            Some((e["ts"].as_f64()?, e["dur"].as_f64().unwrap_or(0.0), k))
        })
        .collect();
    timed.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let (mut script_end, mut task_end) = (f64::MIN, f64::MIN);
    for (ts, dur, k) in timed {
        // Outermost only: tasks nest (`ThreadControllerImpl::RunTask` > `RunTask`),
        // and so do script events.
        let end = match k {
            "script" => Some(&mut script_end),
            "task" => Some(&mut task_end),
            _ => None,
        };
        if let Some(end) = end {
            if ts < *end {
                continue;
            }
            *end = ts + dur;
        }
        let Some(i) = starts.iter().rposition(|&t0| t0 <= ts + 50_000.0) else {
            continue;
        };
        if ts >= starts[i] + 400_000.0 {
            continue;
        }
        *per[i].entry(k).or_default() += dur / 1000.0;
    }
    println!();
    println!(
        "traced walk ({} changes, one every 450 ms; trace {file}): main-thread work within 400 ms of each change's keydown, medians:",
        starts.len()
    );
    for k in ["task", "script", "style", "layout", "paint"] {
        let mut v: Vec<f64> = per
            .iter()
            .map(|m| m.get(k).copied().unwrap_or(0.0))
            .collect();
        let label = match k {
            "task" => "all main-thread tasks (budget 4 ms)",
            "script" => "  of which script (input, handler, Yew)",
            "style" => "  style recalculation",
            "layout" => "  layout",
            _ => "  paint, layerize, commit",
        };
        report(label, &mut v, if k == "task" { Some(4.0) } else { None });
    }
    Ok(())
}
