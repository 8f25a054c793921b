//! HTTP integration tests for every endpoint, on SQLite and PostgreSQL.

mod common;

use common::*;
use edetail_format::event::{Channel, EventKind};
use edetail_format::ingest::{BatchResponse, ErrorBody, EventStatus};
use edetail_server::client::{Client, ClientError, gzip_bytes};

fn status_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u16 {
    match r {
        Err(ClientError::Status { status, .. }) => status,
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

fn post_events(
    c: &Client,
    token: Option<&str>,
    body: &[u8],
    ct: &str,
    enc: Option<&str>,
) -> edetail_server::client::RawResponse {
    c.raw("POST", "/api/v1/events", token, Some((ct, enc, body)))
        .unwrap()
}

fn error_code(r: &edetail_server::client::RawResponse) -> String {
    serde_json::from_str::<ErrorBody>(&r.body)
        .unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {}", r.body))
        .error
}

#[test]
fn publish_catalog_and_bundles() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let admin = s.admin_client();
        let (ar, bundle) = edetail_server::bundles::sample_bundle(
            "launch",
            "1.0.0",
            "2020-01-01",
            "2099-12-31",
            4,
        );
        let r = admin.publish(&ar, &[]).unwrap();
        assert_eq!(r.outcome, edetail_server::storage::PublishOutcome::Created);
        // Same bundle again: idempotent.
        let r2 = admin.publish(&ar, &[]).unwrap();
        assert_eq!(
            r2.outcome,
            edetail_server::storage::PublishOutcome::AlreadyPublished
        );
        // Different content under the same version: refused (versions are immutable).
        let (other, _) = edetail_server::bundles::sample_bundle(
            "launch",
            "1.0.0",
            "2020-01-01",
            "2099-12-31",
            5,
        );
        assert_eq!(status_of(admin.publish(&other, &[])), 409);
        // Expired approval, preview, tampered, not an archive: 422 with a reason.
        let (expired, _) =
            edetail_server::bundles::sample_bundle("old", "1.0.0", "2020-01-01", "2021-01-01", 3);
        match admin.publish(&expired, &[]) {
            Err(ClientError::Status {
                status: 422,
                message,
                ..
            }) => assert!(message.contains("expired"), "{message}"),
            other => panic!("{other:?}"),
        }
        let mut pb = bundle.clone();
        pb.deck.id = "prev".into();
        pb.preview = true;
        let pj = pb.to_json();
        let ph = edetail_format::sha256_hex(&pj);
        // A complete preview bundle (its assets too): refused for being a preview.
        let files = edetail_format::archive::archive_files(ar.as_slice(), u64::MAX).unwrap();
        let asset = &bundle.assets[0].path;
        let preview_ar = edetail_server::bundles::pack_files(&[
            ("bundle.json", &pj),
            ("bundle.sha256", ph.as_bytes()),
            (asset, &files[asset]),
        ]);
        match admin.publish(&preview_ar, &[]) {
            Err(ClientError::Status {
                status: 422,
                message,
                ..
            }) => assert!(message.contains("preview"), "{message}"),
            other => panic!("{other:?}"),
        }
        let tampered = edetail_server::bundles::pack_files(&[
            ("bundle.json", &pj),
            ("bundle.sha256", "00".repeat(32).as_bytes()),
        ]);
        match admin.publish(&tampered, &[]) {
            Err(ClientError::Status {
                status: 422,
                message,
                ..
            }) => assert!(message.contains("hash mismatch"), "{message}"),
            other => panic!("{other:?}"),
        }
        // Asset listed but altered.
        let json = bundle.to_json();
        let h = edetail_format::sha256_hex(&json);
        let bad_asset = edetail_server::bundles::pack_files(&[
            ("bundle.json", &json),
            ("bundle.sha256", h.as_bytes()),
            (&bundle.assets[0].path, b"evil"),
        ]);
        assert_eq!(status_of(admin.publish(&bad_asset, &[])), 422);
        assert_eq!(
            status_of(admin.publish(b"not a tar archive at all", &[])),
            422
        );
        // Auth: none -> 401, device -> 403.
        assert_eq!(status_of(s.anon().publish(&ar, &[])), 401);
        let dev = s.device_token("rep-1", "Seoul");
        assert_eq!(
            status_of(Client::new(&s.url, Some(&dev)).publish(&ar, &[])),
            403
        );

        // Territory-scoped version.
        let (busan, _) = edetail_server::bundles::sample_bundle(
            "busan-only",
            "1.0.0",
            "2020-01-01",
            "2099-12-31",
            3,
        );
        admin.publish(&busan, &["Busan".into()]).unwrap();
        let cat = s.anon().catalog(Some(&dev)).unwrap();
        let ids: Vec<&str> = cat.iter().map(|e| e.deck_id.as_str()).collect();
        assert_eq!(ids, vec!["launch"], "Seoul device sees only unscoped decks");
        let busan_dev = s.device_token("rep-2", "Busan");
        assert_eq!(s.anon().catalog(Some(&busan_dev)).unwrap().len(), 2);
        let e = &cat[0];
        assert_eq!(e.bundle_hash, r.bundle_hash);
        assert_eq!(e.url, format!("/bundles/{}/bundle.json", r.bundle_hash));
        assert_eq!(e.valid_until, "2099-12-31");
        assert_eq!(status_of(s.anon().catalog(None)), 401);

        // Content-addressed bundle and asset with ETags and immutable caching.
        let c = s.anon();
        let j = c.raw("GET", &e.url, None, None).unwrap();
        assert_eq!(j.status, 200);
        assert_eq!(edetail_format::sha256_hex(j.body.as_bytes()), r.bundle_hash);
        assert_eq!(
            j.header("etag"),
            Some(format!("\"{}\"", r.bundle_hash).as_str())
        );
        assert!(j.header("cache-control").unwrap().contains("immutable"));
        assert!(j.header("content-security-policy").is_some());
        assert_eq!(j.header("x-content-type-options"), Some("nosniff"));
        let asset = &bundle.assets[0];
        let a = c
            .raw(
                "GET",
                &format!("/bundles/{}/{}", r.bundle_hash, asset.path),
                None,
                None,
            )
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("image/svg+xml"));
        assert_eq!(edetail_format::sha256_hex(a.body.as_bytes()), asset.sha256);
        assert_eq!(
            c.raw(
                "GET",
                &format!("/bundles/{}/assets/{}.png", r.bundle_hash, "ab".repeat(32)),
                None,
                None
            )
            .unwrap()
            .status,
            404
        );
        assert_eq!(
            c.raw(
                "GET",
                &format!("/bundles/{}/bundle.json", "cd".repeat(32)),
                None,
                None
            )
            .unwrap()
            .status,
            404
        );
        assert_eq!(
            c.raw("GET", "/bundles/not-a-hash/bundle.json", None, None)
                .unwrap()
                .status,
            404
        );

        // Retire: gone from catalogs, bundle bytes stay addressable.
        admin.retire("launch", "1.0.0").unwrap();
        assert!(s.anon().catalog(Some(&dev)).unwrap().is_empty());
        assert_eq!(status_of(admin.retire("launch", "9.9.9")), 404);
        assert_eq!(c.raw("GET", &e.url, None, None).unwrap().status, 200);
        let versions = admin.versions().unwrap();
        assert!(
            versions
                .iter()
                .any(|v| v.deck_id == "launch" && v.retired_at.is_some())
        );
    });
}

