//! Page helpers that know the runtime's DOM contract: `data-testid` controls, the
//! `.slide.is-current` section with `data-slide-id`, component `data-component`s, and
//! the IndexedDB outbox (`edetail-tracking` / `outbox`, keys = event ids).

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::webdriver::{PointerKind, WebDriver};

/// Default wait for a DOM condition.
pub const WAIT: Duration = Duration::from_secs(15);

/// Where a swipe may not start (runtime `NO_SWIPE`), so swipes start elsewhere.
const NO_SWIPE: &str = "input,textarea,select,video,.ed-chart,.ed-question,.ed-tablist,.ed-accordion,[data-noswipe],.overlay,.tray,button,a";

pub fn css_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// Load `url` and wait for the player or a refusal screen.
pub fn open(wd: &WebDriver, url: &str) -> Result<()> {
    wd.goto(url)?;
    wait_loaded(wd)
}

pub fn wait_loaded(wd: &WebDriver) -> Result<()> {
    wd.wait_js(
        "the player or a refusal",
        "document.querySelector('[data-testid=player],[data-testid=refusal]')",
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// The id of the slide on screen.
pub fn current(wd: &WebDriver) -> Result<String> {
    let v = wd.js(
        "const s = document.querySelector('.slide.is-current'); return s ? s.getAttribute('data-slide-id') : null;",
        vec![],
    )?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no current slide"))
}

/// Wait until `id` is the current slide and its transition has finished.
pub fn wait_current(wd: &WebDriver, id: &str) -> Result<()> {
    wd.wait_js(
        &format!("slide `{id}` to be current and still"),
        &format!(
            "(() => {{ const s = document.querySelector('.slide.is-current[data-slide-id=' + JSON.stringify({}) + ']');
               if (!s) return false;
               const moving = s.getAnimations ? s.getAnimations().some(a => a.playState === 'running') : false;
               return !moving; }})()",
            css_str(id)
        ),
        WAIT,
    )?;
    Ok(())
}

/// The mode-specific entry: MR-led start-call screen (fills a pseudonymous HCP id) or
/// self-serve consent (accepts; the player asks a frame after the first slide, when it
/// marks `edetail:settled`). Returns when a slide is on screen.
pub fn enter(wd: &WebDriver, hcp: &str) -> Result<()> {
    let v = wd.wait_js(
        "start-call, consent or a slide",
        "document.querySelector('[data-testid=start-call]') ? 'start' : document.querySelector('[data-testid=consent-accept]') ? 'consent' : document.querySelector('.slide.is-current') && performance.getEntriesByName('edetail:settled').length ? 'slide' : null",
        WAIT,
    )?;
    match v.as_str() {
        Some("start") => {
            let input = wd.wait_find(&testid("hcp-id"), WAIT)?;
            wd.send_keys(&input, hcp)?;
            log_input(wd)?;
            wd.click_css(&testid("start-call"))?;
            // Once in a full CI run (WebKit, loaded machine) a Start call click on a freshly
            // loaded page had no effect for 15 s; alone it never happened (not yet
            // understood: see the closing note). Click once more, loudly, before failing.
            let started = "document.querySelector('.slide.is-current') && !document.querySelector('.overlay')";
            if wd
                .wait_js("the call to start", started, Duration::from_secs(5))
                .is_err()
                && wd.js(
                    "return !!document.querySelector('[data-testid=start-call]')",
                    vec![],
                )? == json!(true)
            {
                warn(&format!(
                    "the Start call click had no effect after 5 s ({}); clicking again",
                    input_seen(wd, &testid("start-call"))
                ));
                wd.click_css(&testid("start-call"))?;
            }
        }
        Some("consent") => wd.click_css(&testid("consent-accept"))?,
        _ => {}
    }
    wd.wait_js(
        "a slide with no dialog",
        "document.querySelector('.slide.is-current') && !document.querySelector('.overlay')",
        WAIT,
    )?;
    Ok(())
}

/// Wait until a service worker controls the page. On a timeout the error says where the
/// registration stands (none, installing, waiting, active and its state), which a bare
/// "never controlled" does not.
pub fn wait_controlled(wd: &WebDriver, within: Duration) -> Result<()> {
    let controlled = "navigator.serviceWorker && navigator.serviceWorker.controller";
    match wd.wait_js("the service worker to control the page", controlled, within) {
        Ok(_) => Ok(()),
        Err(e) => Err(anyhow!("{e:#}; {}", sw_state(wd))),
    }
}

