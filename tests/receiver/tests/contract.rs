//! The receiver against the ingest contract, over real HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use edetail_format::ingest::{BatchResponse, ErrorBody, EventStatus, INGEST_PATH};
use edetail_test_receiver::{Config, Receiver, read_events};
use serde_json::{Value, json};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

fn http(r: &Receiver, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(r.addr()).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edetail-recv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(dir: &std::path::Path, token: Option<&str>) -> Receiver {
    Receiver::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        dir: Some(dir.join("www")),
        out: dir.join("events.jsonl"),
        token: token.map(Into::into),
    })
    .expect("start")
}

fn event(n: u32) -> Value {
    json!({
        "id": format!("0192f0c4-0000-7000-8000-{n:012}"), "schema_version": 1, "session_id": "s-1",
        "seq": n, "client_time": 1_763_800_000_000i64 + i64::from(n), "deck_id": "zentara-launch",
        "deck_version": "1.0.0", "bundle_hash": "ab12", "channel": "mr_led", "device_id": "ipad-7",
        "type": "isi_open"
    })
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    json!({"schema_version": 1, "device_id": "ipad-7", "sent_at": 1_763_800_000_500i64, "events": events})
        .to_string()
        .into_bytes()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn accepts_deduplicates_rejects_and_persists_across_restart() {
    let d = tmp("ingest");
    std::fs::create_dir_all(d.join("www")).unwrap();
    let r = start(&d, None);
    let mut bad = event(3);
    bad["type"] = json!("reaction");
    bad["value"] = json!(5);
    let resp = http(
        &r,
        "POST",
        INGEST_PATH,
        &[JSON],
        &batch(vec![event(1), event(2), event(1), bad]),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Access-Control-Allow-Origin"), Some("*"));
    let b: BatchResponse = resp.json();
    let st: Vec<EventStatus> = b.results.iter().map(|r| r.status).collect();
    assert_eq!(
        st,
        [
            EventStatus::Accepted,
            EventStatus::Accepted,
            EventStatus::Duplicate,
            EventStatus::Rejected
        ]
    );
    assert!(b.results[3].reason.as_deref().unwrap().contains("reaction"));
    assert_eq!(read_events(&d.join("events.jsonl")).unwrap().len(), 2);
    r.stop();

    // A restarted receiver still knows the stored ids.
    let r = start(&d, None);
    let b: BatchResponse = http(
        &r,
        "POST",
        INGEST_PATH,
        &[JSON],
        &batch(vec![event(2), event(4)]),
    )
    .json();
    assert_eq!(b.results[0].status, EventStatus::Duplicate);
    assert_eq!(b.results[1].status, EventStatus::Accepted);
    let listed: Vec<Value> = http(&r, "GET", "/__receiver/events", &[], b"").json();
    let seqs: Vec<u64> = listed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 4]);
    // Receive and send times are kept next to the event.
    let raw = std::fs::read_to_string(d.join("events.jsonl")).unwrap();
    let first: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert_eq!(first["sent_at"], 1_763_800_000_500i64);
    assert!(first["received_at"].as_i64().unwrap() > 1_700_000_000_000);
}

