//! `edetail preview <deck> [--port N] [--www DIR]`: live preview for authors.
//!
//! Compiles the deck (as a preview bundle, so a closed approval window does not stop
//! the author), serves the built runtime (`dist/www`, from `cargo xtask runtime`) and
//! the bundle on 127.0.0.1, polls the deck folder for changes and recompiles, and
//! accepts engagement events at the ingest path so the page's tracking inspector shows
//! exactly what a server would receive.
//!
//! Routes (all local, no authentication):
//!
//! ```text
//! GET  /                      redirect to the player in preview mode
//! GET  /app/...               the runtime (dist/www)
//! GET  /bundle/...            the current bundle (bundle.json, bundle.sha256, assets/)
//! GET  /__preview/status      {"version":n,"ok":bool,"diagnostics":"..."}; the page polls
//!                             it, reloads when `version` changes and shows diagnostics
//! POST /api/v1/events         the ingest contract (format/src/ingest.rs), events kept in
//!                             memory and printed one line each
//! ```
//!
//! A plain threaded HTTP/1.1 server on std::net: preview is local and light, and authors'
//! builds (`--no-default-features`) stay free of an async runtime.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use edetail_authoring::{CompileOptions, compile, render_human};
use edetail_format::ingest::{
    BatchResponse, EventResult, EventStatus, MAX_BATCH_BYTES, decode_batch,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Preview a deck live in the browser: rebuilds on save, shows problems in the page,
    /// and lists every engagement event the player emits.
    Preview(PreviewArgs),
}

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// Deck folder (holds deck.toml).
    pub deck: PathBuf,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 4173)]
    pub port: u16,
    /// The built runtime (default: dist/www next to the workspace, or ./dist/www).
    #[arg(long)]
    pub www: Option<PathBuf>,
    /// How often to look for changes, in milliseconds.
    #[arg(long, default_value_t = 400)]
    pub poll_ms: u64,
}

/// What the server serves; replaced whole on every rebuild.
#[derive(Default)]
struct State {
    version: u64,
    /// Files of the last good bundle, by bundle-relative path.
    bundle: BTreeMap<String, Vec<u8>>,
    /// Human-readable diagnostics of the last build when it had errors.
    diagnostics: String,
    ok: bool,
    /// Event ids received (for `duplicate`).
    seen: HashSet<String>,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    let Command::Preview(args) = c;
    if !args.deck.join("deck.toml").is_file() {
        anyhow::bail!(
            "{} is not a deck folder (no deck.toml)",
            args.deck.display()
        );
    }
    let www = match &args.www {
        Some(w) => w.clone(),
        None => default_www(),
    };
    if !www.join("index.html").is_file() {
        anyhow::bail!(
            "the runtime is not built ({} has no index.html): run `cargo xtask runtime` in the edetail workspace, or pass --www <dir>",
            www.display()
        );
    }
    let state = Arc::new(Mutex::new(State::default()));
    rebuild(&args.deck, &state);
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let url = format!("http://127.0.0.1:{}/", args.port);
    println!(
        "preview: {url}  (deck {}, runtime {})",
        args.deck.display(),
        www.display()
    );
    println!("watching for changes; Ctrl-C to stop");

    {
        let state = state.clone();
        let deck = args.deck.clone();
        let every = Duration::from_millis(args.poll_ms.max(50));
        std::thread::spawn(move || {
            let mut last = fingerprint(&deck);
            loop {
                std::thread::sleep(every);
                let now = fingerprint(&deck);
                if now != last {
                    last = now;
                    rebuild(&deck, &state);
                }
            }
        });
    }
    let www = Arc::new(www);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = state.clone();
        let www = www.clone();
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            if let Err(e) = handle(stream, &state, &www) {
                eprintln!("preview: request failed: {e}");
            }
        });
    }
    Ok(ExitCode::SUCCESS)
}

fn default_www() -> PathBuf {
    let here = PathBuf::from("dist/www");
    if here.join("index.html").is_file() {
        return here;
    }
    // The workspace this binary was built from (cli/ is one level below it).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("dist").join("www"))
        .unwrap_or(here)
}

/// A cheap change signature of the deck folder: (path, mtime, size) of every file.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Option<SystemTime>, u64)>, depth: u32) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() && depth < 8 => walk(&p, out, depth + 1),
                Ok(m) => out.push((p, m.modified().ok(), m.len())),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out, 0);
    out.sort();
    out
}

fn rebuild(deck: &Path, state: &Mutex<State>) {
    let opts = CompileOptions {
        today: edetail_authoring::today_utc(),
        preview: true,
    };
    let started = std::time::Instant::now();
    let compiled = match compile(deck, &opts) {
        Ok(c) => c,
        Err(e) => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.ok = false;
            s.diagnostics = e.to_string();
            s.version += 1;
            eprintln!("preview: {e}");
            return;
        }
    };
    let text = render_human(&compiled.diagnostics, false);
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let (Some(bundle), 0) = (&compiled.bundle, errors) {
        s.bundle = edetail_authoring::bundle_files(bundle, &compiled.assets);
        s.ok = true;
        s.diagnostics.clear();
        println!(
            "preview: built {} v{} ({} slides) in {} ms{}",
            bundle.deck.id,
            bundle.deck.version,
            bundle.slides.len(),
            started.elapsed().as_millis(),
            if compiled.diagnostics.is_empty() {
                String::new()
            } else {
                format!("\n{text}")
            }
        );
    } else {
        s.ok = false;
        s.diagnostics = text.clone();
        eprintln!("preview: build failed (showing the last good version)\n{text}");
    }
    s.version += 1;
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if headers.len() > 100 {
            break;
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(MAX_BATCH_BYTES + 1)];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    extra: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "vtt" => "text/vtt; charset=utf-8",
        "sha256" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A request path inside a served folder, or None for anything that could escape it.
