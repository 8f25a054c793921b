//! Issue #5, attacks in a real browser (Chromium and WebKit).
//!
//! `xss_corpus_does_not_execute`: every payload of `authoring/tests/xss-corpus.txt` is
//! pushed through the places an author controls (slide markdown: paragraphs, headings,
//! lists, tables, links, images; popup labels and bodies, tab and accordion labels and
//! bodies, chart titles, units and CSV cells, forest labels, quiz prompt/options/
//! explanation, poll options, rating labels, build steps, columns; slide titles and key
//! messages; section titles; the manifest's deck title, product, therapeutic area, ISI
//! title, reference citation; the ISI markdown). A payload the compiler refuses in a
//! place is left out of that place (the compile-level test `authoring/tests/xss.rs`
//! checks the refusal); everything it accepts goes into one deck, one slide per
//! payload, which is compiled, written as a bundle and opened in the player with no
//! CSP at all (the test receiver sends none), so only the compiler's sanitizing stands
//! between the payloads and the page. A sentinel script loaded before the runtime
//! records calls to `alert`/`confirm`/`prompt`/`print`, `securitypolicyviolation`
//! events, and, through a MutationObserver, any script element, event-handler
//! attribute, script URL, frame/object/embed/base/form/meta element or style carrying
//! `url()`/`expression()` that ever enters the DOM. The test walks every slide, opens
//! every popup, every tab and accordion item, answers every question, opens the ISI and
//! the overview and the references, hovers everything; nothing may be recorded. A last self-check inserts
//! a known vector and requires the sentinel to catch it (so the test can fail).
//!
//! `csp_blocks_inline_script`: the app page served by the real server (`edetail
//! serve`, its own `Content-Security-Policy`) with an inline `<script>`, an inline
//! event handler and a `javascript:` link injected into its `index.html`: none runs,
//! and each produces a `securitypolicyviolation`. The same page served without that
//! header (the test receiver) runs the inline script: the injection is real.
//!
//! ```sh
//! cargo xtask runtime && cargo test -p edetail-e2e --test xss_browser
//! ```
//!
//! Needs the `edetail` binary for the CSP test: `EDETAIL_BIN`, or it is built with
//! cargo into this test's target directory (as `whole_loop.rs` does).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edetail_authoring::{CompileOptions, Compiled, compile_files, render_human};
use edetail_e2e::browser::{Session, free_port, workspace_root};
use edetail_e2e::harness::settle;
use edetail_e2e::harness::{edetail_bin, goto_retrying};
use edetail_e2e::in_both_browsers;
use edetail_e2e::player::{self, WAIT, testid, wait_current};
use edetail_e2e::site::{Site, dist_www};
use edetail_e2e::webdriver::keys;
use serde_json::{Value, json};

in_both_browsers!(xss_corpus_does_not_execute, csp_blocks_inline_script);

// ---------------------------------------------------------------- the sentinel

const SENTINEL: &str = r#"(function () {
  window.__xss = [];
  window.__csp = [];
  window.__dom = [];
  var rec = function (k) {
    return function () {
      window.__xss.push(k + '(' + Array.prototype.map.call(arguments, String).join(',') + ')');
    };
  };
  ['alert', 'confirm', 'prompt', 'print'].forEach(function (k) { window[k] = rec(k); });
  document.addEventListener('securitypolicyviolation', function (e) {
    window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample || '' });
  });
  var bad = /^[\s\u0000-\u001f]*(j[\s]*a[\s]*v[\s]*a[\s]*s[\s]*c[\s]*r[\s]*i[\s]*p[\s]*t|vbscript|data:text\/html|data:image\/svg)/i;
  var ours = /\/(sentinel|boot|edetail_runtime)\.js$/;
  var urlAttrs = ['href', 'src', 'xlink:href', 'action', 'formaction', 'poster', 'data', 'background', 'srcset'];
  var note = function (what, e) {
    window.__dom.push(what + ': ' + (e.outerHTML || '').slice(0, 200));
  };
  var check = function (root) {
    if (!(root instanceof Element)) return;
    var all = [root].concat(Array.prototype.slice.call(root.querySelectorAll('*')));
    all.forEach(function (e) {
      var tag = e.localName;
      if (tag === 'script') {
        var src = e.getAttribute('src');
        if (!(src && ours.test(new URL(src, location.href).pathname))) note('script element', e);
      }
      if (['iframe', 'frame', 'frameset', 'object', 'embed', 'base', 'form', 'meta', 'applet', 'portal'].indexOf(tag) >= 0 && !e.closest('head')) note(tag + ' element', e);
      if ((tag === 'style' || tag === 'link') && !e.closest('head')) note(tag + ' element in the body', e);
      for (var i = 0; i < e.attributes.length; i++) {
        var a = e.attributes[i], n = a.name.toLowerCase(), v = a.value;
        if (n.indexOf('on') === 0) note('event handler ' + n, e);
        if (urlAttrs.indexOf(n) >= 0 && bad.test(v)) note('script URL in ' + n, e);
        if (n === 'srcdoc') note('srcdoc', e);
        if (n === 'style' && /url\(|expression\(|javascript:|behavior|binding/i.test(v)) note('style vector', e);
      }
    });
  };
  new MutationObserver(function (ms) {
    ms.forEach(function (m) {
      if (m.type === 'attributes') check(m.target);
      m.addedNodes.forEach(check);
    });
  }).observe(document.documentElement, { subtree: true, childList: true, attributes: true });
})();
"#;

