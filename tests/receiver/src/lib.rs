//! `edetail-test-receiver`: a small HTTP server for tests.
//!
//! - `POST /api/v1/events` implements the ingest contract of
//!   [`edetail_format::ingest`]: optional bearer token, JSON only, optional gzip,
//!   size/count limits, per-event results, de-duplication by event id (also across
//!   restarts: ids already in the JSONL file count as stored). Each accepted event is
//!   appended to the JSONL file as `{"received_at":…, "sent_at":…, "event":{…}}` and
//!   synced to disk before the `200`.
//! - `OPTIONS` answers CORS preflights; every answer allows any origin, so a page on
//!   another port (wasm-bindgen-test-runner) can post too.
//! - `GET /__receiver/events`: the stored events as a JSON array (events only).
//! - `POST /__receiver/fail?count=N&status=503&retry_after=2`: answer the next N ingest
//!   requests with that status (and `Retry-After`), storing nothing.
//! - `GET /__receiver/health`: `ok`.
//! - Any other `GET`/`HEAD`: a static file under the configured directory (with
//!   `index.html` for directories, single `Range` support for media, and the build's
//!   precompressed `<file>.gz` for clients that accept gzip).
//!
//! It runs axum on its own tokio runtime; [`Receiver::stop`] returns once every
//! connection is closed, kept-alive ones included, so a receiver restarted on the same
//! port (a network outage in a test) never leaves a browser's request unanswered.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use edetail_format::ingest::{
    BatchError, BatchResponse, ErrorBody, EventResult, EventStatus, INGEST_PATH, MAX_BATCH_BYTES,
    decode_batch,
};
use tokio::sync::watch;

/// How the receiver runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Static files to serve (none: 404 for everything but the API).
    pub dir: Option<PathBuf>,
    /// JSONL file of accepted events (created if missing, appended to).
    pub out: PathBuf,
    /// Required bearer token; `None` accepts any or none.
    pub token: Option<String>,
}

#[derive(Debug, Default)]
struct Faults {
    remaining: u32,
    status: u16,
    retry_after: Option<u32>,
}

struct State {
    cfg: Config,
    seen: Mutex<HashSet<String>>,
    out: Mutex<File>,
    faults: Mutex<Faults>,
}

/// A running receiver; stops when [`Receiver::stop`] is called or it is dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// How long a stop waits for requests in flight before cutting their connections.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A request, body read, as the (blocking) handlers see it.
struct Req {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn reply(status: u16, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    // Only ASCII values are built here; an invalid one is a bug in this file.
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

fn cors(r: Response) -> Response {
    let r = with_header(r, "Access-Control-Allow-Origin", "*");
    with_header(r, "Access-Control-Expose-Headers", "Retry-After")
}

/// A `200` plain-text answer (with CORS).
fn text(body: &'static str) -> Response {
    cors(with_header(
        reply(200, body),
        "Content-Type",
        "text/plain; charset=UTF-8",
    ))
}

fn json(status: u16, body: String) -> Response {
    cors(with_header(
        reply(status, body),
        "Content-Type",
        "application/json",
    ))
}

fn error(status: u16, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: code.into(),
        message,
    };
    json(
        status,
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()),
    )
}

