//! The tracker end to end inside real browsers, with `window.fetch` replaced by a
//! scripted stub: envelope and sequence numbers, resume across a reload, slide views
//! with hidden time, outbox persistence, retry with Retry-After, per-event results,
//! keepalive flushes, and no tracking without consent.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use edetail_format::{Channel, Event, EventKind, NavVia};
use edetail_runtime::tracking::outbox::Outbox;
use edetail_runtime::tracking::{
    DEVICE_ID_KEY, SessionContext, Tracker, TrackerOptions, drain_outbox_with,
};
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const STUB: &str = r#"
// Requests are recorded and answered per URL, so a test only sees its own endpoint.
window.__stub = window.__stub || { requests: [], replies: {} };
window.fetch = function (url, init) {
  const s = window.__stub;
  const h = init && init.headers;
  s.requests.push({
    url: String(url),
    body: init && init.body,
    keepalive: !!(init && init.keepalive),
    auth: h && h.get ? h.get('Authorization') : null,
    at: Date.now(),
  });
  const q = s.replies[String(url)] || [];
  const r = q.length ? q.shift() : { mode: 'ack' };
  if (r.mode === 'network') return Promise.reject(new TypeError('Failed to fetch'));
  if (r.mode === 'ack') {
    const b = JSON.parse(init.body);
    const results = b.events.map(e => (r.reject || []).includes(e.type)
      ? { id: e.id, status: 'rejected', reason: 'test says no to ' + e.type }
      : { id: e.id, status: (r.duplicate ? 'duplicate' : 'accepted') });
    return Promise.resolve(new Response(JSON.stringify({ received_at: Date.now(), results }),
      { status: 200, headers: { 'Content-Type': 'application/json' } }));
  }
  return Promise.resolve(new Response(r.body || '', { status: r.status, headers: r.headers || {} }));
};
"#;

fn eval(js: &str) -> JsValue {
    js_sys::eval(js).expect("eval")
}

fn install_stub() {
    eval(STUB);
}

/// Queue a scripted answer for `url` (default: acknowledge everything).
fn script(url: &str, reply: &str) {
    eval(&format!(
        "(window.__stub.replies[{url:?}] = window.__stub.replies[{url:?}] || []).push({reply})"
    ));
}

/// Requests made to `url` so far.
fn requests(url: &str) -> Vec<Value> {
    let s = eval(&format!(
        "JSON.stringify(window.__stub.requests.filter(r => r.url === {url:?}))"
    ))
    .as_string()
    .expect("string");
    serde_json::from_str(&s).expect("json")
}

/// A fresh endpoint path for one test.
fn endpoint(tag: &str) -> String {
    unique(&format!("/stub/{tag}"))
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

/// Poll `cond` every 20 ms for up to `ms`.
async fn wait_for(ms: i32, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..(ms / 20) {
        if cond() {
            return true;
        }
        sleep(20).await;
    }
    cond()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        js_sys::Date::now(),
        js_sys::Math::random()
    )
}

fn opts(tag: &str) -> TrackerOptions {
    TrackerOptions {
        db_name: unique(&format!("db-{tag}")),
        session_key: unique(&format!("sess-{tag}")),
        send_at_events: 1000,
        send_after_ms: 100_000,
        retry_base_ms: 200,
        retry_max_ms: 1_000,
        listen: false,
        request_persistence: false,
        pending_prefix: unique(&format!("pending-{tag}")) + ".",
    }
}

fn ctx(endpoint: &str) -> SessionContext {
    let mut c = SessionContext::new("zentara-launch", "1.0.0", "ab12cd", Channel::MrLed);
    c.rep_id = Some("rep-042".into());
    c.hcp_id = Some("h-9f2c".into());
    c.device_id = Some("ipad-7".into());
    c.endpoint = endpoint.into();
    c.auth_token = Some("tok-123".into());
    c
}

fn collect(
    t: &Tracker,
) -> (
    Rc<RefCell<Vec<Event>>>,
    edetail_runtime::tracking::Subscription,
) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let sub = t.subscribe_events(move |e| s.borrow_mut().push(e.clone()));
    (seen, sub)
}

