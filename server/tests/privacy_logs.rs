//! Privacy: no physician identity and no credential ever reaches the server's log.
//!
//! The real `edetail-server` process runs at the most verbose level (`trace`, JSON and
//! text) with its stderr captured; a CRM physician id goes through every door it can
//! enter by — HCP directory import (good and bad rows), a share link, ingest events
//! (accepted, duplicate and rejected), a garbage bearer token that contains it, and
//! insights/export filters — and the log must not contain it, nor any token secret.
//! The store keeps only the keyed pseudonym (checked through the clickstream export).

mod common;

use std::io::Read;

use common::*;
use edetail_server::app::{ShareRequest, TokenRequest};
use edetail_server::client::Client;
use edetail_server::insights::FilterParams;

/// The clear CRM id under test (distinctive so a substring search cannot miss it).
const CLEAR_ID: &str = "CRM-HCP-4711-Kim";

struct Proc {
    server: ServerProc,
    url: String,
    admin: String,
    log: std::path::PathBuf,
}

fn spawn(dir: &std::path::Path, schema: Option<&str>, json: bool) -> Proc {
    let log = dir.join(if json {
        "server-json.log"
    } else {
        "server.log"
    });
    let mut flags = vec!["--log-level", "trace"];
    if json {
        flags.push("--log-json");
    }
    let server = ServerProc::spawn(
        &dir.join("data"),
        schema,
        &flags,
        std::fs::File::create(&log).expect("log file").into(),
    );
    Proc {
        url: server.url.clone(),
        admin: server
            .admin
            .clone()
            .expect("fresh data dir prints an admin token"),
        server,
        log,
    }
}

/// Everything a physician id can travel through; returns the secrets that must stay
/// out of the log.
fn exercise(p: &Proc) -> Vec<String> {
    let admin = Client::new(&p.url, Some(&p.admin));
    let hash = admin
        .publish(
            &edetail_server::bundles::sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 3).0,
            &[],
        )
        .expect("publish")
        .bundle_hash;
    let device = admin
        .create_token(&TokenRequest {
            kind: Some("device".into()),
            rep: Some("rep-1".into()),
            territory: Some("t1".into()),
            label: None,
        })
        .expect("token")
        .token;
    admin
        .import_hcps(&format!(
            "id,specialty,institution,region,segment\n{CLEAR_ID},Cardiology,General Hospital,Seoul,A\n"
        ))
        .expect("import");
    // A malformed row that carries the id: refused, and the refusal is logged somewhere.
    let _ = admin.import_hcps(&format!(
        "id,specialty,institution,region,segment\n{CLEAR_ID},\"unterminated\n"
    ));
    let share = admin
        .share(&ShareRequest {
            deck: "d".into(),
            hcp: CLEAR_ID.into(),
            expires: Some("1d".into()),
        })
        .expect("share")
        .token;

    // Accepted events, then the same batch again (duplicates), then a rejected event.
    let mut events = session("d", &hash, &["s1", "s2"], 2_500);
    for e in &mut events {
        e.hcp_id = Some(CLEAR_ID.into());
    }
    let body = batch(&events);
    let anon = Client::new(&p.url, None);
    let r = anon.send_batch(&device, &body, false).expect("ingest");
    assert!(
        r.results
            .iter()
            .all(|x| x.status == edetail_format::ingest::EventStatus::Accepted),
        "{r:?}"
    );
    anon.send_batch(&device, &body, true).expect("duplicates");
    let mut bad = events[0].clone();
    bad.id = new_id();
    bad.schema_version = 99;
    let _ = anon.send_batch(&device, &batch(&[bad]), false);
    // Share-link ingest with the physician in the envelope.
    let mut shared = session("d", &hash, &["s1"], 2_500);
    for e in &mut shared {
        e.hcp_id = Some(CLEAR_ID.into());
        e.channel = edetail_format::Channel::SelfServe;
    }
    let _ = anon.send_batch(&share, &batch(&shared), false);
    // A garbage bearer token that contains the id, and filters that name it.
    let _ = anon.send_batch(&format!("edt.{CLEAR_ID}.x"), &body, false);
    let mut f = FilterParams {
        deck: Some("d".into()),
        ..FilterParams::default()
    };
    f.institution = Some(CLEAR_ID.into());
    let _ = admin.deck_report(&f);
    let csv = admin
        .clickstream(&FilterParams {
            deck: Some("d".into()),
            ..FilterParams::default()
        })
        .expect("export");
    assert!(
        !csv.contains(CLEAR_ID),
        "clear physician id stored/exported:\n{csv}"
    );
    assert!(
        csv.lines().count() > 1,
        "the export holds the session's views:\n{csv}"
    );
    let secret = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
    vec![secret(&p.admin), secret(&device), share]
}

fn check_log(p: Proc, secrets: &[String]) {
    p.server.kill();
    let mut log = String::new();
    std::fs::File::open(&p.log)
        .expect("log")
        .read_to_string(&mut log)
        .expect("read log");
    assert!(
        log.lines().count() >= 5,
        "the trace log is suspiciously short (is logging on?):\n{log}"
    );
    for (i, line) in log.lines().enumerate() {
        assert!(
            !line.contains(CLEAR_ID),
            "line {} of the server log holds the clear physician id:\n{line}",
            i + 1
        );
        for s in secrets {
            assert!(
                !line.contains(s.as_str()),
                "line {} of the server log holds a credential:\n{line}",
                i + 1
            );
        }
    }
}

fn run(backend: Backend, json: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = (backend == Backend::Postgres).then(unique_schema);
    let p = spawn(dir.path(), schema.as_deref(), json);
    let secrets = exercise(&p);
    check_log(p, &secrets);
    if let Some(s) = schema {
        drop_schema(&s);
    }
}

#[test]
fn no_clear_physician_id_or_credential_in_the_trace_log() {
    for backend in backends() {
        eprintln!("--- backend {backend:?}");
        run(backend, false);
        run(backend, true);
    }
}