/// The page's service worker registration, in words.
pub fn sw_state(wd: &WebDriver) -> String {
    let v = wd.js_async(
        "const done = arguments[arguments.length - 1];
         if (!navigator.serviceWorker) { done('no serviceWorker API'); return; }
         navigator.serviceWorker.getRegistration().then((r) => {
           const w = (x) => x ? x.state : '-';
           done(r ? `registration: installing ${w(r.installing)}, waiting ${w(r.waiting)}, active ${w(r.active)}; controller ${!!navigator.serviceWorker.controller}`
                  : 'no registration for this page');
         }, (e) => done('getRegistration failed: ' + e));",
        vec![],
    );
    match v {
        Ok(v) => v.as_str().unwrap_or("?").to_string(),
        Err(e) => format!("registration state unreadable: {e:#}"),
    }
}

/// From now on, record the pointer and click events the page receives (capturing
/// listeners on window), so that a click with no effect tells whether its input reached
/// the page at all (a lost input: the driver or the browser) or the page ignored it.
fn log_input(wd: &WebDriver) -> Result<()> {
    wd.js(
        "window.__edInput = [];
         if (!window.__edInputOn) {
           window.__edInputOn = true;
           for (const t of ['pointerdown', 'mousedown', 'pointerup', 'mouseup', 'click']) {
             addEventListener(t, (e) => {
               const el = e.target instanceof Element ? e.target : null;
               const tagged = el && el.closest('[data-testid]');
               const comp = el && el.closest('[data-component]');
               const what = !el ? '?' : el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '')
                 + (comp ? ' of component ' + comp.getAttribute('data-component') : '')
                 + (tagged ? ' in ' + tagged.getAttribute('data-testid') : '');
               window.__edInput.push(t + ' on ' + what + ' at (' + Math.round(e.clientX) + ',' + Math.round(e.clientY) + ') t=' + Math.round(performance.now()));
             }, true);
           }
         }",
        vec![],
    )?;
    Ok(())
}

/// A warning that shows in the test log even when the test passes: written to the
/// process's stderr directly, which the test harness does not capture (it captures
/// `eprintln!`, and shows that only for failing tests).
pub fn warn(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "WARNING: {msg}");
}

/// What `log_input` recorded, and where the element meant (`css`) is now.
fn input_seen(wd: &WebDriver, css: &str) -> String {
    match wd.js(
        "const el = document.querySelector(arguments[0]);
         const r = el && el.getBoundingClientRect();
         const at = r ? `${arguments[0]} now at (${Math.round(r.left)},${Math.round(r.top)}) ${Math.round(r.width)}x${Math.round(r.height)}` : `no ${arguments[0]} now`;
         return window.__edInput ? ('page got: ' + (window.__edInput.join(', ') || 'no pointer, mouse or click event') + '; now t=' + Math.round(performance.now()) + ', ' + at) : 'no input log: the page was replaced';",
        vec![json!(css)],
    ) {
        Ok(v) => v.as_str().unwrap_or("?").to_string(),
        Err(e) => format!("input log unreadable: {e}"),
    }
}

/// A point on the current slide where a swipe may start (not on an interactive
/// region), in viewport px, and the slide's width.
fn swipe_origin(wd: &WebDriver) -> Result<(f64, f64, f64)> {
    let v = wd.js(
        "const noSwipe = arguments[0];
         const s = document.querySelector('.slide.is-current');
         const stage = document.querySelector('.stage');
         if (!s || !stage) return null;
         const r = stage.getBoundingClientRect();
         for (const fy of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9]) {
           const x = r.left + r.width * 0.5, y = r.top + r.height * fy;
           const e = document.elementFromPoint(x, y);
           if (e && stage.contains(e) && !e.closest(noSwipe)) return [x, y, r.width];
         }
         return null;",
        vec![json!(NO_SWIPE)],
    )?;
    match v.as_array() {
        Some(a) if a.len() == 3 => Ok((
            a[0].as_f64().unwrap_or(0.0),
            a[1].as_f64().unwrap_or(0.0),
            a[2].as_f64().unwrap_or(0.0),
        )),
        _ => bail!("no place on the stage where a swipe may start"),
    }
}

/// Dispatch a pointer drag as script PointerEvents (used where the driver has no touch
/// actions: WebKitWebDriver). The events carry `pointerType` and are trusted=false, but
/// take the same path through the runtime's pointer handlers.
pub fn script_drag(
    wd: &WebDriver,
    kind: PointerKind,
    from: (f64, f64),
    to: (f64, f64),
) -> Result<()> {
    wd.js(
        "const [x0, y0, x1, y1, type] = arguments;
         const target = document.elementFromPoint(x0, y0);
         if (!target) throw new Error('nothing at the swipe origin');
         const ev = (t, x, y, buttons) => new PointerEvent(t, { pointerId: 41, pointerType: type, isPrimary: true,
             clientX: x, clientY: y, screenX: x, screenY: y, buttons, button: 0, bubbles: true, cancelable: true, composed: true });
         target.dispatchEvent(ev('pointerdown', x0, y0, 1));
         for (let i = 1; i <= 8; i++) {
           const f = i / 8;
           target.dispatchEvent(ev('pointermove', x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, 1));
         }
         target.dispatchEvent(ev('pointerup', x1, y1, 0));
         return true;",
        vec![json!(from.0), json!(from.1), json!(to.0), json!(to.1), json!(kind.as_str())],
    )?;
    Ok(())
}