async fn stored(db_name: &str) -> Vec<Event> {
    let db = Outbox::open(db_name).await.expect("open");
    let all = db.read(10_000).await.expect("read");
    db.close();
    all.iter()
        .map(|e| serde_json::from_str(&e.json).expect("stored event parses"))
        .collect()
}

#[wasm_bindgen_test]
async fn envelope_sequence_and_resume_after_reload() {
    install_stub();
    let o = opts("resume");
    // Queue only ("" endpoint): nothing is sent, everything stays in the outbox.
    let t = Tracker::start_with(ctx(""), o.clone());
    let (seen, _sub) = collect(&t);
    t.enter_slide("intro", "h-intro", NavVia::Start);
    t.emit(EventKind::IsiOpen {});
    t.enter_slide("efficacy", "h-eff", NavVia::Swipe);
    t.settled().await;
    let session = t.session_id();
    assert!(!session.is_empty());
    let first = stored(&o.db_name).await;
    let kinds: Vec<&str> = first.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["session_start", "isi_open", "slide_view"]);
    for (i, e) in first.iter().enumerate() {
        e.validate().expect("server-valid");
        assert_eq!(e.seq, i as u64);
        assert_eq!(e.session_id, session);
        assert_eq!(e.device_id, "ipad-7");
        assert_eq!(e.hcp_id.as_deref(), Some("h-9f2c"));
        assert_eq!(e.bundle_hash, "ab12cd");
    }
    assert_eq!(first[1].slide_id.as_deref(), Some("intro"));
    assert_eq!(first[1].slide_hash.as_deref(), Some("h-intro"));
    match &first[2].kind {
        EventKind::SlideView {
            order,
            via,
            counted,
            ..
        } => {
            assert_eq!((*order, *via), (1, NavVia::Start));
            assert!(*counted, "the ISI tap made the short view count");
        }
        k => panic!("not a slide view: {k:?}"),
    }
    // session_start was emitted inside `start`, before the subscription.
    let seen_kinds: Vec<&str> = seen.borrow().iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(
        seen_kinds,
        ["isi_open", "slide_view"],
        "subscribers see later events"
    );
    // The page goes away: the open view (efficacy, order 2) is closed.
    t.handle_pagehide();
    t.settled().await;
    drop(t);

    // "Reload": a new tracker on the same tab storage continues the session.
    let t2 = Tracker::start_with(ctx(""), o.clone());
    assert_eq!(t2.session_id(), session);
    t2.enter_slide("efficacy", "h-eff", NavVia::Start);
    t2.emit(EventKind::Reaction {
        value: 1,
        key_message: None,
    });
    t2.end_session("ended");
    t2.settled().await;
    let all = stored(&o.db_name).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [0, 1, 2, 3, 4, 5, 6],
        "no reuse, no gap across the reload"
    );
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(
        kinds,
        [
            "session_start",
            "isi_open",
            "slide_view",
            "slide_view",
            "reaction",
            "slide_view",
            "session_end"
        ]
    );
    let orders: Vec<u32> = all
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SlideView { order, .. } => Some(*order),
            _ => None,
        })
        .collect();
    assert_eq!(orders, [1, 2, 3], "view order continues across the reload");
    match &all[6].kind {
        EventKind::SessionEnd {
            reason,
            slides_viewed,
            ..
        } => {
            assert_eq!(reason, "ended");
            assert_eq!(*slides_viewed, 2);
        }
        k => panic!("{k:?}"),
    }
    // After the end, a new tracker starts a new session.
    let t3 = Tracker::start_with(ctx(""), o.clone());
    assert_ne!(t3.session_id(), session);
}

#[wasm_bindgen_test]
async fn another_bundle_starts_a_new_session() {
    let o = opts("newbundle");
    let t = Tracker::start_with(ctx(""), o.clone());
    let s1 = t.session_id();
    t.settled().await;
    drop(t);
    let mut c = ctx("");
    c.bundle_hash = "ffff".into();
    let t2 = Tracker::start_with(c, o.clone());
    assert_ne!(t2.session_id(), s1);
    t2.settled().await;
    let all = stored(&o.db_name).await;
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|e| e.seq == 0 && e.kind.type_name() == "session_start")
    );
}

