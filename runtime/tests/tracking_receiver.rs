//! The tracker against the real test receiver (`tests/receiver`) over real HTTP from a
//! real browser: cross-origin CORS with a bearer token, per-event results, injected
//! 503 + Retry-After, a refused token, and a keepalive flush.
//!
//! Needs `EDETAIL_TEST_RECEIVER=http://127.0.0.1:PORT` at build time, a receiver started
//! with `--token test-token`: `runtime/run-wasm-tests.sh` does both.
#![cfg(target_arch = "wasm32")]

use edetail_format::ingest::INGEST_PATH;
use edetail_format::{Channel, EventKind, NavVia};
use edetail_runtime::tracking::{SessionContext, Tracker, TrackerOptions};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn receiver() -> &'static str {
    // Not `env!`: the other test files must still build without a receiver.
    match option_env!("EDETAIL_TEST_RECEIVER") {
        Some(url) => url,
        None => panic!(
            "EDETAIL_TEST_RECEIVER is not set: run runtime/run-wasm-tests.sh, which starts the receiver"
        ),
    }
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .expect("window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("timeout");
    });
    JsFuture::from(p).await.expect("sleep");
}

async fn wait_for(ms: i32, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..(ms / 20) {
        if cond() {
            return true;
        }
        sleep(20).await;
    }
    cond()
}

async fn http(method: &str, path: &str) -> (u16, String) {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let url = format!("{}{path}", receiver());
    let resp = JsFuture::from(
        web_sys::window()
            .unwrap()
            .fetch_with_str_and_init(&url, &init),
    )
    .await
    .expect("receiver reachable");
    let resp: web_sys::Response = resp.dyn_into().unwrap();
    let text = JsFuture::from(resp.text().unwrap()).await.unwrap();
    (resp.status(), text.as_string().unwrap_or_default())
}

/// Events the receiver stored for `session`.
async fn stored(session: &str) -> Vec<Value> {
    let (status, body) = http("GET", "/__receiver/events").await;
    assert_eq!(status, 200);
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .filter(|e| e["session_id"] == session)
        .collect()
}

fn unique(p: &str) -> String {
    format!("{p}-{}-{}", js_sys::Date::now(), js_sys::Math::random())
}

fn start(token: &str) -> Tracker {
    let mut c = SessionContext::new("zentara-launch", "1.0.0", "ab12cd", Channel::Remote);
    c.rep_id = Some("rep-042".into());
    c.hcp_id = Some("h-9f2c".into());
    c.endpoint = format!("{}{INGEST_PATH}", receiver());
    c.auth_token = Some(token.into());
    Tracker::start_with(
        c,
        TrackerOptions {
            db_name: unique("db-recv"),
            session_key: unique("sess-recv"),
            send_at_events: 1000,
            send_after_ms: 100_000,
            retry_base_ms: 200,
            retry_max_ms: 1000,
            listen: false,
            request_persistence: false,
            pending_prefix: unique("pending-recv") + ".",
        },
    )
}

#[wasm_bindgen_test]
async fn events_reach_the_receiver_once_even_after_a_503() {
    let t = start("test-token");
    t.enter_slide("intro", "h1", NavVia::Start);
    t.emit(EventKind::Reaction {
        value: 1,
        key_message: Some("km-1".into()),
    });
    t.enter_slide("efficacy", "h2", NavVia::Swipe);
    t.settled().await;
    t.flush();
    assert!(
        wait_for(5_000, || t.status().unsynced == 0).await,
        "{:?}",
        t.status()
    );
    let got = stored(&t.session_id()).await;
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["session_start", "reaction", "slide_view"]);

    // The next upload meets one injected 503 with Retry-After: 1.
    assert_eq!(
        http("POST", "/__receiver/fail?count=1&status=503&retry_after=1")
            .await
            .0,
        200
    );
    t.emit(EventKind::IsiOpen {});
    t.end_session("ended");
    assert!(
        wait_for(1_000, || t
            .status()
            .last_error
            .is_some_and(|e| e.contains("503")))
        .await,
        "{:?}",
        t.status()
    );
    assert!(
        wait_for(5_000, || t.status().unsynced == 0).await,
        "{:?}",
        t.status()
    );
    let got = stored(&t.session_id()).await;
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5], "each event stored once, no gaps");
    assert!(t.status().last_error.is_none());
}

#[wasm_bindgen_test]
async fn a_refused_token_keeps_the_events() {
    let t = start("wrong-token");
    t.emit(EventKind::IsiOpen {});
    t.settled().await;
    t.flush();
    assert!(
        wait_for(3_000, || t
            .status()
            .last_error
            .is_some_and(|e| e.contains("401")))
        .await,
        "{:?}",
        t.status()
    );
    assert_eq!(t.status().unsynced, 2, "session_start and isi_open kept");
    assert!(stored(&t.session_id()).await.is_empty());
}

#[wasm_bindgen_test]
async fn keepalive_flush_arrives() {
    let t = start("test-token");
    t.enter_slide("intro", "h1", NavVia::Start);
    t.handle_pagehide();
    let session = t.session_id();
    let mut got = Vec::new();
    for _ in 0..100 {
        got = stored(&session).await;
        if got.len() == 2 {
            break;
        }
        sleep(50).await;
    }
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["session_start", "slide_view"]);
}
