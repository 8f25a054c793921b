//! Fault tests (issue #5, "Faults"): the server killed with SIGKILL at random moments
//! while many simulated devices ingest; the database cut away (PostgreSQL behind a TCP
//! proxy that drops every connection and refuses new ones; SQLite write-locked by
//! another connection past the busy timeout); the disk full under SQLite (a small tmpfs,
//! when the test runs as root). In every case the devices keep their queues and retry
//! (connection errors, 5xx, 429, with backoff), the server never acknowledges an event
//! it did not store, never hangs past a bound, and in the end every event is stored
//! exactly once: the ids sent, the ids acknowledged and the ids stored are the same set,
//! a resend of everything comes back `duplicate`, and the rollups count each event once.
//!
//! Everything runs on loopback, on SQLite and (when reachable; required with `CI=true`)
//! on PostgreSQL at 127.0.0.1:5432.
//!
//! ```sh
//! cargo test -p edetail-server --test faults                       # CI size
//! EDETAIL_FAULT_LONG=1 cargo test -p edetail-server --test faults  # long run
//! EDETAIL_FAULT_SEED=1234 cargo test -p edetail-server --test faults  # replay a schedule
//! ```
//!
//! CI size: 6 devices and 10 kills per backend, 3 PostgreSQL cuts, one SQLite lock
//! episode, one disk-full episode. `EDETAIL_FAULT_LONG=1`: 16 devices and 50 kills per
//! backend, 10 PostgreSQL cuts, 3 SQLite lock episodes, 3 disk-full episodes. The seed of
//! the random schedule is printed; `EDETAIL_FAULT_SEED` replays it.
//!
//! The disk-full test mounts a 24 MiB tmpfs and needs root; otherwise it is skipped with
//! a loud message (`EDETAIL_FAULT_REQUIRE_TMPFS=1` with `CI=true` makes that a failure).
//!
//! The SIGKILL test kills the process, not the machine: the page cache survives, so it
//! proves the acknowledge-after-commit ordering, not `fsync` durability on power loss.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use edetail_format::ingest::EventStatus;
use edetail_format::{Event, EventKind};
use edetail_server::client::{Client, ClientError};

// ---------------------------------------------------------------- sizes and randomness

fn long() -> bool {
    std::env::var("EDETAIL_FAULT_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// splitmix64: a small deterministic generator (the schedule is replayable by seed).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    let s = std::env::var("EDETAIL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("fault schedule seed: EDETAIL_FAULT_SEED={s}");
    s
}

// ---------------------------------------------------------------- server processes

type Proc = ServerProc;

fn spawn(data_dir: &Path, pg_schema: Option<&str>) -> Proc {
    ServerProc::spawn(
        data_dir,
        pg_schema,
        &["--log-level", "error"],
        Stdio::inherit(),
    )
}

// ---------------------------------------------------------------- simulated devices

/// One HTTP attempt of a device, for the after-the-fact checks.
#[derive(Debug, Clone)]
struct Attempt {
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 2xx with per-event results.
    Ok,
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    Transport,
}

struct DeviceReport {
    /// Every event this device produced (put in its queue), in order.
    sent: Vec<Event>,
    /// Ids the server acknowledged (`accepted` or `duplicate` in a 2xx answer).
    acked: HashSet<String>,
    retries: u64,
    /// `duplicate` answers: a batch stored before its answer was lost (resent).
    duplicates: u64,
}

/// Devices that produce sessions into their own queues and upload them in batches,
/// retrying on connection errors, 5xx and 429 with backoff (and `Retry-After`).
struct Fleet {
    /// Where the server is now (changes when a killed server is restarted).
    url: Arc<RwLock<String>>,
    /// Devices stop producing new sessions and drain their queues once set.
    stop_producing: Arc<AtomicBool>,
    /// Events acknowledged so far (all devices).
    acked: Arc<AtomicUsize>,
    /// Every attempt, all devices.
    log: Arc<Mutex<Vec<Attempt>>>,
    handles: Vec<JoinHandle<DeviceReport>>,
}

const BATCH_MAX: usize = 40;
const QUEUE_MAX: usize = 3000;

fn device_batch(device: &str, events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": 1,
        "device_id": device,
        "sent_at": now_ms(),
        "events": events,
    }))
    .unwrap()
}