#[test]
fn etag_revalidation_returns_304() {
    // ureq does not expose If-None-Match handling specially; send the header raw.
    let s = TestServer::start(Backend::Sqlite);
    let hash = s.publish_sample("d");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(&format!("{}/bundles/{hash}/bundle.json", s.url))
        .header("If-None-Match", &format!("\"{hash}\""))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
}

#[test]
fn tokens_create_list_revoke() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let admin = s.admin_client();
        let hash = s.publish_sample("d");
        let t = admin
            .create_token(&edetail_server::app::TokenRequest {
                kind: Some("device".into()),
                rep: Some("rep-9".into()),
                territory: Some("Seoul".into()),
                label: None,
            })
            .unwrap();
        assert!(t.token.starts_with("edt."));
        let listed = admin.list_tokens().unwrap();
        assert!(
            listed
                .iter()
                .any(|x| x.id == t.id && x.rep.as_deref() == Some("rep-9"))
        );
        // The secret is never listed.
        let raw = admin.raw("GET", "/api/v1/tokens", None, None).unwrap();
        let secret = t.token.rsplit('.').next().unwrap();
        assert!(!raw.body.contains(secret));
        // Device token works for ingest.
        let ev = session("d", &hash, &["s1"], 3000);
        let ok = s.anon().send_batch(&t.token, &batch(&ev), false).unwrap();
        assert!(ok.results.iter().all(|r| r.status == EventStatus::Accepted));
        // Revoke: 401 afterwards.
        admin.revoke_token(&t.id).unwrap();
        let r = post_events(
            &s.anon(),
            Some(&t.token),
            &batch(&session("d", &hash, &["s1"], 3000)),
            "application/json",
            None,
        );
        assert_eq!(r.status, 401);
        assert!(r.body.contains("revoked"), "{}", r.body);
        assert_eq!(status_of(admin.revoke_token("nope")), 404);
        // A device token needs a rep; unknown kinds are refused.
        assert_eq!(
            status_of(admin.create_token(&edetail_server::app::TokenRequest {
                kind: Some("device".into()),
                ..Default::default()
            })),
            400
        );
        assert_eq!(
            status_of(admin.create_token(&edetail_server::app::TokenRequest {
                kind: Some("root".into()),
                rep: Some("x".into()),
                ..Default::default()
            })),
            400
        );
        let bad = admin
            .raw(
                "POST",
                "/api/v1/tokens",
                None,
                Some(("application/json", None, b"{not json")),
            )
            .unwrap();
        assert_eq!(bad.status, 400);
        // Admin-only endpoints refuse device tokens.
        let dev = s.device_token("rep-1", "Seoul");
        assert_eq!(
            status_of(Client::new(&s.url, Some(&dev)).list_tokens()),
            403
        );
        // A second admin token works.
        let a2 = admin
            .create_token(&edetail_server::app::TokenRequest {
                kind: Some("admin".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(Client::new(&s.url, Some(&a2.token)).list_tokens().is_ok());
        // Wrong secret for a real id, garbage, and missing tokens are 401.
        let forged = format!("edt.{}.{}", t.id, "A".repeat(43));
        assert_eq!(
            status_of(Client::new(&s.url, Some(&forged)).catalog(None)),
            401
        );
        assert_eq!(
            status_of(Client::new(&s.url, Some("garbage")).catalog(None)),
            401
        );
    });
}

