//! Issue #4, the whole loop: build a sample -> `edetail publish` to a real
//! `edetail serve` (SQLite, temp data dir, free port) -> the runtime in a real browser
//! loads it through the server with a device token -> the server goes down mid-call ->
//! the MR presents and answers a quiz offline -> the server restarts on the same data
//! dir and port -> the insights (HTTP JSON, and the `edetail insights` CLI) show exactly
//! the views and the answer the browser produced.
//!
//! Needs the `edetail` binary with the `server` feature: `EDETAIL_BIN`, or it is built
//! with cargo into this test's target directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edetail_e2e::browser::{Browser, LaunchOptions, Session, free_port, launch, require};
use edetail_e2e::harness::edetail_bin;
use edetail_e2e::player::{self, WAIT, testid, wait_current};
use edetail_e2e::site::{compile_sample, dist_www};
use edetail_e2e::webdriver::keys;
use serde_json::{Value, json};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Server {
    bin: PathBuf,
    data: PathBuf,
    /// Trusted-keys file (`edetail keygen`'s `.pub`) passed to `--trusted-keys`.
    trusted: PathBuf,
    www: PathBuf,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--www")
            .arg(&self.www)
            .arg("--trusted-keys")
            .arg(&self.trusted)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting edetail serve")?;
        self.child = Some(child);
        let agent = agent();
        let t0 = Instant::now();
        loop {
            if let Ok(mut r) = agent.get(format!("{}/healthz", self.url())).call()
                && r.status().as_u16() == 200
                && r.body_mut()
                    .read_to_string()
                    .is_ok_and(|b| b.trim() == "ok")
            {
                return Ok(());
            }
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                bail!("edetail serve exited ({st}): {}", self.log_tail());
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "edetail serve not healthy within 60 s: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM (graceful: in-flight batches are committed), then wait.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn admin_token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data.join("admin-token"))
            .context("admin-token")?
            .trim()
            .to_string())
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.chars()
            .rev()
            .take(1500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--server", &self.url()])
            .arg("--token-dir")
            .arg(&self.data)
            .output()
            .context("running edetail")?;
        ensure!(
            out.status.success(),
            "edetail {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let token = server.admin_token()?;
    let url = format!("{}{path}", server.url());
    let auth = format!("Bearer {token}");
    let a = agent();
    let mut r = match method {
        "GET" => a.get(&url).header("Authorization", &auth).call()?,
        _ => a
            .post(&url)
            .header("Authorization", &auth)
            .send_json(body.unwrap_or_else(|| json!({})))?,
    };
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string()?;
    ensure!(status < 300, "{method} {path}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// WORKAROUND (NEEDS.md item 8): `edetail serve` serves `/bundles/<hash>/bundle.json`
/// and assets but no `bundle.sha256`, which the runtime fetches first (404: "could not
/// be loaded"). The shim answers a failed `bundle.sha256` request under
/// `/bundles/<64 hex>/` with the hash from the path (the content address the server
/// routes by); `bundle.json` is still verified against it by the runtime.
const SHA256_SHIM: &str = r"
const __fetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const url = new URL(typeof input === 'string' ? input : input.url, location.href);
  const m = /\/bundles\/([0-9a-f]{64})\/bundle\.sha256$/.exec(url.pathname);
  if (!m) return __fetch(input, init);
  try {
    const r = await __fetch(input, init);
    if (r.ok) return r;
  } catch (e) {}
  return new Response(m[1] + '\n', { status: 200, headers: { 'Content-Type': 'text/plain' } });
};
";

/// WORKAROUND (NEEDS.md item 7): `edetail serve` sends `script-src 'self'
/// 'wasm-unsafe-eval'` for `/app/`, which blocks the inline module script that
/// `www/index.html` uses to start the runtime (the page stays on "Loading…"). Until
/// runtime-ui or the server fixes it, the test's copy of the shell moves that script
/// into `boot.js` (and lists it for the service worker's precache).
fn externalize_boot_script(www: &Path) -> Result<()> {
    let index = www.join("index.html");
    let html = std::fs::read_to_string(&index)?;
    let open = "<script type=\"module\">";
    let Some(start) = html.find(open) else {
        return Ok(()); // already external: nothing to do
    };
    let body_start = start + open.len();
    let end = html[body_start..]
        .find("</script>")
        .map(|e| body_start + e)
        .context("unterminated inline script")?;
    eprintln!(
        "WORKAROUND: moving the inline boot script of index.html to boot.js (CSP of edetail serve)"
    );
    std::fs::write(
        www.join("boot.js"),
        format!("{SHA256_SHIM}\n{}", &html[body_start..end]),
    )?;
    let html = format!(
        "{}<script type=\"module\" src=\"boot.js\"></script>{}",
        &html[..start],
        &html[end + "</script>".len()..]
    );
    std::fs::write(&index, html)?;
    let pre = www.join("precache.json");
    if let Ok(text) = std::fs::read_to_string(&pre)
        && let Ok(mut v) = serde_json::from_str::<Value>(&text)
        && let Some(files) = v["files"].as_array_mut()
    {
        files.push(json!("boot.js"));
        std::fs::write(&pre, v.to_string())?;
    }
    Ok(())
}

/// Stay on the current slide long enough for its view to count (threshold 2 s).
fn dwell() {
    std::thread::sleep(Duration::from_millis(2600));
}

fn whole_loop(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let tmp = tempfile::tempdir()?;
    let www = tmp.path().join("www");
    copy_dir(&dist_www()?, &www)?;
    externalize_boot_script(&www)?;
    // A head-office signing key: the server trusts it, the bundle is signed with it.
    let bin = edetail_bin()?;
    let keys = tmp.path().join("keys");
    let st = Command::new(&bin)
        .args(["keygen", "--name", "e2e", "--out"])
        .arg(&keys)
        .status()
        .context("edetail keygen")?;
    ensure!(st.success(), "edetail keygen failed");
    let mut server = Server {
        bin,
        data: tmp.path().join("data"),
        trusted: keys.join("e2e.pub"),
        www,
        port: free_port()?,
        child: None,
        log: tmp.path().join("server.log"),
    };
    server.start()?;

    // Build and publish the Korean MR-led sample with the real CLI.
    let c = compile_sample("ko-zentara-launch")?;
    let bundle = c.bundle.clone().context("bundle")?;
    let dir = tmp.path().join("bundle");
    let hash = edetail_authoring::write_bundle_dir(&bundle, &c.assets, &dir)?;
    let st = Command::new(&server.bin)
        .arg("sign")
        .arg(&dir)
        .arg("--key")
        .arg(keys.join("e2e.key"))
        .status()
        .context("edetail sign")?;
    ensure!(st.success(), "edetail sign failed");
    server.cli(&["publish", &dir.display().to_string()])?;
    let catalog_check = api(&server, "GET", "/api/v1/versions", None)?;
    ensure!(
        catalog_check.to_string().contains(&hash),
        "published version not listed: {catalog_check}"
    );
    let tok = api(
        &server,
        "POST",
        "/api/v1/tokens",
        Some(
            json!({"kind": "device", "rep": "rep-e2e", "territory": "T-E2E", "label": "e2e iPad"}),
        ),
    )?;
    let device = tok["token"].as_str().context("device token")?.to_string();

    // The runtime from the server, with the device token. First load installs the
    // service worker; the reload (before any call, so no session is open) puts the
    // bundle in its cache.
    let url = format!(
        "{}/app/?bundle=/bundles/{hash}/&mode=mr&token={device}",
        server.url()
    );
    wd.set_viewport(1024, 768)?;
    player::open(wd, &url)?;
    // A first open downloads the wasm and the bundle once each (a `<link rel=preload
    // as=fetch>` made WebKit download both twice: it never hands such a preload to the
    // page's fetch()). Resource timing lists each download with its transfer size.
    let downloads = wd.js(
        "return performance.getEntriesByType('resource')
           .filter(e => /(edetail_runtime_bg\\.wasm|bundle\\.json|bundle\\.sha256)$/.test(e.name.split('?')[0]))
           .map(e => e.name.split('?')[0].split('/').pop() + ' ' + e.transferSize)",
        vec![],
    )?;
    for f in ["edetail_runtime_bg.wasm", "bundle.json", "bundle.sha256"] {
        let n = downloads
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|d| d.split(' ').next() == Some(f))
            .count();
        ensure!(
            n == 1,
            "{f} downloaded {n} times on a first open: {downloads}"
        );
    }
    player::wait_controlled(wd, Duration::from_secs(20))?;
    wd.refresh()?;
    player::wait_loaded(wd)?;
    player::enter(wd, "HCP-E2E-0001")?;
    wait_current(wd, "title")?;
    dwell();
    wd.press(keys::ARROW_RIGHT)?;
    wait_current(wd, "burden")?;
    dwell();

    // The network goes: the server stops mid-call.
    server.stop();
    player::overview_jump(wd, "quiz-moa")?;
    wd.click_css(".slide.is-current [data-component=q-moa] .ed-option[data-option=dual]")?;
    wd.wait_js(
        "quiz feedback",
        "document.querySelector('.slide.is-current [data-component=q-moa].answered .verdict.ok')",
        WAIT,
    )?;
    dwell();
    wd.click_css(&testid("tray-handle"))?;
    wd.click_css(&testid("end-call"))?;
    wd.wait_find(&testid("call-summary"), WAIT)?;
    let unsent = player::outbox_ids(wd)?;
    ensure!(
        !unsent.is_empty(),
        "nothing waiting in the outbox while the server is down"
    );

    // The server comes back on the same data dir and port; the call is closed online.
    server.start()?;
    wd.js(
        "window.dispatchEvent(new Event('online')); return true;",
        vec![],
    )?;
    player::wait_outbox_empty(wd, Duration::from_secs(60))?;
    wd.click_css(&testid("close-call"))?;
    wd.wait_find(&testid("start-call"), WAIT)?;
    player::wait_outbox_empty(wd, Duration::from_secs(60))?;

    // The insights show exactly what happened.
    let deck = bundle.deck.id.clone();
    let r = api(
        &server,
        "GET",
        &format!("/api/v1/insights/deck?deck={deck}"),
        None,
    )?;
    let views = |slide: &str| -> i64 {
        r["slides"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["slide_id"] == slide))
            .and_then(|s| s["views"].as_i64())
            .unwrap_or(-1)
    };
    ensure!(r["sessions"] == 1, "sessions: {}", r["sessions"]);
    ensure!(
        r["ended_sessions"] == 1,
        "ended sessions: {}",
        r["ended_sessions"]
    );
    ensure!(r["reach"] == 1, "reach: {}", r["reach"]);
    ensure!(
        r["views"] == 3,
        "counted views: {} (slides: {})",
        r["views"],
        r["slides"]
    );
    for (slide, n) in [
        ("title", 1),
        ("burden", 1),
        ("quiz-moa", 1),
        ("moa", 0),
        ("unmet-need", 0),
    ] {
        ensure!(
            views(slide) == n,
            "views of {slide}: {} (want {n})",
            views(slide)
        );
    }
    let q = r["questions"]
        .as_array()
        .and_then(|a| a.iter().find(|q| q["question_id"] == "q-moa"))
        .context("no q-moa in the insights")?;
    ensure!(q["answers"] == 1 && q["correct"] == 1, "q-moa: {q}");
    let dual = q["options"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["option"] == "dual"))
        .context("no option dual")?;
    ensure!(dual["count"] == 1, "option dual: {dual}");
    let mr = r["channels"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["channel"] == "mr_led"))
        .context("no mr_led channel")?;
    ensure!(mr["sessions"] == 1 && mr["views"] == 3, "mr_led: {mr}");

    // The CLI reads the same numbers.
    let csv = server.cli(&[
        "insights",
        "--deck",
        &deck,
        "--format",
        "csv",
        "--section",
        "slides",
    ])?;
    let header = csv_fields(
        csv.lines()
            .find(|l| l.contains("slide_id"))
            .context("no CSV header")?,
    );
    let col = |name: &str| header.iter().position(|h| h == name);
    let (sid, vcol) = (
        col("slide_id").context("slide_id column")?,
        col("views").context("views column")?,
    );
    for (slide, n) in [("title", "1"), ("burden", "1"), ("quiz-moa", "1")] {
        let row = csv
            .lines()
            .map(csv_fields)
            .find(|f| f.get(sid).map(String::as_str) == Some(slide))
            .with_context(|| format!("no {slide} row in the CLI slides CSV:\n{csv}"))?;
        ensure!(
            row.get(vcol).map(String::as_str) == Some(n),
            "CLI views of {slide}: {row:?}"
        );
    }
    Ok(())
}

/// Fields of one CSV line (RFC 4180 quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

#[test]
fn whole_loop_chromium() {
    run(Browser::Chromium);
}

#[test]
fn whole_loop_webkit() {
    run(Browser::WebKit);
}

fn run(b: Browser) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(b) = require(b) else { return };
    let session = launch(b, &LaunchOptions::default())
        .unwrap_or_else(|e| panic!("{}: cannot start: {e:#}", b.name()));
    if let Err(e) = whole_loop(&session) {
        let mut page = String::new();
        if let Ok(v) = session
            .wd
            .js("return document.body.innerText.slice(0, 400)", vec![])
        {
            page = v.to_string();
        }
        panic!("{}: {e:#}\npage: {page}", b.name());
    }
}
