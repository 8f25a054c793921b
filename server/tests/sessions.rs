//! Sessions that never send `session_end` are closed after the idle timeout and then
//! count in drop-off and paths; late events and a late `session_end` give exactly the
//! figures of all the events arriving together. SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::*;
use edetail_format::event::{Event, EventKind};
use edetail_server::client::Client;
use edetail_server::insights::{DeckReport, FilterParams};
use edetail_server::{Config, RunningServer};

/// A long idle timeout: nothing is closed by the job during the test.
const NEVER: Duration = Duration::from_secs(3600);

fn config(backend: Backend, dir: &std::path::Path, schema: Option<&str>, idle: Duration) -> Config {
    let mut cfg = Config::for_dir(dir);
    cfg.www = dir.join("www");
    cfg.session_idle = idle;
    cfg.session_close_every = Duration::from_millis(50);
    if backend == Backend::Postgres {
        cfg.database = Some(PG_URL.into());
        cfg.pg_schema = schema.map(String::from);
    }
    cfg
}

struct Env {
    server: Option<RunningServer>,
    cfg: Config,
    admin: String,
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

impl Env {
    fn start(b: Backend, idle: Duration) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let schema = (b == Backend::Postgres).then(unique_schema);
        let cfg = config(b, dir.path(), schema.as_deref(), idle);
        let server = RunningServer::start(cfg.clone()).unwrap();
        let admin = server.started.new_admin_token.clone().unwrap();
        Env {
            server: Some(server),
            cfg,
            admin,
            _dir: dir,
            schema,
        }
    }

    fn admin(&self) -> Client {
        Client::new(self.server.as_ref().unwrap().url(), Some(&self.admin))
    }

    /// Restart on the same storage with another idle timeout.
    fn restart(&mut self, idle: Duration) {
        self.server.take().unwrap().stop();
        self.cfg.session_idle = idle;
        self.server = Some(RunningServer::start(self.cfg.clone()).unwrap());
    }

    /// Publish the sample deck, import the directory, return (bundle hash, device token).
    fn setup(&self) -> (String, String) {
        let a = self.admin();
        let (ar, _) =
            edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
        let hash = a.publish(&ar, &[]).unwrap().bundle_hash;
        a.import_hcps(
            "id,specialty,institution,region,segment\nHCP-1,Cardiology,General Hospital,Seoul,A\n",
        )
        .unwrap();
        let dev = a
            .create_token(&edetail_server::app::TokenRequest {
                kind: Some("device".into()),
                rep: Some("rep-1".into()),
                territory: Some("T1".into()),
                label: None,
            })
            .unwrap()
            .token;
        (hash, dev)
    }

    fn send(&self, dev: &str, evs: &[Event]) {
        let r = self.admin().send_batch(dev, &batch(evs), false).unwrap();
        for x in r.results {
            assert_eq!(x.status, edetail_format::ingest::EventStatus::Accepted);
        }
    }

    fn report(&self, f: FilterParams) -> DeckReport {
        self.admin()
            .deck_report(&FilterParams {
                deck: Some("d".into()),
                ..f
            })
            .unwrap()
    }

