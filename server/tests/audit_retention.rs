//! Audit log of admin actions and retention of raw events, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::*;
use edetail_format::event::Event;
use edetail_server::app::{ShareRequest, TokenRequest};
use edetail_server::client::Client;
use edetail_server::insights::FilterParams;
use edetail_server::{Config, RunningServer};

const DAY_MS: i64 = 86_400_000;

fn config(backend: Backend, dir: &std::path::Path, schema: Option<&str>) -> Config {
    let mut cfg = Config::for_dir(dir);
    cfg.www = dir.join("www");
    if backend == Backend::Postgres {
        cfg.database = Some(PG_URL.into());
        cfg.pg_schema = schema.map(String::from);
    }
    cfg
}

/// The events with their client time moved `days` into the past.
fn aged(mut evs: Vec<Event>, days: i64) -> Vec<Event> {
    for e in &mut evs {
        e.client_time = now_ms() - days * DAY_MS + e.seq as i64;
    }
    evs
}

/// Every insights answer the dashboard and the CLI show, as JSON, for comparison.
fn snapshot(a: &Client) -> Vec<serde_json::Value> {
    let deck = |extra: FilterParams| {
        serde_json::to_value(
            a.deck_report(&FilterParams {
                deck: Some("d".into()),
                ..extra
            })
            .unwrap(),
        )
        .unwrap()
    };
    let old_from =
        edetail_server::util::iso_of_day(edetail_server::util::day_of_ms(now_ms() - 50 * DAY_MS));
    let old_to =
        edetail_server::util::iso_of_day(edetail_server::util::day_of_ms(now_ms() - 35 * DAY_MS));
    vec![
        serde_json::to_value(a.overview(&FilterParams::default()).unwrap()).unwrap(),
        deck(FilterParams::default()),
        deck(FilterParams {
            specialty: Some("Cardiology".into()),
            ..Default::default()
        }),
        deck(FilterParams {
            from: Some(old_from),
            to: Some(old_to),
            ..Default::default()
        }),
        deck(FilterParams {
            territory: Some("T1".into()),
            channel: Some("mr_led".into()),
            ..Default::default()
        }),
    ]
}

