//! The pure tracking logic, run inside real browsers (wasm-bindgen-test): slide-view
//! timing with hidden time, the view threshold, the retry schedule and result handling.
//! (The same logic also has native unit tests in `src/tracking/`.)
#![cfg(target_arch = "wasm32")]

use edetail_format::NavVia;
use edetail_format::ingest::{BatchResponse, EventResult, EventStatus};
use edetail_runtime::tracking::backoff::{Backoff, parse_retry_after};
use edetail_runtime::tracking::batch::{Entry, apply_results, batch_body, take_count};
use edetail_runtime::tracking::timing::ViewTimer;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn dwell_excludes_hidden_time() {
    let mut t = ViewTimer::new(2000, true, 1_000);
    t.open(1_000, "intro", "h1", NavVia::Start, 1);
    t.set_visible(2_000, false);
    t.set_visible(32_000, true);
    let v = t
        .open(33_500, "efficacy", "h2", NavVia::Swipe, 2)
        .expect("closed view");
    assert_eq!(v.slide_id, "intro");
    assert_eq!((v.enter_time, v.exit_time), (1_000, 33_500));
    assert_eq!(v.hidden_ms, 30_000);
    assert_eq!(v.dwell_ms, 2_500);
    assert!(v.counted);
}

#[wasm_bindgen_test]
fn view_threshold_and_interaction() {
    let mut t = ViewTimer::new(2000, true, 0);
    t.open(0, "a", "h", NavVia::Start, 1);
    let short = t.open(1_999, "b", "h", NavVia::Swipe, 2).expect("a");
    assert!(!short.counted, "1999 ms < 2000 ms threshold");
    let exact = t.open(3_999, "c", "h", NavVia::Swipe, 3).expect("b");
    assert!(exact.counted, "2000 ms reaches the threshold");
    t.interaction();
    let tapped = t.close(4_100).expect("c");
    assert!(tapped.counted, "an interaction counts a 101 ms view");
    assert_eq!(tapped.dwell_ms, 101);
}

#[wasm_bindgen_test]
fn backoff_schedule_with_retry_after() {
    let mut b = Backoff::new();
    let delays: Vec<u64> = (0..4).map(|_| b.fail(0.0, None)).collect();
    assert_eq!(delays, [500, 1000, 2000, 4000]);
    assert_eq!(b.fail(0.0, parse_retry_after("60")), 60_000);
    b.succeed();
    assert_eq!(b.fail(0.99, None), 995);
}

#[wasm_bindgen_test]
fn results_delete_accepted_duplicate_and_rejected_only() {
    let sent: Vec<String> = ["e1", "e2", "e3", "e4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = |id: &str, status| EventResult {
        id: id.into(),
        status,
        reason: (status == EventStatus::Rejected)
            .then(|| "field `depth_pct`: must be 0-100".into()),
    };
    let resp = BatchResponse {
        received_at: 1,
        results: vec![
            r("e1", EventStatus::Accepted),
            r("e2", EventStatus::Duplicate),
            r("e3", EventStatus::Rejected),
        ],
    };
    let o = apply_results(&sent, &resp);
    assert_eq!(o.delete, ["e1", "e2", "e3"]);
    assert_eq!(o.unanswered, ["e4"]);
    assert_eq!(o.rejected[0].1, "field `depth_pct`: must be 0-100");
}

#[wasm_bindgen_test]
fn batches_respect_the_keepalive_limit() {
    let es: Vec<Entry> = (0..100)
        .map(|i| Entry {
            id: format!("id-{i}"),
            json: format!("{{\"id\":\"id-{i}\",\"pad\":\"{}\"}}", "x".repeat(2000)),
        })
        .collect();
    let limit = edetail_format::ingest::KEEPALIVE_MAX_BYTES;
    let n = take_count(&es, "dev", 100, limit);
    assert!(n > 0 && n < 100);
    assert!(batch_body("dev", 1, &es[..n]).len() <= limit);
}