/// Put `sentinel.js` first in the `<head>` of `www/index.html`, plus `extra_head`.
fn install_sentinel(www: &Path, extra_head: &str) -> Result<()> {
    std::fs::write(www.join("sentinel.js"), SENTINEL)?;
    let p = www.join("index.html");
    let html = std::fs::read_to_string(&p)?;
    let at = html.find("<head>").context("index.html has no <head>")? + "<head>".len();
    let html = format!(
        "{}\n<script src=\"sentinel.js\"></script>{extra_head}{}",
        &html[..at],
        &html[at..]
    );
    std::fs::write(&p, html)?;
    Ok(())
}

/// What the sentinel recorded so far.
fn recorded(wd: &edetail_e2e::webdriver::WebDriver) -> Result<Value> {
    wd.js(
        "return { xss: window.__xss, csp: window.__csp, dom: window.__dom }",
        vec![],
    )
}

// ---------------------------------------------------------------- the XSS deck

fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(
        workspace_root()
            .join("authoring")
            .join("tests")
            .join("xss-corpus.txt"),
    )
    .expect("authoring/tests/xss-corpus.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

fn toml_str(p: &str) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

fn attr(p: &str) -> String {
    p.replace('\\', "\\\\").replace('"', "\\\"")
}

fn csv(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\"\""))
}

/// Slide-body places: `{p}` raw, `{a}` attribute-escaped, `{c}` CSV-quoted.
const BODY: &[(&str, &str)] = &[
    ("paragraph", "{p}\n"),
    ("inline", "Before {p} after.\n"),
    ("heading", "## {p}\n"),
    ("list item", "- {p}\n- two\n"),
    ("table cell", "| a | b |\n|---|---|\n| {p} | x |\n"),
    ("link text", "[{p}](https://example.org)\n"),
    ("link destination", "[x]({p})\n"),
    ("link title", "[x](https://example.org \"{a}\")\n"),
    ("image alt", "![{p}](assets/a.svg)\n"),
    ("image destination", "![alt]({p})\n"),
    (
        "popup label and title",
        ":::popup{label=\"{a}\" title=\"{a}\"}\n{p}\n:::\n",
    ),
    ("popup label raw", ":::popup{label=\"{p}\"}\nbody\n:::\n"),
    ("popup body", ":::popup{label=\"More\"}\n{p}\n:::\n"),
    (
        "tab label and body",
        "::::tabs\n:::tab{label=\"{a}\"}\n{p}\n:::\n:::tab{label=\"Other\"}\nx\n:::\n::::\n",
    ),
    (
        "accordion",
        "::::accordion\n:::tab{label=\"{a}\"}\n{p}\n:::\n::::\n",
    ),
    (
        "chart title, unit and cells",
        ":::chart{type=bar title=\"{a}\" unit=\"{a}\"}\nWeek,{c}\n{c},1\n:::\n",
    ),
    (
        "forest label and x_label",
        ":::chart{type=forest title=\"T\" x_label=\"{a}\" reference=0}\nL,E,Lo,Hi\n{c},1,0,2\n:::\n",
    ),
    (
        "quiz prompt, option, explanation",
        ":::quiz\n{p}\n\n- [x] {p}\n- other\n\n> {p}\n:::\n",
    ),
    ("poll option", ":::poll\nWhich?\n\n- {p}\n- other\n:::\n"),
    (
        "rating labels",
        ":::survey{kind=rating min_label=\"{a}\" max_label=\"{a}\"}\nRate it\n:::\n",
    ),
    ("build step", ":::step\n{p}\n:::\n"),
    (
        "columns",
        "::::columns\n:::column\n{p}\n:::\n:::column\nx\n:::\n::::\n",
    ),
];