fn wait_for_events(a: &Client, want: i64) {
    let t0 = Instant::now();
    loop {
        let n = a.stats().unwrap().events;
        if n == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "retention did not leave {want} raw events within 60 s (now {n})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn retention_deletes_old_raw_events_and_keeps_every_insight() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let schema = (b == Backend::Postgres).then(unique_schema);
        let cfg = config(b, dir.path(), schema.as_deref());
        let s = RunningServer::start(cfg.clone()).unwrap();
        let admin = s.started.new_admin_token.clone().unwrap();
        let a = Client::new(s.url(), Some(&admin));
        let (ar, _) =
            edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
        let hash = a.publish(&ar, &[]).unwrap().bundle_hash;
        a.import_hcps(
            "id,specialty,institution,region,segment\nHCP-1,Cardiology,General Hospital,Seoul,A\n",
        )
        .unwrap();
        let dev = a
            .create_token(&TokenRequest {
                kind: Some("device".into()),
                rep: Some("rep-1".into()),
                territory: Some("T1".into()),
                label: None,
            })
            .unwrap()
            .token;
        // Ended sessions 40 and 45 days old (deleted), a recent one (kept), an unended
        // one 40 days old (kept: its end may still come) and an unended one 70 days
        // old (deleted: older than twice the retention).
        let old1 = aged(session("d", &hash, &["s1", "s2"], 3000), 40);
        let old2 = aged(session("d", &hash, &["s1"], 5000), 45);
        let recent = session("d", &hash, &["s1", "s2", "s3"], 4000);
        let mut open40 = aged(session("d", &hash, &["s1", "s2"], 2000), 40);
        let open40_end = open40.pop().unwrap();
        let mut open70 = aged(session("d", &hash, &["s1"], 2000), 70);
        open70.pop();
        let all: Vec<Event> = [&old1, &old2, &recent, &open40, &open70]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        a.send_batch(&dev, &batch(&all), false).unwrap();
        assert_eq!(a.stats().unwrap().events, all.len() as i64);
        let before = snapshot(&a);
        let report = a
            .deck_report(&FilterParams {
                deck: Some("d".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(report.sessions, 5);
        assert_eq!(report.ended_sessions, 3);
        s.stop();

        // Restart with 30 days of retention: it runs at start.
        let s = RunningServer::start(Config {
            retention_days: Some(30),
            ..cfg.clone()
        })
        .unwrap();
        let a = Client::new(s.url(), Some(&admin));
        wait_for_events(&a, (recent.len() + open40.len()) as i64);
        assert_eq!(
            before,
            snapshot(&a),
            "insights changed when raw events were deleted"
        );
        // The clickstream export reads raw events: only the retained slide views.
        let csv = a
            .clickstream(&FilterParams {
                deck: Some("d".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(csv.lines().count() - 1, 3 + 2, "{csv}");

        // The 40-day-old session ends late: its session rollups are computed from its
        // retained events (slides reached, the positive path).
        let end = aged(vec![open40_end], 40);
        let r = a.send_batch(&dev, &batch(&end), false).unwrap();
        assert_eq!(
            r.results[0].status,
            edetail_format::ingest::EventStatus::Accepted
        );
        let after = a
            .deck_report(&FilterParams {
                deck: Some("d".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(after.ended_sessions, report.ended_sessions + 1);
        let reached = |r: &edetail_server::insights::DeckReport, id: &str| {
            r.slides
                .iter()
                .find(|x| x.slide_id == id)
                .map_or(0, |x| x.sessions_reached)
        };
        for id in ["s1", "s2"] {
            assert_eq!(reached(&after, id), reached(&report, id) + 1, "{id}");
        }
        assert_eq!(reached(&after, "s3"), reached(&report, "s3"));
        let path = |r: &edetail_server::insights::DeckReport| {
            r.paths
                .iter()
                .find(|p| p.path == ["s1", "s2"])
                .map_or(0, |p| p.positive_sessions)
        };
        assert_eq!(path(&after), path(&report) + 1);
        s.stop();
        if let Some(sc) = &schema {
            drop_schema(sc);
        }
    });
}

#[test]
fn audit_log_records_admin_actions_without_secrets_or_physicians() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let a = s.admin_client();
        let admin_id = s.admin.split('.').nth(1).unwrap().to_string();
        let hash = s.publish_sample("d");
        let refused = a
            .raw(
                "POST",
                "/api/v1/bundles",
                None,
                Some(("application/octet-stream", None, b"not a bundle")),
            )
            .unwrap();
        assert!(refused.status >= 400, "{}", refused.body);
        let tok = a
            .create_token(&TokenRequest {
                kind: Some("device".into()),
                rep: Some("rep-9".into()),
                territory: Some("T9".into()),
                label: None,
            })
            .unwrap();
        a.revoke_token(&tok.id).unwrap();
        a.import_hcps("id,specialty,institution,region,segment\nHCP-SECRET-77,GP,Clinic,Busan,B\n")
            .unwrap();
        a.share(&ShareRequest {
            deck: "d".into(),
            hcp: "HCP-SHARE-88".into(),
            expires: Some("1d".into()),
        })
        .unwrap();
        a.retire("d", "1.0.0").unwrap();

        let log = a.audit(100).unwrap();
        let got: Vec<(&str, &str, &str)> = log
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str(), e.outcome.as_str()))
            .collect();
        let token_target = format!("{} device", tok.id);
        let publish_target = format!("d 1.0.0 {hash}");
        assert_eq!(
            got,
            vec![
                ("retire", "d 1.0.0", "ok"),
                ("share_create", log[1].target.as_str(), "ok"),
                ("hcp_import", "1 rows", "ok"),
                ("token_revoke", tok.id.as_str(), "ok"),
                ("token_create", token_target.as_str(), "ok"),
                ("publish", "", log[5].outcome.as_str()),
                ("publish", publish_target.as_str(), "ok"),
            ]
        );
        assert!(log[1].target.starts_with("d expires "), "{:?}", log[1]);
        assert!(log[5].outcome.starts_with("refused 4"), "{:?}", log[5]);
        assert!(log.iter().all(|e| e.actor == admin_id), "{log:?}");
        assert!(
            log.windows(2)
                .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at)
        );
        // Neither secrets nor physicians in clear.
        let raw = a.raw("GET", "/api/v1/audit", None, None).unwrap();
        assert_eq!(raw.status, 200);
        let admin_secret = s.admin.rsplit('.').next().unwrap();
        let device_secret = tok.token.rsplit('.').next().unwrap();
        for bad in [admin_secret, device_secret, "HCP-SECRET-77", "HCP-SHARE-88"] {
            assert!(!raw.body.contains(bad), "audit log leaks `{bad}`");
        }

        // Only admins read it; a device token's admin attempt leaves no row.
        let dev = s.device_token("rep-1", "T1");
        let r = a.raw("GET", "/api/v1/audit", Some(&dev), None).unwrap();
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(!r.body.contains("token_create"));
        let r = s.anon().raw("GET", "/api/v1/audit", None, None).unwrap();
        assert_eq!(r.status, 401);
        let n = a.audit(100).unwrap().len();
        let body = br#"{"kind":"admin"}"#;
        let r = a
            .raw(
                "POST",
                "/api/v1/tokens",
                Some(&dev),
                Some(("application/json", None, body)),
            )
            .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(a.audit(100).unwrap().len(), n);
    });
}