#[test]
fn ingest_contract() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let hash = s.publish_sample("d");
        let dev = s.device_token("rep-1", "Seoul");
        let c = s.anon();
        let events = session("d", &hash, &["s1", "s2"], 4000);
        let body = batch(&events);
        let r = c.send_batch(&dev, &body, false).unwrap();
        assert_eq!(r.results.len(), events.len());
        for (res, ev) in r.results.iter().zip(&events) {
            assert_eq!(res.id, ev.id);
            assert_eq!(res.status, EventStatus::Accepted, "{res:?}");
        }
        assert!(r.received_at > 0);
        // Resend: every event is a duplicate.
        let r = c.send_batch(&dev, &body, true).unwrap();
        assert!(
            r.results.iter().all(|x| x.status == EventStatus::Duplicate),
            "{:?}",
            r.results
        );
        // Within-batch duplicate and a rejected event, in request order.
        let good = view("d", &hash, &new_id(), 0, "s1", 1, 2500);
        let mut bad = view("d", &hash, &new_id(), 0, "s1", 1, 2500);
        bad.kind = EventKind::Reaction {
            value: 1,
            key_message: None,
        };
        let mut v = serde_json::to_value(&bad).unwrap();
        v["value"] = serde_json::json!(5);
        let body = serde_json::to_vec(
            &serde_json::json!({"schema_version":1,"device_id":"ipad-1","sent_at":now_ms(),
            "events":[good, good, v, {"id":"not-a-uuid"}, {"schema_version": 2, "id": new_id()}]}),
        )
        .unwrap();
        let r: BatchResponse = c.send_batch(&dev, &body, false).unwrap();
        let st: Vec<EventStatus> = r.results.iter().map(|x| x.status).collect();
        assert_eq!(
            st,
            vec![
                EventStatus::Accepted,
                EventStatus::Duplicate,
                EventStatus::Rejected,
                EventStatus::Rejected,
                EventStatus::Rejected
            ]
        );
        assert!(
            r.results[2].reason.as_deref().unwrap().contains("reaction"),
            "{:?}",
            r.results[2]
        );
        assert!(
            r.results[4]
                .reason
                .as_deref()
                .unwrap()
                .contains("schema version 2"),
            "{:?}",
            r.results[4]
        );

        // Whole-batch errors.
        let tok = Some(dev.as_str());
        let r = post_events(&c, tok, b"{not json", "application/json", None);
        assert_eq!((r.status, error_code(&r).as_str()), (400, "malformed"));
        let r = post_events(&c, tok, br#"{"events":[]}"#, "application/json", None);
        assert_eq!(r.status, 400);
        let r = post_events(
            &c,
            tok,
            br#"{"schema_version":9,"device_id":"x","sent_at":1,"events":[]}"#,
            "application/json",
            None,
        );
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (422, "unsupported_schema")
        );
        let many: Vec<serde_json::Value> = (0..501).map(|_| serde_json::json!({})).collect();
        let r = post_events(
            &c,
            tok,
            &serde_json::to_vec(
                &serde_json::json!({"schema_version":1,"device_id":"x","sent_at":1,"events":many}),
            )
            .unwrap(),
            "application/json",
            None,
        );
        assert_eq!((r.status, error_code(&r).as_str()), (413, "too_large"));
        let huge = vec![b' '; 600 * 1024];
        let r = post_events(&c, tok, &huge, "application/json", None);
        assert_eq!(r.status, 413);
        // A gzip bomb: small compressed, too large decompressed.
        let bomb = gzip_bytes(&vec![b' '; 2 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        let r = post_events(&c, tok, &bomb, "application/json", Some("gzip"));
        assert_eq!((r.status, error_code(&r).as_str()), (413, "too_large"));
        let r = post_events(&c, tok, b"not gzip", "application/json", Some("gzip"));
        assert_eq!(r.status, 400);
        let r = post_events(&c, tok, &batch(&events), "text/plain", None);
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (415, "unsupported_media_type")
        );
        let r = post_events(&c, tok, &batch(&events), "application/json", Some("br"));
        assert_eq!(r.status, 415);
        // No token / unknown token / admin token.
        let r = post_events(&c, None, &batch(&events), "application/json", None);
        assert_eq!((r.status, error_code(&r).as_str()), (401, "unauthorized"));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = post_events(
            &c,
            Some("edt.0000.xxxx"),
            &batch(&events),
            "application/json",
            None,
        );
        assert_eq!(r.status, 401);
        let r = post_events(
            &c,
            Some(&s.admin),
            &batch(&events),
            "application/json",
            None,
        );
        assert_eq!(r.status, 403);

        // Stored exactly once; hcp ids never stored in clear; clock fields kept.
        let stats = s.admin_client().stats().unwrap();
        assert_eq!(stats.events, events.len() as i64 + 1);
        let csv = s.admin_client().clickstream(&Default::default()).unwrap();
        assert!(
            !csv.contains("HCP-1"),
            "physician id stored in clear:\n{csv}"
        );
    });
}

