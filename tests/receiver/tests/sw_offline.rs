//! `www/sw.js` in a real browser: a page and a bundle opened once keep working when the
//! server is gone (the receiver is stopped: every network request is refused).
//!
//! Needs a WebDriver: ignored by default; `runtime/run-wasm-tests.sh` runs it with
//! `EDETAIL_BROWSER=chrome CHROMEDRIVER=…` and `EDETAIL_BROWSER=webkit SAFARIDRIVER=…`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edetail_test_receiver::{Config, Receiver};
use serde_json::{Value, json};

/// A TCP forwarder standing in for the network: `cut()` closes the listener and every
/// open connection, so the browser sees refused connections (as offline), including on
/// connections it kept alive.
struct Network {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Network {
    fn new(upstream: std::net::SocketAddr) -> Network {
        Network::on_port(upstream, 0)
    }

    /// The network back on the same port (same origin for the browser) after `cut()`.
    fn on_port(upstream: std::net::SocketAddr, port: u16) -> Network {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, cs) = (stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut list = cs.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Network {
            port,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn cut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    try_request(port, method, path, body).expect("driver request")
}

/// One WebDriver request; an error when the connection fails (connect, write, read,
/// or closed before the answer's head).
fn try_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // Read the head, then exactly the body (drivers may keep the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "driver closed the connection early",
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    Ok(serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!(
            "driver answer not JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    }))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

impl Driver {
    fn start(browser: &str) -> Driver {
        let (var, caps) = match browser {
            "chrome" => (
                "CHROMEDRIVER",
                json!({"goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]}}),
            ),
            "webkit" => ("SAFARIDRIVER", json!({})),
            other => panic!("EDETAIL_BROWSER must be chrome or webkit, not {other}"),
        };
        let bin = std::env::var(var)
            .unwrap_or_else(|_| panic!("{var} must point to the WebDriver binary"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{bin} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A driver that accepts connections before it serves them has reset the first
        // session request (a full CI run: "Connection reset by peer"): try again
        // until it answers, within the start's 30 s.
        let v = loop {
            match try_request(
                port,
                "POST",
                "/session",
                Some(&json!({"capabilities": {"alwaysMatch": caps}})),
            ) {
                Ok(v) => break v,
                Err(e) => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(30),
                        "{bin}: no session: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Driver {
            child,
            port,
            session,
        }
    }

    fn goto(&self, url: &str) {
        let v = request(
            self.port,
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&json!({"url": url})),
        );
        assert!(v["value"].is_null(), "navigate {url}: {v}");
    }

    /// Open `url` and wait (5 s at most) until the service worker controls it.
    fn goto_controlled(&self, url: &str) {
        self.goto(url);
        let v = self.run(
            "await window.swReady;
             for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) await new Promise(r => setTimeout(r, 50));
             done(!!navigator.serviceWorker.controller);",
        );
        assert_eq!(v, json!(true), "the service worker controls the page");
    }

    /// Run an async script body; it must end by calling `done(value)`.
    fn run(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1]; (async () => {{ {body} }})().catch(e => done('error: ' + e));"
        );
        let v = request(
            self.port,
            "POST",
            &format!("/session/{}/execute/async", self.session),
            Some(&json!({"script": script, "args": []})),
        );
        v["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|_| {
            request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            )
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn site(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edetail-sw-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let www = d.join("www");
    let sw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/sw.js");
    write(&www, "sw.js", &std::fs::read(&sw).expect("www/sw.js"));
    write(&www, "index.html", b"<!doctype html><meta charset=utf-8><title>shell v1</title><script src=\"app.js\"></script>");
    // `?first`: a first visit as the runtime makes it: the bundle is fetched before the
    // worker exists; once it is active the page posts the fetched bundle URLs to it
    // (what `tracking::register_service_worker` does with the resource timing entries).
    write(
        &www,
        "app.js",
        format!(
            "window.integrity = [];\n\
             navigator.serviceWorker.addEventListener('message', (e) => {{ if (e.data && e.data.type === 'edetail-integrity') window.integrity.push(e.data.url); }});\n\
             window.load = async (u, init) => {{ const r = await fetch(u, init); return r.status + ':' + (await r.text()); }};\n\
             window.swReady = (async () => {{\n\
               if (location.search.includes('first')) {{\n\
                 for (const u of ['/decks/demo/bundle.json', '/decks/demo/bundle.sha256', '{GOOD}']) await fetch(u);\n\
               }}\n\
               await navigator.serviceWorker.register('sw.js');\n\
               const reg = await navigator.serviceWorker.ready;\n\
               if (location.search.includes('first')) {{\n\
                 const urls = performance.getEntriesByType('resource').map((e) => e.name)\n\
                   .filter((n) => /\\/bundle\\.(json|sha256)$|\\/assets\\/[0-9a-f]{{64}}/.test(n));\n\
                 const cached = new Promise((r) => navigator.serviceWorker.addEventListener('message', (e) => {{ if (e.data.type === 'edetail-cached') r(e.data.count); }}));\n\
                 reg.active.postMessage({{ type: 'edetail-cache', urls }});\n\
                 window.cachedCount = await cached;\n\
               }}\n\
               return reg;\n\
             }})();\n",
            GOOD = good_asset()
        )
        .as_bytes(),
    );
    write(
        &www,
        "precache.json",
        br#"{"version":"v1","files":["./","index.html","app.js"]}"#,
    );
    write(&www, "decks/demo/bundle.json", br#"{"deck":"demo"}"#);
    write(&www, "decks/demo/bundle.sha256", b"abc123");
    write(&www, &good_asset()[1..], GOOD_BYTES);
    // Content that does not match its name (a tampered asset).
    write(&www, &bad_asset()[1..], b"tampered!");
    d
}

const GOOD_BYTES: &[u8] = b"0123456789";

/// Path of an asset named by the sha256 of its bytes.
fn good_asset() -> String {
    format!(
        "/decks/demo/assets/{}.txt",
        edetail_format::sha256_hex(GOOD_BYTES)
    )
}

/// The browser to test (`EDETAIL_BROWSER`), a fresh site tagged `tag` and a receiver
/// serving it.
fn start(tag: &str) -> (String, PathBuf, Receiver) {
    let browser = std::env::var("EDETAIL_BROWSER").unwrap_or_else(|_| "chrome".into());
    let dir = site(tag);
    let receiver = Receiver::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        dir: Some(dir.join("www")),
        out: dir.join("events.jsonl"),
        token: None,
    })
    .unwrap();
    (browser, dir, receiver)
}

/// Path of an asset whose bytes are not those its name promises.
fn bad_asset() -> String {
    format!(
        "/decks/demo/assets/{}.svg",
        edetail_format::sha256_hex(b"the original")
    )
}

#[test]
#[ignore = "needs a browser and WebDriver: runtime/run-wasm-tests.sh runs it"]
fn shell_and_opened_bundle_work_with_the_server_gone() {
    let (browser, dir, receiver) = start("offline");
    let mut net = Network::new(receiver.addr());
    let base = net.url();
    let asset = good_asset();
    let d = Driver::start(&browser);

    d.goto_controlled(&format!("{base}/?deck=demo"));
    // Open the bundle once (through the worker), including a range request.
    let v = d.run(&format!(
        "done([await load('/decks/demo/bundle.json'), await load('/decks/demo/bundle.sha256'), await load('{asset}')]);"
    ));
    assert_eq!(
        v,
        json!(["200:{\"deck\":\"demo\"}", "200:abc123", "200:0123456789"])
    );
    // Give the worker's cache writes a moment to finish.
    d.run("await new Promise(r => setTimeout(r, 300)); done(1);");

    net.cut();
    // The network is gone: nothing answers on that port any more.
    assert!(TcpStream::connect(("127.0.0.1", net.port)).is_err());

    d.goto(&format!("{base}/?deck=demo&again=1"));
    let v = d.run(&format!(
        "done([document.title, typeof window.load,
               await load('/decks/demo/bundle.json'), await load('/decks/demo/bundle.sha256'),
               await load('/decks/demo/bundle.json?fresh=2'),
               await load('{asset}'), await load('{asset}', {{headers: {{Range: 'bytes=2-5'}}}}),
               await load('/not-cached.txt').catch(e => 'failed'),
               await load('/api/v1/events', {{method: 'POST', body: '{{}}'}}).catch(e => 'failed')]);"
    ));
    assert_eq!(
        v,
        json!([
            "shell v1",
            "function",
            "200:{\"deck\":\"demo\"}",
            "200:abc123",
            "200:{\"deck\":\"demo\"}",
            "200:0123456789",
            "206:2345",
            "failed",
            "failed"
        ]),
        "offline start from the caches ({browser})"
    );
    drop(d);
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs a browser and WebDriver: runtime/run-wasm-tests.sh runs it"]
fn shell_updates_arrive_on_the_next_load() {
    let (browser, dir, receiver) = start("update");
    let base = receiver.url();
    let d = Driver::start(&browser);
    d.goto_controlled(&format!("{base}/"));
    let v = d.run("done(await caches.keys());");
    assert!(
        v.as_array().unwrap().contains(&json!("edetail-shell-v1")),
        "{v}"
    );

    // A new shell is published.
    let www = dir.join("www");
    write(&www, "index.html", b"<!doctype html><meta charset=utf-8><title>shell v2</title><script src=\"app.js\"></script>");
    write(
        &www,
        "precache.json",
        br#"{"version":"v2","files":["./","index.html","app.js"]}"#,
    );

    // The next load still shows v1 (one consistent cached version) and fetches v2 behind it.
    d.goto(&format!("{base}/"));
    let v = d.run(
        "const t = document.title;
         let keys = [];
         for (let i = 0; i < 100; i++) {
           keys = await caches.keys();
           if (keys.includes('edetail-shell-v2') && !keys.includes('edetail-shell-v1')) break;
           await new Promise(r => setTimeout(r, 50));
         }
         done([t, keys]);",
    );
    assert_eq!(v[0], json!("shell v1"), "{v}");
    let keys = v[1].as_array().unwrap();
    assert!(keys.contains(&json!("edetail-shell-v2")), "{v}");
    assert!(
        !keys.contains(&json!("edetail-shell-v1")),
        "old shell deleted: {v}"
    );

    d.goto(&format!("{base}/"));
    assert_eq!(d.run("done(document.title);"), json!("shell v2"));
    drop(d);
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// First visit: the bundle and an asset are fetched before the worker exists; once it is
/// active the page posts their URLs, the worker caches them, and an offline reload
/// opens the bundle.
#[test]
#[ignore = "needs a browser and WebDriver: runtime/run-wasm-tests.sh runs it"]
fn first_visit_bundle_is_cached_for_an_offline_reload() {
    let (browser, dir, receiver) = start("first");
    let mut net = Network::new(receiver.addr());
    let base = net.url();
    let asset = good_asset();
    let d = Driver::start(&browser);
    d.goto(&format!("{base}/?first"));
    let v = d.run("await window.swReady; done(window.cachedCount);");
    assert_eq!(
        v,
        json!(3),
        "the page posted the three bundle URLs it fetched"
    );
    net.cut();
    d.goto(&format!("{base}/?again"));
    let v = d.run(&format!(
        "done([document.title, await load('/decks/demo/bundle.json').catch(e => 'failed'),
               await load('/decks/demo/bundle.sha256').catch(e => 'failed'),
               await load('{asset}').catch(e => 'failed')]);"
    ));
    assert_eq!(
        v,
        json!([
            "shell v1",
            "200:{\"deck\":\"demo\"}",
            "200:abc123",
            "200:0123456789"
        ]),
        "offline reload after a first visit ({browser})"
    );
    drop(d);
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An asset whose bytes do not match its sha256 name is never cached: an element gets a
/// 502, the page's fetch gets the bytes marked `X-Edetail-Integrity: mismatch` (the
/// runtime's own check refuses them), and the page is told.
#[test]
#[ignore = "needs a browser and WebDriver: runtime/run-wasm-tests.sh runs it"]
fn tampered_assets_are_not_cached_and_reported() {
    let (browser, dir, receiver) = start("tampered");
    let mut net = Network::new(receiver.addr());
    let base = net.url();
    let (good, bad) = (good_asset(), bad_asset());
    let d = Driver::start(&browser);
    d.goto_controlled(&format!("{base}/"));
    let v = d.run(&format!(
        "const r = await fetch('{bad}');
         const fetched = [r.status, r.headers.get('X-Edetail-Integrity'), await r.text()];
         const img = await new Promise((res) => {{
           const i = new Image(); i.onload = () => res('loaded'); i.onerror = () => res('error');
           i.src = '{bad}?img';
         }});
         for (let i = 0; i < 100 && window.integrity.length < 2; i++) await new Promise(r => setTimeout(r, 50));
         done([fetched, img, window.integrity.length >= 1, await load('{good}')]);"
    ));
    assert_eq!(
        v,
        json!([
            [200, "mismatch", "tampered!"],
            "error",
            true,
            "200:0123456789"
        ]),
        "{browser}"
    );
    d.run("await new Promise(r => setTimeout(r, 300)); done(1);");
    net.cut();
    d.goto(&format!("{base}/?offline"));
    let v = d.run(&format!(
        "done([await load('{good}').catch(e => 'failed'), await load('{bad}').catch(e => 'failed')]);"
    ));
    assert_eq!(
        v,
        json!(["200:0123456789", "failed"]),
        "the verified asset is cached, the tampered one is not ({browser})"
    );
    drop(d);
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bundle meta files are network-first, so a republished bundle is picked up online; for
/// 5 s after the worker's last request failed to reach the network they come straight
/// from the cache (an offline start then costs one failed attempt, not one per file).
#[test]
#[ignore = "needs a browser and WebDriver: runtime/run-wasm-tests.sh runs it"]
fn bundle_meta_is_network_first_once_the_network_is_back() {
    let (browser, dir, receiver) = start("meta");
    let mut net = Network::new(receiver.addr());
    let (base, port) = (net.url(), net.port);
    let d = Driver::start(&browser);
    d.goto_controlled(&format!("{base}/?deck=demo"));
    let v = d.run("done(await load('/decks/demo/bundle.json'));");
    assert_eq!(v, json!("200:{\"deck\":\"demo\"}"));
    d.run("await new Promise(r => setTimeout(r, 300)); done(1);");

    net.cut();
    let v = d.run(
        "done([await load('/decks/demo/bundle.json'), await load('/decks/demo/bundle.json')]);",
    );
    assert_eq!(
        v,
        json!(["200:{\"deck\":\"demo\"}", "200:{\"deck\":\"demo\"}"]),
        "offline: from the cache ({browser})"
    );
    // Republished while offline; the network comes back.
    write(
        &dir.join("www"),
        "decks/demo/bundle.json",
        br#"{"deck":"demo","v":2}"#,
    );
    let _net = Network::on_port(receiver.addr(), port);
    // Within 5 s of the failure: still the cached copy, without trying the network.
    let v = d.run("done(await load('/decks/demo/bundle.json'));");
    assert_eq!(
        v,
        json!("200:{\"deck\":\"demo\"}"),
        "just after the outage ({browser})"
    );
    std::thread::sleep(Duration::from_millis(5500));
    let v = d.run(
        "done([await load('/decks/demo/bundle.json'), await load('/decks/demo/bundle.json')]);",
    );
    assert_eq!(
        v,
        json!([
            "200:{\"deck\":\"demo\",\"v\":2}",
            "200:{\"deck\":\"demo\",\"v\":2}"
        ]),
        "online again: the republished bundle ({browser})"
    );
    drop(d);
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