fn safe_rel(path: &str) -> Option<String> {
    let p = path.split(['?', '#']).next().unwrap_or_default();
    let p = p.trim_start_matches('/');
    if p.split('/')
        .any(|seg| seg == ".." || seg.contains('\\') || seg.contains('\0'))
    {
        return None;
    }
    Some(p.to_string())
}

fn handle(mut stream: TcpStream, state: &Mutex<State>, www: &Path) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream)? else {
        return Ok(());
    };
    let path = req.path.clone();
    let route = path.split('?').next().unwrap_or_default();
    match (req.method.as_str(), route) {
        ("GET", "/") => respond(
            &mut stream,
            "302 Found",
            "text/plain",
            b"",
            "Location: /app/?bundle=/bundle/&mode=preview\r\n",
        ),
        ("GET", "/__preview/status") => {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            let body =
                serde_json::json!({"version": s.version, "ok": s.ok, "diagnostics": s.diagnostics});
            respond(
                &mut stream,
                "200 OK",
                "application/json",
                body.to_string().as_bytes(),
                "",
            )
        }
        ("POST", "/api/v1/events") => ingest(&mut stream, &req, state),
        ("GET", r) if r.starts_with("/bundle/") => {
            let rel = safe_rel(&r["/bundle/".len()..]).unwrap_or_default();
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            match s.bundle.get(&rel) {
                Some(b) => {
                    let b = b.clone();
                    drop(s);
                    respond(&mut stream, "200 OK", content_type(&rel), &b, "")
                }
                None => respond(
                    &mut stream,
                    "404 Not Found",
                    "text/plain",
                    b"not in the bundle",
                    "",
                ),
            }
        }
        ("GET", r) if r == "/app" || r.starts_with("/app/") => {
            let rel = safe_rel(r.strip_prefix("/app").unwrap_or_default());
            let Some(mut rel) = rel else {
                return respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    b"bad path",
                    "",
                );
            };
            if rel.is_empty() {
                rel = "index.html".into();
            }
            match std::fs::read(www.join(&rel)) {
                Ok(b) => respond(&mut stream, "200 OK", content_type(&rel), &b, ""),
                Err(_) => respond(&mut stream, "404 Not Found", "text/plain", b"not found", ""),
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found", ""),
    }
}

/// The ingest contract, enough for the inspector: every valid event is `accepted`
/// (or `duplicate`), invalid ones are `rejected` with the reason.
fn ingest(stream: &mut TcpStream, req: &Request, state: &Mutex<State>) -> std::io::Result<()> {
    let json_ct = req
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/json"));
    if !json_ct {
        let body = br#"{"error":"unsupported_media_type","message":"send application/json"}"#;
        return respond(
            stream,
            "415 Unsupported Media Type",
            "application/json",
            body,
            "",
        );
    }
    if req.headers.iter().any(|(k, _)| k == "content-encoding") {
        let body =
            br#"{"error":"malformed","message":"the preview server takes uncompressed batches"}"#;
        return respond(stream, "400 Bad Request", "application/json", body, "");
    }
    let batch = match decode_batch(&req.body) {
        Ok(b) => b,
        Err(e) => {
            let body = serde_json::json!({"error": "malformed", "message": e.to_string()});
            return respond(
                stream,
                "400 Bad Request",
                "application/json",
                body.to_string().as_bytes(),
                "",
            );
        }
    };
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let results = batch
        .events
        .into_iter()
        .map(|(id, r)| match r {
            Ok(ev) => {
                let dup = !s.seen.insert(ev.id.clone());
                println!(
                    "event #{:<4} {:<18} {}{}",
                    ev.seq,
                    ev.kind.type_name(),
                    ev.slide_id.as_deref().unwrap_or("-"),
                    if dup { " (duplicate)" } else { "" }
                );
                EventResult {
                    id,
                    status: if dup {
                        EventStatus::Duplicate
                    } else {
                        EventStatus::Accepted
                    },
                    reason: None,
                }
            }
            Err(e) => {
                println!("event rejected {id}: {e}");
                EventResult {
                    id,
                    status: EventStatus::Rejected,
                    reason: Some(e.to_string()),
                }
            }
        })
        .collect();
    drop(s);
    let resp = BatchResponse {
        received_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        results,
    };
    let body = serde_json::to_vec(&resp).unwrap_or_default();
    respond(stream, "200 OK", "application/json", &body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(safe_rel("/index.html").as_deref(), Some("index.html"));
        assert_eq!(safe_rel("/icons/a.png?x=1").as_deref(), Some("icons/a.png"));
        assert_eq!(safe_rel("/../etc/passwd"), None);
        assert_eq!(safe_rel("/a/../../b"), None);
        assert_eq!(safe_rel("/a\\..\\b"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("x_bg.wasm"), "application/wasm");
        assert_eq!(content_type("assets/ab.svg"), "image/svg+xml");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn fingerprint_changes_with_files() {
        let dir = std::env::temp_dir().join(format!("edetail-preview-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("slides")).expect("mkdir");
        std::fs::write(dir.join("deck.toml"), "a").expect("write");
        let a = fingerprint(&dir);
        std::fs::write(dir.join("slides/01.md"), "b").expect("write");
        let b = fingerprint(&dir);
        assert_ne!(a, b);
        assert_eq!(b, fingerprint(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
