//! Batching and acknowledgement handling, pure.
//!
//! Outbox entries are `(id, json)` pairs: the event id and the event serialised once
//! when it was emitted. A batch body is assembled from those strings without
//! re-serialising (see [`batch_body`]).

use std::collections::HashMap;

use edetail_format::EVENT_SCHEMA_VERSION;
use edetail_format::ingest::{BatchResponse, EventStatus};

/// Most events per upload (the server accepts 500).
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Target body size per upload, well under the server's 512 KiB.
pub const MAX_BYTES_PER_BATCH: usize = 256 * 1024;
/// Send as soon as this many events wait.
pub const SEND_AT_EVENTS: u32 = 20;
/// Otherwise send this long after the oldest unsent event was written.
pub const SEND_AFTER_MS: u32 = 5_000;

/// One event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub json: String,
}

/// Bytes of the batch envelope around the events (with a generous device id).
fn overhead(device_id: &str) -> usize {
    // {"schema_version":1,"device_id":"…","sent_at":1763800000000,"events":[]}
    64 + device_id.len() * 2 + 20
}

/// How many leading entries fit in one body of at most `max_bytes` and `max_events`.
/// At least one when any is given and it fits alone; an entry that cannot fit even
/// alone yields 0 (the caller must handle it, see [`oversized`]).
pub fn take_count(
    entries: &[Entry],
    device_id: &str,
    max_events: usize,
    max_bytes: usize,
) -> usize {
    let mut size = overhead(device_id);
    let mut n = 0;
    for e in entries.iter().take(max_events) {
        let add = e.json.len() + usize::from(n > 0);
        if size + add > max_bytes {
            break;
        }
        size += add;
        n += 1;
    }
    n
}

/// Whether a single entry can never fit in a body of `max_bytes`.
pub fn oversized(entry: &Entry, device_id: &str, max_bytes: usize) -> bool {
    overhead(device_id) + entry.json.len() > max_bytes
}

/// The JSON body of one upload (`format::ingest::BatchRequest`).
pub fn batch_body<'a>(
    device_id: &str,
    sent_at: i64,
    events: impl IntoIterator<Item = &'a Entry>,
) -> String {
    let device = serde_json::to_string(device_id).unwrap_or_else(|_| "\"\"".into());
    let mut body = format!(
        "{{\"schema_version\":{EVENT_SCHEMA_VERSION},\"device_id\":{device},\"sent_at\":{sent_at},\"events\":["
    );
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str("]}");
    body
}

/// What to do with the outbox after a `200` answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Ids to delete from the outbox: accepted, duplicate and rejected.
    pub delete: Vec<String>,
    pub accepted: u32,
    pub duplicates: u32,
    /// Refused events and the server's reason (logged, then deleted).
    pub rejected: Vec<(String, String)>,
    /// Sent ids the answer said nothing about: kept for the next attempt.
    pub unanswered: Vec<String>,
}