/// Manifest placeholders (replaced by a TOML string) and their benign defaults.
const MANIFEST_FIELDS: &[(&str, &str)] = &[
    ("TITLE", "XSS deck"),
    ("PRODUCT", "Zentara"),
    ("AREA", "Diabetes"),
    ("ISITITLE", "Safety"),
    ("CITATION", "Smith J. A fictional trial. 2024."),
];

fn manifest(fields: &BTreeMap<&str, String>, sections: &[(String, String)]) -> String {
    let get = |k: &str| toml_str(&fields[k]);
    let mut m = format!(
        r#"[deck]
id = "xss"
title = {}
version = "1.0.0"
locale = "en-US"
product = {}
therapeutic_area = {}
sources = [{}]

[approval]
code = "X-1"
valid_from = 2020-01-01
valid_until = 2099-12-31

[isi]
title = {}
file = "isi.md"

[references.r1]
citation = {}
url = "https://example.org/ref"
"#,
        get("TITLE"),
        get("PRODUCT"),
        get("AREA"),
        sections
            .iter()
            .map(|(id, _)| toml_str(&format!("{id}.md")))
            .collect::<Vec<_>>()
            .join(", "),
        get("ISITITLE"),
        get("CITATION"),
    );
    for (id, title) in sections {
        m.push_str(&format!(
            "\n[[flow]]\nid = \"sec-{id}\"\ntitle = {}\nslides = [\"{id}\"]\n",
            toml_str(title)
        ));
    }
    m
}

/// One slide: front matter lines, then the body.
fn slide(id: &str, fm: &[String], body: &str) -> String {
    let mut fm = fm.to_vec();
    if !fm.iter().any(|l| l.starts_with("title")) {
        fm.insert(0, format!("title = \"Slide {id}\""));
    }
    format!(
        "+++\nid = \"{id}\"\n{}\n+++\n\n# {id}\n\nCited.[^r1]\n\n{body}",
        fm.join("\n")
    )
}

struct Deck {
    slides: Vec<(String, String)>,
    sections: Vec<(String, String)>,
    fields: BTreeMap<&'static str, String>,
    isi: String,
}

impl Deck {
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut f = BTreeMap::new();
        f.insert(
            "deck.toml".to_string(),
            manifest(&self.fields, &self.sections).into_bytes(),
        );
        for (id, text) in &self.slides {
            f.insert(format!("{id}.md"), text.clone().into_bytes());
        }
        f.insert("isi.md".to_string(), self.isi.clone().into_bytes());
        f.insert(
            "assets/a.svg".to_string(),
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
        );
        f
    }

    fn compile(&self) -> Compiled {
        compile_files(
            self.files(),
            &CompileOptions::new(edetail_authoring::today_utc()),
        )
    }

    fn benign() -> Deck {
        Deck {
            slides: vec![("x0".into(), slide("x0", &[], "Benign.\n"))],
            sections: vec![("x0".into(), "Main".into())],
            fields: MANIFEST_FIELDS
                .iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
            isi: "Safety text.\n".into(),
        }
    }
}

fn builds(d: &Deck) -> bool {
    let c = d.compile();
    c.bundle.is_some() && !c.diagnostics.iter().any(|d| d.is_error())
}

/// The XSS deck (compiled once for both browsers) and what went into it.
struct XssDeck {
    compiled: Compiled,
    /// Slide ids in flow order.
    order: Vec<String>,
    /// (payload places accepted, payload places refused).
    accepted: usize,
    refused: usize,
}

