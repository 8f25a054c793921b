//! Multi-process tests with the `edetail-server` binary: a crash (SIGKILL) in the
//! middle of ingest, and two processes sharing one PostgreSQL database.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::*;
use edetail_format::Event;
use edetail_format::ingest::EventStatus;
use edetail_server::client::{Client, ClientError};

type Proc = ServerProc;

fn spawn(data_dir: &std::path::Path, pg_schema: Option<&str>) -> Proc {
    ServerProc::spawn(
        data_dir,
        pg_schema,
        &["--log-level", "warn"],
        Stdio::inherit(),
    )
}

fn counted_views(events: &[Event]) -> i64 {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                edetail_format::EventKind::SlideView { counted: true, .. }
            )
        })
        .count() as i64
}

fn make_batches(hash: &str, n: usize) -> Vec<Vec<Event>> {
    (0..n)
        .map(|_| {
            let mut v = Vec::new();
            for _ in 0..8 {
                v.extend(session("d", hash, &["s1", "s2", "s3", "s4"], 3000));
            }
            v
        })
        .collect()
}

fn restart_mid_ingest(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let schema = (backend == Backend::Postgres).then(unique_schema);
    let a = spawn(dir.path(), schema.as_deref());
    let admin_token = a.admin.clone().unwrap();
    let admin = Client::new(&a.url, Some(&admin_token));
    let (ar, _) =
        edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
    let hash = admin.publish(&ar, &[]).unwrap().bundle_hash;
    let dev = admin
        .create_token(&edetail_server::app::TokenRequest {
            kind: Some("device".into()),
            rep: Some("r".into()),
            territory: Some("t".into()),
            label: None,
        })
        .unwrap()
        .token;
    let batches = Arc::new(make_batches(&hash, 160));
    let next = Arc::new(Mutex::new(0usize));
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let acked_batches = Arc::new(Mutex::new(0usize));
    let a = Arc::new(Mutex::new(Some(a)));
    let url = a.lock().unwrap().as_ref().unwrap().url.clone();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (batches, next, acked, acked_batches, url, dev) = (
            batches.clone(),
            next.clone(),
            acked.clone(),
            acked_batches.clone(),
            url.clone(),
            dev.clone(),
        );
        senders.push(std::thread::spawn(move || {
            let c = Client::new(&url, None);
            loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    if *n >= batches.len() {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                match c.send_batch(&dev, &batch(&batches[i]), i % 2 == 0) {
                    Ok(r) => {
                        let mut ids = acked.lock().unwrap();
                        for x in r.results {
                            assert_eq!(x.status, EventStatus::Accepted);
                            ids.push(x.id);
                        }
                        *acked_batches.lock().unwrap() += 1;
                    }
                    Err(ClientError::Transport(_))
                    | Err(ClientError::Status {
                        status: 503 | 429, ..
                    }) => {}
                    Err(e) => panic!("unexpected: {e}"),
                }
            }
        }));
    }
    // Kill the server (SIGKILL: no graceful shutdown) once some batches are acknowledged.
    loop {
        if *acked_batches.lock().unwrap() >= 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(a.lock().unwrap().take());
    for s in senders {
        s.join().unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let acked_n = acked.len();
    assert!(acked_n > 0);
    assert!(
        acked_n < batches.iter().map(Vec::len).sum::<usize>(),
        "the kill happened after everything was sent; test proves nothing"
    );

    // Restart on the same storage and resend everything, as devices do.
    let b = spawn(dir.path(), schema.as_deref());
    assert!(
        b.admin.is_none(),
        "a restart must not create another admin token"
    );
    let c = Client::new(&b.url, None);
    let mut dup_acked = 0;
    for bt in batches.iter() {
        let r = c.send_batch(&dev, &batch(bt), false).unwrap();
        for x in r.results {
            if acked.contains(&x.id) {
                assert_eq!(
                    x.status,
                    EventStatus::Duplicate,
                    "event {} was acknowledged before the crash but is not stored",
                    x.id
                );
                dup_acked += 1;
            } else {
                assert!(matches!(
                    x.status,
                    EventStatus::Accepted | EventStatus::Duplicate
                ));
            }
        }
    }
    assert_eq!(dup_acked, acked_n);
    let all: Vec<Event> = batches.iter().flatten().cloned().collect();
    let admin = Client::new(&b.url, Some(&admin_token));
    let stats = admin.stats().unwrap();
    assert_eq!(
        stats.events,
        all.len() as i64,
        "every event stored exactly once"
    );
    let r = admin
        .deck_report(&edetail_server::insights::FilterParams {
            deck: Some("d".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        r.views,
        counted_views(&all),
        "rollups count every event exactly once"
    );
    assert_eq!(r.sessions, (batches.len() * 8) as i64);
    eprintln!("{backend:?}: {acked_n} events acknowledged before SIGKILL, all found after restart");
    drop(b);
    if let Some(s) = schema {
        drop_schema(&s);
    }
}

#[test]
fn restart_mid_ingest_keeps_every_acknowledged_event_once_sqlite() {
    restart_mid_ingest(Backend::Sqlite);
}

#[test]
fn restart_mid_ingest_keeps_every_acknowledged_event_once_postgres() {
    if !pg_available() {
        return;
    }
    restart_mid_ingest(Backend::Postgres);
}

#[test]
fn two_postgres_processes_never_double_count() {
    if !pg_available() {
        return;
    }
    let schema = unique_schema();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let a = spawn(d1.path(), Some(&schema));
    let b = spawn(d2.path(), Some(&schema));
    assert!(
        b.admin.is_none(),
        "only one process bootstraps the admin token"
    );
    let admin_token = a.admin.clone().unwrap();
    let admin_a = Client::new(&a.url, Some(&admin_token));
    let admin_b = Client::new(&b.url, Some(&admin_token));
    let (ar, _) =
        edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
    let hash = admin_a.publish(&ar, &[]).unwrap().bundle_hash;
    // Published through A, visible through B.
    assert_eq!(admin_b.catalog(None).unwrap().len(), 1);
    let dev = admin_b
        .create_token(&edetail_server::app::TokenRequest {
            kind: Some("device".into()),
            rep: Some("r".into()),
            territory: Some("t".into()),
            label: None,
        })
        .unwrap()
        .token;
    admin_a
        .import_hcps("id,specialty,institution,region,segment\nHCP-1,GP,X,Seoul,A\n")
        .unwrap();
    let batches = make_batches(&hash, 40);
    // Every batch goes to both processes at the same time (a device retrying against
    // another instance behind a load balancer).
    let mut accepted = 0usize;
    for bt in &batches {
        let body = batch(bt);
        let (ua, ub, da) = (a.url.clone(), b.url.clone(), dev.clone());
        let db = dev.clone();
        let body2 = body.clone();
        let ta = std::thread::spawn(move || {
            Client::new(&ua, None)
                .send_batch(&da, &body, false)
                .unwrap()
        });
        let tb = std::thread::spawn(move || {
            Client::new(&ub, None)
                .send_batch(&db, &body2, true)
                .unwrap()
        });
        let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
        for (x, y) in ra.results.iter().zip(&rb.results) {
            let acc = [x.status, y.status]
                .iter()
                .filter(|s| **s == EventStatus::Accepted)
                .count();
            assert_eq!(
                acc, 1,
                "event {} accepted {acc} times across two processes",
                x.id
            );
            accepted += acc;
        }
    }
    let all: Vec<Event> = batches.iter().flatten().cloned().collect();
    assert_eq!(accepted, all.len());
    assert_eq!(admin_b.stats().unwrap().events, all.len() as i64);
    let p = edetail_server::insights::FilterParams {
        deck: Some("d".into()),
        ..Default::default()
    };
    for admin in [&admin_a, &admin_b] {
        let r = admin.deck_report(&p).unwrap();
        assert_eq!(r.views, counted_views(&all));
        assert_eq!(r.sessions, (batches.len() * 8) as i64);
        assert_eq!(r.reach, 1);
        let s1 = r.slides.iter().find(|s| s.slide_id == "s1").unwrap();
        assert_eq!(s1.views, (batches.len() * 8) as i64);
        let pos: i64 = r.reactions.iter().map(|x| x.positive).sum();
        assert_eq!(pos, (batches.len() * 8) as i64);
    }
    drop(a);
    drop(b);
    drop_schema(&schema);
}

/// Two processes on one PostgreSQL database both run the idle-session close job:
/// every session without `session_end` is closed by exactly one of them (counted once
/// in drop-off), also when late events reopen the sessions.
#[test]
fn two_postgres_processes_close_each_idle_session_once() {
    if !pg_available() {
        return;
    }
    let schema = unique_schema();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let flags = [
        "--log-level",
        "warn",
        "--session-idle-secs",
        "0",
        "--session-close-interval-secs",
        "1",
    ];
    let a = ServerProc::spawn(d1.path(), Some(&schema), &flags, Stdio::inherit());
    let b = ServerProc::spawn(d2.path(), Some(&schema), &flags, Stdio::inherit());
    let admin_token = a.admin.clone().unwrap();
    let admin = Client::new(&a.url, Some(&admin_token));
    let (ar, _) =
        edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
    let hash = admin.publish(&ar, &[]).unwrap().bundle_hash;
    let dev = admin
        .create_token(&edetail_server::app::TokenRequest {
            kind: Some("device".into()),
            rep: Some("r".into()),
            territory: Some("t".into()),
            label: None,
        })
        .unwrap()
        .token;
    // 600 sessions without an end (start, s1, s2, reaction), in batches of 10 sessions
    // alternating between the processes, while both close jobs run.
    let sessions: Vec<Vec<Event>> = (0..600)
        .map(|_| {
            let mut s = session("d", &hash, &["s1", "s2"], 3000);
            s.pop();
            s
        })
        .collect();
    let send_all = |evs: Vec<Vec<Event>>| {
        let mut threads = Vec::new();
        for (i, chunk) in evs.chunks(10).enumerate() {
            let url = if i % 2 == 0 { &a.url } else { &b.url }.clone();
            let (dev, body) = (dev.clone(), batch(&chunk.concat()));
            threads.push(std::thread::spawn(move || {
                let r = Client::new(&url, None)
                    .send_batch(&dev, &body, false)
                    .unwrap();
                assert!(r.results.iter().all(|x| x.status == EventStatus::Accepted));
            }));
            if threads.len() == 4 {
                for t in threads.drain(..) {
                    t.join().unwrap();
                }
            }
        }
        for t in threads {
            t.join().unwrap();
        }
    };
    let wait_closed = || {
        let t0 = std::time::Instant::now();
        loop {
            let r = admin
                .deck_report(&edetail_server::insights::FilterParams {
                    deck: Some("d".into()),
                    ..Default::default()
                })
                .unwrap();
            if r.open_sessions == 0 {
                return r;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(120),
                "{} sessions still open",
                r.open_sessions
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    send_all(sessions.clone());
    let r = wait_closed();
    let reached = |r: &edetail_server::insights::DeckReport, id: &str| {
        r.slides
            .iter()
            .find(|x| x.slide_id == id)
            .map_or(0, |x| x.sessions_reached)
    };
    assert_eq!(r.sessions, 600);
    assert_eq!(r.ended_sessions, 600, "idle sessions closed more than once");
    assert_eq!((reached(&r, "s1"), reached(&r, "s2")), (600, 600));
    // Late events: a view of s3 for every session (reopened, closed again).
    let late: Vec<Vec<Event>> = sessions
        .iter()
        .map(|s| vec![view("d", &hash, &s[0].session_id, 10, "s3", 3, 2000)])
        .collect();
    send_all(late);
    let r = wait_closed();
    assert_eq!(r.ended_sessions, 600, "a reopened session counted twice");
    assert_eq!(reached(&r, "s3"), 600);
    let paths: i64 = r.paths.iter().map(|p| p.sessions).sum();
    assert_eq!(paths, 600);
    assert_eq!(
        r.paths
            .iter()
            .find(|p| p.path == ["s1", "s2", "s3"])
            .unwrap()
            .positive_sessions,
        600
    );
    drop(a);
    drop(b);
    drop_schema(&schema);
}