    /// Wait until the close job has closed every session.
    fn wait_closed(&self) {
        let t0 = Instant::now();
        loop {
            let r = self.report(FilterParams::default());
            if r.open_sessions == 0 {
                assert_eq!(r.closed_up_to_ms, None);
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{} sessions still open after 60 s",
                r.open_sessions
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(s) = &self.schema {
            drop_schema(s);
        }
    }
}

fn reached(r: &DeckReport, id: &str) -> i64 {
    r.slides
        .iter()
        .find(|x| x.slide_id == id)
        .map_or(0, |x| x.sessions_reached)
}

fn positive_path(r: &DeckReport, p: &[&str]) -> i64 {
    r.paths
        .iter()
        .find(|x| x.path == p)
        .map_or(0, |x| x.positive_sessions)
}

/// The deck report without the closing status, for comparing two servers.
fn figures(r: &DeckReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("open_sessions");
    o.remove("closed_up_to_ms");
    v
}

fn filters() -> Vec<FilterParams> {
    vec![
        FilterParams::default(),
        FilterParams {
            specialty: Some("Cardiology".into()),
            ..Default::default()
        },
        FilterParams {
            territory: Some("T1".into()),
            channel: Some("mr_led".into()),
            ..Default::default()
        },
    ]
}

/// The test sessions, each in full (in seq order), and how they are sent in parts:
/// - `ended`: a complete session (start, s1, s2, s3, +1 reaction, end), in one go;
/// - `open`: the same without `session_end`, in one go (closed by the job);
/// - `late`: without end; first start + s1, then, once closed, s2 + s3 + reaction;
/// - `late_end`: start + s1 + s2 and its end first; then, once closed, s3 + the
///   reaction (the end arrived before the rest of the call);
/// - `end_last`: start + s1 (closed by the job), then s2 + reaction, then the end.
struct Sessions {
    all: Vec<Vec<Event>>,
    /// Parts to send, in rounds; the job closes everything between rounds.
    rounds: Vec<Vec<Event>>,
}

fn sessions(hash: &str) -> Sessions {
    let full = || session("d", hash, &["s1", "s2", "s3"], 4000);
    // [start, s1, s2, s3, reaction, end]
    let ended = full();
    let mut open = full();
    open.pop();
    let mut late = full();
    late.pop();
    let late_end = full();
    let mut end_last = full();
    end_last.remove(3); // no s3
    // end_last: [start, s1, s2, reaction, end]
    let rounds = vec![
        [
            ended.clone(),
            open.clone(),
            late[..2].to_vec(),
            [&late_end[..3], &late_end[5..]].concat(),
            end_last[..2].to_vec(),
        ]
        .concat(),
        [
            late[2..].to_vec(),
            late_end[3..5].to_vec(),
            end_last[2..4].to_vec(),
        ]
        .concat(),
        end_last[4..].to_vec(),
    ];
    Sessions {
        all: vec![ended, open, late, late_end, end_last],
        rounds,
    }
}

#[test]
fn idle_sessions_close_and_late_events_give_the_all_at_once_figures() {
    each_backend(|b| {
        // Reference: every session's events arriving together (one batch each).
        let mut reference = Env::start(b, Duration::ZERO);
        let (hash, dev) = reference.setup();
        let s = sessions(&hash);
        for evs in &s.all {
            reference.send(&dev, evs);
        }
        reference.wait_closed();
        let want: Vec<serde_json::Value> = filters()
            .into_iter()
            .map(|f| figures(&reference.report(f)))
            .collect();
        let r = reference.report(FilterParams::default());
        // 5 sessions, all closed (2 never sent an end); every one reached s1 and s2,
        // 4 reached s3; 4 followed s1 > s2 > s3 with a positive reaction.
        assert_eq!((r.sessions, r.ended_sessions), (5, 5));
        assert_eq!(
            (reached(&r, "s1"), reached(&r, "s2"), reached(&r, "s3")),
            (5, 5, 4)
        );
        assert_eq!(positive_path(&r, &["s1", "s2", "s3"]), 4);
        assert_eq!(positive_path(&r, &["s1", "s2"]), 1);

        // The same events in parts, on a server whose job does not close yet.
        let mut e = Env::start(b, NEVER);
        let (hash2, dev2) = e.setup();
        assert_eq!(hash, hash2);
        e.send(&dev2, &s.rounds[0]);
        let r = e.report(FilterParams::default());
        // Only the two sessions with an end are closed; three are open.
        assert_eq!(r.ended_sessions, 2);
        assert_eq!(r.open_sessions, 3);
        let t = r.closed_up_to_ms.expect("sessions are open");
        assert!(t <= now_ms() && t > now_ms() - 600_000, "{t}");
        assert_eq!(reached(&r, "s1"), 2);
        assert_eq!(positive_path(&r, &["s1", "s2", "s3"]), 1);
        // The dashboard says so.
        let html = e
            .admin()
            .raw("GET", "/insights/deck/d", Some(&e.admin), None)
            .unwrap();
        assert_eq!(html.status, 200);
        assert!(
            html.body.contains("Sessions still open: 3"),
            "{}",
            html.body
        );

        // Idle timeout reached: the job closes them (after a restart with a short
        // timeout), each counted once.
        e.restart(Duration::ZERO);
        e.wait_closed();
        let r = e.report(FilterParams::default());
        assert_eq!(r.ended_sessions, 5);
        assert_eq!(reached(&r, "s1"), 5);
        assert_eq!(reached(&r, "s2"), 3);
        assert!(
            e.admin()
                .raw("GET", "/insights/deck/d", Some(&e.admin), None)
                .unwrap()
                .body
                .contains("all sessions closed")
        );

        // Late events reopen their sessions; once closed again, and after the late end,
        // every figure equals the all-at-once reference.
        for round in &s.rounds[1..] {
            e.send(&dev2, round);
            e.wait_closed();
            let r = e.report(FilterParams::default());
            assert_eq!(r.ended_sessions, 5, "a session counted twice");
        }
        let got: Vec<serde_json::Value> = filters()
            .into_iter()
            .map(|f| figures(&e.report(f)))
            .collect();
        assert_eq!(got, want);
        // Restarted, both have folded every pending rollup delta (SQLite folds at start):
        // the same figures, and as many stored rollup rows (rows that re-closed sessions
        // left at zero are deleted, not kept).
        reference.restart(Duration::ZERO);
        e.restart(Duration::ZERO);
        let got: Vec<serde_json::Value> = filters()
            .into_iter()
            .map(|f| figures(&e.report(f)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            e.admin().stats().unwrap().rollup_rows,
            reference.admin().stats().unwrap().rollup_rows
        );
    });
}

/// Retention with auto-closed sessions: an idle session closed by the job is deleted
/// after the retention period like an ended one (not kept for twice as long), every
/// insight unchanged; an event arriving after that leaves its session figures alone.
#[test]
fn retention_deletes_auto_closed_sessions_and_keeps_their_figures() {
    const DAY_MS: i64 = 86_400_000;
    each_backend(|b| {
        let mut e = Env::start(b, Duration::ZERO);
        let (hash, dev) = e.setup();
        let aged = |mut evs: Vec<Event>, days: i64| {
            for x in &mut evs {
                x.client_time = now_ms() - days * DAY_MS + x.seq as i64;
            }
            evs
        };
        let mut old = aged(session("d", &hash, &["s1", "s2"], 3000), 40);
        old.pop(); // never ended
        let recent = session("d", &hash, &["s1"], 3000);
        e.send(&dev, &[old.clone(), recent.clone()].concat());
        e.wait_closed();
        let before = e.report(FilterParams::default());
        assert_eq!(before.ended_sessions, 2);
        assert_eq!(reached(&before, "s2"), 1);

        e.cfg.retention_days = Some(30);
        e.restart(Duration::ZERO);
        let t0 = Instant::now();
        while e.admin().stats().unwrap().events != recent.len() as i64 {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "retention did not run"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            figures(&e.report(FilterParams::default())),
            figures(&before)
        );
        // A straggler of the deleted session: counted as an event, but the session's
        // figures (computed when all its events were there) stay.
        let mut straggler = aged(vec![old[1].clone()], 40);
        straggler[0].id = new_id();
        straggler[0].seq = 50;
        straggler[0].kind = EventKind::Zoom {
            component_id: "z".into(),
        };
        e.send(&dev, &straggler);
        e.wait_closed();
        let after = e.report(FilterParams::default());
        assert_eq!(after.ended_sessions, 2);
        assert_eq!(reached(&after, "s1"), 2);
        assert_eq!(reached(&after, "s2"), 1);
        assert_eq!(
            serde_json::to_value(&after.paths).unwrap(),
            serde_json::to_value(&before.paths).unwrap()
        );
    });
}
