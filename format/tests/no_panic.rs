//! The decoders every untrusted byte goes through never panic and answer bad input
//! with a clear error: the ingest batch decoder (`ingest::decode_batch`), the bundle
//! parser (`Bundle::from_json`) and `bundle::verify_and_parse`.
//!
//! The stable-Rust counterpart of the cargo-fuzz targets in `fuzz/` (which need
//! nightly): arbitrary bytes, arbitrary JSON shapes (deep nesting, huge numbers,
//! invalid UTF-8) and mutations of real inputs (the fuzz seed corpus).

use edetail_format::bundle::{Bundle, BundleError, verify_and_parse};
use edetail_format::ingest::{BatchError, MAX_BATCH_BYTES, decode_batch};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A real batch (seven events of a Korean MR-led call), the decode_batch fuzz seed.
const REAL_BATCH: &[u8] = include_bytes!("../../fuzz/corpus/decode_batch/real-batch.json");
/// The compiled `bundle.json` of content-samples/en-dosing-guide, the bundle_json seed.
const REAL_BUNDLE: &[u8] = include_bytes!("../../fuzz/corpus/bundle_json/en-dosing-guide.json");

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(inner);
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

fn batch_with_events(events: &str) -> Vec<u8> {
    format!(
        r#"{{"schema_version":1,"device_id":"ipad-1","sent_at":1763800000000,"events":{events}}}"#
    )
    .into_bytes()
}

fn malformed(r: Result<edetail_format::ingest::DecodedBatch, BatchError>) -> String {
    match r {
        Err(BatchError::Malformed(m)) => {
            assert!(!m.is_empty());
            m
        }
        Err(e) => panic!("expected Malformed, got {e}"),
        Ok(_) => panic!("expected Malformed, got a batch"),
    }
}

#[test]
fn seeds_are_real_inputs() {
    let b = decode_batch(REAL_BATCH).expect("the seed batch decodes");
    assert_eq!(b.events.len(), 7);
    for (id, ev) in &b.events {
        assert!(ev.is_ok(), "event {id}: {:?}", ev.as_ref().err());
    }
    let bundle = Bundle::from_json(REAL_BUNDLE).expect("the seed bundle parses");
    assert_eq!(bundle.deck.id, "zentara-dosing-guide-en");
}