/// Horizontal drag across the current slide: `forward` = right-to-left (next slide).
/// Real W3C pointer actions where the driver supports them, script events otherwise.
pub fn swipe(wd: &WebDriver, browser: Browser, kind: PointerKind, forward: bool) -> Result<()> {
    let (x, y, w) = swipe_origin(wd)?;
    let d = (w * 0.3).clamp(120.0, 300.0);
    let (from, to) = if forward {
        ((x + d / 2.0, y), (x - d / 2.0, y))
    } else {
        ((x - d / 2.0, y), (x + d / 2.0, y))
    };
    if kind == PointerKind::Touch && !browser.native_touch() {
        return script_drag(wd, kind, from, to);
    }
    wd.drag(kind, from, to, 8)
}

/// Ids in the IndexedDB outbox (events not yet acknowledged by the server). Does not
/// create the database when the runtime has not made it yet.
pub fn outbox_ids(wd: &WebDriver) -> Result<Vec<String>> {
    let v = wd.js_async(
        "const done = arguments[arguments.length - 1];
         const read = () => {
           const req = indexedDB.open('edetail-tracking');
           req.onsuccess = () => {
             const db = req.result;
             if (!db.objectStoreNames.contains('outbox')) { db.close(); done([]); return; }
             const r = db.transaction('outbox', 'readonly').objectStore('outbox').getAllKeys();
             r.onsuccess = () => { db.close(); done(r.result.map(String)); };
             r.onerror = () => { db.close(); done({ error: String(r.error) }); };
           };
           req.onerror = () => done({ error: String(req.error) });
         };
         if (indexedDB.databases) {
           indexedDB.databases().then(l => l.some(d => d.name === 'edetail-tracking') ? read() : done([]), read);
         } else { read(); }",
        vec![],
    )?;
    match v {
        Value::Array(a) => Ok(a
            .into_iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()),
        other => bail!("reading the outbox failed: {other}"),
    }
}

/// Wait until the outbox holds no event (everything acknowledged).
pub fn wait_outbox_empty(wd: &WebDriver, timeout: Duration) -> Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        let ids = outbox_ids(wd)?;
        if ids.is_empty() {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            let status = wd
                .js(
                    "const s = document.querySelector('[data-testid=sync-status]'); return s ? s.className + ' ' + s.title + ' ' + s.textContent : '';",
                    vec![],
                )
                .unwrap_or_default();
            bail!(
                "{} events still unsent after {timeout:?} (sync status: {status})",
                ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Click a component (`data-component`) of the current slide.
pub fn click_component(wd: &WebDriver, id: &str) -> Result<()> {
    wd.click_css(&component_css(id))
}

/// The selector of component `id` on the current slide.
fn component_css(id: &str) -> String {
    format!(".slide.is-current [data-component={}]", css_str(id))
}

/// Click component `id` of the current slide and wait for its popup. Like the Start
/// call click in [`enter`]: in full CI runs on WebKit a click on a freshly turned slide
/// has once in a while had no effect (not understood yet: see the closing notes), so
/// after 5 s without a popup it clicks once more, loudly, before failing.
pub fn open_popup(wd: &WebDriver, id: &str) -> Result<()> {
    log_input(wd)?;
    click_component(wd, id)?;
    let shown = "document.querySelector('[data-testid=popup]')";
    if wd
        .wait_js("the popup", shown, Duration::from_secs(5))
        .is_err()
    {
        warn(&format!(
            "the click on {id} opened no popup after 5 s ({}); clicking again",
            input_seen(wd, &component_css(id))
        ));
        click_component(wd, id)?;
    }
    wd.wait_js("the popup", shown, WAIT)?;
    Ok(())
}

/// Open the overview and jump to `slide`.
pub fn overview_jump(wd: &WebDriver, slide: &str) -> Result<()> {
    wd.click_css(&testid("overview"))?;
    wd.wait_find(&testid("overview-panel"), WAIT)?;
    wd.click_css(&format!(
        "[data-testid=overview-card][data-slide={}]",
        css_str(slide)
    ))?;
    wait_current(wd, slide)?;
    wd.wait_js(
        "the overview to close",
        "!document.querySelector('[data-testid=overview-panel]')",
        WAIT,
    )?;
    Ok(())
}