#[test]
fn clock_correction_uses_sent_at() {
    let s = TestServer::start(Backend::Sqlite);
    let hash = s.publish_sample("d");
    let dev = s.device_token("rep-1", "Seoul");
    // The device clock is 10 days behind: its events land on the server's day.
    let mut ev = session("d", &hash, &["s1"], 3000);
    let skew = 10 * 86_400_000i64;
    for e in &mut ev {
        e.client_time -= skew;
    }
    let body = serde_json::to_vec(&serde_json::json!({"schema_version":1,"device_id":"ipad-1","sent_at":now_ms() - skew,"events":ev})).unwrap();
    s.anon().send_batch(&dev, &body, false).unwrap();
    let today = edetail_server::util::today_iso();
    let p = edetail_server::insights::FilterParams {
        deck: Some("d".into()),
        from: Some(today.clone()),
        to: Some(today),
        ..Default::default()
    };
    let r = s.admin_client().deck_report(&p).unwrap();
    assert_eq!(r.views, 1, "corrected time puts the view on today's date");
}

#[test]
fn share_links() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let hash = s.publish_sample("d");
        let other_hash = s.publish_sample("other");
        let admin = s.admin_client();
        let link = admin
            .share(&edetail_server::app::ShareRequest {
                deck: "d".into(),
                hcp: "HCP-7".into(),
                expires: Some("30d".into()),
            })
            .unwrap();
        assert!(
            link.url.starts_with(&format!("{}/app/?share=shr.", s.url)),
            "{}",
            link.url
        );
        assert!(!link.token.contains("HCP-7"));
        // Resolve and catalog: only its deck.
        let res = s
            .anon()
            .raw("GET", "/api/v1/share/resolve", Some(&link.token), None)
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(v["deck_id"], "d");
        assert_eq!(v["entry"]["bundle_hash"], hash.as_str());
        let q = s
            .anon()
            .raw(
                "GET",
                &format!("/api/v1/share/resolve?token={}", link.token),
                None,
                None,
            )
            .unwrap();
        assert_eq!(q.status, 200);
        let cat = s.anon().catalog(Some(&link.token)).unwrap();
        assert_eq!(cat.len(), 1);
        assert_eq!(cat[0].deck_id, "d");
        // Events for its deck are accepted (as self-serve); another deck's are rejected.
        let mine = session("d", &hash, &["s1", "s2"], 3000);
        let r = s
            .anon()
            .send_batch(&link.token, &batch(&mine), false)
            .unwrap();
        assert!(
            r.results.iter().all(|x| x.status == EventStatus::Accepted),
            "{:?}",
            r.results
        );
        let theirs = session("other", &other_hash, &["s1"], 3000);
        let r = s
            .anon()
            .send_batch(&link.token, &batch(&theirs), false)
            .unwrap();
        assert!(r.results.iter().all(|x| x.status == EventStatus::Rejected
            && x.reason.as_deref().unwrap().contains("share link")));
        let rep = admin
            .deck_report(&edetail_server::insights::FilterParams {
                deck: Some("d".into()),
                ..Default::default()
            })
            .unwrap();
        let ss = rep
            .channels
            .iter()
            .find(|c| c.channel == "self_serve")
            .unwrap();
        assert_eq!((ss.sessions, ss.reach), (1, 1));
        assert_eq!(
            rep.channels
                .iter()
                .find(|c| c.channel == "mr_led")
                .unwrap()
                .sessions,
            0
        );
        // Expired and tampered links: 401.
        let short = admin
            .share(&edetail_server::app::ShareRequest {
                deck: "d".into(),
                hcp: "HCP-8".into(),
                expires: Some("1s".into()),
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let r = post_events(
            &s.anon(),
            Some(&short.token),
            &batch(&session("d", &hash, &["s1"], 3000)),
            "application/json",
            None,
        );
        assert_eq!(r.status, 401);
        assert!(r.body.contains("expired"), "{}", r.body);
        assert_eq!(status_of(s.anon().catalog(Some(&short.token))), 401);
        let mut forged = link.token.clone();
        forged.pop();
        forged.push(if link.token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(status_of(s.anon().catalog(Some(&forged))), 401);
        // Bad requests: unknown deck, bad expiry, device token cannot create links.
        assert_eq!(
            status_of(admin.share(&edetail_server::app::ShareRequest {
                deck: "nope".into(),
                hcp: "h".into(),
                expires: None
            })),
            404
        );
        assert_eq!(
            status_of(admin.share(&edetail_server::app::ShareRequest {
                deck: "d".into(),
                hcp: "h".into(),
                expires: Some("soon".into())
            })),
            400
        );
        let dev = s.device_token("r", "t");
        assert_eq!(
            status_of(
                Client::new(&s.url, Some(&dev)).share(&edetail_server::app::ShareRequest {
                    deck: "d".into(),
                    hcp: "h".into(),
                    expires: None
                })
            ),
            403
        );
        // Device token on the resolve endpoint is not a share link.
        assert_eq!(
            s.anon()
                .raw("GET", "/api/v1/share/resolve", Some(&dev), None)
                .unwrap()
                .status,
            400
        );
        assert_eq!(
            s.anon()
                .raw("GET", "/api/v1/share/resolve", None, None)
                .unwrap()
                .status,
            401
        );
    });
}