fn xss_deck() -> &'static XssDeck {
    static DECK: OnceLock<XssDeck> = OnceLock::new();
    DECK.get_or_init(|| {
        let t0 = Instant::now();
        let payloads = corpus();
        let mut deck = Deck {
            slides: Vec::new(),
            sections: Vec::new(),
            fields: Deck::benign().fields,
            isi: String::new(),
        };
        let (mut accepted, mut refused) = (0, 0);
        let mut field_payloads: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut isi = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let id = format!("x{i}");
            // Body places, each tried alone in a one-slide deck.
            let mut body = String::new();
            for (_, t) in BODY {
                let frag = t
                    .replace("{a}", &attr(p))
                    .replace("{c}", &csv(p))
                    .replace("{p}", p);
                let mut d = Deck::benign();
                d.slides = vec![("x0".into(), slide("x0", &[], &frag))];
                if builds(&d) {
                    body.push_str(&frag);
                    body.push('\n');
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            // Front matter.
            let mut fm = Vec::new();
            for key in ["title", "key_message"] {
                let line = format!("{key} = {}", toml_str(p));
                let mut d = Deck::benign();
                d.slides = vec![("x0".into(), slide("x0", std::slice::from_ref(&line), "x\n"))];
                if builds(&d) {
                    fm.push(line);
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            // Section title.
            let mut d = Deck::benign();
            d.sections = vec![("x0".into(), p.clone())];
            let section = if builds(&d) {
                accepted += 1;
                p.clone()
            } else {
                refused += 1;
                format!("Section {i}")
            };
            // Manifest fields and the ISI.
            for (k, _) in MANIFEST_FIELDS {
                let mut d = Deck::benign();
                d.fields.insert(k, p.clone());
                if builds(&d) {
                    field_payloads.entry(k).or_default().push(p.clone());
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            let mut d = Deck::benign();
            d.isi = format!("{p}\n");
            if builds(&d) {
                isi.push(p.clone());
                accepted += 1;
            } else {
                refused += 1;
            }
            let text = slide(&id, &fm, &body);
            deck.slides.push((id.clone(), text));
            deck.sections.push((id, section));
        }
        // Every payload a manifest field accepts, in that one field (joined), when the
        // joined value still builds; otherwise the first one.
        for (k, ps) in &field_payloads {
            let mut d = Deck::benign();
            d.fields.insert(k, ps.join(" "));
            let v = if builds(&d) {
                ps.join(" ")
            } else {
                ps[0].clone()
            };
            deck.fields.insert(k, v);
        }
        deck.isi = format!("Safety text.\n\n{}\n", isi.join("\n\n"));
        let compiled = deck.compile();
        if compiled.bundle.is_none() || compiled.diagnostics.iter().any(|d| d.is_error()) {
            panic!(
                "the combined XSS deck does not build:\n{}",
                render_human(&compiled.diagnostics, false)
            );
        }
        let b = compiled.bundle.as_ref().unwrap();
        let order: Vec<String> = b
            .flow
            .iter()
            .flat_map(|s| s.slides.iter().cloned())
            .collect();
        eprintln!(
            "XSS deck: {} payloads, {accepted} payload places built, {refused} refused by the compiler; {} slides (built in {:?})",
            payloads.len(),
            order.len(),
            t0.elapsed()
        );
        XssDeck {
            compiled,
            order,
            accepted,
            refused,
        }
    })
}

// ---------------------------------------------------------------- the walk

/// Open every popup, tab, accordion item and question of the current slide, and hover
/// every element of it (in the page, to keep WebDriver round trips few).
const EXERCISE_SLIDE: &str = r#"
const done = arguments[arguments.length - 1];
const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 20))));
(async () => {
  const slide = document.querySelector('.slide.is-current');
  if (!slide) { done({ error: 'no current slide' }); return; }
  const out = { popups: 0, tabs: 0, details: 0, answers: 0, hovered: 0 };
  for (const t of slide.querySelectorAll('.ed-popup-trigger')) {
    t.click();
    let p = null;
    for (let i = 0; i < 50 && !p; i++) { await frame(); p = document.querySelector('[data-testid=popup]'); }
    if (!p) { done({ error: 'popup did not open: ' + t.outerHTML.slice(0, 200) }); return; }
    out.popups++;
    for (const e of p.querySelectorAll('*')) { e.dispatchEvent(new MouseEvent('mouseover', { bubbles: true })); }
    const c = document.querySelector('[data-testid=dialog-close]');
    if (c) c.click(); else document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
    for (let i = 0; i < 50 && document.querySelector('[data-testid=popup]'); i++) await frame();
    if (document.querySelector('[data-testid=popup]')) { done({ error: 'popup did not close' }); return; }
  }
  for (const t of slide.querySelectorAll('[role=tab]')) { t.click(); await frame(); out.tabs++; }
  for (const d of slide.querySelectorAll('details')) { d.open = true; await frame(); out.details++; }
  for (const q of slide.querySelectorAll('.ed-question')) {
    const o = q.querySelector('.ed-option');
    if (o) { o.click(); await frame(); out.answers++; }
  }
  for (const e of slide.querySelectorAll('*')) {
    e.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
    e.dispatchEvent(new FocusEvent('focus'));
    out.hovered++;
  }
  await frame();
  done(out);
})().catch(e => done({ error: String(e && e.stack || e) }));
"#;