#[test]
fn deeply_nested_batch_is_malformed() {
    // 10,000 levels: serde_json's recursion limit (128) refuses it without overflowing
    // the stack.
    let m = malformed(decode_batch(nested(10_000, "[", "]", "").as_bytes()));
    assert!(m.contains("recursion limit"), "{m}");
    let m = malformed(decode_batch(
        nested(10_000, r#"{"a":"#, "}", "1").as_bytes(),
    ));
    assert!(m.contains("recursion limit"), "{m}");
    // Deep inside an otherwise valid batch.
    let m = malformed(decode_batch(&batch_with_events(&format!(
        "[{}]",
        nested(10_000, "[", "]", "")
    ))));
    assert!(m.contains("recursion limit"), "{m}");
}

#[test]
fn deeply_nested_bundle_is_malformed_or_ignored() {
    // 10,000 levels where a struct is expected: Malformed, no stack overflow.
    for body in [
        nested(10_000, "[", "]", ""),
        format!(
            r#"{{"schema_version":1,"deck":{}}}"#,
            nested(10_000, "[", "]", "")
        ),
        format!(
            r#"{{"schema_version":{}}}"#,
            nested(10_000, r#"{"a":"#, "}", "1")
        ),
    ] {
        match Bundle::from_json(body.as_bytes()) {
            Err(BundleError::Malformed(m)) => assert!(!m.is_empty()),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
    // In an unknown field of a real bundle it is skipped (forward compatibility),
    // still without recursion.
    let mut real = REAL_BUNDLE.to_vec();
    real.pop();
    real.extend_from_slice(format!(r#","future":{}}}"#, nested(10_000, "[", "]", "")).as_bytes());
    let b = Bundle::from_json(&real).expect("unknown fields are ignored");
    assert_eq!(b.deck.id, "zentara-dosing-guide-en");
}

#[test]
fn invalid_utf8_batch_is_malformed() {
    // Inside a string value.
    let mut body = batch_with_events("[]");
    let at = body
        .windows(6)
        .position(|w| w == b"ipad-1")
        .expect("device id");
    body[at] = 0xff;
    let m = malformed(decode_batch(&body));
    assert!(
        m.to_lowercase().contains("unicode") || m.contains("utf"),
        "{m}"
    );
    // Outside any string.
    malformed(decode_batch(b"{\"schema_version\":1,\xc3\x28}"));
    // Overlong encoding and a lone surrogate escape in a key.
    malformed(decode_batch(
        b"{\"schema_version\":1,\"device_id\":\"\xc0\xaf\"}",
    ));
    // A bundle with invalid UTF-8 in a title.
    let mut bundle = REAL_BUNDLE.to_vec();
    let at = bundle
        .windows(7)
        .position(|w| w == b"Zentara")
        .expect("title");
    bundle[at + 1] = 0xfe;
    assert!(matches!(
        Bundle::from_json(&bundle),
        Err(BundleError::Malformed(_))
    ));
}

#[test]
fn huge_numbers_are_clear_errors() {
    // Out-of-range float: the whole batch is malformed.
    let m = malformed(decode_batch(
        br#"{"schema_version":1,"device_id":"d","sent_at":1e400,"events":[]}"#,
    ));
    assert!(m.contains("number out of range"), "{m}");
    // sent_at beyond i64.
    malformed(decode_batch(
        br#"{"schema_version":1,"device_id":"d","sent_at":99999999999999999999,"events":[]}"#,
    ));
    // schema_version beyond u64 is "non-integer", not a crash or a wrap-around.
    let m = malformed(decode_batch(
        br#"{"schema_version":18446744073709551617,"device_id":"d","sent_at":1,"events":[]}"#,
    ));
    assert!(m.contains("schema_version"), "{m}");
    // A huge schema version that fits u64 is "unsupported".
    assert_eq!(
        decode_batch(
            br#"{"schema_version":18446744073709551615,"device_id":"d","sent_at":1,"events":[]}"#
        )
        .err(),
        Some(BatchError::UnsupportedSchema(u64::MAX))
    );
    // A huge number inside one event refuses that event only.
    let mut v: Value = serde_json::from_slice(REAL_BATCH).expect("seed");
    v["events"][1]["seq"] = json!(1e300);
    v["events"][2]["dwell_ms"] = json!(-1);
    let b = decode_batch(&serde_json::to_vec(&v).expect("json")).expect("batch");
    assert!(b.events[1].1.is_err(), "seq 1e300 is refused");
    assert!(b.events[0].1.is_ok() && b.events[3].1.is_ok());
    // Bundles: a huge schema version is unsupported, a huge threshold malformed.
    assert!(matches!(
        Bundle::from_json(br#"{"schema_version":1e400}"#),
        Err(BundleError::Malformed(_))
    ));
    let mut bv: Value = serde_json::from_slice(REAL_BUNDLE).expect("seed");
    bv["tracking"]["view_threshold_ms"] = json!(-5);
    assert!(matches!(
        Bundle::from_json(&serde_json::to_vec(&bv).expect("json")),
        Err(BundleError::Malformed(_))
    ));
}

#[test]
fn oversized_batch_is_too_large_before_parsing() {
    let body = vec![b' '; MAX_BATCH_BYTES + 1];
    assert_eq!(
        decode_batch(&body).err(),
        Some(BatchError::TooLarge(MAX_BATCH_BYTES + 1))
    );
}

/// Arbitrary JSON, biased towards what the decoders look at: known field names,
/// boundary and huge numbers, odd strings, nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "schema_version",
        "device_id",
        "sent_at",
        "events",
        "id",
        "type",
        "seq",
        "client_time",
        "session_id",
        "slides",
        "flow",
        "deck",
        "html",
        "components",
        "content_hash",
        "",
        "x",
    ])
    .prop_map(str::to_string);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(1)),
        Just(json!(0)),
        Just(json!(-1)),
        ".{0,20}".prop_map(Value::String),
        Just(Value::String("\u{0}\u{FFFF}\u{10FFFF}".into())),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn check_batch(bytes: &[u8]) {
    match decode_batch(bytes) {
        Ok(b) => {
            for (_, ev) in &b.events {
                if let Err(e) = ev {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn check_bundle(bytes: &[u8]) {
    match Bundle::from_json(bytes) {
        Ok(b) => {
            let again = Bundle::from_json(&b.to_json()).expect("canonical JSON parses");
            assert_eq!(again, b);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = verify_and_parse(bytes, "00");
}

/// Byte-level mutations of a real input: overwrite, insert, delete, truncate.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, byte, op) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let p = pos % v.len();
        match op % 4 {
            0 => v[p] = byte,
            1 => v.insert(p, byte),
            2 => {
                v.remove(p);
            }
            _ => v.truncate(p),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_batch(&bytes);
        check_bundle(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let bytes = serde_json::to_vec(&v).expect("json");
        check_batch(&bytes);
        check_bundle(&bytes);
        // The same value as a batch's events and as one event.
        check_batch(&batch_with_events(&serde_json::to_string(&json!([v.clone()])).expect("json")));
        check_batch(&batch_with_events(&serde_json::to_string(&v).expect("json")));
    }

    #[test]
    fn mutated_real_batches_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        check_batch(&mutate(REAL_BATCH, &edits));
    }

    #[test]
    fn mutated_real_bundles_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        check_bundle(&mutate(REAL_BUNDLE, &edits));
    }

    #[test]
    fn real_batch_with_replaced_fields_never_panics(event in 0usize..7, field in prop::sample::select(vec!["id", "seq", "client_time", "type", "channel", "slide_id", "value", "selected", "dwell_ms", "text"]), v in json_value()) {
        let mut b: Value = serde_json::from_slice(REAL_BATCH).expect("seed");
        b["events"][event][field] = v;
        check_batch(&serde_json::to_vec(&b).expect("json"));
    }
}

#[test]
fn tampered_bundles_are_refused_with_the_reason() {
    // A slide's HTML changed after build: its content hash no longer matches.
    let mut v: Value = serde_json::from_slice(REAL_BUNDLE).expect("seed");
    let html = v["slides"][0]["html"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    v["slides"][0]["html"] = json!(format!("{html}<img src=x onerror=alert(1)>"));
    match Bundle::from_json(&serde_json::to_vec(&v).expect("json")) {
        Err(BundleError::SlideHashMismatch { slide }) => assert_eq!(slide, "title"),
        other => panic!("expected SlideHashMismatch, got {other:?}"),
    }
    // bundle.json bytes that do not match the published bundle hash.
    let good = edetail_format::sha256_hex(REAL_BUNDLE);
    assert!(verify_and_parse(REAL_BUNDLE, &good).is_ok());
    let mut bytes = REAL_BUNDLE.to_vec();
    bytes.push(b' ');
    assert!(matches!(
        verify_and_parse(&bytes, &good),
        Err(BundleError::HashMismatch { .. })
    ));
}