#[test]
fn insights_from_rollups_with_filters() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let hash = s.publish_sample("d");
        let admin = s.admin_client();
        admin
            .import_hcps("id,specialty,institution,region,segment\nHCP-1,Cardiology,General Hospital,Seoul,A\nHCP-2,GP,Clinic,Busan,B\n")
            .unwrap();
        let dev = s.device_token("rep-1", "Seoul");
        // Session 1 (HCP-1): s1 (2000 ms), s2 (4000), drill-down to detail-1, quiz answer b (correct), question.
        let sid = new_id();
        let mut ev = vec![event(
            "d",
            &hash,
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
        ev.push(view("d", &hash, &sid, 1, "s1", 1, 2000));
        ev.push(event(
            "d",
            &hash,
            &sid,
            2,
            Some("s2"),
            Some("HCP-1"),
            EventKind::LinkFollow {
                component_id: "s2-more".into(),
                target: "detail-1".into(),
                drilldown: true,
            },
        ));
        ev.push(event(
            "d",
            &hash,
            &sid,
            3,
            Some("s2"),
            Some("HCP-1"),
            EventKind::PopupOpen {
                component_id: "s2-pop".into(),
            },
        ));
        ev.push(event(
            "d",
            &hash,
            &sid,
            4,
            Some("s2"),
            Some("HCP-1"),
            EventKind::Answer {
                question_id: "q1".into(),
                purpose: "quiz".into(),
                question_kind: "single".into(),
                options_shown: vec!["a".into(), "b".into()],
                selected: vec!["b".into()],
                rating: None,
                text: None,
                correct: Some(true),
            },
        ));
        ev.push(view("d", &hash, &sid, 5, "s2", 2, 4000));
        ev.push(view("d", &hash, &sid, 6, "detail-1", 3, 6000));
        ev.push(event(
            "d",
            &hash,
            &sid,
            7,
            Some("s2"),
            Some("HCP-1"),
            EventKind::Reaction {
                value: 1,
                key_message: Some("Key message 2".into()),
            },
        ));
        ev.push(event(
            "d",
            &hash,
            &sid,
            8,
            None,
            Some("HCP-1"),
            EventKind::Question {
                text: "  What about RENAL dosing? ".into(),
            },
        ));
        ev.push(event(
            "d",
            &hash,
            &sid,
            9,
            Some("s2"),
            Some("HCP-1"),
            EventKind::IsiOpen {},
        ));
        ev.push(event(
            "d",
            &hash,
            &sid,
            10,
            None,
            Some("HCP-1"),
            EventKind::SessionEnd {
                reason: "ended".into(),
                duration_ms: 12000,
                slides_viewed: 3,
            },
        ));
        // Session 2 (HCP-2): s1 only (8000 ms), negative reaction, same question.
        let sid2 = new_id();
        let mut ev2 = vec![event(
            "d",
            &hash,
            &sid2,
            0,
            None,
            Some("HCP-2"),
            EventKind::SessionStart {
                mode: "mr_led".into(),
                sequence: None,
                user_agent: None,
                viewport: None,
            },
        )];
        let mut v = view("d", &hash, &sid2, 1, "s1", 1, 8000);
        v.hcp_id = Some("HCP-2".into());
        ev2.push(v);
        ev2.push(event(
            "d",
            &hash,
            &sid2,
            2,
            Some("s1"),
            Some("HCP-2"),
            EventKind::Reaction {
                value: -1,
                key_message: Some("Key message 1".into()),
            },
        ));
        ev2.push(event(
            "d",
            &hash,
            &sid2,
            3,
            None,
            Some("HCP-2"),
            EventKind::Question {
                text: "what about renal dosing?".into(),
            },
        ));
        ev2.push(event(
            "d",
            &hash,
            &sid2,
            4,
            None,
            Some("HCP-2"),
            EventKind::SessionEnd {
                reason: "ended".into(),
                duration_ms: 8000,
                slides_viewed: 1,
            },
        ));
        // A preview event is stored but not counted.
        let mut pv = view("d", &hash, &sid2, 5, "s3", 2, 5000);
        pv.preview = true;
        ev2.push(pv);
        // Send in two batches, the second one twice (retries must not double count).
        s.anon().send_batch(&dev, &batch(&ev), false).unwrap();
        s.anon().send_batch(&dev, &batch(&ev2), true).unwrap();
        s.anon().send_batch(&dev, &batch(&ev2), false).unwrap();

        let p = edetail_server::insights::FilterParams {
            deck: Some("d".into()),
            ..Default::default()
        };
        let r = admin.deck_report(&p).unwrap();
        assert_eq!(
            (r.sessions, r.ended_sessions, r.views, r.reach),
            (2, 2, 4, 2)
        );
        let s1 = r.slides.iter().find(|x| x.slide_id == "s1").unwrap();
        assert_eq!(
            (s1.views, s1.dwell_mean_ms, s1.sessions_reached, s1.flow_pos),
            (2, Some(5000), 2, Some(1))
        );
        assert_eq!(s1.reached_pct, Some(100.0));
        // Histogram median: one view in [2,3) s, one in [8,13) s -> half = 1 falls at the end of [2,3) s.
        assert_eq!(s1.dwell_median_ms, Some(3000));
        let s2 = r.slides.iter().find(|x| x.slide_id == "s2").unwrap();
        assert_eq!(
            (s2.views, s2.sessions_reached, s2.reached_pct),
            (1, 1, Some(50.0))
        );
        let s3 = r.slides.iter().find(|x| x.slide_id == "s3").unwrap();
        assert_eq!(s3.views, 0, "preview events are not counted");
        assert!(
            r.slides
                .iter()
                .find(|x| x.slide_id == "detail-1")
                .unwrap()
                .detail
        );
        assert_eq!(r.links.len(), 1);
        assert_eq!(
            (
                r.links[0].component_id.as_str(),
                r.links[0].target.as_str(),
                r.links[0].drilldown,
                r.links[0].follows
            ),
            ("s2-more", "detail-1", true, 1)
        );
        assert_eq!(r.links[0].rate, Some(1.0));
        assert!(
            r.interactions
                .iter()
                .any(|i| i.kind == "popup" && i.detail == "s2-pop" && i.count == 1)
        );
        assert!(
            r.interactions
                .iter()
                .any(|i| i.kind == "isi" && i.key == "s2" && i.count == 1)
        );
        let q = &r.questions[0];
        assert_eq!(
            (
                q.question_id.as_str(),
                q.prompt.as_str(),
                q.answers,
                q.correct
            ),
            ("q1", "Which dose?", 1, 1)
        );
        assert_eq!(
            q.options
                .iter()
                .map(|o| (o.label.as_str(), o.count))
                .collect::<Vec<_>>(),
            vec![("10 mg", 1)]
        );
        let km1 = r
            .reactions
            .iter()
            .find(|x| x.key_message == "Key message 1")
            .unwrap();
        assert_eq!((km1.negative, km1.neutral, km1.positive), (1, 0, 0));
        assert_eq!(r.hcp_questions.len(), 1);
        assert_eq!(
            (r.hcp_questions[0].text.as_str(), r.hcp_questions[0].count),
            ("what about renal dosing?", 2)
        );
        assert_eq!(r.paths.len(), 1, "{:?}", r.paths);
        assert_eq!(r.paths[0].path, vec!["s1", "s2", "detail-1"]);
        assert_eq!(r.trend.iter().map(|t| t.views).sum::<i64>(), 4);

        // Filters: specialty (physician dimension), territory, channel, dates.
        let f = |p: edetail_server::insights::FilterParams| admin.deck_report(&p).unwrap();
        let card = f(edetail_server::insights::FilterParams {
            specialty: Some("Cardiology".into()),
            ..p.clone()
        });
        assert_eq!((card.sessions, card.views, card.reach), (1, 3, 1));
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                region: Some("Busan".into()),
                ..p.clone()
            })
            .views,
            1
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                institution: Some("Clinic".into()),
                ..p.clone()
            })
            .views,
            1
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                segment: Some("A".into()),
                ..p.clone()
            })
            .views,
            3
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                territory: Some("Seoul".into()),
                ..p.clone()
            })
            .views,
            4
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                territory: Some("Busan".into()),
                ..p.clone()
            })
            .views,
            0
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                channel: Some("self_serve".into()),
                ..p.clone()
            })
            .views,
            0
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                version: Some("1.0.0".into()),
                ..p.clone()
            })
            .views,
            4
        );
        assert_eq!(
            f(edetail_server::insights::FilterParams {
                from: Some("2000-01-01".into()),
                to: Some("2000-01-02".into()),
                ..p.clone()
            })
            .views,
            0
        );
        assert_eq!(
            status_of(admin.deck_report(&edetail_server::insights::FilterParams {
                from: Some("yesterday".into()),
                ..p.clone()
            })),
            400
        );
        assert_eq!(status_of(admin.deck_report(&Default::default())), 400);

        // Overview.
        let o = admin.overview(&Default::default()).unwrap();
        let d = o.decks.iter().find(|x| x.deck_id == "d").unwrap();
        assert_eq!(
            (d.reach, d.sessions, d.views, d.mr_led_sessions),
            (2, 2, 4, 2)
        );

        // Clickstream: one row per slide view, pseudonymous physicians, key messages.
        let csv = admin.clickstream(&p).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "session_id,hcp,rep,deck_id,deck_version,slide_id,key_message,start,duration_ms,reaction,channel"
        );
        assert_eq!(lines.len(), 1 + 4, "{csv}");
        assert!(!csv.contains("HCP-1") && !csv.contains("HCP-2"));
        // Each view's start is its `enter_time`, read back from the stored body.
        for e in ev.iter().chain(&ev2).filter(|e| !e.preview) {
            if let EventKind::SlideView { enter_time, .. } = e.kind {
                let start = edetail_server::util::iso_datetime(enter_time);
                assert!(csv.contains(&start), "no start {start} in:\n{csv}");
            }
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains(",s1,Key message 1,") && l.ends_with(",8000,-1,mr_led")),
            "{csv}"
        );
        assert_eq!(
            admin
                .clickstream(&edetail_server::insights::FilterParams {
                    specialty: Some("GP".into()),
                    ..p.clone()
                })
                .unwrap()
                .lines()
                .count(),
            2
        );

        // Insights need an admin token.
        let dev_c = Client::new(&s.url, Some(&dev));
        assert_eq!(status_of(dev_c.deck_report(&p)), 403);
        assert_eq!(status_of(s.anon().overview(&Default::default())), 401);
        assert_eq!(status_of(dev_c.clickstream(&p)), 403);
    });
}

