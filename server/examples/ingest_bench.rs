//! Ingest and insights benchmark over loopback.
//!
//! ```text
//! cargo run --release -p edetail-server --example ingest_bench -- \
//!     [--backend sqlite|postgres] [--events N] [--clients C] [--batch 100] [--queries Q]
//!     [--dir PATH] [--from K] [--pg-keep]
//! ```
//!
//! `--dir PATH` keeps the SQLite data directory (created if missing) instead of a
//! temporary one; `--from K` and `--stop-at M` send only events K..M of the N-event
//! timeline. Together they measure ingest into a large database without re-sending it
//! every time: build a base once with `--events 10000000 --stop-at 9000000 --dir base`,
//! copy it, and run `--events 10000000 --from 9000000 --dir copy` on each copy.
//! `--pg-keep` keeps the PostgreSQL schema (`bench_<pid>`, printed) instead of dropping
//! it, to inspect query plans.
//!
//! Runs the server as a child process (this same binary, `--serve-child`), so the
//! reported RSS is the server's alone. C client threads send time-ordered UUIDv7
//! events (sessions of 15 events: start, 8 slide views, popup, answer, reactions,
//! question, end; 500 physicians, 10 territories, spread over 30 days) in batches
//! through the real HTTP ingest API and wait for each durable acknowledgement.
//! Then it times the insights API (deck report unfiltered and filtered, overview).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edetail_format::event::{Channel, EVENT_SCHEMA_VERSION, Event, EventKind, NavVia};
use edetail_server::client::Client;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(dir) = arg(&args, "--serve-child") {
        let mut cfg = edetail_server::Config::for_dir(std::path::Path::new(&dir));
        cfg.database = arg(&args, "--database");
        cfg.pg_schema = arg(&args, "--pg-schema");
        cfg.log_level = "warn".into();
        let r = edetail_server::serve_blocking(cfg, |s| {
            println!("admin {}", s.new_admin_token.clone().unwrap_or_default());
            println!("listening {}", s.base_url);
        });
        if let Err(e) = r {
            eprintln!("child: {e}");
            std::process::exit(2);
        }
        return;
    }
    let backend = arg(&args, "--backend").unwrap_or_else(|| "sqlite".into());
    let events: u64 = arg(&args, "--events")
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let clients: usize = arg(&args, "--clients")
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let batch: u64 = arg(&args, "--batch")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let queries: usize = arg(&args, "--queries")
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let from: u64 = arg(&args, "--from")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let stop_at: u64 = arg(&args, "--stop-at")
        .and_then(|s| s.parse().ok())
        .unwrap_or(events);
    let tmp = tempfile::tempdir().expect("tempdir");
    let kept = arg(&args, "--dir").map(std::path::PathBuf::from);
    let dir_path = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = &dir_path;
    let schema = format!("bench_{}", std::process::id());
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("--serve-child").arg(dir);
    if backend == "postgres" {
        cmd.args(["--database", PG_URL, "--pg-schema", &schema]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn server");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut admin = String::new();
    let url = loop {
        let l = lines.next().expect("child output").expect("line");
        if let Some(a) = l.strip_prefix("admin ") {
            admin = a.to_string();
        }
        if let Some(u) = l.strip_prefix("listening ") {
            break u.to_string();
        }
    };
    // A kept directory reused: its admin token was saved by the run that created it.
    let token_file = dir.join("bench-admin-token");
    if admin.is_empty() {
        admin = std::fs::read_to_string(&token_file).expect("admin token of the kept --dir");
    } else if kept.is_some() {
        std::fs::write(&token_file, &admin).expect("save admin token");
    }
    let ac = Client::new(&url, Some(&admin));
    let (ar, bundle) =
        edetail_server::bundles::sample_bundle("bench", "1.0.0", "2020-01-01", "2099-12-31", 8);
    let hash = match ac.publish(&ar, &[]) {
        Ok(p) => p.bundle_hash,
        Err(_) if from > 0 => {
            ac.versions()
                .expect("versions")
                .into_iter()
                .find(|v| v.deck_id == "bench")
                .expect("bench deck published in the kept --dir")
                .bundle_hash
        }
        Err(e) => panic!("publish: {e}"),
    };
    let mut csv = String::from("id,specialty,institution,region,segment\n");
    for i in 0..500 {
        csv.push_str(&format!(
            "HCP-{i},S{},Inst {},R{},{}\n",
            i % 5,
            i % 40,
            i % 6,
            ["A", "B", "C"][i % 3]
        ));
    }
    ac.import_hcps(&csv).expect("hcps");
    let tokens: Vec<String> = (0..clients)
        .map(|i| {
            ac.create_token(&edetail_server::app::TokenRequest {
                kind: Some("device".into()),
                rep: Some(format!("rep-{i}")),
                territory: Some(format!("T{}", i % 10)),
                label: None,
            })
            .expect("token")
            .token
        })
        .collect();
    let rss_peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (rss_peak, stop) = (rss_peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::Relaxed) == 0 {
                let kb = rss_kb(pid);
                rss_peak.fetch_max(kb, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    println!(
        "backend {backend}; events {from}..{stop_at} of a {events}-event timeline in batches of {batch}; {clients} clients; server pid {pid}, RSS before load {} MiB",
        rss_kb(pid) / 1024
    );
    let next = Arc::new(AtomicU64::new(from));
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let retries = Arc::new(AtomicU64::new(0));
    let flow: Vec<String> = bundle.flow_ids().map(String::from).collect();
    let start_ms = edetail_server::util::now_ms() - 30 * 86_400_000;
    let span = 30 * 86_400_000 - 3_600_000;
    let t0 = Instant::now();
    // Acknowledged events, and when the last million (of a longer run) began.
    let done = Arc::new(AtomicU64::new(0));
    let last_m_mark = (stop_at - from).saturating_sub(1_000_000);
    let last_m_start = Arc::new(Mutex::new(None::<Instant>));
    let progress = {
        let (done, stop) = (done.clone(), stop.clone());
        std::thread::spawn(move || progress_loop(pid, stop_at - from, &done, &stop))
    };
    let mut hs = Vec::new();
    for (ci, token) in tokens.iter().enumerate() {
        let (done, last_m_start) = (done.clone(), last_m_start.clone());
        let (next, lat, retries, url, token, flow, hash) = (
            next.clone(),
            lat.clone(),
            retries.clone(),
            url.clone(),
            token.clone(),
            flow.clone(),
            hash.clone(),
        );
        hs.push(std::thread::spawn(move || {
            let c = Client::new(&url, None);
            loop {
                let k0 = next.fetch_add(batch, Ordering::Relaxed);
                if k0 >= stop_at {
                    return;
                }
                let n = batch.min(stop_at - k0);
                let evs: Vec<Event> = (k0..k0 + n).map(|k| make_event(k, events, start_ms, span, &flow, &hash, ci)).collect();
                let body = serde_json::to_vec(&serde_json::json!({"schema_version": 1, "device_id": format!("ipad-{ci}"), "sent_at": edetail_server::util::now_ms(), "events": evs})).expect("json");
                loop {
                    let t = Instant::now();
                    match c.send_batch(&token, &body, false) {
                        Ok(r) => {
                            assert!(r.results.iter().all(|x| x.status == edetail_format::ingest::EventStatus::Accepted), "not all accepted");
                            lat.lock().expect("lat").push(t.elapsed().as_secs_f64() * 1000.0);
                            let before = done.fetch_add(n, Ordering::Relaxed);
                            if last_m_mark > 0 && before < last_m_mark && before + n >= last_m_mark {
                                *last_m_start.lock().expect("mark") = Some(Instant::now());
                            }
                            break;
                        }
                        Err(edetail_server::client::ClientError::Status { status: 429 | 503, .. }) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => panic!("ingest failed: {e}"),
                    }
                }
            }
        }));
    }
    for h in hs {
        h.join().expect("client");
    }
    let secs = t0.elapsed().as_secs_f64();
    // Stop the progress lines (the sampler is stopped later, after the queries).
    done.store(u64::MAX, Ordering::Relaxed);
    let _ = progress.join();
    if let Some(t) = *last_m_start.lock().expect("mark") {
        let rest = stop_at - from - last_m_mark;
        println!(
            "ingest over the last {rest} events: {:.0} events/s",
            rest as f64 / t.elapsed().as_secs_f64()
        );
    }
    let mut l = lat.lock().expect("lat").clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "ingest: {:.0} events/s ({} events in {secs:.1} s); batch latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} overload retries; server RSS peak {} MiB",
        (stop_at - from) as f64 / secs,
        stop_at - from,
        q(0.5),
        q(0.9),
        q(0.99),
        l[l.len() - 1],
        retries.load(Ordering::Relaxed),
        rss_peak.load(Ordering::Relaxed) / 1024
    );
    // CPU time of the server's threads during ingest, by thread name (user + system;
    // less sensitive to the machine's load than wall-clock throughput).
    let cpu = thread_cpu(pid);
    let mut line = String::from("server CPU per event:");
    let mut total = 0.0;
    for (name, secs) in &cpu {
        total += secs;
        line.push_str(&format!(
            " {name} {:.1} us;",
            secs * 1e6 / (stop_at - from) as f64
        ));
    }
    println!(
        "{line} total {:.1} us",
        total * 1e6 / (stop_at - from) as f64
    );
    let st = ac.stats().expect("stats");
    println!(
        "stored: {} events, {} rollup rows",
        st.events, st.rollup_rows
    );
    assert_eq!(st.events as u64, stop_at, "every event stored once");
    // Insights latency.
    let mk = |extra: &str| format!("/api/v1/insights/deck?deck=bench{extra}");
    for (name, path) in [
        ("deck report", mk("")),
        (
            "deck report, specialty+region filter",
            mk("&specialty=S1&region=R1"),
        ),
        ("deck report, 7-day range + channel", {
            let to = edetail_server::util::today_iso();
            let from = edetail_server::util::iso_of_day(
                edetail_server::util::day_of_ms(edetail_server::util::now_ms()) - 7,
            );
            mk(&format!("&from={from}&to={to}&channel=mr_led"))
        }),
        ("overview", "/api/v1/insights/overview".to_string()),
    ] {
        let mut t = Vec::new();
        for _ in 0..queries {
            let s = Instant::now();
            let r = ac.raw("GET", &path, None, None).expect("query");
            assert_eq!(r.status, 200, "{}", r.body);
            t.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        t.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| t[((t.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "insights {name}: p50 {:.1} ms, p95 {:.1} ms ({queries} requests)",
            q(0.5),
            q(0.95)
        );
    }
    println!("server RSS after queries {} MiB", rss_kb(pid) / 1024);
    if backend != "postgres" {
        let files: Vec<(String, u64)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().ok()?.len(),
                ))
            })
            .collect();
        let total: u64 = files.iter().map(|(_, n)| n).sum();
        let list: Vec<String> = files
            .iter()
            .map(|(f, n)| format!("{f} {:.1} MiB", *n as f64 / 1048576.0))
            .collect();
        println!(
            "database files: {:.1} MiB ({:.0} bytes per event): {}",
            total as f64 / 1048576.0,
            total as f64 / stop_at as f64,
            list.join(", ")
        );
    }
    stop.store(1, Ordering::Relaxed);
    let _ = sampler.join();
    // Graceful stop (SIGTERM), then clean up.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    if backend == "postgres" && args.iter().any(|a| a == "--pg-keep") {
        println!("kept PostgreSQL schema {schema}");
    } else if backend == "postgres" {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-qc",
                &format!(
                    "SET client_min_messages = warning; DROP SCHEMA IF EXISTS {schema} CASCADE"
                ),
            ])
            .status();
    }
}

