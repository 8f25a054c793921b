//! The ingest API (`POST /api/v1/events`), implementing the contract in
//! `edetail_format::ingest`: gzip bodies, size and count limits, per-event
//! accepted/duplicate/rejected results, durable acknowledgement, 429/503 with
//! `Retry-After` under overload, never a silent drop.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use edetail_format::ingest::{
    BatchError, BatchResponse, EventResult, EventStatus, MAX_BATCH_BYTES, decode_batch,
};
use edetail_format::{Event, EventKind};

use crate::api::ApiError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::storage::EventRow;
use crate::util::{now_ms, uuid_bytes};

/// Longest an ingest request (authentication, decoding, commit) takes before it is
/// answered 503 (SQLite waits up to its 10 s busy timeout for a lock; PostgreSQL commits
/// are bounded at 8 s; a stalled token lookup is bounded only by this).
pub const INGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(12);

/// Decompress a gzip body, refusing more than [`MAX_BATCH_BYTES`] of output.
pub fn gunzip(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut d = flate2::read::GzDecoder::new(body).take(MAX_BATCH_BYTES as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
    if out.len() > MAX_BATCH_BYTES {
        return Err(ApiError::too_large(format!(
            "decompressed body exceeds {MAX_BATCH_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Validate, store and acknowledge one batch (body already decompressed).
pub async fn handle_batch(
    state: &AppState,
    who: &Principal,
    body: &[u8],
) -> Result<BatchResponse, ApiError> {
    let received_at = now_ms();
    let batch = decode_batch(body).map_err(|e| match e {
        BatchError::Malformed(m) => ApiError::bad_request(format!("malformed batch: {m}")),
        BatchError::UnsupportedSchema(_) => ApiError::unsupported_schema(e.to_string()),
        BatchError::TooManyEvents(_) | BatchError::TooLarge(_) => {
            ApiError::too_large(e.to_string())
        }
    })?;
    let (rep, territory) = match who {
        Principal::Device { rep, territory, .. } => (rep.clone(), territory.clone()),
        _ => (None, None),
    };
    let token_id = who.token_id();
    let offset = received_at - batch.sent_at;
    let mut results: Vec<EventResult> = Vec::with_capacity(batch.events.len());
    let mut rows: Vec<EventRow> = Vec::with_capacity(batch.events.len());
    // Index into `results` of each row.
    let mut row_slot: Vec<usize> = Vec::with_capacity(batch.events.len());
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    // Pseudonyms of this batch's physicians (a batch names few: one keyed hash each).
    let mut pseudonyms: HashMap<String, String> = HashMap::new();
    for (id, decoded) in batch.events {
        let slot = results.len();
        let reject = |reason: String| EventResult {
            id: id.clone(),
            status: EventStatus::Rejected,
            reason: Some(reason),
        };
        let ev = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                results.push(reject(e.to_string()));
                continue;
            }
        };
        if let Principal::Share { deck, .. } = who
            && ev.deck_id != *deck
        {
            results.push(reject(format!(
                "this share link is for deck `{deck}`, not `{}`",
                ev.deck_id
            )));
            continue;
        }
        let Some(key) = uuid_bytes(&ev.id) else {
            results.push(reject("field `id`: must be a UUID".into()));
            continue;
        };
        if !seen.insert(key) {
            results.push(EventResult {
                id: id.clone(),
                status: EventStatus::Duplicate,
                reason: Some("repeated within the batch".into()),
            });
            continue;
        }
        let row = match to_row(
            state,
            who,
            ev,
            key,
            &rep,
            &territory,
            &token_id,
            &mut pseudonyms,
            batch.sent_at,
            received_at,
            offset,
        ) {
            Ok(r) => r,
            Err(reason) => {
                results.push(reject(reason));
                continue;
            }
        };
        results.push(EventResult {
            id,
            status: EventStatus::Accepted,
            reason: None,
        });
        rows.push(row);
        row_slot.push(slot);
    }
    if !rows.is_empty() {
        let _permit = state
            .write_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded())?;
        let n = rows.len();
        // Bounded by the caller (`app::ingest`: INGEST_TIMEOUT for the whole request).
        let flags = state.store.ingest(rows).await.map_err(|e| {
            tracing::warn!(error = %e, "ingest failed; batch not stored");
            // The details go to the log only; clients learn to retry, not our internals.
            ApiError::unavailable(
                "storage is unavailable; nothing from this batch was stored, resend it later"
                    .to_string(),
            )
        })?;
        let mut dup = 0;
        for (slot, inserted) in row_slot.iter().zip(flags) {
            if !inserted {
                dup += 1;
                results[*slot].status = EventStatus::Duplicate;
            }
        }
        tracing::debug!(events = n, duplicates = dup, "batch stored");
    }
    Ok(BatchResponse {
        received_at,
        results,
    })
}

/// The `body` stored with an event: only what the events table has no column for, so
/// nothing is stored twice. It is the JSON object of the type's own fields without
/// `type` (the `type` column) and without those kept in columns (`dwell_ms`, `order` and
/// `counted` of slide views: `dwell_ms`, `ord`, `val`; `value` of reactions: `val`), plus
/// the envelope's `slide_hash` when present and `schema_version` when it is not 1. The
/// event is these fields plus the columns. (Rows stored before this change hold the
/// whole event as JSON; readers use only fields present in both forms, `enter_time`.)
pub fn stored_body(ev: &Event) -> Result<String, String> {
    let mut v = serde_json::to_value(&ev.kind).map_err(|e| e.to_string())?;
    let m = v
        .as_object_mut()
        .ok_or_else(|| "event fields are not an object".to_string())?;
    m.remove("type");
    match ev.kind {
        EventKind::SlideView { .. } => {
            m.remove("dwell_ms");
            m.remove("order");
            m.remove("counted");
        }
        EventKind::Reaction { .. } => {
            m.remove("value");
        }
        _ => {}
    }
    if let Some(h) = &ev.slide_hash {
        m.insert("slide_hash".into(), h.clone().into());
    }
    if ev.schema_version != edetail_format::event::EVENT_SCHEMA_VERSION {
        m.insert("schema_version".into(), ev.schema_version.into());
    }
    serde_json::to_string(&v).map_err(|e| e.to_string())
}

#[allow(clippy::too_many_arguments)]
fn to_row(
    state: &AppState,
    who: &Principal,
    mut ev: Event,
    key: [u8; 16],
    rep: &Option<String>,
    territory: &Option<String>,
    token_id: &str,
    pseudonyms: &mut HashMap<String, String>,
    sent_at: i64,
    received_at: i64,
    offset: i64,
) -> Result<EventRow, String> {
    // Physicians are pseudonymous before anything is stored: a share link names its
    // physician; device events carry the CRM id, which we key-hash.
    let hcp = match who {
        Principal::Share { hcp, .. } => Some(hcp.clone()),
        _ => ev.hcp_id.as_deref().map(|h| match pseudonyms.get(h) {
            Some(p) => p.clone(),
            None => {
                let p = state.keys.pseudonymize(h);
                pseudonyms.insert(h.to_string(), p.clone());
                p
            }
        }),
    };
    ev.hcp_id = hcp.clone();
    if let Principal::Share { .. } = who {
        // Self-serve links can only produce self-serve events.
        ev.channel = edetail_format::Channel::SelfServe;
    }
    let rep = rep.clone().or_else(|| ev.rep_id.clone());
    ev.rep_id = rep.clone();
    let (dwell_ms, ord, val) = match &ev.kind {
        EventKind::SlideView {
            dwell_ms,
            order,
            counted,
            ..
        } => (
            Some(i64::try_from(*dwell_ms).map_err(|_| "field `dwell_ms`: too large".to_string())?),
            Some(i64::from(*order)),
            Some(i64::from(*counted)),
        ),
        EventKind::Reaction { value, .. } => (None, None, Some(i64::from(*value))),
        _ => (None, None, None),
    };
    let seq = i64::try_from(ev.seq).map_err(|_| "field `seq`: too large".to_string())?;
    let body = stored_body(&ev)?;
    Ok(EventRow {
        id: key,
        session_id: ev.session_id.clone(),
        seq,
        device_id: ev.device_id.clone(),
        deck_id: ev.deck_id.clone(),
        deck_version: ev.deck_version.clone(),
        bundle_hash: ev.bundle_hash.clone(),
        slide_id: ev.slide_id.clone(),
        etype: ev.kind.type_name(),
        channel: ev.channel.as_str(),
        rep,
        territory: territory.clone(),
        hcp,
        token_id: token_id.to_string(),
        client_time: ev.client_time,
        sent_at,
        received_at,
        corrected_time: ev.client_time.saturating_add(offset),
        preview: ev.preview,
        dwell_ms,
        ord,
        val,
        body,
        event: ev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edetail_format::{Channel, NavVia};
    use serde_json::{Value, json};

    fn ev(kind: EventKind, slide_hash: Option<&str>) -> Event {
        Event {
            id: "0192f0c4-0000-7000-8000-000000000001".into(),
            schema_version: edetail_format::EVENT_SCHEMA_VERSION,
            session_id: "0192f0c4-0000-7000-8000-0000000000aa".into(),
            seq: 3,
            client_time: 1_763_800_000_000,
            deck_id: "d".into(),
            deck_version: "1.0.0".into(),
            bundle_hash: "ab".repeat(32),
            slide_id: Some("s1".into()),
            slide_hash: slide_hash.map(String::from),
            channel: Channel::MrLed,
            rep_id: Some("rep-1".into()),
            hcp_id: Some("pseudonym".into()),
            device_id: "ipad-1".into(),
            preview: false,
            kind,
        }
    }

    /// The event rebuilt from what the events table stores: its columns and `body`.
    fn rebuild(e: &Event, body: &str) -> Event {
        let mut m = match serde_json::from_str::<Value>(body).unwrap() {
            Value::Object(m) => m,
            other => panic!("body is not an object: {other}"),
        };
        // Columns (`ingest_events` stores these from the row).
        let cols = json!({
            "id": e.id, "session_id": e.session_id, "seq": e.seq,
            "client_time": e.client_time, "deck_id": e.deck_id,
            "deck_version": e.deck_version, "bundle_hash": e.bundle_hash,
            "slide_id": e.slide_id, "channel": e.channel, "rep_id": e.rep_id,
            "hcp_id": e.hcp_id, "device_id": e.device_id, "preview": e.preview,
            "type": e.kind.type_name(),
        });
        for (k, v) in cols.as_object().unwrap() {
            assert!(!m.contains_key(k), "`{k}` stored twice: {body}");
            m.insert(k.clone(), v.clone());
        }
        m.entry("schema_version").or_insert(json!(1));
        match &e.kind {
            EventKind::SlideView {
                dwell_ms,
                order,
                counted,
                ..
            } => {
                for k in ["dwell_ms", "order", "counted"] {
                    assert!(!m.contains_key(k), "`{k}` stored twice: {body}");
                }
                m.insert("dwell_ms".into(), json!(dwell_ms));
                m.insert("order".into(), json!(order));
                m.insert("counted".into(), json!(counted));
            }
            EventKind::Reaction { value, .. } => {
                assert!(!m.contains_key("value"), "`value` stored twice: {body}");
                m.insert("value".into(), json!(value));
            }
            _ => {}
        }
        serde_json::from_value(Value::Object(m)).unwrap()
    }

    #[test]
    fn stored_body_plus_columns_is_the_whole_event() {
        let kinds = [
            EventKind::SlideView {
                enter_time: 1_763_799_990_000,
                exit_time: 1_763_800_000_000,
                dwell_ms: 9400,
                hidden_ms: 600,
                order: 3,
                via: NavVia::Swipe,
                counted: true,
            },
            EventKind::Reaction {
                value: -1,
                key_message: Some("Key message 1".into()),
            },
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
            EventKind::SessionEnd {
                reason: "ended".into(),
                duration_ms: 60_000,
                slides_viewed: 8,
            },
            EventKind::IsiOpen {},
        ];
        for kind in kinds {
            for hash in [None, Some("cd34")] {
                let e = ev(kind.clone(), hash);
                let body = stored_body(&e).unwrap();
                assert_eq!(rebuild(&e, &body), e, "{body}");
            }
        }
        let mut e = ev(EventKind::IsiOpen {}, None);
        e.schema_version = 2;
        assert_eq!(rebuild(&e, &stored_body(&e).unwrap()), e);
    }

    #[test]
    fn stored_body_of_a_slide_view_keeps_only_its_own_fields() {
        let e = ev(
            EventKind::SlideView {
                enter_time: 5,
                exit_time: 7,
                dwell_ms: 2,
                hidden_ms: 0,
                order: 1,
                via: NavVia::Link,
                counted: false,
            },
            None,
        );
        assert_eq!(
            stored_body(&e).unwrap(),
            r#"{"enter_time":5,"exit_time":7,"hidden_ms":0,"via":"link"}"#
        );
    }
}