#[test]
fn hcp_import_errors() {
    let s = TestServer::start(Backend::Sqlite);
    let a = s.admin_client();
    match a.import_hcps("id,specialty\nh1,GP\n") {
        Err(ClientError::Status {
            status: 422,
            message,
            ..
        }) => assert!(message.contains("institution"), "{message}"),
        other => panic!("{other:?}"),
    }
    match a.import_hcps("id,specialty,institution,region,segment\nh1,GP,X\n") {
        Err(ClientError::Status {
            status: 422,
            message,
            ..
        }) => assert!(message.contains("line 2"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.import_hcps("id,specialty,institution,region,segment\nh1,GP,X,Seoul,A\n")
            .unwrap()["imported"],
        1
    );
    let r = a
        .raw(
            "POST",
            "/api/v1/hcps",
            None,
            Some(("text/csv", None, &[0xff, 0xfe, 0x00])),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(status_of(s.anon().import_hcps("id\n")), 401);
}

#[test]
fn dashboard_pages() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let hash = s.publish_sample("d");
        let dev = s.device_token("rep-1", "Seoul");
        s.anon()
            .send_batch(
                &dev,
                &batch(&session("d", &hash, &["s1", "s2"], 5000)),
                false,
            )
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        // Without a cookie: the login form.
        let mut r = agent.get(&format!("{}/insights", s.url)).call().unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.body_mut().read_to_string().unwrap().contains("Sign in"));
        // Wrong token: refused.
        let mut r = agent
            .post(&format!("{}/insights/login", s.url))
            .content_type("application/x-www-form-urlencoded")
            .send("token=edt.x.y")
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(
            r.body_mut()
                .read_to_string()
                .unwrap()
                .contains("not a valid admin token")
        );
        // Device tokens cannot sign in.
        let r = agent
            .post(&format!("{}/insights/login", s.url))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("token={dev}"))
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // Admin: cookie set, pages render with SVG, no script, CSP without inline script.
        let r = agent
            .post(&format!("{}/insights/login", s.url))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("token={}", s.admin))
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let cookie = cookie.split(';').next().unwrap().to_string();
        for path in [
            "/insights",
            "/insights/deck/d",
            "/insights/deck/d?specialty=GP&from=2020-01-01",
            "/insights/deck/d?version=1.0.0",
        ] {
            let mut r = agent
                .get(&format!("{}{path}", s.url))
                .header("Cookie", &cookie)
                .call()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            let csp = r
                .headers()
                .get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                csp.contains("default-src 'none'") && !csp.contains("script-src"),
                "{csp}"
            );
            let html = r.body_mut().read_to_string().unwrap();
            assert!(html.contains("<svg"), "{path}");
            assert!(!html.contains("<script"), "{path}");
            assert!(html.contains("/static/insights.css"));
        }
        let mut r = agent
            .get(&format!("{}/insights/deck/d?from=nope", s.url))
            .header("Cookie", &cookie)
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert!(
            r.body_mut()
                .read_to_string()
                .unwrap()
                .contains("YYYY-MM-DD")
        );
        // The cookie is a signed session, not the token: the token's secret is not in
        // it, a raw token or an altered session is refused, and revoking the token ends
        // the session.
        let secret = s.admin.rsplit('.').next().unwrap();
        assert!(!cookie.contains(secret), "{cookie}");
        let get_with = |c: &str| {
            agent
                .get(&format!("{}/insights", s.url))
                .header("Cookie", c)
                .call()
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(get_with(&format!("edetail_admin={}", s.admin)), 401);
        // One character in the middle of the signature changed (the last one carries
        // padding bits).
        let mut forged = cookie.clone().into_bytes();
        let i = forged.len() - 10;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(get_with(&forged), 401);
        let second = s
            .admin_client()
            .create_token(&edetail_server::app::TokenRequest {
                kind: Some("admin".into()),
                rep: None,
                territory: None,
                label: Some("analyst".into()),
            })
            .unwrap();
        let r = agent
            .post(&format!("{}/insights/login", s.url))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("token={}", second.token))
            .unwrap();
        let second_cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(get_with(&second_cookie), 200);
        s.admin_client().revoke_token(&second.id).unwrap();
        assert_eq!(get_with(&second_cookie), 401, "revoked token's session");
        assert_eq!(get_with(&cookie), 200);
        // The CSV export link works with the cookie.
        let r = agent
            .get(&format!("{}/api/v1/export/clickstream.csv", s.url))
            .header("Cookie", &cookie)
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = agent
            .get(&format!("{}/static/insights.css", s.url))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        // The runtime shell: fallback page when missing, files when present, CSP allowing wasm.
        let mut r = agent.get(&format!("{}/app/", s.url)).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let csp = r
            .headers()
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("'wasm-unsafe-eval'")
                && !csp.contains("'unsafe-eval'")
                && !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{csp}"
        );
        assert!(r.body_mut().read_to_string().unwrap().contains("not built"));
        let www = s.dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(
            www.join("index.html"),
            "<!doctype html><title>shell</title>",
        )
        .unwrap();
        std::fs::write(www.join("app.wasm"), b"\0asm").unwrap();
        let mut r = agent
            .get(&format!("{}/app/?share=abc", s.url))
            .call()
            .unwrap();
        assert!(r.body_mut().read_to_string().unwrap().contains("shell"));
        let r = agent
            .get(&format!("{}/app/app.wasm", s.url))
            .call()
            .unwrap();
        assert_eq!(r.headers().get("content-type").unwrap(), "application/wasm");
        // A precompressed sibling (the build writes `<file>.gz`) is sent to clients that
        // accept gzip, with Content-Encoding; others get the plain file.
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(b"\0asm").unwrap();
            e.finish().unwrap()
        };
        std::fs::write(www.join("app.wasm.gz"), &gz).unwrap();
        let raw_get = |accept: &str| {
            use std::io::{Read, Write};
            let addr = s.url.trim_start_matches("http://");
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            write!(
                c,
                "GET /app/app.wasm HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = Vec::new();
            c.read_to_end(&mut out).unwrap();
            let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
            (head, out[split + 4..].to_vec())
        };
        let (head, body) = raw_get("Accept-Encoding: br, gzip;q=0.8\r\n");
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert_eq!(body, gz);
        for accept in [
            "",
            "Accept-Encoding: gzip;q=0\r\n",
            "Accept-Encoding: br\r\n",
        ] {
            let (head, body) = raw_get(accept);
            assert!(!head.contains("content-encoding"), "{accept}: {head}");
            assert_eq!(body, b"\0asm", "{accept}");
        }
        assert_eq!(
            agent
                .get(&format!("{}/app/../Cargo.toml", s.url))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            404
        );
        assert_eq!(
            agent
                .get(&format!("{}/app/.hidden", s.url))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            404
        );
        assert_eq!(
            agent
                .get(&format!("{}/app", s.url))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            308
        );
        assert_eq!(
            agent
                .get(&format!("{}/healthz", s.url))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            200
        );
        assert_eq!(
            agent
                .get(&format!("{}/nope", s.url))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            404
        );
    });
}

