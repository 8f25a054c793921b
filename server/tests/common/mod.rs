//! Test harness: servers on SQLite and PostgreSQL, events, batches.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use edetail_format::event::{Channel, EVENT_SCHEMA_VERSION, Event, EventKind, NavVia};
use edetail_server::client::Client;
use edetail_server::{Config, RunningServer};

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends to test: SQLite always; PostgreSQL when reachable. In CI (`CI=true`)
/// an unreachable PostgreSQL fails the test run.
pub fn backends() -> Vec<Backend> {
    if pg_available() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        vec![Backend::Sqlite]
    }
}

pub fn pg_available() -> bool {
    let ok = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .is_ok();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!(
                "PostgreSQL at 127.0.0.1:5432 is unreachable and CI=true: the PostgreSQL half of the suite cannot run"
            );
        }
        eprintln!(
            "\n!!!!!! PostgreSQL at 127.0.0.1:5432 is unreachable: SKIPPING the PostgreSQL runs of this test !!!!!!\n"
        );
    }
    ok
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A schema name unique to this test run.
pub fn unique_schema() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t_{}_{}_{}", std::process::id(), n, t % 1_000_000_000)
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub admin: String,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub schema: Option<String>,
}

impl TestServer {
    pub fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {})
    }

    pub fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_dir(dir.path());
        cfg.www = dir.path().join("www");
        let schema = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let s = unique_schema();
                cfg.database = Some(PG_URL.into());
                cfg.pg_schema = Some(s.clone());
                Some(s)
            }
        };
        tweak(&mut cfg);
        let server = RunningServer::start(cfg).expect("server starts");
        let admin = server
            .started
            .new_admin_token
            .clone()
            .expect("first start creates an admin token");
        TestServer {
            url: server.url().to_string(),
            server: Some(server),
            admin,
            dir,
            backend,
            schema,
        }
    }

    pub fn admin_client(&self) -> Client {
        Client::new(&self.url, Some(&self.admin))
    }

    pub fn anon(&self) -> Client {
        Client::new(&self.url, None)
    }

    pub fn device_token(&self, rep: &str, territory: &str) -> String {
        self.admin_client()
            .create_token(&edetail_server::app::TokenRequest {
                kind: Some("device".into()),
                rep: Some(rep.into()),
                territory: Some(territory.into()),
                label: None,
            })
            .unwrap()
            .token
    }

    /// Publish the sample deck `deck` (4 flow slides + 1 detail) and return its bundle hash.
    pub fn publish_sample(&self, deck: &str) -> String {
        let (ar, _) =
            edetail_server::bundles::sample_bundle(deck, "1.0.0", "2020-01-01", "2099-12-31", 4);
        self.admin_client().publish(&ar, &[]).unwrap().bundle_hash
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(s) = &self.schema {
            drop_schema(s);
        }
    }
}

/// Drop a test schema (best effort).
pub fn drop_schema(schema: &str) {
    let schema = schema.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(conn);
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .ok()
        })
    })
    .join();
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A fresh UUIDv7-shaped id (time-ordered).
pub fn new_id() -> String {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..14].copy_from_slice(&n.to_be_bytes());
    b[14..].copy_from_slice(&(std::process::id() as u16).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

pub fn now_ms() -> i64 {
    edetail_server::util::now_ms()
}

/// An event of `kind` in `session` for `deck`.
pub fn event(
    deck: &str,
    hash: &str,
    session: &str,
    seq: u64,
    slide: Option<&str>,
    hcp: Option<&str>,
    kind: EventKind,
) -> Event {
    Event {
        id: new_id(),
        schema_version: EVENT_SCHEMA_VERSION,
        session_id: session.into(),
        seq,
        client_time: now_ms() - 60_000 + seq as i64,
        deck_id: deck.into(),
        deck_version: "1.0.0".into(),
        bundle_hash: hash.into(),
        slide_id: slide.map(String::from),
        slide_hash: None,
        channel: Channel::MrLed,
        rep_id: Some("rep-1".into()),
        hcp_id: hcp.map(String::from),
        device_id: "ipad-1".into(),
        preview: false,
        kind,
    }
}

pub fn view(
    deck: &str,
    hash: &str,
    session: &str,
    seq: u64,
    slide: &str,
    order: u32,
    dwell: u64,
) -> Event {
    let t = now_ms() - 60_000;
    event(
        deck,
        hash,
        session,
        seq,
        Some(slide),
        Some("HCP-1"),
        EventKind::SlideView {
            enter_time: t - dwell as i64,
            exit_time: t,
            dwell_ms: dwell,
            hidden_ms: 0,
            order,
            via: NavVia::Swipe,
            counted: true,
        },
    )
}

pub fn batch(events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "device_id": "ipad-1",
        "sent_at": now_ms(),
        "events": events,
    }))
    .unwrap()
}

/// A complete session: start, views of `slides` with dwell, a +1 reaction, end.
pub fn session(deck: &str, hash: &str, slides: &[&str], dwell: u64) -> Vec<Event> {
    let sid = new_id();
    let mut v = vec![event(
        deck,
        hash,
        &sid,
        0,
        None,
        Some("HCP-1"),
        EventKind::SessionStart {
            mode: "mr_led".into(),
            sequence: None,
            user_agent: None,
            viewport: None,
        },
    )];
    for (i, s) in slides.iter().enumerate() {
        v.push(view(
            deck,
            hash,
            &sid,
            v.len() as u64,
            s,
            i as u32 + 1,
            dwell,
        ));
    }
    v.push(event(
        deck,
        hash,
        &sid,
        v.len() as u64,
        Some(slides[0]),
        Some("HCP-1"),
        EventKind::Reaction {
            value: 1,
            key_message: Some("Key message 1".into()),
        },
    ));
    v.push(event(
        deck,
        hash,
        &sid,
        v.len() as u64,
        None,
        Some("HCP-1"),
        EventKind::SessionEnd {
            reason: "ended".into(),
            duration_ms: 1000,
            slides_viewed: slides.len() as u32,
        },
    ));
    v
}

/// Run `f` once per available backend.
pub fn each_backend(f: impl Fn(Backend)) {
    for b in backends() {
        eprintln!("--- backend {b:?}");
        f(b);
    }
}

/// A running `edetail-server` child process (the test/bench binary), killed and reaped
/// when dropped.
pub struct ServerProc {
    pub child: Child,
    pub url: String,
    /// The admin token printed on first start of a fresh data directory.
    pub admin: Option<String>,
}

impl ServerProc {
    /// Start the server on `data_dir` (PostgreSQL in `pg_schema` when given) with
    /// `extra` flags and its log to `stderr`; returns once it accepts connections.
    pub fn spawn(
        data_dir: &Path,
        pg_schema: Option<&str>,
        extra: &[&str],
        stderr: Stdio,
    ) -> ServerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edetail-server"));
        cmd.args(["--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra);
        if let Some(s) = pg_schema {
            cmd.args(["--database", PG_URL, "--pg-schema", s]);
        }
        #[allow(clippy::zombie_processes)] // Drop kills and waits.
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn edetail-server");
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let mut admin = None;
        loop {
            let line = lines
                .next()
                .expect("the server printed its address")
                .expect("line");
            if let Some(t) = line.strip_prefix("admin-token ") {
                admin = Some(t.to_string());
            }
            if let Some(u) = line.strip_prefix("listening ") {
                return ServerProc {
                    child,
                    url: u.to_string(),
                    admin,
                };
            }
        }
    }

    /// SIGKILL (no graceful shutdown) and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