impl Fleet {
    fn start(url: &str, tokens: &[String], hash: &str, seed: u64) -> Fleet {
        let url = Arc::new(RwLock::new(url.to_string()));
        let stop_producing = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handles = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let (url, stop, acked_n, log) = (
                    url.clone(),
                    stop_producing.clone(),
                    acked.clone(),
                    log.clone(),
                );
                let token = token.clone();
                let hash = hash.to_string();
                let mut rng = Rng::new(seed ^ ((i as u64 + 1) * 0x1234_5678_9ABC));
                std::thread::spawn(move || {
                    let device = format!("device-{i}");
                    let mut queue: VecDeque<Event> = VecDeque::new();
                    let mut report = DeviceReport {
                        sent: Vec::new(),
                        acked: HashSet::new(),
                        retries: 0,
                        duplicates: 0,
                    };
                    let mut client: Option<(String, Client)> = None;
                    let mut failures = 0u32;
                    loop {
                        if !stop.load(Ordering::SeqCst) && queue.len() < QUEUE_MAX {
                            let mut s = session("d", &hash, &["s1", "s2", "s3", "s4"], 3000);
                            for e in &mut s {
                                e.device_id = device.clone();
                            }
                            report.sent.extend(s.iter().cloned());
                            queue.extend(s);
                        }
                        if queue.is_empty() {
                            if stop.load(Ordering::SeqCst) {
                                return report;
                            }
                            continue;
                        }
                        let n = queue.len().min(BATCH_MAX);
                        let events: Vec<Event> = queue.iter().take(n).cloned().collect();
                        let body = device_batch(&device, &events);
                        let base = url.read().unwrap().clone();
                        if client.as_ref().is_none_or(|(u, _)| *u != base) {
                            client = Some((base.clone(), Client::new(&base, None)));
                        }
                        let c = &client.as_ref().unwrap().1;
                        let start = Instant::now();
                        let r = c.send_batch(&token, &body, rng.below(2) == 0);
                        let end = Instant::now();
                        let outcome = match &r {
                            Ok(_) => Outcome::Ok,
                            Err(ClientError::Transport(_)) => Outcome::Transport,
                            Err(ClientError::Status {
                                status,
                                retry_after,
                                message,
                                code,
                            }) => Outcome::Status {
                                status: *status,
                                retry_after: *retry_after,
                                body: format!("{code}: {message}"),
                            },
                            Err(ClientError::Decode(m)) => {
                                panic!("{device}: undecodable answer: {m}")
                            }
                        };
                        log.lock().unwrap().push(Attempt {
                            start,
                            end,
                            outcome: outcome.clone(),
                        });
                        let retry_after = match &outcome {
                            Outcome::Status { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        match (r, outcome) {
                            (Ok(resp), _) => {
                                assert_eq!(resp.results.len(), n, "{device}: one result per event");
                                for (x, e) in resp.results.iter().zip(&events) {
                                    assert_eq!(x.id, e.id, "{device}: results in batch order");
                                    match x.status {
                                        EventStatus::Accepted => {
                                            report.acked.insert(x.id.clone());
                                        }
                                        EventStatus::Duplicate => {
                                            report.duplicates += 1;
                                            report.acked.insert(x.id.clone());
                                        }
                                        EventStatus::Rejected => panic!(
                                            "{device}: event {} rejected: {:?}",
                                            x.id, x.reason
                                        ),
                                    }
                                }
                                acked_n.fetch_add(n, Ordering::SeqCst);
                                queue.drain(..n);
                                failures = 0;
                            }
                            (Err(_), Outcome::Transport)
                            | (
                                Err(_),
                                Outcome::Status {
                                    status: 429 | 500..=599,
                                    ..
                                },
                            ) => {
                                report.retries += 1;
                                failures += 1;
                                // Exponential backoff with jitter, 10 ms .. 320 ms; a
                                // Retry-After is honoured up to 1 s (test time).
                                let ra = retry_after.unwrap_or(0) * 1000;
                                let backoff = (10u64 << failures.min(5)) + rng.below(20);
                                let wait = backoff.max(ra.min(1000));
                                std::thread::sleep(Duration::from_millis(wait));
                            }
                            (Err(e), _) => panic!("{device}: unexpected answer: {e}"),
                        }
                    }
                })
            })
            .collect();
        Fleet {
            url,
            stop_producing,
            acked,
            log,
            handles,
        }
    }