fn assert_clean(wd: &edetail_e2e::webdriver::WebDriver, when: &str) -> Result<()> {
    let r = recorded(wd)?;
    for k in ["xss", "csp", "dom"] {
        let n = r[k].as_array().map(Vec::len).unwrap_or(usize::MAX);
        ensure!(n == 0, "{when}: the sentinel recorded {k}: {}", r[k]);
    }
    Ok(())
}

fn xss_corpus_does_not_execute(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let deck = xss_deck();
    let mut site = Site::new_with(Path::new(env!("CARGO_BIN_EXE_e2e-receiver")))?;
    install_sentinel(&site.www(), "")?;
    let b = deck.compiled.bundle.as_ref().context("bundle")?;
    site.add_bundle("xss", b, &deck.compiled)?;
    site.start()?;
    wd.set_viewport(1024, 768)?;
    goto_retrying(wd, &site.player_url("xss", "mode=self"))?;
    player::wait_loaded(wd)?;
    ensure!(
        wd.js("return Array.isArray(window.__xss)", vec![])? == json!(true),
        "the sentinel did not load before the runtime"
    );
    ensure!(
        wd.js(
            "return !!document.querySelector('[data-testid=player]')",
            vec![]
        )? == json!(true),
        "the XSS deck was refused: {}",
        wd.js("return document.body.innerText.slice(0, 400)", vec![])?
    );
    player::enter(wd, "h-xss")?;
    let mut totals = BTreeMap::<&str, u64>::new();
    for (i, id) in deck.order.iter().enumerate() {
        if i > 0 {
            // The Next control (arrow keys belong to a focused tab list or question);
            // build steps take one Next each before the slide turns.
            for _ in 0..20 {
                if player::current(wd)? == *id {
                    break;
                }
                wd.click_css(&testid("next"))?;
                settle(wd)?;
            }
        }
        wait_current(wd, id).with_context(|| format!("walking to slide {id}"))?;
        let r = wd.js_async(EXERCISE_SLIDE, vec![])?;
        if let Some(e) = r.get("error") {
            bail!("slide {id}: {e}");
        }
        for k in ["popups", "tabs", "details", "answers", "hovered"] {
            *totals.entry(k).or_default() += r[k].as_u64().unwrap_or(0);
        }
        assert_clean(wd, &format!("slide {id}"))?;
    }
    // The ISI panel (its title and markdown carry payloads) and the overview (section
    // and slide titles).
    wd.click_css(&testid("isi"))?;
    wd.wait_find(&testid("isi-panel"), WAIT)?;
    settle(wd)?;
    wd.press(keys::ESCAPE)?;
    wd.click_css(&testid("overview"))?;
    wd.wait_find(&testid("overview-panel"), WAIT)?;
    settle(wd)?;
    wd.press(keys::ESCAPE)?;
    wd.wait_js(
        "the overview to close",
        "!document.querySelector('[data-testid=overview-panel]')",
        WAIT,
    )?;
    // The references panel (citations carry payloads).
    wd.click_css(&testid("references"))?;
    wd.wait_find(&testid("references-panel"), WAIT)?;
    settle(wd)?;
    wd.press(keys::ESCAPE)?;
    // Late handlers (image errors, timers).
    std::thread::sleep(Duration::from_millis(500));
    assert_clean(wd, "after the walk")?;
    ensure!(
        totals["popups"] > 0 && totals["tabs"] > 0 && totals["answers"] > 0,
        "the walk exercised nothing: {totals:?}"
    );
    eprintln!(
        "{}: {} slides walked, {totals:?}; {} payload places built, {} refused",
        s.browser.name(),
        deck.order.len(),
        deck.accepted,
        deck.refused
    );
    // Self-check: the sentinel does catch an executing vector.
    wd.js(
        "document.body.insertAdjacentHTML('beforeend', '<img id=xss-probe src=/no-such-image.png onerror=\"alert(\\'probe\\')\">'); return true;",
        vec![],
    )?;
    wd.wait_js(
        "the sentinel to catch the probe",
        "window.__xss.length > 0 && window.__dom.length > 0",
        WAIT,
    )
    .context("the sentinel missed a known vector: the test could not fail")?;
    Ok(())
}