/// Match a batch answer against the ids that were sent. Results are matched by id, so
/// a reordered or partial answer never deletes an event that was not acknowledged.
pub fn apply_results(sent: &[String], resp: &BatchResponse) -> Outcome {
    let mut by_id: HashMap<&str, (EventStatus, Option<&str>)> = HashMap::new();
    for r in &resp.results {
        by_id.insert(r.id.as_str(), (r.status, r.reason.as_deref()));
    }
    let mut out = Outcome::default();
    for id in sent {
        match by_id.get(id.as_str()) {
            Some((EventStatus::Accepted, _)) => {
                out.accepted += 1;
                out.delete.push(id.clone());
            }
            Some((EventStatus::Duplicate, _)) => {
                out.duplicates += 1;
                out.delete.push(id.clone());
            }
            Some((EventStatus::Rejected, reason)) => {
                out.rejected
                    .push((id.clone(), reason.unwrap_or("no reason given").to_owned()));
                out.delete.push(id.clone());
            }
            None => out.unanswered.push(id.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edetail_format::ingest::{EventResult, decode_batch};

    fn entry(i: usize, pad: usize) -> Entry {
        let id = format!("0192f0c4-0000-7000-8000-{i:012}");
        let ev = serde_json::json!({
            "id": id, "schema_version": 1, "session_id": "s", "seq": i, "client_time": 1_763_800_000_000i64,
            "deck_id": "d", "deck_version": "1", "bundle_hash": "h", "channel": "mr_led",
            "device_id": "dev", "type": "question", "text": "x".repeat(pad + 1),
        });
        Entry {
            id,
            json: ev.to_string(),
        }
    }

    #[test]
    fn body_is_a_valid_batch_for_the_server() {
        let es: Vec<Entry> = (0..3).map(|i| entry(i, 5)).collect();
        let body = batch_body("dev \"7\"", 1_763_800_000_123, &es);
        let b = decode_batch(body.as_bytes()).expect("decodes");
        assert_eq!(b.device_id, "dev \"7\"");
        assert_eq!(b.sent_at, 1_763_800_000_123);
        assert_eq!(b.events.len(), 3);
        for (i, (id, ev)) in b.events.iter().enumerate() {
            assert_eq!(id, &es[i].id);
            assert!(ev.is_ok(), "{ev:?}");
        }
    }

    #[test]
    fn empty_body_is_valid_too() {
        let body = batch_body("dev", 1, &[]);
        assert_eq!(
            decode_batch(body.as_bytes()).expect("decodes").events.len(),
            0
        );
    }

    #[test]
    fn count_limit() {
        let es: Vec<Entry> = (0..250).map(|i| entry(i, 1)).collect();
        assert_eq!(
            take_count(&es, "dev", MAX_EVENTS_PER_BATCH, MAX_BYTES_PER_BATCH),
            100
        );
        assert_eq!(
            take_count(&es[..7], "dev", MAX_EVENTS_PER_BATCH, MAX_BYTES_PER_BATCH),
            7
        );
        assert_eq!(take_count(&[], "dev", 100, 1000), 0);
    }

    #[test]
    fn byte_limit_holds_for_the_real_body() {
        let es: Vec<Entry> = (0..100).map(|i| entry(i, 3000)).collect();
        for max in [8_000usize, 60 * 1024, 100_000] {
            let n = take_count(&es, "dev-123", 100, max);
            assert!(n > 0 && n < 100, "max {max}: {n}");
            let body = batch_body("dev-123", 1_763_800_000_000, &es[..n]);
            assert!(body.len() <= max, "{} > {max}", body.len());
            // And one more would not have fitted.
            let bigger = batch_body("dev-123", 1_763_800_000_000, &es[..n + 1]);
            assert!(bigger.len() + 100 > max);
        }
    }

    #[test]
    fn an_entry_too_big_to_ever_fit_is_detected() {
        let big = entry(0, 70_000);
        assert_eq!(
            take_count(std::slice::from_ref(&big), "dev", 100, 60 * 1024),
            0
        );
        assert!(oversized(&big, "dev", 60 * 1024));
        assert!(!oversized(&entry(1, 10), "dev", 60 * 1024));
    }

    fn res(id: &str, status: EventStatus, reason: Option<&str>) -> EventResult {
        EventResult {
            id: id.into(),
            status,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn results_are_matched_by_id() {
        let sent: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let resp = BatchResponse {
            received_at: 1,
            // Reordered, "d" missing, one unknown id.
            results: vec![
                res(
                    "c",
                    EventStatus::Rejected,
                    Some("field `value`: a reaction is -1, 0 or +1"),
                ),
                res("a", EventStatus::Accepted, None),
                res("zz", EventStatus::Accepted, None),
                res("b", EventStatus::Duplicate, None),
            ],
        };
        let o = apply_results(&sent, &resp);
        assert_eq!(o.delete, ["a", "b", "c"]);
        assert_eq!((o.accepted, o.duplicates), (1, 1));
        assert_eq!(
            o.rejected,
            [(
                "c".to_string(),
                "field `value`: a reaction is -1, 0 or +1".to_string()
            )]
        );
        assert_eq!(o.unanswered, ["d"]);
    }

    #[test]
    fn rejection_without_reason_still_logs_something() {
        let sent = vec!["a".to_string()];
        let resp = BatchResponse {
            received_at: 1,
            results: vec![res("a", EventStatus::Rejected, None)],
        };
        let o = apply_results(&sent, &resp);
        assert_eq!(
            o.rejected,
            [("a".to_string(), "no reason given".to_string())]
        );
    }

    #[test]
    fn empty_answer_deletes_nothing() {
        let sent = vec!["a".to_string(), "b".to_string()];
        let o = apply_results(
            &sent,
            &BatchResponse {
                received_at: 1,
                results: vec![],
            },
        );
        assert!(o.delete.is_empty());
        assert_eq!(o.unanswered, sent);
    }
}