#[wasm_bindgen_test]
async fn hidden_time_is_excluded_and_visibility_is_recorded() {
    let o = opts("hidden");
    let t = Tracker::start_with(ctx(""), o.clone());
    t.enter_slide("a", "ha", NavVia::Start);
    sleep(100).await;
    t.handle_visibility(false);
    sleep(400).await;
    t.handle_visibility(true);
    sleep(100).await;
    t.enter_slide("b", "hb", NavVia::Swipe);
    t.settled().await;
    let all = stored(&o.db_name).await;
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(
        kinds,
        ["session_start", "visibility", "visibility", "slide_view"]
    );
    assert_eq!(all[1].kind, EventKind::Visibility { visible: false });
    assert_eq!(all[1].slide_id.as_deref(), Some("a"));
    match &all[3].kind {
        EventKind::SlideView {
            enter_time,
            exit_time,
            dwell_ms,
            hidden_ms,
            counted,
            ..
        } => {
            let total = (exit_time - enter_time) as u64;
            assert_eq!(dwell_ms + hidden_ms, total);
            assert!(
                *hidden_ms >= 380 && *hidden_ms < total,
                "hidden {hidden_ms} of {total}"
            );
            assert!(*dwell_ms >= 180, "dwell {dwell_ms}");
            assert!(!counted, "well under the 2 s threshold");
        }
        k => panic!("{k:?}"),
    }
}