#[test]
fn gzip_bodies_are_read() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let d = tmp("gzip");
    let r = start(&d, None);
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&batch(vec![event(1)])).unwrap();
    let gz = enc.finish().unwrap();
    let resp = http(
        &r,
        "POST",
        INGEST_PATH,
        &[JSON, ("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(resp.status, 200);
    let resp = http(
        &r,
        "POST",
        INGEST_PATH,
        &[JSON, ("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(resp.status, 400);
}

#[test]
fn whole_batch_errors_use_the_contract_codes() {
    let d = tmp("errors");
    let r = start(&d, Some("tok"));
    let auth = ("Authorization", "Bearer tok");
    let ok = batch(vec![event(1)]);
    assert_eq!(http(&r, "POST", INGEST_PATH, &[JSON], &ok).status, 401);
    assert_eq!(
        http(
            &r,
            "POST",
            INGEST_PATH,
            &[JSON, ("Authorization", "Bearer nope")],
            &ok
        )
        .status,
        401
    );
    assert_eq!(
        http(
            &r,
            "POST",
            INGEST_PATH,
            &[("Content-Type", "text/plain"), auth],
            &ok
        )
        .status,
        415
    );
    let e: ErrorBody = http(&r, "POST", INGEST_PATH, &[JSON, auth], b"{nope").json();
    assert_eq!(e.error, "malformed");
    let v2 = json!({"schema_version": 2, "device_id": "d", "sent_at": 1, "events": []}).to_string();
    assert_eq!(
        http(&r, "POST", INGEST_PATH, &[JSON, auth], v2.as_bytes()).status,
        422
    );
    let many = batch((0..501).map(event).collect());
    assert_eq!(
        http(&r, "POST", INGEST_PATH, &[JSON, auth], &many).status,
        413
    );
    let huge = vec![b' '; 600 * 1024];
    assert_eq!(
        http(&r, "POST", INGEST_PATH, &[JSON, auth], &huge).status,
        413
    );
    assert_eq!(
        http(&r, "POST", INGEST_PATH, &[JSON, auth], &ok).status,
        200
    );
}

#[test]
fn injected_failures_carry_retry_after_and_store_nothing() {
    let d = tmp("faults");
    let r = start(&d, None);
    assert_eq!(
        http(
            &r,
            "POST",
            "/__receiver/fail?count=2&status=503&retry_after=3",
            &[],
            b""
        )
        .status,
        200
    );
    assert_eq!(
        http(&r, "POST", "/__receiver/fail?count=x", &[], b"").status,
        400
    );
    assert_eq!(
        http(
            &r,
            "POST",
            "/__receiver/fail?count=2&status=503&retry_after=3",
            &[],
            b""
        )
        .status,
        200
    );
    for _ in 0..2 {
        let resp = http(&r, "POST", INGEST_PATH, &[JSON], &batch(vec![event(1)]));
        assert_eq!(resp.status, 503);
        assert_eq!(resp.header("Retry-After"), Some("3"));
    }
    assert!(read_events(&d.join("events.jsonl")).unwrap().is_empty());
    // The same from Rust.
    r.fail_next(1, 429, None);
    let resp = http(&r, "POST", INGEST_PATH, &[JSON], &batch(vec![event(1)]));
    assert_eq!(resp.status, 429);
    assert_eq!(resp.json::<ErrorBody>().error, "overloaded");
    assert_eq!(resp.header("Retry-After"), None);
    assert!(r.events().unwrap().is_empty());
    assert_eq!(
        http(&r, "POST", INGEST_PATH, &[JSON], &batch(vec![event(1)])).status,
        200
    );
    assert_eq!(r.events().unwrap().len(), 1);
}

#[test]
fn cors_preflight_and_static_files() {
    let d = tmp("static");
    std::fs::create_dir_all(d.join("www/assets")).unwrap();
    std::fs::write(d.join("www/index.html"), "<!doctype html>hi").unwrap();
    std::fs::write(d.join("www/assets/app.wasm"), b"\0asm0123456789").unwrap();
    let r = start(&d, None);
    let pre = http(
        &r,
        "OPTIONS",
        INGEST_PATH,
        &[
            ("Origin", "http://x"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert!(
        pre.header("Access-Control-Allow-Headers")
            .unwrap()
            .contains("Authorization")
    );
    let idx = http(&r, "GET", "/?deck=x", &[], b"");
    assert_eq!(idx.status, 200);
    assert_eq!(idx.body, b"<!doctype html>hi");
    assert!(idx.header("Content-Type").unwrap().starts_with("text/html"));
    let w = http(&r, "GET", "/assets/app.wasm", &[], b"");
    assert_eq!(w.header("Content-Type"), Some("application/wasm"));
    let part = http(
        &r,
        "GET",
        "/assets/app.wasm",
        &[("Range", "bytes=4-7")],
        b"",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"0123");
    assert_eq!(part.header("Content-Range"), Some("bytes 4-7/14"));
    assert_eq!(
        http(
            &r,
            "GET",
            "/assets/app.wasm",
            &[("Range", "bytes=99-")],
            b""
        )
        .status,
        416
    );
    assert_eq!(http(&r, "GET", "/../Cargo.toml", &[], b"").status, 404);
    assert_eq!(http(&r, "GET", "/nope.js", &[], b"").status, 404);
    assert_eq!(http(&r, "DELETE", "/index.html", &[], b"").status, 405);
}

#[test]
fn precompressed_siblings_only_when_accepted_and_current() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let d = tmp("precompressed");
    std::fs::create_dir_all(d.join("www")).unwrap();
    let js = b"console.log('hello hello hello hello');".repeat(10);
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&js).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(d.join("www/app.js"), &js).unwrap();
    std::fs::write(d.join("www/app.js.gz"), &gz).unwrap();
    let r = start(&d, None);
    let accept = [("Accept-Encoding", "gzip, deflate, br")];
    let zipped = http(&r, "GET", "/app.js", &accept, b"");
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("Content-Encoding"), Some("gzip"));
    assert_eq!(zipped.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(
        zipped.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(zipped.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(zipped.body, gz);
    let plain = http(
        &r,
        "GET",
        "/app.js",
        &[("Accept-Encoding", "gzip;q=0")],
        b"",
    );
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(plain.body, js);
    let head = http(&r, "HEAD", "/app.js", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some(&*js.len().to_string()));
    assert!(head.body.is_empty());
    // Edited after the build: the stale .gz is not sent.
    std::fs::write(d.join("www/app.js"), b"edited").unwrap();
    let stale = http(&r, "GET", "/app.js", &accept, b"");
    assert_eq!(stale.header("Content-Encoding"), None);
    assert_eq!(stale.body, b"edited");
    let health = http(&r, "GET", "/__receiver/health", &[], b"");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok"[..]));
    assert_eq!(
        health.header("Content-Type"),
        Some("text/plain; charset=UTF-8")
    );
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) from a kept-alive
/// connection: `Ok(None)` if the server closed it first.
fn read_response(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if raw.len() >= split + 4 + len {
                return Ok(Some(raw));
            }
        }
        match s.read(&mut buf)? {
            0 if raw.is_empty() => return Ok(None),
            0 => panic!("connection closed mid-response"),
            n => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// A browser keeps connections alive across a server restart: a request sent on one
/// after the receiver stopped and a new one started on the same port must be answered
/// or refused at once, never left hanging (tiny_http's stop left such connections
/// open, reading requests nobody would answer).
#[test]
fn kept_alive_connection_never_hangs_across_a_restart() {
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};
    let d = tmp("keepalive");
    let cfg = |addr| Config {
        addr,
        dir: None,
        out: d.join("events.jsonl"),
        token: None,
    };
    let r = Receiver::start(cfg("127.0.0.1:0".parse().unwrap())).expect("start");
    let addr = r.addr();
    let req = b"GET /__receiver/health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let first = read_response(&mut s).unwrap().expect("first answer");
    assert!(first.starts_with(b"HTTP/1.1 200"));

    r.stop();
    let r = Receiver::start(cfg(addr)).expect("restart on the same port");
    let t = Instant::now();
    // Either the write or the read may see the closed connection.
    let second = s.write_all(req).and_then(|()| read_response(&mut s));
    match second {
        Ok(Some(resp)) => assert!(resp.starts_with(b"HTTP/1.1 200")),
        Ok(None) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!(
                "request on the kept-alive connection hung ({:?})",
                t.elapsed()
            )
        }
        Err(_) => {} // reset: the browser retries on a new connection
    }
    // A new connection reaches the new receiver.
    let mut s = TcpStream::connect(r.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let fresh = read_response(&mut s)
        .unwrap()
        .expect("answer from the restarted receiver");
    assert!(fresh.starts_with(b"HTTP/1.1 200"));
}

/// The receiver serves until it is stopped, however long that is (its stop has a grace
/// period for requests in flight: that must not bound its life).
#[test]
fn serves_past_the_stop_grace_period() {
    let d = tmp("longlived");
    let r = start(&d, None);
    std::thread::sleep(std::time::Duration::from_secs(6));
    let health = http(&r, "GET", "/__receiver/health", &[], b"");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok"[..]));
}