/// Ids of events already stored in `out` (one JSON object per line).
fn load_ids(out: &Path) -> io::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    match File::open(out) {
        Ok(f) => {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(id) = v.pointer("/event/id").and_then(|i| i.as_str())
                {
                    ids.insert(id.to_owned());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(ids)
}

/// Every stored event (the `event` objects of the JSONL file), in arrival order.
pub fn read_events(out: &Path) -> io::Result<Vec<serde_json::Value>> {
    let f = match File::open(out) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut events = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(e) = v.get_mut("event")
        {
            events.push(e.take());
        }
    }
    Ok(events)
}

impl Receiver {
    /// Bind and start serving on a background thread.
    pub fn start(cfg: Config) -> io::Result<Receiver> {
        let seen = load_ids(&cfg.out)?;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.out)?;
        let listener = std::net::TcpListener::bind(cfg.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = {
            let _in_rt = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let state = Arc::new(State {
            cfg,
            seen: Mutex::new(seen),
            out: Mutex::new(out),
            faults: Mutex::new(Faults::default()),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let (shutdown, stopping) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            rt.block_on(async {
                let stop = |mut rx: watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                // Graceful shutdown stops accepting, closes idle (kept-alive) connections
                // at once and the others once their answer is sent…
                let serve =
                    axum::serve(listener, app).with_graceful_shutdown(stop(stopping.clone()));
                // … or, for a request still arriving, once the grace period is over.
                let grace = async {
                    stop(stopping).await;
                    tokio::time::sleep(STOP_GRACE).await;
                };
                tokio::select! {
                    _ = serve => {}
                    () = grace => {}
                }
            });
            // Dropping the runtime drops whatever connection is left (a request still
            // arriving after the grace period): every socket is closed when this ends.
            drop(rt);
        });
        Ok(Receiver {
            addr,
            state,
            shutdown,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next `count` ingest requests with `status` (and `Retry-After`),
    /// storing nothing (same as `POST /__receiver/fail`).
    pub fn fail_next(&self, count: u32, status: u16, retry_after: Option<u32>) {
        let mut f = self.state.faults.lock().unwrap_or_else(|p| p.into_inner());
        *f = Faults {
            remaining: count,
            status,
            retry_after,
        };
    }

    /// The events stored so far, in arrival order.
    pub fn events(&self) -> io::Result<Vec<serde_json::Value>> {
        read_events(&self.state.cfg.out)
    }

    /// Stop serving: returns once the listener and every connection (kept-alive ones
    /// included) are closed, so a receiver restarted on the same port gets every new
    /// request.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Every request: the body is read here, the rest (file and fsync work) runs on the
/// blocking pool.
async fn handle(Shared(state): Shared<Arc<State>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return error(400, "malformed", format!("could not read the body: {e}")),
    };
    let req = Req {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let line = format!("{} {}", req.method, req.uri);
    request_log(&format!("<- {line}"));
    let r = tokio::task::spawn_blocking(move || respond(&state, &req))
        .await
        .unwrap_or_else(|_| reply(500, Body::empty()));
    request_log(&format!("-> {line} {}", r.status().as_u16()));
    r
}

/// With `EDETAIL_RECEIVER_LOG=<file>`, every request's arrival and answer are appended
/// to that file with a timestamp (for a test that stalls: did the request arrive, was
/// it answered?).
fn request_log(what: &str) {
    static LOG: std::sync::OnceLock<Option<std::sync::Mutex<File>>> = std::sync::OnceLock::new();
    let log = LOG.get_or_init(|| {
        let path = std::env::var_os("EDETAIL_RECEIVER_LOG")?;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        Some(std::sync::Mutex::new(f))
    });
    if let Some(m) = log
        && let Ok(mut f) = m.lock()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let _ = writeln!(f, "{t} {} {what}", std::process::id());
    }
}

fn respond(state: &State, req: &Req) -> Response {
    let path = req.uri.path();
    let query = req.uri.query().unwrap_or("");
    match (req.method.as_str(), path) {
        ("OPTIONS", _) => {
            let r = with_header(
                text(""),
                "Access-Control-Allow-Methods",
                "GET, POST, OPTIONS",
            );
            let r = with_header(
                r,
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Content-Encoding",
            );
            let mut r = with_header(r, "Access-Control-Max-Age", "600");
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        ("POST", p) if p == INGEST_PATH => ingest(state, req),
        ("POST", "/__receiver/fail") => set_faults(state, query),
        ("GET", "/__receiver/events") => match read_events(&state.cfg.out) {
            Ok(ev) => json(200, serde_json::Value::Array(ev).to_string()),
            Err(e) => error(500, "unavailable", e.to_string()),
        },
        ("GET", "/__receiver/health") => text("ok"),
        ("GET" | "HEAD", _) => {
            serve_file(state, req, path).unwrap_or_else(|_| reply(500, Body::empty()))
        }
        (method, _) => error(405, "method_not_allowed", format!("{method} {path}")),
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn set_faults(state: &State, query: &str) -> Response {
    let count = query_param(query, "count").and_then(|v| v.parse().ok());
    let status = query_param(query, "status")
        .map(|v| v.parse::<u16>().ok())
        .unwrap_or(Some(503));
    match (count, status) {
        (Some(count), Some(status)) if (400..600).contains(&status) => {
            let mut f = state.faults.lock().unwrap_or_else(|p| p.into_inner());
            *f = Faults {
                remaining: count,
                status,
                retry_after: query_param(query, "retry_after").and_then(|v| v.parse().ok()),
            };
            text("ok")
        }
        _ => error(
            400,
            "malformed",
            "use /__receiver/fail?count=N&status=4xx|5xx[&retry_after=S]".into(),
        ),
    }
}

fn header_value<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn ingest(state: &State, req: &Req) -> Response {
    if let Some(token) = &state.cfg.token {
        let ok = header_value(req, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok {
            return error(401, "unauthorized", "missing or unknown token".into());
        }
    }
    {
        let mut f = state.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.remaining > 0 {
            f.remaining -= 1;
            let code = if f.status == 429 {
                "overloaded"
            } else {
                "unavailable"
            };
            let r = error(f.status, code, "injected failure".into());
            return match f.retry_after {
                Some(s) => with_header(r, "Retry-After", &s.to_string()),
                None => r,
            };
        }
    }
    let ct = header_value(req, "content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return error(
            415,
            "unsupported_media_type",
            format!("content type `{ct}` is not application/json"),
        );
    }
    let gzip =
        header_value(req, "content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let limit = MAX_BATCH_BYTES as u64 + 1;
    let mut body = Vec::new();
    let read = if gzip {
        flate2::read::GzDecoder::new(&req.body[..])
            .take(limit)
            .read_to_end(&mut body)
    } else {
        (&req.body[..]).take(limit).read_to_end(&mut body)
    };
    if let Err(e) = read {
        return error(400, "malformed", format!("could not read the body: {e}"));
    }
    let received_at = now_ms();
    let batch = match decode_batch(&body) {
        Ok(b) => b,
        Err(e @ (BatchError::TooLarge(_) | BatchError::TooManyEvents(_))) => {
            return error(413, "too_large", e.to_string());
        }
        Err(e @ BatchError::UnsupportedSchema(_)) => {
            return error(422, "unsupported_schema", e.to_string());
        }
        Err(e @ BatchError::Malformed(_)) => return error(400, "malformed", e.to_string()),
    };
    let mut results = Vec::with_capacity(batch.events.len());
    let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
    let mut lines = String::new();
    let mut batch_ids = HashSet::new();
    for (id, ev) in batch.events {
        let (status, reason) = match ev {
            Err(e) => (EventStatus::Rejected, Some(e.to_string())),
            Ok(ev) if seen.contains(&ev.id) || !batch_ids.insert(ev.id.clone()) => {
                (EventStatus::Duplicate, None)
            }
            Ok(ev) => {
                let line = serde_json::json!({
                    "received_at": received_at,
                    "sent_at": batch.sent_at,
                    "event": ev,
                });
                lines.push_str(&line.to_string());
                lines.push('\n');
                (EventStatus::Accepted, None)
            }
        };
        results.push(EventResult { id, status, reason });
    }
    // Durable before the 200.
    {
        let mut out = state.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out
            .write_all(lines.as_bytes())
            .and_then(|_| out.sync_data())
        {
            return error(503, "unavailable", format!("storage: {e}"));
        }
    }
    seen.extend(batch_ids);
    let resp = BatchResponse {
        received_at,
        results,
    };
    json(
        200,
        serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into()),
    )
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "vtt" => "text/vtt; charset=utf-8",
        "woff2" => "font/woff2",
        "txt" | "sha256" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Map a URL path to a file under `root`, refusing anything that escapes it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let mut p = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(s) => p.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if p.is_dir() {
        p.push("index.html");
    }
    p.is_file().then_some(p)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse a single `bytes=a-b` range against `size`.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return None,
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, size.checked_sub(1)?),
        (s, e) => (
            s.parse().ok()?,
            e.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

fn serve_file(state: &State, req: &Req, url_path: &str) -> io::Result<Response> {
    let Some(root) = &state.cfg.dir else {
        return Ok(error(404, "not_found", url_path.into()));
    };
    let Some(path) = resolve(root, url_path) else {
        return Ok(error(404, "not_found", url_path.into()));
    };
    let mut file = File::open(&path)?;
    let size = file.metadata()?.len();
    let ct = content_type(&path);
    let range = header_value(req, "range").map(|r| parse_range(r, size));
    let base = |status: u16, body: Vec<u8>| {
        let r = with_header(cors(reply(status, body)), "Content-Type", ct);
        let r = with_header(r, "Accept-Ranges", "bytes");
        with_header(r, "Cache-Control", "no-cache")
    };
    match range {
        Some(Some((start, end))) => {
            file.seek(SeekFrom::Start(start))?;
            let mut buf = vec![0; (end - start + 1) as usize];
            file.read_exact(&mut buf)?;
            Ok(with_header(
                base(206, buf),
                "Content-Range",
                &format!("bytes {start}-{end}/{size}"),
            ))
        }
        Some(None) => Ok(with_header(
            base(416, Vec::new()),
            "Content-Range",
            &format!("bytes */{size}"),
        )),
        None => {
            // The build's precompressed sibling (`cargo xtask runtime` writes `<file>.gz`)
            // goes to clients that accept gzip, as `edetail serve` does.
            // A `.gz` whose trailer does not match the file (edited after the build, like
            // the benchmark's probe in index.html) is not sent.
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)?;
            let mut gz = path.clone().into_os_string();
            gz.push(".gz");
            if header_value(req, "accept-encoding").is_some_and(accepts_gzip)
                && let Ok(bytes) = std::fs::read(&gz)
                && gzip_of(&bytes, &buf)
            {
                let r = with_header(base(200, bytes), "Content-Encoding", "gzip");
                return Ok(with_header(r, "Vary", "Accept-Encoding"));
            }
            Ok(with_header(base(200, buf), "Vary", "Accept-Encoding"))
        }
    }
}

/// Is `gz` a gzip of `plain` (its trailer's CRC-32 and length)?
fn gzip_of(gz: &[u8], plain: &[u8]) -> bool {
    let Some(trailer) = gz.len().checked_sub(8).and_then(|i| gz.get(i..)) else {
        return false;
    };
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    gz.starts_with(&[0x1f, 0x8b])
        && trailer[..4] == crc.sum().to_le_bytes()
        && trailer[4..] == (plain.len() as u32).to_le_bytes()
}

/// An `Accept-Encoding` value that allows gzip (listed without `q=0`).
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, identity"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=0-1000", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let root = std::env::temp_dir().join(format!("recv-root-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("sub/a b.txt"), "a").unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(
            resolve(&root, "/sub/a%20b.txt"),
            Some(root.join("sub/a b.txt"))
        );
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/sub/%2e%2e/%2e%2e/x"), None);
        assert_eq!(resolve(&root, "/missing"), None);
        assert_eq!(resolve(&root, "/%zz"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