/// Every 10 s until `done` is set to `u64::MAX`: events acknowledged, the rate over the
/// last interval and overall, the server's writer CPU per event over the interval (how it
/// grows with the database) and the machine's load average.
fn progress_loop(pid: u32, events: u64, done: &AtomicU64, stop: &AtomicU64) {
    const EVERY: Duration = Duration::from_secs(10);
    let t0 = Instant::now();
    let writer = || {
        thread_cpu(pid)
            .into_iter()
            .find(|(n, _)| n == "sqlite-writer")
            .map_or(0.0, |(_, s)| s)
    };
    let (mut last_t, mut last_n, mut last_w) = (t0, 0u64, writer());
    loop {
        let until = Instant::now() + EVERY;
        while Instant::now() < until {
            if done.load(Ordering::Relaxed) == u64::MAX || stop.load(Ordering::Relaxed) != 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let n = done.load(Ordering::Relaxed);
        if n == u64::MAX {
            return;
        }
        let (now, w) = (Instant::now(), writer());
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!(
            "progress {:>6.0} s: {n}/{events} events; last {:.0} s {:.0} events/s, overall {:.0} events/s; writer {:.1} us/event; load {}",
            now.duration_since(t0).as_secs_f64(),
            now.duration_since(last_t).as_secs_f64(),
            (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64(),
            n as f64 / now.duration_since(t0).as_secs_f64(),
            (w - last_w) * 1e6 / (n - last_n).max(1) as f64,
            load.join(" ")
        );
        (last_t, last_n, last_w) = (now, n, w);
    }
}

/// CPU seconds (utime + stime) of each thread of `pid`, summed by thread name.
fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces; fields follow the last ')'.
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[a + 1..b].to_string();
        let f: Vec<&str> = stat[b + 2..].split_whitespace().collect();
        let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        // Group tokio workers and blocking threads under one name each.
        let key = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        *by.entry(key.to_string()).or_default() += (ut + st) / tick;
    }
    by.into_iter().filter(|(_, s)| *s > 0.0).collect()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn uuid7(ms: i64, k: u64, c: usize) -> String {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&(ms as u64).to_be_bytes()[2..]);
    b[6..14].copy_from_slice(&k.to_be_bytes());
    b[14..].copy_from_slice(&(c as u16).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// Event `k` of `total`: sessions of 15 events, time advancing with k.
fn make_event(
    k: u64,
    total: u64,
    start: i64,
    span: i64,
    flow: &[String],
    hash: &str,
    client: usize,
) -> Event {
    let t = start + (span as f64 * k as f64 / total as f64) as i64;
    let s = k / 15;
    let pos = k % 15;
    let hcp = format!("HCP-{}", (s * 7919) % 500);
    let slide_i = ((pos as usize).saturating_sub(1)).min(flow.len() - 1);
    let slide = flow[slide_i].clone();
    let kind = match pos {
        0 => EventKind::SessionStart {
            mode: "mr_led".into(),
            sequence: None,
            user_agent: None,
            viewport: None,
        },
        14 => EventKind::SessionEnd {
            reason: "ended".into(),
            duration_ms: 60_000,
            slides_viewed: 8,
        },
        9 => EventKind::PopupOpen {
            component_id: "s2-pop".into(),
        },
        10 => EventKind::Answer {
            question_id: "q1".into(),
            purpose: "quiz".into(),
            question_kind: "single".into(),
            options_shown: vec!["a".into(), "b".into()],
            selected: vec![if s.is_multiple_of(3) { "a" } else { "b" }.into()],
            rating: None,
            text: None,
            correct: Some(!s.is_multiple_of(3)),
        },
        11 | 12 => EventKind::Reaction {
            value: (s % 3) as i8 - 1,
            key_message: Some(format!("Key message {}", pos - 10)),
        },
        13 => EventKind::Question {
            text: [
                "Renal dosing?",
                "Elderly patients?",
                "Combination with metformin?",
            ][(s % 3) as usize]
                .into(),
        },
        _ => {
            let dwell = 1000 + (k * 2654435761 % 30_000);
            EventKind::SlideView {
                enter_time: t - dwell as i64,
                exit_time: t,
                dwell_ms: dwell,
                hidden_ms: 0,
                order: pos as u32,
                via: NavVia::Swipe,
                counted: true,
            }
        }
    };
    Event {
        id: uuid7(t, k, client),
        schema_version: EVENT_SCHEMA_VERSION,
        session_id: format!("sess-{s}"),
        seq: pos,
        client_time: t,
        deck_id: "bench".into(),
        deck_version: "1.0.0".into(),
        bundle_hash: hash.into(),
        slide_id: if matches!(pos, 0 | 14 | 13) {
            None
        } else {
            Some(slide)
        },
        slide_hash: None,
        channel: if s.is_multiple_of(5) {
            Channel::SelfServe
        } else {
            Channel::MrLed
        },
        rep_id: None,
        hcp_id: Some(hcp),
        device_id: format!("ipad-{client}"),
        preview: false,
        kind,
    }
}