#[wasm_bindgen_test]
async fn delivery_retries_after_503_and_handles_results() {
    install_stub();
    let o = opts("deliver");
    let url = endpoint("deliver");
    let t = Tracker::start_with(ctx(&url), o.clone());
    script(
        &url,
        r#"{ status: 503, headers: { 'Retry-After': '1' }, body: '{"error":"overloaded","message":"busy"}' }"#,
    );
    script(&url, r#"{ mode: 'ack', reject: ['question'] }"#);
    t.emit(EventKind::Question {
        text: "Dose in renal impairment?".into(),
    });
    t.emit(EventKind::IsiOpen {});
    t.settled().await;
    assert_eq!(t.status().unsynced, 3);
    t.flush();
    assert!(
        wait_for(2_000, || requests(&url).len() == 1).await,
        "first attempt"
    );
    assert!(wait_for(2_000, || t.status().retry_at_ms.is_some()).await);
    let st = t.status();
    let err = st.last_error.clone().unwrap_or_default();
    assert!(err.contains("busy (503)"), "{err}");
    let first_at = requests(&url)[0]["at"].as_f64().unwrap();
    let wait = st.retry_at_ms.unwrap_or(0.0) - first_at;
    assert!(
        wait >= 990.0,
        "Retry-After: 1 honoured, retry {wait} ms after the attempt"
    );
    assert_eq!(st.unsynced, 3, "nothing deleted on 503");

    assert!(
        wait_for(4_000, || t.status().unsynced == 0).await,
        "retried and acknowledged"
    );
    let reqs = requests(&url);
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1]["at"].as_f64().unwrap() - reqs[0]["at"].as_f64().unwrap();
    assert!(gap >= 990.0, "retry waited {gap} ms");
    assert_eq!(reqs[1]["auth"], "Bearer tok-123");
    assert_eq!(reqs[1]["keepalive"], false);
    let body: Value = serde_json::from_str(reqs[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["device_id"], "ipad-7");
    assert_eq!(body["events"].as_array().unwrap().len(), 3);
    // The server's decoder reads the body as sent.
    let decoded =
        edetail_format::ingest::decode_batch(reqs[1]["body"].as_str().unwrap().as_bytes())
            .expect("valid batch");
    assert!(decoded.events.iter().all(|(_, e)| e.is_ok()));

    let st = t.status();
    assert_eq!(st.rejected_total, 1);
    assert!(st.last_error.is_none());
    assert!(st.last_sync_ms.is_some());
    assert!(
        st.log
            .iter()
            .any(|l| l.contains("rejected") && l.contains("test says no to question")),
        "{:?}",
        st.log
    );
    assert!(
        stored(&o.db_name).await.is_empty(),
        "accepted and rejected are deleted"
    );
}

#[wasm_bindgen_test]
async fn network_failure_backs_off_and_keeps_events_then_duplicates_are_deleted() {
    install_stub();
    let o = opts("offline");
    let url = endpoint("offline");
    let t = Tracker::start_with(ctx(&url), o.clone());
    script(&url, "{ mode: 'network' }");
    script(&url, "{ mode: 'network' }");
    script(&url, "{ mode: 'ack', duplicate: true }");
    t.settled().await;
    t.flush();
    assert!(
        wait_for(5_000, || t.status().unsynced == 0).await,
        "{:?}",
        t.status()
    );
    let reqs = requests(&url);
    assert_eq!(reqs.len(), 3);
    let at: Vec<f64> = reqs.iter().map(|r| r["at"].as_f64().unwrap()).collect();
    // Backoff 200 ms base: first wait in [100, 200), second in [200, 400).
    assert!(at[1] - at[0] >= 95.0, "{at:?}");
    assert!(at[2] - at[1] >= 195.0, "{at:?}");
    assert!(stored(&o.db_name).await.is_empty());
}

#[wasm_bindgen_test]
async fn events_of_earlier_sessions_are_resent_on_start() {
    install_stub();
    let o = opts("resend");
    let t = Tracker::start_with(ctx(""), o.clone());
    t.emit(EventKind::IsiOpen {});
    t.end_session("ended");
    t.settled().await;
    drop(t);
    assert_eq!(stored(&o.db_name).await.len(), 3);
    let url = endpoint("resend");
    let t2 = Tracker::start_with(ctx(&url), o.clone());
    assert!(wait_for(3_000, || t2.status().unsynced == 0 && !t2.status().sending).await);
    let reqs = requests(&url);
    let sent: usize = reqs
        .iter()
        .map(|r| {
            let b: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            b["events"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(sent, 4, "3 old events + the new session_start");
}

#[wasm_bindgen_test]
async fn pagehide_closes_the_view_and_flushes_with_keepalive() {
    install_stub();
    let o = opts("pagehide");
    let url = endpoint("pagehide");
    let t = Tracker::start_with(ctx(&url), o.clone());
    t.enter_slide("a", "ha", NavVia::Start);
    t.handle_pagehide();
    assert!(wait_for(2_000, || !requests(&url).is_empty()).await);
    let reqs = requests(&url);
    assert_eq!(reqs[0]["keepalive"], true);
    let body = reqs[0]["body"].as_str().unwrap();
    assert!(body.len() < edetail_format::ingest::KEEPALIVE_MAX_BYTES);
    let b: Value = serde_json::from_str(body).unwrap();
    let types: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["session_start", "slide_view"]);
    assert!(
        wait_for(2_000, || t.status().unsynced == 0).await,
        "acknowledged by the keepalive answer"
    );
    assert!(stored(&o.db_name).await.is_empty());
}

#[wasm_bindgen_test]
async fn no_consent_means_nothing_written_or_sent() {
    install_stub();
    let ls = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    ls.remove_item(DEVICE_ID_KEY).unwrap();
    let o = opts("consent");
    let url = endpoint("consent");
    let mut c = ctx(&url);
    c.channel = Channel::SelfServe;
    c.device_id = None;
    c.tracking_allowed = false;
    let t = Tracker::start_with(c, o.clone());
    let (seen, _sub) = collect(&t);
    t.enter_slide("a", "ha", NavVia::Start);
    t.emit(EventKind::Question {
        text: "anything".into(),
    });
    t.flush();
    t.settled().await;
    sleep(100).await;
    assert!(seen.borrow().is_empty());
    assert!(stored(&o.db_name).await.is_empty());
    assert!(requests(&url).is_empty());
    assert_eq!(
        ls.get_item(DEVICE_ID_KEY).unwrap(),
        None,
        "no device id created"
    );
    assert_eq!(t.device_id(), "");

    // Consent given: the session starts from now, on the slide on screen.
    t.set_consent(true);
    t.enter_slide("b", "hb", NavVia::Swipe);
    t.settled().await;
    let kinds: Vec<&str> = seen.borrow().iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["session_start", "consent", "slide_view"]);
    let dev = ls.get_item(DEVICE_ID_KEY).unwrap().expect("device id now");
    assert_eq!(seen.borrow()[0].device_id, dev);
    assert_eq!(seen.borrow()[2].slide_id.as_deref(), Some("a"));

    // Withdrawn: one consent{false}, then silence.
    t.set_consent(false);
    t.emit(EventKind::IsiOpen {});
    t.enter_slide("c", "hc", NavVia::Swipe);
    let kinds: Vec<&str> = seen.borrow().iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(
        kinds,
        [
            "session_start",
            "consent",
            "slide_view",
            "slide_view",
            "consent"
        ]
    );
}

#[wasm_bindgen_test]
async fn persistent_storage_is_asked_and_reported() {
    let ls = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    ls.remove_item("edetail.persist_asked").unwrap();
    let supported = eval("!!(navigator.storage && navigator.storage.persist)") == JsValue::TRUE;
    let start = |tag: &str| {
        let mut o = opts(tag);
        o.request_persistence = true;
        Tracker::start_with(ctx(""), o)
    };
    let t = start("persist");
    if !supported {
        // WebKitGTK has no StorageManager: nothing asked, status stays "unknown".
        sleep(300).await;
        assert_eq!(t.status().persisted, None);
        assert_eq!(ls.get_item("edetail.persist_asked").unwrap(), None);
        return;
    }
    // Granted or not is the browser's call; the answer must reach the status.
    assert!(
        wait_for(3_000, || t.status().persisted.is_some()).await,
        "{:?}",
        t.status()
    );
    assert_eq!(
        ls.get_item("edetail.persist_asked").unwrap().as_deref(),
        Some("1")
    );
    // The next start only reads `persisted()`, and reports it too.
    let t2 = start("persist2");
    assert!(wait_for(3_000, || t2.status().persisted.is_some()).await);
}

#[wasm_bindgen_test]
async fn batches_go_by_size_or_time_and_hold_at_most_100_events() {
    install_stub();
    let url = endpoint("triggers");
    let mut o = opts("triggers");
    o.send_at_events = 5;
    o.send_after_ms = 400;
    let t = Tracker::start_with(ctx(&url), o);
    t.emit(EventKind::IsiOpen {});
    t.settled().await;
    // 2 events stored, under the size trigger: nothing yet, then the timer sends them.
    sleep(150).await;
    assert!(requests(&url).is_empty(), "not before the send timer");
    assert!(wait_for(2_000, || requests(&url).len() == 1).await);
    assert!(wait_for(2_000, || t.status().unsynced == 0).await);

    // 5 stored events trigger a send at once, well before the 400 ms timer.
    let before = js_sys::Date::now();
    for _ in 0..5 {
        t.emit(EventKind::IsiOpen {});
    }
    assert!(wait_for(2_000, || requests(&url).len() == 2).await);
    let sent_at = requests(&url)[1]["at"].as_f64().unwrap();
    assert!(sent_at - before < 400.0, "size trigger, not the timer");
    assert!(wait_for(2_000, || t.status().unsynced == 0).await);

    // 250 waiting events leave in batches of at most 100, oldest first.
    let n0 = requests(&url).len();
    let mut o = opts("triggers-many");
    o.send_at_events = 1_000;
    let t2 = Tracker::start_with(ctx(&url), o);
    for i in 0..249 {
        t2.emit(EventKind::BuildStep { step: i });
    }
    t2.settled().await;
    t2.flush();
    assert!(
        wait_for(5_000, || t2.status().unsynced == 0).await,
        "{:?}",
        t2.status()
    );
    let sizes: Vec<usize> = requests(&url)[n0..]
        .iter()
        .map(|r| {
            let b: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            b["events"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let seqs: Vec<u64> = requests(&url)[n0..]
        .iter()
        .flat_map(|r| {
            let b: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            b["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seqs, (0..250).collect::<Vec<u64>>(), "oldest first");
}

#[wasm_bindgen_test]
async fn browser_events_drive_the_tracker() {
    install_stub();
    let url = endpoint("listeners");
    let mut o = opts("listeners");
    o.listen = true;
    o.retry_base_ms = 30_000;
    o.retry_max_ms = 60_000;
    let t = Tracker::start_with(ctx(&url), o.clone());
    t.enter_slide("a", "ha", NavVia::Start);
    script(&url, "{ mode: 'network' }");
    t.settled().await;
    t.flush();
    assert!(wait_for(2_000, || t.status().retry_at_ms.is_some()).await);
    // `online` retries at once instead of waiting 15-30 s.
    eval("window.dispatchEvent(new Event('online'))");
    assert!(
        wait_for(2_000, || t.status().unsynced == 0).await,
        "{:?}",
        t.status()
    );

    // `visibilitychange` (with document.hidden faked) records hidden/visible.
    let (seen, _sub) = collect(&t);
    eval(
        "Object.defineProperty(document, 'hidden', { value: true, configurable: true }); document.dispatchEvent(new Event('visibilitychange'))",
    );
    eval(
        "Object.defineProperty(document, 'hidden', { value: false, configurable: true }); document.dispatchEvent(new Event('visibilitychange'))",
    );
    eval("delete document.hidden");
    // `pagehide` closes the open view.
    eval("window.dispatchEvent(new Event('pagehide'))");
    let kinds: Vec<&str> = seen.borrow().iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["visibility", "visibility", "slide_view"]);
    assert_eq!(
        seen.borrow()[0].kind,
        EventKind::Visibility { visible: false }
    );
}

/// `localStorage` keys starting with `prefix`.
fn pending_keys(prefix: &str) -> Vec<String> {
    let ls = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    (0..ls.length().unwrap())
        .filter_map(|i| ls.key(i).unwrap())
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Remember every IndexedDB connection the page opens (`window.__conns`), so a test
/// can close one and make its tracker's writes fail like those of a dying page.
const CAPTURE_CONNECTIONS: &str = r#"
if (!window.__conns) {
  window.__conns = [];
  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function (...args) {
    const req = open.apply(this, args);
    req.addEventListener('success', () => window.__conns.push(req.result));
    return req;
  };
}
"#;

/// The events of `pagehide` (closing `slide_view`, `visibility`) are emitted while the
/// page goes away; their IndexedDB write may never commit. They are mirrored
/// synchronously in `localStorage` and moved into the outbox by the next start, so the
/// session has no `seq` gap.
#[wasm_bindgen_test]
async fn events_of_a_dying_page_reach_the_outbox_on_the_next_start() {
    install_stub();
    eval(CAPTURE_CONNECTIONS);
    let o = opts("dying");
    let t = Tracker::start_with(ctx(""), o.clone());
    let (seen, _sub) = collect(&t);
    t.enter_slide("a", "ha", NavVia::Start);
    t.emit(EventKind::IsiOpen {});
    t.settled().await;
    // The page dies: its IndexedDB connection goes away, so nothing more commits.
    eval(&format!(
        "window.__conns.filter(c => c.name === {:?}).forEach(c => c.close())",
        o.db_name
    ));
    t.handle_visibility(false);
    t.handle_pagehide();
    // Mirrored synchronously, in the same task as the emit.
    let keys = pending_keys(&o.pending_prefix);
    assert_eq!(keys.len(), 1, "one pending list: {keys:?}");
    sleep(300).await;
    let before: Vec<String> = stored(&o.db_name)
        .await
        .iter()
        .map(|e| e.kind.type_name().to_string())
        .collect();
    assert_eq!(
        before,
        ["session_start", "isi_open"],
        "the dying page's writes failed"
    );
    drop(t);
    // Next start (a reload): the pending events are moved into the outbox.
    let t2 = Tracker::start_with(ctx(""), o.clone());
    t2.settled().await;
    let all = stored(&o.db_name).await;
    let mut by_seq: Vec<(u64, String)> = all
        .iter()
        .map(|e| (e.seq, e.kind.type_name().to_string()))
        .collect();
    by_seq.sort();
    assert_eq!(
        by_seq,
        [
            (0, "session_start".to_string()),
            (1, "isi_open".to_string()),
            (2, "visibility".to_string()),
            (3, "slide_view".to_string()),
        ]
    );
    let ids: Vec<String> = seen.borrow().iter().map(|e| e.id.clone()).collect();
    for id in &ids {
        assert!(all.iter().any(|e| &e.id == id), "{id} not in the outbox");
    }
    assert!(
        pending_keys(&o.pending_prefix).is_empty(),
        "the pending list is cleared once its events are in the outbox"
    );
    assert_eq!(t2.status().unsynced, 4);
}

/// Committed events leave the pending list: it holds only what is not yet in IndexedDB.
#[wasm_bindgen_test]
async fn pending_list_empties_once_events_are_committed() {
    install_stub();
    let o = opts("pending-empty");
    let t = Tracker::start_with(ctx(""), o.clone());
    t.enter_slide("a", "ha", NavVia::Start);
    assert_eq!(pending_keys(&o.pending_prefix).len(), 1);
    t.settled().await;
    assert!(pending_keys(&o.pending_prefix).is_empty());
    assert_eq!(stored(&o.db_name).await.len(), 1);
}

/// `window.__edetailEvents` lists every emitted event (id, seq, type, session).
#[wasm_bindgen_test]
async fn emitted_events_are_listed_on_window() {
    install_stub();
    let o = opts("hook");
    let t = Tracker::start_with(ctx(""), o.clone());
    let (seen, _sub) = collect(&t);
    t.enter_slide("a", "ha", NavVia::Start);
    t.emit(EventKind::IsiOpen {});
    t.enter_slide("b", "hb", NavVia::Swipe);
    let list: Vec<Value> = serde_json::from_str(
        &eval("JSON.stringify(window.__edetailEvents.slice(-2))")
            .as_string()
            .unwrap(),
    )
    .unwrap();
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 2);
        for (l, e) in list.iter().zip(seen.iter()) {
            assert_eq!(l["id"], e.id.as_str());
            assert_eq!(l["seq"], e.seq);
            assert_eq!(l["type"], e.kind.type_name());
            assert_eq!(l["session_id"], e.session_id.as_str());
        }
    }
    t.settled().await;
}

/// With no session running (call closed, start-call screen), the outbox drain delivers
/// what earlier sessions left, retrying with backoff; it pauses while a tracker lives.
#[wasm_bindgen_test]
async fn outbox_drains_without_a_session() {
    install_stub();
    let o = opts("drain");
    let url = endpoint("drain");
    // A call queued events (server unreachable) and was closed.
    let t = Tracker::start_with(ctx(""), o.clone());
    t.enter_slide("a", "ha", NavVia::Start);
    t.emit(EventKind::IsiOpen {});
    t.end_session("ended");
    t.settled().await;
    assert_eq!(stored(&o.db_name).await.len(), 4);
    // While a tracker is alive, the drain leaves delivery to it.
    script(&url, "{mode: 'network'}");
    drain_outbox_with(&url, Some("tok-d"), o.clone());
    sleep(400).await;
    assert!(
        requests(&url).is_empty(),
        "drain paused while a tracker lives"
    );
    drop(t);
    // First attempt fails (network), the retry delivers.
    assert!(
        wait_for(5_000, || requests(&url).len() >= 2).await,
        "drain retried: {:?}",
        requests(&url)
    );
    let mut left = 1;
    for _ in 0..100 {
        left = stored(&o.db_name).await.len();
        if left == 0 {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(left, 0, "outbox drained");
    let reqs = requests(&url);
    assert_eq!(reqs[1]["auth"], "Bearer tok-d");
    let b: Value = serde_json::from_str(reqs[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(b["events"].as_array().unwrap().len(), 4);
    assert_eq!(b["device_id"], "ipad-7");
    drain_outbox_with("", None, o);
}