#[test]
fn overload_is_refused_not_dropped() {
    each_backend(|b| {
        let s = TestServer::start_with(b, |c| c.max_concurrent_batches = 1);
        let hash = s.publish_sample("d");
        let dev = s.device_token("rep-1", "Seoul");
        let batches: Vec<Vec<edetail_format::Event>> = (0..24)
            .map(|_| {
                let mut v = Vec::new();
                for _ in 0..5 {
                    v.extend(session("d", &hash, &["s1", "s2", "s3"], 3000));
                }
                v
            })
            .collect();
        let url = s.url.clone();
        let handles: Vec<_> = batches
            .into_iter()
            .map(|evs| {
                let url = url.clone();
                let dev = dev.clone();
                std::thread::spawn(move || {
                    let r = Client::new(&url, None)
                        .raw(
                            "POST",
                            "/api/v1/events",
                            Some(&dev),
                            Some(("application/json", None, &batch(&evs))),
                        )
                        .unwrap();
                    (r, evs)
                })
            })
            .collect();
        let mut acked = 0i64;
        let mut refused_ids = Vec::new();
        for h in handles {
            let (r, evs) = h.join().unwrap();
            match r.status {
                200 => acked += evs.len() as i64,
                429 => {
                    assert!(r.retry_after.is_some(), "429 without Retry-After");
                    assert_eq!(error_code(&r), "overloaded");
                    refused_ids.extend(evs.iter().map(|e| e.id.clone()));
                }
                other => panic!("unexpected status {other}: {}", r.body),
            }
        }
        // Acknowledged events are stored; refused batches left nothing behind.
        assert_eq!(s.admin_client().stats().unwrap().events, acked);
        eprintln!(
            "overload test: {} events acknowledged, {} refused with 429",
            acked,
            refused_ids.len()
        );
    });
}

#[test]
fn config_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("edetail.toml"),
        "port = 0\nlog_level = \"warn\"\nmax_concurrent_batches = 7\n",
    )
    .unwrap();
    let args = edetail_server::ServeArgs {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let c = args.resolve().unwrap();
    assert_eq!((c.port, c.max_concurrent_batches), (0, 7));
    let s = edetail_server::RunningServer::start(c).unwrap();
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    assert_eq!(token.trim(), s.started.new_admin_token.as_deref().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "admin-token must not be readable by others"
        );
    }
    s.stop();
    // A second start on the same data dir creates no new admin token.
    let s2 = edetail_server::RunningServer::start(args.resolve().unwrap()).unwrap();
    assert!(s2.started.new_admin_token.is_none());
    assert!(
        Client::new(s2.url(), Some(token.trim()))
            .list_tokens()
            .is_ok()
    );
    let _ = Channel::MrLed;
}