    fn set_url(&self, url: &str) {
        *self.url.write().unwrap() = url.to_string();
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Wait until `n` more events are acknowledged than now (panics after `limit`).
    fn wait_progress(&self, n: usize, limit: Duration, what: &str) {
        let target = self.acked() + n;
        let t0 = Instant::now();
        while self.acked() < target {
            assert!(
                t0.elapsed() < limit,
                "{what}: no ingest progress within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop producing, let every device drain its queue, and collect the reports.
    fn drain(self, limit: Duration) -> (Vec<DeviceReport>, Vec<Attempt>) {
        self.stop_producing.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        while self.handles.iter().any(|h| !h.is_finished()) {
            assert!(
                t0.elapsed() < limit,
                "the devices did not drain their queues within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let reports = self
            .handles
            .into_iter()
            .map(|h| h.join().expect("device thread"))
            .collect();
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        (reports, log)
    }
}

fn device_tokens(admin: &Client, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            admin
                .create_token(&edetail_server::app::TokenRequest {
                    kind: Some("device".into()),
                    rep: Some(format!("rep-{i}")),
                    territory: Some("t".into()),
                    label: None,
                })
                .unwrap()
                .token
        })
        .collect()
}

fn publish(admin: &Client) -> String {
    let (ar, _) =
        edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
    admin.publish(&ar, &[]).unwrap().bundle_hash
}

// ---------------------------------------------------------------- the exactly-once check

/// Where the store is, to open it in-process for `count_ids`.
struct StoreAt<'a> {
    data_dir: &'a Path,
    database: Option<&'a str>,
    schema: Option<&'a str>,
}

fn count_ids(at: &StoreAt<'_>, ids: &[String]) -> (i64, i64) {
    let keys: Vec<[u8; 16]> = ids
        .iter()
        .map(|i| edetail_server::util::uuid_bytes(i).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = edetail_server::storage::open(at.data_dir, at.database, at.schema)
            .await
            .expect("open the store in-process");
        let n = store.count_ids(keys).await.expect("count_ids");
        let total = store.stats().await.expect("stats").events;
        (n, total)
    })
}

/// Every event sent is acknowledged, stored exactly once, counted once in the rollups;
/// resending everything gives `duplicate` for every event.
fn assert_exactly_once(
    what: &str,
    url: &str,
    admin_token: &str,
    at: &StoreAt<'_>,
    reports: &[DeviceReport],
) {
    let sent: Vec<&Event> = reports.iter().flat_map(|r| &r.sent).collect();
    let sent_ids: Vec<String> = sent.iter().map(|e| e.id.clone()).collect();
    let sent_set: HashSet<&String> = sent_ids.iter().collect();
    assert_eq!(
        sent_set.len(),
        sent_ids.len(),
        "{what}: test bug, ids repeat"
    );
    let acked: HashSet<&String> = reports.iter().flat_map(|r| &r.acked).collect();
    let never_acked: Vec<_> = sent_set.difference(&acked).take(5).collect();
    assert!(
        never_acked.is_empty(),
        "{what}: the devices drained but {} events were never acknowledged, e.g. {never_acked:?}",
        sent_set.difference(&acked).count()
    );
    let acked_not_sent: Vec<_> = acked.difference(&sent_set).take(5).collect();
    assert!(
        acked_not_sent.is_empty(),
        "{what}: acknowledged ids never sent: {acked_not_sent:?}"
    );

    // The store: every sent (= acknowledged) id once, nothing else.
    let (found, total) = count_ids(at, &sent_ids);
    assert_eq!(
        found,
        sent_ids.len() as i64,
        "{what}: {} acknowledged events are missing from the store",
        sent_ids.len() as i64 - found
    );
    assert_eq!(
        total,
        sent_ids.len() as i64,
        "{what}: the store holds {total} events for {} sent",
        sent_ids.len()
    );

    // Resending everything: all duplicates (a missing event would be `accepted`).
    let admin = Client::new(url, Some(admin_token));
    let dev = device_tokens(&admin, 1).remove(0);
    let c = Client::new(url, None);
    for chunk in sent.chunks(200) {
        let evs: Vec<Event> = chunk.iter().map(|e| (*e).clone()).collect();
        let r = c
            .send_batch(&dev, &device_batch("resend", &evs), true)
            .unwrap();
        for x in r.results {
            assert_eq!(
                x.status,
                EventStatus::Duplicate,
                "{what}: event {} was acknowledged but is not stored",
                x.id
            );
        }
    }

    // Rollups: every event counted once.
    let counted = sent
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SlideView { counted: true, .. }))
        .count() as i64;
    let sessions = sent
        .iter()
        .map(|e| &e.session_id)
        .collect::<HashSet<_>>()
        .len() as i64;
    let r = admin
        .deck_report(&edetail_server::insights::FilterParams {
            deck: Some("d".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        r.views, counted,
        "{what}: rollup views != counted views sent"
    );
    assert_eq!(
        r.sessions, sessions,
        "{what}: rollup sessions != sessions sent"
    );
    let s1 = r.slides.iter().find(|s| s.slide_id == "s1").unwrap();
    assert_eq!(s1.views, sessions, "{what}: slide s1 views");
    let pos: i64 = r.reactions.iter().map(|x| x.positive).sum();
    assert_eq!(pos, sessions, "{what}: one +1 reaction per session");
}

fn summary(what: &str, reports: &[DeviceReport], log: &[Attempt]) {
    let mut by: HashMap<String, usize> = HashMap::new();
    for a in log {
        let k = match &a.outcome {
            Outcome::Ok => "2xx".to_string(),
            Outcome::Status { status, .. } => status.to_string(),
            Outcome::Transport => "connection error".to_string(),
        };
        *by.entry(k).or_default() += 1;
    }
    let max = log
        .iter()
        .map(|a| a.end - a.start)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{what}: {} events sent by {} devices, {} retries, {} events answered `duplicate` (stored before a lost answer); answers {by:?}; slowest answer {max:?}",
        reports.iter().map(|r| r.sent.len()).sum::<usize>(),
        reports.len(),
        reports.iter().map(|r| r.retries).sum::<u64>(),
        reports.iter().map(|r| r.duplicates).sum::<u64>(),
    );
}

// ---------------------------------------------------------------- 1. SIGKILL

fn sigkill_during_ingest(backend: Backend) {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let (devices, kills) = if long() { (16, 50) } else { (6, 10) };
    let dir = tempfile::tempdir().unwrap();
    let schema = (backend == Backend::Postgres).then(unique_schema);
    let mut server = spawn(dir.path(), schema.as_deref());
    let admin_token = server.admin.clone().unwrap();
    let admin = Client::new(&server.url, Some(&admin_token));
    let hash = publish(&admin);
    let tokens = device_tokens(&admin, devices);
    let fleet = Fleet::start(&server.url, &tokens, &hash, seed);
    let mut at_kill = Vec::new();
    for k in 0..kills {
        // Ingest is under way on this incarnation; then a random moment.
        fleet.wait_progress(1, Duration::from_secs(60), &format!("before kill {k}"));
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        at_kill.push(fleet.acked());
        server.kill();
        // Down for a moment (devices get connection errors and keep their queues).
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        server = spawn(dir.path(), schema.as_deref());
        assert!(
            server.admin.is_none(),
            "a restart must not create another admin token"
        );
        fleet.set_url(&server.url);
    }
    fleet.wait_progress(1, Duration::from_secs(60), "after the last restart");
    let (reports, log) = fleet.drain(Duration::from_secs(120));
    summary(&format!("{backend:?} SIGKILL x{kills}"), &reports, &log);
    eprintln!("events acknowledged at each kill: {at_kill:?}");
    assert!(
        at_kill.windows(2).all(|w| w[0] < w[1]),
        "every kill happened during ingest: {at_kill:?}"
    );
    let transport = log
        .iter()
        .filter(|a| a.outcome == Outcome::Transport)
        .count();
    assert!(
        transport > 0,
        "no device ever saw the server die: the kills proved nothing"
    );
    // No answer other than 2xx, 429/503 (store not ready) and connection errors.
    for a in &log {
        if let Outcome::Status { status, body, .. } = &a.outcome {
            assert!(
                matches!(status, 429 | 503),
                "unexpected {status} during the kills: {body}"
            );
        }
    }
    assert_exactly_once(
        &format!("{backend:?} SIGKILL"),
        &server.url,
        &admin_token,
        &StoreAt {
            data_dir: dir.path(),
            database: schema.as_ref().map(|_| PG_URL),
            schema: schema.as_deref(),
        },
        &reports,
    );
    server.kill();
    if let Some(s) = schema {
        drop_schema(&s);
    }
}

#[test]
fn sigkill_during_ingest_stores_every_event_once_sqlite() {
    sigkill_during_ingest(Backend::Sqlite);
}

#[test]
fn sigkill_during_ingest_stores_every_event_once_postgres() {
    if !pg_available() {
        return;
    }
    sigkill_during_ingest(Backend::Postgres);
}

// ---------------------------------------------------------------- 2. database unavailable

/// A TCP proxy between the server and PostgreSQL that can be cut: every open
/// connection is shut down and new ones are closed at once until it is restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// While set, bytes are held (not forwarded): a network that silently stops.
    stalled: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: &'static str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let st2 = stalled.clone();
        let (up2, conns2, stop2, acc2, ref2) = (
            up.clone(),
            conns.clone(),
            stop.clone(),
            accepted.clone(),
            refused.clone(),
        );
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let (down, _) = match l.accept() {
                    Ok(x) => x,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = down.set_nonblocking(false);
                // Check and register under the lock, so a cut never misses a connection.
                let mut cs = conns2.lock().unwrap();
                if !up2.load(Ordering::SeqCst) {
                    ref2.fetch_add(1, Ordering::SeqCst);
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(upstream) else {
                    continue;
                };
                acc2.fetch_add(1, Ordering::SeqCst);
                let _ = down.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                cs.push(down.try_clone().unwrap());
                cs.push(upstream.try_clone().unwrap());
                drop(cs);
                let (d2, u2) = (down.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (s3, s4) = (st2.clone(), st2.clone());
                std::thread::spawn(move || pipe(down, upstream, s3));
                std::thread::spawn(move || pipe(u2, d2, s4));
            }
        });
        Proxy {
            port,
            up,
            stalled,
            conns,
            stop,
            accepted,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    /// Drop every connection and refuse new ones.
    fn cut(&self) {
        let mut cs = self.conns.lock().unwrap();
        self.up.store(false, Ordering::SeqCst);
        for c in cs.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Stop forwarding (connections stay open, bytes are held), or resume.
    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, stalled: Arc<AtomicBool>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                while stalled.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Checks of the answers given while the store was unavailable (`fault_start` ..
/// `fault_end`): no 2xx for a request sent after the fault began (unless `allow_ok`:
/// a full disk can still take a small write into space a failed one left), every
/// refusal a 503 with `Retry-After`, no answer slower than `bound`; returns how many
/// 503s were seen.
fn check_fault_window(
    what: &str,
    log: &[Attempt],
    fault_start: Instant,
    fault_end: Instant,
    bound: Duration,
    allow_ok: bool,
) -> usize {
    let mut n503 = 0;
    for a in log {
        let slow = a.end - a.start;
        assert!(
            slow <= bound,
            "{what}: an ingest request took {slow:?} (bound {bound:?}): {:?}",
            a.outcome
        );
        // Answers given while the store was unavailable.
        if a.end < fault_start || a.end > fault_end {
            continue;
        }
        match &a.outcome {
            // Sent before the fault began: may have been stored just in time.
            Outcome::Ok if allow_ok || a.start < fault_start => {}
            Outcome::Ok => {
                panic!(
                    "{what}: a batch sent {:?} after the store became unavailable was acknowledged {:?} before it came back",
                    a.start - fault_start,
                    fault_end - a.end
                )
            }
            Outcome::Status {
                status: 503,
                retry_after,
                body,
            } => {
                let ra = retry_after.unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
                assert!((1..=60).contains(&ra), "{what}: Retry-After {ra}");
                let lower = body.to_ascii_lowercase();
                assert!(
                    !lower.contains("sqlite")
                        && !lower.contains("postgres")
                        && !lower.contains('/'),
                    "{what}: the 503 body leaks internals: {body}"
                );
                n503 += 1;
            }
            other => panic!("{what}: {other:?} while the store was unavailable (want 503)"),
        }
    }
    n503
}

#[test]
fn postgres_cut_gets_503_then_everything_arrives_once() {
    if !pg_available() {
        return;
    }
    let seed = seed();
    let mut rng = Rng::new(seed);
    let cuts = if long() { 10 } else { 3 };
    let proxy = Proxy::start("127.0.0.1:5432");
    let proxy_url = proxy.url();
    let srv = TestServer::start_with(Backend::Postgres, |cfg| {
        cfg.database = Some(proxy_url.clone());
    });
    let admin = srv.admin_client();
    let hash = publish(&admin);
    let tokens = device_tokens(&admin, if long() { 12 } else { 4 });
    let fleet = Fleet::start(&srv.url, &tokens, &hash, seed);
    let mut windows = Vec::new();
    for k in 0..cuts {
        fleet.wait_progress(50, Duration::from_secs(60), &format!("before cut {k}"));
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        proxy.cut();
        let start = Instant::now();
        // Stay cut until every device has been refused at least twice.
        let t0 = Instant::now();
        loop {
            let refused = fleet
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.end > start && matches!(a.outcome, Outcome::Status { .. }))
                .count();
            if refused >= 2 * tokens.len() && t0.elapsed() > Duration::from_millis(500) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "cut {k}: the devices got no answers while the database was away"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let end = Instant::now();
        proxy.restore();
        windows.push((start, end));
    }
    fleet.wait_progress(50, Duration::from_secs(60), "after the last restore");
    let (reports, log) = fleet.drain(Duration::from_secs(120));
    summary(&format!("PostgreSQL cut x{cuts}"), &reports, &log);
    eprintln!(
        "proxy: {} connections forwarded, {} refused while cut",
        proxy.accepted.load(Ordering::SeqCst),
        proxy.refused.load(Ordering::SeqCst)
    );
    for (i, (s, e)) in windows.iter().enumerate() {
        let n = check_fault_window(
            &format!("cut {i}"),
            &log,
            *s,
            *e,
            Duration::from_secs(15),
            false,
        );
        assert!(n > 0, "cut {i}: no 503 seen");
    }
    assert_exactly_once(
        "PostgreSQL cut",
        &srv.url,
        &srv.admin,
        &StoreAt {
            data_dir: srv.dir.path(),
            database: Some(PG_URL),
            schema: srv.schema.as_deref(),
        },
        &reports,
    );
}

/// SQLite's writer waits `busy_timeout` (10 s) for a lock; another connection holding
/// the write lock longer makes ingest answer 503 (after at most two waits), then
/// everything arrives once the lock is released.
#[test]
fn sqlite_write_lock_gets_503_then_everything_arrives_once() {
    let seed = seed();
    let episodes = if long() { 3 } else { 1 };
    let srv = TestServer::start(Backend::Sqlite);
    let admin = srv.admin_client();
    let hash = publish(&admin);
    let tokens = device_tokens(&admin, 4);
    let fleet = Fleet::start(&srv.url, &tokens, &hash, seed);
    let db = srv.dir.path().join("edetail.sqlite3");
    let mut windows = Vec::new();
    for k in 0..episodes {
        fleet.wait_progress(50, Duration::from_secs(60), &format!("before lock {k}"));
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        // From here no write transaction of the server can start.
        let start = Instant::now();
        let t0 = Instant::now();
        loop {
            let refused = fleet
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.end > start && matches!(a.outcome, Outcome::Status { .. }))
                .count();
            if refused >= tokens.len() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "lock {k}: no refusal within 40 s while the database was locked"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let end = Instant::now();
        c.execute_batch("ROLLBACK").unwrap();
        drop(c);
        windows.push((start, end));
    }
    fleet.wait_progress(50, Duration::from_secs(60), "after the lock");
    let (reports, log) = fleet.drain(Duration::from_secs(120));
    summary("SQLite locked", &reports, &log);
    for (i, (s, e)) in windows.iter().enumerate() {
        // Two busy-timeout waits (10 s each) plus margin.
        let n = check_fault_window(
            &format!("lock {i}"),
            &log,
            *s,
            *e,
            Duration::from_secs(25),
            false,
        );
        assert!(n > 0, "lock {i}: no 503 seen");
    }
    assert_exactly_once(
        "SQLite locked",
        &srv.url,
        &srv.admin,
        &StoreAt {
            data_dir: srv.dir.path(),
            database: None,
            schema: None,
        },
        &reports,
    );
}

/// A small tmpfs mounted for the test (root only), unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fill the file system under `dir` with `filler` until a write fails (ENOSPC).
fn fill(filler: &Path) -> u64 {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => break,
        }
    }
    // Smaller writes fill the last partial chunk.
    let small = [0x5Au8; 512];
    while let Ok(k) = f.write(&small) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let _ = f.sync_all();
    n
}

/// Disk full under SQLite (SQLITE_FULL): 503, devices keep their queues, and once
/// space is freed everything arrives exactly once. Needs root (mounts a tmpfs);
/// skipped with a message otherwise.
#[test]
fn sqlite_disk_full_gets_503_then_everything_arrives_once() {
    let episodes = if long() { 3 } else { 1 };
    let fs = match Tmpfs::mount("24m") {
        Ok(fs) => fs,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
                && std::env::var("EDETAIL_FAULT_REQUIRE_TMPFS").is_ok()
            {
                panic!("cannot mount a tmpfs for the disk-full test: {e}");
            }
            eprintln!(
                "\n!!!!!! SKIPPING the disk-full test: it mounts a small tmpfs and needs root ({e}) !!!!!!\n"
            );
            return;
        }
    };
    let seed = seed();
    let data = fs.path().join("data");
    let srv = TestServer::start_with(Backend::Sqlite, |cfg| {
        cfg.data_dir = data.clone();
    });
    let admin = srv.admin_client();
    let hash = publish(&admin);
    let tokens = device_tokens(&admin, 4);
    let fleet = Fleet::start(&srv.url, &tokens, &hash, seed);
    let filler = fs.path().join("filler");
    let mut windows = Vec::new();
    for k in 0..episodes {
        fleet.wait_progress(
            50,
            Duration::from_secs(60),
            &format!("before disk full {k}"),
        );
        let filled = fill(&filler);
        // The disk is full from now on; SQLite may still reuse WAL pages it has, so
        // wait for the first refusals (the WAL has to grow eventually).
        let full_since = Instant::now();
        let t0 = Instant::now();
        let first_refusal = loop {
            let l = fleet.log.lock().unwrap();
            if let Some(a) = l
                .iter()
                .find(|a| a.end > full_since && matches!(a.outcome, Outcome::Status { .. }))
            {
                break a.end;
            }
            drop(l);
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "disk full {k}: ingest never failed with a full disk ({filled} filler bytes)"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Keep it full a while: every device is refused several times.
        let t1 = Instant::now();
        loop {
            let refused = fleet
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.end > first_refusal && matches!(a.outcome, Outcome::Status { .. }))
                .count();
            if refused >= 3 * tokens.len() {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(30),
                "disk full {k}: too few refusals"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let end = Instant::now();
        std::fs::remove_file(&filler).unwrap();
        eprintln!(
            "disk full {k}: {filled} filler bytes; first refusal {:?} after the disk filled",
            first_refusal - full_since
        );
        windows.push((full_since, first_refusal, end));
    }
    fleet.wait_progress(50, Duration::from_secs(60), "after freeing space");
    let (reports, log) = fleet.drain(Duration::from_secs(120));
    summary("SQLite disk full", &reports, &log);
    for (i, (_, first, end)) in windows.iter().enumerate() {
        let n = check_fault_window(
            &format!("disk full {i}"),
            &log,
            *first,
            *end,
            Duration::from_secs(15),
            true,
        );
        assert!(n > 0, "disk full {i}: no 503 seen");
    }
    // Between "disk full" and the first refusal, acknowledged batches must be stored:
    // the exactly-once check below covers them (every acknowledged id in the store).
    assert_exactly_once(
        "SQLite disk full",
        &srv.url,
        &srv.admin,
        &StoreAt {
            data_dir: &data,
            database: None,
            schema: None,
        },
        &reports,
    );
}

/// A database that silently stops answering (network partition: connections stay open,
/// nothing comes back). Ingest must still answer within a bound (503), not hang until
/// TCP gives up (minutes). Found by this test: the PostgreSQL store had no connect,
/// pool-wait or commit timeout; now commits are bounded (`PG_WRITE_TIMEOUT`, the
/// stalled connection is dropped from the pool) and so is the ingest handler
/// (`INGEST_TIMEOUT`).
#[test]
fn postgres_stall_gets_503_within_a_bound() {
    if !pg_available() {
        return;
    }
    let seed = seed();
    let proxy = Proxy::start("127.0.0.1:5432");
    let proxy_url = proxy.url();
    let srv = TestServer::start_with(Backend::Postgres, |cfg| {
        cfg.database = Some(proxy_url.clone());
    });
    let admin = srv.admin_client();
    let hash = publish(&admin);
    let tokens = device_tokens(&admin, 2);
    let fleet = Fleet::start(&srv.url, &tokens, &hash, seed);
    fleet.wait_progress(50, Duration::from_secs(60), "before the stall");
    proxy.stall(true);
    let start = Instant::now();
    let bound = Duration::from_secs(15);
    // Reads during the stall answer within the server's request bound too (503 or, when
    // served without the database, 200), never hang.
    let reads: Vec<_> = [
        ("/api/v1/catalog", tokens[0].clone()),
        ("/api/v1/insights/overview", srv.admin.clone()),
        ("/insights", srv.admin.clone()),
    ]
    .into_iter()
    .map(|(path, token)| {
        let url = srv.url.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = Client::new(&url, None).raw("GET", path, Some(&token), None);
            (path, r.map(|r| r.status), t.elapsed())
        })
    })
    .collect();
    std::thread::sleep(bound + Duration::from_secs(5));
    let answered: Vec<Attempt> = fleet
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.start > start)
        .cloned()
        .collect();
    proxy.stall(false);
    // Joined after the stall ends, so a read that hung fails the check instead of
    // hanging the test.
    for h in reads {
        let (path, status, took) = h.join().unwrap();
        eprintln!("stall: GET {path} -> {status:?} after {took:?}");
        assert!(
            matches!(status, Ok(200 | 503)) && took <= bound + Duration::from_secs(3),
            "GET {path} during the stall: {status:?} after {took:?}"
        );
    }
    let (reports, log) = fleet.drain(Duration::from_secs(120));
    summary("PostgreSQL stalled", &reports, &log);
    assert!(
        answered
            .iter()
            .any(|a| matches!(a.outcome, Outcome::Status { status: 503, .. })),
        "no 503 within {:?} of the database going silent: ingest requests hang",
        bound + Duration::from_secs(5)
    );
    check_fault_window("stall", &log, start, start + bound, bound, false);
    assert_exactly_once(
        "PostgreSQL stalled",
        &srv.url,
        &srv.admin,
        &StoreAt {
            data_dir: srv.dir.path(),
            database: Some(PG_URL),
            schema: srv.schema.as_deref(),
        },
        &reports,
    );
}
