//! The ingest API (`POST /api/v1/events`), implementing the contract in
//! `edetail_format::ingest`: gzip bodies, size and count limits, per-event
//! accepted/duplicate/rejected results, durable acknowledgement, 429/503 with
//! `Retry-After` under overload, never a silent drop.

use std::collections::HashSet;
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

#[allow(clippy::too_many_arguments)]
fn to_row(
    state: &AppState,
    who: &Principal,
    mut ev: Event,
    key: [u8; 16],
    rep: &Option<String>,
    territory: &Option<String>,
    token_id: &str,
    sent_at: i64,
    received_at: i64,
    offset: i64,
) -> Result<EventRow, String> {
    // Physicians are pseudonymous before anything is stored: a share link names its
    // physician; device events carry the CRM id, which we key-hash.
    let hcp = match who {
        Principal::Share { hcp, .. } => Some(hcp.clone()),
        _ => ev.hcp_id.as_deref().map(|h| state.keys.pseudonymize(h)),
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
    let body = serde_json::to_string(&ev).map_err(|e| e.to_string())?;
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