// ---------------------------------------------------------------- the CSP

/// The `edetail` binary: `EDETAIL_BIN`, or built next to this test binary.
struct Serve {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(www: &Path) -> Result<Serve> {
    let bin = edetail_bin()?;
    let data = tempfile::tempdir()?;
    let port = free_port()?;
    let child = Command::new(&bin)
        .args(["serve", "--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--www")
        .arg(www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting edetail serve")?;
    let mut s = Serve {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _data: data,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let t0 = Instant::now();
    loop {
        if let Ok(r) = agent.get(format!("{}/healthz", s.url)).call()
            && r.status().as_u16() == 200
        {
            return Ok(s);
        }
        if let Ok(Some(st)) = s.child.try_wait() {
            bail!("edetail serve exited ({st})");
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "edetail serve not healthy within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Injected into the app's `index.html`: an inline script, an inline event handler and
/// a `javascript:` link, each of which would set a marker if it ran.
const INJECTED: &str = r#"
<script>window.__inline = 'ran';</script>
<img id="csp-probe-img" src="/no-such-image.png" onerror="window.__handler = 'ran'">
<a id="csp-probe-link" href="javascript:void(window.__jsurl = 'ran')">x</a>
"#;

fn probe(wd: &edetail_e2e::webdriver::WebDriver) -> Result<Value> {
    // The image error has fired (or been blocked) once the page has loaded.
    wd.wait_js(
        "the page to load",
        "document.readyState === 'complete'",
        WAIT,
    )?;
    wd.js(
        "const a = document.getElementById('csp-probe-link'); if (a) a.click(); return true;",
        vec![],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    wd.js(
        "return { inline: window.__inline || null, handler: window.__handler || null, jsurl: window.__jsurl || null, csp: window.__csp || null }",
        vec![],
    )
}

fn csp_blocks_inline_script(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let tmp = tempfile::tempdir()?;
    let www = tmp.path().join("www");
    copy_dir(&dist_www()?, &www)?;
    install_sentinel(&www, INJECTED)?;

    // Control: the same page with no CSP (the test receiver) runs the injected script.
    {
        let mut site = Site::new_with(Path::new(env!("CARGO_BIN_EXE_e2e-receiver")))?;
        install_sentinel(&site.www(), INJECTED)?;
        site.start()?;
        goto_retrying(wd, &format!("{}/", site.origin()))?;
        let r = probe(wd)?;
        ensure!(
            r["inline"] == json!("ran") && r["handler"] == json!("ran"),
            "control: the injection does not run even without a CSP, so the CSP check below proves nothing: {r}"
        );
    }

    // The real server: its CSP blocks every injected script and reports each.
    let server = serve(&www)?;
    goto_retrying(wd, &format!("{}/app/", server.url))?;
    let r = probe(wd)?;
    let csp = wd.js_async(
        "const done = arguments[arguments.length - 1];
         fetch('/app/').then(r => done(r.headers.get('content-security-policy')), e => done('ERR ' + e));",
        vec![],
    )?;
    let csp = csp.as_str().unwrap_or("").to_string();
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or("");
    ensure!(
        script_src.starts_with("script-src") && !script_src.contains("'unsafe-inline'"),
        "script-src allows inline script: {script_src:?}"
    );
    ensure!(
        r["inline"].is_null(),
        "an inline <script> ran under the server's CSP: {r}"
    );
    ensure!(
        r["handler"].is_null(),
        "an inline event handler ran under the server's CSP: {r}"
    );
    ensure!(
        r["jsurl"].is_null(),
        "a javascript: URL ran under the server's CSP: {r}"
    );
    let violations: Vec<&Value> = r["csp"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let script_violations = violations
        .iter()
        .filter(|v| {
            v["directive"]
                .as_str()
                .unwrap_or("")
                .starts_with("script-src")
        })
        .count();
    ensure!(
        script_violations >= 2,
        "expected securitypolicyviolation events for the inline script and the inline handler, got: {violations:?}"
    );
    eprintln!(
        "{}: CSP `{script_src}` blocked the injected inline script, handler and javascript: URL; {} violations reported",
        s.browser.name(),
        violations.len()
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}
